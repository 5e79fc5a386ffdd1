"""A durable ledger of delivery reports, pull leases, send intents and sent records.

Why it exists: sms.cn hands out every delivery report exactly ONCE, to whoever pulls
``ac=status`` first (and every sent record once, via ``ac=query``). Many sensors and triggers,
in different processes and on different hosts, wait on reports of the same account. If each of
them pulled for itself, one waiter would receive (and drop) the report another is waiting for.
So the rules are:

* **Store before use.** Whoever pulls writes every report it received into the ledger, in one
  transaction, before doing anything else with it (even before looking for its own). A report
  that reached us is then never lost to the other waiters, and storing again is a no-op
  (upsert on ``(account, mobileid)``).
* **Everyone reads the ledger.** A waiter first looks for its own message ids in the ledger and
  only considers pulling when they are not there yet.
* **The pull lease rations pulls.** Per account there is one row with ``last_pull_at``. A waiter
  may pull only if a single conditional ``UPDATE ... SET last_pull_at = now WHERE account = ? AND
  last_pull_at <= now - interval`` changes that row (the row is inserted on first use; of racing
  inserters, only the one whose insert lands wins). The database serialises updates of one
  row (PostgreSQL re-checks the ``WHERE`` against the committed row after waiting for the row
  lock; SQLite runs every write transaction under ``BEGIN IMMEDIATE``), so however many
  processes or hosts race, at most one wins per interval, and the winners' ``now`` values are at
  least ``interval`` apart. The lease is a time slot, not a lock: nothing has to be released, and
  a waiter that dies holding it only delays the next pull by one interval.
* **Send intents make sends retry-safe.** The operator writes deterministic message ids in
  state ``pending`` *before* the send request and marks them afterwards (``accepted``,
  ``rejected``, ``unknown``). An Airflow retry finds the rows of the earlier attempt (an existing
  row is never overwritten by ``record_intents``) and can tell "refused, safe to resend" from
  "may have been sent, do not phone again".

Times are unix seconds (``time.time()``) from the caller's clock, so the guarantees above hold in
the callers' clocks: hosts sharing a ledger should keep them in sync (NTP). A host whose clock is
off by S seconds can make a gap between pulls up to S shorter or longer, never skip the lease.

SQLite (``sqlite:////abs/path.db``) is fine for one host (WAL, busy timeout, many processes);
use PostgreSQL when waiters run on several hosts. Only SQLAlchemy Core is used, and only what
SQLAlchemy 1.4 and 2.x both offer. SQLAlchemy is imported lazily: importing this module is cheap.
Message content (it carries one-time codes) is not stored unless asked for, and phone numbers are
masked in every ``repr``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_smscn.client.models import DeliveryReport, SentRecord
from airflow_provider_smscn.client.redact import mask_mobile

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence

    from sqlalchemy import MetaData, Table
    from sqlalchemy.engine import Connection, Engine

log = logging.getLogger(__name__)

__all__ = ["INTENT_STATES", "SendIntent", "SmsCnLedger"]

#: ``pending``: the request may be in flight, outcome unknown; ``accepted``: the vendor said 100;
#: ``rejected``: the vendor refused definitively (safe to resend); ``unknown``: timeout after sending;
#: ``superseded``: the user opted to resend an uncertain number, under a new message id.
INTENT_STATES = frozenset({"pending", "accepted", "rejected", "unknown", "superseded"})

# Ids per IN (...) list and rows per multi-row INSERT: well under SQLite's 999 bound parameters.
_IN_CHUNK = 500
_INSERT_CHUNK = 100
# SQLite waits this long for a lock before giving up ("database is locked").
_SQLITE_BUSY_SECONDS = 30.0
# PostgreSQL deadlock / serialization failures roll the transaction back: safe to run it again.
_RETRY_PGCODES = frozenset({"40001", "40P01"})
_RETRY_ATTEMPTS = 5
# Key of the PostgreSQL advisory lock that serialises table creation across processes.
_CREATE_LOCK_KEY = 0x534D53434E  # "SMSCN"
# The pull-lease row that rations pruning across processes (not an account: refused as one).
_PRUNE_LEASE_KEY = "__smscn_prune__"
# Dialects whose INSERT has ON CONFLICT DO NOTHING; others insert row by row, catching IntegrityError.
_UPSERT_DIALECTS = frozenset({"postgresql", "sqlite"})

_T = TypeVar("_T")


@dataclass(frozen=True)
class SendIntent:
    """A message id written before its send request, and what became of the request."""

    account: str
    mobileid: str
    mobile: str
    idem_key: str
    state: str
    code: int | None
    created_at: float
    updated_at: float

    def __repr__(self) -> str:
        return (f"SendIntent(account={self.account!r}, mobileid={self.mobileid!r}, "
                f"mobile={mask_mobile(self.mobile)!r}, idem_key={self.idem_key!r}, state={self.state!r}, "
                f"code={self.code!r}, created_at={self.created_at!r}, updated_at={self.updated_at!r})")


# --------------------------------------------------------------------------------------------
# Engines and tables, cached per process.
# --------------------------------------------------------------------------------------------

class _EngineEntry:
    """One engine per URL per process, and whether its tables are known to exist."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.read_engine = engine.execution_options(smscn_read=True)
        self.tables_ready = False
        self.lock = threading.Lock()


