"""The pull turn: drain a backlog at once, never drop a batch the ledger refused, errors retriable.

Real parts: the sandbox on loopback, SQLite files and a PostgreSQL database. The ledger is made to
fail for real right after a pull (another connection holding the SQLite write lock; the
PostgreSQL database refusing connections and its sessions ended, as in a failover).
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import replace

import pytest

from airflow_provider_smscn.client.errors import SmsCnApiError, SmsCnError
from airflow_provider_smscn.delivery import (
    MAX_EXTRA_PULLS,
    REPORTS_PER_PULL,
    LedgerUnavailableError,
    collect_reports,
    with_fresh_connection,
)
from airflow_provider_smscn.delivery.pulling import STORE_ATTEMPTS, STORE_RETRY_WAIT
from airflow_provider_smscn.ledger.checks import LedgerNotSharedError
from tests.support.databases import SqliteWriteLock
from tests.support.report_sources import make_source, send, stored_ids


def _pull_then(source, action):
    """``source.pull`` that runs ``action`` right after the vendor answered (once)."""
    real, done = source.pull, []

    def pull():
        reports = real()
        if not done:
            done.append(True)
            action()
        return reports

    return pull


# -- case 11: a backlog drains at once ------------------------------------------------------------

def test_a_backlog_drains_in_one_turn_while_pulls_come_back_full(smscn_sandbox, tmp_path):
    smscn_sandbox.set_account(report_delay=0, rate_limit_per_second=None)
    ids = send(smscn_sandbox, 1000)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool", pull_interval=60)
    found = collect_reports(source, ids, holder="h1")
    assert set(found) == set(ids)  # one call, one turn: all 1000 in (today: 100, then 100 per interval)
    # 10 full pulls, then one that came back short: the backlog is known to be empty.
    assert smscn_sandbox.stats()["requests"]["status"] == 1000 // REPORTS_PER_PULL + 1
    assert sorted(stored_ids(source)) == sorted(ids)  # each stored once


def test_the_turn_is_bounded_and_the_lease_still_rations_the_next_one(smscn_sandbox, tmp_path):
    smscn_sandbox.set_account(report_delay=0, rate_limit_per_second=None)
    ids = send(smscn_sandbox, 1000)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool",
                         pull_interval=60, max_extra_pulls=2)
    assert len(collect_reports(source, ids, holder="h1")) == 300  # 1 + 2 extra pulls
    # Another waiter right after: the holder's slot (60 s from its grant) is not over yet.
    assert len(collect_reports(source, ids, holder="h2")) == 300
    assert smscn_sandbox.stats()["requests"]["status"] == 3
    assert MAX_EXTRA_PULLS >= 100  # a 10,000-report backlog fits in one turn by default


def test_a_renewal_refused_ends_the_turn(smscn_sandbox, tmp_path):
    smscn_sandbox.set_account(report_delay=0, rate_limit_per_second=None)
    ids = send(smscn_sandbox, 300)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool", pull_interval=0)
    ledger = source.ledger

    class SlotTaken:  # another holder was granted the account between two pulls
        def __getattr__(self, name):
            return getattr(ledger, name)

        def renew_pull(self, account, holder, interval):
            return False

    assert len(collect_reports(replace(source, ledger=SlotTaken()), ids, holder="h")) == 100
    assert smscn_sandbox.stats()["requests"]["status"] == 1


def test_a_short_pull_ends_the_turn(smscn_sandbox, tmp_path):
    smscn_sandbox.set_account(report_delay=0, max_reports_per_pull=40)
    ids = send(smscn_sandbox, 100)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool", pull_interval=60)
    assert len(collect_reports(source, ids, holder="h")) == 40  # 40 < 100: not "full", no second pull
    assert smscn_sandbox.stats()["requests"]["status"] == 1


# -- case 6: the ledger fails right after a pull -------------------------------------------------

def test_sqlite_locked_right_after_a_pull_spools_the_batch_and_writes_it_once_it_answers(
        smscn_sandbox, tmp_path, short_busy_timeout, caplog):
    smscn_sandbox.set_account(report_delay=0)
    ids = send(smscn_sandbox, 150)
    db = tmp_path / "ledger.db"
    sleeps: list[float] = []
    source = make_source(smscn_sandbox, f"sqlite:///{db}", tmp_path / "spool", sleep=sleeps.append)
    source.ledger.report_cursor(source.account)  # the tables exist before the lock is taken
    lock = SqliteWriteLock(db)
    try:
        locked = replace(source, pull=_pull_then(source, lock.hold))
        with caplog.at_level(logging.WARNING), pytest.raises(LedgerUnavailableError) as caught:
            collect_reports(locked, ids, holder="h")
        assert caught.value.retriable  # a waiter keeps waiting
        assert sleeps == [STORE_RETRY_WAIT * n for n in range(1, STORE_ATTEMPTS)]  # written with retries
        assert smscn_sandbox.stats()["reports_pending"] == 50  # the vendor handed 100 out: ours now
        assert len(source.spool.pending()) == 1
        assert "kept in the local spool" in caplog.text and "100 pulled delivery report(s)" in caplog.text
        assert any(r.levelno == logging.ERROR and "100" in r.getMessage() for r in caplog.records)

        with pytest.raises(LedgerUnavailableError):  # still locked: the spool is kept, no new pull
            collect_reports(source, ids, holder="h")
        assert smscn_sandbox.stats()["requests"]["status"] == 1
    finally:
        lock.close()

    found = collect_reports(source, ids, holder="h")  # the ledger answers: spool first, then a pull
    assert set(found) == set(ids)
    assert sorted(stored_ids(source)) == sorted(ids)  # none lost, none twice
    assert source.spool.pending() == []
    assert not any(f"139{i:08d}" in caplog.text for i in range(150))  # counts, never numbers


def test_a_lock_released_between_tries_is_written_without_the_spool(smscn_sandbox, tmp_path,
                                                                    short_busy_timeout):
    smscn_sandbox.set_account(report_delay=0)
    ids = send(smscn_sandbox, 30)
    db = tmp_path / "ledger.db"
    lock = SqliteWriteLock(db)
    source = make_source(smscn_sandbox, f"sqlite:///{db}", tmp_path / "spool",
                         sleep=lambda _s: lock.release())
    source.ledger.report_cursor(source.account)
    source = replace(source, pull=_pull_then(source, lock.hold))
    try:
        assert set(collect_reports(source, ids, holder="h")) == set(ids)
    finally:
        lock.close()
    assert source.spool.pending() == []
    assert Counter(stored_ids(source)) == Counter(ids)


def test_replaying_the_same_spooled_batch_twice_stores_it_once(smscn_sandbox, tmp_path):
    smscn_sandbox.set_account(report_delay=0)
    ids = send(smscn_sandbox, 20)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    reports = source.pull()
    path = source.spool.put(source.account, "pull-x", reports)
    copy = path.read_bytes()
    assert len(collect_reports(source, ids, holder="h")) == 20
    path.write_bytes(copy)  # another process replayed it too, or we crashed before the unlink
    assert len(collect_reports(source, ids, holder="h")) == 20
    assert Counter(stored_ids(source)) == Counter(ids)


@pytest.mark.postgres
def test_postgres_failing_over_right_after_a_pull_loses_nothing(smscn_sandbox, tmp_path, pg_database, caplog):
    smscn_sandbox.set_account(report_delay=0)
    ids = send(smscn_sandbox, 80)
    source = make_source(smscn_sandbox, pg_database.url, tmp_path / "spool", sleep=lambda _s: None)
    source.ledger.report_cursor(source.account)
    failing = replace(source, pull=_pull_then(source, pg_database.go_away))
    with caplog.at_level(logging.WARNING), pytest.raises(LedgerUnavailableError):
        collect_reports(failing, ids, holder="h")
    assert smscn_sandbox.stats()["reports_pending"] == 0
    assert len(source.spool.pending()) == 1
    with pytest.raises(LedgerUnavailableError) as caught:  # down: reads fail too, retriably
        collect_reports(source, ids, holder="h")
    assert caught.value.retriable
    assert ":smscn@" not in str(caught.value)  # no credentials of the ledger URL

    pg_database.come_back()
    assert set(collect_reports(source, ids, holder="h")) == set(ids)
    assert Counter(stored_ids(source)) == Counter(ids)
    assert source.spool.pending() == []
    assert not any(f"139{i:08d}" in caplog.text for i in range(80))


# -- the fresh-Connection rule ---------------------------------------------------------------------

def test_a_refusal_is_tried_once_more_with_the_connection_read_afresh():
    calls: list[bool] = []

    def attempt(fresh: bool) -> str:
        calls.append(fresh)
        if not fresh:
            raise SmsCnApiError(101)
        return "ok"

    assert with_fresh_connection(attempt) == "ok"
    assert calls == [False, True]


def test_a_refusal_with_the_connection_just_read_is_final_and_retriable_errors_pass_through():
    calls: list[bool] = []

    def refused(fresh: bool) -> None:
        calls.append(fresh)
        raise SmsCnApiError(101)

    with pytest.raises(SmsCnApiError):
        with_fresh_connection(refused)
    assert calls == [False, True]

    def busy(fresh: bool) -> None:
        calls.append(fresh)
        raise SmsCnApiError(107)

    calls.clear()
    with pytest.raises(SmsCnError):
        with_fresh_connection(busy)
    assert calls == [False]  # retriable: the waiter's next look, not a second read now


def test_a_ledger_that_is_not_shared_fails_at_once_without_reading_the_connection_again(caplog):
    calls: list[bool] = []

    def not_shared(fresh: bool) -> None:
        calls.append(fresh)
        raise LedgerNotSharedError("the smscn ledger is NOT shared: ...")

    with caplog.at_level(logging.WARNING), pytest.raises(LedgerNotSharedError):
        with_fresh_connection(not_shared)
    assert calls == [False]  # configuration: a fresh Connection cannot fix it
    assert "reading the Connection afresh" not in caplog.text


# A pulled batch survives any failure of its ledger write (write-ahead spool)

def test_a_pool_timeout_right_after_a_pull_keeps_the_batch(smscn_sandbox, tmp_path):
    """A busy triggerer or worker exhausts the engine's connection pool: SQLAlchemy raises
    ``sqlalchemy.exc.TimeoutError`` ("QueuePool limit ... reached"), which is not a DBAPIError.
    ``store_pulled`` retries and spools only DBAPIError, so today the batch the vendor just
    handed out escapes as a raw exception and is gone (vendor 0 pending, ledger and spool empty)."""
    from sqlalchemy.exc import TimeoutError as PoolTimeout

    smscn_sandbox.set_account(report_delay=0)
    ids = send(smscn_sandbox, 30)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool",
                         sleep=lambda _s: None)
    real_store = source.ledger.store_reports
    failures = []

    def store_while_the_pool_is_exhausted(*args, **kwargs):
        if len(failures) < 10:  # exhausted for as long as this pull's tries last
            failures.append(1)
            raise PoolTimeout("QueuePool limit of size 5 overflow 10 reached, connection timed out")
        return real_store(*args, **kwargs)

    source.ledger.store_reports = store_while_the_pool_is_exhausted  # type: ignore[method-assign]
    with pytest.raises(Exception):  # noqa: B017  (whatever the waiter is told)
        collect_reports(source, ids, holder="h")
    assert smscn_sandbox.stats()["reports_pending"] == 0  # the vendor handed them all out
    failures.extend([1] * 10)  # the pool has connections again

    found = collect_reports(source, ids, holder="h")
    assert set(found) == set(ids), f"{len(ids) - len(found)} of {len(ids)} reports lost for good"
    assert Counter(stored_ids(source)) == Counter(ids)


class TaskTimeout(BaseException):
    """What Airflow's SIGALRM handler raises wherever the task is (AirflowTaskTimeout is a
    BaseException; SIGTERM's AirflowTaskTerminated likewise interrupts any line)."""


def test_a_task_timeout_while_a_pulled_batch_is_written_keeps_the_batch(smscn_sandbox, tmp_path):
    """A poking sensor hits its execution_timeout while it writes the batch it just pulled: the
    batch exists only in memory, nothing spooled it first, and it is gone. Write-ahead (spool
    before the ledger write, remove after the commit) would keep it."""
    smscn_sandbox.set_account(report_delay=0)
    ids = send(smscn_sandbox, 30)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool",
                         sleep=lambda _s: None)
    source.ledger.report_cursor(source.account)
    real_store, fired = source.ledger.store_reports, []

    def interrupted_once(*args, **kwargs):
        if not fired:
            fired.append(1)
            raise TaskTimeout("Timeout, PID: 4242")
        return real_store(*args, **kwargs)

    source.ledger.store_reports = interrupted_once  # type: ignore[method-assign]
    with pytest.raises(TaskTimeout):
        collect_reports(source, ids, holder="h")
    assert smscn_sandbox.stats()["reports_pending"] == 0  # handed out: only we had them

    found = collect_reports(source, ids, holder="h2")  # the retry of the sensor, same host
    assert set(found) == set(ids), f"{len(ids) - len(found)} of {len(ids)} reports lost for good"
