"""The sms.cn page's counts per 5-minute bucket, kept in the ledger so every api-server process shares them.

Why: the page's charts count every call and report of up to 30 days. Counting a million reports
takes seconds; reading the stored counts of the 8,640 buckets of 30 days takes milliseconds. So the
first process to count a *frozen* bucket (one that ended more than ``FREEZE_MARGIN`` seconds ago,
see :mod:`airflow_provider_smscn.plugins.data`) stores its counts here, one row per bucket, and a
fresh process (after a restart, or on another host) reads them instead of counting again.

What can change a frozen bucket, and how each change reaches this table:

* A report is stamped with the ledger's clock when stored (``stored_at``), so a report that
  arrives days after its call lands in the current bucket, never in a frozen one; so is an
  intent when it becomes ``accepted`` (``updated_at``). Only a writer whose commit comes late
  (a lock wait, a paused process) can add to a bucket frozen meanwhile: it marks that bucket
  itself (:func:`finish_write`).
* A send intent's state can change long after its reports were stored: an ``unknown`` call proven
  by the sent records (:meth:`~SmsCnLedger.prove_by_sent_records`), or any :meth:`~SmsCnLedger.
  mark_intents` of a row that is or becomes ``accepted``. That moves the intent's ``placed`` count
  and changes the send-to-report classes of its reports, in whatever buckets they were stored.
  Those writers read the intents they change with a locking read (:func:`buckets_for_intents`),
  so the buckets are those of the state they replace, and mark them stale at the end of their
  own transaction (:func:`finish_write`).
* Pruning deletes rows of old buckets (and the intents of later reports):
  :func:`pruned_buckets` before its deletes, :func:`prune_counts` after, in the prune's transaction.

Staleness is exact under concurrency with a change counter, the ``generation`` of the row
``bucket = -1``. A writer bumps it (taking that row's lock, as the last step of its transaction,
so the lock is held briefly), then marks its buckets stale (``counts`` NULL, ``generation`` the
new value). A page reader reads the counter *before* counting and stores its counts only if the
counter is unchanged, under the same row lock, which it never waits for (``NOWAIT``; if a writer
holds it, the reader skips the store and counts again next load): counts from a snapshot older
than a change are never stored. A process keeps the rows it read or stored; when the counter
moved it re-reads only the rows whose ``generation`` is newer (index ``generation``).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.ledger.engine import IN_CHUNK, chunks, db_now

if TYPE_CHECKING:
    from collections.abc import Iterable

    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection

TABLE = "smscn_page_counts"
#: Width of one counted bucket (seconds); bucket keys are their start, a multiple of this.
BUCKET = 300
#: The row holding the change counter (no bucket starts before the epoch).
GENERATION_ROW = -1
#: A bucket that ended this long ago is final (covers commit delays and clock steps of a writer):
#: the page counts it once and stores the counts; a writer slower than half of it marks its bucket.
FREEZE_MARGIN = 120.0


def define_table(md: MetaData) -> None:
    """Add the table to the ledger's metadata (schema.py calls this; revision 0006 creates it)."""
    from sqlalchemy import BigInteger, Column, Index, Table, Text

    from airflow_provider_smscn.ledger.schema import MYSQL_TABLE_OPTIONS

    Table(
        TABLE, md,
        Column("bucket", BigInteger, primary_key=True, autoincrement=False),
        Column("generation", BigInteger, nullable=False),
        # JSON {account: [the bucket's counts]} (see ``encode``); NULL: stale, to be counted again
        Column("counts", Text, nullable=True),
        Index("ix_smscn_page_counts_generation", "generation"),
        **MYSQL_TABLE_OPTIONS,
    )


