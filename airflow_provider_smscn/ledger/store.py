"""SmsCnLedger: delivery reports, pull leases, send intents and sent records in one database.

See ``airflow_provider_smscn/ledger/__init__.py`` for the rules it keeps; this module holds the
statements. Only SQLAlchemy Core, only what SQLAlchemy 1.4 and 2.x both offer.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from airflow_provider_smscn.client.models import DeliveryReport, SentRecord
from airflow_provider_smscn.client.redact import mask_mobile
from airflow_provider_smscn.client.signing import beijing_unix
from airflow_provider_smscn.ledger import engine as _engine
from airflow_provider_smscn.ledger import page_counts
from airflow_provider_smscn.ledger.balance import BalanceHistoryMixin
from airflow_provider_smscn.ledger.engine import IN_CHUNK, INSERT_CHUNK, chunks, db_now, unique
from airflow_provider_smscn.ledger.events import EventCursorsMixin, prune_taken
from airflow_provider_smscn.ledger.schema import table

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence

    from sqlalchemy import Table
    from sqlalchemy.engine import Connection

    from airflow_provider_smscn.ledger.engine import EngineEntry

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: ``pending``: the request may be in flight, outcome unknown; ``accepted``: the vendor said 100;
#: ``rejected``: the vendor refused definitively (safe to resend); ``unknown``: timeout after sending;
#: ``superseded``: the user opted to resend an uncertain number, under a new message id.
INTENT_STATES = frozenset({"pending", "accepted", "rejected", "unknown", "superseded"})
#: States whose request may have reached the vendor, outcome unknown (``superseded`` ones too,
#: but nobody waits for their proof any more).
UNCERTAIN_STATES = frozenset({"pending", "unknown"})

# The pull-lease row that rations pruning across processes (not an account: refused as one).
_PRUNE_LEASE_KEY = "__smscn_prune__"
# Dialects with an insert-if-absent statement (ON CONFLICT DO NOTHING / ON DUPLICATE KEY UPDATE
# with a no-op) for uncounted bulk inserts; others insert row by row in savepoints.
_UPSERT_DIALECTS = frozenset({"postgresql", "sqlite", "mysql", "mariadb"})
# Of those, the ones whose row count is the number of rows inserted. Not MySQL: SQLAlchemy connects
# with CLIENT_FOUND_ROWS, so a duplicate met by the no-op update counts 1 like an insert.
_COUNTED_UPSERT_DIALECTS = frozenset({"postgresql", "sqlite"})
_MAX_PULL_ID = 96


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
    claimed_by: str | None = None

    def __repr__(self) -> str:
        return (f"SendIntent(account={self.account!r}, mobileid={self.mobileid!r}, "
                f"mobile={mask_mobile(self.mobile)!r}, idem_key={self.idem_key!r}, state={self.state!r}, "
                f"code={self.code!r}, created_at={self.created_at!r}, updated_at={self.updated_at!r}, "
                f"claimed_by={self.claimed_by!r})")


def _check_account(account: str) -> str:
    if not isinstance(account, str) or not account:
        raise ValueError("account must be a non-empty string")
    if account == _PRUNE_LEASE_KEY:
        raise ValueError(f"{_PRUNE_LEASE_KEY!r} is reserved by the ledger")
    return account


def _check_name(value: str, what: str) -> str:
    if not isinstance(value, str) or not value:
        raise ValueError(f"{what} must be a non-empty string")
    return value


def inherit_retime(rows: Iterable[dict[str, Any]], latest: dict[Any, float]) -> None:
    """Fill ``retime_ts`` of rows (in storage order) whose time is unreadable with the latest time
    known for their id so far (``latest``, updated; keyed by ``row["rank_key"]`` if present, else
    the id): the one rule, shared with the migration that fills the column."""
    for row in rows:
        key, ts = row.get("rank_key", row["mobileid"]), row["retime_ts"]
        if ts is None:
            row["retime_ts"] = latest.get(key)
        elif ts > latest.get(key, float("-inf")):
            latest[key] = ts


def _intent_from_row(row: Any) -> SendIntent:
    return SendIntent(account=row.account, mobileid=row.mobileid, mobile=row.mobile, idem_key=row.idem_key,
                      state=row.state, code=None if row.code is None else int(row.code),
                      created_at=float(row.created_at), updated_at=float(row.updated_at),
                      claimed_by=row.claimed_by)


def _max_matching(times: Sequence[float], windows: Sequence[tuple[float, float]]) -> int:
    """How many of the record ``times`` (sorted) the intents' ``windows`` can explain, one each.

    Greedy, optimal for points and intervals: each time in order takes, of the windows holding
    it, the one that closes first.
    """
    free = sorted(windows, key=lambda w: w[1])
    matched = 0
    for at in times:
        for i, (start, end) in enumerate(free):
            if start <= at <= end:
                del free[i]
                matched += 1
                break
    return matched


def _report_from_row(row: Any) -> DeliveryReport:
    return DeliveryReport(mobile=row.mobile, mobileid=row.mobileid, resultcode=int(row.resultcode),
                          status=row.status or "", retime=row.retime or "")


class SmsCnLedger(EventCursorsMixin, BalanceHistoryMixin):
    """Reports, pull leases, send intents and sent records of sms.cn accounts in one database.

    Cheap to construct (nothing connects until first use); engines are shared per URL per process.

    :param url: a SQLAlchemy URL, e.g. ``sqlite:////abs/path/smscn_ledger.db`` or
        ``postgresql+psycopg2://user:pass@db/smscn``; the hook uses ``[smscn] ledger_url``.
    """

    def __init__(self, url: str) -> None:
        if not url:
            raise ValueError("a SQLAlchemy URL is required")
        self._url = str(url)

    @property
    def url_for_display(self) -> str:
        """The URL with its password hidden, for logs (the one rendering: ledger.checks.display_url)."""
        from airflow_provider_smscn.ledger.checks import display_url

        return display_url(self._url)

    def __repr__(self) -> str:
        return f"SmsCnLedger({self.url_for_display!r})"

    # -- plumbing ------------------------------------------------------------------------------

    def _entry(self) -> EngineEntry:
        from airflow_provider_smscn.ledger.migrate import ensure_schema

        entry = _engine.engine_entry(self._url)
        if not entry.schema_ready:
            with entry.lock:
                if not entry.schema_ready:
                    ensure_schema(entry.engine)
                    entry.schema_ready = True
        return entry

    def _write(self, fn: Callable[[Connection], Any]) -> Any:
        """Run ``fn`` in one write transaction, again if the database rolled it back for a deadlock."""
        return _engine.run_write(self._entry().engine, fn)

    def _read(self, fn: Callable[[Connection], Any]) -> Any:
        with self._entry().read_engine.begin() as conn:
            return fn(conn)

    def _read_by_id(self, account: str, mobileids: Iterable[str], select_chunk: Callable[[list[str]], Any],
                    item: Callable[[Any], _T]) -> dict[str, _T]:
        """``{mobileid: item(row)}`` for the first row of each id that ``select_chunk(ids)`` returns.

        The ids are read in ``IN`` lists of at most ``IN_CHUNK`` (the databases' limits on bound
        parameters); a statement ordered best row first per id gives that row.
        """
        _check_account(account)
        ids = unique(mobileids)
        if not ids:
            return {}

        def run(conn: Connection) -> dict[str, _T]:
            found: dict[str, _T] = {}
            for chunk in chunks(ids, IN_CHUNK):
                for row in conn.execute(select_chunk(list(chunk))):
                    found.setdefault(row.mobileid, item(row))
            return found

        return dict(self._read(run))

    @staticmethod
    def _insert_absent(conn: Connection, tbl: Table, rows: list[dict[str, Any]], count: bool = True) -> int:
        """Insert rows whose key is absent, keep the others untouched; count inserted rows.

        ``count=False`` trades the exact count for one compiled statement run over all rows
        (executemany): ten times faster for the 10,000 send intents of a large list.
        """
        if not rows:
            return 0
        name = conn.dialect.name
        if name in _UPSERT_DIALECTS and not count:
            conn.execute(_insert_ignore_factory(name)(tbl), rows)
            return -1
        if name in _COUNTED_UPSERT_DIALECTS:
            make = _insert_ignore_factory(name)
            inserted = 0
            # One multi-row statement per chunk: its rowcount counts exactly the inserted rows.
            for chunk in chunks(rows, INSERT_CHUNK):
                result = conn.execute(make(tbl).values(list(chunk)))
                inserted += max(result.rowcount, 0)
            return inserted

        from sqlalchemy.exc import IntegrityError

        inserted = 0
        for row in rows:
            savepoint = conn.begin_nested()
            try:
                conn.execute(tbl.insert().values(**row))
            except IntegrityError:
                savepoint.rollback()
            else:
                savepoint.commit()
                inserted += 1
        return inserted

    def _now(self, conn: Connection, now: float | None = None) -> float:
        return db_now(conn) if now is None else float(now)

    # -- delivery reports ----------------------------------------------------------------------

    def store_reports(self, account: str, reports: Iterable[DeliveryReport],
                      pull_id: str | None = None) -> int:
        """Store every pulled report in one transaction; returns rows newly stored.

        Call this before doing anything else with a pull: the vendor will not hand them out again.
        Every report becomes a row (several for one id, and those without an id, too). With a
        ``pull_id`` (one per pull, kept with the batch), storing the same batch again, after a
        lost commit or from a spool, adds nothing: rows are keyed on (pull id, position).
        Without one, the call is a batch of its own (a fresh pull id): two identical reports, e.g.
        two calls of other systems to one number in one second, stay two rows.

        ``retime_ts`` (what :meth:`get_reports` ranks by) is the report's time in unix seconds; a
        report whose time cannot be read takes the latest time known for its id when stored (or
        none): it ranks by storage order, never above or below every readable time.
        """
        _check_account(account)
        if pull_id is not None and (not isinstance(pull_id, str) or not pull_id
                                    or len(pull_id) > _MAX_PULL_ID):
            raise ValueError(f"pull_id must be a non-empty string of at most {_MAX_PULL_ID} characters")
        if pull_id is None:
            pull_id = uuid.uuid4().hex
        rows: list[dict[str, Any]] = [{
            "account": account, "row_key": f"p:{pull_id}:{position}",
            "mobileid": str(report.mobileid), "mobile": str(report.mobile),
            "resultcode": int(report.resultcode), "status": str(report.status or ""),
            "retime": str(report.retime or ""), "retime_ts": beijing_unix(report.retime),
        } for position, report in enumerate(reports)]
        if not rows:
            return 0
        tbl = table("smscn_reports")

        def run(conn: Connection) -> int:
            self._lock_account(conn, account)
            now = db_now(conn)
            if any(row["retime_ts"] is None for row in rows):
                self._inherit_retime(conn, account, rows)
            for row in rows:
                row["stored_at"] = now
            stored = self._insert_absent(conn, tbl, rows)
            page_counts.finish_write(conn, now)  # (a late commit marks its frozen bucket)
            return stored

        return int(self._write(run))

    @staticmethod
    def _inherit_retime(conn: Connection, account: str, rows: list[dict[str, Any]]) -> None:
        """Give each row with an unreadable time the latest time known for its id (stored or
        earlier in the batch): it then ranks after what was known, by storage order."""
        from sqlalchemy import func, select

        t = table("smscn_reports")
        ids = unique(row["mobileid"] for row in rows if row["retime_ts"] is None)
        latest: dict[str, float] = {}
        for chunk in chunks(ids, IN_CHUNK):
            stmt = (select(t.c.mobileid, func.max(t.c.retime_ts))
                    .where(t.c.account == account, t.c.mobileid.in_(list(chunk)))
                    .group_by(t.c.mobileid))
            latest.update({mid: float(ts) for mid, ts in conn.execute(stmt) if ts is not None})
        inherit_retime(rows, latest)

    def _lock_account(self, conn: Connection, account: str) -> None:
        """Serialise report writers of one account, so report ids grow in commit order.

        A reader that asks "what came after id N" then never misses a row committed late with a
        smaller id. The account's lease row is the lock (created if absent, never pulled);
        SQLite's BEGIN IMMEDIATE already serialises every writer.
        """
        from sqlalchemy import select

        if conn.dialect.name == "sqlite":
            return
        lease = table("smscn_pull_lease")
        stmt = select(lease.c.account).where(lease.c.account == account).with_for_update()
        if conn.execute(stmt).first() is None:
            self._insert_absent(conn, lease, [{"account": account, "holder": "", "next_pull_at": 0.0,
                                               "last_pull_at": None}])
            conn.execute(stmt).first()

    def get_reports(self, account: str, mobileids: Iterable[str]) -> dict[str, DeliveryReport]:
        """Per stored id among ``mobileids``, its latest report (absent ids are missing from the result).

        Latest by ``retime_ts`` (the report's time; see :meth:`store_reports` for unreadable
        ones), then the one stored last; ranked in SQL. So a delivered report that follows a
        failure wins, and a waiter sees the call's final fate.
        """
        from sqlalchemy import func, select

        t = table("smscn_reports")

        def latest_first(chunk: list[str]) -> Any:
            # rows with no time at all rank below any time (-1: before 1970)
            return (select(t.c.id, t.c.mobile, t.c.mobileid, t.c.resultcode, t.c.status, t.c.retime)
                    .where(t.c.account == account, t.c.mobileid.in_(chunk))
                    .order_by(t.c.mobileid, func.coalesce(t.c.retime_ts, -1.0).desc(), t.c.id.desc()))

        return self._read_by_id(account, mobileids, latest_first, _report_from_row)

    def get_reports_after(self, account: str, cursor: int, limit: int = 1000, upto: int | None = None
                          ) -> tuple[list[tuple[int, DeliveryReport]], int]:
        """Reports of ``account`` stored after ``cursor`` (oldest first, at most ``limit``, ids up to
        ``upto`` if given); the new cursor.

        Start with 0 (everything kept) or :meth:`report_cursor` (only what comes from now on).
        Ids grow in commit order per account, so reading on from the returned cursor misses nothing.
        """
        from sqlalchemy import select

        _check_account(account)
        if limit < 1:
            raise ValueError("limit must be at least 1")
        t = table("smscn_reports")

        def run(conn: Connection) -> list[tuple[int, DeliveryReport]]:
            stmt = (select(t.c.id, t.c.mobile, t.c.mobileid, t.c.resultcode, t.c.status, t.c.retime)
                    .where(t.c.account == account, t.c.id > int(cursor)).order_by(t.c.id).limit(int(limit)))
            if upto is not None:
                stmt = stmt.where(t.c.id <= int(upto))
            return [(int(row.id), _report_from_row(row)) for row in conn.execute(stmt)]

        rows = self._read(run)
        return rows, (rows[-1][0] if rows else int(cursor))

    def report_cursor(self, account: str) -> int:
        """The cursor after the newest stored report of ``account`` (0 if none)."""
        from sqlalchemy import func, select

        _check_account(account)
        t = table("smscn_reports")
        value = self._read(lambda conn: conn.execute(
            select(func.max(t.c.id)).where(t.c.account == account)).scalar())
        return int(value or 0)

    # -- pull lease ----------------------------------------------------------------------------

    def try_acquire_pull(self, account: str, holder: str, interval: float, now: float | None = None) -> bool:
        """True if the caller may pull ``ac=status`` now: at most once per ``interval`` per account.

        One conditional UPDATE decides: granted if nobody was granted within the caller's own
        ``interval`` (so a waiter polling every 5 s is not held back by one polling every 60 s,
        and pulls never come faster than the shortest interval in use). On first use the row is
        inserted, and of racing inserters only the one whose INSERT lands wins. Times come from
        the database's clock where it has one (``now`` overrides it, for tests); a pull time more
        than one interval in the future (a host clock that was ahead) counts as stale.
        """
        return self.acquire_pull_slot(account, holder, interval, now) is not None

    def acquire_pull_slot(self, account: str, holder: str, interval: float,
                          now: float | None = None) -> float | None:
        """:meth:`try_acquire_pull`, returning the granted slot's time (ledger clock), or None."""
        _check_account(account)
        _check_name(holder, "holder")
        return self._acquire(account, holder, interval, now)

    def _acquire(self, key: str, holder: str, interval: float, now: float | None) -> float | None:
        from sqlalchemy import or_, select, update

        if interval < 0:
            raise ValueError("interval must not be negative")
        t = table("smscn_pull_lease")

        def run(conn: Connection) -> float | None:
            # The clock is read only once this transaction holds the lease row's lock (SQLite: the
            # write lock, from BEGIN IMMEDIATE), so a caller that waited for the lock never
            # compares a stale time: granted slots follow each other in commit order.
            if conn.dialect.name != "sqlite":
                conn.execute(select(t.c.account).where(t.c.account == key).with_for_update()).first()
            at = self._now(conn, now)
            result = conn.execute(
                update(t)
                .where(t.c.account == key,
                       or_(t.c.last_pull_at.is_(None), t.c.last_pull_at <= at - interval,
                           t.c.last_pull_at > at + interval))
                .values(holder=str(holder), next_pull_at=at + interval, last_pull_at=at)
            )
            if result.rowcount == 1:
                return at
            row = {"account": key, "holder": str(holder), "next_pull_at": at + interval, "last_pull_at": at}
            return at if self._insert_absent(conn, t, [row]) == 1 else None

        granted = self._write(run)
        return None if granted is None else float(granted)

    def renew_pull(self, account: str, holder: str, interval: float) -> bool:
        """Extend the lease holder's slot (pull again at once), only while ``holder`` still holds it.

        Drains a backlog: a pull that came back full is followed by another, still one puller per
        account, since nobody else can be granted the lease while the holder keeps renewing it.
        """
        from sqlalchemy import update

        _check_account(account)
        _check_name(holder, "holder")
        if interval < 0:
            raise ValueError("interval must not be negative")
        t = table("smscn_pull_lease")

        def run(conn: Connection) -> bool:
            at = db_now(conn)
            result = conn.execute(update(t).where(t.c.account == account, t.c.holder == holder)
                                  .values(next_pull_at=at + interval, last_pull_at=at))
            return bool(result.rowcount == 1)

        return bool(self._write(run))

    def last_pull_time(self, account: str) -> float | None:
        """When the lease was last granted for ``account`` (the ledger's clock), or None if never."""
        from sqlalchemy import select

        _check_account(account)
        t = table("smscn_pull_lease")
        value = self._read(lambda conn: conn.execute(
            select(t.c.last_pull_at).where(t.c.account == account)).scalar())
        return None if value is None else float(value)

    def known_ledger_id(self) -> str | None:
        """:meth:`ledger_id` if this process has read it already (no I/O), else None."""
        return _engine.engine_entry(self._url).ledger_id

    def ledger_id(self, fresh: bool = False) -> str:
        """This ledger's own id (random, written once with the schema): two ledgers never share one.

        A URL cannot tell ledgers apart: each host's default file sits at the same path, and one
        server may have two names. A deferring sensor hands its ledger's id to its trigger, which
        compares it with its triggerer's. ``fresh`` reads it again (a ledger reset since).
        """
        entry = self._entry()
        if entry.ledger_id is not None and not fresh:  # one read per process and ledger
            return entry.ledger_id
        from sqlalchemy import select

        t = table("smscn_ledger_meta")

        def read(conn: Connection) -> str | None:
            value = conn.execute(select(t.c.value).where(t.c.name == "ledger_id")).scalar()
            return None if value is None else str(value)

        value = self._read(read)
        if value is None:  # the row deleted by hand: a new id, the first writer's wins
            import uuid

            self._write(lambda conn: self._insert_absent(conn, t, [{"name": "ledger_id",
                                                                    "value": uuid.uuid4().hex}]))
            value = self._read(read)
        entry.ledger_id = str(value)
        return entry.ledger_id

    def pull_due(self, account: str, interval: float) -> bool:
        """A cheap read: could a waiter with this ``interval`` be granted the lease now?

        Compares with the same clock and rule as :meth:`try_acquire_pull` (a host whose clock is
        behind the database's is not held back), so only waiters that may win try the write.
        """
        from sqlalchemy import select

        _check_account(account)
        t = table("smscn_pull_lease")

        def run(conn: Connection) -> bool:
            last = conn.execute(select(t.c.last_pull_at).where(t.c.account == account)).scalar()
            if last is None:
                return True
            at = db_now(conn)
            return bool(float(last) <= at - interval or float(last) > at + interval)

        return bool(self._read(run))

    # -- send intents --------------------------------------------------------------------------

    def record_intents(self, account: str, idem_key: str, items: Sequence[tuple[str, str]]) -> None:
        """Write ``(mobileid, mobile)`` intents as ``pending`` BEFORE sending; existing rows are kept.

        A kept row is the earlier attempt's record: its state tells the retry what to do. Use
        :meth:`claim_intents` to learn which ids this caller may send.
        """
        _check_account(account)
        _check_name(idem_key, "idem_key")
        rows = self._intent_rows(account, idem_key, items, None)
        if not rows:
            return
        tbl = table("smscn_send_intents")

        def run(conn: Connection) -> None:
            now = db_now(conn)
            for row in rows:
                row["created_at"] = row["updated_at"] = now
            self._insert_absent(conn, tbl, rows, count=False)

        self._write(run)

    @staticmethod
    def _intent_rows(account: str, idem_key: str, items: Sequence[tuple[str, str]],
                     claimant: str | None) -> list[dict[str, Any]]:
        by_id: dict[str, dict[str, Any]] = {}
        for mobileid, mobile in items:
            by_id.setdefault(str(mobileid), {
                "account": account, "mobileid": str(mobileid), "idem_key": str(idem_key),
                "mobile": str(mobile), "state": "pending", "code": None, "claimed_by": claimant,
            })
        return [by_id[k] for k in sorted(by_id)]  # sorted: the same lock order in every process

    def claim_intents(self, account: str, idem_key: str, items: Sequence[tuple[str, str]],
                      claimant: str) -> set[str]:
        """Claim ``(mobileid, mobile)`` ids for sending; returns exactly the ids THIS call claimed.

        An id is claimed by inserting its intent (``pending``, ``claimed_by=claimant``) or by
        moving it from ``rejected`` back to ``pending``; each is a conditional write whose effect
        is checked, so of executions racing for an id (a zombie and its retry) exactly one gets
        it. Only the claimed ids may be sent. Ids in any other state are left as they are.
        """
        _check_account(account)
        _check_name(idem_key, "idem_key")
        _check_name(claimant, "claimant")
        rows = self._intent_rows(account, idem_key, items, claimant)
        if not rows:
            return set()

        def run(conn: Connection) -> set[str]:
            now = db_now(conn)
            for row in rows:
                row["created_at"] = row["updated_at"] = now
            name = conn.dialect.name
            if name == "sqlite":
                return self._claim_serialised(conn, account, rows, claimant, now)
            if name == "postgresql":
                return self._claim_returning(conn, account, rows, claimant, now)
            return self._claim_row_by_row(conn, account, rows, claimant, now)

        return set(self._write(run))

    @staticmethod
    def _claim_values(claimant: str, now: float) -> dict[str, Any]:
        return {"state": "pending", "code": None, "claimed_by": claimant, "updated_at": now}

    def _claim_serialised(self, conn: Connection, account: str, rows: list[dict[str, Any]],
                          claimant: str, now: float) -> set[str]:
        """SQLite: the transaction holds the database's write lock, so read-then-write is exact."""
        from sqlalchemy import select, update

        t = table("smscn_send_intents")
        ids = [r["mobileid"] for r in rows]
        states: dict[str, str] = {}
        for chunk in chunks(ids, IN_CHUNK):
            stmt = select(t.c.mobileid, t.c.state).where(t.c.account == account,
                                                         t.c.mobileid.in_(list(chunk)))
            states.update((row.mobileid, row.state) for row in conn.execute(stmt))
        absent = [r for r in rows if r["mobileid"] not in states]
        if absent:
            conn.execute(t.insert(), absent)
        rejected = [m for m in ids if states.get(m) == "rejected"]
        for chunk in chunks(rejected, IN_CHUNK):
            result = conn.execute(update(t).where(t.c.account == account, t.c.mobileid.in_(list(chunk)),
                                                  t.c.state == "rejected")
                                  .values(**self._claim_values(claimant, now)))
            if result.rowcount != len(chunk):  # cannot happen under the write lock: say so if it does
                raise RuntimeError("smscn ledger: a claim changed under the write lock")
        return {r["mobileid"] for r in absent} | set(rejected)

    def _claim_returning(self, conn: Connection, account: str, rows: list[dict[str, Any]],
                         claimant: str, now: float) -> set[str]:
        """PostgreSQL: INSERT .. ON CONFLICT DO NOTHING / UPDATE .. WHERE state = 'rejected', RETURNING.

        A racing transaction's uncommitted row makes ours wait, then re-check: only rows this
        statement really inserted or moved come back.
        """
        from sqlalchemy import update
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        t = table("smscn_send_intents")
        claimed: set[str] = set()
        for chunk in chunks(rows, INSERT_CHUNK):
            inserted = pg_insert(t).values(list(chunk)).on_conflict_do_nothing().returning(t.c.mobileid)
            claimed.update(row[0] for row in conn.execute(inserted))
        rest = [r["mobileid"] for r in rows if r["mobileid"] not in claimed]
        for ids in chunks(rest, IN_CHUNK):
            stmt = (update(t)
                    .where(t.c.account == account, t.c.mobileid.in_(list(ids)), t.c.state == "rejected")
                    .values(**self._claim_values(claimant, now)).returning(t.c.mobileid))
            claimed.update(row[0] for row in conn.execute(stmt))
        return claimed

    def _claim_row_by_row(self, conn: Connection, account: str, rows: list[dict[str, Any]],
                          claimant: str, now: float) -> set[str]:
        """MySQL and others: one conditional statement per id, its row count says who won."""
        from sqlalchemy import update

        t = table("smscn_send_intents")
        claimed: set[str] = set()
        for row in rows:
            if self._insert_absent(conn, t, [row]) == 1:
                claimed.add(row["mobileid"])
                continue
            result = conn.execute(update(t).where(t.c.account == account, t.c.mobileid == row["mobileid"],
                                                  t.c.state == "rejected")
                                  .values(**self._claim_values(claimant, now)))
            if result.rowcount == 1:
                claimed.add(row["mobileid"])
        return claimed

    def get_intents(self, account: str, mobileids: Iterable[str]) -> dict[str, SendIntent]:
        """The recorded intents among ``mobileids``."""
        from sqlalchemy import select

        t = table("smscn_send_intents")  # one row per (account, mobileid): its primary key

        def of_ids(chunk: list[str]) -> Any:
            return select(t).where(t.c.account == account, t.c.mobileid.in_(chunk))

        return self._read_by_id(account, mobileids, of_ids, _intent_from_row)

    def mark_intents(self, account: str, mobileids: Iterable[str], state: str,
                     code: int | None = None, claimant: str | None = None) -> None:
        """Record what became of the send request of these message ids (unknown ids are ignored).

        With ``claimant``, only rows that execution claimed are updated: a zombie execution
        cannot overwrite the outcome its retry recorded.
        """
        from sqlalchemy import update

        _check_account(account)
        if state not in INTENT_STATES:
            raise ValueError(f"state must be one of {sorted(INTENT_STATES)}, not {state!r}")
        if claimant is not None:
            _check_name(claimant, "claimant")
        ids = unique(mobileids)
        if not ids:
            return
        t = table("smscn_send_intents")

        def run(conn: Connection) -> None:
            now = db_now(conn)
            buckets = page_counts.buckets_for_intents(conn, account, ids, state, claimant)
            for chunk in chunks(ids, IN_CHUNK):
                where = [t.c.account == account, t.c.mobileid.in_(list(chunk))]
                if claimant is not None:
                    where.append(t.c.claimed_by == claimant)
                conn.execute(update(t).where(*where).values(state=state, code=code, updated_at=now))
            # last: the counter's lock is held only to commit (only accepted intents are counted)
            page_counts.finish_write(conn, now if state == "accepted" else None, buckets)

        self._write(run)

    def supersede_intents(self, account: str, mobileids: Iterable[str]) -> set[str]:
        """Mark ids ``superseded`` only while still uncertain (``pending`` / ``unknown``); returns those.

        A conditional write per id: an id whose 100 (or proof) was recorded in the meantime is
        left ``accepted`` and not returned, so the caller does not call its number again.
        """
        from sqlalchemy import update

        _check_account(account)
        ids = unique(mobileids)
        if not ids:
            return set()
        t = table("smscn_send_intents")

        def run(conn: Connection) -> set[str]:
            now = db_now(conn)
            done: set[str] = set()
            for mid in ids:
                result = conn.execute(update(t).where(t.c.account == account, t.c.mobileid == mid,
                                                      t.c.state.in_(sorted(UNCERTAIN_STATES)))
                                      .values(state="superseded", updated_at=now))
                if result.rowcount == 1:
                    done.add(mid)
            return done

        return set(self._write(run))

    def get_intents_by_keys(self, account: str, idem_keys: Iterable[str],
                            mobiles: Iterable[str]) -> list[SendIntent]:
        """Intents recorded under these idem keys for these numbers (e.g. a 0.1.0 run's rows)."""
        from sqlalchemy import select

        _check_account(account)
        keys = unique(idem_keys)
        numbers = set(unique(mobiles))
        if not keys or not numbers:
            return []
        t = table("smscn_send_intents")

        def run(conn: Connection) -> list[SendIntent]:
            stmt = select(t).where(t.c.account == account, t.c.idem_key.in_(keys)).order_by(t.c.mobileid)
            return [_intent_from_row(row) for row in conn.execute(stmt) if row.mobile in numbers]

        return list(self._read(run))

    def prove_by_sent_records(self, account: str, mobileids: Iterable[str], slack: float) -> set[str]:
        """Mark uncertain intents ``accepted`` whose call the stored sent records prove; returns those.

        A record (``ac=query``) names a number and a time, not a message id, so it proves an
        intent's call only if no other intent of the number accounts for it. Every intent of the
        number in the ledger that may have called it competes for the records sent after this
        intent was written (minus ``slack`` seconds: whole seconds, another clock): ``accepted``
        ones sent between their creation and their last update, uncertain ones (``pending``,
        ``unknown``, ``superseded``) at any time after their creation, ``rejected`` ones never.
        Proven only if those others cannot account for all of these records (a maximum
        matching, each intent one record at most); so one record proves at most one intent.
        Decided and written in one transaction holding the account's lock, so every process
        agrees. A call of the number by something that does not use this ledger is not seen.
        """
        from sqlalchemy import select, update

        from airflow_provider_smscn.client.signing import beijing_unix

        _check_account(account)
        ids = unique(mobileids)
        if not ids:
            return set()
        intents = table("smscn_send_intents")
        sent = table("smscn_sent_records")

        def run(conn: Connection) -> set[str]:
            self._lock_account(conn, account)
            targets: dict[str, Any] = {}
            for chunk in chunks(ids, IN_CHUNK):
                targets.update((row.mobileid, row) for row in conn.execute(select(intents).where(
                    intents.c.account == account, intents.c.mobileid.in_(list(chunk)),
                    intents.c.state.in_(sorted(UNCERTAIN_STATES)))))
            numbers = unique(row.mobile for row in targets.values())
            times: dict[str, list[float]] = {}
            rivals: dict[str, list[Any]] = {}
            for chunk in chunks(numbers, IN_CHUNK):
                for rec in conn.execute(select(sent.c.mobile, sent.c.sendtime).where(
                        sent.c.account == account, sent.c.mobile.in_(list(chunk)), sent.c.status == 1)):
                    at = beijing_unix(rec.sendtime)
                    if at is not None:
                        times.setdefault(rec.mobile, []).append(at)
                for other in conn.execute(select(intents).where(
                        intents.c.account == account, intents.c.mobile.in_(list(chunk)),
                        intents.c.state != "rejected")):
                    rivals.setdefault(other.mobile, []).append(other)
            now = db_now(conn)
            proven: set[str] = set()
            for mid in sorted(targets, key=lambda m: (targets[m].created_at, m)):
                row = targets[mid]
                since = float(row.created_at) - slack
                mine = sorted(t for t in times.get(row.mobile, []) if t >= since)
                windows = [(float(o.created_at) - slack,
                            (now if o.mobileid in proven else float(o.updated_at)) + slack
                            if o.state == "accepted" or o.mobileid in proven else float("inf"))
                           for o in rivals.get(row.mobile, []) if o.mobileid != mid]
                if mine and _max_matching(mine, windows) < len(mine):
                    proven.add(mid)
            buckets = page_counts.buckets_for_intents(conn, account, sorted(proven), "accepted")
            for chunk in chunks(sorted(proven), IN_CHUNK):
                conn.execute(update(intents).where(
                    intents.c.account == account, intents.c.mobileid.in_(list(chunk)),
                    intents.c.state.in_(sorted(UNCERTAIN_STATES))).values(state="accepted", updated_at=now))
            page_counts.finish_write(conn, now if proven else None, buckets)
            return proven

        return set(self._write(run))

    # -- sent records --------------------------------------------------------------------------

    def store_sent_records(self, account: str, records: Iterable[SentRecord],
                           keep_content: bool = False) -> int:
        """Store records drained from ``ac=query``; returns how many were stored.

        ``content`` carries one-time codes: it is stored only when ``keep_content`` is true. Every
        record is stored (the vendor hands each out once, and two identical sends are two records).
        """
        _check_account(account)
        rows: list[dict[str, Any]] = [{
            "account": account, "mobile": str(r.mobile), "sendtime": str(r.sendtime),
            "status": int(r.status), "content": (r.content if keep_content else None),
        } for r in records]
        if not rows:
            return 0
        tbl = table("smscn_sent_records")

        def run(conn: Connection) -> int:
            now = db_now(conn)
            for row in rows:
                row["stored_at"] = now
            for chunk in chunks(rows, INSERT_CHUNK):
                conn.execute(tbl.insert(), list(chunk))
            return len(rows)

        return int(self._write(run))

    def get_sent_records(self, account: str, mobiles: Iterable[str]) -> list[SentRecord]:
        """Stored sent records of these numbers (oldest first): proof that a call was placed."""
        from sqlalchemy import select

        _check_account(account)
        numbers = unique(mobiles)
        if not numbers:
            return []
        t = table("smscn_sent_records")

        def run(conn: Connection) -> list[SentRecord]:
            found: list[tuple[int, SentRecord]] = []
            for chunk in chunks(numbers, IN_CHUNK):
                stmt = select(t.c.id, t.c.mobile, t.c.sendtime, t.c.status, t.c.content).where(
                    t.c.account == account, t.c.mobile.in_(list(chunk)))
                found.extend((int(row.id), SentRecord(mobile=row.mobile, sendtime=row.sendtime,
                                                      content=row.content or "", status=int(row.status)))
                             for row in conn.execute(stmt))
            return [record for _, record in sorted(found, key=lambda item: item[0])]

        return list(self._read(run))

    def count_sent_records(self, account: str) -> int:
        from sqlalchemy import func, select

        _check_account(account)
        t = table("smscn_sent_records")
        return int(self._read(lambda conn: conn.execute(
            select(func.count()).select_from(t).where(t.c.account == account)).scalar() or 0))

    # -- housekeeping --------------------------------------------------------------------------

    def prune(self, older_than_seconds: float, now: float | None = None) -> dict[str, int]:
        """Delete reports, intents (by last update) and sent records older than that; leases stay.

        ``older_than_seconds`` below one day is refused (see :mod:`.retention`). Age is measured
        on the database's clock, and never from a time later than the newest row written: a
        clock stepped forward (or a wrong ``now``) cannot make fresh rows look old. Returns the
        number of deleted rows per table name.
        """
        from sqlalchemy import delete, func, select

        from airflow_provider_smscn.ledger.retention import check_retention_seconds

        older_than_seconds = check_retention_seconds(older_than_seconds)
        reports = table("smscn_reports")
        intents = table("smscn_send_intents")
        sent = table("smscn_sent_records")

        def run(conn: Connection) -> dict[str, int]:
            at = self._now(conn, now)
            newest = [conn.execute(select(func.max(col))).scalar()
                      for col in (reports.c.stored_at, intents.c.updated_at, sent.c.stored_at,
                                  table("smscn_balance_readings").c.read_at)]
            stamps = [float(v) for v in newest if v is not None]
            if not stamps:
                return {"smscn_reports": 0, "smscn_send_intents": 0, "smscn_sent_records": 0,
                        "smscn_balance_readings": 0, "smscn_event_cursors": 0}
            cutoff = min(at, max(stamps)) - older_than_seconds
            buckets = page_counts.pruned_buckets(conn, cutoff)
            deleted = {
                "smscn_reports": conn.execute(delete(reports).where(reports.c.stored_at < cutoff)).rowcount,
                "smscn_send_intents": conn.execute(
                    delete(intents).where(intents.c.updated_at < cutoff)).rowcount,
                "smscn_sent_records": conn.execute(delete(sent).where(sent.c.stored_at < cutoff)).rowcount,
                **self._prune_balance(conn, cutoff),
                "smscn_event_cursors": prune_taken(conn, cutoff),  # consumers' taken batches; cursors stay
            }
            page_counts.prune_counts(conn, cutoff, buckets)  # last: the counter's lock held briefly
            return deleted

        return dict(self._write(run))

    def maybe_prune(self, older_than_seconds: float, every_seconds: float = 3600) -> None:
        """Prune at most once per ``every_seconds`` in this process; cheap to call at every poke.

        Within ``every_seconds`` of its last try a process does not even touch the database. Past
        that, a lease row (the pull lease's mechanism, under a reserved key) lets only one process
        of all prune per period: Airflow runs tasks, and rescheduled pokes, in fresh processes,
        which would otherwise all prune on their first call. Housekeeping must not fail a waiter:
        a database error is logged, and pruning is tried again after ``every_seconds``.
        """
        from sqlalchemy.exc import DBAPIError

        from airflow_provider_smscn.ledger.retention import check_retention_seconds

        check_retention_seconds(older_than_seconds)  # a configuration error is an error, not housekeeping
        mono = time.monotonic()
        with _engine.ENGINES_LOCK:
            last = _engine.LAST_MAYBE_PRUNE.get(self._url)
            if last is not None and mono - last < every_seconds:
                return
            _engine.LAST_MAYBE_PRUNE[self._url] = mono
        try:
            if self._acquire(_PRUNE_LEASE_KEY, f"pid-{os.getpid()}", every_seconds, None) is None:
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
        entry = _engine.drop_entry(self._url)
        if entry is not None:
            entry.engine.dispose()


def _insert_ignore_factory(dialect_name: str) -> Callable[[Table], Any]:
    """``INSERT`` that skips rows whose key exists: ON CONFLICT DO NOTHING, or MySQL's no-op update.

    Not MySQL's ``INSERT IGNORE``: it turns every error into a warning, so a value too long for
    its column would be stored cut short. ``ON DUPLICATE KEY UPDATE pk = pk`` skips duplicates only.
    """
    if dialect_name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return lambda tbl: pg_insert(tbl).on_conflict_do_nothing()
    if dialect_name == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        return lambda tbl: sqlite_insert(tbl).on_conflict_do_nothing()
    from sqlalchemy.dialects.mysql import insert as mysql_insert

    def no_op_on_duplicate(tbl: Table) -> Any:
        key = next(iter(tbl.primary_key.columns))
        return mysql_insert(tbl).on_duplicate_key_update({key.name: key})

    return no_op_on_duplicate
