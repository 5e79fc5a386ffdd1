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


@pytest.fixture
def mysql_database():  # type: ignore[no-untyped-def]
    """A fresh database on the test MariaDB/MySQL server (``.ci/mariadb.sh``); its URL."""
    from airflow_provider_smscn.ledger import SmsCnLedger
    from tests.ledger.ledger_helpers import drop_mysql_database, mysql_server_url, new_mysql_database

    try:
        server = mysql_server_url()
    except RuntimeError as exc:  # a failure to provide MySQL fails the tests; it never skips them
        pytest.fail(str(exc))
    name, url = new_mysql_database(server)
    yield url
    SmsCnLedger(url).dispose()
    drop_mysql_database(server, name)
