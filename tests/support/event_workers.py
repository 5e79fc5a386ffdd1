"""Workers of the event tests: a watcher instance in a process of its own (spawned: imports only this)."""

from __future__ import annotations

import time
from typing import Any


def watch_worker(sandbox_url: str, conn: dict[str, Any], ledger_url: str, spool_dir: str, seconds: float,
                 expected: int, out: Any, start: Any) -> None:
    """Run one watcher instance (its own holder) until ``expected`` reports were emitted by anyone
    or ``seconds`` passed; put the mobileids of every batch it emitted on ``out``.

    ``start`` is a barrier shared by the racing instances: without it, the instance spawned first
    could drain everything before the other finished importing (a relay, not a race). After each
    win an instance pauses as a trigger does when it yields its event, so a loaded machine's
    scheduler cannot hand one process every batch. A ledger error is waited out as the trigger
    does (``triggers/events.py``: logged, tried again at the next poll)."""
    from airflow_provider_smscn.delivery import LedgerUnavailableError
    from airflow_provider_smscn.events.delivery import next_batch

    ledger, source, watch, holder = _watcher(sandbox_url, conn, ledger_url, spool_dir)
    emitted: list[list[str]] = []
    start.wait(timeout=60)
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        try:
            payload, more = next_batch(source, watch, holder)
        except LedgerUnavailableError:  # SQLite busy under the race: the trigger tries at its next poll
            time.sleep(0.02)
            continue
        if payload is not None:
            emitted.append([r["mobileid"] for r in payload["reports"]])
            time.sleep(0.02)
        if ledger.event_cursor(watch.key).position >= expected:
            break
        if not more:
            time.sleep(0.02)
    ledger.dispose()
    out.put(emitted)


def ack_worker(sandbox_url: str, conn: dict[str, Any], ledger_url: str, spool_dir: str, seconds: float,
               expected: int, asset_path: str, start: Any, expiry: float) -> None:
    """An ack-mode watcher instance (Airflow 3.3's shared stream, without Airflow): claim a batch,
    "store its event" (a JSON line appended and fsynced to ``asset_path``, as Airflow stores an
    asset event), then settle it. A test may SIGKILL this process anywhere in that sequence."""
    import json
    import os

    from airflow_provider_smscn.delivery import LedgerUnavailableError
    from airflow_provider_smscn.events.delivery import claim_batch, settle_batch

    ledger, source, watch, holder = _watcher(sandbox_url, conn, ledger_url, spool_dir)
    start.wait(timeout=60)
    end = time.monotonic() + seconds
    with open(asset_path, "a", encoding="utf-8") as asset:
        while time.monotonic() < end:
            try:
                batches, more, _ = claim_batch(source, watch, holder, expiry=expiry)
            except LedgerUnavailableError:
                time.sleep(0.02)
                continue
            for payload, _claim in batches:
                time.sleep(0.02)  # Airflow storing the event
                asset.write(json.dumps({"batch": payload["batch"],
                                        "ids": [r["mobileid"] for r in payload["reports"]]}) + "\n")
                asset.flush()
                os.fsync(asset.fileno())
            for _payload, claim in batches:  # Airflow confirms them in order
                while True:  # the producer tries a failed settle again, as here
                    try:
                        settle_batch(source, claim, stored=True)
                        break
                    except LedgerUnavailableError:
                        time.sleep(0.02)
            if ledger.event_cursor(watch.key).position >= expected:
                break
            if not more and not batches:
                time.sleep(0.02)
    ledger.dispose()


def _watcher(sandbox_url: str, conn: dict[str, Any], ledger_url: str, spool_dir: str
             ) -> tuple[Any, Any, Any, str]:
    """(ledger, report source, watch, holder) of one racing instance, as the trigger builds them."""
    from airflow_provider_smscn.client import SmsCnClient
    from airflow_provider_smscn.delivery import ReportSource, Spool, new_holder
    from airflow_provider_smscn.events.delivery import DeliveryWatch
    from airflow_provider_smscn.ledger import SmsCnLedger

    client = SmsCnClient(conn["login"], password=conn["password"], secret_key=conn["extra"]["secret_key"],
                         base_url=sandbox_url)
    ledger = SmsCnLedger(ledger_url)
    source = ReportSource(ledger=ledger, account=client.account_key, pull=client.pull_delivery_reports,
                          pull_interval=0.05, spool=Spool(spool_dir, ledger.url_for_display))
    watch = DeliveryWatch(client.account_key, name="race", limit=7, start="earliest")
    return ledger, source, watch, new_holder()
