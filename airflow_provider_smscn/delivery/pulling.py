"""Pulling and keeping delivery reports: the step every waiter (sensor, trigger watcher) shares.

The rules, and why:

* **Store before use, and never drop a pulled batch.** The vendor hands each report out once. A
  pulled batch goes into the local :class:`~airflow_provider_smscn.delivery.spool.Spool` first
  (write-ahead), then into the ledger (tried :data:`STORE_ATTEMPTS` times), and leaves the spool
  after the commit; whatever interrupts the write, the next waiter on this host writes the spooled
  batch into the ledger before anything else.
* **Drain a backlog at once.** The vendor hands out at most :data:`REPORTS_PER_PULL` reports a
  pull. While a pull comes back full, the lease holder keeps its lease renewed and pulls again at once
  (at most :data:`MAX_EXTRA_PULLS` more a turn): 10,000 waiting reports take one turn, not 100
  intervals, and still only one process pulls the account at a time.
* **Ledger errors are retriable for waiters.** A database error becomes
  :class:`LedgerUnavailableError` (``retriable``): the waiter keeps waiting until its own timeout.
* **A refused request is tried once more with the Connection read afresh**
  (:func:`with_fresh_connection`): a rotated secret or a moved URL must not fail a waiter that
  merely held an old copy.

Airflow-free: a :class:`ReportSource` (the ledger, a ``pull`` callable, the spool) is all it needs.
"""

from __future__ import annotations

import contextlib
import logging
import time
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

from airflow_provider_smscn.client.errors import SmsCnError

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Iterator, Sequence
    from pathlib import Path

    from airflow_provider_smscn.client.models import DeliveryReport
    from airflow_provider_smscn.delivery.spool import Spool
    from airflow_provider_smscn.ledger import SmsCnLedger

log = logging.getLogger(__name__)

_T = TypeVar("_T")

#: Most reports one ``ac=status`` pull hands out (the vendor's document names no limit; comparable
#: pull APIs give 100 and so does the sandbox: docs/api-decisions.md #4). A pull of this many is
#: "full": more may be waiting.
REPORTS_PER_PULL = 100
#: Pulls a lease holder may add to its turn while pulls come back full (10,100 reports a turn).
MAX_EXTRA_PULLS = 100
#: Tries to write one pulled batch into the ledger before it goes to the spool.
STORE_ATTEMPTS = 3
#: Seconds before the second try of a batch write (then twice that before the third, ...).
STORE_RETRY_WAIT = 0.5


class LedgerUnavailableError(SmsCnError):
    """The ledger database failed (locked, unreachable, failing over): waiting again can help."""

    retriable = True


def _nothing() -> None:
    return None


@dataclass(frozen=True)
class ReportSource:
    """What waiting on one account needs: where reports are kept, how to pull, where to spool.

    The hook builds one (``SmsCnHook.delivery_source``); tests and benchmarks may replace fields
    (``dataclasses.replace``), e.g. ``max_extra_pulls=0`` for one pull per interval.
    """

    ledger: SmsCnLedger
    account: str
    pull: Callable[[], list[DeliveryReport]]
    pull_interval: float
    spool: Spool
    housekeep: Callable[[], None] = _nothing
    reports_per_pull: int = REPORTS_PER_PULL
    max_extra_pulls: int = MAX_EXTRA_PULLS
    store_attempts: int = STORE_ATTEMPTS
    sleep: Callable[[float], None] = time.sleep


def new_pull_id() -> str:
    """Names one pull: the ledger stores a batch once per (account, pull id, position)."""
    return uuid.uuid4().hex


def db_error_text(exc: BaseException) -> str:
    """A database error in one line, without the statement or its parameters (they hold numbers)."""
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [""])[0]
    return f"{type(orig).__name__}: {first}" if first else type(orig).__name__


def transient_db_errors() -> tuple[type[BaseException], ...]:
    """The database failures waiting again can cure: the driver's (locked, unreachable, failing
    over) and the pool's (``QueuePool limit ... reached``: a busy worker or triggerer)."""
    from sqlalchemy.exc import DBAPIError, DisconnectionError
    from sqlalchemy.exc import TimeoutError as PoolTimeoutError

    return (DBAPIError, PoolTimeoutError, DisconnectionError)


@contextlib.contextmanager
def ledger_errors(doing: str) -> Iterator[None]:
    """Turn a database error into :class:`LedgerUnavailableError` (no statement, no parameters)."""
    try:
        yield
    except transient_db_errors() as exc:
        raise LedgerUnavailableError(f"the smscn ledger failed while {doing}: {db_error_text(exc)}") from None


