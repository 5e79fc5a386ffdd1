"""Asset-watcher triggers: start a DAG when calls go undelivered, or when the balance runs low.

Thin pages over :mod:`airflow_provider_smscn.events`: the rules (pull lease, cursor claims,
crossings) live there, tested without Airflow. Both triggers run forever in the triggerer,
yielding one event per batch / per crossing; a check that fails is logged and tried again at
the next poll (an asset watcher must not die of a database blip or a rotated secret).

A check runs in a worker thread and may commit a claim after Airflow cancelled the trigger (it
moved it to another triggerer, or shuts down): the thread then gives the unsent batch or crossing
back when the check is done (the loop does not wait), so the next instance emits it.
"""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import contextlib
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn._compat import event_trigger_base, shared_stream_producer_base
from airflow_provider_smscn.client.errors import SmsCnError
from airflow_provider_smscn.delivery.pulling import with_fresh_connection
from airflow_provider_smscn.events.balance import BalanceWatch
from airflow_provider_smscn.events.delivery import MAX_BATCH, DeliveryWatch, check_result_codes, check_start
from airflow_provider_smscn.hooks.mixins import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Hashable, Sequence

    from airflow.triggers.base import BaseEventTrigger, TriggerEvent
    from airflow.triggers.shared_stream import AdvanceItem, SharedStreamProducer

    from airflow_provider_smscn.delivery.pulling import ReportSource
    from airflow_provider_smscn.events.delivery import BatchClaim

    _ProducerBase = SharedStreamProducer
else:
    BaseEventTrigger = event_trigger_base()
    _ProducerBase = shared_stream_producer_base() or object

log = logging.getLogger(__name__)

_EXECUTOR: concurrent.futures.ThreadPoolExecutor | None = None
_EXECUTOR_LOCK = threading.Lock()


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _EXECUTOR
    with _EXECUTOR_LOCK:
        if _EXECUTOR is None:
            _EXECUTOR = concurrent.futures.ThreadPoolExecutor(max_workers=8,
                                                              thread_name_prefix="smscn-events")
        return _EXECUTOR


def _hook(smscn_conn_id: str, fresh: bool) -> Any:
    from airflow_provider_smscn.triggers.smscn import shared_hook

    return shared_hook(smscn_conn_id, fresh=fresh)[0]


