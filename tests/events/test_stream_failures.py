"""The ack-mode producer against failures between its steps: a reply lost after a commit, a refresh
racing a look, a hand-over after its payload was forgotten, a stop right after an expiry (found by
review; each failed before its fix). Airflow-free, on a real ledger where it matters."""

from __future__ import annotations

import asyncio
import threading
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_smscn.client.errors import SmsCnError
from airflow_provider_smscn.delivery import new_holder
from airflow_provider_smscn.events.delivery import (
    BatchClaim,
    DeliveryWatch,
    claim_batch,
    refresh_claim,
    settle_batch,
)
from airflow_provider_smscn.events.stream import _HANDED_OVER, AckedEvents, handed_over
from tests.events.test_stream import Store, _item, _take
from tests.support.report_sources import make_source, send

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_smscn.sandbox import Sandbox

HOUR = 3600.0


class LedgerProducer(AckedEvents[BatchClaim]):
    """The DeliveryBatchProducer's three calls on a real ledger; the first settle commits, then
    its reply is lost (raises), like a connection dropped after COMMIT."""

    def __init__(self, source: Any, watch: DeliveryWatch) -> None:
        super().__init__(poll_interval=0.01, expiry=HOUR, max_in_flight=3)
        self.source, self.watch, self.holder = source, watch, new_holder()
        self.lose_reply = 1

    def claim(self, fresh: bool, in_flight: list[BatchClaim]) -> Any:
        return claim_batch(self.source, self.watch, self.holder, self.expiry, in_flight)

    def settle(self, claim: BatchClaim, stored: bool) -> bool:
        done = settle_batch(self.source, claim, stored)
        if self.lose_reply:
            self.lose_reply -= 1
            raise SmsCnError("server closed the connection after COMMIT")
        return done

    def refresh(self, claim: BatchClaim) -> bool:
        return refresh_claim(self.source, claim)

    def abandon(self) -> bool:
        from airflow_provider_smscn.events.delivery import abandon_claims
        return abandon_claims(self.source, self.watch, self.holder)


@pytest.mark.smscn_sandbox(report_delay=0)
async def test_a_settle_whose_reply_was_lost_still_leaves_the_rest_to_the_next_triggerer_at_a_stop(
        smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=1, start="earliest")
    await asyncio.to_thread(send, smscn_sandbox, 3)
    p = LedgerProducer(source, watch)
    stream = p.open_stream()
    claims = await _take(stream, 3)
    await p.advance([_item(claims[0])])  # committed in the ledger, reply lost: kept to retry
    await stream.aclose()
    await p.aclose()  # Airflow's poll ends: the rest should be left expired for the next triggerer
    other = await asyncio.to_thread(claim_batch, source, watch, new_holder(), HOUR)
    source.ledger.dispose()
    assert [p["batch"] for p, _ in other[0]] == ["2-2", "3-3"]  # sent again at once by another triggerer


@pytest.mark.smscn_sandbox(report_delay=0)
async def test_a_settle_whose_reply_was_lost_is_not_taken_for_a_take_over(
        smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=1, start="earliest")
    await asyncio.to_thread(send, smscn_sandbox, 3)
    p = LedgerProducer(source, watch)
    stream = p.open_stream()
    claims = await _take(stream, 3)
    await p.advance([_item(claims[0])])  # committed, reply lost: tried again at the next turn
    nxt = asyncio.ensure_future(stream.__anext__())  # the next turn: nothing new to send
    for _ in range(500):
        if p.in_flight == claims[1:]:
            break
        await asyncio.sleep(0.01)
    cursor = source.ledger.event_cursor(watch.key)
    nxt.cancel()
    await asyncio.gather(nxt, return_exceptions=True)
    await p.aclose()
    source.ledger.dispose()
    assert (cursor.position, cursor.last_batch) == (claims[0].upto, f"{claims[1].upto},{claims[2].upto}")


async def test_a_refresh_refused_for_old_claims_does_not_drop_the_ones_a_look_just_took() -> None:
    armed, refresh_started, refresh_go = threading.Event(), threading.Event(), threading.Event()
    look_started, look_go = threading.Event(), threading.Event()

    class Racy(Store):
        def __init__(self) -> None:
            super().__init__(max_in_flight=3)
            self.expiry = 0.03

        def refresh(self, claim: int) -> bool:
            if armed.is_set() and not refresh_started.is_set():
                refresh_started.set()
                refresh_go.wait(10)
                return False  # e.g. the row was just expired by this producer's own settle(False)
            return True

        def claim(self, fresh: bool, in_flight: list[int]) -> Any:
            if self.next == 1:
                return super().claim(fresh, in_flight)
            look_started.set()
            look_go.wait(10)
            return [({"id": 10}, 10), ({"id": 11}, 11)], True, True  # took its row back: sent again

    store = Racy()
    stream = store.open_stream()
    assert await _take(stream, 1) == [1]
    armed.set()
    assert await asyncio.to_thread(refresh_started.wait, 10)
    nxt = asyncio.ensure_future(stream.__anext__())
    assert await asyncio.to_thread(look_started.wait, 10)
    refresh_go.set()  # the refresh says False; in_flight[0] is still 1: the refresher waits the lock
    await asyncio.sleep(0.05)
    look_go.set()
    payload, _ = await asyncio.wait_for(nxt, 5)
    handed_over(payload)
    await asyncio.sleep(0.05)
    await store.advance([_item(10)])
    await stream.aclose()
    assert (10, True) in store.settled, "Airflow stored event 10, the producer never moved past it"


