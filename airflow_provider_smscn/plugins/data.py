"""What the sms.cn page shows, read from the ledger: Airflow-free, so tests and benchmarks drive it.

Why stored counts: the charts count every call and report of the window, and a ledger may hold a
million reports in it. Counts are kept per account and 5-minute bucket; a bucket that ended more
than :data:`FREEZE_MARGIN` seconds ago is *frozen*: reports are stamped by the ledger's clock when
stored, so a late report lands in the current bucket, and the few changes that do reach an old
bucket (an intent accepted or re-marked after its reports came, pruning) mark it stale in the
ledger (:mod:`airflow_provider_smscn.ledger.page_counts`). The first process to count a frozen
bucket stores its counts in the ledger's ``smscn_page_counts``; every other process, and this one
after a restart, reads them (one row per bucket: 8,640 for 30 days) and keeps them in memory,
re-reading only rows changed since. A page load then counts only the last minutes from the
tables (index ranges on ``stored_at`` / ``updated_at``), plus a few index-backed look-ups (recent
calls, balance readings, pull leases). Only a ledger's very first load (e.g. right after the
upgrade that adds the table) counts everything: :func:`warm` runs it in the background when the
api-server starts.

Nothing here returns a full number (masked ``139****8888``), a code or a credential.
"""

from __future__ import annotations

import logging
import math
import threading
from collections import Counter
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.client.codes import result_meaning
from airflow_provider_smscn.client.redact import mask_mobile
from airflow_provider_smscn.ledger import page_counts
from airflow_provider_smscn.ledger.page_counts import BUCKET, FREEZE_MARGIN

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from sqlalchemy.engine import Connection

    from airflow_provider_smscn.ledger import SmsCnLedger

log = logging.getLogger(__name__)

#: Upper edges (seconds) of the send-to-report time classes; the last class is open.
LAG_EDGES = (5, 10, 20, 30, 60, 120, 300, 600, 1800)
#: The windows the page offers, and the width of one chart bar in each.
WINDOWS: dict[str, tuple[int, int]] = {
    "1h": (3600, 300),
    "6h": (6 * 3600, 900),
    "24h": (86400, 3600),
    "7d": (7 * 86400, 6 * 3600),
    "30d": (30 * 86400, 86400),
}
DEFAULT_WINDOW = "24h"
RECENT_CALLS = 50
BALANCE_READINGS = 5000
DELIVERED = 100
_PRUNE_KEY = "__smscn_prune__"


#: One account's calls and reports in one bucket, flat (cheap to store, parse and keep):
#: ``[placed, n per send-to-report class..., resultcode, n, resultcode, n, ...]``.
Counts = list[int]
#: Where the (resultcode, n) pairs of :data:`Counts` start.
CODES_AT = 1 + len(LAG_EDGES) + 1
Buckets = dict[tuple[str, int], Counts]


def _floor(value: float, step: int) -> int:
    return int(math.floor(value / step) * step)


def _bucket_expr(col: Any, dialect: str) -> Any:
    """``floor(col / BUCKET)`` on every backend (SQLite: CAST truncates, and times are positive)."""
    from sqlalchemy import Integer, cast, func

    if dialect == "sqlite":
        return cast(col / BUCKET, Integer)
    return func.floor(col / BUCKET)


def _lag_class(delta: Any) -> Any:
    from sqlalchemy import case

    return case(*[(delta < edge, i) for i, edge in enumerate(LAG_EDGES)], else_=len(LAG_EDGES))


def aggregate(conn: Connection, start: float, end: float) -> Buckets:
    """Counts per (account, bucket) of calls placed, reports by code and send-to-report times."""
    from sqlalchemy import and_, func, select

    from airflow_provider_smscn.ledger.schema import table

    dialect = conn.dialect.name
    intents, reports = table("smscn_send_intents"), table("smscn_reports")
    out: Buckets = {}

    def slot(account: str, bucket: Any) -> Counts:
        return out.setdefault((account, int(bucket) * BUCKET), [0] * CODES_AT)

    b = _bucket_expr(intents.c.updated_at, dialect).label("b")
    placed = (select(intents.c.account, b, func.count().label("n"))
              .where(intents.c.updated_at >= start, intents.c.updated_at < end, intents.c.state == "accepted")
              .group_by(intents.c.account, b))
    for row in conn.execute(placed):
        slot(row.account, row.b)[0] += int(row.n)
    b = _bucket_expr(reports.c.stored_at, dialect).label("b")
    results = (select(reports.c.account, b, reports.c.resultcode, func.count().label("n"))
               .where(reports.c.stored_at >= start, reports.c.stored_at < end)
               .group_by(reports.c.account, b, reports.c.resultcode))
    for row in conn.execute(results):  # (one row per account, bucket and code)
        slot(row.account, row.b).extend((int(row.resultcode), int(row.n)))
    lag = _lag_class(reports.c.stored_at - intents.c.updated_at).label("lag")
    lags = (select(reports.c.account, b, lag, func.count().label("n"))
            .select_from(reports.join(intents, and_(intents.c.account == reports.c.account,
                                                    intents.c.mobileid == reports.c.mobileid)))
            .where(reports.c.stored_at >= start, reports.c.stored_at < end, intents.c.state == "accepted")
            .group_by(reports.c.account, b, lag))
    for row in conn.execute(lags):
        slot(row.account, row.b)[1 + int(row.lag)] += int(row.n)
    return out


