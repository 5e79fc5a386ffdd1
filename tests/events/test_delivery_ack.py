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
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any

import pytest

from airflow_provider_smscn.client.errors import SmsCnValidationError
from airflow_provider_smscn.delivery import new_holder
from airflow_provider_smscn.events.delivery import (
    READ_LIMIT,
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
def test_batches_are_moved_past_in_order_only_when_airflow_stored_their_events(
        smscn_sandbox: Sandbox, tmp_path: Path, ledger_url: str) -> None:
    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, ledger_url, tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=5, start="earliest")
    ids = send(smscn_sandbox, 8)
    a, b = new_holder(), new_holder()
    batches, more, _ = claim_batch(source, watch, a, expiry=HOUR)
    [(payload, claim)] = batches
    assert more and _ids(payload) == ids[:5] and payload["batch"] == f"{claim.after + 1}-{claim.upto}"
    # in flight: neither another watcher nor the old-style path (Airflow < 3.3) moves on meanwhile
    assert claim_batch(source, watch, b, expiry=HOUR) == ([], False, False)
    assert next_batch(source, watch, b) == (None, False)
    # its holder sends the next batch before the first is confirmed (Airflow confirms in ~2 s)
    [(payload2, claim2)] = claim_batch(source, watch, a, expiry=HOUR, tracked=[claim])[0]
    assert _ids(payload2) == ids[5:] and claim2.after == claim.upto
    assert source.ledger.event_cursor(watch.key).position == claim.after
    assert refresh_claim(source, claim)
    assert not settle_batch(source, claim2, stored=True)  # not the first in flight: refused
    assert settle_batch(source, claim, stored=True)
    assert source.ledger.event_cursor(watch.key).position == claim.upto
    assert settle_batch(source, claim2, stored=True)
    cursor = source.ledger.event_cursor(watch.key)
    assert cursor.position == claim2.upto and cursor.state == ""
    assert claim_batch(source, watch, b, expiry=HOUR) == ([], False, False)  # nothing new, nothing lost
    source.ledger.dispose()


@pytest.mark.smscn_sandbox(report_delay=0)
def test_batches_whose_watcher_stopped_are_sent_again_whole_under_the_same_ids(
        smscn_sandbox: Sandbox, tmp_path: Path, ledger_url: str) -> None:
    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, ledger_url, tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=2, start="earliest")
    send(smscn_sandbox, 3)
    dead, alive = new_holder(), new_holder()
    first = claim_batch(source, watch, dead, expiry=HOUR)[0]
    first += claim_batch(source, watch, dead, expiry=HOUR, tracked=[first[0][1]])[0]
    assert [len(p["reports"]) for p, _ in first] == [2, 1]
    send(smscn_sandbox, 2)  # more reports after the claims: not part of the batches sent again
    assert claim_batch(source, watch, alive, expiry=HOUR) == ([], False, False)  # its claims still last
    time.sleep(0.3)  # the dead watcher refreshes nothing: its claims are older than the expiry below
    again, more, sent_again = claim_batch(source, watch, alive, expiry=0.2)
    assert more and sent_again
    assert [(p["batch"], _ids(p)) for p, _ in again] == [(p["batch"], _ids(p)) for p, _ in first]
    # the dead watcher, back (it had only frozen): it can neither refresh nor settle what it lost
    assert not refresh_claim(source, first[0][1])
    assert not settle_batch(source, first[0][1], stored=True)
    for _, claim in again:
        assert settle_batch(source, claim, stored=True)
    [(rest, _)] = claim_batch(source, watch, alive, expiry=HOUR)[0]
    assert len(rest["reports"]) == 2
    source.ledger.dispose()


@pytest.mark.smscn_sandbox(report_delay=0)
def test_batches_not_stored_are_sent_again_at_once_by_anyone(
        smscn_sandbox: Sandbox, tmp_path: Path, ledger_url: str) -> None:
    """Airflow gave up on an event (ack timeout), or the triggerer stops: its claims are left expired."""
    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, ledger_url, tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=5, start="earliest")
    send(smscn_sandbox, 2)
    holder = new_holder()
    [(first, claim)] = claim_batch(source, watch, holder, expiry=HOUR)[0]
    assert settle_batch(source, claim, stored=False)
    send(smscn_sandbox, 2)  # newer reports: still the same batch, whole, under its id
    for taker in (holder, new_holder()):  # its own holder takes it up again, or anyone
        [(again, taken)] = claim_batch(source, watch, taker, expiry=HOUR)[0]
        assert again["batch"] == first["batch"] and _ids(again) == _ids(first)
        assert settle_batch(source, taken, stored=False)
    source.ledger.dispose()


