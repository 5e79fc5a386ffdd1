"""Events handed to Airflow in ack mode, and the worker-thread checks behind them. Airflow-free.

Airflow 3.3's shared streams in "ack mode" (``airflow/triggers/shared_stream.py``) tell a
producer, through ``advance()``, which of its events Airflow stored. :class:`AckedEvents` is that
producer's logic for a claim kept in the ledger: claim an event's content (so two triggerers do
not both send it), hand it to Airflow, and only once Airflow stored it move past it; an event
not stored, or not known to be (a shutdown before the confirmation), is left expired for
whoever looks next to send again under the same id. The trigger module adds Airflow's base class.

Every ledger or vendor call runs in a worker thread (:func:`checked`): the triggerer's event loop
serves every trigger of the process and must never wait on a database.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import logging
import threading
import time
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from airflow_provider_smscn.client.errors import SmsCnError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Hashable, Sequence

log = logging.getLogger(__name__)

ClaimT = TypeVar("ClaimT")
#: Seconds an in-flight event's claim lasts without its holder refreshing it (ack mode): after
#: that, its triggerer is taken for dead or frozen and another sends it again. The trigger
#: uses Airflow's ``[triggerer] triggerer_health_check_threshold`` (default 30 s) when it can read
#: it: a triggerer Airflow has given up on is given up on here too. Refreshed every third of it.
CLAIM_EXPIRY = 30.0
#: The shortest expiry taken from Airflow's setting (a refresh must fit well inside it).
MIN_CLAIM_EXPIRY = 6.0
#: (stream, event id) -> how many subscribers' events Airflow's runner queued (see :func:`handed_over`).
_HANDED_OVER: collections.Counter[Hashable] = collections.Counter()
_EXECUTOR: concurrent.futures.ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = concurrent.futures.ThreadPoolExecutor(max_workers=8,
                                                              thread_name_prefix="smscn-events")
        return _EXECUTOR


async def checked(what: str, check: Callable[[], Any], give_back: Callable[[Any], None]) -> Any:
    """Run ``check()`` in a worker thread; on failure log it and return None (try at the next poll).

    Cancelled meanwhile: ``give_back(result)`` runs in the worker thread once the check is done
    (the loop does not wait: blocking it would stop every other trigger, and their refreshes).
    """
    future = _executor().submit(check)
    try:
        return await asyncio.wrap_future(future)
    except asyncio.CancelledError:
        _give_back_when_done(what, future, give_back)
        raise
    except SmsCnError as err:
        log.warning("smscn: %s failed, trying again at the next poll: %s", what, err)
    except Exception:  # an unknown Connection, a bug: the log says it, the watcher stays up
        log.exception("smscn: %s failed, trying again at the next poll", what)
    return None


def _give_back_when_done(what: str, future: concurrent.futures.Future[Any],
                         give_back: Callable[[Any], None]) -> None:
    def done(finished: concurrent.futures.Future[Any]) -> None:
        if finished.cancelled() or finished.exception() is not None:  # never ran, or failed: nothing claimed
            return
        try:
            give_back(finished.result())
        except Exception:
            log.exception("smscn: %s: a claim made as the trigger was cancelled could not be given back",
                          what)

    if future.done():
        _executor().submit(done, future)
    else:
        future.add_done_callback(done)


def nothing(_result: Any) -> None:
    """Nothing to give back: the call claimed nothing."""


def handed_over(key: Hashable) -> None:
    """Airflow's runner came back for the next event: it queued the one with ``key`` for storing.

    Called by a trigger's ``filter_shared_stream`` right after its ``yield``. A trigger cancelled
    before (Airflow 3.3's runner awaits a log call between taking an event and queueing it) never
    gets there, while Airflow's shared stream counts its event as acknowledged: :meth:`AckedEvents.advance`
    moves past an event only if every acknowledgement is matched by a hand-over.
    """
    _HANDED_OVER[key] += 1


class AckedEvents(Generic[ClaimT]):
    """The producer of an ack-mode shared stream whose events are claims kept in the ledger.

    Subclasses say how to claim (:meth:`claim`), settle (:meth:`settle`) and refresh
    (:meth:`refresh`) in the ledger, each called in a worker thread. Up to ``max_in_flight`` events
    are on their way into Airflow at once, settled in order; their claims are refreshed every
    third of ``expiry`` while Airflow stores them.
    """

    what = "watching"

    def __init__(self, poll_interval: float, expiry: float, max_in_flight: int) -> None:
        self.poll_interval = poll_interval
        self.expiry = expiry
        self.max_in_flight = max_in_flight
        self.in_flight: list[ClaimT] = []  # claimed and yielded, oldest first
        self._outcomes: collections.deque[tuple[ClaimT, bool]] = collections.deque()  # to settle
        self._lock = asyncio.Lock()  # one ledger write of this producer at a time (they compare-and-set)
        self._wake = asyncio.Event()
        self._refreshed = time.monotonic()

    @abstractmethod
    def claim(self, fresh: bool) -> tuple[list[tuple[dict[str, Any], ClaimT]], bool]:
        """Claim what is next: (events with their claims, more to read at once)."""

    @abstractmethod
    def settle(self, claim: ClaimT, stored: bool) -> bool:
        """Move past ``claim`` (stored), or leave every claim in flight expired; False if lost meanwhile."""

    @abstractmethod
    def refresh(self, claim: ClaimT) -> bool:
        """Keep the claims in flight alive; False if they were taken over."""

    @abstractmethod
    def key(self, claim: ClaimT) -> Hashable:
        """The key :func:`handed_over` is told for this claim's event."""

    async def open_stream(self) -> AsyncIterator[tuple[dict[str, Any], ClaimT]]:
        def undo(found: tuple[list[tuple[dict[str, Any], ClaimT]], bool]) -> None:
            if found[0]:  # claimed as the watcher stopped: left expired, sent again by the next
                self.settle(found[0][0][1], False)

        while True:
            await self._settle()  # outcomes whose ledger write failed before
            await self._refresh_if_due()
            if len(self.in_flight) >= self.max_in_flight:
                await self._sleep(self.poll_interval)
                continue
            async with self._lock:
                found = await checked(self.what, self._claim_fresh, undo)
            events, more = found if found is not None else ([], False)
            self.in_flight += [claim for _, claim in events]
            for payload, claim in events:
                yield payload, claim
            if not events and not more:
                await self._sleep(self.poll_interval)

    def _claim_fresh(self) -> tuple[list[tuple[dict[str, Any], ClaimT]], bool]:
        from airflow_provider_smscn.delivery.pulling import with_fresh_connection

        return with_fresh_connection(self.claim)  # type: ignore[no-any-return]

    async def advance(self, batch: Sequence[Any]) -> None:
        """Airflow stored (or gave up on) these events, in order: move past each, or send them again.

        ``batch``: Airflow's ``AdvanceItem``\\ s (``broker_payload``: the claim; ``outcome``: counts).
        """
        for item in batch:
            claim, outcome = item.broker_payload, item.outcome
            handed = _HANDED_OVER.pop(self.key(claim), 0)
            self._outcomes.append((claim, outcome.failed == 0 and 0 < outcome.acked <= handed))
        await self._settle()

    async def aclose(self) -> None:
        """The stream ends with events unconfirmed: left expired, the next watcher sends them now."""
        for claim in self.in_flight:
            _HANDED_OVER.pop(self.key(claim), None)
        if self.in_flight:
            self._outcomes.append((self.in_flight[0], False))
            await self._settle()

    async def _settle(self) -> None:
        async with self._lock:
            while self._outcomes:
                claim, stored = self._outcomes[0]
                if claim not in self.in_flight:  # taken over, or left expired with the others
                    self._outcomes.popleft()
                    continue

                def settle(claim: ClaimT = claim, stored: bool = stored) -> bool:
                    return self.settle(claim, stored)

                done = await checked(f"{self.what}: settling", settle, nothing)
                if done is None:  # the ledger failed: tried again at the next turn of the stream
                    return
                self._outcomes.popleft()
                if stored and done:
                    self.in_flight.remove(claim)
                else:  # all left expired (to be sent again by whoever looks next), or taken over
                    self.in_flight.clear()
                self._wake.set()

    async def _refresh_if_due(self) -> None:
        if not self.in_flight or time.monotonic() - self._refreshed < self.expiry / 3:
            return
        async with self._lock:
            if not self.in_flight:
                return
            claim = self.in_flight[0]
            alive = await checked(f"{self.what}: refreshing claims", lambda: self.refresh(claim), nothing)
            if alive is None:
                return
            self._refreshed = time.monotonic()
            if not alive:
                log.warning("smscn: %s: claims taken over while Airflow stored their events: they may "
                            "reach the asset twice, under their ids", self.what)
                self.in_flight.clear()

    async def _sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``: less when claims are due for a refresh, or one was settled."""
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), min(seconds, self.expiry / 3))
