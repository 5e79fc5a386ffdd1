"""SmsCnHook: an Airflow Connection turned into a ready :class:`SmsCnClient`.

The hook is a thin shell: the client does signing, requests, retries and parsing; the hook reads
the Connection, registers every credential with Airflow's secret masker and logs what was done
with numbers masked.
"""

from __future__ import annotations

import os
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from airflow_provider_smscn._compat import AirflowFailException, BaseHook, conf, mask_secret
from airflow_provider_smscn.client.errors import SmsCnError
from airflow_provider_smscn.client.options import OPTIONS, read_extras
from airflow_provider_smscn.client.options import default as option_default
from airflow_provider_smscn.client.redact import mask_mobiles
from airflow_provider_smscn.hooks.mixins import DEFAULT_CONN_ID
from airflow_provider_smscn.ledger.checks import LedgerNotSharedError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from airflow_provider_smscn.client import (
        DeliveryReport,
        RetryPolicy,
        SendResult,
        SentRecord,
        SmsCnClient,
    )
    from airflow_provider_smscn.delivery import ReportSource
    from airflow_provider_smscn.ledger import SmsCnLedger
    from airflow_provider_smscn.ledger.balance import BalanceReading
    from airflow_provider_smscn.ledger.checks import LedgerVerdict

def ledger_url() -> str:
    """``[smscn] ledger_url``, else a SQLite file under AIRFLOW_HOME (one machine only)."""
    from airflow_provider_smscn.ledger.checks import default_ledger_url

    return conf.get("smscn", "ledger_url", fallback="") or default_ledger_url(os.environ.get("AIRFLOW_HOME"))


def ledger_verdict() -> LedgerVerdict:
    """Is the ledger shared under this deployment's ``[core] executor``? (rules: ledger.checks)"""
    from airflow_provider_smscn.get_provider_info import CONFIG_OPTIONS
    from airflow_provider_smscn.ledger.checks import check_ledger, executor_names

    k8s_pod = os.environ.get("AIRFLOW_IS_K8S_EXECUTOR_POD", "").strip().lower() in ("true", "1")
    return check_ledger(ledger_url(), executor_names(conf.get("core", "executor", fallback=""),
                                                     kubernetes_executor_pod=k8s_pod),
                        explicit=bool(conf.get("smscn", "ledger_url", fallback="")),
                        single_host=conf.getboolean("smscn", "ledger_single_host",
                                                    fallback=CONFIG_OPTIONS["ledger_single_host"]["default"]))


class SmsCnLedgerNotSharedFailure(LedgerNotSharedError, AirflowFailException):
    """Fails the task at once, without retries: no retry can make a per-host ledger shared."""


def smscn_setting(key: str, default: float | None = None) -> float:
    """A numeric ``[smscn]`` setting (pull_interval, retention_days); its default is the one
    declared in the provider info's ``config`` (Airflow shows that same default)."""
    if default is None:
        from airflow_provider_smscn.get_provider_info import CONFIG_OPTIONS

        default = float(CONFIG_OPTIONS[key]["default"])
    return float(conf.get("smscn", key, fallback=str(default)) or default)


def _count(mobiles: str | Sequence[str]) -> int:
    """How many numbers a send names (a comma-separated string or a list)."""
    if isinstance(mobiles, str):
        return len([m for m in mobiles.split(",") if m.strip()])
    return len(list(mobiles))


def _unix(value: Any) -> float | None:
    """A datetime (aware, or naive UTC) or unix seconds as unix seconds."""
    if value is None:
        return None
    if hasattr(value, "timestamp"):
        if getattr(value, "tzinfo", None) is None:
            from datetime import timezone

            value = value.replace(tzinfo=timezone.utc)
        return float(value.timestamp())
    return float(value)


def _base_url(host: str | None, port: int | None, schema: str | None, scheme: str) -> str:
    """Resolve the API URL: empty host = the vendor, a full URL as given, else host[:port]/path."""
    from airflow_provider_smscn.client.client import DEFAULT_BASE_URL

    host = (host or "").strip()
    if not host:
        return DEFAULT_BASE_URL
    if urlsplit(host).scheme in ("http", "https"):
        return host if host.endswith("/") else host + "/"
    netloc = f"{host}:{port}" if port else host
    path = (schema or "voice").strip("/")
    return f"{scheme}://{netloc}/{path}/"


