"""The sms.cn page's counts per 5-minute bucket, shared by every api-server process.

* ``smscn_page_counts``: new table (see ``ledger/page_counts.py``), with its change-counter row.

Revision ID: 0006_page_counts
Revises: 0005_balance_readings
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_page_counts"
down_revision = "0005_balance_readings"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "smscn_page_counts",
        sa.Column("bucket", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("generation", sa.BigInteger, nullable=False),
        sa.Column("counts", sa.Text, nullable=True),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_index("ix_smscn_page_counts_generation", "smscn_page_counts", ["generation"])
    op.bulk_insert(table, [{"bucket": -1, "generation": 0, "counts": None}])  # the change counter


def downgrade() -> None:
    op.drop_table("smscn_page_counts")