#: Counts of one bucket: per account.
PerBucket = dict[str, Counts]


def _decode(stored: dict[int, str]) -> dict[int, PerBucket]:
    """Stored counts of many buckets (one JSON parse for all: 8,640 buckets take milliseconds)."""
    return dict(zip(stored, page_counts.decode_many(list(stored.values())), strict=True))


def _oldest_bucket(conn: Connection) -> int | None:
    """The bucket of the oldest row counted (buckets before it are empty), or None: no rows."""
    from sqlalchemy import func, select

    from airflow_provider_smscn.ledger.schema import table

    intents, reports = table("smscn_send_intents"), table("smscn_reports")
    oldest = [conn.execute(select(func.min(col))).scalar()
              for col in (reports.c.stored_at, intents.c.updated_at)]
    found = [float(v) for v in oldest if v is not None]
    return page_counts.bucket_of(min(found)) if found else None


def _runs(buckets: list[int]) -> list[tuple[int, int]]:
    """Consecutive buckets as ``[start, end)`` ranges."""
    out: list[tuple[int, int]] = []
    for b in buckets:
        if out and out[-1][1] == b:
            out[-1] = (out[-1][0], b + BUCKET)
        else:
            out.append((b, b + BUCKET))
    return out


@dataclass
class Counted:
    """Buckets a load counted from the tables: stored in the ledger if ``generation`` still holds."""

    generation: int
    buckets: dict[int, PerBucket]
    older_than: int


class SeriesCache:
    """This process's copy of a ledger's frozen bucket counts (as of the ledger's ``generation``)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.generation: int | None = None
        self.buckets: dict[int, PerBucket] = {}

    def frozen(self, conn: Connection, start: int, target: int) -> tuple[Buckets, Counted]:
        """Counts of ``[start, target)``: from memory, else the ledger's stored counts, else counted."""
        generation = page_counts.read_generation(conn)  # first: a later change is seen next time
        oldest = _oldest_bucket(conn)
        # the longest window's start, aligned down to its bars, stays covered
        keep_from = target - max(span + step for span, step in WINDOWS.values()) - BUCKET
        with self.lock:
            if self.generation is not None and self.generation != generation:
                for b in page_counts.changed_since(conn, self.generation):
                    self.buckets.pop(b, None)
            self.generation = generation
            floor = max(keep_from, target if oldest is None else oldest)
            for b in [b for b in self.buckets if b < floor]:  # pruned since, or out of every window
                del self.buckets[b]
            missing = [b for b in range(max(start, floor), target, BUCKET) if b not in self.buckets]
            counted: dict[int, PerBucket] = {}
            if missing:
                stored = page_counts.read_counts(conn, missing[0], missing[-1] + BUCKET)
                self.buckets.update(_decode({b: stored[b] for b in missing if b in stored}))
                for lo, hi in _runs([b for b in missing if b not in stored]):
                    counted.update((b, {}) for b in range(lo, hi, BUCKET))
                    for (account, b), counts in aggregate(conn, lo, hi).items():
                        counted[b][account] = counts
            found = {(account, b): counts for b, per in (*self.buckets.items(), *counted.items())
                     if start <= b < target for account, counts in per.items()}
        return found, Counted(generation, counted, keep_from)

    def keep(self, counted: Counted) -> None:
        """Keep what a load counted, once the ledger stored it (or nothing changed since it was read).

        Not kept otherwise (the counter moved, or the store could not take its lock: a writer may
        be committing a change to these buckets): the next load reads or counts them again.
        """
        with self.lock:
            if self.generation == counted.generation:  # (else a newer load re-read changed rows)
                self.buckets.update(counted.buckets)


_CACHES: dict[str, SeriesCache] = {}
_CACHES_LOCK = threading.Lock()


def cache_for(url: str) -> SeriesCache:
    with _CACHES_LOCK:
        return _CACHES.setdefault(url, SeriesCache())


def forget_caches() -> None:
    """Drop every cached count (tests, benchmarks)."""
    with _CACHES_LOCK:
        _CACHES.clear()


