"""Engines, transactions and the clock of the ledger database: one place for backend quirks.

One engine per URL per process (a forked child builds its own: pooled connections inherited
through ``fork()`` belong to the parent). SQLite gets WAL, a busy timeout and ``BEGIN IMMEDIATE``
for every write transaction, so read-then-write sequences are serialised between processes.
PostgreSQL and MySQL deadlocks / serialization failures roll the transaction back: it is run
again. SQLAlchemy is imported inside functions, so importing this module stays cheap.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import threading
import time
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

_T = TypeVar("_T")

# SQLite waits this long for a lock before giving up ("database is locked").
SQLITE_BUSY_SECONDS = 30.0
# ... except a best-effort writer (:func:`try_write`), which gives up after this long.
SQLITE_TRY_SECONDS = 0.2
# PostgreSQL deadlock / serialization failure; MySQL/MariaDB deadlock and lock wait timeout:
# the transaction was rolled back, running it again is safe.
_RETRY_PGCODES = frozenset({"40001", "40P01"})
_RETRY_MYSQL_ERRNOS = frozenset({1213, 1205})
RETRY_ATTEMPTS = 5
# Rolled-back writes (deadlocks) are run again up to this often: many processes racing for one row
# (the pull lease) can deadlock several times in a row on MySQL/MariaDB, and each try is harmless.
WRITE_RETRY_ATTEMPTS = 10
# Ids per IN (...) list and rows per multi-row INSERT: well under SQLite's 999 bound parameters.
IN_CHUNK = 500
INSERT_CHUNK = 100


class EngineEntry:
    """One engine per URL per process, and whether its schema is known to be current."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.read_engine = engine.execution_options(smscn_read=True)
        self.try_engine = engine.execution_options(smscn_try=True)
        self.schema_ready = False
        self.lock = threading.Lock()
        self.ledger_id: str | None = None  # SmsCnLedger.ledger_id, read once per process


_ENGINES: dict[str, EngineEntry] = {}
_ENGINES_PID = os.getpid()
ENGINES_LOCK = threading.Lock()
#: Per-process memory of housekeeping (maybe_prune), dropped with the engines after a fork.
LAST_MAYBE_PRUNE: dict[str, float] = {}


