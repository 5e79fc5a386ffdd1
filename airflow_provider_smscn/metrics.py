"""Every metric of the provider: its name, its kind, and the one function that emits it.

Metrics go through Airflow's own metrics layer (``airflow.sdk.observability.stats`` on 3.3,
``airflow.stats.Stats`` before, see :func:`~airflow_provider_smscn._compat.get_stats`), so the
deployment's ``[metrics]`` settings decide where they end up (StatsD, Datadog, OpenTelemetry) and
Airflow puts its own prefix in front (``airflow.smscn.calls_placed``). Nothing here is configured.

Names carry the code (``smscn.calls_refused.102``) because plain StatsD has no tags; the account
(uid only, never a credential) rides along as a tag for backends that keep tags. Emitting never
raises: a metrics backend that is down must not fail a send or a wait.

``python -m airflow_provider_smscn.metrics`` prints the table of ``docs/metrics.md``.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from airflow_provider_smscn.client.models import DeliveryReport
    from airflow_provider_smscn.ledger import SmsCnLedger

log = logging.getLogger(__name__)

PREFIX = "smscn"


@dataclass(frozen=True)
class Metric:
    """One metric as the docs table shows it."""

    name: str
    kind: str
    unit: str
    description: str


CALLS_PLACED = Metric(f"{PREFIX}.calls_placed", "counter", "calls",
                      "Numbers in ``ac=sendcode`` requests the vendor accepted (stat 100).")
CALLS_REFUSED = Metric(f"{PREFIX}.calls_refused.<stat>", "counter", "calls",
                       "Numbers in ``ac=sendcode`` requests the vendor refused, by its ``stat`` code "
                       "(e.g. ``smscn.calls_refused.102``, insufficient balance).")
REPORTS = Metric(f"{PREFIX}.reports.<resultcode>", "counter", "reports",
                 "Delivery reports pulled, by result code (``smscn.reports.100`` delivered, "
                 "``.130`` failed, ``.131`` empty number, ...).")
STATUS_PULLS = Metric(f"{PREFIX}.status_pulls", "counter", "requests",
                      "``ac=status`` pulls made (however many waiters share them).")
PULL_LAG = Metric(f"{PREFIX}.pull_lag", "timer", "ms",
                  "Per pulled report of a call this provider placed: time from the vendor's acceptance "
                  "of the send to the report being stored in the ledger.")
BALANCE = Metric(f"{PREFIX}.balance", "gauge", "vendor units",
                 "The account's balance at every reading (balance-check task, ``SmsCnHook.get_balance``, "
                 "the connection Test). The ``ac=sendcode`` reply carries no balance, so sends do not "
                 "update it.")

ALL: tuple[Metric, ...] = (CALLS_PLACED, CALLS_REFUSED, REPORTS, STATUS_PULLS, PULL_LAG, BALANCE)


def _name(metric: Metric, code: int | None = None) -> str:
    return metric.name if code is None else metric.name.split(".<", 1)[0] + f".{int(code)}"


def _tags(account: str | None) -> dict[str, str] | None:
    """The uid part of an account key (``uid@host/path``) as a tag: plain text, no credential."""
    return {"account": account.split("@", 1)[0]} if account else None


def _emit(kind: str, name: str, *args: Any, tags: dict[str, str] | None) -> None:
    from airflow_provider_smscn._compat import get_stats

    try:
        getattr(get_stats(), kind)(name, *args, tags=tags)
    except Exception:  # metrics must never fail the work they describe
        log.debug("smscn metric %s not emitted", name, exc_info=True)


def calls_placed(count: int, account: str | None = None) -> None:
    """The vendor accepted a send of ``count`` numbers."""
    if count > 0:
        _emit("incr", _name(CALLS_PLACED), int(count), tags=_tags(account))


def calls_refused(code: int, count: int, account: str | None = None) -> None:
    """The vendor refused a send of ``count`` numbers with ``stat`` ``code``."""
    if count > 0:
        _emit("incr", _name(CALLS_REFUSED, code), int(count), tags=_tags(account))


def status_pulled(reports: Sequence[DeliveryReport], account: str | None = None) -> None:
    """One ``ac=status`` pull and the reports it handed out, counted by result code."""
    tags = _tags(account)
    _emit("incr", _name(STATUS_PULLS), 1, tags=tags)
    counts: dict[int, int] = {}
    for report in reports:
        counts[int(report.resultcode)] = counts.get(int(report.resultcode), 0) + 1
    for code, count in sorted(counts.items()):
        _emit("incr", _name(REPORTS, code), count, tags=tags)


def pull_lag(ledger: SmsCnLedger, account: str, reports: Iterable[DeliveryReport]) -> None:
    """After stored reports: the time since the vendor accepted each one's send (our own sends only)."""
    ids = [str(r.mobileid) for r in reports if r.mobileid]
    if not ids:
        return
    try:
        intents = ledger.get_intents(account, ids)
    except Exception:  # a metric must not fail a waiter
        log.debug("smscn pull lag: intents not readable", exc_info=True)
        return
    now = time.time()
    tags = _tags(account)
    for mobileid in dict.fromkeys(ids):
        intent = intents.get(mobileid)
        if intent is not None and intent.state == "accepted":
            _emit("timing", _name(PULL_LAG), max(0.0, now - intent.updated_at) * 1000.0, tags=tags)


def balance(value: int, account: str | None = None) -> None:
    """A balance reading."""
    _emit("gauge", _name(BALANCE), int(value), tags=_tags(account))


def markdown_table() -> str:
    """The metrics table of ``docs/metrics.md`` (names without Airflow's own prefix)."""
    lines = ["| name | kind | unit | what |", "|---|---|---|---|"]
    lines += [f"| `{m.name}` | {m.kind} | {m.unit} | {m.description} |" for m in ALL]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(markdown_table(), end="")
