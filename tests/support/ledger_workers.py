"""Worker processes of the ledger tests, run under the "spawn" start method (fresh interpreters,
like separate hosts): spawned children import only this small module. Every loop is bounded in
count and in time.

A racing worker is ``worker(*args, ready, go, start_at, results)``: ``run_workers`` starts one per
argument set, waits until all report ready, then releases them together at ``start_at``; each puts
``(name, outcome, error text or None)`` on ``results``.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
import traceback
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


def report_for(i: int) -> tuple[str, str, int, str, str]:
    """The (mobile, mobileid, resultcode, status, retime) of report number ``i``: the same everywhere."""
    return (f"139{i:08d}", f"mid-{i:06d}", 100 if i % 3 else 4012, "DELIVRD" if i % 3 else "UNDELIV",
            f"2025-01-01 00:{(i // 60) % 60:02d}:{i % 60:02d}")


def _race(name: str, ready: Any, go: Any, start_at: Any, results: Any, prepare: Callable[[], Any],
          run: Callable[[Any], Any], clock: Callable[[], float] = time.time) -> None:
    """The frame of every racing worker: ``prepare()`` (connect, warm up), report ready, wait to be
    released and for ``start_at`` by ``clock``, then put ``(name, run(prepared), None)`` on
    ``results``; any failure is put as ``(name, None, traceback)`` (and ready, so nobody waits)."""
    try:
        prepared = prepare()
        ready.put(name)
        if not go.wait(timeout=120):
            results.put((name, None, "never told to start"))
            return
        delay = start_at.value - clock()
        if 0 < delay < 10:
            time.sleep(delay)
        results.put((name, run(prepared), None))
    except BaseException:
        ready.put(name)
        results.put((name, None, traceback.format_exc()))


def _ledger(url: str, warm_up: Callable[[Any], Any] | None = None) -> Any:
    from airflow_provider_smscn.ledger import SmsCnLedger

    ledger = SmsCnLedger(url)
    if warm_up is not None:
        warm_up(ledger)  # connect and create the tables before the race starts
    return ledger


def lease_worker(url: str, account: str, holder: str, interval: float, duration: float,
                 ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """Hammer the pull lease for ``duration`` seconds; the outcome is (winning times, attempts)."""
    def run(ledger: Any) -> tuple[list[float], int]:
        end = start_at.value + duration
        wins: list[float] = []
        attempts = 0
        for _ in range(1_000_000):
            if time.time() >= end:
                break
            attempts += 1
            # The ledger's own clock, read inside the write transaction: what production uses.
            granted = ledger.acquire_pull_slot(account, holder, interval)
            if granted is not None:
                wins.append(granted)
        ledger.dispose()
        return wins, attempts

    _race(holder, ready, go, start_at, results,
          lambda: _ledger(url, lambda led: led.last_pull_time(account)), run)


def store_worker(url: str, account: str, name: str, numbers: Sequence[int], batch: int,
                 pull_id: str | None, ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """Store reports ``numbers`` in batches, starting together with the others; the outcome is the
    number of rows newly stored. The ledger is opened after the start: all race to create the tables."""
    def run(_: None) -> int:
        from airflow_provider_smscn.client.models import DeliveryReport

        ledger = _ledger(url)
        new = 0
        for pos in range(0, len(numbers), batch):
            reports = [DeliveryReport(*report_for(i)) for i in numbers[pos:pos + batch]]
            # "by-first": a pull named by its first report (the same pull replayed by several workers).
            name_of_pull = f"pull-{numbers[pos]}" if pull_id == "by-first" else pull_id and f"{pull_id}.{pos}"
            new += ledger.store_reports(account, reports, pull_id=name_of_pull)
        ledger.dispose()
        return new

    _race(name, ready, go, start_at, results, lambda: None, run)


def claim_worker(url: str, account: str, claimant: str, ids: Sequence[str], batch: int,
                 ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """Claim ``ids`` in batches (as a send does chunk by chunk), racing the others; the outcome is
    the ids it got."""
    def run(ledger: Any) -> list[str]:
        claimed: list[str] = []
        for pos in range(0, len(ids), batch):
            chunk = ids[pos:pos + batch]
            got = ledger.claim_intents(account, "run-1", [(m, "13900000000") for m in chunk], claimant)
            assert got <= set(chunk), "claimed an id it did not ask for"
            claimed.extend(sorted(got))
            # What an operator does next: record the outcome, only where it is still the claimant.
            ledger.mark_intents(account, got, "accepted", 100, claimant=claimant)
        ledger.dispose()
        return claimed

    # connect first: the race is about claims, not setup
    _race(claimant, ready, go, start_at, results,
          lambda: _ledger(url, lambda led: led.get_intents(account, ["warm-up"])), run)


def skewed_lease_worker(url: str, account: str, holder: str, offset: float, interval: float, duration: float,
                        ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """Poll the lease like a waiter on a host whose clock is ``offset`` seconds off.

    ``time.time`` is patched for the whole process (the ledger's own calls included); the outcome,
    the grants as (real time, granted slot by the ledger's clock), is read from the real clock, so
    the test can measure stalls.
    """
    real_time = time.time
    time.time = lambda: real_time() + offset  # type: ignore[assignment]

    def run(ledger: Any) -> list[tuple[float, float]]:
        grants: list[tuple[float, float]] = []
        for _ in range(100_000):
            if real_time() >= start_at.value + duration:
                break
            if ledger.try_acquire_pull(account, holder, interval):
                # The granted slot, by the ledger's clock (nobody else can be granted for an interval).
                grants.append((real_time(), float(ledger.last_pull_time(account) or 0.0)))
            time.sleep(0.01)
        ledger.dispose()
        return grants

    _race(holder, ready, go, start_at, results, lambda: _ledger(url, lambda led: led.last_pull_time(account)),
          run, clock=real_time)


def first_use_worker(url: str, name: str, ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """Open the ledger for the first time together with the others (it upgrades the schema); use it.
    The outcome is (old reports found, ids claimed)."""
    def run(_: None) -> tuple[int, list[str]]:
        from airflow_provider_smscn.client.models import DeliveryReport

        ledger = _ledger(url)
        found = ledger.get_reports("acct", [f"old-{i:05d}" for i in range(300)])
        # The new behaviour works on the upgraded tables: a second report for an old id, a claim.
        ledger.store_reports("acct", [DeliveryReport("13900000001", "old-00001", 100, "DELIVRD",
                                                     f"2025-01-02 00:00:0{name[-1]}")], pull_id=f"p-{name}")
        claimed = ledger.claim_intents("acct", "k", [(f"new-{name}", "13900000000")], name)
        ledger.dispose()
        return len(found), sorted(claimed)

    _race(name, ready, go, start_at, results, lambda: None, run)


def fork_child_store(url: str, account: str, results: Any) -> None:
    """In a forked child, store one report through the engine cache inherited from the parent."""
    try:
        from airflow_provider_smscn.client.models import DeliveryReport
        from airflow_provider_smscn.ledger import SmsCnLedger
        from airflow_provider_smscn.ledger.engine import cached_entry

        inherited = cached_entry(url)
        led = SmsCnLedger(url)
        new = led.store_reports(account, [DeliveryReport(*report_for(7))])
        own = cached_entry(url)
        results.put((new, own is not None and own is not inherited, None))
    except BaseException:
        results.put((None, None, traceback.format_exc()))


def run_workers(target: Callable[..., None], arg_sets: Sequence[tuple[Any, ...]],
                timeout: float = 90.0) -> list[tuple[Any, ...]]:
    """Start one spawned process per arg set, release them together, and collect their results.

    Each process gets ``(*args, ready, go, start_at, results)``; start_at is set a little after
    the last one reported ready, so they all begin at the same moment.
    """
    ctx = multiprocessing.get_context("spawn")
    ready = ctx.Queue()
    results = ctx.Queue()
    go = ctx.Event()
    start_at = ctx.Value("d", 0.0)
    procs = [ctx.Process(target=target, args=(*args, ready, go, start_at, results), daemon=True)
             for args in arg_sets]
    deadline = time.monotonic() + timeout
    out: list[tuple[Any, ...]] = []
    try:
        for p in procs:
            p.start()
        for _ in procs:
            ready.get(timeout=max(0.1, deadline - time.monotonic()))
        start_at.value = time.time() + 0.3
        go.set()
        for _ in procs:
            try:
                out.append(results.get(timeout=max(0.1, deadline - time.monotonic())))
            except queue.Empty:
                break
        for p in procs:
            p.join(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    if len(out) != len(procs):
        raise AssertionError(f"only {len(out)} of {len(procs)} workers reported back")
    errors = [r[-1] for r in out if r[-1]]
    if errors:
        raise AssertionError("worker failed:\n" + errors[0])
    return out
