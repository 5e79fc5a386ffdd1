"""Claims on send intents; every delivery report a row of its own.

* ``smscn_send_intents.claimed_by``: which execution claimed an id (NULL for older rows).
* ``smscn_reports`` keyed on a surrogate ``id`` (was ``(account, mobileid)``, which kept one
  report per id and dropped the rest), with ``row_key`` unique per account. Kept rows get
  ``row_key = 'm:' || mobileid`` and ids in the order they were stored.
* ``smscn_sent_records``: an index on (account, mobile), to find the records of numbers.

Revision ID: 0002_claims_reports
Revises: 0001_v0_1_0
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002_claims_reports"
down_revision = "0001_v0_1_0"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("smscn_send_intents", sa.Column("claimed_by", sa.String(255), nullable=True))
    op.create_index("ix_smscn_sent_records_account_mobile", "smscn_sent_records", ["account", "mobile"])

    new = op.create_table(
        "smscn_reports_v2",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("row_key", sa.String(128), nullable=False),
        sa.Column("mobileid", sa.String(255), nullable=False),
        sa.Column("mobile", sa.String(255), nullable=False),
        sa.Column("resultcode", sa.Integer, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("retime", sa.Text, nullable=False),
        sa.Column("stored_at", sa.Float(precision=53), nullable=False),
        sa.UniqueConstraint("account", "row_key", name="uq_smscn_reports_account_row_key"),
        sqlite_autoincrement=True,
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    old = sa.table("smscn_reports", *(sa.column(c) for c in (
        "account", "mobileid", "mobile", "resultcode", "status", "retime", "stored_at")))
    columns = ["account", "row_key", "mobileid", "mobile", "resultcode", "status", "retime", "stored_at"]
    rows = sa.select(old.c.account, sa.literal("m:").concat(old.c.mobileid), old.c.mobileid, old.c.mobile,
                     old.c.resultcode, old.c.status, old.c.retime, old.c.stored_at
                     ).order_by(old.c.stored_at, old.c.account, old.c.mobileid)
    op.execute(new.insert().from_select(columns, rows))
    op.drop_table("smscn_reports")
    op.rename_table("smscn_reports_v2", "smscn_reports")
    op.create_index("ix_smscn_reports_account_mobileid", "smscn_reports", ["account", "mobileid"])
    op.create_index("ix_smscn_reports_stored_at", "smscn_reports", ["stored_at"])


def downgrade() -> None:
    raise NotImplementedError("the ledger is not downgraded: several reports per id cannot go back")
