"""Fixtures of the ledger tests: one empty ledger database per test, on every backend.

PostgreSQL: ``SMSCN_TEST_PG_URL`` if set (the user needs CREATE on the database), else the cluster
of ``.ci/postgres.sh``; every test gets a fresh schema (``search_path`` in the URL). So the ledger
creates its tables from nothing each time, in whichever process gets there first. A backend that
cannot be provided fails the tests; it never skips them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from ledger_helpers import drop_pg_schema, new_pg_schema

from airflow_provider_smscn.ledger import SmsCnLedger

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(backend name, URL of an empty ledger database)."""
    if request.param == "sqlite":
        # A directory that does not exist yet: the ledger must create it.
        yield "sqlite", f"sqlite:///{tmp_path / 'nested' / 'dir' / 'ledger.db'}"
        return
    server = request.getfixturevalue("pg_url")
    schema, url = new_pg_schema(server)
    try:
        yield "postgresql", url
    finally:
        SmsCnLedger(url).dispose()
        drop_pg_schema(server, schema)


@pytest.fixture
def url(backend: tuple[str, str]) -> str:
    return backend[1]


@pytest.fixture
def ledger(url: str) -> Iterator[SmsCnLedger]:
    led = SmsCnLedger(url)
    yield led
    led.dispose()
