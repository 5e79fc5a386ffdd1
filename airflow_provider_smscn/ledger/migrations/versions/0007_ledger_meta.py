"""The ledger's own id: a deferred sensor's trigger checks that its triggerer uses the same ledger.

* ``smscn_ledger_meta``: new table, with the ``ledger_id`` row (a random id, one per database).

Revision ID: 0007_ledger_meta
Revises: 0006_page_counts
"""

from __future__ import annotations

import uuid

import sqlalchemy as sa
from alembic import op

revision = "0007_ledger_meta"
down_revision = "0006_page_counts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    table = op.create_table(
        "smscn_ledger_meta",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("value", sa.String(255), nullable=False),
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.bulk_insert(table, [{"name": "ledger_id", "value": uuid.uuid4().hex}])


def downgrade() -> None:
    op.drop_table("smscn_ledger_meta")
