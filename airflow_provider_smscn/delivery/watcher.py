"""One look at the ledger per process per poll interval, for every waiting trigger of that process.

Why: a triggerer may hold 10,000 delivery triggers. If each read the ledger on its own at every
poll (about 0.8 ms of CPU a read), waiting alone would keep more than a core busy at a 5 s poll.
Instead each trigger registers its message ids with the :class:`DeliveryWatcher` of its event
loop and connection, and awaits a future. The watcher, once per poll interval, reads only what is
new in the ledger (``get_reports_after`` from its cursor), takes the account's pull turn when it
is due and the lease is its own, and settles every trigger whose ids are all in. Trigger count
costs memory (a future each), not CPU.

Works with any asyncio loop: Airflow 3's triggerer subprocess and Airflow 2.11's trigger runner
thread alike (Airflow 3.3's shared trigger streams would do the same inside Airflow, on 3.3 only).
One watcher per (loop, key); its task ends when nobody waits and starts again with the next
waiter. Airflow-free: it is given a callable that opens a :class:`ReportSource`.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.client.errors import SmsCnError
from airflow_provider_smscn.delivery.pulling import (
    ledger_errors,
    pull_if_due,
    replay_spool,
    with_fresh_connection,
)
from airflow_provider_smscn.delivery.reports import new_holder

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from airflow_provider_smscn.client.models import DeliveryReport
    from airflow_provider_smscn.delivery.pulling import ReportSource

    #: ``open_source(pull_interval, fresh)``: the account's source; ``fresh`` reads the Connection anew.
    OpenSource = Callable[[float | None, bool], ReportSource]

log = logging.getLogger(__name__)

# Rows per read of what is new in the ledger.
_AFTER_LIMIT = 1000


class _Waiter:
    __slots__ = ("future", "ids", "poll_interval", "pull_interval")

    def __init__(self, ids: list[str], future: asyncio.Future[dict[str, DeliveryReport]],
                 poll_interval: float, pull_interval: float | None) -> None:
        self.ids = ids
        self.future = future
        self.poll_interval = poll_interval
        self.pull_interval = pull_interval


class DeliveryWatcher:
    """Waits for the reports of many waiters of one connection in one event loop.

    :param open_source: ``(pull_interval, fresh) -> ReportSource``; called in a worker thread.
    :param name: for logs (the connection id).
    """

    def __init__(self, open_source: OpenSource, name: str) -> None:
        self._open = open_source
        self.name = name
        self.holder = new_holder()
        self._waiters: set[_Waiter] = set()
        self._by_id: dict[str, set[_Waiter]] = {}
        self._found: dict[str, DeliveryReport] = {}
        self._new_ids: set[str] = set()
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        # Touched only by the cycle running in a worker thread (one at a time).
        self._cursor: Any = None
        self._stale = False  # the last look failed: read the Connection afresh next time
        self._account: str | None = None
        #: Looks at the ledger so far (for tests and benchmarks).
        self.cycles = 0

    def __repr__(self) -> str:
        return f"DeliveryWatcher({self.name!r}, waiting={len(self._waiters)})"

    @property
    def waiting(self) -> int:
        """Waiters registered now."""
        return len(self._waiters)

    async def wait(self, mobileids: Iterable[str], *, poll_interval: float,
                   pull_interval: float | None = None) -> dict[str, DeliveryReport]:
        """Return once every id has a report; raise what made waiting impossible (see ``_look``)."""
        loop = asyncio.get_running_loop()
        waiter = _Waiter(list(dict.fromkeys(mobileids)), loop.create_future(), float(poll_interval),
                         pull_interval)
        self._add(waiter)
        try:
            return await waiter.future
        finally:
            self._remove(waiter)

    # -- registry of waiters (event loop only) ---------------------------------------------------

    def _add(self, waiter: _Waiter) -> None:
        self._waiters.add(waiter)
        for mid in waiter.ids:
            self._by_id.setdefault(mid, set()).add(waiter)
            if mid not in self._found:
                self._new_ids.add(mid)
        if self._settle(waiter):
            return
        if self._wake is None:
            self._wake = asyncio.Event()
        self._wake.set()
        if self._task is None or self._task.done():
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name=f"smscn-watcher-{self.name}")

    def _remove(self, waiter: _Waiter) -> None:
        self._waiters.discard(waiter)
        if not self._waiters and self._wake is not None:
            self._wake.set()  # nobody waits: the watcher's task ends now, not after its sleep
        for mid in waiter.ids:
            others = self._by_id.get(mid)
            if others is None:
                continue
            others.discard(waiter)
            if not others:
                del self._by_id[mid]
                self._found.pop(mid, None)
                self._new_ids.discard(mid)

    def _settle(self, waiter: _Waiter) -> bool:
        if waiter.future.done():
            return True
        if all(mid in self._found for mid in waiter.ids):
            waiter.future.set_result({mid: self._found[mid] for mid in waiter.ids})
            return True
        return False

    def _fail_all(self, exc: BaseException) -> None:
        for waiter in list(self._waiters):
            if not waiter.future.done():
                waiter.future.set_exception(exc)

    # -- the loop --------------------------------------------------------------------------------

    async def _run(self) -> None:
        assert self._wake is not None
        try:
            while self._waiters:
                self._wake.clear()
                new_ids, self._new_ids = self._new_ids, set()
                missing = {mid for mid in self._by_id if mid not in self._found}
                poll = min(w.poll_interval for w in self._waiters)
                pulls = [w.pull_interval for w in self._waiters if w.pull_interval is not None]
                if missing:
                    await self._cycle(new_ids & missing, missing, min(pulls) if pulls else None)
                if not self._waiters:
                    break
                await self._pause(poll)
        finally:
            self._task = None
            self._cursor = self._account = None

    async def _cycle(self, new_ids: set[str], missing: set[str], pull_interval: float | None) -> None:
        try:
            found = await asyncio.to_thread(self._look_with_refresh, new_ids, missing, pull_interval)
        except SmsCnError as err:
            self._cursor = None  # what this look may have skipped is read again next time
            self._stale = True
            if err.retriable:
                log.warning("smscn watcher %s: delivery check failed, trying again in the next look: %s",
                            self.name, err)
                return
            log.error("smscn watcher %s: refused with the Connection read afresh: %s", self.name, err)
            self._fail_all(err)
            return
        except Exception as exc:  # unknown connection, a bug: end the waits, as a lone trigger would
            self._cursor = None
            self._fail_all(exc)
            return
        self.cycles += 1
        touched: set[_Waiter] = set()
        for mid, report in found.items():
            waiters = self._by_id.get(mid)
            if waiters:
                self._found[mid] = report
                touched.update(waiters)
        for waiter in touched:
            self._settle(waiter)

    async def _pause(self, seconds: float) -> None:
        """Sleep ``seconds``, or less when a new waiter arrives (it gets its first look at once)."""
        assert self._wake is not None
        if self._wake.is_set():
            return
        sleeper = asyncio.ensure_future(asyncio.sleep(seconds))
        woken = asyncio.ensure_future(self._wake.wait())
        try:
            await asyncio.wait({sleeper, woken}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            woken.cancel()

    # -- one look (worker thread) ----------------------------------------------------------------

    def _look_with_refresh(self, new_ids: set[str], missing: set[str],
                           pull_interval: float | None) -> dict[str, DeliveryReport]:
        # after a failed look the Connection is read afresh: a vendor that cannot be reached may
        # have moved (a changed host or port) rather than be down
        stale, self._stale = self._stale, False

        def attempt(fresh: bool) -> dict[str, DeliveryReport]:
            if fresh:
                self._cursor = None
            return self._look(self._open(pull_interval, fresh or stale), new_ids, missing)

        return with_fresh_connection(attempt)

    def _look(self, source: ReportSource, new_ids: set[str], missing: set[str]) -> dict[str, DeliveryReport]:
        """Spool first, then what is new since the cursor, then a pull turn if ids are still missing."""
        ledger, account = source.ledger, source.account
        with ledger_errors("reading delivery reports"):
            source.housekeep()
            replay_spool(source)
            if self._cursor is None or account != self._account:
                # A cursor first, then the table: a report stored in between is seen twice, never missed.
                self._cursor, self._account = self._end_cursor(source), account
                new_ids = set(missing)
            to_read = (new_ids | self._news(source)) & missing
            found = ledger.get_reports(account, sorted(to_read)) if to_read else {}
            still = missing - found.keys()
            if still and pull_if_due(source, self.holder):
                news = self._news(source) & still
                if news:
                    found.update(ledger.get_reports(account, sorted(news)))
        return found

    def _news(self, source: ReportSource) -> set[str]:
        """Message ids of the reports stored since the cursor (by anyone); moves the cursor on."""
        ids: set[str] = set()
        while True:
            rows, self._cursor = source.ledger.get_reports_after(source.account, self._cursor,
                                                                 limit=_AFTER_LIMIT)
            ids.update(report.mobileid for _row_id, report in rows)
            if len(rows) < _AFTER_LIMIT:
                return ids

    def _end_cursor(self, source: ReportSource) -> Any:
        """A cursor at the end of the account's reports now."""
        return source.ledger.report_cursor(source.account)


_WATCHERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, DeliveryWatcher]] = (
    weakref.WeakKeyDictionary())


def watcher_for(key: str, open_source: Callable[[], OpenSource]) -> DeliveryWatcher:
    """The watcher of ``key`` (a connection id) in the running event loop; built on first use."""
    per_loop = _WATCHERS.setdefault(asyncio.get_running_loop(), {})
    watcher = per_loop.get(key)
    if watcher is None:
        watcher = per_loop[key] = DeliveryWatcher(open_source(), name=key)
    return watcher