class SmsCnHook(BaseHook):
    """Signed requests to the sms.cn voice API with credentials from an Airflow Connection.

    Connection: ``login`` = uid, ``password`` = login password, ``host`` = API URL; the extras
    (``secret_key``, ``timeout``, ...) are the table ``client.options.OPTIONS`` (docs/connection.md).
    Keyword arguments given here win over the extras.

    :param smscn_conn_id: the Connection id.
    :param timeout: seconds per request.
    :param reply_format: json, xml or txt.
    :param retry: a full :class:`RetryPolicy` (overrides ``retries`` / ``retry_max_wait``).
    :param max_numbers_per_request: largest count of numbers in one sendcode request.
    """

    conn_name_attr = "smscn_conn_id"
    default_conn_name = DEFAULT_CONN_ID
    conn_type = "smscn"
    hook_name = "sms.cn Voice"

    def __init__(
        self,
        smscn_conn_id: str = default_conn_name,
        *,
        timeout: float | None = None,
        reply_format: str | None = None,
        retry: RetryPolicy | None = None,
        max_numbers_per_request: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.smscn_conn_id = smscn_conn_id
        self._overrides: dict[str, Any] = {
            "timeout": timeout,
            "format": reply_format,
            "max_numbers_per_request": max_numbers_per_request,
        }
        self._retry = retry

    def __repr__(self) -> str:
        return f"{type(self).__name__}(smscn_conn_id={self.smscn_conn_id!r})"

    # -- connection -> client -------------------------------------------------------------------
    def _get_conn_params(self) -> dict[str, Any]:
        """Merge hook arguments over Connection extras (the one place that reads the Connection)."""
        conn = self.get_connection(self.smscn_conn_id)
        params = read_extras(conn.extra_dejson or {})
        params.update({k: v for k, v in self._overrides.items() if v is not None})
        params["uid"] = (conn.login or "").strip()
        params["password"] = conn.password or None
        params["base_url"] = _base_url(conn.host, conn.port, conn.schema,
                                       params.get("scheme", option_default("scheme")))
        for secret in (params["password"], params.get("api_password"), params.get("secret_key")):
            if secret:
                mask_secret(secret)
        return params

    @cached_property
    def client(self) -> SmsCnClient:
        """The client, built once per hook: the seam tests and subclasses may replace."""
        from airflow_provider_smscn.client import RetryPolicy, SmsCnClient

        p = self._get_conn_params()
        retry = self._retry
        if retry is None:
            defaults = RetryPolicy()
            max_wait = p.get("retry_max_wait", defaults.max_wait)
            retry = RetryPolicy(max_attempts=p.get("retries", defaults.max_attempts - 1) + 1,
                                initial_wait=min(defaults.initial_wait, max_wait), max_wait=max_wait)
        keywords = {o.argument: p[o.name] for o in OPTIONS if o.argument and o.name in p}
        return SmsCnClient(p["uid"], password=p["password"], base_url=p["base_url"], retry=retry,
                           on_secret=mask_secret, **keywords)

    def get_conn(self) -> SmsCnClient:
        """Return the client (the Airflow hook protocol)."""
        return self.client

    @property
    def account_key(self) -> str:
        """Identifies the account's report stream (uid and API URL) in the ledger."""
        return self.client.account_key

    @cached_property
    def ledger(self) -> SmsCnLedger:
        """The ledger at ``[smscn] ledger_url``: kept reports, the pull lease, send intents."""
        from airflow_provider_smscn.ledger import SmsCnLedger

        verdict = ledger_verdict()
        if not verdict.shared:
            raise SmsCnLedgerNotSharedFailure(verdict.message())
        for warning in verdict.warnings:
            self.log.info("smscn ledger: %s", warning)
        return SmsCnLedger(ledger_url())

    def delivery_source(self, pull_interval: float | None = None) -> ReportSource:
        """What waiting on this account needs: the ledger, the pull, the interval, the spool."""
        from airflow_provider_smscn.client.errors import SmsCnValidationError
        from airflow_provider_smscn.delivery import ReportSource, Spool, default_spool_dir
        from airflow_provider_smscn.ledger.retention import check_retention_days

        interval = smscn_setting("pull_interval") if pull_interval is None else pull_interval
        spool_dir = conf.get("smscn", "spool_dir", fallback="") or default_spool_dir()
        try:  # a setting that would prune what keeps retries safe fails the waiter, clearly
            retention = check_retention_days(smscn_setting("retention_days"))
        except ValueError as err:
            raise SmsCnValidationError(str(err)) from None
        ledger = self.ledger
        return ReportSource(
            ledger=ledger, account=self.account_key, pull=self._pull_from_vendor, pull_interval=interval,
            spool=Spool(spool_dir, ledger.url_for_display),
            housekeep=lambda: ledger.maybe_prune(retention * 86400),
        )

    def collect_reports(
        self, mobileids: Sequence[str], holder: str, pull_interval: float | None = None
    ) -> dict[str, DeliveryReport]:
        """Reports known for ``mobileids``; pulls (and stores every report) if the lease is ours."""
        from airflow_provider_smscn.delivery import collect_reports

        return collect_reports(self.delivery_source(pull_interval), mobileids, holder=holder)

    # -- actions ---------------------------------------------------------------------------------
    def send_voice_code(
        self,
        mobiles: str | Sequence[str],
        template_id: str | int,
        variables: Mapping[str, Any] | str,
        mobileids: Sequence[str] | str | None = None,
    ) -> SendResult:
        """Place voice-code calls; returns the message ids used, one per number in order."""
        from airflow_provider_smscn import metrics
        from airflow_provider_smscn.client.errors import SmsCnApiError

        try:
            result = self.client.send_voice_code(mobiles, template_id, variables, mobileids=mobileids)
        except SmsCnApiError as err:
            metrics.calls_refused(err.code, _count(mobiles), self.account_key)
            raise
        metrics.calls_placed(len(result.mobiles), self.account_key)
        self.log.info("sms.cn accepted %d voice call(s) to %s with template %s",
                      len(result.mobiles), mask_mobiles(result.mobiles), template_id)
        return result

    def get_balance(self, *, threshold: int | None = None, source: str = "hook") -> int:
        """Remaining balance of the account; the reading is kept in the ledger and sent as a metric.

        ``threshold`` (a balance check's ``min_balance``) is kept with the reading, so the balance
        history can show how close the balance ran to it.
        """
        from airflow_provider_smscn import metrics

        balance = self.client.get_balance()
        metrics.balance(balance, self.account_key)
        self._keep_balance(balance, source, threshold)
        return balance

    def _keep_balance(self, balance: int, source: str, threshold: int | None) -> None:
        """Record a reading, with the task that made it; a ledger failure must not fail the caller."""
        env = os.environ
        try:
            self.ledger.record_balance(self.account_key, balance, source=source, threshold=threshold,
                                       dag_id=env.get("AIRFLOW_CTX_DAG_ID"),
                                       task_id=env.get("AIRFLOW_CTX_TASK_ID"),
                                       run_id=env.get("AIRFLOW_CTX_DAG_RUN_ID"))
        except Exception:
            self.log.warning("sms.cn balance reading not kept in the ledger %s", self.ledger.url_for_display,
                             exc_info=True)

    def get_balance_history(self, since: Any = None, until: Any = None) -> list[BalanceReading]:
        """The balance readings of this account kept in the ledger, oldest first.

        ``since`` / ``until``: a datetime, or unix seconds; ``None`` for no bound.
        """
        return self.ledger.get_balance_history(self.account_key, since=_unix(since), until=_unix(until))

    def pull_delivery_reports(self) -> list[DeliveryReport]:
        """Pull the account's pending delivery reports; they are in the ledger before they are returned.

        The vendor hands each report out once: kept only in the caller's hands, a report a sensor,
        trigger or send proof is waiting for would be gone. So this pull stores (or spools) the batch
        first, like every waiter's pull, and fails before pulling when the ledger is not shared.
        The pull is made whether or not the account's pull lease is due (it was asked for); when the
        lease is free it is taken, so the waiters' next pull comes an interval later.
        """
        from airflow_provider_smscn.delivery import new_holder
        from airflow_provider_smscn.delivery.pulling import new_pull_id, replay_spool, store_pulled

        source = self.delivery_source()
        replay_spool(source)  # batches this host kept while the ledger was away go in first
        source.ledger.try_acquire_pull(source.account, new_holder(), source.pull_interval)
        reports = source.pull()
        store_pulled(source, reports, new_pull_id())
        return reports

    def _pull_from_vendor(self) -> list[DeliveryReport]:
        """One ``ac=status`` pull, counted; the caller stores what it hands out."""
        from airflow_provider_smscn import metrics

        reports = self.client.pull_delivery_reports()
        metrics.status_pulled(reports, self.account_key)
        self.log.debug("sms.cn handed out %d delivery report(s)", len(reports))
        return reports

    def query_sent_records(self, date: Any = None, mobile: str | None = None,
                           keep_content: bool = False) -> list[SentRecord]:
        """One page (at most 50) of sent records, in the ledger before they are returned.

        The vendor hands each record out once, and a send's retry proves an uncertain call by the
        stored records: kept only in the caller's hands, they could no longer prove it, and the
        retry would fail (or, with ``resend_uncertain``, call the number again). ``keep_content``
        stores the text sent too (it holds the one-time code: off by default).
        """
        ledger = self.ledger  # an unshared ledger fails here, before anything is handed out
        records = self.client.query_sent_records(date=date, mobile=mobile)
        if records:
            ledger.store_sent_records(self.account_key, records, keep_content=keep_content)
        return records

    def take_event_batches(self, events: Any, consumer: str, taker: str,
                           inlet_events: Any = None) -> list[dict[str, Any]]:
        """The delivery batches among ``events`` that ``taker`` (a run id) takes first for ``consumer``.

        Exactly once on the consumer's side: a ``SmsCnDeliveryEventTrigger`` batch can reach its
        asset twice (sent again after a triggerer died before Airflow confirmed it). Pass the
        task's ``triggering_asset_events``, a consumer name (e.g. the DAG id) and the run id: a
        batch goes to the first run that takes it, and to that run's retries, never to another.
        With the task's ``inlet_events`` (the asset among the task's ``inlets``; ``taker`` the run
        id) the run also takes the batches of its stretch of the asset that no run was started
        for: Airflow 3 (3.0.6-3.3.2) leaves an event stored while a run was being created for the
        run of the next event (apache/airflow#56050), which may come hours later.
        """
        from airflow_provider_smscn.events.delivery import take_batches

        return take_batches(self.ledger, events, consumer, taker, inlet_events)

    def test_connection(self) -> tuple[bool, str]:
        """A balance call: proves the URL, the credentials and the bound IP at once."""
        try:
            balance = self.get_balance(source="test")
        except SmsCnError as err:
            return False, str(err)
        except Exception as err:  # a broken Connection must still answer, not crash the UI
            return False, f"{type(err).__name__}: {err}"
        return True, f"Connection to sms.cn works: balance {balance}"

    def close(self) -> None:
        """Close the client's HTTP session, if one was opened."""
        if "client" in self.__dict__:
            self.client.close()

    # -- Airflow 2.11 connection form (3.2+ reads conn-fields from the provider info) -------------
    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Extra fields of the 2.x connection form, built from the same table as conn-fields."""
        from flask_appbuilder.fieldwidgets import BS3PasswordFieldWidget, BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import PasswordField, StringField

        from airflow_provider_smscn.get_provider_info import CONN_FIELDS

        widgets: dict[str, Any] = {}
        for name, spec in CONN_FIELDS.items():
            secret = spec["schema"].get("format") == "password"
            field_cls = PasswordField if secret else StringField
            widget = BS3PasswordFieldWidget() if secret else BS3TextFieldWidget()
            widgets[name] = field_cls(lazy_gettext(spec["label"]), widget=widget,
                                      description=spec.get("description"))
        return widgets

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Hidden fields, labels and placeholders of the 2.x form, from the provider info."""
        from airflow_provider_smscn.get_provider_info import UI_FIELD_BEHAVIOUR

        return {
            "hidden_fields": UI_FIELD_BEHAVIOUR["hidden-fields"],
            "relabeling": UI_FIELD_BEHAVIOUR["relabeling"],
            "placeholders": UI_FIELD_BEHAVIOUR["placeholders"],
        }
