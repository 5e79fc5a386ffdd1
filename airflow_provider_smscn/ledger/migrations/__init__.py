"""Alembic migrations of the ledger's schema (run by ``ledger/migrate.py``, not by Airflow's ``db migrate``).

Each revision is frozen: it spells out the columns as they were then, never importing the
current ``schema.py``. The version table is ``smscn_alembic_version`` (never Airflow's own).
"""
