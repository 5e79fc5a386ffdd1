"""Operators: send voice codes (retry-safe), check the balance, drain sent records into the ledger."""

from __future__ import annotations

import sys
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn._compat import AirflowException, AirflowFailException, BaseOperator
from airflow_provider_smscn.client.errors import (
    SmsCnApiError,
    SmsCnError,
    SmsCnLowBalanceError,
    SmsCnSendOutcomeUnknownError,
    SmsCnValidationError,
)
from airflow_provider_smscn.client.redact import mask_mobile, mask_mobiles

if TYPE_CHECKING:
    from collections.abc import Sequence

    import jinja2

    from airflow_provider_smscn._compat import Context
    from airflow_provider_smscn.hooks.smscn import SmsCnHook
    from airflow_provider_smscn.ledger import SendIntent

#: Intent states after which a number must not be called again in the same run.
_MAY_HAVE_BEEN_SENT = ("pending", "unknown")


def _masked_numbers(value: Any) -> Any:
    """Numbers as the UI's rendered-fields view shows them: ``139****8888``."""
    if isinstance(value, str):
        return ",".join(mask_mobile(v.strip()) for v in value.split(",") if v.strip())
    if isinstance(value, (list, tuple)):
        return [mask_mobile(str(v)) for v in value]
    return value


def _hidden_values(value: Any) -> Any:
    """Template variables as the UI shows them: keys kept, one-time values hidden."""
    if isinstance(value, dict):
        return {key: "***" for key in value}
    return "***" if value else value


def to_airflow_error(err: SmsCnError) -> AirflowException:
    """Map our errors to Airflow's: what retrying cannot help fails the task without retries."""
    if err.retriable:
        return AirflowException(str(err))
    return AirflowFailException(str(err))


