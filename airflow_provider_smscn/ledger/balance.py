"""Balance history: every balance reading kept with its time, account and who read it.

Why in the ledger: the vendor only tells the balance now; a history lets a user (and the sms.cn
page) see how fast it drains and how close it runs to the thresholds of their balance checks.
Rows are pruned with the rest of the ledger (:meth:`SmsCnLedger.prune`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection

TABLE = "smscn_balance_readings"
#: Where a reading came from.
SOURCES = frozenset({"check", "hook", "test"})
_NAME_LEN = 250


@dataclass(frozen=True)
class BalanceReading:
    """One balance reading; ``threshold`` is the balance check's ``min_balance`` when it made one."""

    account: str
    balance: int
    read_at: float
    source: str = "hook"
    threshold: int | None = None
    dag_id: str | None = None
    task_id: str | None = None
    run_id: str | None = None


def define_table(md: MetaData) -> None:
    """Add the table to the ledger's metadata (schema.py calls this; revision 0003 creates it)."""
    from sqlalchemy import BigInteger, Column, Index, String, Table

    from airflow_provider_smscn.ledger.schema import MYSQL_TABLE_OPTIONS, report_id_type, ts

    Table(
        TABLE, md,
        Column("id", report_id_type(), primary_key=True, autoincrement=True),
        Column("account", String(255), nullable=False),
        Column("balance", BigInteger, nullable=False),
        Column("threshold", BigInteger, nullable=True),
        Column("source", String(16), nullable=False),
        Column("dag_id", String(_NAME_LEN), nullable=True),
        Column("task_id", String(_NAME_LEN), nullable=True),
        Column("run_id", String(_NAME_LEN), nullable=True),
        ts("read_at"),
        Index("ix_smscn_balance_readings_account_read_at", "account", "read_at"),
        Index("ix_smscn_balance_readings_read_at", "read_at"),
        sqlite_autoincrement=True,
        **MYSQL_TABLE_OPTIONS,
    )


def _short(value: str | None) -> str | None:
    return None if not value else str(value)[:_NAME_LEN]


class BalanceHistoryMixin:
    """The balance-history statements of :class:`~airflow_provider_smscn.ledger.SmsCnLedger`."""

    _write: Callable[[Callable[[Connection], Any]], Any]
    _read: Callable[[Callable[[Connection], Any]], Any]

    def record_balance(self, account: str, balance: int, *, source: str = "hook",
                       threshold: int | None = None, dag_id: str | None = None,
                       task_id: str | None = None, run_id: str | None = None) -> float:
        """Keep one reading (time by the ledger's clock); returns that time."""
        from airflow_provider_smscn.ledger.engine import db_now
        from airflow_provider_smscn.ledger.schema import table

        if not isinstance(account, str) or not account:
            raise ValueError("account must be a non-empty string")
        if source not in SOURCES:
            raise ValueError(f"source must be one of {sorted(SOURCES)}, not {source!r}")
        row: dict[str, Any] = {"account": account, "balance": int(balance),
               "threshold": None if threshold is None else int(threshold), "source": source,
               "dag_id": _short(dag_id), "task_id": _short(task_id), "run_id": _short(run_id)}
        tbl = table(TABLE)

        def run(conn: Connection) -> float:
            row["read_at"] = db_now(conn)
            conn.execute(tbl.insert().values(**row))
            return float(row["read_at"])

        return float(self._write(run))

    def get_balance_history(self, account: str | None = None, since: float | None = None,
                            until: float | None = None, limit: int = 10_000) -> list[BalanceReading]:
        """Readings oldest first, of one account (or all), read at or after ``since`` (unix seconds).

        At most ``limit`` readings: the newest ones when there are more.
        """
        from sqlalchemy import select

        from airflow_provider_smscn.ledger.schema import table

        if limit < 1:
            raise ValueError("limit must be at least 1")
        t = table(TABLE)
        stmt = select(t)
        if account is not None:
            stmt = stmt.where(t.c.account == account)
        if since is not None:
            stmt = stmt.where(t.c.read_at >= float(since))
        if until is not None:
            stmt = stmt.where(t.c.read_at < float(until))
        stmt = stmt.order_by(t.c.read_at.desc(), t.c.id.desc()).limit(int(limit))

        def run(conn: Connection) -> list[BalanceReading]:
            return [BalanceReading(account=r.account, balance=int(r.balance), read_at=float(r.read_at),
                                   source=r.source,
                                   threshold=None if r.threshold is None else int(r.threshold),
                                   dag_id=r.dag_id, task_id=r.task_id, run_id=r.run_id)
                    for r in conn.execute(stmt)]

        return list(reversed(self._read(run)))

    @staticmethod
    def _prune_balance(conn: Connection, cutoff: float) -> dict[str, int]:
        """Delete readings older than ``cutoff`` (called inside :meth:`SmsCnLedger.prune`)."""
        from sqlalchemy import delete

        from airflow_provider_smscn.ledger.schema import table

        t = table(TABLE)
        return {TABLE: int(conn.execute(delete(t).where(t.c.read_at < cutoff)).rowcount)}
