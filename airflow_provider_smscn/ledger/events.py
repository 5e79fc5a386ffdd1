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

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.ledger.engine import db_now

if TYPE_CHECKING:
    from collections.abc import Callable

    from sqlalchemy import MetaData
    from sqlalchemy.engine import Connection

EVENT_TABLE = "smscn_event_cursors"


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
        # Balance watchers: "above" / "below"; delivery watchers: "".
        Column("state", String(32), nullable=False),
        # Who moved the row last, and what it handed out (for an operator reading the ledger).
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
        one row and re-checks the condition, so a batch is claimed by exactly one instance.
        """
        from sqlalchemy import update

        _check_key(watch_key)
        if int(new) < int(expected):
            raise ValueError("an event cursor never moves back")
        t = _table()

        def run(conn: Connection) -> bool:
            result = conn.execute(update(t).where(t.c.watch_key == watch_key, t.c.position == int(expected))
                                  .values(position=int(new), holder=str(holder), last_batch=last_batch,
                                          updated_at=db_now(conn)))
            return bool(result.rowcount == 1)

        return bool(self._write(run))

    def release_event_cursor(self, watch_key: str, claimed: int, back_to: int, holder: str) -> bool:
        """Give a claimed batch back (its event never reached Airflow): ``claimed`` -> ``back_to``.

        Only while the row is still as the claim left it (same position, same holder): once
        another instance moved on, the batch stays claimed and the release reports False.
        """
        from sqlalchemy import update

        _check_key(watch_key)
        t = _table()

        def run(conn: Connection) -> bool:
            result = conn.execute(update(t).where(t.c.watch_key == watch_key, t.c.position == int(claimed),
                                                  t.c.holder == str(holder))
                                  .values(position=int(back_to), last_batch="", updated_at=db_now(conn)))
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


def _table() -> Any:
    from airflow_provider_smscn.ledger.schema import table

    return table(EVENT_TABLE)


def _cursor(row: Any) -> EventCursor:
    return EventCursor(watch_key=row.watch_key, position=int(row.position), state=row.state or "",
                       holder=row.holder or "", last_batch=row.last_batch or "",
                       updated_at=float(row.updated_at))
