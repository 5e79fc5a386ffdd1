"""Bring a ledger database to the current schema; many processes may do this at once."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

from airflow_provider_smscn.ledger.engine import RETRY_ATTEMPTS
from airflow_provider_smscn.ledger.schema import metadata

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

log = logging.getLogger(__name__)

# Key of the PostgreSQL advisory lock / name of the MySQL lock that serialises schema changes.
SCHEMA_LOCK_KEY = 0x534D53434E  # "SMSCN"
MYSQL_LOCK_NAME = "smscn_ledger_schema"


def ensure_schema(engine: Engine) -> None:
    """Create missing tables, serialised between processes.

    PostgreSQL: an advisory lock held for the transaction (DDL is transactional there, so the
    next one sees the tables). SQLite: the DDL runs under ``BEGIN IMMEDIATE``. MySQL: GET_LOCK.
    """
    from sqlalchemy.exc import DBAPIError

    md = metadata()
    for attempt in range(RETRY_ATTEMPTS):
        try:
            with engine.begin() as conn:
                name = conn.dialect.name
                if name == "postgresql":
                    conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY})")
                elif name in ("mysql", "mariadb"):
                    conn.exec_driver_sql(f"SELECT GET_LOCK('{MYSQL_LOCK_NAME}', 120)")
                try:
                    md.create_all(conn, checkfirst=True)
                finally:
                    if name in ("mysql", "mariadb"):
                        conn.exec_driver_sql(f"SELECT RELEASE_LOCK('{MYSQL_LOCK_NAME}')")
            return
        except DBAPIError:
            if attempt == RETRY_ATTEMPTS - 1:
                raise
            log.debug("smscn ledger: schema creation raced, retrying", exc_info=True)
            time.sleep(0.05 * (attempt + 1))
