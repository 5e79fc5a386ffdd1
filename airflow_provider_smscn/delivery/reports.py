"""What waiters show of reports: failure messages and event payloads, numbers masked; lease holders."""

from __future__ import annotations

import os
import socket
import uuid
from typing import TYPE_CHECKING

from airflow_provider_smscn.client.redact import mask_mobile

if TYPE_CHECKING:
    from collections.abc import Mapping

    from airflow_provider_smscn.client.models import DeliveryReport


def new_holder() -> str:
    """A lease holder name that tells hosts and processes apart in the ledger."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


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
