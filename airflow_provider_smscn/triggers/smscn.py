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
    :param ledger_id: the id of the ledger the deferring task used (``SmsCnLedger.ledger_id``); a
        triggerer with another ledger fails the task at once instead of waiting in a ledger the
        task's reports never reach.
    """

    def __init__(self, mobileids: list[str], smscn_conn_id: str = DEFAULT_CONN_ID,
                 poll_interval: float = 5.0, pull_interval: float | None = None,
                 ledger_id: str | None = None) -> None:
        super().__init__()
        self.mobileids = list(mobileids)
        self.smscn_conn_id = smscn_conn_id
        self.poll_interval = float(poll_interval)
        self.pull_interval = pull_interval
        self.ledger_id = ledger_id

    def serialize(self) -> tuple[str, dict[str, Any]]:
        # Every earlier version's kwargs, and new ones only when set: a triggerer may hold old rows.
        kwargs: dict[str, Any] = {
            "mobileids": self.mobileids,
            "smscn_conn_id": self.smscn_conn_id,
            "poll_interval": self.poll_interval,
            "pull_interval": self.pull_interval,
        }
        if self.ledger_id is not None:
            kwargs["ledger_id"] = self.ledger_id
        return f"{type(self).__module__}.{type(self).__qualname__}", kwargs

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_smscn.delivery import report_payload
        from airflow_provider_smscn.delivery.watcher import watcher_for

        problem = await self._ledger_problem()
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

    async def _ledger_problem(self) -> str | None:
        """The text that fails the task when this triggerer's ledger is not its task's.

        The ledger's id is read once per process and ledger; while the ledger does not answer,
        the trigger waits for it (as its watcher would), a poll interval at a time.
        """
        if self.ledger_id is None:  # deferred by an earlier version
            return None
        import asyncio

        from sqlalchemy.exc import NotSupportedError, ProgrammingError

        from airflow_provider_smscn.delivery.pulling import db_error_text, transient_db_errors
        from airflow_provider_smscn.hooks.smscn import ledger_url, ledger_verdict
        from airflow_provider_smscn.ledger import SmsCnLedger
        from airflow_provider_smscn.ledger.checks import ledger_mismatch

        verdict = ledger_verdict()
        if not verdict.shared:  # this triggerer's own settings already say it (e.g. Celery + a file)
            return verdict.message()
        ledger = SmsCnLedger(ledger_url())
        fresh = False  # a cached id that differs is read again (the ledger may have been reset)
        while True:
            try:
                known = None if fresh else ledger.known_ledger_id()  # an earlier trigger's read: no I/O
                here = known if known is not None else await asyncio.to_thread(ledger.ledger_id, fresh)
            except (ProgrammingError, NotSupportedError) as err:  # e.g. permission denied: final
                return f"the smscn ledger {ledger.url_for_display} cannot be read: {db_error_text(err)}"
            except transient_db_errors() as err:
                self.log.warning("smscn: the ledger does not answer (%s); waiting for it", type(err).__name__)
                await asyncio.sleep(self.poll_interval)
                continue
            except Exception as err:  # no URL or statement in the text: it may hold a password
                return f"the smscn ledger {ledger.url_for_display} cannot be opened: {type(err).__name__}"
            if here != self.ledger_id and not fresh:
                fresh = True
                continue
            return ledger_mismatch(self.ledger_id, here, ledger.url_for_display)


# The event triggers (Airflow 3) live in triggers/events.py; importable from here as the issue names them.
from airflow_provider_smscn.triggers.events import SmsCnBalanceEventTrigger, SmsCnDeliveryEventTrigger  # noqa: E402,F401
