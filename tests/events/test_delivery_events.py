"""Delivery events, Airflow-free: each matching report in exactly one batch, across instances and restarts."""

from __future__ import annotations

import dataclasses
import json
import multiprocessing
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_smscn.client.errors import SmsCnValidationError
from airflow_provider_smscn.delivery import new_holder
from airflow_provider_smscn.events.delivery import DeliveryWatch, check_result_codes, next_batch
from tests.support.event_workers import watch_worker
from tests.support.report_sources import make_source, send, stored_ids

if TYPE_CHECKING:
    from pathlib import Path

    from airflow_provider_smscn.sandbox import Sandbox

MIXED = {100: 0.5, 131: 0.25, 133: 0.25}


def _drain(source: Any, watch: DeliveryWatch, holder: str, rounds: int = 50) -> list[dict[str, Any]]:
    payloads = []
    for _ in range(rounds):
        payload, more = next_batch(source, watch, holder)
        if payload is not None:
            payloads.append(payload)
        if not more and payload is None:
            break
    return payloads


@pytest.mark.smscn_sandbox(report_delay=0, seed=7)
def test_undelivered_reports_come_once_with_masked_numbers_and_their_sender(
        smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    smscn_sandbox.set_account(uid="test", outcomes=MIXED)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    watch = DeliveryWatch(source.account, start="earliest", limit=10)
    ids = send(smscn_sandbox, 40)
    source.ledger.record_intents(source.account, "dag_a|send|run_1", [(i, "13900000000") for i in ids[:5]])
    payloads = _drain(source, watch, new_holder())
    outcome = {c["mobileid"]: c["resultcode"] for c in smscn_sandbox.calls()}
    reported = [r for p in payloads for r in p["reports"]]
    assert sorted(r["mobileid"] for r in reported) == sorted(i for i in ids if outcome[i] != 100)
    assert all(r["mobile"].startswith("139****") and r["meaning"] for r in reported)
    for r in reported:
        sender = {"dag_id": "dag_a", "task_id": "send", "run_id": "run_1"}
        assert r["sent_by"] == (sender if r["mobileid"] in ids[:5] else None)
    assert all(p["count"] <= 10 for p in payloads)
    assert _drain(source, watch, new_holder()) == []  # a new instance (a restart) repeats nothing
    more = send(smscn_sandbox, 10)
    again = [r["mobileid"] for p in _drain(source, watch, new_holder()) for r in p["reports"]]
    assert sorted(again) == sorted(i for i in more if smscn_outcome(smscn_sandbox, i) != 100)


def smscn_outcome(sandbox: Sandbox, mobileid: str) -> int:
    return next(int(c["resultcode"]) for c in sandbox.calls() if c["mobileid"] == mobileid)


@pytest.mark.smscn_sandbox(report_delay=0, seed=3)
def test_result_codes_select_what_is_reported(smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    smscn_sandbox.set_account(uid="test", outcomes=MIXED)
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    ids = send(smscn_sandbox, 30)
    delivered = DeliveryWatch(source.account, frozenset({100}), start="earliest")
    off = DeliveryWatch(source.account, frozenset({133}), start="earliest")
    assert delivered.key != off.key  # two filters, two cursors
    got = {w.key: [r for p in _drain(source, w, new_holder()) for r in p["reports"]]
           for w in (delivered, off)}
    assert {r["resultcode"] for r in got[delivered.key]} == {100}
    assert {r["resultcode"] for r in got[off.key]} == {133}
    assert len(got[delivered.key]) + len(got[off.key]) == len(ids) - sum(
        1 for i in ids if smscn_outcome(smscn_sandbox, i) == 131)


def test_bad_result_codes_are_refused_by_name() -> None:
    with pytest.raises(SmsCnValidationError, match="999"):
        check_result_codes([999])
    with pytest.raises(SmsCnValidationError, match="'x'"):
        check_result_codes(["x"])
    assert check_result_codes("133,131") == [131, 133]


@pytest.mark.smscn_sandbox(report_delay=0)
def test_a_new_watcher_starts_at_the_end_by_default(smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    smscn_sandbox.set_account(uid="test", outcomes={131: 1})
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    send(smscn_sandbox, 3)
    source.ledger.store_reports(source.account, source.pull(), pull_id="p1")
    watch = DeliveryWatch(source.account)  # start="latest"
    assert _drain(source, watch, new_holder()) == []
    later = send(smscn_sandbox, 2)
    reported = [r["mobileid"] for p in _drain(source, watch, new_holder()) for r in p["reports"]]
    assert sorted(reported) == sorted(later)


@pytest.mark.smscn_sandbox(report_delay=0)
def test_the_watcher_pulls_only_under_the_shared_lease(smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    source = dataclasses.replace(source, pull_interval=3600)
    assert source.ledger.try_acquire_pull(source.account, "a-sensor", 3600)  # someone else's slot
    send(smscn_sandbox, 3)
    watch = DeliveryWatch(source.account, start="earliest")
    assert _drain(source, watch, new_holder()) == []
    assert smscn_sandbox.stats()["requests"]["status"] == 0  # nobody's reports taken outside the lease


def test_a_batch_is_claimed_by_exactly_one_instance(tmp_path: Path) -> None:
    from airflow_provider_smscn.ledger import SmsCnLedger

    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    assert ledger.event_cursor("delivery:k", start=4).position == 4
    assert ledger.event_cursor("delivery:k", start=99).position == 4  # created once
    assert ledger.advance_event_cursor("delivery:k", 4, 9, "a")
    assert not ledger.advance_event_cursor("delivery:k", 4, 9, "b")  # read the same position: loses
    with pytest.raises(ValueError, match="back"):
        ledger.advance_event_cursor("delivery:k", 9, 3, "a")
    ledger.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql", "mysql"])
@pytest.mark.smscn_sandbox(report_delay=0, seed=11)
def test_two_watcher_processes_emit_each_report_exactly_once(
        backend: str, smscn_sandbox: Sandbox, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    urls = {"sqlite": lambda: f"sqlite:///{tmp_path}/l.db",
            "postgresql": lambda: request.getfixturevalue("pg_database").url,
            "mysql": lambda: request.getfixturevalue("mysql_database")}
    url = urls[backend]()
    smscn_sandbox.set_account(uid="test", outcomes=MIXED)
    ids = send(smscn_sandbox, 300)
    conn = json.loads(smscn_sandbox.connection_json())
    ctx = multiprocessing.get_context("spawn")
    out, start = ctx.Queue(), ctx.Barrier(2)
    workers = [ctx.Process(target=watch_worker, args=(smscn_sandbox.url, conn, url, str(tmp_path / f"s{n}"),
                                                      90.0, 300, out, start)) for n in range(2)]
    for w in workers:
        w.start()
    results = [out.get(timeout=120) for _ in workers]
    for w in workers:
        w.join(timeout=30)
    emitted = [mid for result in results for batch in result for mid in batch]
    undelivered = sorted(i for i in ids if smscn_outcome(smscn_sandbox, i) != 100)
    assert sorted(emitted) == undelivered  # every one, none twice
    assert all(results), "both instances should have won some batches (a race, not a relay)"
    source = make_source(smscn_sandbox, url, tmp_path / "spool")
    assert sorted(stored_ids(source)) == sorted(ids)  # every pulled report kept in the ledger
    source.ledger.dispose()


def test_a_batch_is_given_back_only_while_nobody_moved_on(tmp_path: Path) -> None:
    from airflow_provider_smscn.ledger import SmsCnLedger

    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    ledger.event_cursor("delivery:k", start=0)
    assert ledger.advance_event_cursor("delivery:k", 0, 5, "a")
    assert not ledger.release_event_cursor("delivery:k", 5, 0, "b")  # not b's claim
    assert ledger.release_event_cursor("delivery:k", 5, 0, "a")
    assert ledger.event_cursor("delivery:k").position == 0
    assert ledger.advance_event_cursor("delivery:k", 0, 5, "a")
    assert ledger.advance_event_cursor("delivery:k", 5, 9, "b")
    assert not ledger.release_event_cursor("delivery:k", 5, 0, "a")  # b moved on: the claim stands
    ledger.dispose()
