"""Test-wide Airflow settings, set before anything imports airflow (its config is read at import).

Every test session gets a throwaway AIRFLOW_HOME with a SQLite metadata DB and ledger, and the
example DAGs as its dags folder: nothing touches a developer's own Airflow. Nothing here imports
Airflow, so the Airflow-free suites (tests/client, tests/sandbox) also run where it is not
installed (``bash .ci/setup core``).
"""

from __future__ import annotations

import os
import tempfile
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
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


@pytest.fixture(scope="session")
def pg_url() -> str:
    """URL of the test PostgreSQL server (``SMSCN_TEST_PG_URL``, else ``.ci/postgres.sh`` starts one)."""
    from tests.ledger.ledger_helpers import pg_server_url

    try:
        return pg_server_url()
    except RuntimeError as exc:  # a failure to provide PostgreSQL fails the tests; it never skips them
        pytest.fail(str(exc))
