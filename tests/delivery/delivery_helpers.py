"""Helpers of the waiting tests: a real ledger, a real client on the sandbox, a ledger made to fail.

Everything here is Airflow-free, as the delivery package is.
"""

from __future__ import annotations

import dataclasses
import json
import sqlite3
import uuid
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_smscn.delivery import ReportSource
    from airflow_provider_smscn.sandbox import Sandbox


def sandbox_client(sandbox: Sandbox) -> Any:
    """An SmsCnClient on the sandbox's account, built from its connection (no Airflow)."""
    from airflow_provider_smscn.client import SmsCnClient

    conn = json.loads(sandbox.connection_json())
    return SmsCnClient(conn["login"], password=conn["password"], secret_key=conn["extra"]["secret_key"],
                       base_url=conn["host"])


def send(sandbox: Sandbox, count: int) -> list[str]:
    """Place ``count`` calls with known message ids; returns the ids."""
    client = sandbox_client(sandbox)
    base = uuid.uuid4().int % 10**12
    ids = [f"{base:012d}{i:06d}" for i in range(count)]
    numbers = [f"139{i:08d}" for i in range(count)]
    for start in range(0, count, 1000):
        client.send_voice_code(numbers[start:start + 1000], "700001", {"code": "1"},
                               mobileids=ids[start:start + 1000])
    return ids


def make_source(sandbox: Sandbox, ledger_url: str, spool_dir: Path, **changes: Any) -> ReportSource:
    """The account's ReportSource as the hook builds it, with a real ledger and spool."""
    from airflow_provider_smscn.delivery import ReportSource, Spool
    from airflow_provider_smscn.ledger import SmsCnLedger

    client = sandbox_client(sandbox)
    ledger = SmsCnLedger(ledger_url)
    source = ReportSource(ledger=ledger, account=client.account_key, pull=client.pull_delivery_reports,
                          pull_interval=0.0, spool=Spool(spool_dir, ledger.url_for_display))
    return dataclasses.replace(source, **changes)


def stored_ids(source: ReportSource) -> list[str]:
    """Every report row of the account, oldest first (one entry per row: duplicates show)."""
    rows, _cursor = source.ledger.get_reports_after(source.account, 0, limit=1_000_000)
    return [report.mobileid for _row_id, report in rows]


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
        self._admin(f'CREATE DATABASE "{self.name}"')

    def _admin(self, *statements: str) -> None:
        from sqlalchemy import create_engine

        engine = create_engine(self.server_url, isolation_level="AUTOCOMMIT")
        try:
            with engine.connect() as conn:
                for sql in statements:
                    conn.exec_driver_sql(sql)
        finally:
            engine.dispose()

    def go_away(self) -> None:
        """Refuse new connections and end the open ones, as a server failing over does."""
        self._admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS false',
                    f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'")

    def come_back(self) -> None:
        self._admin(f'ALTER DATABASE "{self.name}" ALLOW_CONNECTIONS true')

    def drop(self) -> None:
        self.come_back()
        self._admin(f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{self.name}'",
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