_ENGINES: dict[str, _EngineEntry] = {}
_ENGINES_PID = os.getpid()
_ENGINES_LOCK = threading.Lock()
_LAST_MAYBE_PRUNE: dict[str, float] = {}
_METADATA: MetaData | None = None
_METADATA_LOCK = threading.Lock()


def _metadata() -> MetaData:
    """The four tables, built once per process on first use (keeps ``import`` free of SQLAlchemy)."""
    global _METADATA
    with _METADATA_LOCK:
        if _METADATA is None:
            _METADATA = _build_metadata()
        return _METADATA


def _build_metadata() -> MetaData:
    from sqlalchemy import Column, Float, Index, Integer, MetaData, String, Table, Text

    def ts(name: str, nullable: bool = False) -> Column[Any]:
        # Float(53) is a double everywhere (a plain FLOAT is single precision on MySQL).
        return Column(name, Float(precision=53), nullable=nullable)

    md = MetaData()
    Table(
        "smscn_reports", md,
        Column("account", String(255), primary_key=True),
        Column("mobileid", String(255), primary_key=True),
        Column("mobile", String(255), nullable=False),
        Column("resultcode", Integer, nullable=False),
        Column("status", Text, nullable=False),
        Column("retime", Text, nullable=False),
        ts("stored_at"),
        Index("ix_smscn_reports_stored_at", "stored_at"),
    )
    Table(
        "smscn_pull_lease", md,
        Column("account", String(255), primary_key=True),
        Column("holder", Text, nullable=False),
        ts("next_pull_at"),
        ts("last_pull_at", nullable=True),
    )
    Table(
        "smscn_send_intents", md,
        Column("account", String(255), primary_key=True),
        Column("mobileid", String(255), primary_key=True),
        Column("idem_key", String(255), nullable=False),
        Column("mobile", String(255), nullable=False),
        Column("state", String(32), nullable=False),
        Column("code", Integer, nullable=True),
        ts("created_at"),
        ts("updated_at"),
        Index("ix_smscn_send_intents_idem_key", "idem_key"),
        Index("ix_smscn_send_intents_updated_at", "updated_at"),
    )
    Table(
        "smscn_sent_records", md,
        Column("id", Integer, primary_key=True, autoincrement=True),
        Column("account", String(255), nullable=False),
        Column("mobile", String(255), nullable=False),
        Column("sendtime", String(255), nullable=False),
        Column("status", Integer, nullable=False),
        Column("content", Text, nullable=True),
        ts("stored_at"),
        Index("ix_smscn_sent_records_account", "account"),
        Index("ix_smscn_sent_records_stored_at", "stored_at"),
    )
    return md


def _table(name: str) -> Table:
    return _metadata().tables[name]


