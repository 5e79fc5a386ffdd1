"""SmsCnDeliverySensor: wait until every voice call has a delivery report; lose none on the way."""

from __future__ import annotations

from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn._compat import (
    AirflowFailException,
    BaseSensorOperator,
    PokeReturnValue,
    conf,
)
from airflow_provider_smscn.client.errors import SmsCnError, SmsCnValidationError
from airflow_provider_smscn.hooks.mixins import DEFAULT_CONN_ID, SmsCnHookMixin, to_airflow_error

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_smscn._compat import Context
    from airflow_provider_smscn.client.models import DeliveryReport


class SmsCnDeliverySensor(SmsCnHookMixin, BaseSensorOperator):
    """Wait for the delivery reports of ``mobileids``; succeed when all are delivered.

    Reports are read from the ledger, and the account is pulled at most once per
    ``pull_interval`` however many sensors wait, so a report pulled by another waiter is never
    lost. Works in ``poke``, ``reschedule`` and deferrable mode (:class:`SmsCnDeliveryTrigger`).

    :param mobileids: message ids to wait for: a list, a comma string, or the send operator's XCom.
    :param smscn_conn_id: the sms.cn Connection.
    :param accept_undelivered: succeed even when some calls were reported undelivered.
    :param pull_interval: seconds between two pulls of the account (default ``[smscn] pull_interval``).
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).
    :param poke_interval: seconds between two looks at the ledger (also the trigger's ``poll_interval``).
    :return: (XCom) ``{mobileid: report as a dict}``, numbers masked.
    """

    template_fields: Sequence[str] = ("mobileids",)
    ui_color = "#e6ffe6"

    def __init__(
        self,
        *,
        mobileids: str | Sequence[str],
        smscn_conn_id: str = DEFAULT_CONN_ID,
        accept_undelivered: bool = False,
        pull_interval: float | None = None,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        poke_interval: float = 5.0,
        **kwargs: Any,
    ) -> None:
        super().__init__(poke_interval=poke_interval, **kwargs)
        self.mobileids = mobileids
        self.smscn_conn_id = smscn_conn_id
        self.accept_undelivered = accept_undelivered
        self.pull_interval = pull_interval
        self.deferrable = deferrable

    @cached_property
    def _holder(self) -> str:
        from airflow_provider_smscn.delivery import new_holder

        return new_holder()

    def _ids(self) -> list[str]:
        from airflow_provider_smscn.client.validation import normalize_mobileids

        raw = self.mobileids
        items = [x.strip() for x in raw.split(",") if x.strip()] if isinstance(raw, str) else list(raw)
        try:
            if not items:
                raise SmsCnValidationError("mobileids is empty: there is no call to wait for")
            return normalize_mobileids(items, len(items)) or []
        except SmsCnValidationError as err:
            raise AirflowFailException(str(err)) from None

    def _check(self) -> dict[str, DeliveryReport] | None:
        """The reports when all are in, else None; an error retrying cannot help fails the task.

        Whether an error is worth another poke is the error's own ``retriable`` (the code table
        decides, ledger errors are retriable); a refusal is final only once the Connection was
        read afresh.
        """
        from airflow_provider_smscn.delivery import with_fresh_connection

        ids = self._ids()

        def attempt(fresh: bool) -> dict[str, DeliveryReport]:
            if fresh:
                self.reset_hook()
            return self.hook.collect_reports(ids, self._holder, self.pull_interval)

        try:
            found = with_fresh_connection(attempt)
        except SmsCnError as err:
            if not err.retriable:
                raise to_airflow_error(err) from None
            self.log.warning("Delivery check failed, trying again at the next poke: %s", err)
            return None
        self.log.info("%d of %d delivery report(s) in", len(found), len(ids))
        return found if len(found) >= len(ids) else None

    def poke(self, context: Context) -> bool | PokeReturnValue:
        found = self._check()
        if found is None:
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._finish(found))

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        found = self._check()
        if found is not None:
            return self._finish(found)
        from airflow_provider_smscn.delivery.pulling import db_error_text, transient_db_errors
        from airflow_provider_smscn.triggers.smscn import SmsCnDeliveryTrigger

        try:
            ledger_id: str | None = self.hook.ledger.ledger_id()
        except transient_db_errors() as err:  # the ledger is away: the trigger waits for it, unchecked
            self.log.warning("smscn ledger id not read (%s): the trigger cannot compare its ledger",
                             db_error_text(err))
            ledger_id = None
        self.defer(
            trigger=SmsCnDeliveryTrigger(mobileids=self._ids(), smscn_conn_id=self.smscn_conn_id,
                                         poll_interval=self.poke_interval, pull_interval=self.pull_interval,
                                         ledger_id=ledger_id),
            method_name="execute_complete",
            timeout=timedelta(seconds=self.timeout) if self.timeout else None,
        )

    def execute_complete(self, context: Context, event: dict[str, Any]) -> dict[str, dict[str, Any]]:
        """Resume after the trigger fired."""
        from airflow_provider_smscn.client.models import DeliveryReport

        if event.get("status") != "success":  # the trigger gives up only on what retrying cannot help
            raise AirflowFailException(f"Waiting for delivery reports failed: {event.get('message')}")
        return self._finish({mid: DeliveryReport.from_dict(data) for mid, data in event["reports"].items()})

    def _finish(self, reports: dict[str, DeliveryReport]) -> dict[str, dict[str, Any]]:
        from airflow_provider_smscn.delivery import describe_undelivered, report_payload

        if not self.accept_undelivered and any(not r.delivered for r in reports.values()):
            raise AirflowFailException(describe_undelivered(reports))
        delivered = sum(r.delivered for r in reports.values())
        self.log.info("%d of %d voice call(s) delivered", delivered, len(reports))
        return {mid: report_payload(r) for mid, r in reports.items()}