async def _checked(what: str, check: Callable[[], Any], give_back: Callable[[Any], None]) -> Any:
    """Run ``check()`` in a worker thread; on failure log it and return None (try at the next poll).

    Cancelled meanwhile: wait for the check and ``give_back(result)``, then let the cancel through.
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
    """``give_back(result)`` in the worker thread once the check is done; the loop does not wait.

    (Blocking the loop would stop every other trigger of the triggerer, and their claims' refreshes.)
    """
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


class SmsCnDeliveryEventTrigger(BaseEventTrigger):
    """Fire one event per batch of new delivery reports of an account that match a filter.

    For ``Asset(..., watchers=[AssetWatcher(name=..., trigger=SmsCnDeliveryEventTrigger(...))])``.
    No matching report is lost, however many triggerers run this watcher and across restarts and
    kills: a cursor in the ledger, moved past a batch once Airflow confirmed its event stored
    (Airflow 3.3+; ``events/delivery.py`` for 3.0-3.2). A batch sent again keeps its id:
    ``SmsCnHook.take_event_batches`` gives it to one DAG run. Pulls share the account's lease with
    every sensor and trigger, so no waiter loses a report.

    :param smscn_conn_id: the sms.cn Connection (its account's reports are watched).
    :param result_codes: the result codes to report (e.g. ``[131, 133]``); default every
        undelivered code (all but 100).
    :param name: a name for this watcher's cursor (two watchers with one name and filter share it).
    :param poll_interval: seconds between two looks at the ledger.
    :param pull_interval: seconds between two pulls of the account (default ``[smscn] pull_interval``).
    :param max_batch: reports per event at most.
    :param start: ``latest`` (a new watcher reports what is stored from now on) or ``earliest``.
    """

    def __init__(self, smscn_conn_id: str = DEFAULT_CONN_ID, result_codes: list[int] | None = None,
                 name: str = "", poll_interval: float = 5.0, pull_interval: float | None = None,
                 max_batch: int = MAX_BATCH, start: str = "latest") -> None:
        super().__init__()
        self.smscn_conn_id = smscn_conn_id
        self.result_codes = check_result_codes(result_codes)
        self.name = str(name)
        self.poll_interval = float(poll_interval)
        self.pull_interval = None if pull_interval is None else float(pull_interval)
        self.max_batch = int(max_batch)
        self.start = check_start(start)
        if self.poll_interval <= 0 or self.max_batch < 1:
            raise SmsCnError("poll_interval must be positive and max_batch at least 1")

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "smscn_conn_id": self.smscn_conn_id, "result_codes": self.result_codes, "name": self.name,
            "poll_interval": self.poll_interval, "pull_interval": self.pull_interval,
            "max_batch": self.max_batch, "start": self.start,
        })

    def _source(self, fresh: bool = False) -> ReportSource:
        return _hook(self.smscn_conn_id, fresh).delivery_source(self.pull_interval)  # type: ignore[no-any-return]

    def _watch(self, source: ReportSource) -> DeliveryWatch:
        codes = None if self.result_codes is None else frozenset(self.result_codes)
        return DeliveryWatch(source.account, codes, self.name, self.max_batch, self.start)

    def shared_stream_key(self) -> Hashable | None:
        """On Airflow 3.3+, run as a shared stream in ack mode (:class:`DeliveryBatchProducer`)."""
        if shared_stream_producer_base() is None:
            return None
        return ("smscn.delivery", json.dumps(self.serialize()[1], sort_keys=True))

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> DeliveryBatchProducer:
        return DeliveryBatchProducer(cls(**kwargs))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        from airflow.triggers.base import TriggerEvent

        async for payload in shared_stream:
            yield TriggerEvent(payload)
            # Airflow's runner asks for the next event only after it queued this one for storing.
            # A trigger cancelled in between (3.3's runner awaits a log call there) never gets here,
            # and Airflow would count its event as acknowledged: the producer checks this count.
            _HANDED_OVER[_batch_key(payload)] += 1

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Airflow 3.0-3.2 (no ack mode): claim a batch, then yield it (see events/delivery.py)."""
        from airflow.triggers.base import TriggerEvent

        from airflow_provider_smscn.delivery.reports import new_holder
        from airflow_provider_smscn.events.delivery import give_back, next_batch

        holder = new_holder()

        def attempt(fresh: bool) -> tuple[dict[str, Any] | None, bool]:
            source = self._source(fresh)
            return next_batch(source, self._watch(source), holder)

        def undo(found: tuple[dict[str, Any] | None, bool]) -> None:
            if found[0] is not None:
                give_back(self._source(), found[0], holder)

        while True:
            found = await _checked("watching delivery reports", lambda: with_fresh_connection(attempt), undo)
            payload, more = found if found is not None else (None, False)
            if payload is not None:
                yield TriggerEvent(payload)
            if not more:
                await asyncio.sleep(self.poll_interval)


class DeliveryBatchProducer(_ProducerBase):
    """Ack mode (Airflow 3.3+): claim batches, hand them to Airflow, move past each once Airflow stored it.

    Up to :data:`~airflow_provider_smscn.events.delivery.MAX_IN_FLIGHT` batches on their way at
    once; their claim in the ledger is refreshed while Airflow stores them. A triggerer killed or
    stopped before a confirmation leaves them to expire, and the next watcher sends them again
    (same batch ids: nothing is lost; a consumer taking batches by id,
    ``SmsCnHook.take_event_batches``, sees each once).
    """

    def __init__(self, trigger: SmsCnDeliveryEventTrigger) -> None:
        from airflow_provider_smscn.delivery.reports import new_holder

        self.trigger = trigger
        self.holder = new_holder()
        self.in_flight: list[BatchClaim] = []  # claimed and yielded, oldest first
        self._outcomes: collections.deque[tuple[BatchClaim, bool]] = collections.deque()  # to settle
        self._lock = asyncio.Lock()  # one ledger write of this producer at a time (they compare-and-set)
        self._wake = asyncio.Event()
        self._refreshed = time.monotonic()
        self.expiry = claim_expiry()

    async def open_stream(self) -> AsyncIterator[tuple[dict[str, Any], BatchClaim]]:
        from airflow_provider_smscn.events.delivery import MAX_IN_FLIGHT, claim_batch

        trigger = self.trigger

        def attempt(fresh: bool) -> tuple[list[tuple[dict[str, Any], BatchClaim]], bool]:
            source = trigger._source(fresh)
            return claim_batch(source, trigger._watch(source), self.holder, self.expiry)

        def undo(found: tuple[list[tuple[dict[str, Any], BatchClaim]], bool]) -> None:
            if found[0]:  # claimed as the watcher stopped: left expired, sent again by the next
                _settle_now(trigger, found[0][0][1], False)

        while True:
            await self._settle()  # outcomes whose ledger write failed before
            await self._refresh_if_due()
            if len(self.in_flight) >= MAX_IN_FLIGHT:
                await self._sleep(trigger.poll_interval)
                continue
            async with self._lock:
                found = await _checked("watching delivery reports",
                                       lambda: with_fresh_connection(attempt), undo)
            batches, more = found if found is not None else ([], False)
            self.in_flight += [claim for _, claim in batches]
            for payload, claim in batches:
                yield payload, claim
            if not batches and not more:
                await self._sleep(trigger.poll_interval)

    async def advance(self, batch: Sequence[AdvanceItem]) -> None:
        """Airflow stored (or gave up on) these events, in order: move past each, or send them again."""
        for item in batch:
            claim, outcome = item.broker_payload, item.outcome
            handed = _HANDED_OVER.pop(_claim_key(claim), 0)
            stored = outcome.failed == 0 and 0 < outcome.acked <= handed
            self._outcomes.append((claim, stored))
        await self._settle()

    async def aclose(self) -> None:
        """The stream ends with batches unconfirmed: left expired, the next watcher sends them now."""
        for claim in self.in_flight:
            _HANDED_OVER.pop(_claim_key(claim), None)
        if self.in_flight:
            self._outcomes.append((self.in_flight[0], False))
            await self._settle()

    async def _settle(self) -> None:
        from airflow_provider_smscn.events.delivery import settle_batch

        async with self._lock:
            while self._outcomes:
                claim, stored = self._outcomes[0]
                if claim not in self.in_flight:  # taken over, or left expired with the others
                    self._outcomes.popleft()
                    continue
                def settle(claim: BatchClaim = claim, stored: bool = stored) -> bool:  # in the worker thread
                    return settle_batch(self.trigger._source(), claim, stored)

                done = await _checked("settling a delivery batch", settle, _nothing)
                if done is None:  # the ledger failed: tried again at the next turn of the stream
                    return
                self._outcomes.popleft()
                if stored and done:
                    self.in_flight.remove(claim)
                else:  # all left expired (to be sent again by whoever looks next), or taken over
                    self.in_flight.clear()
                self._wake.set()

    async def _refresh_if_due(self) -> None:
        from airflow_provider_smscn.events.delivery import refresh_claim

        if not self.in_flight or time.monotonic() - self._refreshed < self.expiry / 3:
            return
        async with self._lock:
            claim = self.in_flight[0] if self.in_flight else None
            if claim is None:
                return
            alive = await _checked("refreshing delivery batch claims",
                                   lambda: refresh_claim(self.trigger._source(), claim), _nothing)
            if alive is None:
                return
            self._refreshed = time.monotonic()
            if not alive:
                log.warning("smscn: delivery batches of %s were taken over while Airflow stored their "
                            "events: they may reach the asset twice, under their batch ids", claim.watch_key)
                self.in_flight.clear()

    async def _sleep(self, seconds: float) -> None:
        """Sleep up to ``seconds``: less when a claim is due for a refresh, or a batch was settled."""
        self._wake.clear()
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._wake.wait(), min(seconds, self.expiry / 3))


def claim_expiry() -> float:
    """How long a watcher's claims outlive its last refresh: Airflow's own "triggerer is dead" threshold."""
    from airflow_provider_smscn._compat import conf
    from airflow_provider_smscn.events.delivery import CLAIM_EXPIRY, MIN_CLAIM_EXPIRY

    try:
        threshold = conf.getfloat("triggerer", "triggerer_health_check_threshold", fallback=CLAIM_EXPIRY)
    except (TypeError, ValueError):  # a setting that is not a number: Airflow's default
        threshold = CLAIM_EXPIRY
    return max(MIN_CLAIM_EXPIRY, float(threshold))


#: (watch key, batch id) -> how many subscribers' events Airflow's runner queued (see filter_shared_stream).
_HANDED_OVER: collections.Counter[tuple[str, str]] = collections.Counter()


def _batch_key(payload: dict[str, Any]) -> tuple[str, str]:
    return str(payload["watch"]), str(payload["batch"])


def _claim_key(claim: BatchClaim) -> tuple[str, str]:
    return claim.watch_key, f"{claim.after + 1}-{claim.upto}"


def _settle_now(trigger: SmsCnDeliveryEventTrigger, claim: BatchClaim, stored: bool) -> None:
    from airflow_provider_smscn.events.delivery import settle_batch

    settle_batch(trigger._source(), claim, stored)


def _nothing(_result: Any) -> None:
    """Nothing to give back: the call claimed nothing."""


class SmsCnBalanceEventTrigger(BaseEventTrigger):
    """Fire when the account's balance falls below ``threshold``: once per crossing.

    A new event only after the balance was seen at or above the threshold again. The balance is
    requested at most once per ``check_interval`` across every watcher (a lease in the ledger),
    and the above/below state is kept there too, so two triggerers agree.

    :param threshold: the balance under which the asset is told (balance units).
    :param smscn_conn_id: the sms.cn Connection.
    :param check_interval: seconds between two balance requests, across all watchers.
    :param name: a name for this watcher's state (two with one name and threshold share it).
    """

    def __init__(self, threshold: int, smscn_conn_id: str = DEFAULT_CONN_ID, check_interval: float = 300.0,
                 name: str = "") -> None:
        super().__init__()
        BalanceWatch("check", threshold, check_interval)  # bad input fails here, at DAG parse
        self.threshold = threshold
        self.smscn_conn_id = smscn_conn_id
        self.check_interval = float(check_interval)
        self.name = str(name)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}", {
            "threshold": self.threshold, "smscn_conn_id": self.smscn_conn_id,
            "check_interval": self.check_interval, "name": self.name,
        })

    async def run(self) -> AsyncIterator[TriggerEvent]:
        from airflow.triggers.base import TriggerEvent

        from airflow_provider_smscn.delivery.reports import new_holder
        from airflow_provider_smscn.events.balance import check_balance, give_back

        holder = new_holder()

        def balance() -> int:
            # the slot is taken once; a refused request is tried once more with the Connection read afresh
            return int(with_fresh_connection(lambda fresh: _hook(self.smscn_conn_id, fresh).get_balance()))

        def check() -> dict[str, Any] | None:
            hook = _hook(self.smscn_conn_id, False)
            watch = BalanceWatch(hook.account_key, self.threshold, self.check_interval, self.name)
            return check_balance(hook.ledger, watch, holder, balance)

        def undo(payload: dict[str, Any] | None) -> None:
            if payload is not None:
                give_back(_hook(self.smscn_conn_id, False).ledger, payload, holder)

        # Poll a few times per interval: the lease, not this loop, rations the requests.
        pause = max(1.0, min(self.check_interval / 4, 30.0))
        while True:
            payload = await _checked("checking the balance", check, undo)
            if payload is not None:
                yield TriggerEvent(payload)
            await asyncio.sleep(pause)
