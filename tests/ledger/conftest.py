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
from ledger_helpers import (
    drop_mysql_database,
    drop_pg_schema,
    mysql_server_url,
    new_mysql_database,
    new_pg_schema,
)

from airflow_provider_smscn.ledger import SmsCnLedger

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """URL of the test MariaDB/MySQL server (``SMSCN_TEST_MYSQL_URL``, else ``.ci/mariadb.sh`` starts one)."""
    try:
        return mysql_server_url()
    except RuntimeError as exc:  # a failure to provide MySQL fails the tests; it never skips them
        pytest.fail(str(exc))


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(backend name, URL of an empty ledger database)."""
    if request.param == "sqlite":
        # A directory that does not exist yet: the ledger must create it.
        yield "sqlite", f"sqlite:///{tmp_path / 'nested' / 'dir' / 'ledger.db'}"
        return
    if request.param == "mysql":
        server = request.getfixturevalue("mysql_url")
        database, url = new_mysql_database(server)
        try:
            yield "mysql", url
        finally:
            SmsCnLedger(url).dispose()
            drop_mysql_database(server, database)
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
