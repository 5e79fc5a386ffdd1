"""Low-balance events: one check per interval across all watchers, one event per crossing.

* **At most one balance request per interval, however many watchers**: a check first wins a lease
  slot (the pull lease's conditional UPDATE, under the key ``balance:<digest>``), so two
  triggerers (or ten) make one ``ac=number`` request per interval between them.
* **One event per crossing**: the watcher's row in ``smscn_event_cursors`` holds ``above`` or
  ``below``. A balance under the threshold moves ``above -> below`` with a conditional UPDATE:
  only the instance whose write did it emits; later checks that still find it low emit nothing.
  A balance at or over the threshold moves it back to ``above`` (no event): the next fall emits
  again. A new watcher starts ``above``, so a balance already low when it starts is one event.

A trigger cancelled while its check is in flight gives an unsent crossing back (:func:`give_back`).
The same window as delivery events is left: a process killed between the swap's commit and the
triggerer persisting the event loses that one event (the next crossing is emitted again).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.client.errors import SmsCnValidationError
from airflow_provider_smscn.delivery.pulling import ledger_errors

if TYPE_CHECKING:
    from collections.abc import Callable

    from airflow_provider_smscn.ledger import SmsCnLedger

log = logging.getLogger(__name__)

ABOVE, BELOW = "above", "below"


@dataclass(frozen=True)
class BalanceWatch:
    """An account's balance against ``threshold``, checked at most once per ``interval`` seconds."""

    account: str
    threshold: int
    interval: float
    name: str = ""

    def __post_init__(self) -> None:
        if isinstance(self.threshold, bool) or not isinstance(self.threshold, int) or self.threshold < 1:
            raise SmsCnValidationError(f"threshold must be a positive integer, not {self.threshold!r}")
        if not isinstance(self.interval, (int, float)) or not self.interval >= 1:
            raise SmsCnValidationError(f"check_interval must be at least 1 second, not {self.interval!r}")

    @property
    def key(self) -> str:
        text = f"{self.account}\x1f{self.threshold}\x1f{self.name}"
        return "balance:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]


def check_balance(ledger: SmsCnLedger, watch: BalanceWatch, holder: str,
                  get_balance: Callable[[], int], now: float | None = None) -> dict[str, Any] | None:
    """Check if this instance wins the interval's slot; the event payload on a downward crossing.

    ``now`` replaces the ledger's clock for the slot (tests step it instead of sleeping).
    """
    with ledger_errors("checking the balance"):
        if ledger.acquire_pull_slot(watch.key, holder, watch.interval, now) is None:
            return None
        ledger.event_cursor(watch.key, state=ABOVE)
    balance = int(get_balance())
    with ledger_errors("recording the balance state"):
        if balance < watch.threshold:
            if not ledger.swap_event_state(watch.key, ABOVE, BELOW, holder, last_batch=str(balance)):
                return None  # still low since the last event, or another watcher just emitted it
            log.warning("smscn: balance %d fell below %d", balance, watch.threshold)
            return {"watch": watch.key, "name": watch.name, "balance": balance, "threshold": watch.threshold}
        if ledger.swap_event_state(watch.key, BELOW, ABOVE, holder, last_batch=str(balance)):
            log.info("smscn: balance %d is back at or above %d", balance, watch.threshold)
    return None


def give_back(ledger: SmsCnLedger, payload: dict[str, Any], holder: str) -> bool:
    """Undo a crossing whose event never reached Airflow: ``below`` -> ``above`` if it is still ours."""
    with ledger_errors("giving a crossing back"):
        return bool(ledger.swap_event_state(str(payload["watch"]), BELOW, ABOVE, holder, only_holder=True))
