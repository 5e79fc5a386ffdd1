"""Test-wide Airflow settings, set before anything imports airflow (its config is read at import).

Every test session gets a throwaway AIRFLOW_HOME with a SQLite metadata DB and ledger, and the
example DAGs as its dags folder: nothing touches a developer's own Airflow. Nothing here imports
Airflow, so the Airflow-free suites (tests/client, tests/sandbox) also run where it is not
installed (``bash .ci/setup core``).

The database fixtures every suite shares live here too: the PostgreSQL and MariaDB servers, and a
fresh schema or database per test. Helpers the tests import live in ``tests/support``.
"""

from __future__ import annotations

import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from typing import TYPE_CHECKING

import pytest

from tests.support.databases import (
    PgDatabase,
    drop_mysql_database,
    drop_pg_schema,
    mysql_server_url,
    new_mysql_database,
    new_pg_schema,
    pg_server_url,
)
from tests.support.paths import REPO

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

AIRFLOW_HOME = tempfile.mkdtemp(prefix="smscn-airflow-home-")

os.environ["AIRFLOW_HOME"] = AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__UNIT_TEST_MODE"] = "True"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "dags_examples")
os.environ["AIRFLOW__SMSCN__LEDGER_URL"] = f"sqlite:///{AIRFLOW_HOME}/smscn_ledger.db"
os.environ.pop("AIRFLOW_CONN_SMSCN_DEFAULT", None)
try:
    AIRFLOW_VERSION: str | None = version("apache-airflow")
except PackageNotFoundError:  # a plain Python user of the client: only the Airflow-free suites run
    AIRFLOW_VERSION = None
if AIRFLOW_VERSION and AIRFLOW_VERSION.startswith("2."):
    # 2.11's test config asks for LocalExecutor, refused on SQLite
    os.environ["AIRFLOW__CORE__EXECUTOR"] = "SequentialExecutor"


def pytest_configure(config):  # type: ignore[no-untyped-def]
    config.addinivalue_line("markers", "ui: drives the real Airflow 3 UI in headless Chromium")
    config.addinivalue_line("markers", "postgres: needs the PostgreSQL server started by .ci/postgres.sh")
    config.addinivalue_line("markers", "airflow3_only: Airflow 3 leg only (.ci/test deselects it on 2.11)")


def _server(get_url: Callable[[], str]) -> str:
    try:
        return get_url()
    except RuntimeError as exc:  # a failure to provide a server fails the tests; it never skips them
        pytest.fail(str(exc))


def _dispose_ledgers(url: str) -> None:
    """Close the pooled connections the ledger keeps for ``url`` (the database is dropped next)."""
    from airflow_provider_smscn.ledger import SmsCnLedger

    SmsCnLedger(url).dispose()


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the test PostgreSQL server (``SMSCN_TEST_PG_URL``, else ``.ci/postgres.sh`` starts one)."""
    return _server(pg_server_url)


@pytest.fixture(scope="session")
def mysql_url() -> str:
    """URL of the test MariaDB/MySQL server (``SMSCN_TEST_MYSQL_URL``, else ``.ci/mariadb.sh`` starts one)."""
    return _server(mysql_server_url)


def _fresh(server_url: str, create: Callable[[str], tuple[str, str]], drop: Callable[[str, str], None]
           ) -> Iterator[str]:
    """Yield the URL of a fresh schema or database that ``create`` makes on the server; then close
    the ledger's connections to it and ``drop`` it."""
    name, url = create(server_url)
    yield url
    _dispose_ledgers(url)
    drop(server_url, name)


@pytest.fixture
def pg_schema(pg_url: str) -> Iterator[str]:
    """The URL of a fresh, empty schema on the test PostgreSQL server (its ``search_path``)."""
    yield from _fresh(pg_url, new_pg_schema, drop_pg_schema)


@pytest.fixture
def pg_database(pg_url: str) -> Iterator[PgDatabase]:
    """A fresh database on the test PostgreSQL server, that a test can make fail over."""
    db = PgDatabase(pg_url)
    yield db
    _dispose_ledgers(db.url)
    db.drop()


@pytest.fixture
def mysql_database(mysql_url: str) -> Iterator[str]:
    """The URL of a fresh, empty database on the test MariaDB/MySQL server."""
    yield from _fresh(mysql_url, new_mysql_database, drop_mysql_database)
