"""Balance history: every balance reading with its time, account and the task that made it.

* ``smscn_balance_readings``: new table (the sms.cn page's balance chart, ``get_balance_history``).

Revision ID: 0005_balance_readings
Revises: 0004_report_retime_ts
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005_balance_readings"
down_revision = "0004_report_retime_ts"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from sqlalchemy.dialects.mysql import DOUBLE

    op.create_table(
        "smscn_balance_readings",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True,
                  autoincrement=True),
        sa.Column("account", sa.String(255), nullable=False),
        sa.Column("balance", sa.BigInteger, nullable=False),
        sa.Column("threshold", sa.BigInteger, nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("dag_id", sa.String(250), nullable=True),
        sa.Column("task_id", sa.String(250), nullable=True),
        sa.Column("run_id", sa.String(250), nullable=True),
        sa.Column("read_at", sa.Float(precision=53).with_variant(DOUBLE(asdecimal=False), "mysql")
                  .with_variant(DOUBLE(asdecimal=False), "mariadb"), nullable=False),
        sqlite_autoincrement=True,
        mysql_charset="utf8mb4",
        mysql_collate="utf8mb4_bin",
    )
    op.create_index("ix_smscn_balance_readings_account_read_at", "smscn_balance_readings",
                    ["account", "read_at"])
    op.create_index("ix_smscn_balance_readings_read_at", "smscn_balance_readings", ["read_at"])


def downgrade() -> None:
    op.drop_table("smscn_balance_readings")