class _SmsCnBaseOperator(BaseOperator):
    """Holds the connection id and builds the hook once per task instance."""

    #: Templated fields holding numbers (shown masked) or one-time codes (shown as ***): the real
    #: rendered values stay on the instance, the rendered-fields view gets the masked copy.
    number_fields: Sequence[str] = ()
    secret_fields: Sequence[str] = ()

    def __init__(self, *, smscn_conn_id: str = "smscn_default", **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smscn_conn_id = smscn_conn_id

    @cached_property
    def hook(self) -> SmsCnHook:
        from airflow_provider_smscn.hooks.smscn import SmsCnHook

        return SmsCnHook(smscn_conn_id=self.smscn_conn_id)

    def render_template_fields(self, context: Context, jinja_env: jinja2.Environment | None = None) -> None:
        super().render_template_fields(context, jinja_env)
        self._real_values = {name: getattr(self, name) for name in (*self.number_fields, *self.secret_fields)}
        for name in self.number_fields:
            setattr(self, name, _masked_numbers(getattr(self, name)))
        for name in self.secret_fields:
            setattr(self, name, _hidden_values(getattr(self, name)))

    def _value(self, name: str) -> Any:
        """The real rendered value of a hidden field (or the attribute, when nothing was rendered)."""
        return getattr(self, "_real_values", {}).get(name, getattr(self, name))


class SmsCnSendVoiceCodeOperator(_SmsCnBaseOperator):
    """Call a list of numbers and speak a verification code from a template.

    Large lists go out in chunks under the per-request limit. Message ids are derived from
    (dag, task, run, map index, number) and recorded in the ledger before each request, so an
    Airflow retry never calls a number again that the first attempt may already have called:
    numbers whose first attempt has an unknown outcome are only called again with
    ``resend_uncertain=True``.

    :param mobiles: numbers, a list or a comma-separated string (templated).
    :param template_id: the voice template id, e.g. ``700001`` (templated).
    :param variables: the template variables, a dict or a JSON object string (templated; hidden
        in the UI's rendered fields because they are one-time codes).
    :param smscn_conn_id: the sms.cn Connection.
    :param mobileids: your own message ids, one per number (default: deterministic ids).
    :param chunk_size: numbers per request (default and maximum: the connection's limit).
    :param resend_uncertain: call again numbers whose earlier attempt may or may not have gone out.
    :return: (XCom) the message ids, one per number, in the order of ``mobiles``.
    """

    template_fields: Sequence[str] = ("mobiles", "template_id", "variables", "mobileids")
    template_fields_renderers = {"variables": "json"}
    number_fields = ("mobiles",)
    secret_fields = ("variables",)
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        mobiles: str | Sequence[str],
        template_id: str | int,
        variables: dict[str, Any] | str,
        smscn_conn_id: str = "smscn_default",
        mobileids: str | Sequence[str] | None = None,
        chunk_size: int | None = None,
        resend_uncertain: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(smscn_conn_id=smscn_conn_id, **kwargs)
        self.mobiles = mobiles
        self.template_id = template_id
        self.variables = variables
        self.mobileids = mobileids
        self.chunk_size = chunk_size
        self.resend_uncertain = resend_uncertain

    def execute(self, context: Context) -> list[str]:
        from airflow_provider_smscn.client.validation import (
            normalize_mobileids,
            normalize_mobiles,
            normalize_variables,
            validate_template_id,
        )

        try:
            mobiles = normalize_mobiles(self._value("mobiles"), limit=sys.maxsize)
            variables = normalize_variables(self._value("variables"))
            template_id = validate_template_id(self.template_id)
            given_ids = normalize_mobileids(self.mobileids, len(mobiles))
            if self.chunk_size is not None and self.chunk_size < 1:
                raise SmsCnValidationError(f"chunk_size must be at least 1, got {self.chunk_size}")
        except SmsCnValidationError as err:
            raise AirflowFailException(str(err)) from None

        ti = context["ti"]
        idem_key = f"{ti.dag_id}|{ti.task_id}|{ti.run_id}|{getattr(ti, 'map_index', -1)}"
        try:  # a misconfigured connection surfaces here, before anything is sent
            final_ids, to_send, rejected_before = self._plan(idem_key, mobiles, given_ids)
            limit = self.hook.client.max_numbers_per_request
        except SmsCnError as err:
            raise to_airflow_error(err) from None
        size = min(self.chunk_size or limit, limit)
        chunks = [to_send[i : i + size] for i in range(0, len(to_send), size)]
        for number, chunk in enumerate(chunks, start=1):
            self._send_chunk(idem_key, template_id, variables, chunk, rejected_before)
            self.log.info("Sent chunk %d/%d: %d of %d number(s) called",
                          number, len(chunks), min(number * size, len(to_send)), len(to_send))
        return final_ids

    def _plan(self, idem_key: str, mobiles: list[str], given_ids: list[str] | None
              ) -> tuple[list[str], list[tuple[str, str]], set[str]]:
        """Decide per number: call it, or keep the id of an earlier attempt that may have called it.

        Returns the ids in order, the (number, id) pairs to send, and which of those ids an earlier
        attempt already recorded as rejected (their intent row exists and must be reset).
        """
        from airflow_provider_smscn.client.validation import deterministic_mobileid
        from airflow_provider_smscn.delivery import new_holder

        ledger, account = self.hook.ledger, self.hook.account_key

        given = dict(zip(mobiles, given_ids, strict=True)) if given_ids is not None else {}

        def id_for(mobile: str, generation: int) -> str:
            if generation == 0 and mobile in given:
                return given[mobile]
            suffix = f"|{generation}" if generation else ""
            return deterministic_mobileid(f"{idem_key}|{mobile}{suffix}")

        current: dict[str, tuple[str, SendIntent | None, int]] = {}
        generation, pending = 0, list(mobiles)
        while pending:  # follow resends ("superseded" ids) to each number's latest id
            ids = {m: id_for(m, generation) for m in pending}
            intents = ledger.get_intents(account, ids.values())
            nxt = []
            for mobile, mid in ids.items():
                intent = intents.get(mid)
                if intent is not None and intent.state == "superseded":
                    nxt.append(mobile)
                else:
                    current[mobile] = (mid, intent, generation)
            pending, generation = nxt, generation + 1

        uncertain = [mid for mid, it, _ in current.values() if it and it.state in _MAY_HAVE_BEEN_SENT]
        if uncertain:  # a report proves the earlier attempt reached the vendor
            reported = self.hook.collect_reports(uncertain, new_holder())
            ledger.mark_intents(account, reported, "accepted")
        else:
            reported = {}

        final_ids: list[str] = []
        to_send: list[tuple[str, str]] = []
        rejected_before: set[str] = set()
        kept: list[str] = []
        for mobile in mobiles:
            mid, intent, depth = current[mobile]
            state = "accepted" if mid in reported else (intent.state if intent else None)
            if state in (None, "rejected"):
                to_send.append((mobile, mid))
                if state == "rejected":
                    rejected_before.add(mid)
            elif state in _MAY_HAVE_BEEN_SENT and self.resend_uncertain:
                ledger.mark_intents(account, [mid], "superseded")
                mid = id_for(mobile, depth + 1)
                to_send.append((mobile, mid))
            elif state in _MAY_HAVE_BEEN_SENT:
                kept.append(mobile)
            final_ids.append(mid)
        already = len(mobiles) - len(to_send) - len(kept)
        if already:
            self.log.info("%d number(s) were already called by an earlier attempt of this run: not again",
                          already)
        if kept:
            self.log.warning(
                "An earlier attempt of this run may already have called %d number(s) %s (no answer came "
                "back and no delivery report yet). Not calling them again; set resend_uncertain=True to "
                "call them anyway.", len(kept), mask_mobiles(kept))
        return final_ids, to_send, rejected_before

    def _send_chunk(self, idem_key: str, template_id: str, variables: dict[str, Any],
                    chunk: list[tuple[str, str]], rejected_before: set[str]) -> None:
        """Record the intent, send, record the outcome: the ledger always knows what may have gone out."""
        ledger, account = self.hook.ledger, self.hook.account_key
        ids = [mid for _, mid in chunk]
        ledger.record_intents(account, idem_key, [(mid, mobile) for mobile, mid in chunk])
        again = [mid for mid in ids if mid in rejected_before]
        if again:  # a rejected id sent again is in flight again
            ledger.mark_intents(account, again, "pending")
        try:
            self.hook.send_voice_code([m for m, _ in chunk], template_id, variables, mobileids=ids)
        except SmsCnSendOutcomeUnknownError as err:
            ledger.mark_intents(account, ids, "unknown")
            raise AirflowException(f"{err} A retry will not call these numbers again.") from None
        except SmsCnApiError as err:
            ledger.mark_intents(account, ids, "rejected", code=err.code)
            raise to_airflow_error(err) from None
        except SmsCnError as err:  # validation or a connection never made: nothing went out
            ledger.mark_intents(account, ids, "rejected")
            raise to_airflow_error(err) from None
        ledger.mark_intents(account, ids, "accepted", code=100)


class SmsCnLowBalanceFailure(SmsCnLowBalanceError, AirflowFailException):
    """The balance is under ``min_balance``: fails the task at once, without retries."""


class SmsCnBalanceCheckOperator(_SmsCnBaseOperator):
    """Return the account's balance; fail with a low-balance error under ``min_balance``.

    :param min_balance: the threshold; ``None`` only reports the balance.
    :param smscn_conn_id: the sms.cn Connection.
    :return: (XCom) the balance, an int.
    """

    template_fields: Sequence[str] = ("min_balance",)
    ui_color = "#fff6e0"

    def __init__(self, *, min_balance: int | None = None, smscn_conn_id: str = "smscn_default",
                 **kwargs: Any) -> None:
        super().__init__(smscn_conn_id=smscn_conn_id, **kwargs)
        self.min_balance = min_balance

    def execute(self, context: Context) -> int:
        try:
            balance = self.hook.get_balance(threshold=self.min_balance, source="check")
        except SmsCnError as err:
            raise to_airflow_error(err) from None
        self.log.info("sms.cn balance: %d", balance)
        if self.min_balance is not None and balance < int(self.min_balance):
            raise SmsCnLowBalanceFailure(balance, int(self.min_balance))
        return balance


class SmsCnQuerySentRecordsOperator(_SmsCnBaseOperator):
    """Drain the account's sent records (``ac=query``, 50 a call, each handed out once) into the ledger.

    Each page is stored before the next is asked for, so a failure midway loses nothing already
    drained. Record contents hold one-time codes: they are stored only with ``keep_content=True``.

    :param date: only records of this day (``YYYY-MM-DD``, templated).
    :param mobile: only records of this number (templated, masked in the UI).
    :param keep_content: also store what was sent.
    :param max_pages: upper bound of calls in one run.
    :return: (XCom) ``{"records": n, "pages": p}``.
    """

    template_fields: Sequence[str] = ("date", "mobile")
    number_fields = ("mobile",)

    def __init__(self, *, date: str | None = None, mobile: str | None = None, keep_content: bool = False,
                 max_pages: int = 1000, smscn_conn_id: str = "smscn_default", **kwargs: Any) -> None:
        super().__init__(smscn_conn_id=smscn_conn_id, **kwargs)
        self.date = date
        self.mobile = mobile
        self.keep_content = keep_content
        self.max_pages = max_pages

    def execute(self, context: Context) -> dict[str, int]:
        ledger, account = self.hook.ledger, self.hook.account_key
        total = pages = 0
        try:
            while pages < self.max_pages:
                records = self.hook.query_sent_records(date=self.date or None,
                                                       mobile=self._value("mobile") or None)
                if not records:
                    break
                ledger.store_sent_records(account, records, keep_content=self.keep_content)
                pages += 1
                total += len(records)
                self.log.info("Stored page %d: %d record(s), %d in all", pages, len(records), total)
        except SmsCnError as err:
            raise to_airflow_error(err) from None
        return {"records": total, "pages": pages}