def create_engine_for(url: str) -> Engine:
    """An engine with the settings a multi-process ledger needs on its backend."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    u = make_url(url)
    if u.get_backend_name() in ("mysql", "mariadb"):
        mysql_engine = create_engine(u, pool_pre_ping=True)

        @event.listens_for(mysql_engine, "connect")
        def _utc_session(dbapi_connection: Any, _record: Any) -> None:
            # UNIX_TIMESTAMP(NOW(6)) reads NOW() in the session's zone: in a zone with daylight
            # saving, the repeated hour in autumn comes out an hour off. UTC has no such hour.
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SET time_zone = '+00:00'")
            finally:
                cursor.close()

        return mysql_engine
    if u.get_backend_name() != "sqlite":
        return create_engine(u, pool_pre_ping=True)

    database = u.database or ""
    memory = database in ("", ":memory:") or database.startswith("file::memory:")
    kwargs: dict[str, Any] = {}
    if memory:
        # One database per process, shared by its threads.
        from sqlalchemy.pool import StaticPool

        kwargs = {"poolclass": StaticPool, "connect_args": {"check_same_thread": False}}
    else:
        if not database.startswith("file:"):
            parent = os.path.dirname(os.path.abspath(database))
            os.makedirs(parent, exist_ok=True)
        kwargs = {"connect_args": {"timeout": SQLITE_BUSY_SECONDS}}
    engine = create_engine(u, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so "begin" below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_SECONDS * 1000)}")
            if not memory:
                # Readers do not block the writer; switching needs a lock: the busy timeout covers it.
                cursor.execute("PRAGMA journal_mode = WAL")
                # A report is handed out once: a committed one must survive a power cut too.
                cursor.execute("PRAGMA synchronous = FULL")
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # Writers take the write lock up front: no lock upgrade half way, no stale snapshot, so
        # read-then-write sequences (schema upgrade, the lease, claims) are serialised between processes.
        options = conn.get_execution_options()
        if options.get("smscn_read"):
            conn.exec_driver_sql("BEGIN")
        elif options.get("smscn_try"):  # (see try_write): wait briefly for the write lock
            conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(SQLITE_TRY_SECONDS * 1000)}")
            try:
                conn.exec_driver_sql("BEGIN IMMEDIATE")
            finally:
                conn.exec_driver_sql(f"PRAGMA busy_timeout = {int(SQLITE_BUSY_SECONDS * 1000)}")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def engine_entry(url: str) -> EngineEntry:
    """The cached engine for ``url`` in this process (a forked child gets engines of its own)."""
    global _ENGINES_PID
    with ENGINES_LOCK:
        if os.getpid() != _ENGINES_PID:
            # Pooled connections inherited through fork() belong to the parent: leave them alone.
            for entry in _ENGINES.values():
                _dispose_after_fork(entry.engine)
            _ENGINES.clear()
            LAST_MAYBE_PRUNE.clear()
            _ENGINES_PID = os.getpid()
        cached = _ENGINES.get(url)
        if cached is None:
            cached = _ENGINES[url] = EngineEntry(create_engine_for(url))
        return cached


def cached_entry(url: str) -> EngineEntry | None:
    """The engine entry of ``url`` if this process built one (for tests of fork safety)."""
    return _ENGINES.get(url)


def drop_entry(url: str) -> EngineEntry | None:
    """Forget the engine of ``url`` in this process; the caller disposes of it."""
    with ENGINES_LOCK:
        return _ENGINES.pop(url, None) if os.getpid() == _ENGINES_PID else None


def _dispose_after_fork(engine: Engine) -> None:
    with contextlib.suppress(TypeError):  # close= exists from SQLAlchemy 1.4.33 on
        engine.dispose(close=False)


def is_retriable(exc: BaseException) -> bool:
    """A deadlock or serialization failure: the database rolled back, the transaction may run again."""
    orig = getattr(exc, "orig", None)
    if getattr(orig, "pgcode", None) in _RETRY_PGCODES:
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()) or ())
    return bool(args) and args[0] in _RETRY_MYSQL_ERRNOS


def run_write(engine: Engine, fn: Callable[[Connection], _T]) -> _T:
    """Run ``fn`` in one write transaction, again if the database rolled it back for a deadlock."""
    from sqlalchemy.exc import DBAPIError

    for attempt in range(WRITE_RETRY_ATTEMPTS):
        try:
            with engine.begin() as conn:
                return fn(conn)
        except DBAPIError as exc:
            if attempt == WRITE_RETRY_ATTEMPTS - 1 or not is_retriable(exc):
                raise
            # jittered: racers that deadlocked together must not retry in lockstep
            time.sleep(random.uniform(0.01, 0.03) * (attempt + 1))
    raise AssertionError("unreachable")  # pragma: no cover


def try_write(entry: EngineEntry, fn: Callable[[Connection], _T]) -> _T | None:
    """Run ``fn`` in one write transaction unless it would wait for a lock: None then.

    For best-effort writes that must never keep a reader waiting behind writers (the page's
    stored counts). SQLite: the write lock is waited for :data:`SQLITE_TRY_SECONDS`; PostgreSQL
    and MySQL/MariaDB: ``fn`` takes its row locks with ``FOR UPDATE NOWAIT`` (see
    :func:`is_lock_busy`), and a lock held by another transaction fails at once.
    """
    from sqlalchemy.exc import DBAPIError

    try:
        with entry.try_engine.begin() as conn:
            return fn(conn)
    except DBAPIError as exc:
        if is_lock_busy(exc):
            return None
        raise


def is_lock_busy(exc: BaseException) -> bool:
    """A lock another transaction holds (NOWAIT, a lock or busy timeout): nothing was written."""
    orig = getattr(exc, "orig", None)
    if (getattr(orig, "pgcode", None) or getattr(orig, "sqlstate", None)) == "55P03":  # lock_not_available
        return True
    args: tuple[Any, ...] = tuple(getattr(orig, "args", ()) or ())
    if args and args[0] in (1205, 3572):  # lock wait timeout (MariaDB NOWAIT); MySQL 8 NOWAIT
        return True
    return "database is locked" in str(orig)


def db_now(conn: Connection) -> float:
    """Unix seconds by the ledger database's clock: one clock for every process and host using it.

    PostgreSQL and MySQL: the server's clock, so hosts sharing the ledger agree on every lease
    slot and timestamp however far their own clocks drift. SQLite: the clock of the host the
    file lives on, read by SQLite itself (millisecond resolution), which every process using
    the file shares.
    """
    name = conn.dialect.name
    if name == "postgresql":
        return float(conn.exec_driver_sql("SELECT EXTRACT(EPOCH FROM clock_timestamp())").scalar_one())
    if name in ("mysql", "mariadb"):
        return float(conn.exec_driver_sql("SELECT UNIX_TIMESTAMP(NOW(6))").scalar_one())
    if name == "sqlite":
        return float(conn.exec_driver_sql("SELECT (julianday('now') - 2440587.5) * 86400.0").scalar_one())
    return time.time()


def chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def unique(values: Iterable[str]) -> list[str]:
    """Distinct strings, sorted: a stable lock order across concurrent transactions."""
    return sorted({str(v) for v in values})