async def test_a_hand_over_of_a_forgotten_payload_leaves_no_count_behind() -> None:
    class Refuses(Store):
        def settle(self, claim: int, stored: bool) -> bool:
            self.settled.append((claim, stored))
            return claim != 1  # batch 1's settle lost to a take-over: every claim in flight forgotten

    store = Refuses()
    stream = store.open_stream()
    (p1, _), (p2, _) = await stream.__anext__(), await stream.__anext__()
    handed_over(p1)
    await store.advance([_item(1)])  # forgets 1 and 2; 2 still sits in a subscriber's queue
    handed_over(p2)  # the subscriber reaches it now
    leaked = id(p2)
    await stream.aclose()
    await store.aclose()
    del p2
    assert leaked not in _HANDED_OVER, "a count stays under an id CPython reuses for the next payload"


async def test_an_unqueued_event_is_never_counted_on_another_payloads_hand_over() -> None:
    class Refuses(Store):
        def __init__(self) -> None:
            super().__init__(max_in_flight=3)
            self.refuse = {1}

        def settle(self, claim: int, stored: bool) -> bool:
            self.settled.append((claim, stored))
            return claim not in self.refuse

    _HANDED_OVER.clear()
    store = Refuses()
    stream = store.open_stream()
    (p1, _), (p2, _) = await stream.__anext__(), await stream.__anext__()
    handed_over(p1)
    await store.advance([_item(1)])  # 1's settle lost: 1 and 2 forgotten
    handed_over(p2)  # a subscriber reaches 2 now: counted under id(p2), never popped
    leaked = id(p2)
    del p1, p2
    hit = None
    for _ in range(300):  # later events, none queued by a runner (each cancelled in the gap)
        payload, claim = await stream.__anext__()
        reused = id(payload) == leaked
        del payload
        await store.advance([_item(claim)])
        if reused:
            hit = claim
            break
    await stream.aclose()
    assert hit is None or (hit, True) not in store.settled, "moved past an event no runner queued"


def test_a_crossing_sent_again_is_another_claim(tmp_path: Path) -> None:
    from airflow_provider_smscn.events.balance import BalanceWatch, claim_crossing, settle_crossing
    from airflow_provider_smscn.ledger import SmsCnLedger

    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    watch = BalanceWatch("acct", threshold=1000, interval=60)
    [(_, claim)] = claim_crossing(ledger, watch, "w1", lambda: 300, HOUR, now=7_000_000)[0]
    assert settle_crossing(ledger, claim, stored=False)  # Airflow did not store copy 1
    [(_, again)] = claim_crossing(ledger, watch, "w1", lambda: 300, HOUR, now=7_000_010)[0]
    ledger.dispose()
    assert again != claim, "the refresher's guard (in_flight[0] == claim) cannot tell hand-outs apart"


async def test_refreshes_do_not_wait_behind_slow_looks_of_other_watchers() -> None:
    from airflow_provider_smscn.events.stream import checked, nothing

    release = threading.Event()
    looks = [asyncio.ensure_future(checked("other watcher look", lambda: release.wait(10), nothing))
             for _ in range(8)]
    refreshed = threading.Event()
    refresh = asyncio.ensure_future(checked("refreshing claims", refreshed.set, nothing, pool="claims"))
    await asyncio.wait_for(asyncio.shield(refresh), 30)  # done while every look thread is still busy
    assert refreshed.is_set() and not all(look.done() for look in looks)
    release.set()
    await asyncio.gather(refresh, *looks)


def test_a_stored_settle_after_an_expiry_leaves_the_rest_expired(tmp_path: Path) -> None:
    from airflow_provider_smscn.ledger import SmsCnLedger

    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    key = "delivery:x"
    c0 = ledger.event_cursor(key, start=0)
    assert ledger.claim_event_batch(key, c0, 5, "h", HOUR)
    assert ledger.claim_event_batch(key, ledger.event_cursor(key), 9, "h", HOUR)
    assert ledger.expire_event_claim(key, "h")  # a cancelled look's give-back, from its thread
    assert ledger.settle_event_batch(key, 0, 5, "h", stored=True)  # the pump's advance, just after
    row = ledger.event_cursor(key)
    ledger.dispose()
    assert row.updated_at == 0.0, "batch (5, 9] is no longer expired: others wait a full expiry"
