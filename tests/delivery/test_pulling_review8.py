"""Review 8: a pulled batch is lost when the ledger fails with a SQLAlchemy error that is not a
DBAPIError. The vendor hands each report out once, so whatever the failure, the batch must reach
the ledger or the spool."""

from __future__ import annotations

from collections import Counter

import pytest

from airflow_provider_smscn.delivery import collect_reports
from tests.delivery.delivery_helpers import make_source, send, stored_ids


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
