"""Ack mode (Airflow 3.3's shared streams), Airflow-free: a batch is moved past only once Airflow
stored its event; a watcher that stops first leaves it to be sent again under the same batch id,
and a consumer taking batches by id sees each report once."""

from __future__ import annotations

import contextlib
import json
import multiprocessing
import os
import signal
import time
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_smscn.delivery import new_holder
from airflow_provider_smscn.events.delivery import (
    DeliveryWatch,
    claim_batch,
    next_batch,
    refresh_claim,
    settle_batch,
    take_batches,
)
from tests.support.event_workers import ack_worker
from tests.support.report_sources import make_source, send

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_smscn.sandbox import Sandbox

HOUR = 3600.0


@pytest.fixture(params=["sqlite", "postgresql"])
def ledger_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/l.db"
    return str(request.getfixturevalue("pg_database").url)


def _lines(path: Path) -> list[dict[str, Any]]:
    """The "stored events" of a worker; a killed writer's torn last line was never stored."""
    lines = []
    for line in path.read_text().splitlines() if path.exists() else []:
        with contextlib.suppress(json.JSONDecodeError):
            lines.append(json.loads(line))
    return lines


def _ids(payload: dict[str, Any]) -> list[str]:
    return [r["mobileid"] for r in payload["reports"]]


@pytest.mark.smscn_sandbox(report_delay=0)
def test_a_batch_is_moved_past_only_when_airflow_stored_its_event(
        smscn_sandbox: Sandbox, tmp_path: Path, ledger_url: str) -> None:
    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, ledger_url, tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=5, start="earliest")
    ids = send(smscn_sandbox, 8)
    a, b = new_holder(), new_holder()
    payload, claim, more = claim_batch(source, watch, a, expiry=HOUR)
    assert claim is not None and payload is not None and more
    assert _ids(payload) == ids[:5] and payload["batch"] == f"{claim.after + 1}-{claim.upto}"
    # in flight: neither another watcher nor the old-style path (Airflow < 3.3) moves on meanwhile
    assert claim_batch(source, watch, b, expiry=HOUR) == (None, None, False)
    assert next_batch(source, watch, b) == (None, False)
    assert source.ledger.event_cursor(watch.key).position == claim.after
    assert refresh_claim(source, claim)
    assert settle_batch(source, claim, stored=True)
    assert source.ledger.event_cursor(watch.key).position == claim.upto
    payload, claim, _ = claim_batch(source, watch, b, expiry=HOUR)
    assert payload is not None and claim is not None and _ids(payload) == ids[5:]
    source.ledger.dispose()


@pytest.mark.smscn_sandbox(report_delay=0)
def test_a_batch_whose_watcher_stopped_is_sent_again_whole_under_the_same_id(
        smscn_sandbox: Sandbox, tmp_path: Path, ledger_url: str) -> None:
    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, ledger_url, tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=5, start="earliest")
    ids = send(smscn_sandbox, 3)
    dead, alive = new_holder(), new_holder()
    first, claim, _ = claim_batch(source, watch, dead, expiry=HOUR)
    assert first is not None and claim is not None
    send(smscn_sandbox, 2)  # more reports after the claim: not part of the batch sent again
    assert claim_batch(source, watch, alive, expiry=HOUR)[1] is None  # its claim still lasts
    time.sleep(0.3)  # the dead watcher refreshes nothing: its claim is older than the expiry below
    again, taken, _ = claim_batch(source, watch, alive, expiry=0.2)
    assert taken is not None and again is not None
    assert again["batch"] == first["batch"] and _ids(again) == _ids(first) == ids
    # the dead watcher, back (it had only frozen): it can neither refresh nor settle what it lost
    assert not refresh_claim(source, claim)
    assert not settle_batch(source, claim, stored=True)
    assert settle_batch(source, taken, stored=True)
    rest, _, _ = claim_batch(source, watch, alive, expiry=HOUR)
    assert rest is not None and len(rest["reports"]) == 2
    source.ledger.dispose()


