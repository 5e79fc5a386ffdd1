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
import json
import logging
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn._compat import event_trigger_base, shared_stream_producer_base
from airflow_provider_smscn.client.errors import SmsCnError
from airflow_provider_smscn.delivery.pulling import with_fresh_connection
from airflow_provider_smscn.events.balance import BalanceWatch
from airflow_provider_smscn.events.delivery import MAX_BATCH, DeliveryWatch, check_result_codes, check_start
from airflow_provider_smscn.events.stream import AckedEvents, checked, handed_over
from airflow_provider_smscn.hooks.mixins import DEFAULT_CONN_ID

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Hashable

    from airflow.triggers.base import BaseEventTrigger, TriggerEvent
    from airflow.triggers.shared_stream import SharedStreamProducer

    from airflow_provider_smscn.delivery.pulling import ReportSource
    from airflow_provider_smscn.events.balance import CrossingClaim
    from airflow_provider_smscn.events.delivery import BatchClaim

    _ProducerBase = SharedStreamProducer
else:
    BaseEventTrigger = event_trigger_base()
    _ProducerBase = shared_stream_producer_base() or object

log = logging.getLogger(__name__)

def _hook(smscn_conn_id: str, fresh: bool) -> Any:
    from airflow_provider_smscn.triggers.smscn import shared_hook

    return shared_hook(smscn_conn_id, fresh=fresh)[0]


class _AckedStream:
    """Airflow 3.3+: the trigger runs as a shared stream in ack mode (its producer claims the events).

    One stream per distinct set of kwargs; before 3.3 (no ``SharedStreamProducer``) the key is None
    and Airflow runs the trigger's ``run()``.
    """

    serialize: Callable[[], tuple[str, dict[str, Any]]]

    def shared_stream_key(self) -> Hashable | None:
        if shared_stream_producer_base() is None:
            return None
        return (type(self).__qualname__, json.dumps(self.serialize()[1], sort_keys=True))

    async def filter_shared_stream(self, shared_stream: AsyncIterator[Any]) -> AsyncIterator[TriggerEvent]:
        from airflow.triggers.base import TriggerEvent

        async for payload in shared_stream:
            yield TriggerEvent(payload)
            handed_over(payload)  # the runner came back for more: it queued this one for storing


