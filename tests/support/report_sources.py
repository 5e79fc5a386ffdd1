"""Report sources for the waiting tests: a real ledger, a real client on the sandbox, a ledger made to fail.

Everything here is Airflow-free, as the delivery package is.
"""

from __future__ import annotations

import dataclasses
import json
import uuid
from typing import TYPE_CHECKING, Any

from tests.support.databases import SqliteWriteLock, short_sqlite_busy_timeout

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


def ledger_locked_after_a_pull(monkeypatch: Any, tmp_path: Path, sandbox: Sandbox, numbers: list[str]
                               ) -> tuple[Any, list[str], SqliteWriteLock]:
    """Call ``numbers`` through the hook on a SQLite ledger (reports ready at once); from the first
    pull that brings reports on, another connection holds the ledger's write lock, so storing the
    pulled batch fails until the caller releases it. Returns the hook, the ids and the lock."""
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    short_sqlite_busy_timeout(monkeypatch)
    db = tmp_path / "ledger.db"
    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", f"sqlite:///{db}")
    monkeypatch.setenv("AIRFLOW__SMSCN__SPOOL_DIR", str(tmp_path / "spool"))
    sandbox.state.report_delay = 0
    hook = SmsCnHook()
    ids = hook.send_voice_code(numbers, "700001", {"code": "1"}).mobileids
    hook.ledger.last_pull_time(hook.account_key)  # tables first
    lock = SqliteWriteLock(db)
    real_pull = SmsCnHook._pull_from_vendor

    def pull_then_lock(self: Any) -> Any:
        reports = real_pull(self)
        if reports and not lock.held:
            lock.hold()
        return reports

    monkeypatch.setattr(SmsCnHook, "_pull_from_vendor", pull_then_lock)
    return hook, ids, lock