def store_pulled(source: ReportSource, reports: Sequence[DeliveryReport], pull_id: str) -> None:
    """Write one pulled batch into the ledger, spooled first (write-ahead) and removed after the commit.

    Whatever stops the write (a database error, a pool timeout, Airflow's task timeout or SIGTERM
    mid-statement), the batch is already on disk: the next waiter on this host replays it (storing
    a batch twice adds nothing: rows are keyed on the pull id). A transient database error is tried
    :data:`STORE_ATTEMPTS` times, then raises :class:`LedgerUnavailableError`: the batch is safe,
    but the ledger is not there to answer the waiter.
    """
    if not reports:
        return
    try:
        path: Path | None = source.spool.put(source.account, pull_id, reports)
    except OSError as exc:  # no write-ahead: the ledger write below is the batch's only chance
        log.error("smscn: the local spool %s cannot keep a pulled batch (%s); writing it into the "
                  "ledger without a copy", source.spool.directory, exc)
        path = None
    attempts = max(1, source.store_attempts)
    error: BaseException | None = None
    for attempt in range(attempts):
        try:
            source.ledger.store_reports(source.account, list(reports), pull_id=pull_id)
        except transient_db_errors() as exc:
            error = exc
            log.warning("smscn: the ledger did not take a pulled batch (try %d of %d): %s",
                        attempt + 1, attempts, db_error_text(exc))
            if attempt + 1 < attempts:
                source.sleep(STORE_RETRY_WAIT * (attempt + 1))
            continue
        if path is not None:
            with contextlib.suppress(OSError):  # left behind: replayed later, stored once
                source.spool.remove(path)
        from airflow_provider_smscn import metrics

        metrics.pull_lag(source.ledger, source.account, reports)
        return
    reason = db_error_text(error) if error else "unknown"
    if path is None:
        log.error("smscn: the ledger did not take %d pulled delivery report(s) (%s) and the local spool "
                  "%s could not keep them: those reports are lost", len(reports), reason,
                  source.spool.directory)
        raise LedgerUnavailableError(f"the smscn ledger failed after a pull ({reason}) and the spool "
                                     "could not keep the batch")
    log.error("smscn: the ledger did not take %d pulled delivery report(s) after %d tries (%s): kept "
              "in the local spool %s, written into the ledger as soon as it answers again",
              len(reports), attempts, reason, path)
    raise LedgerUnavailableError(f"the smscn ledger failed after a pull ({reason}); "
                                 f"{len(reports)} report(s) kept in the local spool")


def replay_spool(source: ReportSource) -> int:
    """Write the batches this host spooled into the ledger, before anything else reads it."""
    written = source.spool.replay(
        lambda account, reports, pull_id: source.ledger.store_reports(account, reports, pull_id=pull_id))
    if written:
        log.warning("smscn: the ledger answers again: wrote %d spooled delivery report(s) into it", written)
    return written


def pull_turn(source: ReportSource, holder: str) -> int:
    """One lease holder's turn: pull and store, again at once while pulls come back full.

    Call only after winning the lease. Before an extra pull the holder renews its lease whenever
    half an interval has passed since it was granted or last renewed (a pull and its store take a
    fraction of that), so no other waiter can be granted the account meanwhile; a renewal refused
    (the slot went to someone else) ends the turn. Returns the count of reports pulled.
    """
    pulled = 0
    held_since = time.monotonic()
    for number in range(1 + max(0, source.max_extra_pulls)):
        if number and time.monotonic() - held_since >= source.pull_interval / 2:
            if not source.ledger.renew_pull(source.account, holder, source.pull_interval):
                break
            held_since = time.monotonic()
        reports = source.pull()
        store_pulled(source, reports, new_pull_id())
        pulled += len(reports)
        if len(reports) < source.reports_per_pull:
            break
    else:
        log.info("smscn: %d pulls in a row came back full; the next turn goes on draining",
                 1 + source.max_extra_pulls)
    return pulled


def pull_if_due(source: ReportSource, holder: str) -> int:
    """Take a turn if the lease is due and ours; returns the reports pulled (0: no turn or none)."""
    if not _pull_due(source) or not source.ledger.try_acquire_pull(source.account, holder,
                                                                     source.pull_interval):
        return 0
    return pull_turn(source, holder)


def _pull_due(source: ReportSource) -> bool:
    """A cheap read first: only a waiter that may win the lease tries the (write) transaction."""
    return source.ledger.pull_due(source.account, source.pull_interval)


def collect_reports(source: ReportSource, mobileids: Iterable[str], *,
                    holder: str) -> dict[str, DeliveryReport]:
    """The reports known for ``mobileids``; takes a pull turn first if they are not all in.

    Spooled batches go into the ledger first; every pulled report, ours or not, is stored before
    it is looked at: the ledger is the only place another waiter can find its own.
    """
    wanted = list(dict.fromkeys(mobileids))
    with ledger_errors("reading delivery reports"):
        source.housekeep()
        replay_spool(source)
        found = source.ledger.get_reports(source.account, wanted)
        if len(found) < len(wanted) and pull_if_due(source, holder):
            found = source.ledger.get_reports(source.account, wanted)
    return found


def with_fresh_connection(attempt: Callable[[bool], _T]) -> _T:
    """Run ``attempt(False)``; on a non-retriable error run ``attempt(True)`` (Connection read afresh) once.

    The one rule for every waiter: a refusal (101 bad credentials, 117 IP not bound, ...) may come
    from an old copy of a Connection that has since been fixed or rotated; only a refusal with the
    Connection just read is final. A ledger that is not shared is configuration, not the
    Connection: it fails at once, without the second read.
    """
    from airflow_provider_smscn.ledger.checks import LedgerNotSharedError

    try:
        return attempt(False)
    except SmsCnError as err:
        if err.retriable or isinstance(err, LedgerNotSharedError):
            raise
        log.warning("smscn: %s; reading the Connection afresh and trying once more", err)
    return attempt(True)
