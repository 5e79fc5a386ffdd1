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
from abc import abstractmethod
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from airflow_provider_smscn.client.errors import SmsCnError

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence

log = logging.getLogger(__name__)

ClaimT = TypeVar("ClaimT")
#: Seconds an in-flight event's claim lasts without its holder refreshing it (ack mode): after
#: that, its triggerer is taken for dead or frozen and another sends it again. The trigger
#: uses Airflow's ``[triggerer] triggerer_health_check_threshold`` (default 30 s) when it can read
#: it: a triggerer Airflow has given up on is given up on here too. Refreshed every third of it.
CLAIM_EXPIRY = 30.0
#: The shortest expiry taken from Airflow's setting (a refresh must fit well inside it).
MIN_CLAIM_EXPIRY = 6.0
#: id of a yielded payload -> how many subscribers' events Airflow's runner queued from it (see
#: :func:`handed_over`; the producer keeps the payload alive until Airflow reports its outcome).
_HANDED_OVER: collections.Counter[int] = collections.Counter()
#: id -> the payload itself, for every payload a producer yielded and awaits the outcome of: held,
#: so no other object takes its id meanwhile; a hand-over of anything else is not counted.
_YIELDED: dict[int, dict[str, Any]] = {}
_EXECUTORS: dict[str, concurrent.futures.ThreadPoolExecutor] = {}
_EXECUTOR_LOCK = threading.Lock()
#: Worker threads per pool: ``looks`` (pulls, reads, claims: may be slow) and ``claims`` (settles
#: and refreshes of claims in flight: short, and never to wait behind a slow look).
POOLS = {"looks": 8, "claims": 4}


def _executor(pool: str = "looks") -> concurrent.futures.ThreadPoolExecutor:
    with _EXECUTOR_LOCK:
        if pool not in _EXECUTORS:
            _EXECUTORS[pool] = concurrent.futures.ThreadPoolExecutor(
                max_workers=POOLS[pool], thread_name_prefix=f"smscn-{pool}")
        return _EXECUTORS[pool]


async def checked(what: str, check: Callable[[], Any], give_back: Callable[[Any], None],
                  pool: str = "looks") -> Any:
    """Run ``check()`` in a worker thread; on failure log it and return None (try at the next poll).

    Cancelled meanwhile: ``give_back(result)`` runs in the worker thread once the check is done
    (the loop does not wait: blocking it would stop every other trigger, and their refreshes).
    """
    future = _executor(pool).submit(check)
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


def handed_over(payload: object) -> None:
    """Airflow's runner came back for the next event: it queued the one made of ``payload``.

    Called by a trigger's ``filter_shared_stream`` right after its ``yield``, with the raw event
    it got (the very object the producer yielded). A trigger cancelled before (Airflow 3.3's
    runner awaits a log call between taking an event and queueing it) never gets there, while
    Airflow's shared stream counts its event as acknowledged: :meth:`AckedEvents.advance` moves
    past an event only if every acknowledgement is matched by a hand-over.
    """
    if _YIELDED.get(id(payload)) is payload:
        _HANDED_OVER[id(payload)] += 1


