"""Fixtures of the ledger tests: one empty ledger database per test, on every backend.

PostgreSQL: ``SMSCN_TEST_PG_URL`` if set (the user needs CREATE on the database), else the cluster
of ``.ci/postgres.sh``; every test gets a fresh schema (``search_path`` in the URL). MySQL:
``SMSCN_TEST_MYSQL_URL`` if set (the user needs CREATE DATABASE), else the MariaDB server of
``.ci/mariadb.sh``; every test gets a fresh database. So the ledger
creates its tables from nothing each time, in whichever process gets there first. A backend that
cannot be provided fails the tests; it never skips them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_smscn.ledger import SmsCnLedger
from tests.support.databases import EMPTY_DATABASE

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path



@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(backend name, URL of an empty ledger database)."""
    if request.param == "sqlite":
        # A directory that does not exist yet: the ledger must create it.
        return "sqlite", f"sqlite:///{tmp_path / 'nested' / 'dir' / 'ledger.db'}"
    return request.param, request.getfixturevalue(EMPTY_DATABASE[request.param])


@pytest.fixture
def url(backend: tuple[str, str]) -> str:
    return backend[1]


@pytest.fixture
def ledger(url: str) -> Iterator[SmsCnLedger]:
    led = SmsCnLedger(url)
    yield led
    led.dispose()
