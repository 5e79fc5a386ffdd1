"""The ledger's tables at the current schema revision, built lazily (``import`` stays SQLAlchemy-free).

The Alembic migrations under ``migrations/`` lead from the 0.1.0 tables to exactly these; a test
compares an upgraded database with this metadata. Change both together, and ``HEAD_REVISION``.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sqlalchemy import Column, MetaData, Table

#: The Alembic revision these tables correspond to (the newest migration).
HEAD_REVISION = "0007_ledger_meta"
#: Alembic's version table of the ledger: its own name, never Airflow's ``alembic_version``, so
#: a ledger may live in a database that Airflow (or anything else using Alembic) also uses.
VERSION_TABLE = "smscn_alembic_version"
TABLE_NAMES = ("smscn_reports", "smscn_pull_lease", "smscn_send_intents", "smscn_sent_records",
               "smscn_event_cursors", "smscn_balance_readings", "smscn_page_counts", "smscn_ledger_meta")

_METADATA: MetaData | None = None
_METADATA_LOCK = threading.Lock()


def metadata() -> MetaData:
    """The four tables, built once per process on first use."""
    global _METADATA
    with _METADATA_LOCK:
        if _METADATA is None:
            _METADATA = _build_metadata()
        return _METADATA


def table(name: str) -> Table:
    return metadata().tables[name]


def ts(name: str, nullable: bool = False) -> Column[Any]:
    """A unix-seconds timestamp: a double everywhere (a plain FLOAT is single precision on MySQL).

    ``FLOAT(53)`` is what MySQL turns into ``DOUBLE``; saying so keeps the models equal to what
    the server reports (Alembic's comparison of the two).
    """
    from sqlalchemy import Column, Float
    from sqlalchemy.dialects.mysql import DOUBLE

    double = DOUBLE(asdecimal=False)
    kind = Float(precision=53).with_variant(double, "mysql").with_variant(double, "mariadb")  # 1.4: one each
    return Column(name, kind, nullable=nullable)


def report_id_type() -> Any:
    """BIGINT, but INTEGER on SQLite, where only ``INTEGER PRIMARY KEY`` is the autoincrementing rowid."""
    from sqlalchemy import BigInteger, Integer

    return BigInteger().with_variant(Integer(), "sqlite")


#: MySQL/MariaDB: binary collation, so keys compare as exactly as on SQLite and PostgreSQL (the
#: server's default collation would make "ABC" equal "abc" and ignore trailing spaces).
MYSQL_TABLE_OPTIONS: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def _build_metadata() -> MetaData:
    from sqlalchemy import Column, Index, Integer, MetaData, String, Table, Text, UniqueConstraint

    md = MetaData()
    Table(
        # Every pulled report is a row (the vendor may report one id several times, and reports
        # of other systems may have no id). ``id`` orders rows of an account in commit order
        # (writers of one account are serialised), for readers that only want what is new.
        # ``row_key`` makes a batch written twice land once: "p:<pull id>:<position>" (a call
        # without a pull id is a batch of its own). ``retime_ts``: the report's time in unix
        # seconds, what the latest report is chosen by (unreadable: the latest known when stored).
        "smscn_reports", md,
        Column("id", report_id_type(), primary_key=True, autoincrement=True),
        Column("account", String(255), nullable=False),
        Column("row_key", String(128), nullable=False),
        Column("mobileid", String(255), nullable=False),
        Column("mobile", String(255), nullable=False),
        Column("resultcode", Integer, nullable=False),
        Column("status", Text, nullable=False),
        Column("retime", Text, nullable=False),
        ts("stored_at"),
        ts("retime_ts", nullable=True),
        UniqueConstraint("account", "row_key", name="uq_smscn_reports_account_row_key"),
        Index("ix_smscn_reports_account_mobileid", "account", "mobileid"),
        Index("ix_smscn_reports_stored_at", "stored_at"),
        # AUTOINCREMENT: SQLite never reuses an id, even after pruning emptied the table.
        sqlite_autoincrement=True,
        **MYSQL_TABLE_OPTIONS,
    )
    Table(
        "smscn_pull_lease", md,
        Column("account", String(255), primary_key=True),
        Column("holder", Text, nullable=False),
        ts("next_pull_at"),
        ts("last_pull_at", nullable=True),
        **MYSQL_TABLE_OPTIONS,
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
        # Which execution claimed the id (may send it): a zombie cannot overwrite its retry's outcome.
        Column("claimed_by", String(255), nullable=True),
        Index("ix_smscn_send_intents_idem_key", "idem_key"),
        Index("ix_smscn_send_intents_updated_at", "updated_at"),
        **MYSQL_TABLE_OPTIONS,
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
        Index("ix_smscn_sent_records_account_mobile", "account", "mobile"),
        Index("ix_smscn_sent_records_stored_at", "stored_at"),
        **MYSQL_TABLE_OPTIONS,
    )
    from airflow_provider_smscn.ledger.events import add_event_tables

    add_event_tables(md)

    from airflow_provider_smscn.ledger.balance import define_table

    define_table(md)  # balance history (ledger/balance.py)

    from airflow_provider_smscn.ledger import page_counts

    page_counts.define_table(md)  # the sms.cn page's stored counts (ledger/page_counts.py)
    # Facts about the ledger itself: ``ledger_id``, a random id written once when the schema is
    # made, tells two ledgers apart where URLs cannot (two hosts' files at one path, one server
    # under two names).
    Table(
        "smscn_ledger_meta", md,
        Column("name", String(64), primary_key=True),
        Column("value", String(255), nullable=False),
        **MYSQL_TABLE_OPTIONS,
    )
    return md