def bucket_of(seconds: float) -> int:
    return int(seconds // BUCKET) * BUCKET


def read_generation(conn: Connection, lock: bool = False, nowait: bool = False) -> int:
    from sqlalchemy import select

    from airflow_provider_smscn.ledger.schema import table

    t = table(TABLE)
    stmt = select(t.c.generation).where(t.c.bucket == GENERATION_ROW)
    if lock:
        stmt = stmt.with_for_update(nowait=nowait)
    value = conn.execute(stmt).scalar()
    return 0 if value is None else int(value)


def _bump(conn: Connection) -> int:
    """Advance the change counter (its row lock is held until the caller's transaction ends)."""
    from sqlalchemy import update

    from airflow_provider_smscn.ledger.schema import table

    t = table(TABLE)
    bump = update(t).where(t.c.bucket == GENERATION_ROW).values(generation=t.c.generation + 1)
    if conn.execute(bump).rowcount == 0:  # (revision 0006 creates the row; in case it was deleted)
        _ensure_generation_row(conn)
        conn.execute(bump)
    return read_generation(conn)


def _ensure_generation_row(conn: Connection) -> None:
    _upsert(conn, [{"bucket": GENERATION_ROW, "generation": 0, "counts": None}], ["bucket"])


def _upsert(conn: Connection, rows: list[dict[str, Any]], columns: list[str]) -> None:
    """Insert rows, or overwrite ``columns`` of those whose bucket exists (one statement per chunk)."""
    from airflow_provider_smscn.ledger.schema import table

    t = table(TABLE)
    name = conn.dialect.name
    for chunk in chunks(rows, 500):
        stmt: Any
        if name in ("postgresql", "sqlite"):
            from sqlalchemy.dialects import postgresql, sqlite

            stmt = (postgresql if name == "postgresql" else sqlite).insert(t).values(list(chunk))
            stmt = stmt.on_conflict_do_update(index_elements=[t.c.bucket],
                                              set_={c: stmt.excluded[c] for c in columns})
        else:
            from sqlalchemy.dialects import mysql

            stmt = mysql.insert(t).values(list(chunk))
            stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in columns})
        conn.execute(stmt)


def mark_stale(conn: Connection, buckets: Iterable[int]) -> None:
    """Buckets whose rows a writer changes after the fact: their stored counts must be recounted.

    Call it in the writer's transaction. Buckets without stored counts get a stale row too: a
    process that counted them without storing them learns of the change from it.
    """
    wanted = sorted(set(buckets))
    if not wanted:
        return
    generation = _bump(conn)
    _upsert(conn, [{"bucket": b, "generation": generation, "counts": None} for b in wanted],
            ["generation", "counts"])


def buckets_for_intents(conn: Connection, account: str, mobileids: list[str], to_state: str,
                        claimant: str | None = None) -> set[int]:
    """Buckets that setting these intents' state to ``to_state`` alters (call before the update).

    ``claimant``: only the intents it claimed change.

    An intent counts as placed (in the bucket of its ``updated_at``) while ``accepted``, and its
    reports count in the send-to-report classes only then. So: the old bucket of each that is
    ``accepted`` now, and the buckets of the reports of each that is or becomes ``accepted``.

    The intents' rows are read with a locking read (``FOR UPDATE``, the writer's transaction holds
    them): a concurrent writer cannot change their state between this read and the caller's
    update, so the buckets are those of the state the update replaces. The caller marks them
    (:func:`finish_write`) at the end of its transaction, so the counter's lock is held briefly.
    """
    from sqlalchemy import select

    from airflow_provider_smscn.ledger.schema import table

    intents, reports = table("smscn_send_intents"), table("smscn_reports")
    buckets: set[int] = set()
    for chunk in chunks(mobileids, IN_CHUNK):  # one look-up per chunk: a send marks 10,000 ids
        where = [intents.c.account == account, intents.c.mobileid.in_(list(chunk))]
        if claimant is not None:
            where.append(intents.c.claimed_by == claimant)
        # a locking read returns the latest committed state (also under MySQL's repeatable read)
        with_reports = []
        for mobileid, state, updated_at in conn.execute(
                select(intents.c.mobileid, intents.c.state, intents.c.updated_at).where(*where)
                .order_by(intents.c.mobileid).with_for_update()):  # (sorted: one lock order)
            if state == "accepted":
                buckets.add(bucket_of(float(updated_at)))
            if state == "accepted" or to_state == "accepted":
                with_reports.append(mobileid)
        if with_reports:  # (stored reports keep their time: a plain read)
            buckets.update(bucket_of(float(at)) for (at,) in conn.execute(
                select(reports.c.stored_at).where(reports.c.account == account,
                                                  reports.c.mobileid.in_(with_reports))))
    return buckets


def finish_write(conn: Connection, stamped_at: float | None, buckets: Iterable[int] = ()) -> None:
    """The last step of a writer's transaction: mark ``buckets`` stale, and catch a late commit.

    ``stamped_at``: the time the writer stamped its counted rows with (``stored_at`` of reports,
    ``updated_at`` of accepted intents), read at its start; None if it stamped none. If the
    transaction has run longer than half of :data:`FREEZE_MARGIN` since (a lock wait, a paused
    process), that bucket may already be frozen and its counts stored without these rows: it is
    marked stale too. The check runs holding the counter's lock, kept until commit: a reader that
    stored the bucket did so before this check (and then the check is late: the bucket frozen
    ``FREEZE_MARGIN`` after ``stamped_at``), or cannot store until this transaction ends, and its
    counts from before the commit are then refused if the counter moved, or skipped as it could
    not take the lock (the page's store never waits, see :func:`store_counts`).
    """
    wanted = set(buckets)
    if stamped_at is not None:
        _lock_generation(conn)
        if db_now(conn) - stamped_at > FREEZE_MARGIN / 2:
            wanted.add(bucket_of(stamped_at))
    mark_stale(conn, wanted)


