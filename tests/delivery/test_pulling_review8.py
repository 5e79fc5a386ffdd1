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
