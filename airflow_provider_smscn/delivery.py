"""Waiting for delivery reports without losing any: the step the sensor and the trigger share.

Airflow-free on purpose: the ledger and a ``pull`` callable are all it needs, so a plain Python
user (or a test) can drive it too.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from typing import TYPE_CHECKING

from airflow_provider_smscn import metrics
from airflow_provider_smscn.client.redact import mask_mobile

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping

    from airflow_provider_smscn.client.models import DeliveryReport
    from airflow_provider_smscn.ledger import SmsCnLedger


def new_holder() -> str:
    """A lease holder name that tells hosts and processes apart in the ledger."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def collect_reports(
    ledger: SmsCnLedger,
    account: str,
    mobileids: Iterable[str],
    pull: Callable[[], list[DeliveryReport]],
    *,
    interval: float,
    holder: str,
) -> dict[str, DeliveryReport]:
    """Return the reports already known for ``mobileids``, pulling once if this waiter wins the lease.

    Every pulled report, ours or not, is stored before it is looked at: the vendor hands each
    report out once, so the ledger is the only place another waiter can find its own.
    """
    wanted = list(dict.fromkeys(mobileids))
    found = ledger.get_reports(account, wanted)
    if len(found) < len(wanted) and _pull_due(ledger, account, interval) \
            and ledger.try_acquire_pull(account, holder, interval):
        reports = pull()
        if reports and ledger.store_reports(account, reports):
            metrics.pull_lag(ledger, account, reports)
            found = ledger.get_reports(account, wanted)
    return found


def _pull_due(ledger: SmsCnLedger, account: str, interval: float) -> bool:
    """A cheap read first: only a waiter that may win the lease tries the (write) transaction."""
    last = ledger.last_pull_time(account)
    return last is None or time.time() - last >= interval


def describe_undelivered(reports: Mapping[str, DeliveryReport]) -> str:
    """A failure message naming each undelivered call, number masked, with the code's meaning."""
    bad = [r for r in reports.values() if not r.delivered]
    lines = [
        f"{mask_mobile(r.mobile)} (message id {r.mobileid}): result {r.resultcode} {r.meaning}"
        + (f", carrier status {r.status}" if r.status else "")
        for r in bad
    ]
    return f"{len(bad)} of {len(reports)} voice call(s) not delivered: " + "; ".join(lines)


def report_payload(report: DeliveryReport) -> dict[str, object]:
    """A report as XCom and trigger events carry it: plain data, the number masked."""
    return {**report.to_dict(), "mobile": mask_mobile(report.mobile)}
