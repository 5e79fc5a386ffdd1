"""Waiting for delivery reports without losing any: what the sensor, the trigger and the send share.

Airflow-free on purpose: a ledger, a ``pull`` callable and a spool directory are all it needs, so
a plain Python user (or a test) can drive it too.

* :mod:`.pulling`: the pull turn (drain while pulls come back full), store-or-spool, ledger errors
  as retriable, the fresh-Connection rule, and ``collect_reports`` for one waiter.
* :mod:`.spool`: pulled batches kept on local disk while the ledger is away.
* :mod:`.watcher`: one ledger look per process per poll interval for all triggers of a process.
* :mod:`.reports`: failure messages and payloads, numbers masked.
"""

from __future__ import annotations

from airflow_provider_smscn.delivery.pulling import (
    MAX_EXTRA_PULLS,
    REPORTS_PER_PULL,
    LedgerUnavailableError,
    ReportSource,
    collect_reports,
    with_fresh_connection,
)
from airflow_provider_smscn.delivery.reports import describe_undelivered, new_holder, report_payload
from airflow_provider_smscn.delivery.spool import Spool, default_spool_dir

__all__ = [
    "MAX_EXTRA_PULLS",
    "REPORTS_PER_PULL",
    "LedgerUnavailableError",
    "ReportSource",
    "Spool",
    "collect_reports",
    "default_spool_dir",
    "describe_undelivered",
    "new_holder",
    "report_payload",
    "with_fresh_connection",
]
