"""The test databases: the PostgreSQL and MariaDB servers of ``.ci/``, a fresh schema or database
per test, raw reads, and ways to make a database fail (a held SQLite lock, a PostgreSQL failover).

Airflow-free; SQLAlchemy is imported inside the functions.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import subprocess
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.paths import REPO

if TYPE_CHECKING:
    from collections.abc import Iterator

PG_SCRIPT = REPO / ".ci" / "postgres.sh"
MYSQL_SCRIPT = REPO / ".ci" / "mariadb.sh"


#: The fixture (tests/conftest.py) that gives each server backend an empty database.
EMPTY_DATABASE = {"postgresql": "pg_schema", "mysql": "mysql_database"}

def _server_url(env_var: str, script: Path) -> str:
    """``$env_var``, or the URL of the throwaway server that ``script`` starts (its last stdout line)."""
    url = os.environ.get(env_var, "").strip()
    if url:
        return url
    proc = subprocess.run(["bash", str(script)], capture_output=True, text=True, timeout=900, check=False)
    lines = proc.stdout.strip().splitlines()
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f".ci/{script.name} failed (rc={proc.returncode}):\n{proc.stderr[-3000:]}")
    return lines[-1].strip()


def pg_server_url() -> str:
    """``SMSCN_TEST_PG_URL``, or the URL of the throwaway cluster ``.ci/postgres.sh`` starts."""
    return _server_url("SMSCN_TEST_PG_URL", PG_SCRIPT)


def mysql_server_url() -> str:
    """``SMSCN_TEST_MYSQL_URL``, or the URL of the throwaway MariaDB ``.ci/mariadb.sh`` starts."""
    return _server_url("SMSCN_TEST_MYSQL_URL", MYSQL_SCRIPT)


def run_sql(server_url: str, *statements: str) -> None:
    """Run ``statements`` one by one on ``server_url``, each committed at once (DDL, admin commands)."""
    from sqlalchemy import create_engine

    engine = create_engine(server_url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            for sql in statements:
                conn.exec_driver_sql(sql)
    finally:
        engine.dispose()


def new_mysql_database(server_url: str) -> tuple[str, str]:
    """Create a fresh database on the MySQL server; return its name and a URL that uses it."""
    from sqlalchemy.engine import make_url

    name = f"smscn_t_{uuid.uuid4().hex[:12]}"
    run_sql(server_url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    return name, make_url(server_url).set(database=name).render_as_string(hide_password=False)


def drop_mysql_database(server_url: str, name: str) -> None:
    run_sql(server_url, f"DROP DATABASE IF EXISTS `{name}`")


def new_pg_schema(server_url: str) -> tuple[str, str]:
    """Create a fresh schema; return it and a URL whose connections use it as search_path.

    Each test (and every process it spawns) then sees its own, empty ``smscn_`` tables, and the
    ledger creates them itself, as it would on a fresh database.
    """
    from sqlalchemy.engine import make_url

    schema = f"smscn_t_{uuid.uuid4().hex[:12]}"
    run_sql(server_url, f'CREATE SCHEMA "{schema}"')
    url = make_url(server_url).update_query_dict({"options": f"-csearch_path={schema}"})
    return schema, url.render_as_string(hide_password=False)


def drop_pg_schema(server_url: str, schema: str) -> None:
    run_sql(server_url, f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


def ensure_sqlite_parent(url: str) -> None:
    """Create the directory of a SQLite URL's file (the ledger does it itself; raw engines do not)."""
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() == "sqlite" and u.database:
        Path(u.database).parent.mkdir(parents=True, exist_ok=True)


def query(url: str, sql: str, params: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
    """Rows of ``sql`` read through a separate engine: what is really in the database."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(row) for row in conn.execute(text(sql), params or {})]
    finally:
        engine.dispose()


class SqliteWriteLock:
    """Another connection holding ``BEGIN IMMEDIATE`` on a SQLite file: writers wait, then fail."""

    def __init__(self, path: Path) -> None:
        self.conn = sqlite3.connect(str(path), isolation_level=None, timeout=0, check_same_thread=False)
        self.held = False

    def hold(self) -> None:
        self.conn.execute("BEGIN IMMEDIATE")
        self.held = True

    def release(self) -> None:
        if self.held:
            self.conn.execute("ROLLBACK")
            self.held = False

    def close(self) -> None:
        self.release()
        self.conn.close()


class PgDatabase:
    """A fresh PostgreSQL database that can be made unreachable (a failover) and brought back."""

    def __init__(self, server_url: str) -> None:
        from sqlalchemy.engine import make_url

        self.name = f"smscn_w_{uuid.uuid4().hex[:10]}"
        self.server_url = server_url
        self.url = make_url(server_url).set(database=self.name).render_as_string(hide_password=False)
        run_sql(self.server_url, f'CREATE DATABASE "{self.name}"')

    def go_away(self) -> None:
        """Refuse new connections and end the open ones, as a server failing over does."""
        run_sql(self.server_url, f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'")

    def come_back(self) -> None:
        run_sql(self.server_url, f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    def drop(self) -> None:
        self.come_back()
        run_sql(self.server_url,
                f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'",
                f'DROP DATABASE IF EXISTS "{self.name}"')


def short_sqlite_busy_timeout(monkeypatch: Any) -> None:
    """SQLite ledgers opened from now on give up on a lock after 0.2 s (not 30 s), and a refused
    batch is tried again at once: the failure the tests cause comes in a fraction of a second."""
    try:
        from airflow_provider_smscn.ledger import engine
    except ImportError:  # 0.1.0 kept the setting in ledger.py: lets these tests run against it too
        import airflow_provider_smscn.ledger as engine  # type: ignore[no-redef]

        monkeypatch.setattr(engine, "_SQLITE_BUSY_SECONDS", 0.2)
    else:
        monkeypatch.setattr(engine, "SQLITE_BUSY_SECONDS", 0.2)
    try:
        from airflow_provider_smscn.delivery import pulling
    except ImportError:
        return
    monkeypatch.setattr(pulling, "STORE_RETRY_WAIT", 0.0)


@contextlib.contextmanager
def ledger_selects(ledger: Any) -> Iterator[list[tuple[str, Any]]]:
    """The SELECT statements on ledger tables run inside the block, with their parameters (for
    checking each one's query plan)."""
    from sqlalchemy import event

    engine = ledger._entry().engine
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "smscn_" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        yield seen
    finally:
        event.remove(engine, "before_cursor_execute", keep)