class SmsCnDeliveryEventTrigger(_AckedStream, BaseEventTrigger):
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

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> DeliveryBatchProducer:
        return DeliveryBatchProducer(cls(**kwargs))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Airflow 3.0-3.2 (no ack mode): claim a batch, then yield it (see events/delivery.py)."""
        from airflow.triggers.base import TriggerEvent

        from airflow_provider_smscn.delivery.reports import new_holder
        from airflow_provider_smscn.events.delivery import give_back, next_batch

        holder, expiry = new_holder(), claim_expiry()

        def attempt(fresh: bool) -> tuple[dict[str, Any] | None, bool]:
            source = self._source(fresh)
            return next_batch(source, self._watch(source), holder, expiry)

        def undo(found: tuple[dict[str, Any] | None, bool]) -> None:
            if found[0] is not None:
                give_back(self._source(), found[0], holder)

        while True:
            found = await checked("watching delivery reports", lambda: with_fresh_connection(attempt), undo)
            payload, more = found if found is not None else (None, False)
            if payload is not None:
                yield TriggerEvent(payload)
            if not more:
                await asyncio.sleep(self.poll_interval)


class DeliveryBatchProducer(AckedEvents["BatchClaim"], _ProducerBase):
    """Ack mode (Airflow 3.3+): claim batches, hand them to Airflow, move past each once Airflow stored it.

    The logic is :class:`~airflow_provider_smscn.events.stream.AckedEvents`'; the ledger's side is
    ``events/delivery.py`` (:func:`claim_batch`, :func:`settle_batch`, :func:`refresh_claim`).
    """

    what = "watching delivery reports"

    def __init__(self, trigger: SmsCnDeliveryEventTrigger) -> None:
        from airflow_provider_smscn.delivery.reports import new_holder
        from airflow_provider_smscn.events.delivery import MAX_IN_FLIGHT

        super().__init__(trigger.poll_interval, claim_expiry(), MAX_IN_FLIGHT)
        self.trigger = trigger
        self.holder = new_holder()

    def claim(self, fresh: bool, in_flight: list[BatchClaim]
              ) -> tuple[list[tuple[dict[str, Any], BatchClaim]], bool, bool]:
        from airflow_provider_smscn.events.delivery import claim_batch

        source = self.trigger._source(fresh)
        return claim_batch(source, self.trigger._watch(source), self.holder, self.expiry, in_flight)

    def settle(self, claim: BatchClaim, stored: bool) -> bool:
        from airflow_provider_smscn.events.delivery import settle_batch

        return settle_batch(self.trigger._source(), claim, stored)

    def refresh(self, claim: BatchClaim) -> bool:
        from airflow_provider_smscn.events.delivery import refresh_claim

        return refresh_claim(self.trigger._source(), claim)

    def abandon(self) -> bool:
        from airflow_provider_smscn.events.delivery import abandon_claims

        source = self.trigger._source()
        return abandon_claims(source, self.trigger._watch(source), self.holder)


def claim_expiry() -> float:
    """How long a watcher's claims outlive its last refresh: Airflow's own "triggerer is dead" threshold."""
    from airflow_provider_smscn._compat import conf
    from airflow_provider_smscn.events.stream import CLAIM_EXPIRY, MIN_CLAIM_EXPIRY

    try:
        threshold = conf.getfloat("triggerer", "triggerer_health_check_threshold", fallback=CLAIM_EXPIRY)
    except (TypeError, ValueError):  # a setting that is not a number: Airflow's default
        threshold = CLAIM_EXPIRY
    return max(MIN_CLAIM_EXPIRY, float(threshold))


class SmsCnBalanceEventTrigger(_AckedStream, BaseEventTrigger):
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

    @property
    def pause(self) -> float:
        """Seconds between two looks: a few per interval (the lease, not this loop, rations requests)."""
        return max(1.0, min(self.check_interval / 4, 30.0))

    def _balance(self) -> int:
        # the slot is taken once; a refused request is tried once more with the Connection read afresh
        return int(with_fresh_connection(lambda fresh: _hook(self.smscn_conn_id, fresh).get_balance()))

    def _watch(self, hook: Any) -> BalanceWatch:
        return BalanceWatch(hook.account_key, self.threshold, self.check_interval, self.name)

    @classmethod
    def create_shared_stream_producer(cls, kwargs: dict[str, Any]) -> BalanceCrossingProducer:
        return BalanceCrossingProducer(cls(**kwargs))

    async def run(self) -> AsyncIterator[TriggerEvent]:
        """Airflow 3.0-3.2 (no ack mode): swap the state, then yield (see events/balance.py)."""
        from airflow.triggers.base import TriggerEvent

        from airflow_provider_smscn.delivery.reports import new_holder
        from airflow_provider_smscn.events.balance import check_balance, give_back

        holder, expiry = new_holder(), claim_expiry()

        def check() -> dict[str, Any] | None:
            hook = _hook(self.smscn_conn_id, False)
            return check_balance(hook.ledger, self._watch(hook), holder, self._balance, expiry=expiry)

        def undo(payload: dict[str, Any] | None) -> None:
            if payload is not None:
                give_back(_hook(self.smscn_conn_id, False).ledger, payload, holder)

        while True:
            payload = await checked("checking the balance", check, undo)
            if payload is not None:
                yield TriggerEvent(payload)
            await asyncio.sleep(self.pause)


class BalanceCrossingProducer(AckedEvents["CrossingClaim"], _ProducerBase):
    """Ack mode (Airflow 3.3+): a crossing becomes ``below`` once Airflow stored its event.

    The logic is :class:`~airflow_provider_smscn.events.stream.AckedEvents`'; the ledger's side is
    ``events/balance.py`` (:func:`claim_crossing`, :func:`settle_crossing`, :func:`refresh_crossing`).
    """

    what = "checking the balance"

    def __init__(self, trigger: SmsCnBalanceEventTrigger) -> None:
        from airflow_provider_smscn.delivery.reports import new_holder

        super().__init__(trigger.pause, claim_expiry(), max_in_flight=1)
        self.trigger = trigger
        self.holder = new_holder()

    def claim(self, fresh: bool, in_flight: list[CrossingClaim]
              ) -> tuple[list[tuple[dict[str, Any], CrossingClaim]], bool, bool]:
        from airflow_provider_smscn.events.balance import claim_crossing

        hook = _hook(self.trigger.smscn_conn_id, fresh)
        return claim_crossing(hook.ledger, self.trigger._watch(hook), self.holder, self.trigger._balance,
                              self.expiry, tracked=in_flight)

    def settle(self, claim: CrossingClaim, stored: bool) -> bool:
        from airflow_provider_smscn.events.balance import settle_crossing

        return settle_crossing(_hook(self.trigger.smscn_conn_id, False).ledger, claim, stored)

    def refresh(self, claim: CrossingClaim) -> bool:
        from airflow_provider_smscn.events.balance import refresh_crossing

        return refresh_crossing(_hook(self.trigger.smscn_conn_id, False).ledger, claim)

    def abandon(self) -> bool:
        from airflow_provider_smscn.events.balance import abandon_crossing

        hook = _hook(self.trigger.smscn_conn_id, False)
        return abandon_crossing(hook.ledger, self.trigger._watch(hook), self.holder)

