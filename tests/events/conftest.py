"""Fixtures of the event tests: a fresh PostgreSQL database per test (as tests/delivery has)."""

from __future__ import annotations

import pytest

from tests.delivery.delivery_helpers import PgDatabase


@pytest.fixture
def pg_database(pg_url: str):  # type: ignore[no-untyped-def]
    db = PgDatabase(pg_url)
    yield db
    from airflow_provider_smscn.ledger import SmsCnLedger

    SmsCnLedger(db.url).dispose()
    db.drop()
