"""SmsCnDeliveryTrigger: waits for delivery reports in the triggerer, holding no worker slot."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_smscn.client.errors import SmsCnError
from airflow_provider_smscn.hooks.mixins import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_smscn.delivery import ReportSource
    from airflow_provider_smscn.delivery.watcher import OpenSource
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

_HOOKS: dict[str, tuple[float, SmsCnHook]] = {}
_HOOKS_LOCK = threading.Lock()
#: Seconds a shared hook is kept before the Connection is read again (rotated secrets, new URL).
HOOK_MAX_AGE = 300.0


def shared_hook(smscn_conn_id: str, fresh: bool = False) -> tuple[SmsCnHook, bool]:
    """One hook (one HTTP session, one ledger engine) per connection for all triggers of a process.

    A triggerer may run thousands of these triggers: they share the client instead of each
    holding its own session and connection pool. The hook is rebuilt (the Connection read again)
    once it is :data:`HOOK_MAX_AGE` old, or when ``fresh`` asks for it. Returns the hook and
    whether it was just built.
    """
    with _HOOKS_LOCK:
        built_at, hook = _HOOKS.get(smscn_conn_id, (0.0, None))
        if hook is not None and not fresh and time.monotonic() - built_at < HOOK_MAX_AGE:
            return hook, False
        from airflow_provider_smscn.hooks.smscn import SmsCnHook

        hook = SmsCnHook(smscn_conn_id=smscn_conn_id)
        hook.client  # noqa: B018  (built under the lock, once: this reads the Connection)
        _HOOKS[smscn_conn_id] = (time.monotonic(), hook)
        return hook, True


def forget_hook(smscn_conn_id: str) -> None:
    """Drop the shared hook: the next use reads the Connection afresh."""
    with _HOOKS_LOCK:
        _HOOKS.pop(smscn_conn_id, None)


def _source_opener(smscn_conn_id: str) -> OpenSource:
    def open_source(pull_interval: float | None, fresh: bool) -> ReportSource:
        hook, _ = shared_hook(smscn_conn_id, fresh=fresh)
        return hook.delivery_source(pull_interval)

    return open_source


class SmsCnDeliveryTrigger(BaseTrigger):
    """Fire when every message id has a delivery report (delivered or not).

    All triggers of one connection in a triggerer process wait through one watcher: one ledger
    look per poll interval for all of them, and a pull of the account only when that process wins
    the account's pull lease (draining a backlog at once). So 10,000 triggers cost one look per
    interval, and a thousand triggerers still cause one ``ac=status`` pull per interval.

    :param mobileids: the message ids to wait for.
    :param smscn_conn_id: the sms.cn Connection.
    :param poll_interval: seconds between two looks at the ledger.
    :param pull_interval: seconds between two pulls of the account (default ``[smscn] pull_interval``).
    :param ledger_origin: the ledger the deferring task used (its ``ledger_location``); a triggerer
        whose ledger is another SQLite file fails the task at once instead of waiting in a ledger
        the task's reports never reach.
    """

    def __init__(self, mobileids: list[str], smscn_conn_id: str = DEFAULT_CONN_ID,
                 poll_interval: float = 5.0, pull_interval: float | None = None,
                 ledger_origin: str | None = None) -> None:
        super().__init__()
        self.mobileids = list(mobileids)
        self.smscn_conn_id = smscn_conn_id
        self.poll_interval = float(poll_interval)
        self.pull_interval = pull_interval
        self.ledger_origin = ledger_origin

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Every earlier version's kwargs, and new ones only when set: a triggerer may hold old rows.
        kwargs: dict[str, Any] = {
            "mobileids": self.mobileids,
            "smscn_conn_id": self.smscn_conn_id,
            "poll_interval": self.poll_interval,
            "pull_interval": self.pull_interval,
        }
        if self.ledger_origin is not None:
            kwargs["ledger_origin"] = self.ledger_origin
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_smscn.delivery import report_payload
        from airflow_provider_smscn.delivery.watcher import watcher_for

        problem = self._ledger_problem()
        if problem is not None:
            yield TriggerEvent({"status": "error", "message": problem})
            return
        watcher = watcher_for(self.smscn_conn_id, lambda: _source_opener(self.smscn_conn_id))
        try:
            found = await watcher.wait(self.mobileids, poll_interval=self.poll_interval,
                                       pull_interval=self.pull_interval)
        except SmsCnError as err:  # refused with the Connection read afresh: retrying cannot help
            yield TriggerEvent({"status": "error", "message": str(err)})
            return
        reports = {mid: report_payload(r) for mid, r in found.items()}
        yield TriggerEvent({"status": "success", "reports": reports})

    def _ledger_problem(self) -> str | None:
        """The text that fails the task when this triggerer's ledger is another file than its task's."""
        if self.ledger_origin is None:  # deferred by an earlier version
            return None
        from airflow_provider_smscn.hooks.smscn import ledger_here, ledger_single_host
        from airflow_provider_smscn.ledger.checks import ledger_mismatch

        mismatch = ledger_mismatch(self.ledger_origin, ledger_here(), single_host=ledger_single_host())
        if mismatch is None:
            return None
        fatal, text = mismatch
        if fatal:
            return text
        self.log.warning("smscn: %s", text)
        return None
from airflow_provider_smscn.triggers.events import SmsCnBalanceEventTrigger, SmsCnDeliveryEventTrigger  # noqa: E402,F401
