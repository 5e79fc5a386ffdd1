"""The ack-mode producer's logic, Airflow-free: what Airflow's shared stream calls, with a claim
store kept in memory. (tests/triggers/test_events.py drives the real thing through Airflow.)"""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace
from typing import Any

from airflow_provider_smscn.client.errors import SmsCnError
from airflow_provider_smscn.events.stream import AckedEvents, checked, handed_over


class Store(AckedEvents[int]):
    """Events 1, 2, 3, ... each claimed once; settles and refreshes recorded; a settle can fail."""

    what = "test stream"

    def __init__(self, max_in_flight: int = 3) -> None:
        super().__init__(poll_interval=0.01, expiry=30.0, max_in_flight=max_in_flight)
        self.next, self.settled, self.fail_settles, self.abandoned = 1, [], 0, 0

    def claim(self, fresh: bool, in_flight: list[int]) -> tuple[list[tuple[dict[str, Any], int]], bool, bool]:
        n, self.next = self.next, self.next + 1
        return [({"id": n}, n)], True, False

    def settle(self, claim: int, stored: bool) -> bool:
        if self.fail_settles:
            self.fail_settles -= 1
            raise SmsCnError("the ledger is away")
        self.settled.append((claim, stored))
        return True

    def refresh(self, claim: int) -> bool:
        return True

    def abandon(self) -> bool:
        self.abandoned += 1
        return True


def _item(claim: int, acked: int = 1, failed: int = 0) -> Any:
    return SimpleNamespace(broker_payload=claim, outcome=SimpleNamespace(acked=acked, failed=failed))


async def _take(stream: Any, count: int) -> list[int]:
    """Take ``count`` events as a subscriber does, telling each handed over (the runner queued it)."""
    claims = []
    for _ in range(count):
        payload, claim = await stream.__anext__()
        handed_over(payload)
        claims.append(claim)
    return claims


async def test_events_go_out_up_to_the_limit_and_are_moved_past_in_order() -> None:
    store = Store(max_in_flight=3)
    stream = store.open_stream()
    assert await _take(stream, 3) == [1, 2, 3]
    nxt = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.05)
    assert not nxt.done()  # three in flight: no fourth before Airflow confirms one
    await store.advance([_item(1), _item(2)])
    assert store.settled == [(1, True), (2, True)] and store.in_flight == [3]
    assert (await asyncio.wait_for(nxt, 5))[1] == 4
    await stream.aclose()


async def test_an_event_airflow_acknowledged_but_its_runner_never_queued_is_sent_again() -> None:
    store = Store()
    stream = store.open_stream()
    await stream.__anext__()  # not handed over: cancelled between the runner taking and queueing it
    await store.advance([_item(1)])
    assert store.settled == [(1, False)] and store.in_flight == []  # left expired: sent again
    await stream.aclose()


async def test_a_settle_the_ledger_refused_is_tried_again_and_the_stop_leaves_the_rest_expired() -> None:
    store = Store()
    stream = store.open_stream()
    await _take(stream, 2)
    store.fail_settles = 1
    await store.advance([_item(1)])
    assert store.settled == [] and store.in_flight == [1, 2]  # not moved past: kept to try again
    await _take(stream, 1)  # the stream's next turn settles it first
    assert store.settled == [(1, True)] and store.in_flight == [2, 3]
    await store.aclose()  # the triggerer stops with 2 and 3 unconfirmed
    assert store.settled == [(1, True)] and store.abandoned == 1 and store.in_flight == []
    await stream.aclose()


async def test_a_check_cancelled_midway_gives_back_from_its_thread_without_holding_the_loop() -> None:
    started, release, given = threading.Event(), threading.Event(), threading.Event()

    def check() -> str:
        started.set()
        release.wait(10)
        return "claim"

    task = asyncio.ensure_future(checked("test", check, lambda result: given.set() if result else None))
    await asyncio.to_thread(started.wait, 10)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert not given.is_set()  # the loop went on at once, the check still running
    release.set()
    assert await asyncio.to_thread(given.wait, 10)


async def test_claims_are_refreshed_while_a_long_look_runs() -> None:
    """A look that pulls a backlog for longer than a claim lasts must not let the claims in
    flight expire: the refresh has its own timer."""
    release = threading.Event()
    refreshed: list[int] = []

    class Slow(Store):
        def claim(self, fresh: bool, in_flight: list[int]
                  ) -> tuple[list[tuple[dict[str, Any], int]], bool, bool]:
            if self.next > 1:
                release.wait(10)  # the second look: a long pull turn
            return super().claim(fresh, in_flight)

        def refresh(self, claim: int) -> bool:
            refreshed.append(claim)
            return True

    store = Slow()
    store.expiry = 0.3  # refreshed every 0.1 s
    stream = store.open_stream()
    await _take(stream, 1)
    nxt = asyncio.ensure_future(stream.__anext__())
    await asyncio.sleep(0.5)
    assert refreshed and set(refreshed) == {1}  # refreshed while the look was stuck
    release.set()
    await asyncio.wait_for(nxt, 5)
    await stream.aclose()