@pytest.mark.smscn_sandbox(report_delay=0)
def test_a_batch_not_stored_is_sent_again_at_once_by_anyone(
        smscn_sandbox: Sandbox, tmp_path: Path, ledger_url: str) -> None:
    """Airflow gave up on the event (ack timeout), or the triggerer stops: the claim is left expired."""
    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, ledger_url, tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=5, start="earliest")
    send(smscn_sandbox, 2)
    first, claim, _ = claim_batch(source, watch, new_holder(), expiry=HOUR)
    assert claim is not None and first is not None
    assert settle_batch(source, claim, stored=False)
    send(smscn_sandbox, 2)  # newer reports: still the same batch, whole, under its id
    again, taken, _ = claim_batch(source, watch, new_holder(), expiry=HOUR)
    assert again is not None and taken is not None and again["batch"] == first["batch"]
    assert _ids(again) == _ids(first)
    source.ledger.dispose()


@pytest.mark.smscn_sandbox(report_delay=0)
def test_reports_nobody_watches_for_move_the_cursor_without_an_event(
        smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    smscn_sandbox.set_account(uid="test", outcomes={100: 1.0})
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=5, start="earliest")
    send(smscn_sandbox, 3)  # all delivered: an undelivered-only watcher has nothing to send
    assert claim_batch(source, watch, new_holder(), expiry=HOUR) == (None, None, False)
    cursor = source.ledger.event_cursor(watch.key)
    assert cursor.position > 0 and cursor.state == ""
    source.ledger.dispose()


def test_a_run_takes_each_batch_once_and_keeps_it_through_its_retries(tmp_path: Path) -> None:
    from airflow_provider_smscn.ledger import SmsCnLedger

    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    batch = {"watch": "delivery:w", "batch": "1-3", "reports": [{"mobileid": "m1"}]}
    other = {"watch": "delivery:w", "batch": "4-6", "reports": [{"mobileid": "m2"}]}
    # as a task gets them: triggering_asset_events, asset -> events with the payload in .extra
    events = {"asset": [SimpleNamespace(extra={"from_trigger": True, "payload": batch})]}
    assert take_batches(ledger, events, "dag_a", "run_1") == [batch]
    assert take_batches(ledger, events, "dag_a", "run_1") == [batch]  # run_1's retry still has it
    sent_again = [{"payload": batch}, {"payload": other}, {"something": "else"}]
    assert take_batches(ledger, sent_again, "dag_a", "run_2") == [other]  # the second copy: skipped
    assert take_batches(ledger, [batch], "dag_b", "run_9") == [batch]  # another consumer has its own
    ledger.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
@pytest.mark.smscn_sandbox(report_delay=0, seed=5)
def test_a_watcher_killed_anywhere_loses_no_report_and_a_copy_keeps_its_batch_id(
        backend: str, smscn_sandbox: Sandbox, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    url = f"sqlite:///{tmp_path}/l.db" if backend == "sqlite" else request.getfixturevalue("pg_database").url
    smscn_sandbox.set_account(uid="test", outcomes={100: 0.5, 133: 0.5})
    ids = send(smscn_sandbox, 200)
    conn = json.loads(smscn_sandbox.connection_json())
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    assets = [tmp_path / f"asset{n}.jsonl" for n in range(2)]
    workers = [ctx.Process(target=ack_worker, args=(smscn_sandbox.url, conn, url, str(tmp_path / f"s{n}"),
                                                    90.0, 200, str(assets[n]), start, 1.0))
               for n in range(2)]
    for w in workers:
        w.start()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and len(_lines(assets[0])) < 3:
        time.sleep(0.005)
    os.kill(workers[0].pid, signal.SIGKILL)  # somewhere in claim / store / settle
    workers[1].join(timeout=120)
    workers[0].join(timeout=10)
    assert workers[1].exitcode == 0
    lines = _lines(assets[0]) + _lines(assets[1])
    by_batch: dict[str, list[list[str]]] = {}
    for line in lines:
        by_batch.setdefault(line["batch"], []).append(line["ids"])
    assert all(copy == copies[0] for copies in by_batch.values() for copy in copies)  # a copy is whole
    assert sum(len(copies) - 1 for copies in by_batch.values()) <= 1  # only the killed one's batch
    once = sorted(mid for copies in by_batch.values() for mid in copies[0])
    outcome = {c["mobileid"]: int(c["resultcode"]) for c in smscn_sandbox.calls()}
    undelivered = sorted(i for i in ids if outcome[i] != 100)
    assert once == undelivered  # by batch id: every report, none twice
