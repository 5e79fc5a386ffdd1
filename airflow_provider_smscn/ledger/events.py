"""Event cursors: what a watching asset has already been told, kept in the ledger.

Why in the ledger: Airflow promises asset events at least once, and a watcher may run in two
triggerers at once (a failover overlap) or start again after a restart. The position of a
watcher in the report stream and the state of a threshold (above / below) are kept in one row per
watch key, and moved only by a conditional ``UPDATE ... WHERE position = <what I read>``: of two
instances that read the same position, exactly one moves it on and emits that batch; the other
sees a row count of 0 and emits nothing. Nothing has to be released: a dead instance leaves a
consistent row behind.

A mixin of :class:`~airflow_provider_smscn.ledger.store.SmsCnLedger` (it uses its engine and
transactions); the table is ``smscn_event_cursors`` (Alembic revision ``0003_event_cursors``).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.ledger.engine import IN_CHUNK, chunks, db_now

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection

EVENT_TABLE = "smscn_event_cursors"
#: A delivery watcher's state while a batch is in flight: ``sending:<last row id of the batch>``.
SENDING = "sending:"
#: Key prefix of a consumer's record of a batch it took (:meth:`EventCursorsMixin.take_event_batch`).
TAKEN = "taken:"


def add_event_tables(md: MetaData) -> None:
    """Declare ``smscn_event_cursors`` in the ledger's metadata (schema.py calls this)."""
    from sqlalchemy import BigInteger, Column, Integer, String, Table, Text

    from airflow_provider_smscn.ledger.schema import MYSQL_TABLE_OPTIONS, ts

    Table(
        EVENT_TABLE, md,
        # "delivery:<digest>" / "balance:<digest>": the watcher's identity (account, filter, name).
        Column("watch_key", String(255), primary_key=True),
        # Delivery watchers: the last report row id handed to the asset. Balance: unused (0).
        Column("position", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
        # Balance watchers: "above" / "below". Delivery watchers: "", or "sending:<row id>" while
        # batches up to that row are on their way into Airflow (ack mode: see claim_event_batch).
        Column("state", String(32), nullable=False),
        # Who moved the row last, and what it handed out (for an operator reading the ledger); in
        # ack mode, the ends of the batches in flight ("e1,e2,...").
        Column("holder", Text, nullable=False),
        Column("last_batch", Text, nullable=False),
        ts("updated_at"),
        **MYSQL_TABLE_OPTIONS,
    )


@dataclass(frozen=True)
class EventCursor:
    """One watcher's row: its position in the report stream and its threshold state."""

    watch_key: str
    position: int
    state: str
    holder: str
    last_batch: str
    updated_at: float


def _check_key(watch_key: str) -> str:
    if not isinstance(watch_key, str) or not watch_key or len(watch_key) > 255:
        raise ValueError("watch_key must be a non-empty string of at most 255 characters")
    return watch_key


class EventCursorsMixin:
    """Reading, creating and conditionally moving event cursors (mixed into SmsCnLedger)."""

    _write: Callable[..., Any]
    _read: Callable[..., Any]

    def event_cursor(self, watch_key: str, *, start: Callable[[], int] | int = 0,
                     state: str = "") -> EventCursor:
        """The watcher's row, created at ``start`` (a row id, or a callable giving one) if absent.

        Of processes creating it at once, the first insert wins and every caller gets that row.
        """
        from sqlalchemy import select

        _check_key(watch_key)
        t = _table()
        found = self._read(lambda conn: conn.execute(select(t).where(t.c.watch_key == watch_key)).first())
        if found is not None:
            return _cursor(found)
        position = start() if callable(start) else int(start)

        def run(conn: Connection) -> Any:
            from airflow_provider_smscn.ledger.store import SmsCnLedger

            SmsCnLedger._insert_absent(conn, t, [{
                "watch_key": watch_key, "position": int(position), "state": state, "holder": "",
                "last_batch": "", "updated_at": db_now(conn)}])
            return conn.execute(select(t).where(t.c.watch_key == watch_key)).first()

        return _cursor(self._write(run))

    def advance_event_cursor(self, watch_key: str, expected: int, new: int, holder: str,
                             last_batch: str = "") -> bool:
        """Move the position from ``expected`` to ``new``; True only for the caller whose write did it.

        One conditional UPDATE (``WHERE position = expected``): the database serialises writers of
        one row and re-checks the condition, so a batch is claimed by exactly one instance. A row
        with a batch in flight (:meth:`claim_event_batch`) is not moved.
        """
        from sqlalchemy import update

        _check_key(watch_key)
        if int(new) < int(expected):
            raise ValueError("an event cursor never moves back")
        t = _table()

        def run(conn: Connection) -> bool:
            result = conn.execute(update(t).where(t.c.watch_key == watch_key, t.c.position == int(expected),
                                                  t.c.state == "")
                                  .values(position=int(new), holder=str(holder), last_batch=last_batch,
                                          updated_at=db_now(conn)))
            return bool(result.rowcount == 1)

        return bool(self._write(run))

    def claim_event_batch(self, watch_key: str, seen: EventCursor, upto: int, holder: str,
                          expiry: float) -> bool:
        """Add a batch ending at row ``upto`` to ``holder``'s batches in flight; True if this call did it.

        Ack mode: the position moves only when Airflow confirmed a batch's event stored
        (:meth:`settle_event_batch`), so a triggerer that stops first loses nothing. The row keeps
        the ends of the batches in flight (``last_batch``: ``"e1,e2,..."``; ``state``:
        ``sending:<last end>``), so whoever takes them over sends the same batches under the same
        ids. Granted only while the row is as ``seen``: free, or in flight for ``holder`` whose
        claim has not expired (``expiry`` seconds by the database's clock since its last refresh).
        """
        _check_key(watch_key)
        ends = in_flight(seen)
        if int(upto) <= (ends[-1] if ends else seen.position):
            raise ValueError("a claimed batch must end after the cursor and the batches in flight")
        if ends and seen.holder != holder:
            raise ValueError("only the holder of the batches in flight adds to them")
        return self._swap_claim(watch_key, seen, expiry, expired=False if ends else None, values={
            "state": f"{SENDING}{int(upto)}", "holder": str(holder),
            "last_batch": ",".join(str(end) for end in [*ends, int(upto)])})

    def take_over_event_claim(self, watch_key: str, seen: EventCursor, holder: str,
                              expiry: float | None) -> bool:
        """Take the events in flight of a holder that stopped refreshing them for ``expiry`` seconds.

        A holder that died, froze, or left them expired on purpose (a graceful stop): the new
        holder sends each of them again, same content, same ids. ``expiry`` None: no wait (a
        holder taking back its own). True if this call took them.
        """
        _check_key(watch_key)
        if not seen.state.startswith(SENDING):
            raise ValueError("there is nothing in flight to take over")
        return self._swap_claim(watch_key, seen, expiry or 0.0, expired=None if expiry is None else True,
                                values={"holder": str(holder)})

    def _swap_claim(self, watch_key: str, seen: EventCursor, expiry: float, expired: bool | None,
                    values: dict[str, Any]) -> bool:
        """One conditional UPDATE from ``seen`` (and its claim ``expired`` or not, unless None)."""
        from sqlalchemy import update

        t = _table()

        def run(conn: Connection) -> bool:
            now = db_now(conn)
            where = [t.c.watch_key == watch_key, t.c.position == seen.position, t.c.state == seen.state,
                     t.c.last_batch == seen.last_batch, t.c.holder == seen.holder]
            if expired is not None:
                limit = now - float(expiry)
                where.append(t.c.updated_at < limit if expired else t.c.updated_at >= limit)
            result = conn.execute(update(t).where(*where).values(**{"updated_at": now, **values}))
            return bool(result.rowcount == 1)

        return bool(self._write(run))

    def forget_passed_batches(self, watch_key: str, seen: EventCursor) -> bool:
        """Drop batches in flight that the position has already passed (a watcher without ack mode
        moved it: an older provider version); True if this call did it."""
        ends = in_flight(seen)
        rest = [end for end in ends if end > seen.position]
        if rest == ends:
            return False
        return self._swap_claim(watch_key, seen, 0.0, expired=None, values={
            "state": f"{SENDING}{rest[-1]}" if rest else "", "last_batch": ",".join(map(str, rest)),
            "updated_at": seen.updated_at})  # a dead holder's claims stay as old as they were

    def expire_event_claim(self, watch_key: str, holder: str) -> bool:
        """Leave ``holder``'s events in flight expired: whoever looks next sends them again, same ids."""
        from sqlalchemy import update

        _check_key(watch_key)
        t = _table()

        def run(conn: Connection) -> bool:
            result = conn.execute(update(t).where(t.c.watch_key == watch_key, t.c.holder == str(holder),
                                                  t.c.state.startswith(SENDING)).values(updated_at=0.0))
            return bool(result.rowcount == 1)

        return bool(self._write(run))

    def refresh_event_claim(self, watch_key: str, holder: str) -> bool:
        """Keep ``holder``'s events in flight from expiring; False if they are no longer its own."""
        from sqlalchemy import update

        _check_key(watch_key)
        t = _table()

        def run(conn: Connection) -> bool:
            result = conn.execute(update(t).where(t.c.watch_key == watch_key, t.c.holder == str(holder),
                                                  t.c.state.startswith(SENDING), t.c.updated_at > 0)
                                  .values(updated_at=db_now(conn)))
            return bool(result.rowcount == 1)

        return bool(self._write(run))

    def settle_event_batch(self, watch_key: str, after: int, upto: int, holder: str, stored: bool) -> bool:
        """End ``holder``'s first batch in flight, ``(after, upto]``; False if it no longer holds it.

        ``stored`` (Airflow confirmed the event stored): the cursor moves past it. Otherwise (not
        stored, or not known: a shutdown before the confirmation came) every batch in flight of
        ``holder`` is left expired, so whoever looks next sends them again, under the same ids.
        """
        from sqlalchemy import case, select, update

        _check_key(watch_key)
        t = _table()

        if not stored:
            return self.expire_event_claim(watch_key, holder)

        def run(conn: Connection) -> bool:
            row = conn.execute(select(t).where(t.c.watch_key == watch_key)).first()
            if row is None:
                return False
            seen = _cursor(row)
            ends = in_flight(seen)
            if seen.holder == str(holder) and seen.position >= int(upto) and int(upto) not in ends:
                return True  # settled already (a retry after a reply that was lost)
            if seen.position != int(after) or seen.holder != str(holder) or not ends or ends[0] != int(upto):
                return False
            rest = ends[1:]
            # the claims left stay as old as they were: expired ones (a stop) are not revived
            values = {"position": int(upto), "state": f"{SENDING}{rest[-1]}" if rest else "",
                      "last_batch": ",".join(map(str, rest)),
                      "updated_at": case((t.c.updated_at > 0, db_now(conn)), else_=0.0)}
            result = conn.execute(update(t).where(
                t.c.watch_key == watch_key, t.c.position == seen.position, t.c.state == seen.state,
                t.c.last_batch == seen.last_batch, t.c.holder == seen.holder).values(**values))
            return bool(result.rowcount == 1)

        return bool(self._write(run))

    def release_event_cursor(self, watch_key: str, claimed: int, back_to: int, holder: str) -> bool:
        """Give a claimed batch back (its event never reached Airflow): ``claimed`` -> ``back_to``.

        Only while the row is still as the claim left it (same position, same holder): once
        another instance moved on, the batch stays claimed and the release reports False. A batch
        that was in flight (taken over from an ack-mode watcher) goes back in flight, expired.
        """
        from sqlalchemy import select, update

        _check_key(watch_key)
        t = _table()

        def run(conn: Connection) -> bool:
            row = conn.execute(select(t).where(t.c.watch_key == watch_key)).first()
            if row is None:
                return False
            seen = _cursor(row)
            if seen.position != int(claimed) or seen.holder != str(holder):
                return False
            values: dict[str, Any] = {"position": int(back_to), "last_batch": "", "updated_at": db_now(conn)}
            if seen.state:
                ends = [int(claimed), *in_flight(seen)]
                values = {"position": int(back_to), "state": f"{SENDING}{ends[-1]}",
                          "last_batch": ",".join(map(str, ends)), "updated_at": 0.0}
            result = conn.execute(update(t).where(
                t.c.watch_key == watch_key, t.c.position == seen.position, t.c.state == seen.state,
                t.c.last_batch == seen.last_batch, t.c.holder == seen.holder).values(**values))
            return bool(result.rowcount == 1)

        return bool(self._write(run))

    def swap_event_state(self, watch_key: str, expected: str, new: str, holder: str,
                         last_batch: str = "", only_holder: bool = False) -> bool:
        """Move the state from ``expected`` to ``new``; True only for the caller whose write did it.

        ``only_holder``: only if ``holder`` made the last move (giving an unsent event back).
        """
        from sqlalchemy import update

        _check_key(watch_key)
        t = _table()

        def run(conn: Connection) -> bool:
            where = [t.c.watch_key == watch_key, t.c.state == expected]
            if only_holder:
                where.append(t.c.holder == str(holder))
            result = conn.execute(update(t).where(*where)
                                  .values(state=new, holder=str(holder), last_batch=last_batch,
                                          updated_at=db_now(conn)))
            return bool(result.rowcount == 1)

        return bool(self._write(run))


    def take_event_batch(self, consumer: str, watch: str, batch: str, taker: str) -> bool:
        """True for the first ``taker`` of a watcher's batch for ``consumer``, and for that taker again.

        The consumer's half of exactly once: an asset event can come twice (Airflow promises
        at least once, and a watcher taking over from one that died may send its last batch
        again). A DAG run that takes a batch keeps it through its own retries (same ``taker``);
        another run given the same batch gets False. One row per batch under a ``taken:`` key,
        removed by :meth:`prune` with the other old rows.
        """
        from sqlalchemy import select

        for name, value in (("consumer", consumer), ("watch", watch), ("batch", batch), ("taker", taker)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"{name} must be a non-empty string")
        key = _taken_key(consumer, watch, batch)
        t = _table()

        def run(conn: Connection) -> Any:
            from airflow_provider_smscn.ledger.store import SmsCnLedger

            SmsCnLedger._insert_absent(conn, t, [{
                "watch_key": key, "position": 0, "state": "taken", "holder": taker[:1000],
                "last_batch": batch[:255], "updated_at": db_now(conn)}])
            return conn.execute(select(t.c.holder).where(t.c.watch_key == key)).scalar_one()

        return bool(self._write(run) == taker[:1000])

    def event_batch_takers(self, consumer: str,
                           batches: Iterable[tuple[str, str]]) -> dict[tuple[str, str], str]:
        """Who took each (watch, batch) for ``consumer`` (absent: nobody yet, or pruned); a read."""
        from sqlalchemy import select

        keys = {_taken_key(consumer, watch, batch): (watch, batch) for watch, batch in batches}
        if not keys:
            return {}
        t = _table()

        def run(conn: Connection) -> list[Any]:
            return [row for chunk in chunks(list(keys), IN_CHUNK) for row in conn.execute(
                select(t.c.watch_key, t.c.holder).where(t.c.watch_key.in_(chunk))).all()]

        return {keys[key]: holder for key, holder in self._read(run)}


def _taken_key(consumer: str, watch: str, batch: str) -> str:
    digest = hashlib.sha256(f"{consumer}\x1f{watch}\x1f{batch}".encode()).hexdigest()[:40]
    return f"{TAKEN}{digest}"


def prune_taken(conn: Connection, cutoff: float) -> int:
    """Delete the consumers' ``taken:`` rows older than ``cutoff`` (the cursors stay)."""
    from sqlalchemy import delete

    t = _table()
    old = delete(t).where(t.c.watch_key.startswith(TAKEN), t.c.updated_at < cutoff)
    return int(conn.execute(old).rowcount)


def in_flight(cursor: EventCursor) -> list[int]:
    """The ends of a delivery watcher's batches in flight, oldest first (ack mode); [] if none."""
    if not cursor.state.startswith(SENDING):
        return []
    if not cursor.last_batch:  # a row left half-written by an older version: its one batch
        last = cursor.state[len(SENDING):]
        return [int(last)] if last.isdigit() else []
    return [int(end) for end in cursor.last_batch.split(",")]


def _table() -> Any:
    from airflow_provider_smscn.ledger.schema import table

    return table(EVENT_TABLE)


def _cursor(row: Any) -> EventCursor:
    return EventCursor(watch_key=row.watch_key, position=int(row.position), state=row.state or "",
                       holder=row.holder or "", last_batch=row.last_batch or "",
                       updated_at=float(row.updated_at))
