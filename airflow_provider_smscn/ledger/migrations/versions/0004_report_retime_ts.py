"""Report times as numbers; one spelling per account key.

* ``smscn_reports.retime_ts``: the report's time (Beijing ``retime``) in unix seconds, what the
  latest report of an id is chosen by; an unreadable one takes the latest time of its id stored
  before it (storage order), as :meth:`SmsCnLedger.store_reports` does for new rows.
* The ``account`` column of every table rewritten to the normalised key (no trailing slash, no
  default port, host lowercased). Rows that meet under one key: a lease keeps the later
  ``last_pull_at``, an intent the later ``updated_at``; a report whose ``row_key`` is taken gets
  ``r:<id>`` (no report is dropped); sent records have no key.

Revision ID: 0004_report_retime_ts
Revises: 0002_claims_reports (the lead may rechain it after other new revisions: it depends on
nothing but 0002's tables)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

from airflow_provider_smscn.client.signing import beijing_unix
from airflow_provider_smscn.client.validation import normalise_account_key
from airflow_provider_smscn.ledger.store import inherit_retime

revision = "0004_report_retime_ts"
down_revision = "0002_claims_reports"
branch_labels = None
depends_on = None

_BATCH = 1000


def upgrade() -> None:
    op.add_column("smscn_reports", sa.Column("retime_ts", _double(), nullable=True))
    conn = op.get_bind()
    _normalise_accounts(conn)
    _fill_retime_ts(conn)


def downgrade() -> None:
    raise NotImplementedError("the ledger is not downgraded")


def _double() -> Any:
    from sqlalchemy.dialects.mysql import DOUBLE

    double = DOUBLE(asdecimal=False)
    return sa.Float(precision=53).with_variant(double, "mysql").with_variant(double, "mariadb")


def _tbl(name: str, *columns: str) -> Any:
    return sa.table(name, *(sa.column(c) for c in columns))


def _renames(conn: Any, name: str) -> dict[str, str]:
    t = _tbl(name, "account")
    accounts = [row[0] for row in conn.execute(sa.select(t.c.account).distinct())]
    return {a: normalise_account_key(a) for a in accounts if normalise_account_key(a) != a}


def _normalise_accounts(conn: Any) -> None:
    # Keyed tables: the row that loses a collision goes first, then the rest is renamed.
    lease = _tbl("smscn_pull_lease", "account", "last_pull_at")
    for old, new in _renames(conn, "smscn_pull_lease").items():
        rows = {row.account: row.last_pull_at for row in conn.execute(
            sa.select(lease.c.account, lease.c.last_pull_at).where(lease.c.account.in_([old, new])))}
        if new in rows:
            later_old = (rows[old] or float("-inf")) > (rows[new] or float("-inf"))
            conn.execute(lease.delete().where(lease.c.account == (new if later_old else old)))
        conn.execute(lease.update().where(lease.c.account == old).values(account=new))

    intents = _tbl("smscn_send_intents", "account", "mobileid", "updated_at")
    for old, new in _renames(conn, "smscn_send_intents").items():
        olds = {row.mobileid: row.updated_at for row in conn.execute(
            sa.select(intents.c.mobileid, intents.c.updated_at).where(intents.c.account == old))}
        news = {row.mobileid: row.updated_at for row in conn.execute(
            sa.select(intents.c.mobileid, intents.c.updated_at).where(intents.c.account == new))}
        for mid in olds.keys() & news.keys():
            loser = new if olds[mid] > news[mid] else old
            conn.execute(intents.delete().where(intents.c.account == loser, intents.c.mobileid == mid))
        conn.execute(intents.update().where(intents.c.account == old).values(account=new))

    reports = _tbl("smscn_reports", "id", "account", "row_key")
    for old, new in _renames(conn, "smscn_reports").items():
        taken = {row.row_key for row in conn.execute(
            sa.select(reports.c.row_key).where(reports.c.account == new))}
        for row in conn.execute(sa.select(reports.c.id, reports.c.row_key)
                                .where(reports.c.account == old)).fetchall():
            if row.row_key in taken:
                conn.execute(reports.update().where(reports.c.id == row.id).values(row_key=f"r:{row.id}"))
        conn.execute(reports.update().where(reports.c.account == old).values(account=new))

    records = _tbl("smscn_sent_records", "account")
    for old, new in _renames(conn, "smscn_sent_records").items():
        conn.execute(records.update().where(records.c.account == old).values(account=new))


def _fill_retime_ts(conn: Any) -> None:
    """Every row in storage order, with the one rule of the store (the latest time known per id)."""
    t = _tbl("smscn_reports", "id", "account", "mobileid", "retime", "retime_ts")
    latest: dict[tuple[str, str], float] = {}  # per (account, id)
    last_id: Any = None
    while True:
        stmt = sa.select(t.c.id, t.c.account, t.c.mobileid, t.c.retime).order_by(t.c.id).limit(_BATCH)
        if last_id is not None:
            stmt = stmt.where(t.c.id > last_id)
        rows = conn.execute(stmt).fetchall()
        if not rows:
            return
        batch = [{"row_id": row.id, "mobileid": row.mobileid, "rank_key": (row.account, row.mobileid),
                  "retime_ts": beijing_unix(row.retime)} for row in rows]
        inherit_retime(batch, latest)
        updates = [{"row_id": b["row_id"], "ts": b["retime_ts"]} for b in batch if b["retime_ts"] is not None]
        if updates:
            stmt = t.update().where(t.c.id == sa.bindparam("row_id")).values(retime_ts=sa.bindparam("ts"))
            conn.execute(stmt, updates)
        last_id = rows[-1].id
