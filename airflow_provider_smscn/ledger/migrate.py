"""Bring a ledger database to the current schema revision on first use; many processes may try at once.

Alembic keeps the revision in ``smscn_alembic_version`` (never Airflow's ``alembic_version``: a
ledger may share a database with Airflow). A ledger written by 0.1.0 has the tables but no
version table: the first revision creates only missing tables, so adopting it and creating a
new ledger are one path, and every row is kept by the later revisions.

Only one process migrates: PostgreSQL takes a transaction-scoped advisory lock (and its DDL is
transactional: the others then see the finished schema), SQLite runs everything under
``BEGIN IMMEDIATE``, MySQL takes ``GET_LOCK`` (its DDL commits as it goes, so the lock is held
until the last revision is stamped). The others wait, re-read the version, and find it current.
A process whose schema is current pays one small read, and never imports Alembic.
"""

from __future__ import annotations

import logging
import os
import time
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.ledger.engine import RETRY_ATTEMPTS
from airflow_provider_smscn.ledger.schema import HEAD_REVISION, VERSION_TABLE

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

# Key of the PostgreSQL advisory lock / name of the MySQL lock that serialise schema changes.
SCHEMA_LOCK_KEY = 0x534D53434E  # "SMSCN"
MYSQL_LOCK_NAME = "smscn_ledger_schema"
MYSQL_LOCK_WAIT_SECONDS = 300
MIGRATIONS_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "migrations")


def current_revision(conn: Connection) -> str | None:
    """The ledger's schema revision, or None where it has no version table (new, or 0.1.0)."""
    from sqlalchemy import inspect

    if not inspect(conn).has_table(VERSION_TABLE):
        return None
    row = conn.exec_driver_sql(f"SELECT version_num FROM {VERSION_TABLE}").first()
    return None if row is None else str(row[0])


def ensure_schema(engine: Engine) -> None:
    """Make the ledger's schema current (a no-op, one read, when it already is)."""
    with engine.execution_options(smscn_read=True).connect() as conn:
        if current_revision(conn) == HEAD_REVISION:
            return
    from sqlalchemy.exc import DBAPIError

    for attempt in range(RETRY_ATTEMPTS):
        try:
            _upgrade_locked(engine)
            return
        except DBAPIError:
            if attempt == RETRY_ATTEMPTS - 1:
                raise
            log.debug("smscn ledger: schema upgrade raced, retrying", exc_info=True)
            time.sleep(0.05 * (attempt + 1))


def _upgrade_locked(engine: Engine) -> None:
    with engine.begin() as conn:
        name = conn.dialect.name
        mysql = name in ("mysql", "mariadb")
        if name == "postgresql":
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
        elif mysql:
            got = conn.exec_driver_sql(
                f"SELECT GET_LOCK('{MYSQL_LOCK_NAME}', {MYSQL_LOCK_WAIT_SECONDS})").scalar()
            if got != 1:
                raise RuntimeError(f"smscn ledger: could not take the MySQL lock {MYSQL_LOCK_NAME!r} "
                                   f"within {MYSQL_LOCK_WAIT_SECONDS} s to upgrade the schema")
        try:
            before = current_revision(conn)
            if before != HEAD_REVISION:
                upgrade_to_head(conn)
                log.info("smscn ledger: schema upgraded from %s to %s", before or "0.1.0/empty",
                         HEAD_REVISION)
        finally:
            if mysql:
                conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{MYSQL_LOCK_NAME}')")


def upgrade_to_head(conn: Connection) -> None:
    """Run the Alembic revisions from the ledger's current one to the head, on ``conn``."""
    from alembic.operations import Operations
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    script = ScriptDirectory(MIGRATIONS_DIR)
    if script.get_current_head() != HEAD_REVISION:  # pragma: no cover - a packaging mistake
        raise RuntimeError(f"smscn ledger: migrations head {script.get_current_head()} is not "
                           f"schema.HEAD_REVISION {HEAD_REVISION}")

    def upgrade(rev: Any, _context: Any) -> Any:
        return script._upgrade_revs(HEAD_REVISION, rev)

    context = MigrationContext.configure(
        connection=conn, opts={"version_table": VERSION_TABLE, "script": script, "fn": upgrade})
    # Alembic narrates every step at INFO into the task log of whichever task upgrades first; the
    # one line ``_upgrade_locked`` logs says what happened.
    alembic_log = logging.getLogger("alembic")
    level = alembic_log.level
    alembic_log.setLevel(max(level, logging.WARNING))
    try:
        with Operations.context(context):
            context.run_migrations()
    finally:
        alembic_log.setLevel(level)
