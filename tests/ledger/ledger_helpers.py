"""Helpers for tests/test_ledger.py: the PostgreSQL server, per-test schemas, worker processes.

Worker functions live here (not in the test module) so spawned processes import only this small
module. Every loop is bounded in count and in time.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import subprocess
import time
import traceback
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

ROOT = Path(__file__).resolve().parents[2]
PG_SCRIPT = ROOT / ".ci" / "postgres.sh"
MYSQL_SCRIPT = ROOT / ".ci" / "mariadb.sh"


def pg_server_url() -> str:
    """``SMSCN_TEST_PG_URL``, or the URL of the throwaway cluster ``.ci/postgres.sh`` starts."""
    url = os.environ.get("SMSCN_TEST_PG_URL", "").strip()
    if url:
        return url
    proc = subprocess.run(["bash", str(PG_SCRIPT)], capture_output=True, text=True, timeout=900, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f".ci/postgres.sh failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    return lines[-1].strip()


def mysql_server_url() -> str:
    """``SMSCN_TEST_MYSQL_URL``, or the URL of the throwaway MariaDB ``.ci/mariadb.sh`` starts."""
    url = os.environ.get("SMSCN_TEST_MYSQL_URL", "").strip()
    if url:
        return url
    proc = subprocess.run(["bash", str(MYSQL_SCRIPT)], capture_output=True, text=True, timeout=900,
                          check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f".ci/mariadb.sh failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    return lines[-1].strip()


def new_mysql_database(server_url: str) -> tuple[str, str]:
    """Create a fresh database on the MySQL server; return its name and a URL that uses it."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = f"smscn_t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(server_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    finally:
        engine.dispose()
    return name, make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_mysql_database(server_url: str, name: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(server_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        engine.dispose()


def new_pg_schema(server_url: str) -> tuple[str, str]:
    """Create a fresh schema; return it and a URL whose connections use it as search_path.

    Each test (and every process it spawns) then sees its own, empty ``smscn_`` tables, and the
    ledger creates them itself, as it would on a fresh database.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    schema = f"smscn_t_{uuid.uuid4().hex[:12]}"
    engine = create_engine(server_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    finally:
        engine.dispose()
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def drop_pg_schema(server_url: str, schema: str) -> None:
    from sqlalchemy import create_engine

    engine = create_engine(server_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
    finally:
        engine.dispose()


def ensure_sqlite_parent(url: str) -> None:
    """Create the directory of a SQLite URL's file (the ledger does it itself; raw engines do not)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database:
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)


def query(url: str, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` read through a separate engine: what is really in the database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params or {})]
    finally:
        engine.dispose()


def report_for(i: int) -> tuple[str, str, int, str, str]:
    """The (mobile, mobileid, resultcode, status, retime) of report number ``i``: the same everywhere."""
    return (f"139{i:08d}", f"mid-{i:06d}", 100 if i % 3 else 4012, "DELIVRD" if i % 3 else "UNDELIV",
            f"2025-01-01 00:{(i // 60) % 60:02d}:{i % 60:02d}")


# --------------------------------------------------------------------------------------------
# Worker processes (run under the "spawn" start method: fresh interpreters, like separate hosts).
# --------------------------------------------------------------------------------------------

def lease_worker(url: str, account: str, holder: str, interval: float, duration: float,
                 ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """Hammer try_acquire_pull between start_at and start_at + duration; report the winning times."""
    try:
        from airflow_provider_smscn.ledger import SmsCnLedger

        ledger = SmsCnLedger(url)
        ledger.last_pull_time(account)  # connect and create the tables before the race starts
        ready.put(holder)
        if not go.wait(timeout=120):
            results.put((holder, None, 0, "never told to start"))
            return
        start = start_at.value
        end = start + duration
        wins: list[float] = []
        attempts = 0
        for _ in range(1_000_000):
            now = time.time()
            if now >= end:
                break
            if now < start:
                time.sleep(0.001)
                continue
            attempts += 1
            # The ledger's own clock, read inside the write transaction: what production uses.
            granted = ledger.acquire_pull_slot(account, holder, interval)
            if granted is not None:
                wins.append(granted)
        ledger.dispose()
        results.put((holder, wins, attempts, None))
    except BaseException:
        ready.put(holder)
        results.put((holder, None, 0, traceback.format_exc()))


def store_worker(url: str, account: str, name: str, numbers: Sequence[int], batch: int,
                 pull_id: str | None, ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """Store reports ``numbers`` in batches, starting together with the others; report rows newly stored."""
    try:
        from airflow_provider_smscn.client.models import DeliveryReport
        from airflow_provider_smscn.ledger import SmsCnLedger

        ready.put(name)
        if not go.wait(timeout=120):
            results.put((name, None, "never told to start"))
            return
        delay = start_at.value - time.time()
        if 0 < delay < 10:
            time.sleep(delay)
        ledger = SmsCnLedger(url)  # tables created here: all processes race to do it at once
        new = 0
        for pos in range(0, len(numbers), batch):
            reports = [DeliveryReport(*report_for(i)) for i in numbers[pos:pos + batch]]
            new += ledger.store_reports(account, reports, pull_id=pull_id and f"{pull_id}.{pos}")
        ledger.dispose()
        results.put((name, new, None))
    except BaseException:
        ready.put(name)
        results.put((name, None, traceback.format_exc()))


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


def claim_worker(url: str, account: str, claimant: str, ids: Sequence[str], batch: int,
                 ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """Claim ``ids`` in batches (as a send does chunk by chunk), racing the others; report what it got."""
    try:
        from airflow_provider_smscn.ledger import SmsCnLedger

        ledger = SmsCnLedger(url)
        ledger.get_intents(account, ["warm-up"])  # connect first: the race is about claims, not setup
        ready.put(claimant)
        if not go.wait(timeout=120):
            results.put((claimant, None, "never told to start"))
            return
        delay = start_at.value - time.time()
        if 0 < delay < 10:
            time.sleep(delay)
        claimed: list[str] = []
        for pos in range(0, len(ids), batch):
            chunk = ids[pos:pos + batch]
            got = ledger.claim_intents(account, "run-1", [(m, "13900000000") for m in chunk], claimant)
            assert got <= set(chunk), "claimed an id it did not ask for"
            claimed.extend(sorted(got))
            # What an operator does next: record the outcome, only where it is still the claimant.
            ledger.mark_intents(account, got, "accepted", 100, claimant=claimant)
        ledger.dispose()
        results.put((claimant, claimed, None))
    except BaseException:
        ready.put(claimant)
        results.put((claimant, None, traceback.format_exc()))


def skewed_lease_worker(url: str, account: str, holder: str, offset: float, interval: float, duration: float,
                        ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """Poll the lease like a waiter on a host whose clock is ``offset`` seconds off.

    ``time.time`` is patched for the whole process (the ledger's own calls included); the grant
    times reported back are read from the real clock, so the test can measure stalls.
    """
    try:
        real_time = time.time
        time.time = lambda: real_time() + offset  # type: ignore[assignment]
        from airflow_provider_smscn.ledger import SmsCnLedger

        ledger = SmsCnLedger(url)
        ledger.last_pull_time(account)
        ready.put(holder)
        if not go.wait(timeout=120):
            results.put((holder, None, "never told to start"))
            return
        start = start_at.value
        while real_time() < start:
            time.sleep(0.001)
        grants: list[tuple[float, float]] = []  # (real time, granted slot by the ledger's clock)
        for _ in range(100_000):
            if real_time() >= start + duration:
                break
            if ledger.try_acquire_pull(account, holder, interval):
                # The granted slot, by the ledger's clock (nobody else can be granted for an interval).
                grants.append((real_time(), float(ledger.last_pull_time(account) or 0.0)))
            time.sleep(0.01)
        ledger.dispose()
        results.put((holder, grants, None))
    except BaseException:
        ready.put(holder)
        results.put((holder, None, traceback.format_exc()))


def first_use_worker(url: str, name: str, ready: Any, go: Any, start_at: Any, results: Any) -> None:
    """Open the ledger for the first time together with the others (it upgrades the schema); use it."""
    try:
        from airflow_provider_smscn.client.models import DeliveryReport
        from airflow_provider_smscn.ledger import SmsCnLedger

        ready.put(name)
        if not go.wait(timeout=120):
            results.put((name, None, "never told to start"))
            return
        delay = start_at.value - time.time()
        if 0 < delay < 10:
            time.sleep(delay)
        ledger = SmsCnLedger(url)
        found = ledger.get_reports("acct", [f"old-{i:05d}" for i in range(300)])
        # The new behaviour works on the upgraded tables: a second report for an old id, a claim.
        ledger.store_reports("acct", [DeliveryReport("13900000001", "old-00001", 100, "DELIVRD",
                                                     f"2025-01-02 00:00:0{name[-1]}")], pull_id=f"p-{name}")
        claimed = ledger.claim_intents("acct", "k", [(f"new-{name}", "13900000000")], name)
        ledger.dispose()
        results.put((name, (len(found), sorted(claimed)), None))
    except BaseException:
        ready.put(name)
        results.put((name, None, traceback.format_exc()))
