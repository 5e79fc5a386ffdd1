"""What the sms.cn page shows, read from the ledger: Airflow-free, so tests and benchmarks drive it.

Why a cache: the charts count every call and report of the window, and a ledger may hold a
million reports in it. Counts are kept per account and 5-minute bucket; a bucket that ended more
than :data:`FREEZE_MARGIN` seconds ago never changes again (reports are append-only, stamped by the
ledger's clock when stored; a call counts as placed when the vendor's 100 was recorded), so each
process of the api-server counts it once and keeps it. A page load then reads only the last
minutes from the tables (index ranges on ``stored_at`` / ``updated_at``), plus a few index-backed
look-ups (recent calls, balance readings, pull leases). The first load after a start warms the
cache: :func:`warm` runs it in the background when the api-server starts.

Nothing here returns a full number (masked ``139****8888``), a code or a credential.
"""

from __future__ import annotations

import math
import threading
from collections import Counter
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.client.codes import result_meaning
from airflow_provider_smscn.client.redact import mask_mobile

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable

    from sqlalchemy.engine import Connection

    from airflow_provider_smscn.ledger import SmsCnLedger

#: Base granularity of the cached counts (seconds).
BUCKET = 300
#: A bucket that ended this long ago is final (covers commit delays and clock steps of a writer).
FREEZE_MARGIN = 120.0
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


@dataclass
class Counts:
    """One account's calls and reports in one bucket."""

    placed: int = 0
    results: Counter[int] = field(default_factory=Counter)
    lags: list[int] = field(default_factory=lambda: [0] * (len(LAG_EDGES) + 1))

    def add(self, other: Counts) -> None:
        self.placed += other.placed
        self.results.update(other.results)
        self.lags = [a + b for a, b in zip(self.lags, other.lags, strict=True)]


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
        return out.setdefault((account, int(bucket) * BUCKET), Counts())

    b = _bucket_expr(intents.c.updated_at, dialect).label("b")
    placed = (select(intents.c.account, b, func.count().label("n"))
              .where(intents.c.updated_at >= start, intents.c.updated_at < end, intents.c.state == "accepted")
              .group_by(intents.c.account, b))
    for row in conn.execute(placed):
        slot(row.account, row.b).placed += int(row.n)
    b = _bucket_expr(reports.c.stored_at, dialect).label("b")
    results = (select(reports.c.account, b, reports.c.resultcode, func.count().label("n"))
               .where(reports.c.stored_at >= start, reports.c.stored_at < end)
               .group_by(reports.c.account, b, reports.c.resultcode))
    for row in conn.execute(results):
        slot(row.account, row.b).results[int(row.resultcode)] += int(row.n)
    lag = _lag_class(reports.c.stored_at - intents.c.updated_at).label("lag")
    lags = (select(reports.c.account, b, lag, func.count().label("n"))
            .select_from(reports.join(intents, and_(intents.c.account == reports.c.account,
                                                    intents.c.mobileid == reports.c.mobileid)))
            .where(reports.c.stored_at >= start, reports.c.stored_at < end, intents.c.state == "accepted")
            .group_by(reports.c.account, b, lag))
    for row in conn.execute(lags):
        slot(row.account, row.b).lags[int(row.lag)] += int(row.n)
    return out


class SeriesCache:
    """Frozen bucket counts of one ledger in this process, covering ``[lo, hi)``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.lo: int | None = None
        self.hi: int | None = None
        self.buckets: Buckets = {}

    def frozen(self, conn: Connection, start: int, target: int) -> Buckets:
        """Counts of ``[start, target)``: computed once per range, then kept."""
        with self.lock:
            if self.lo is None or self.hi is None or start >= self.hi or target <= self.lo:
                self.buckets, self.lo, self.hi = aggregate(conn, start, target), start, target
            else:
                if start < self.lo:
                    self.buckets.update(aggregate(conn, start, self.lo))
                    self.lo = start
                if target > self.hi:
                    self.buckets.update(aggregate(conn, self.hi, target))
                    self.hi = target
            # the longest window's start, aligned down to its bars, stays covered
            keep_from = target - max(span + step for span, step in WINDOWS.values()) - BUCKET
            if self.lo < keep_from:
                self.buckets = {k: v for k, v in self.buckets.items() if k[1] >= keep_from}
                self.lo = keep_from
            return {k: v for k, v in self.buckets.items() if start <= k[1] < target}


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

    def run(conn: Connection) -> dict[str, Any]:
        at = db_now(conn) if now is None else float(now)
        start = _floor(at - span, step)
        target = max(start, _floor(at - FREEZE_MARGIN, BUCKET))
        buckets = cache.frozen(conn, start, target)
        for key, counts in aggregate(conn, target, at + 1).items():
            buckets.setdefault(key, Counts()).add(counts)
        return {
            "now": at, "window": window, "windows": list(WINDOWS), "bucket_seconds": step,
            **_series(buckets, start, at, step),
            "lag_edges": list(LAG_EDGES),
            "balance": _balance(conn, start, allowed),
            "recent": _recent(conn, allowed),
            "pulls": _pulls(conn, at),
        }

    return dict(ledger._read(run))


def _series(buckets: Buckets, start: int, at: float, step: int) -> dict[str, Any]:
    """Chart arrays and totals per account, in one pass over the buckets (a 30-day window has 8,640)."""
    times = list(range(start, _floor(at, step) + 1, step))
    index = {t: i for i, t in enumerate(times)}
    width = len(times)
    series: dict[str, dict[str, list[int]]] = {}
    placed_total: Counter[str] = Counter()
    results: dict[str, Counter[int]] = {}
    lags: dict[str, list[int]] = {}
    for (account, t), counts in buckets.items():
        i = index.get(t - t % step)
        if i is None:
            continue
        arrays = series.get(account)
        if arrays is None:
            arrays = series[account] = {"placed": [0] * width, "delivered": [0] * width,
                                        "undelivered": [0] * width}
            results[account], lags[account] = Counter(), [0] * (len(LAG_EDGES) + 1)
        good = counts.results.get(DELIVERED, 0)
        arrays["placed"][i] += counts.placed
        arrays["delivered"][i] += good
        arrays["undelivered"][i] += sum(counts.results.values()) - good
        placed_total[account] += counts.placed
        results[account].update(counts.results)
        account_lags = lags[account]
        for k, n in enumerate(counts.lags):
            if n:
                account_lags[k] += n
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