@pytest.mark.smscn_sandbox(report_delay=0)
def test_reports_nobody_watches_for_move_the_cursor_without_an_event(
        smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    smscn_sandbox.set_account(uid="test", outcomes={100: 1.0})
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=5, start="earliest")
    send(smscn_sandbox, 3)  # all delivered: an undelivered-only watcher has nothing to send
    assert claim_batch(source, watch, new_holder(), expiry=HOUR) == ([], False, False)
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


@pytest.mark.smscn_sandbox(report_delay=0)
def test_a_watcher_with_a_smaller_max_batch_sends_a_taken_over_batch_whole(
        smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    """The user lowers max_batch in the DAG: Airflow replaces the trigger (the old one's claim is left
    expired), and the new one takes over the cursor (its key has no max_batch)."""
    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    ids = send(smscn_sandbox, 5)
    old = DeliveryWatch(source.account, limit=100, start="earliest")
    new = DeliveryWatch(source.account, limit=2, start="earliest")
    [(first, claim)] = claim_batch(source, old, new_holder(), expiry=HOUR)[0]
    assert settle_batch(source, claim, stored=False)
    [(again, taken)] = claim_batch(source, new, new_holder(), expiry=HOUR)[0]
    assert again["batch"] == first["batch"] and _ids(again) == ids
    assert settle_batch(source, taken, stored=True)
    source.ledger.dispose()


@dataclass(frozen=True)
class _Asset:
    """An asset as a task's context keys it (name and uri)."""

    name: str
    uri: str


class _Stored(list):  # type: ignore[type-arg]
    """An asset's events as ``inlet_events[asset]`` reads them on Airflow 3.1+ (the execution API
    filters ``timestamp >= after``, oldest first, up to ``limit``)."""

    def after(self, since: datetime) -> _Stored:
        return _Stored(e for e in self if e.timestamp >= since)

    def limit(self, n: int) -> _Stored:
        return _Stored(self[:n])


class _Unreadable3_0(dict):  # type: ignore[type-arg]
    """Airflow 3.0's ``inlet_events``: ``inlet_events[asset]`` reads at once, and raises there."""

    def __getitem__(self, asset: Any) -> Any:
        raise RuntimeError("500 Internal Server Error")


class _Unreadable:
    """``inlet_events[asset]`` whose read fails (Airflow 3.3.2's execution API answers 500 when a
    run of the asset's events is queued: apache/airflow#71360)."""

    def after(self, since: datetime) -> _Unreadable:
        return self

    def limit(self, n: int) -> list[Any]:
        raise RuntimeError("500 Internal Server Error")


def _batch(n: int) -> dict[str, Any]:
    return {"watch": "delivery:w", "batch": f"{n}-{n}", "reports": [{"mobileid": f"m{n}"}]}


def _event(n: int, second: int, *runs: str, dag_id: str = "dag_a") -> SimpleNamespace:
    """Asset event of batch ``n`` stored at ``second``, the runs of ``dag_id`` started for it."""
    stamp = datetime(2026, 12, 3, 1, tzinfo=timezone.utc) + timedelta(seconds=second)
    return SimpleNamespace(extra={"from_trigger": True, "payload": _batch(n)}, timestamp=stamp,
                           created_dagruns=[SimpleNamespace(dag_id=dag_id, run_id=r) for r in runs])


@pytest.mark.parametrize("filtered", [True, False], ids=["airflow-3.1+", "airflow-3.0"])
def test_a_run_also_takes_the_batches_airflow_started_no_run_for_in_its_stretch(
        tmp_path: Path, filtered: bool) -> None:
    """apache/airflow#56050: an event stored between a run's queue row and the run starts no run
    until another event comes; the run's task finds it among the asset's events and takes it."""
    from airflow_provider_smscn.ledger import SmsCnLedger

    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    asset = _Asset("undelivered", "undelivered")
    kind = _Stored if filtered else list  # Airflow 3.0 reads the asset's whole history
    history = _event(0, -300)  # before the consumer existed: no run, not its to take
    e1, e2, e3 = _event(1, 0, "r1"), _event(2, 1), _event(3, 2, "r2")
    skewed = _event(9, -10)  # stored by a host whose clock is 10 s behind, no run either
    e4 = _event(4, 3)  # stored while r2 was being queued
    stored = [history, e1, skewed, e2, e4, e3]  # Airflow 3.0 gives them in id order, not by time
    # r1 was started by e1; it takes e1, the two no run was started for, and stops at r2's e3
    taken = take_batches(ledger, {asset: [e1]}, "dag_a", "r1", {asset: kind(stored)})
    assert taken == [_batch(1), _batch(9), _batch(2)]
    assert take_batches(ledger, {asset: [e1]}, "dag_a", "r1", {asset: kind(stored)}) == taken  # a retry
    # Airflow starts r2 with e2 (stored after r1's queue row) and e3; r2 takes e3 and what follows
    e2.created_dagruns = [SimpleNamespace(dag_id="dag_a", run_id="r2")]
    assert take_batches(ledger, {asset: [e2, e3]}, "dag_a", "r2", {asset: kind(stored)}) == [
        _batch(3), _batch(4)]
    # r1's retry (or a second task of r1) reads after that: e2 has r2 now, yet it is still r1's
    assert take_batches(ledger, {asset: [e1]}, "dag_a", "r1", {asset: kind(stored)}) == taken
    # r5 took e6 and e7 (no run yet); then Airflow started r6 with e6 only: r5's retry keeps e7 too
    e5, e6, e7 = _event(5, 10, "r5"), _event(6, 15), _event(7, 16)
    later = [e5, e6, e7]
    all_three = [_batch(n) for n in (5, 6, 7)]
    assert take_batches(ledger, {asset: [e5]}, "dag_a", "r5", {asset: kind(later)}) == all_three
    e6.created_dagruns = [SimpleNamespace(dag_id="dag_a", run_id="r6")]
    assert take_batches(ledger, {asset: [e5]}, "dag_a", "r5", {asset: kind(later)}) == all_three
    assert take_batches(ledger, {asset: [e6]}, "dag_a", "r6", {asset: kind(later)}) == []
    # r1 cleared after the ledger forgot what was taken: its stretch ends at r2's first event
    assert take_batches(ledger, {asset: [e1]}, "pruned", "r1", {asset: kind(stored)}) == [
        _batch(1), _batch(9)]
    # another DAG on the same asset has runs of its own: dag_a's runs do not bound its stretch
    other = [_event(1, 0, "b1", dag_id="dag_b"), _event(2, 1), _event(3, 2, "r2")]
    assert take_batches(ledger, {asset: other[:1]}, "dag_b", "b1", {asset: kind(other)}) == [
        _batch(1), _batch(2), _batch(3)]
    ledger.dispose()


def test_a_failed_read_of_the_asset_leaves_the_run_its_own_batches(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from airflow_provider_smscn.ledger import SmsCnLedger

    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    asset = _Asset("undelivered", "undelivered")
    e1 = _event(1, 0, "r1")
    assert take_batches(ledger, {asset: [e1]}, "dag_a", "r1", {asset: _Unreadable()}) == [_batch(1)]
    assert "could not be read (500 Internal Server Error)" in caplog.text
    assert take_batches(ledger, {asset: [e1]}, "dag_c", "r1", _Unreadable3_0()) == [_batch(1)]
    # more events than a read takes before the run's own: said so, the run keeps its own
    crowd = [_event(100 + n, -30, "r0") for n in range(READ_LIMIT)]
    crowded = _Stored([*crowd, e1, _event(2, 1)])
    assert take_batches(ledger, {asset: [e1]}, "dag_d", "r1", {asset: crowded}) == [_batch(1)]
    assert f"more than {READ_LIMIT} events from its first one on" in caplog.text
    # a taker that is not the run id cannot bound the run's stretch: only its own batches
    stored = _Stored([e1, _event(2, 1)])
    assert take_batches(ledger, {asset: [e1]}, "dag_b", "not-a-run", {asset: stored}) == [_batch(1)]
    assert "taker must be the run id" in caplog.text
    ledger.dispose()


def test_taking_from_inlet_events_needs_the_asset_among_the_tasks_inlets(tmp_path: Path) -> None:
    from airflow_provider_smscn.ledger import SmsCnLedger

    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    asset = _Asset("undelivered", "undelivered")
    triggering = {asset: [_event(1, 0, "r1")]}
    with pytest.raises(SmsCnValidationError, match=r"'undelivered' is not an inlet of this task.*inlets="):
        take_batches(ledger, triggering, "dag_a", "r1", {})
    with pytest.raises(SmsCnValidationError, match="needs the run's triggering_asset_events"):
        take_batches(ledger, triggering[asset], "dag_a", "r1", {asset: _Stored(triggering[asset])})
    # nothing was taken by the refused calls: the run's next try gets the batch
    assert take_batches(ledger, triggering, "dag_a", "r1", {asset: _Stored(triggering[asset])}) == [_batch(1)]
    ledger.dispose()


def test_one_run_given_both_copies_of_a_batch_takes_it_once(tmp_path: Path) -> None:
    from airflow_provider_smscn.ledger import SmsCnLedger

    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    batch = {"watch": "delivery:w", "batch": "1-3", "reports": [{"mobileid": "m1"}]}
    assert take_batches(ledger, [batch, dict(batch)], "dag_a", "run_1") == [batch]
    ledger.dispose()


@pytest.mark.smscn_sandbox(report_delay=0)
def test_batches_in_flight_that_an_older_watcher_moved_past_are_forgotten(
        smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    """A triggerer still on a provider without ack mode moves the position past batches in flight
    (a rolling upgrade): the watcher goes on from the position instead of sticking."""
    from sqlalchemy import update

    from airflow_provider_smscn.ledger.schema import table

    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=2, start="earliest")
    send(smscn_sandbox, 3)
    holder = new_holder()
    [(_, claim)] = claim_batch(source, watch, holder, expiry=HOUR)[0]
    t = table("smscn_event_cursors")  # the older provider's write: position only, state untouched
    source.ledger._write(lambda conn: conn.execute(update(t).where(t.c.watch_key == watch.key)
                                                   .values(position=claim.upto)))
    assert not settle_batch(source, claim, stored=True)  # moved past by the other one
    ids = send(smscn_sandbox, 1)
    [(payload, rest)] = claim_batch(source, watch, holder, expiry=HOUR)[0]
    assert rest.after == claim.upto and ids[0] in _ids(payload)
    assert settle_batch(source, rest, stored=True)
    source.ledger.dispose()


@pytest.mark.smscn_sandbox(report_delay=0)
def test_rows_that_do_not_match_do_not_hold_the_next_batch_back(
        smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    """A batch's range spans the delivered reports between two undelivered ones: the second batch
    goes out while the first is in flight, without a confirmation round per delivered report."""
    smscn_sandbox.set_account(uid="test", outcomes={100: 1.0},
                              outcome_by_mobile={"13900000000": 133, "13900000003": 133})
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=1, start="earliest")
    ids = send(smscn_sandbox, 5)
    holder = new_holder()
    [(first, claim)] = claim_batch(source, watch, holder, expiry=HOUR)[0]
    [(second, claim2)] = claim_batch(source, watch, holder, expiry=HOUR, tracked=[claim])[0]
    assert (_ids(first), _ids(second)) == ([ids[0]], [ids[3]])
    assert claim2.after == claim.upto and claim2.upto - claim2.after == 3  # the two delivered ones too
    source.ledger.dispose()


@pytest.mark.smscn_sandbox(report_delay=0)
def test_a_claim_whose_look_failed_after_committing_is_sent_again_by_its_own_holder(
        smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    """The look committed its claim, then failed before the producer got it (a read, a lost
    reply): the holder does not wait for its own claim to expire, it sends it again at once."""
    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=5, start="earliest")
    send(smscn_sandbox, 2)
    holder = new_holder()
    [(lost, lost_claim)] = claim_batch(source, watch, holder, expiry=HOUR)[0]  # the producer never saw it
    again, _, sent_again = claim_batch(source, watch, holder, expiry=HOUR, tracked=[])
    [(payload, claim)] = again
    assert sent_again and payload["batch"] == lost["batch"] and _ids(payload) == _ids(lost)
    assert claim != lost_claim  # another hand-out: an outcome Airflow reports for the first is not this one's
    assert settle_batch(source, claim, stored=True)
    source.ledger.dispose()


@pytest.mark.smscn_sandbox(report_delay=0)
def test_a_batch_the_old_path_took_over_and_gave_back_stays_in_flight_under_its_id(
        smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    """Airflow 3.0-3.2's watcher took an expired batch over, then its trigger was cancelled before
    the event left: the give-back puts the batch back in flight (same ranges), not a half row."""
    from airflow_provider_smscn.events.delivery import give_back

    smscn_sandbox.set_account(uid="test", outcomes={133: 1.0})
    source = make_source(smscn_sandbox, f"sqlite:///{tmp_path}/l.db", tmp_path / "spool")
    watch = DeliveryWatch(source.account, limit=1, start="earliest")
    send(smscn_sandbox, 2)
    ack = new_holder()
    first = claim_batch(source, watch, ack, expiry=HOUR)[0]
    first += claim_batch(source, watch, ack, expiry=HOUR, tracked=[first[0][1]])[0]
    assert settle_batch(source, first[0][1], stored=False)  # the ack-mode triggerer stopped
    old = new_holder()
    payload, more = next_batch(source, watch, old)
    assert payload is not None and payload["batch"] == first[0][0]["batch"] and more
    assert give_back(source, payload, old)  # cancelled before its event left
    again, _, sent_again = claim_batch(source, watch, new_holder(), expiry=HOUR)
    assert sent_again and [p["batch"] for p, _ in again] == [p["batch"] for p, _ in first]
    source.ledger.dispose()
