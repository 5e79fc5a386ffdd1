"""A ledger as provider 0.1.0 wrote it: its tables (a saved copy of 0.1.0's definitions) and rows.

0.1.0 created its tables with ``MetaData.create_all`` and had no version table. The rows are
written the way 0.1.0 wrote them (one report per (account, mobileid), caller-clock stamps).
"""

from __future__ import annotations

from typing import Any


def metadata_0_1_0() -> Any:
    """0.1.0's ``_build_metadata()``, verbatim."""
    from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text

    def ts(name: str, nullable: bool = False) -> Column[Any]:
        return Column(name, Float(precision=53), nullable=nullable)

    md = MetaData()
    Table(
        "smscn_reports", md,
        Column("account", String(255), primary_key=True),
        Column("mobileid", String(255), primary_key=True),
        Column("mobile", String(255), nullable=False),
        Column("resultcode", Integer, nullable=False),
        Column("status", Text, nullable=False),
        Column("retime", Text, nullable=False),
        ts("stored_at"),
        Index("ix_smscn_reports_stored_at", "stored_at"),
    )
    Table(
        "smscn_pull_lease", md,
        Column("account", String(255), primary_key=True),
        Column("holder", Text, nullable=False),
        ts("next_pull_at"),
        ts("last_pull_at", nullable=True),
    )
    Table(
        "smscn_send_intents", md,
        Column("account", String(255), primary_key=True),
        Column("mobileid", String(255), primary_key=True),
        Column("idem_key", String(255), nullable=False),
        Column("mobile", String(255), nullable=False),
        Column("state", String(32), nullable=False),
        Column("code", Integer, nullable=True),
        ts("created_at"),
        ts("updated_at"),
        Index("ix_smscn_send_intents_idem_key", "idem_key"),
        Index("ix_smscn_send_intents_updated_at", "updated_at"),
    )
    Table(
        "smscn_sent_records", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("account", String(255), nullable=False),
        Column("mobile", String(255), nullable=False),
        Column("sendtime", String(255), nullable=False),
        Column("status", Integer, nullable=False),
        Column("content", Text, nullable=True),
        ts("stored_at"),
        Index("ix_smscn_sent_records_account", "account"),
        Index("ix_smscn_sent_records_stored_at", "stored_at"),
    )
    return md


#: What the 0.1.0 ledger holds: counts per table, for the tests to check every row is kept.
N_REPORTS, N_INTENTS, N_SENT = 300, 200, 50
STATES = ("pending", "accepted", "rejected", "unknown", "superseded")


def legacy_report(i: int) -> dict[str, Any]:
    return {"account": "acct", "mobileid": f"old-{i:05d}", "mobile": f"139{i:08d}",
            "resultcode": 100 if i % 4 else 134, "status": "DELIVRD" if i % 4 else "UNDELIV",
            "retime": f"2025-01-01 10:{(i // 60) % 60:02d}:{i % 60:02d}", "stored_at": 1_750_000_000.0 + i}


def legacy_intent(i: int) -> dict[str, Any]:
    return {"account": "acct", "mobileid": f"{i:020d}", "idem_key": "dag|task|run|-1",
            "mobile": f"138{i:08d}", "state": STATES[i % len(STATES)],
            "code": 100 if STATES[i % len(STATES)] == "accepted" else None,
            "created_at": 1_750_000_000.0 + i, "updated_at": 1_750_000_100.0 + i}


def write_ledger_0_1_0(url: str) -> None:
    """Create 0.1.0's tables in the empty database at ``url`` and fill them as 0.1.0 did."""
    from sqlalchemy import create_engine

    from tests.support.databases import ensure_sqlite_parent

    ensure_sqlite_parent(url)
    md = metadata_0_1_0()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            md.create_all(conn)
            t = md.tables
            conn.execute(t["smscn_reports"].insert(), [legacy_report(i) for i in range(N_REPORTS)])
            conn.execute(t["smscn_send_intents"].insert(), [legacy_intent(i) for i in range(N_INTENTS)])
            conn.execute(t["smscn_pull_lease"].insert(), [
                {"account": "acct", "holder": "host:1:abc", "next_pull_at": 1_750_000_005.0,
                 "last_pull_at": 1_750_000_000.0},
                {"account": "__smscn_prune__", "holder": "pid-1", "next_pull_at": 1_750_003_600.0,
                 "last_pull_at": 1_750_000_000.0}])
            conn.execute(t["smscn_sent_records"].insert(), [
                {"account": "acct", "mobile": f"137{i:08d}", "sendtime": "2025-01-01 10:00:00", "status": 1,
                 "content": None, "stored_at": 1_750_000_000.0 + i} for i in range(N_SENT)])
    finally:
        engine.dispose()
