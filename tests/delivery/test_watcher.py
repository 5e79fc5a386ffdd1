"""The per-process watcher: one look per interval for every waiter, each settled when its ids are in.

The watcher's sleep is replaced by one that counts and returns at once: no test waits on the clock.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from dataclasses import replace
from typing import Any

import pytest

from airflow_provider_smscn.client.errors import SmsCnApiError
from airflow_provider_smscn.delivery.watcher import DeliveryWatcher
from tests.support.report_sources import make_source, send, stored_ids

_real_sleep = asyncio.sleep


class CountingLedger:
    """The real ledger, with a count of each call (what one look costs)."""

    def __init__(self, ledger: Any) -> None:
        self._ledger = ledger
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._ledger, name)
        if not callable(attr):
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.calls[name] += 1
            return attr(*args, **kwargs)

        return counted


class Sleeps(list):
    """The watcher's sleeps, recorded instead of slept; from ``hold_after`` on, a sleep never ends."""

    hold_after: int | None = None
    on_sleep = staticmethod(lambda count: None)


@pytest.fixture
def sleeps(monkeypatch):
    seen = Sleeps()

    async def fake_sleep(seconds: float) -> None:
        seen.append(seconds)
        seen.on_sleep(len(seen))
        if seen.hold_after is not None and len(seen) >= seen.hold_after:
            await asyncio.Event().wait()  # no look after this one: the counts below are exact
        await _real_sleep(0)

    monkeypatch.setattr(asyncio, "sleep", fake_sleep)
    return seen


async def _until(predicate, limit: int = 20_000) -> None:
    for _ in range(limit):
        if predicate():
            return
        await _real_sleep(0.001)
    raise AssertionError("condition not reached")


async def test_a_thousand_waiters_cost_one_look_per_interval(smscn_sandbox, tmp_path, sleeps):
    smscn_sandbox.set_account(report_delay=3600, rate_limit_per_second=None)
    ids = send(smscn_sandbox, 1000)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool", pull_interval=3600)
    counting = CountingLedger(source.ledger)
    source = replace(source, ledger=counting)
    watcher = DeliveryWatcher(lambda _interval, _fresh: source, name="t")
    snapshots: dict[int, Counter[str]] = {}
    sleeps.on_sleep = lambda count: snapshots.setdefault(count, Counter(counting.calls))
    sleeps.hold_after = 11
    tasks = [asyncio.create_task(watcher.wait([mid], poll_interval=5.0)) for mid in ids]
    await _until(lambda: len(sleeps) >= 11)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    later = snapshots[11] - snapshots[1]
    looks = 10
    # After the first look (which read the 1000 ids once), a look is one read of what is new and
    # one check of the lease, whatever the number of waiters.
    assert later["get_reports_after"] == looks
    assert later["get_reports"] == 0
    assert later["pull_due"] == looks
    assert set(sleeps) == {5.0}
    assert smscn_sandbox.stats()["requests"]["status"] == 1  # the lease: one pull per hour here
    assert watcher.waiting == 0


async def test_each_waiter_is_settled_with_its_own_reports_when_they_are_in(smscn_sandbox, tmp_path, sleeps):
    smscn_sandbox.set_account(report_delay=0, rate_limit_per_second=None)
    ids = send(smscn_sandbox, 250)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    watcher = DeliveryWatcher(lambda _interval, _fresh: source, name="t")
    groups = [ids[i:i + 10] for i in range(0, 250, 10)]
    results = await asyncio.gather(*(watcher.wait(group, poll_interval=1.0) for group in groups))
    for group, found in zip(groups, results, strict=True):
        assert sorted(found) == sorted(group)
        assert all(found[mid].mobileid == mid for mid in group)
    assert smscn_sandbox.stats()["requests"]["status"] == 3  # 100 + 100 + 50: drained in one turn
    assert Counter(stored_ids(source)) == Counter(ids)


async def test_reports_stored_by_another_process_are_seen_through_the_cursor(smscn_sandbox, tmp_path, sleeps):
    smscn_sandbox.set_account(report_delay=0)
    ids = send(smscn_sandbox, 5)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool", pull_interval=3600)
    source.ledger.try_acquire_pull(source.account, "someone-else", 3600)  # we never win the lease
    watcher = DeliveryWatcher(lambda _interval, _fresh: source, name="t")
    task = asyncio.create_task(watcher.wait(ids, poll_interval=1.0))
    await _until(lambda: len(sleeps) >= 2)
    assert not task.done()
    source.ledger.store_reports(source.account, source.pull(), pull_id="other-host")
    found = await asyncio.wait_for(task, 10)
    assert sorted(found) == sorted(ids)


async def test_a_refusal_fails_every_waiter_only_after_one_fresh_read(smscn_sandbox, tmp_path, sleeps):
    smscn_sandbox.inject_fault("stat", code=101, action="status")
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    opened: list[bool] = []

    def open_source(_interval: float | None, fresh: bool) -> Any:
        opened.append(fresh)
        return source

    watcher = DeliveryWatcher(open_source, name="t")
    results = await asyncio.gather(watcher.wait(["1"], poll_interval=1.0),
                                   watcher.wait(["2"], poll_interval=1.0), return_exceptions=True)
    assert all(isinstance(r, SmsCnApiError) and r.code == 101 for r in results)
    assert opened == [False, True]
