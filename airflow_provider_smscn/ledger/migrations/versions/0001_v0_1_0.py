"""The ledger's tables as provider 0.1.0 created them (without a version table).

A ledger written by 0.1.0 already has them: only missing ones are created, so adopting such a
ledger and creating a new one are the same path.

Revision ID: 0001_v0_1_0
Revises: (none)
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0001_v0_1_0"
down_revision = None
branch_labels = None
depends_on = None


# MySQL/MariaDB: binary collation, so keys compare exactly (ignored by other backends).
_MYSQL: dict[str, Any] = {"mysql_charset": "utf8mb4", "mysql_collate": "utf8mb4_bin"}


def _ts(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Float(precision=53), nullable=nullable)


def upgrade() -> None:
    existing = set(sa.inspect(op.get_bind()).get_table_names())
    if "smscn_reports" not in existing:
        op.create_table(
            "smscn_reports",
            sa.Column("account", sa.String(255), primary_key=True),
            sa.Column("mobileid", sa.String(255), primary_key=True),
            sa.Column("mobile", sa.String(255), nullable=False),
            sa.Column("resultcode", sa.Integer, nullable=False),
            sa.Column("status", sa.Text, nullable=False),
            sa.Column("retime", sa.Text, nullable=False),
            _ts("stored_at"),
            **_MYSQL,
        )
        op.create_index("ix_smscn_reports_stored_at", "smscn_reports", ["stored_at"])
    if "smscn_pull_lease" not in existing:
        op.create_table(
            "smscn_pull_lease",
            sa.Column("account", sa.String(255), primary_key=True),
            sa.Column("holder", sa.Text, nullable=False),
            _ts("next_pull_at"),
            _ts("last_pull_at", nullable=True),
            **_MYSQL,
        )
    if "smscn_send_intents" not in existing:
        op.create_table(
            "smscn_send_intents",
            sa.Column("account", sa.String(255), primary_key=True),
            sa.Column("mobileid", sa.String(255), primary_key=True),
            sa.Column("idem_key", sa.String(255), nullable=False),
            sa.Column("mobile", sa.String(255), nullable=False),
            sa.Column("state", sa.String(32), nullable=False),
            sa.Column("code", sa.Integer, nullable=True),
            _ts("created_at"),
            _ts("updated_at"),
            **_MYSQL,
        )
        op.create_index("ix_smscn_send_intents_idem_key", "smscn_send_intents", ["idem_key"])
        op.create_index("ix_smscn_send_intents_updated_at", "smscn_send_intents", ["updated_at"])
    if "smscn_sent_records" not in existing:
        op.create_table(
            "smscn_sent_records",
            sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
            sa.Column("account", sa.String(255), nullable=False),
            sa.Column("mobile", sa.String(255), nullable=False),
            sa.Column("sendtime", sa.String(255), nullable=False),
            sa.Column("status", sa.Integer, nullable=False),
            sa.Column("content", sa.Text, nullable=True),
            _ts("stored_at"),
            **_MYSQL,
        )
        op.create_index("ix_smscn_sent_records_account", "smscn_sent_records", ["account"])
        op.create_index("ix_smscn_sent_records_stored_at", "smscn_sent_records", ["stored_at"])


def downgrade() -> None:
    for name in ("smscn_sent_records", "smscn_send_intents", "smscn_pull_lease", "smscn_reports"):
        op.drop_table(name)
