"""SmsCnDeliveryTrigger: waits for delivery reports in the triggerer, holding no worker slot."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import TYPE_CHECKING, Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_smscn.client.errors import SmsCnError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from airflow_provider_smscn.hooks.smscn import SmsCnHook

_HOOKS: dict[str, tuple[float, SmsCnHook]] = {}
_HOOKS_LOCK = threading.Lock()
#: Seconds a shared hook is kept before the Connection is read again (rotated secrets, new URL).
HOOK_MAX_AGE = 300.0


def shared_hook(smscn_conn_id: str) -> tuple[SmsCnHook, bool]:
    """One hook (one HTTP session, one ledger engine) per connection for all triggers of a process.

    A triggerer may run a thousand of these triggers: they share the client instead of each
    holding its own session and connection pool. Returns the hook and whether it was just built.
    """
    with _HOOKS_LOCK:
        built_at, hook = _HOOKS.get(smscn_conn_id, (0.0, None))
        if hook is not None and time.monotonic() - built_at < HOOK_MAX_AGE:
            return hook, False
        from airflow_provider_smscn.hooks.smscn import SmsCnHook

        hook = SmsCnHook(smscn_conn_id=smscn_conn_id)
        hook.client  # noqa: B018  (built under the lock, once)
        _HOOKS[smscn_conn_id] = (time.monotonic(), hook)
        return hook, True


def forget_hook(smscn_conn_id: str) -> None:
    """Drop the shared hook after an error: the next poll reads the Connection afresh."""
    with _HOOKS_LOCK:
        _HOOKS.pop(smscn_conn_id, None)


class SmsCnDeliveryTrigger(BaseTrigger):
    """Fire when every message id has a delivery report (delivered or not).

    Reports come from the ledger; a pull happens only when this trigger wins the account's pull
    lease, so a thousand triggers on one account still cause one ``ac=status`` pull per interval.

    :param mobileids: the message ids to wait for.
    :param smscn_conn_id: the sms.cn Connection.
    :param poll_interval: seconds between two looks at the ledger.
    :param pull_interval: seconds between two pulls of the account (default ``[smscn] pull_interval``).
    """

    def __init__(self, mobileids: list[str], smscn_conn_id: str = "smscn_default",
                 poll_interval: float = 5.0, pull_interval: float | None = None) -> None:
        super().__init__()
        self.mobileids = list(mobileids)
        self.smscn_conn_id = smscn_conn_id
        self.poll_interval = float(poll_interval)
        self.pull_interval = pull_interval

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_provider_smscn.triggers.smscn.SmsCnDeliveryTrigger",
            {
                "mobileids": self.mobileids,
                "smscn_conn_id": self.smscn_conn_id,
                "poll_interval": self.poll_interval,
                "pull_interval": self.pull_interval,
            },
        )

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow_provider_smscn.delivery import new_holder, report_payload

        holder = new_holder()
        wanted = set(self.mobileids)
        hook: SmsCnHook | None = None
        fresh = False
        while True:
            try:
                if hook is None:
                    built, fresh = await asyncio.to_thread(shared_hook, self.smscn_conn_id)
                    hook = built
                found = await asyncio.to_thread(hook.collect_reports, self.mobileids, holder,
                                                self.pull_interval)
            except SmsCnError as err:
                if not err.retriable and fresh:  # a Connection read just now is still refused: final
                    yield TriggerEvent({"status": "error", "message": str(err)})
                    return
                self.log.warning("Delivery check failed, trying again with the Connection read afresh: %s",
                                 err)
                forget_hook(self.smscn_conn_id)
                hook, found = None, {}
            if len(found) >= len(wanted):
                yield TriggerEvent(
                    {"status": "success", "reports": {mid: report_payload(r) for mid, r in found.items()}}
                )
                return
            await asyncio.sleep(self.poll_interval)