def parse_idem_key(key: str) -> dict[str, Any]:
    """``dag|task|run[|map index]`` of a send made by the operator; empty for other senders."""
    parts = key.split("|")
    if len(parts) < 3:
        return {}
    map_index = -1
    if len(parts) >= 4 and parts[-1].lstrip("-").isdigit():
        map_index = int(parts.pop())
    return {"dag_id": parts[0], "task_id": parts[1], "run_id": "|".join(parts[2:]), "map_index": map_index}


def account_label(account: str) -> str:
    """``uid @ host`` of an account key (``uid@host/path/``)."""
    uid, _, rest = account.partition("@")
    return f"{uid} @ {rest.split('/', 1)[0]}" if rest else uid


def page_data(ledger: SmsCnLedger, window: str = DEFAULT_WINDOW, *, now: float | None = None,
              dag_allowed: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Everything the page shows for ``window`` (a key of :data:`WINDOWS`), as plain JSON data.

    ``dag_allowed`` hides recent calls and balance readings of DAGs the viewer may not read.
    """
    from airflow_provider_smscn.ledger.engine import db_now

    if window not in WINDOWS:
        raise ValueError(f"window must be one of {', '.join(WINDOWS)}, not {window!r}")
    span, step = WINDOWS[window]
    allowed = dag_allowed or (lambda _dag: True)
    cache = cache_for(ledger.url_for_display)

    counted: list[Counted] = []

    def run(conn: Connection) -> dict[str, Any]:
        at = db_now(conn) if now is None else float(now)
        start = _floor(at - span, step)
        target = max(start, _floor(at - FREEZE_MARGIN, BUCKET))
        buckets, fresh = cache.frozen(conn, start, target)
        counted.append(fresh)
        buckets.update(aggregate(conn, target, at + 1))  # (live buckets: none of them is frozen)
        return {
            "now": at, "window": window, "windows": list(WINDOWS), "bucket_seconds": step,
            **_series(buckets, start, at, step),
            "lag_edges": list(LAG_EDGES),
            "balance": _balance(conn, start, allowed),
            "recent": _recent(conn, allowed),
            "pulls": _pulls(conn, at),
        }

    body = dict(ledger._read(run))
    # (a given ``now`` may be ahead of the ledger: nothing stored or kept)
    if now is None and counted and counted[0].buckets and _store(ledger, counted[0]):
        cache.keep(counted[0])
    return body


def _store(ledger: SmsCnLedger, counted: Counted) -> bool:
    """Keep what this load counted in the ledger, for every other process (best effort, never
    waiting for a writer); True if stored, or if it could not be but nothing changed since."""
    from sqlalchemy.exc import DBAPIError

    from airflow_provider_smscn.ledger.engine import try_write

    rows = {b: page_counts.encode(per) for b, per in counted.buckets.items()}
    generation, older_than = counted.generation, counted.older_than
    try:
        stored = try_write(ledger._entry(),
                           lambda conn: page_counts.store_counts(conn, generation, rows, older_than))
    except DBAPIError:  # e.g. a read-only ledger user: keep the counts while nothing changes
        log.warning("sms.cn page: could not store the page counts in the ledger", exc_info=True)
        try:
            return bool(ledger._read(page_counts.read_generation) == generation)
        except DBAPIError:  # the ledger went away meanwhile: the counts are shown, not kept
            return False
    if stored is None:
        log.debug("sms.cn page: a writer holds the page counts' lock; counted again next load")
    return bool(stored)


def _series(buckets: Buckets, start: int, at: float, step: int) -> dict[str, Any]:
    """Chart arrays and totals per account, in one pass over the buckets (a 30-day window has 8,640)."""
    times = list(range(start, _floor(at, step) + 1, step))
    index = {t: i for i, t in enumerate(times)}
    width = len(times)
    series: dict[str, dict[str, list[int]]] = {}
    placed_total: Counter[str] = Counter()
    results: dict[str, dict[int, int]] = {}
    lags: dict[str, list[int]] = {}
    n_lags = len(LAG_EDGES) + 1
    for (account, t), counts in buckets.items():
        i = index.get(t - t % step)
        if i is None:
            continue
        arrays = series.get(account)
        if arrays is None:
            arrays = series[account] = {"placed": [0] * width, "delivered": [0] * width,
                                        "undelivered": [0] * width}
            results[account], lags[account] = {}, [0] * n_lags
        account_results, account_lags = results[account], lags[account]
        good = bad = 0
        for k in range(CODES_AT, len(counts), 2):
            code, n = counts[k], counts[k + 1]
            account_results[code] = account_results.get(code, 0) + n
            if code == DELIVERED:
                good += n
            else:
                bad += n
        arrays["placed"][i] += counts[0]
        arrays["delivered"][i] += good
        arrays["undelivered"][i] += bad
        placed_total[account] += counts[0]
        for k in range(n_lags):
            if counts[1 + k]:
                account_lags[k] += counts[1 + k]
    totals: dict[str, Any] = {}
    for account in series:
        n_good = results[account].get(DELIVERED, 0)
        n_reports = sum(results[account].values())
        totals[account] = {
            "label": account_label(account), "placed": placed_total[account], "delivered": n_good,
            "undelivered": n_reports - n_good, "rate": (n_good / n_reports) if n_reports else None,
            "results": [{"code": code, "meaning": result_meaning(code), "n": n}
                        for code, n in sorted(results[account].items())],
            "lags": lags[account],
        }
    return {"times": times, "accounts": sorted(series), "series": series, "totals": totals}


def _balance(conn: Connection, start: float, allowed: Callable[[str], bool]) -> dict[str, Any]:
    from sqlalchemy import select

    from airflow_provider_smscn.ledger.schema import table

    t = table("smscn_balance_readings")
    stmt = (select(t.c.account, t.c.balance, t.c.threshold, t.c.source, t.c.dag_id, t.c.task_id, t.c.read_at)
            .where(t.c.read_at >= start).order_by(t.c.read_at.desc()).limit(BALANCE_READINGS))
    readings = [r for r in conn.execute(stmt) if not r.dag_id or allowed(r.dag_id)][::-1]
    thresholds: dict[tuple[str, str, str], dict[str, Any]] = {}
    for r in readings:
        if r.threshold is not None:
            thresholds[(r.account, r.dag_id or "", r.task_id or "")] = {
                "account": r.account, "dag_id": r.dag_id, "task_id": r.task_id, "threshold": int(r.threshold)}
    return {
        "readings": [{"account": r.account, "t": float(r.read_at), "balance": int(r.balance),
                      "source": r.source, "dag_id": r.dag_id, "task_id": r.task_id} for r in readings],
        "thresholds": list(thresholds.values()),
    }


def _recent(conn: Connection, allowed: Callable[[str], bool]) -> list[dict[str, Any]]:
    """The newest calls (by their last change), with the latest report of each."""
    from sqlalchemy import select

    from airflow_provider_smscn.ledger.schema import table

    intents, reports = table("smscn_send_intents"), table("smscn_reports")
    stmt = (select(intents.c.account, intents.c.mobileid, intents.c.mobile, intents.c.idem_key,
                   intents.c.state, intents.c.code, intents.c.created_at, intents.c.updated_at)
            .order_by(intents.c.updated_at.desc()).limit(RECENT_CALLS * 4))
    rows = []
    for r in conn.execute(stmt):
        origin = parse_idem_key(r.idem_key)
        if origin and not allowed(origin["dag_id"]):
            continue
        rows.append((r, origin))
        if len(rows) == RECENT_CALLS:
            break
    latest: dict[tuple[str, str], Any] = {}
    by_account: dict[str, list[str]] = {}
    for r, _ in rows:
        by_account.setdefault(r.account, []).append(r.mobileid)
    for account, ids in by_account.items():
        stmt = (select(reports.c.id, reports.c.mobileid, reports.c.resultcode, reports.c.status,
                       reports.c.retime, reports.c.stored_at)
                .where(reports.c.account == account, reports.c.mobileid.in_(ids)))
        for rep in conn.execute(stmt):
            key = (account, rep.mobileid)
            if key not in latest or (rep.retime or "", rep.id) > (latest[key].retime or "", latest[key].id):
                latest[key] = rep
    out = []
    for r, origin in rows:
        found: Any = latest.get((r.account, r.mobileid))
        out.append({
            "account": r.account, "mobile": mask_mobile(r.mobile), "mobileid": r.mobileid,
            "state": r.state, "stat": r.code, "sent_at": float(r.created_at),
            "updated_at": float(r.updated_at),
            "resultcode": None if found is None else int(found.resultcode),
            "meaning": None if found is None else result_meaning(int(found.resultcode)),
            "carrier_status": None if found is None else (found.status or None),
            "report_at": None if found is None else float(found.stored_at),
            **origin,
        })
    return out


def _pulls(conn: Connection, at: float) -> list[dict[str, Any]]:
    from sqlalchemy import select

    from airflow_provider_smscn.ledger.schema import table

    t = table("smscn_pull_lease")
    rows = conn.execute(select(t.c.account, t.c.holder, t.c.last_pull_at).where(t.c.account != _PRUNE_KEY))
    return [{"account": r.account, "label": account_label(r.account),
             "last_pull_at": None if r.last_pull_at is None else float(r.last_pull_at),
             "age": None if r.last_pull_at is None else max(0.0, at - float(r.last_pull_at)),
             "host": (r.holder or "").split(":", 1)[0] or None}
            for r in rows]


def warm(ledger: SmsCnLedger, windows: Iterable[str] = ("30d",)) -> None:
    """Fill the cache (the api-server does this in the background at start)."""
    for window in windows:
        page_data(ledger, window)
