"""Event cursors of asset watchers (delivery events, balance crossings).

Revision ID: 0003_event_cursors
Revises: 0002_claims_reports
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003_event_cursors"
down_revision = "0002_claims_reports"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "smscn_event_cursors",
        sa.Column("watch_key", sa.String(255), primary_key=True),
        sa.Column("position", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("holder", sa.Text, nullable=False),
        sa.Column("last_batch", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Float(precision=53), nullable=False),
        # MySQL/MariaDB: keys compare exactly, as on SQLite and PostgreSQL (frozen here, as 0001 has it)
        mysql_charset="utf8mb4", mysql_collate="utf8mb4_bin",
    )


def downgrade() -> None:
    op.drop_table("smscn_event_cursors")
