"""Low-balance events: one check per interval across all watchers, one event per crossing.

* **At most one balance request per interval, however many watchers**: a check first wins a lease
  slot (the pull lease's conditional UPDATE, under the key ``balance:<digest>``), so two
  triggerers (or ten) make one ``ac=number`` request per interval between them.
* **One event per crossing**: the watcher's row in ``smscn_event_cursors`` holds ``above`` or
  ``below``. A balance under the threshold moves ``above -> below`` with a conditional UPDATE:
  only the instance whose write did it emits; later checks that still find it low emit nothing.
  A balance at or over the threshold moves it back to ``above`` (no event): the next fall emits
  again. A new watcher starts ``above``, so a balance already low when it starts is one event.

Airflow 3.3+ (ack mode, :func:`claim_crossing`): the crossing is claimed as ``sending:below``
and becomes ``below`` only once Airflow confirmed its event stored (:func:`settle_crossing`); a
triggerer that stops first leaves it to expire, and the next check sends it again under the same
``crossing`` id. Airflow 3.0-3.2 (:func:`check_balance`): swap, then yield; a process killed
between the swap's commit and the triggerer storing the event loses that one event. A trigger
cancelled while its check is in flight gives an unsent crossing back (:func:`give_back`).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.client.errors import SmsCnValidationError
from airflow_provider_smscn.delivery.pulling import ledger_errors
from airflow_provider_smscn.events.stream import CLAIM_EXPIRY
from airflow_provider_smscn.ledger.events import SENDING

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from airflow_provider_smscn.ledger import SmsCnLedger

log = logging.getLogger(__name__)

ABOVE, BELOW = "above", "below"
#: A crossing on its way into Airflow (ack mode); ``last_batch`` holds ``<balance>:<crossing id>``.
SENDING_BELOW = SENDING + BELOW


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
                  get_balance: Callable[[], int], now: float | None = None,
                  expiry: float = CLAIM_EXPIRY) -> dict[str, Any] | None:
    """Check if this instance wins the interval's slot; the event payload on a downward crossing.

    ``now`` replaces the ledger's clock for the slot (tests step it instead of sleeping).
    """
    with ledger_errors("checking the balance"):
        cursor = ledger.event_cursor(watch.key, state=ABOVE)
        if cursor.state == SENDING_BELOW:  # an ack-mode watcher's crossing: once it stopped, send it
            if not ledger.take_over_event_claim(watch.key, cursor, holder, expiry):
                return None
            balance, _crossing = _sending(cursor.last_batch)
            ledger.swap_event_state(watch.key, SENDING_BELOW, BELOW, holder, last_batch=str(balance),
                                    only_holder=True)
            return _payload(watch, balance, _crossing)
        if ledger.acquire_pull_slot(watch.key, holder, watch.interval, now) is None:
            return None
    balance = int(get_balance())
    with ledger_errors("recording the balance state"):
        if balance < watch.threshold:
            if not ledger.swap_event_state(watch.key, ABOVE, BELOW, holder, last_batch=str(balance)):
                return None  # still low since the last event, or another watcher just emitted it
            log.warning("smscn: balance %d fell below %d", balance, watch.threshold)
            return _payload(watch, balance, uuid.uuid4().hex[:16])
        if ledger.swap_event_state(watch.key, BELOW, ABOVE, holder, last_batch=str(balance)):
            log.info("smscn: balance %d is back at or above %d", balance, watch.threshold)
    return None


_SERIALS = itertools.count(1)


@dataclass(frozen=True)
class CrossingClaim:
    """A crossing on its way into Airflow (ack mode): sent again under ``crossing`` if not stored."""

    watch_key: str
    balance: int
    crossing: str
    holder: str
    serial: int = field(default_factory=lambda: next(_SERIALS))  # each hand-out its own claim


def claim_crossing(ledger: SmsCnLedger, watch: BalanceWatch, holder: str, get_balance: Callable[[], int],
                   expiry: float = CLAIM_EXPIRY, now: float | None = None,
                   tracked: Sequence[CrossingClaim] = ()
                   ) -> tuple[list[tuple[dict[str, Any], CrossingClaim]], bool, bool]:
    """Ack mode: check if this instance wins the interval's slot; claim a downward crossing.

    Returns (the crossing to send, if any, with its claim; False; sent again). The state becomes
    ``below`` only when Airflow confirmed the event stored (:func:`settle_crossing`). A crossing
    in flight that nobody is known to hold is taken over and sent again, same id: another
    holder's once not refreshed for ``expiry`` seconds, this holder's own at once if not ``tracked``.
    """
    with ledger_errors("checking the balance"):
        cursor = ledger.event_cursor(watch.key, state=ABOVE)
        if cursor.state == SENDING_BELOW:
            ours = cursor.holder == holder
            if ours and cursor.updated_at > 0 and tracked:
                return [], False, False  # ours, on its way
            if not ledger.take_over_event_claim(watch.key, cursor, holder, None if ours else expiry):
                return [], False, False
            balance, crossing = _sending(cursor.last_batch)
            log.warning("smscn: balance crossing %s is sent again: its event was not confirmed stored "
                        "before its watcher stopped", crossing)
            claim = CrossingClaim(watch.key, balance, crossing, holder)
            return [(_payload(watch, balance, crossing), claim)], False, True
        if ledger.acquire_pull_slot(watch.key, holder, watch.interval, now) is None:
            return [], False, False
    balance = int(get_balance())
    with ledger_errors("recording the balance state"):
        if balance < watch.threshold:
            crossing = uuid.uuid4().hex[:16]
            if not ledger.swap_event_state(watch.key, ABOVE, SENDING_BELOW, holder,
                                           last_batch=f"{balance}:{crossing}"):
                return [], False, False
            log.warning("smscn: balance %d fell below %d", balance, watch.threshold)
            claim = CrossingClaim(watch.key, balance, crossing, holder)
            return [(_payload(watch, balance, crossing), claim)], False, False
        if ledger.swap_event_state(watch.key, BELOW, ABOVE, holder, last_batch=str(balance)):
            log.info("smscn: balance %d is back at or above %d", balance, watch.threshold)
    return [], False, False


def settle_crossing(ledger: SmsCnLedger, claim: CrossingClaim, stored: bool) -> bool:
    """Airflow stored the crossing's event: ``below``. Not stored (or not known): left expired."""
    with ledger_errors("settling a balance crossing"):
        if not stored:
            return ledger.expire_event_claim(claim.watch_key, claim.holder)
        return ledger.swap_event_state(claim.watch_key, SENDING_BELOW, BELOW, claim.holder,
                                       last_batch=str(claim.balance), only_holder=True)


