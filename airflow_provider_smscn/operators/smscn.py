"""Operators: send voice codes (retry-safe), check the balance, drain sent records into the ledger."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from airflow_provider_smscn._compat import AirflowException, AirflowFailException, BaseOperator
from airflow_provider_smscn.client.errors import SmsCnLowBalanceError, SmsCnSendOutcomeUnknownError
from airflow_provider_smscn.hooks.mixins import DEFAULT_CONN_ID, SmsCnHookMixin
from airflow_provider_smscn.hooks.mixins import to_airflow_error as to_airflow_error  # its old home
from airflow_provider_smscn.operators.masked import NUMBERS, SECRET, MaskedField, unmasked
from airflow_provider_smscn.sending import DEFAULT_PROOF_TIMEOUT

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_smscn._compat import Context


class _SmsCnBaseOperator(SmsCnHookMixin, BaseOperator):
    """The connection id, the hook and the error mapping come from :class:`SmsCnHookMixin`."""

    def __init__(self, *, smscn_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.smscn_conn_id = smscn_conn_id

    def _value(self, name: str) -> Any:
        """The real rendered value of a masked field (see operators/masked.py)."""
        return unmasked(getattr(self, name))


class SmsCnSendVoiceCodeOperator(_SmsCnBaseOperator):
    """Call a list of numbers and speak a verification code from a template, at most once per run.

    The logic lives in :mod:`airflow_provider_smscn.sending`: one message id per (dag, task, run,
    number), claimed in the ledger before its request, so no retry, clear, reordered mapped input
    or second execution of the task calls a number twice. Numbers an earlier attempt may have
    called are proven (a 100, a delivery report, a sent record) within ``proof_timeout``, or the
    task fails without retries naming them; ``resend_uncertain=True`` calls them again instead.

    :param mobiles: numbers, a list or a comma-separated string (templated, shown masked). A number
        listed twice, or in two map indexes of one run, is called once; each place gets its id.
    :param template_id: the voice template id, e.g. ``700001`` (templated).
    :param variables: the template variables, a dict or a JSON object string (templated; shown as
        ``***``: they are one-time codes).
    :param smscn_conn_id: the sms.cn Connection.
    :param mobileids: your own message ids, one per number (default: deterministic ids).
    :param chunk_size: numbers per request (default and maximum: the connection's limit).
    :param resend_uncertain: call again numbers an earlier attempt may or may not have called.
    :param proof_timeout: seconds to wait for proof about such numbers before failing (or resending).
    :return: (XCom) the message ids, one per number, in the order of ``mobiles``.
    """

    template_fields: Sequence[str] = ("mobiles", "template_id", "variables", "mobileids")
    template_fields_renderers = {"variables": "json"}
    #: Numbers show masked (139****8888) and codes as *** in every view Airflow has of them.
    mobiles = MaskedField(NUMBERS)
    variables = MaskedField(SECRET)
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        mobiles: str | Sequence[str],
        template_id: str | int,
        variables: dict[str, Any] | str,
        smscn_conn_id: str = DEFAULT_CONN_ID,
        mobileids: str | Sequence[str] | None = None,
        chunk_size: int | None = None,
        resend_uncertain: bool = False,
        proof_timeout: float = DEFAULT_PROOF_TIMEOUT,
        **kwargs: Any,
    ) -> None:
        super().__init__(smscn_conn_id=smscn_conn_id, **kwargs)
        self.mobiles = mobiles
        self.template_id = template_id
        self.variables = variables
        self.mobileids = mobileids
        self.chunk_size = chunk_size
        self.resend_uncertain = resend_uncertain
        self.proof_timeout = proof_timeout

    def execute(self, context: Context) -> list[str]:
        from airflow_provider_smscn.hooks.smscn import smscn_setting
        from airflow_provider_smscn.sending import prepare_job, send_voice_codes

        ti = context["ti"]
        with self.airflow_errors():  # bad input is not retriable: it fails the task at once
            job = prepare_job(f"{ti.dag_id}|{ti.task_id}|{ti.run_id}", self._value("mobiles"),
                              self.template_id, self._value("variables"), self.mobileids,
                              chunk_size=self.chunk_size, resend_uncertain=self.resend_uncertain,
                              proof_timeout=self.proof_timeout,
                              proof_poll=max(0.2, smscn_setting("pull_interval", 5.0)),
                              map_index=_map_index(ti))
            try:  # a misconfigured connection surfaces here, before anything is sent
                return send_voice_codes(self.hook, job, limit=self.hook.client.max_numbers_per_request,
                                        logger=self.log)
            except SmsCnSendOutcomeUnknownError as err:
                raise AirflowException(f"{err} A retry will not call these numbers again: it looks "
                                       "for proof that they were called.") from None


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

    def __init__(self, *, min_balance: int | None = None, smscn_conn_id: str = DEFAULT_CONN_ID,
                 **kwargs: Any) -> None:
        super().__init__(smscn_conn_id=smscn_conn_id, **kwargs)
        self.min_balance = min_balance

    def execute(self, context: Context) -> int:
        with self.airflow_errors():
            balance = self.hook.get_balance(threshold=self.min_balance, source="check")
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
    :param smscn_conn_id: the sms.cn Connection.
    :return: (XCom) ``{"records": n, "pages": p}``.
    """

    template_fields: Sequence[str] = ("date", "mobile")
    mobile = MaskedField(NUMBERS)

    def __init__(self, *, date: str | None = None, mobile: str | None = None, keep_content: bool = False,
                 max_pages: int = 1000, smscn_conn_id: str = DEFAULT_CONN_ID, **kwargs: Any) -> None:
        super().__init__(smscn_conn_id=smscn_conn_id, **kwargs)
        self.date = date
        self.mobile = mobile
        self.keep_content = keep_content
        self.max_pages = max_pages

    def execute(self, context: Context) -> dict[str, int]:
        total = pages = 0
        with self.airflow_errors():
            while pages < self.max_pages:
                records = self.hook.query_sent_records(  # stored in the ledger by the hook
                    date=self.date or None, mobile=self._value("mobile") or None,
                    keep_content=self.keep_content)
                if not records:
                    break
                pages += 1
                total += len(records)
                self.log.info("Stored page %d: %d record(s), %d in all", pages, len(records), total)
        return {"records": total, "pages": pages}


def _map_index(ti: Any) -> int:
    """The task instance's map index (-1 unmapped), for finding the rows 0.1.0 wrote."""
    value = getattr(ti, "map_index", None)
    return -1 if value is None else int(value)