def _lock_generation(conn: Connection, nowait: bool = False) -> int:
    """Lock the change counter's row (created if absent) and return its value."""
    from sqlalchemy import select

    from airflow_provider_smscn.ledger.schema import table

    t = table(TABLE)
    if conn.execute(select(t.c.bucket).where(t.c.bucket == GENERATION_ROW)).first() is None:
        _ensure_generation_row(conn)
    return read_generation(conn, lock=True, nowait=nowait)


def pruned_buckets(conn: Connection, cutoff: float) -> set[int]:
    """Buckets a prune of reports (``stored_at``) and intents (``updated_at``) older than ``cutoff``
    changes beyond those it drops whole; read before its deletes, marked (:func:`prune_counts`) after.

    Buckets wholly before ``cutoff`` lose every row: their counts go (a reader takes buckets before
    the oldest row as empty). The bucket holding ``cutoff`` loses some, and later buckets lose
    the send-to-report classes of reports whose accepted intent is deleted: those are marked stale.
    """
    from sqlalchemy import and_, select

    from airflow_provider_smscn.ledger.schema import table

    intents, reports = table("smscn_send_intents"), table("smscn_reports")
    buckets = {bucket_of(cutoff)}
    orphaned = (select(reports.c.stored_at)
                .select_from(intents.join(reports, and_(reports.c.account == intents.c.account,
                                                        reports.c.mobileid == intents.c.mobileid)))
                .where(intents.c.updated_at < cutoff, intents.c.state == "accepted",
                       reports.c.stored_at >= cutoff))
    buckets.update(bucket_of(float(at)) for (at,) in conn.execute(orphaned))
    return buckets


def prune_counts(conn: Connection, cutoff: float, buckets: Iterable[int]) -> None:
    """After a prune's deletes, in its transaction: mark :func:`pruned_buckets` stale, drop the
    counts of the buckets before ``cutoff``."""
    from sqlalchemy import delete

    from airflow_provider_smscn.ledger.schema import table

    t = table(TABLE)
    mark_stale(conn, buckets)
    conn.execute(delete(t).where(t.c.bucket >= 0, t.c.bucket <= cutoff - BUCKET))


def changed_since(conn: Connection, generation: int) -> list[int]:
    """Buckets written or marked stale after ``generation`` (what a process must re-read)."""
    from sqlalchemy import select

    from airflow_provider_smscn.ledger.schema import table

    t = table(TABLE)
    return [int(b) for (b,) in conn.execute(
        select(t.c.bucket).where(t.c.generation > generation, t.c.bucket >= 0))]


def read_counts(conn: Connection, start: int, end: int) -> dict[int, str]:
    """Stored (not stale) counts of the buckets in ``[start, end)``, as stored."""
    from sqlalchemy import select

    from airflow_provider_smscn.ledger.schema import table

    t = table(TABLE)
    stmt = select(t.c.bucket, t.c.counts).where(t.c.bucket >= start, t.c.bucket < end,
                                                t.c.counts.isnot(None))
    return {int(b): str(c) for b, c in conn.execute(stmt)}


def store_counts(conn: Connection, generation: int, counts: dict[int, str], older_than: int) -> bool:
    """Store counted buckets if nothing changed since ``generation`` was read; False if something did.

    Run it with :func:`~airflow_provider_smscn.ledger.engine.try_write`: the counter's row is
    locked ``NOWAIT``, so a writer holding it makes the store fail at once instead of waiting.
    Also drops rows of buckets before ``older_than`` (no window reaches them).
    """
    from sqlalchemy import delete

    from airflow_provider_smscn.ledger.schema import table

    t = table(TABLE)
    if _lock_generation(conn, nowait=True) != generation:
        return False
    _upsert(conn, [{"bucket": b, "generation": generation, "counts": c} for b, c in sorted(counts.items())],
            ["generation", "counts"])
    conn.execute(delete(t).where(t.c.bucket >= 0, t.c.bucket < older_than))
    return True


def encode(per_account: dict[str, list[int]]) -> str:
    """One bucket's counts, ``{account: [numbers]}`` (the page's flat layout, see ``plugins/data.py``)."""
    return json.dumps(per_account, separators=(",", ":"), sort_keys=True)


def decode_many(texts: list[str]) -> list[dict[str, list[int]]]:
    """Many buckets' counts as :func:`encode` wrote them, parsed at once."""
    return list(json.loads("[" + ",".join(texts) + "]"))