def _create_engine(url: str) -> Engine:
    """An engine with the settings a multi-process ledger needs on its backend."""
    from sqlalchemy import create_engine, event
    from sqlalchemy.engine import make_url

    u = make_url(url)
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
        kwargs = {"connect_args": {"timeout": _SQLITE_BUSY_SECONDS}}
    engine = create_engine(u, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module so "begin" below decides.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute(f"PRAGMA busy_timeout = {int(_SQLITE_BUSY_SECONDS * 1000)}")
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
        # read-then-write sequences (table creation, the lease) are serialised between processes.
        if conn.get_execution_options().get("smscn_read"):
            conn.exec_driver_sql("BEGIN")
        else:
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _engine_entry(url: str) -> _EngineEntry:
    """The cached engine for ``url`` in this process (a forked child gets engines of its own)."""
    global _ENGINES_PID
    with _ENGINES_LOCK:
        if os.getpid() != _ENGINES_PID:
            # Pooled connections inherited through fork() belong to the parent: leave them alone.
            for entry in _ENGINES.values():
                _dispose_after_fork(entry.engine)
            _ENGINES.clear()
            _LAST_MAYBE_PRUNE.clear()
            _ENGINES_PID = os.getpid()
        cached = _ENGINES.get(url)
        if cached is None:
            cached = _ENGINES[url] = _EngineEntry(_create_engine(url))
        return cached


def _dispose_after_fork(engine: Engine) -> None:
    with contextlib.suppress(TypeError):  # close= exists from SQLAlchemy 1.4.33 on
        engine.dispose(close=False)


def _is_retriable(exc: BaseException) -> bool:
    orig = getattr(exc, "orig", None)
    return getattr(orig, "pgcode", None) in _RETRY_PGCODES


def _chunks(items: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(items), size):
        yield items[start:start + size]


def _unique(values: Iterable[str]) -> list[str]:
    """Distinct strings, sorted: a stable lock order across concurrent transactions."""
    return sorted({str(v) for v in values})


def _check_account(account: str) -> str:
    if not isinstance(account, str) or not account:
        raise ValueError("account must be a non-empty string")
    if account == _PRUNE_LEASE_KEY:
        raise ValueError(f"{_PRUNE_LEASE_KEY!r} is reserved by the ledger")
    return account


# --------------------------------------------------------------------------------------------
# The ledger.
# --------------------------------------------------------------------------------------------

class SmsCnLedger:
    """Reports, pull leases, send intents and sent records of sms.cn accounts in one database.

    Cheap to construct (nothing connects until first use); engines are shared per URL per process.
    """

    def __init__(self, url: str) -> None:
        if not url:
            raise ValueError("a SQLAlchemy URL is required")
        self._url = str(url)

    @property
    def url_for_display(self) -> str:
        """The URL with its password hidden, for logs."""
        from sqlalchemy.engine import make_url

        return make_url(self._url).render_as_string(hide_password=True)

    def __repr__(self) -> str:
        return f"SmsCnLedger({self.url_for_display!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def _entry(self) -> _EngineEntry:
        entry = _engine_entry(self._url)
        if not entry.tables_ready:
            with entry.lock:
                if not entry.tables_ready:
                    self._create_tables(entry.engine)
                    entry.tables_ready = True
        return entry

    @staticmethod
    def _create_tables(engine: Engine) -> None:
        """Create missing tables; many processes may do this at once.

        PostgreSQL: an advisory lock held for the transaction serialises the creators (DDL is
        transactional there, so the next one sees the tables). SQLite: the DDL runs under
        ``BEGIN IMMEDIATE``, the same serialisation. Anything else: a lost race surfaces as an
        error, and the next attempt finds the tables.
        """
        from sqlalchemy.exc import DBAPIError

        md = _metadata()
        for attempt in range(_RETRY_ATTEMPTS):
            try:
                with engine.begin() as conn:
                    if conn.dialect.name == "postgresql":
                        conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_CREATE_LOCK_KEY})")
                    md.create_all(conn, checkfirst=True)
                return
            except DBAPIError:
                if attempt == _RETRY_ATTEMPTS - 1:
                    raise
                log.debug("smscn ledger: table creation raced, retrying", exc_info=True)
                time.sleep(0.05 * (attempt + 1))

    def _write(self, fn: Callable[[Connection], _T]) -> _T:
        """Run ``fn`` in one write transaction, again if PostgreSQL rolled it back for a deadlock."""
        from sqlalchemy.exc import DBAPIError

        engine = self._entry().engine
        for attempt in range(_RETRY_ATTEMPTS):
            try:
                with engine.begin() as conn:
                    return fn(conn)
            except DBAPIError as exc:
                if attempt == _RETRY_ATTEMPTS - 1 or not _is_retriable(exc):
                    raise
                time.sleep(0.02 * (attempt + 1))
        raise AssertionError("unreachable")  # pragma: no cover

    def _read(self, fn: Callable[[Connection], _T]) -> _T:
        with self._entry().read_engine.begin() as conn:
            return fn(conn)

    @staticmethod
    def _insert_absent(conn: Connection, table: Table, rows: list[dict[str, Any]], count: bool = True) -> int:
        """Insert rows whose primary key is absent, keep the others untouched; count inserted rows.

        ``count=False`` trades the exact count for one compiled statement run over all rows
        (executemany): ten times faster for the 10,000 send intents of a large list.
        """
        if not rows:
            return 0
        name = conn.dialect.name
        if name in _UPSERT_DIALECTS:
            if name == "postgresql":
                from sqlalchemy.dialects.postgresql import insert as pg_insert

                make: Any = pg_insert
            else:
                from sqlalchemy.dialects.sqlite import insert as sqlite_insert

                make = sqlite_insert
            if not count:
                conn.execute(make(table).on_conflict_do_nothing(), rows)
                return -1
            inserted = 0
            # One multi-row statement per chunk: its rowcount counts exactly the inserted rows.
            for chunk in _chunks(rows, _INSERT_CHUNK):
                result = conn.execute(make(table).values(list(chunk)).on_conflict_do_nothing())
                inserted += max(result.rowcount, 0)
            return inserted

        from sqlalchemy.exc import IntegrityError

        inserted = 0
        for row in rows:
            savepoint = conn.begin_nested()
            try:
                conn.execute(table.insert().values(**row))
            except IntegrityError:
                savepoint.rollback()
            else:
                savepoint.commit()
                inserted += 1
        return inserted

    # -- delivery reports ----------------------------------------------------------------------

    def store_reports(self, account: str, reports: Iterable[DeliveryReport]) -> int:
        """Store pulled reports in one transaction; a stored report is kept. Returns rows newly stored.

        Call this before doing anything else with a pull: the vendor will not hand them out again.
        """
        _check_account(account)
        now = time.time()
        by_id: dict[str, dict[str, Any]] = {}
        for report in reports:
            mobileid = str(report.mobileid)
            by_id.setdefault(mobileid, {
                "account": account,
                "mobileid": mobileid,
                "mobile": str(report.mobile),
                "resultcode": int(report.resultcode),
                "status": str(report.status or ""),
                "retime": str(report.retime or ""),
                "stored_at": now,
            })
        if not by_id:
            return 0
        rows = [by_id[k] for k in sorted(by_id)]  # sorted: the same lock order in every process
        table = _table("smscn_reports")
        return self._write(lambda conn: self._insert_absent(conn, table, rows))

    def get_reports(self, account: str, mobileids: Iterable[str]) -> dict[str, DeliveryReport]:
        """The stored reports among ``mobileids`` (absent ids are simply missing from the result)."""
        from sqlalchemy import select

        _check_account(account)
        ids = _unique(mobileids)
        if not ids:
            return {}
        t = _table("smscn_reports")

        def run(conn: Connection) -> dict[str, DeliveryReport]:
            found: dict[str, DeliveryReport] = {}
            for chunk in _chunks(ids, _IN_CHUNK):
                stmt = select(t.c.mobile, t.c.mobileid, t.c.resultcode, t.c.status, t.c.retime).where(
                    t.c.account == account, t.c.mobileid.in_(list(chunk)))
                for row in conn.execute(stmt):
                    found[row.mobileid] = DeliveryReport(
                        mobile=row.mobile, mobileid=row.mobileid, resultcode=int(row.resultcode),
                        status=row.status or "", retime=row.retime or "")
            return found

        return self._read(run)

    # -- pull lease ----------------------------------------------------------------------------

    def try_acquire_pull(self, account: str, holder: str, interval: float, now: float | None = None) -> bool:
        """True if the caller may pull ``ac=status`` now: at most once per ``interval`` per account.

        One conditional UPDATE decides: granted if nobody was granted within the caller's own
        ``interval`` (so a waiter polling every 5 s is not held back by one polling every 60 s,
        and pulls never come faster than the shortest interval in use). On first use the row is
        inserted, and of racing inserters only the one whose INSERT lands wins. ``next_pull_at``
        records the winner's next slot (``now + interval``), for people and for waiters to sleep on.
        """
        _check_account(account)
        return self._acquire(account, holder, interval, now)

    def _acquire(self, key: str, holder: str, interval: float, now: float | None) -> bool:
        from sqlalchemy import or_, update

        if interval < 0:
            raise ValueError("interval must not be negative")
        now = time.time() if now is None else float(now)
        t = _table("smscn_pull_lease")

        def run(conn: Connection) -> bool:
            result = conn.execute(
                update(t)
                .where(t.c.account == key,
                       or_(t.c.last_pull_at.is_(None), t.c.last_pull_at <= now - interval))
                .values(holder=str(holder), next_pull_at=now + interval, last_pull_at=now)
            )
            if result.rowcount == 1:
                return True
            row = {"account": key, "holder": str(holder), "next_pull_at": now + interval,
                   "last_pull_at": now}
            return self._insert_absent(conn, t, [row]) == 1

        return self._write(run)

    def last_pull_time(self, account: str) -> float | None:
        """When the lease was last granted for ``account`` (caller's clock), or None if never."""
        from sqlalchemy import select

        _check_account(account)
        t = _table("smscn_pull_lease")
        value = self._read(lambda conn: conn.execute(
            select(t.c.last_pull_at).where(t.c.account == account)).scalar())
        return None if value is None else float(value)

    # -- send intents --------------------------------------------------------------------------

    def record_intents(self, account: str, idem_key: str, items: Sequence[tuple[str, str]]) -> None:
        """Write ``(mobileid, mobile)`` intents as ``pending`` BEFORE sending; existing rows are kept.

        A kept row is the earlier attempt's record: its state tells the retry what to do.
        """
        _check_account(account)
        if not idem_key:
            raise ValueError("idem_key must be a non-empty string")
        now = time.time()
        by_id: dict[str, dict[str, Any]] = {}
        for mobileid, mobile in items:
            by_id.setdefault(str(mobileid), {
                "account": account, "mobileid": str(mobileid), "idem_key": str(idem_key),
                "mobile": str(mobile), "state": "pending", "code": None,
                "created_at": now, "updated_at": now,
            })
        if not by_id:
            return
        rows = [by_id[k] for k in sorted(by_id)]
        table = _table("smscn_send_intents")
        self._write(lambda conn: self._insert_absent(conn, table, rows, count=False))

    def get_intents(self, account: str, mobileids: Iterable[str]) -> dict[str, SendIntent]:
        """The recorded intents among ``mobileids``."""
        from sqlalchemy import select

        _check_account(account)
        ids = _unique(mobileids)
        if not ids:
            return {}
        t = _table("smscn_send_intents")

        def run(conn: Connection) -> dict[str, SendIntent]:
            found: dict[str, SendIntent] = {}
            for chunk in _chunks(ids, _IN_CHUNK):
                stmt = select(t).where(t.c.account == account, t.c.mobileid.in_(list(chunk)))
                for row in conn.execute(stmt):
                    found[row.mobileid] = SendIntent(
                        account=row.account, mobileid=row.mobileid, mobile=row.mobile,
                        idem_key=row.idem_key, state=row.state,
                        code=None if row.code is None else int(row.code),
                        created_at=float(row.created_at), updated_at=float(row.updated_at))
            return found

        return self._read(run)

    def mark_intents(self, account: str, mobileids: Iterable[str], state: str,
                     code: int | None = None) -> None:
        """Record what became of the send request of these message ids (unknown ids are ignored)."""
        from sqlalchemy import update

        _check_account(account)
        if state not in INTENT_STATES:
            raise ValueError(f"state must be one of {sorted(INTENT_STATES)}, not {state!r}")
        ids = _unique(mobileids)
        if not ids:
            return
        now = time.time()
        t = _table("smscn_send_intents")

        def run(conn: Connection) -> None:
            for chunk in _chunks(ids, _IN_CHUNK):
                conn.execute(update(t).where(t.c.account == account, t.c.mobileid.in_(list(chunk)))
                             .values(state=state, code=code, updated_at=now))

        self._write(run)

    # -- sent records --------------------------------------------------------------------------

    def store_sent_records(self, account: str, records: Iterable[SentRecord],
                           keep_content: bool = False) -> int:
        """Store records drained from ``ac=query``; returns how many were stored.

        ``content`` carries one-time codes: it is stored only when ``keep_content`` is true. Every
        record is stored (the vendor hands each out once, and two identical sends are two records).
        """
        _check_account(account)
        now = time.time()
        rows = [{
            "account": account, "mobile": str(r.mobile), "sendtime": str(r.sendtime),
            "status": int(r.status), "content": (r.content if keep_content else None), "stored_at": now,
        } for r in records]
        if not rows:
            return 0
        table = _table("smscn_sent_records")

        def run(conn: Connection) -> int:
            for chunk in _chunks(rows, _INSERT_CHUNK):
                conn.execute(table.insert(), list(chunk))
            return len(rows)

        return self._write(run)

    def count_sent_records(self, account: str) -> int:
        from sqlalchemy import func, select

        _check_account(account)
        t = _table("smscn_sent_records")
        return int(self._read(lambda conn: conn.execute(
            select(func.count()).select_from(t).where(t.c.account == account)).scalar() or 0))

    # -- housekeeping --------------------------------------------------------------------------

    def prune(self, older_than_seconds: float, now: float | None = None) -> dict[str, int]:
        """Delete reports, intents (by last update) and sent records older than that; leases stay.

        Returns the number of deleted rows per table name.
        """
        from sqlalchemy import delete

        if older_than_seconds < 0:
            raise ValueError("older_than_seconds must not be negative")
        cutoff = (time.time() if now is None else float(now)) - older_than_seconds
        reports = _table("smscn_reports")
        intents = _table("smscn_send_intents")
        sent = _table("smscn_sent_records")

        def run(conn: Connection) -> dict[str, int]:
            return {
                "smscn_reports": conn.execute(delete(reports).where(reports.c.stored_at < cutoff)).rowcount,
                "smscn_send_intents": conn.execute(
                    delete(intents).where(intents.c.updated_at < cutoff)).rowcount,
                "smscn_sent_records": conn.execute(delete(sent).where(sent.c.stored_at < cutoff)).rowcount,
            }

        return self._write(run)

    def maybe_prune(self, older_than_seconds: float, every_seconds: float = 3600) -> None:
        """Prune at most once per ``every_seconds`` in this process; cheap to call at every poke.

        Within ``every_seconds`` of its last try a process does not even touch the database. Past
        that, a lease row (the pull lease's mechanism, under a reserved key) lets only one process
        of all prune per period: Airflow runs tasks, and rescheduled pokes, in fresh processes,
        which would otherwise all prune on their first call. Housekeeping must not fail a waiter:
        a database error is logged, and pruning is tried again after ``every_seconds``.
        """
        from sqlalchemy.exc import DBAPIError

        mono = time.monotonic()
        with _ENGINES_LOCK:
            last = _LAST_MAYBE_PRUNE.get(self._url)
            if last is not None and mono - last < every_seconds:
                return
            _LAST_MAYBE_PRUNE[self._url] = mono
        try:
            if not self._acquire(_PRUNE_LEASE_KEY, f"pid-{os.getpid()}", every_seconds, None):
                return
            deleted = self.prune(older_than_seconds)
        except DBAPIError:
            log.warning("smscn ledger %s: pruning failed, will try again later", self.url_for_display,
                        exc_info=True)
            return
        if any(deleted.values()):
            log.info("smscn ledger %s: pruned %s", self.url_for_display, deleted)

    def dispose(self) -> None:
        """Close this process's pooled connections to the ledger (the next use reconnects)."""
        with _ENGINES_LOCK:
            entry = _ENGINES.pop(self._url, None) if os.getpid() == _ENGINES_PID else None
        if entry is not None:
            entry.engine.dispose()