def abandon_crossing(ledger: SmsCnLedger, watch: BalanceWatch, holder: str) -> bool:
    """Leave a crossing ``holder`` still has in flight expired: the next check sends it again."""
    with ledger_errors("leaving a balance crossing"):
        return ledger.expire_event_claim(watch.key, holder)


def refresh_crossing(ledger: SmsCnLedger, claim: CrossingClaim) -> bool:
    """Keep a crossing's claim alive while Airflow stores its event; False if it was taken over."""
    with ledger_errors("refreshing a balance crossing"):
        return ledger.refresh_event_claim(claim.watch_key, claim.holder)


def _payload(watch: BalanceWatch, balance: int, crossing: str) -> dict[str, Any]:
    return {"watch": watch.key, "name": watch.name, "balance": balance, "threshold": watch.threshold,
            "crossing": crossing}


def _sending(last_batch: str) -> tuple[int, str]:
    balance, _, crossing = last_batch.partition(":")
    return int(balance), crossing or "unknown"


def give_back(ledger: SmsCnLedger, payload: dict[str, Any], holder: str) -> bool:
    """Undo a crossing whose event never reached Airflow: ``below`` -> ``above`` if it is still ours."""
    with ledger_errors("giving a crossing back"):
        return bool(ledger.swap_event_state(str(payload["watch"]), BELOW, ABOVE, holder, only_holder=True))