class AckedEvents(Generic[ClaimT]):
    """The producer of an ack-mode shared stream whose events are claims kept in the ledger.

    Subclasses say how to claim (:meth:`claim`), settle (:meth:`settle`) and refresh
    (:meth:`refresh`) in the ledger, each called in a worker thread. Up to ``max_in_flight`` events
    are on their way into Airflow at once, settled in order; their claims are refreshed every
    third of ``expiry`` by a task of their own (a long look must not let them expire).
    """

    what = "watching"

    def __init__(self, poll_interval: float, expiry: float, max_in_flight: int) -> None:
        self.poll_interval = poll_interval
        self.expiry = expiry
        self.max_in_flight = max_in_flight
        self.in_flight: list[ClaimT] = []  # claimed and yielded, oldest first
        self._yielded: dict[ClaimT, dict[str, Any]] = {}  # claim -> its payload, until its outcome
        self._outcomes: collections.deque[tuple[ClaimT, bool]] = collections.deque()  # to settle
        self._lock = asyncio.Lock()  # one ledger write of this producer at a time (they compare-and-set)
        self._wake = asyncio.Event()

    @abstractmethod
    def claim(self, fresh: bool, in_flight: list[ClaimT]
              ) -> tuple[list[tuple[dict[str, Any], ClaimT]], bool, bool]:
        """Claim what is next after ``in_flight``: (events with their claims, more to read at once,
        sent again: these are every event in flight, replacing ``in_flight``)."""

    @abstractmethod
    def settle(self, claim: ClaimT, stored: bool) -> bool:
        """Move past ``claim`` (stored), or leave every claim in flight expired; False if lost meanwhile."""

    @abstractmethod
    def refresh(self, claim: ClaimT) -> bool:
        """Keep the claims in flight alive; False if they were taken over."""

    @abstractmethod
    def abandon(self) -> bool:
        """Leave every claim this producer still has in the ledger expired; True if there were any."""

    async def open_stream(self) -> AsyncIterator[tuple[dict[str, Any], ClaimT]]:
        from airflow_provider_smscn.delivery.pulling import with_fresh_connection

        def undo(found: tuple[list[tuple[dict[str, Any], ClaimT]], bool, bool]) -> None:
            if found[0]:  # claimed as the watcher stopped: left expired, sent again by the next
                self.settle(found[0][0][1], False)

        refresher = asyncio.ensure_future(self._keep_refreshed())
        try:
            while True:
                await self._settle()  # outcomes whose ledger write failed before
                if len(self.in_flight) >= self.max_in_flight:
                    await self._sleep(self.poll_interval)
                    continue
                async with self._lock:
                    tracked = list(self.in_flight)

                    def look(tracked: list[ClaimT] = tracked) -> Any:  # in the worker thread
                        return with_fresh_connection(lambda fresh: self.claim(fresh, tracked))

                    found = await checked(self.what, look, undo)
                    events, more, again = found if found is not None else ([], False, False)
                    if again:
                        self._forget(self.in_flight)
                        self.in_flight = []
                    for payload, claim in events:
                        self.in_flight.append(claim)
                        self._yielded[claim] = payload
                        _YIELDED[id(payload)] = payload
                for payload, claim in events:
                    yield payload, claim
                if not events and not more:
                    await self._sleep(self.poll_interval)
        finally:
            refresher.cancel()

    async def advance(self, batch: Sequence[Any]) -> None:
        """Airflow stored (or gave up on) these events, in order: move past each, or send them again.

        ``batch``: Airflow's ``AdvanceItem``\\ s (``broker_payload``: the claim; ``outcome``: counts).
        """
        for item in batch:
            claim, outcome = item.broker_payload, item.outcome
            payload = self._yielded.pop(claim, None)
            handed = _HANDED_OVER.pop(id(payload), 0) if payload is not None else 0
            if payload is not None:
                _YIELDED.pop(id(payload), None)
            self._outcomes.append((claim, outcome.failed == 0 and 0 < outcome.acked <= handed))
        await self._settle()

    async def aclose(self) -> None:
        """The stream ends: outcomes known are settled, every claim still ours is left expired (the
        next watcher sends them now, not after the expiry)."""
        await self._settle()
        await checked(f"{self.what}: leaving claims", self.abandon, nothing, pool="claims")
        self._forget(list(self._yielded))
        self.in_flight = []

    def _forget(self, claims: list[ClaimT]) -> None:
        for claim in claims:
            payload = self._yielded.pop(claim, None)
            if payload is not None:
                _HANDED_OVER.pop(id(payload), None)
                _YIELDED.pop(id(payload), None)

    async def _settle(self) -> None:
        async with self._lock:
            while self._outcomes:
                claim, stored = self._outcomes[0]
                if claim not in self.in_flight:  # taken over, left expired with the others, or sent again
                    self._outcomes.popleft()
                    continue

                def settle(claim: ClaimT = claim, stored: bool = stored) -> bool:
                    done = self.settle(claim, stored)
                    if not done:  # not ours in the ledger any more, or not as we hold it: whatever of
                        self.abandon()  # it is still ours is left expired, for the next look to send
                    return done

                done = await checked(f"{self.what}: settling", settle, nothing, pool="claims")
                if done is None:  # the ledger failed: tried again at the next turn of the stream
                    return
                self._outcomes.popleft()
                if stored and done:
                    self.in_flight.remove(claim)
                else:  # all left expired, or not ours any more: the next look sends them again if ours
                    self._forget(self.in_flight)
                    self.in_flight = []
                self._wake.set()

    async def _keep_refreshed(self) -> None:
        """Refresh the claims in flight every third of the expiry, whatever a look is doing."""
        while True:
            await asyncio.sleep(self.expiry / 3)
            if not self.in_flight:
                continue
            claim = self.in_flight[0]

            def refresh(claim: ClaimT = claim) -> bool:
                return self.refresh(claim)

            alive = await checked(f"{self.what}: refreshing claims", refresh, nothing, pool="claims")
            if alive is not False:
                continue
            async with self._lock:
                if self.in_flight and self.in_flight[0] == claim:  # as it was when refreshed
                    log.warning("smscn: %s: claims taken over while Airflow stored their events: they "
                                "may reach the asset twice, under their ids", self.what)
                    self._forget(self.in_flight)
                    self.in_flight = []

    async def _sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``: less when a claim was settled."""
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), seconds)
