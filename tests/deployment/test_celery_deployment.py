"""A real CeleryExecutor deployment with killed hosts, measured at the sandbox.

Two Celery workers and two triggerers, each with its own AIRFLOW_HOME as on separate hosts, share
one PostgreSQL ledger. The example send-and-wait DAG and a DAG of 120 calls waited on by 12
deferred and 12 reschedule-mode sensors run while the test SIGKILLs, each with every process
under it (as a host going down):

* a worker in the middle of its sends: the sandbox holds the replies of the first sendcode
  requests for ``SEND_HOLD_SECONDS`` after placing the calls, and the worker dies while its sends'
  calls are placed and their intents claimed but not recorded (a reply lost: the outcome unknown
  to the task). Airflow retries those tasks on the other worker after the heartbeat timeout, and
  the retry must prove the calls by the vendor's sent records or reports, not place them again;
* the triggerer running the asset watcher of ``dags/smscn_deploy_events.py`` (Airflow 3.3's ack
  mode: the undelivered reports flow as one event per 20 ledger rows, each confirmed stored
  before the next) while a batch is in flight, and the triggers of 2 or more deferred sensors.
  So that one triggerer runs both, the other one is stopped before the runs and started again
  once sensors deferred; it takes everything over.

The sandbox then tells what really happened: every run succeeded, every number called exactly
once and its intent ``accepted``, every report pulled and none left pending, ``ac=status`` at
most once per pull interval. The asset: every undelivered report reached it (the batch in flight
at the kill is sent again by the other triggerer, under its batch id), and the consumer DAG's
runs took each at most once (``take_event_batches`` with the task's ``inlet_events``: a batch
Airflow started no run for is taken by the run created around it; one left untaken must be in an
event no run was started for, and is recorded); copies are recorded.

Then the workers and triggerers are replaced by ones without ``[smscn] ledger_url`` (so each
would fall back to a SQLite file in its own home): the first task that needs the ledger must fail
at once, without retries, naming the setting, and nothing may be called or pulled.

Slow (about 2-4 minutes on 2 cores): marked ``deployment``, run by ``.ci/test`` on Airflow 3 only.
"""

from __future__ import annotations

import collections
import itertools
import json
import time
import warnings
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import airflow.providers.celery  # noqa: F401  the dev group installs it: a broken install fails, never skips
import pytest

from airflow_provider_smscn._compat import AIRFLOW_V_3
from airflow_provider_smscn.delivery.pulling import REPORTS_PER_PULL

if TYPE_CHECKING:
    from tests.support.deploy_stack import Deployment

pytestmark = [
    pytest.mark.deployment,
    pytest.mark.timeout(840),
    pytest.mark.skipif(not AIRFLOW_V_3, reason="the deployment test runs the Airflow 3 components"),
]

EXAMPLE, LOAD, FAILFAST = "smscn_send_and_wait", "smscn_deploy_load", "smscn_deploy_failfast"
#: dags/smscn_deploy_events.py: the consumer DAG, its asset, the asset's watcher
EVENTS, EVENTS_ASSET, EVENTS_WATCHER = "smscn_deploy_events", "smscn_deploy_undelivered", \
    "smscn_deploy_watcher"
RUN_IDS = {EXAMPLE: "deploy_example", LOAD: "deploy_load"}
RUN_DEADLINE = 420.0
#: Seconds the sandbox holds the replies of the first HELD_SENDS sendcode requests after placing
#: their calls: the test's look (three queries every half second) and the kill fit in it.
SEND_HOLD_SECONDS = 25.0
HELD_SENDS = 2
KILL_DEADLINE = 240.0
EXAMPLE_PULL_INTERVAL = 1.0  # dags_examples/smscn_send_and_wait.py: pull_interval=1
#: Seconds, after the runs, for the last undelivered report to reach the asset (a claim left by the
#: killed triggerer expires 30 s after its last refresh) and for the consumer's runs to finish.
EVENTS_DEADLINE = 150.0
CONSUMER_DEADLINE = 150.0
WATCHER_DEADLINE = 90.0
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "deployment"


def _wait_runs(dep: Deployment, runs: list[tuple[str, str]], timeout: float) -> dict[tuple[str, str], str]:
    deadline = time.monotonic() + timeout
    states: dict[tuple[str, str], str] = {}
    while time.monotonic() < deadline:
        states = {run: dep.run_state(*run) for run in runs}
        if all(s in ("success", "failed") for s in states.values()):
            return states
        time.sleep(2)
    return states


def _describe(dep: Deployment, dag_id: str, run_id: str) -> str:
    return "\n".join(f"{t['task_id']}: {t['state']} try {t['try_number']} on {t.get('hostname')}"
                     for t in dep.task_instances(dag_id, run_id))


@dataclass
class _SendKill:
    """What the worker kill hit: send tasks whose request the sandbox was holding."""

    host: str
    tasks: list[tuple[str, str]]  # (dag_id, task_id)
    numbers: set[str]
    after_seconds: float
    reply_held_for_seconds: float  # how long the earliest of those requests had waited for its reply


def _intents_by_task(dep: Deployment) -> dict[tuple[str, str], list[tuple[str, str]]]:
    found: dict[tuple[str, str], list[tuple[str, str]]] = collections.defaultdict(list)
    for dag_id, task_id, mobile, state in dep.intents():
        found[(dag_id, task_id)].append((mobile, state))
    return found


class _Killer:
    """SIGKILLs (every process of) a worker in the middle of its sends, and the triggerer running
    the asset watcher while it has a batch in flight and the triggers of deferred sensors; called
    every half second until both are dead."""

    def __init__(self, dep: Deployment, started: float, watcher_host: str, other: str) -> None:
        self.dep = dep
        self.started = started
        self.watcher_host, self.other, self.other_started = watcher_host, other, False
        self.send_kill: _SendKill | None = None
        self.triggerer = ""
        self.triggerer_after_seconds = 0.0
        self.triggerer_killed_at = 0.0  # wall clock, to compare with the asset events' timestamps
        self.in_flight = ""  # the watcher's cursor state at the kill ("sending:<row>")
        self.seen: list[tuple[Any, ...]] = []  # (seconds, cursor, watcher's host, deferred, other up)
        self.deferred: list[tuple[str, str]] = []  # (dag_id, task_id) deferred on it at the kill

    def done(self) -> bool:
        return self.send_kill is not None and bool(self.triggerer)

    def __call__(self) -> None:
        if self.send_kill is None:
            self._worker_mid_send()
        if not self.triggerer:
            self._triggerer()

    def _worker_mid_send(self) -> None:
        """Due when a worker runs send tasks whose numbers the sandbox has all called while it holds
        the reply, and whose intents are all still ``pending`` (claimed, outcome not recorded), and
        none of its sends sits between its claim and its request (a pending intent the sandbox has
        not seen: its retry could prove nothing). Intents are read before the calls; a send that
        claims between that read and the kill is checked after it (its request must have arrived)."""
        dep = self.dep
        running = dep.sql("SELECT dag_id, task_id, hostname FROM task_instance WHERE state = 'running' "
                          "AND task_id LIKE 'send%%' AND hostname LIKE 'worker%%'")
        intents = _intents_by_task(dep)
        called = {c["mobile"]: float(c["time"]) for c in dep.sandbox_calls()}
        due = []
        for host in sorted({h for _, _, h in running}):
            sends = [(d, t) for d, t, h in running if h == host]
            held = [s for s in sends
                    if intents[s] and all(st == "pending" and m in called for m, st in intents[s])]
            between = [s for s in sends if any(st == "pending" and m not in called for m, st in intents[s])]
            if held and not between:
                due.append((len(held), host, held, sends))
        if not due:
            return
        _, host, held, sends = max(due)
        dep.components[host].kill()  # back once none of its processes runs
        killed_at, after = time.time(), time.monotonic() - self.started
        dep.clear_faults()  # a retry that sends afresh (killed before its claim) is not held
        # nothing of that host runs any more: what its sends left in the ledger stays so until a retry
        left = _intents_by_task(dep)
        if not all(st == "pending" for s in held for _, st in left[s]):
            # A reply slipped in between the look and the kill (the look is a poll, not a lock): the
            # retry below then finds those intents accepted instead of proving them; the promises
            # asserted afterwards (each number once, runs succeed, try_number > 1) still hold.
            warnings.warn(f"{host}'s sends recorded an outcome before the kill: {held}", stacklevel=1)
        time.sleep(1)  # a request already on its way still reaches the sandbox
        called_now = {c["mobile"] for c in dep.sandbox_calls()}
        unsent = [m for s in sends for m, st in left[s] if st == "pending" and m not in called_now]
        assert not unsent, (f"{host} died between a claim and its request ({len(unsent)} numbers): the "
                            "retry finds no proof of a call and fails as unproven (sending.py), as it should")
        numbers = {m for s in held for m, _ in left[s]}
        held_for = killed_at - min(called[m] for m in numbers)
        assert held_for < SEND_HOLD_SECONDS, f"the sandbox had replied {held_for:.1f} s after the calls"
        self.send_kill = _SendKill(host, held, numbers, after, held_for)

    def _triggerer(self) -> None:
        """The other triggerer (stopped before the runs, so that the deferred sensors all go to the
        watcher's) starts again once 2 sensors are deferred on the watcher's triggerer; the
        watcher's triggerer is due once the other one heartbeats, the watcher has a batch in flight
        (claimed in the ledger, its event not yet confirmed stored) and 2 or more sensors still
        wait on it."""
        dep, host = self.dep, self.watcher_host
        rows = dep.sql(
            "SELECT ti.dag_id, ti.task_id FROM task_instance ti "
            "JOIN trigger t ON ti.trigger_id = t.id JOIN job j ON t.triggerer_id = j.id "
            "WHERE ti.state = 'deferred' AND j.hostname = %s", args=(host,))
        if not self.other_started and len(rows) >= 2:
            dep.start_triggerer(self.other)
            self.other_started = True
        other_up = self.other_started and bool(dep.sql(
            "SELECT 1 FROM job WHERE job_type = 'TriggererJob' AND state = 'running' AND hostname = %s "
            "AND latest_heartbeat > now() - interval '5 seconds'", args=(self.other,)))
        cursor = _event_cursor(dep)
        look = (cursor, _watcher_host(dep), len(rows), other_up)
        if not self.seen or self.seen[-1][1:] != look:  # what the test saw, for a failure message
            self.seen.append((round(time.monotonic() - self.started, 1), *look))
        if other_up and cursor.startswith("sending:") and len(rows) >= 2 and look[1] == host:
            dep.components[host].kill()
            self.triggerer, self.triggerer_after_seconds = host, time.monotonic() - self.started
            self.triggerer_killed_at, self.in_flight = time.time(), _event_cursor(dep)
            self.deferred = [(d, t) for d, t in rows]


def _watcher_host(dep: Deployment) -> str:
    """The triggerer the asset watcher is assigned to ("" if none)."""
    rows = dep.sql("SELECT j.hostname FROM asset_watcher w JOIN trigger t ON w.trigger_id = t.id "
                   "JOIN job j ON t.triggerer_id = j.id WHERE w.name = %s", args=(EVENTS_WATCHER,))
    return str(rows[0][0]) if rows else ""


def _wait_watcher(dep: Deployment, timeout: float) -> str:
    """The triggerer running the asset watcher, once it runs and its cursor exists in the ledger."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        host = _watcher_host(dep)
        if host and dep.sql("SELECT to_regclass('smscn_event_cursors')", dep.ledger_db)[0][0] \
                and dep.sql("SELECT count(*) FROM smscn_event_cursors", dep.ledger_db)[0][0]:
            return host
        time.sleep(1)
    return ""


def _event_cursor(dep: Deployment) -> str:
    """The asset watcher's cursor state in the ledger ("sending:<row>": a batch in flight), "" if none."""
    if not dep.sql("SELECT to_regclass('smscn_event_cursors')", dep.ledger_db)[0][0]:
        return ""
    rows = dep.sql("SELECT state FROM smscn_event_cursors WHERE watch_key LIKE 'delivery:%%'", dep.ledger_db)
    return str(rows[0][0] or "") if rows else ""


def _told(events: list[dict[str, Any]]) -> collections.Counter[str]:
    """How many asset events carried each message id."""
    return collections.Counter(r["mobileid"] for e in events for r in e["extra"]["payload"]["reports"])


def _wait_told(dep: Deployment, undelivered: set[str], timeout: float) -> list[dict[str, Any]]:
    """The asset's events once every undelivered report reached it and no batch is in flight."""
    deadline = time.monotonic() + timeout
    while True:
        events = dep.asset_events(EVENTS_ASSET)
        if (undelivered <= set(_told(events)) and not _event_cursor(dep)) or time.monotonic() > deadline:
            return events
        time.sleep(2)


def _unconsumed(dep: Deployment) -> dict[str, list[str]]:
    """The asset's events that no DAG run consumed (batch id -> its reports' mobileids)."""
    rows = dep.sql("SELECT e.extra FROM asset_event e JOIN asset a ON e.asset_id = a.id WHERE a.name = %s "
                   "AND NOT EXISTS (SELECT 1 FROM dagrun_asset_event d WHERE d.event_id = e.id)",
                   args=(EVENTS_ASSET,))
    payloads = [(json.loads(x) if isinstance(x, str) else x)["payload"] for (x,) in rows]
    return {str(p["batch"]): [r["mobileid"] for r in p["reports"]] for p in payloads}


def _wait_consumer(dep: Deployment, timeout: float) -> list[dict[str, Any]]:
    """The consumer DAG's runs, once none is queued or running (bounded by ``timeout``)."""
    deadline = time.monotonic() + timeout
    while True:
        queued = dep.sql("SELECT count(*) FROM asset_dag_run_queue WHERE target_dag_id = %s", args=(EVENTS,))
        runs = dep.dag_runs(EVENTS)
        if (not queued[0][0] and all(r["state"] in ("success", "failed") for r in runs)) \
                or time.monotonic() > deadline:
            return runs
        time.sleep(2)


def test_celery_deployment_survives_killed_hosts_and_fails_fast_without_a_shared_ledger(
        deployment: Deployment) -> None:
    dep = deployment
    for dag_id in (EXAMPLE, LOAD, FAILFAST, EVENTS):
        dep.wait_dag(dag_id)
    dep.reparse(EVENTS)  # unpaused: its asset's watcher is registered when its file is parsed again
    watcher_host = _wait_watcher(dep, WATCHER_DEADLINE)
    assert watcher_host, f"the asset watcher did not start on a triggerer within {WATCHER_DEADLINE:.0f} s"
    # The other triggerer leaves until the sensors deferred on the watcher's (the killer starts it
    # again): the triggerer killed then runs both the watcher and deferred sensors.
    other_triggerer = next(n for n in dep.components if n.startswith("triggerer") and n != watcher_host)
    dep.components[other_triggerer].stop()

    # --- phase 1: the shared PostgreSQL ledger, two hosts killed mid-run ---------------------------
    # The first sendcode replies are held after their calls are placed, so a worker dies with sends
    # in flight; the other sends answer at once, and their sensors defer while the reports are due.
    from tests.support.deploy_stack import REQUEST_TIMEOUT

    assert SEND_HOLD_SECONDS < REQUEST_TIMEOUT  # the client still waits for the reply when it dies
    dep.add_fault("delay_after", ms=SEND_HOLD_SECONDS * 1000, action="sendcode", count=HELD_SENDS)
    started = time.monotonic()
    runs = list(RUN_IDS.items())
    for run in runs:
        dep.trigger(*run)
    killer = _Killer(dep, started, watcher_host, other_triggerer)
    polls = 0
    while not killer.done() and time.monotonic() < started + KILL_DEADLINE:
        killer()
        polls += 1
        if polls % 20 == 0 and all(dep.run_state(*run) in ("success", "failed") for run in runs):
            break
        time.sleep(0.5)
    states = _wait_runs(dep, runs, RUN_DEADLINE)
    duration = time.monotonic() - started
    details = "\n".join(_describe(dep, *run) for run in runs)
    send_kill = killer.send_kill
    assert send_kill is not None, f"no worker was seen with its sends held by the sandbox:\n{details}"
    assert killer.triggerer, (
        f"the triggerer of the asset watcher was not seen with a batch in flight and 2 deferred sensors:\n"
        f"{details}\n(s, cursor, watcher on, deferred there, other up): {killer.seen}")
    assert states == dict.fromkeys(runs, "success"), f"runs {states} after {duration:.0f} s:\n{details}"

    # The sends killed in flight ran again on the other worker, which proved their calls by the
    # vendor's sent records or reports and placed none again (sending.py: "prove or fail").
    instances = {(dag_id, t["task_id"]): t for dag_id, run_id in runs
                 for t in dep.task_instances(dag_id, run_id)}
    retried_sends = {}
    for dag_id, task_id in send_kill.tasks:
        ti = instances[(dag_id, task_id)]
        assert ti["state"] == "success" and ti["try_number"] > 1 and ti["hostname"] != send_kill.host, ti
        retried_sends[f"{dag_id}.{task_id}"] = ti["try_number"]
        log = dep.task_logs(dag_id, RUN_IDS[dag_id], task_id)
        assert "were already called in this run" in log, f"{task_id}'s retry proved nothing:\n{log[-3000:]}"
    # the sensors deferred on the killed triggerer finished on the other one
    assert all(instances[s]["state"] == "success" for s in killer.deferred), details

    calls = dep.sandbox_calls()
    stats = dep.sandbox_stats()
    per_number = collections.Counter(c["mobile"] for c in calls)
    twice = {m: n for m, n in per_number.items() if n > 1}
    assert len(per_number) == 123 and not twice, f"{len(per_number)} numbers called, repeated: {twice}"
    assert stats["calls_placed"] == 123
    assert send_kill.numbers <= set(per_number)
    # every intent ends accepted: each number called once, and the ledger knows it
    intents = dep.intents()
    assert sorted(m for _, _, m, _ in intents) == sorted(per_number)
    assert {st for *_, st in intents} == {"accepted"}, collections.Counter(st for *_, st in intents)
    # 0 reports lost: the vendor handed every report out and holds none; the ledger kept each one
    assert stats["reports_pending"] == 0 and stats["reports_pulled"] == 123, stats
    kept = {row[0] for row in dep.sql("SELECT mobileid FROM smscn_reports", dep.ledger_db)}
    assert {c["mobileid"] for c in calls} <= kept
    pulls = sorted(stats["status_pulls"])
    gaps = [b - a for a, b in itertools.pairwise(pulls)]
    # The lease grants a turn when none came within the asking waiter's own interval, so the
    # shortest interval in use bounds the rate: the example DAG's sensor asks for 1 s, the load
    # DAG's sensors use the deployment's [smscn] pull_interval (2 s). The lease is taken on the
    # waiters' clock; the pull reaches the sandbox a few ms later, hence the small tolerance. Within
    # one turn the holder pulls again at once only after a full pull (REPORTS_PER_PULL reports: the
    # backlog drain of delivery/pulling.py), so each such follow-up costs 100 reports.
    shortest = min(EXAMPLE_PULL_INTERVAL, dep.pull_interval)
    drains = [g for g in gaps if g < shortest - 0.25]
    turn_gaps = [g for g in gaps if g >= shortest - 0.25]
    assert len(drains) <= stats["reports_pulled"] // REPORTS_PER_PULL, (
        f"pulls closer than {shortest} s beyond the drain of full pulls: {gaps}")
    most_per_interval = max(sum(1 for q in pulls if p <= q < p + shortest) for p in pulls)
    retried = [t for t in instances.values() if t["try_number"] > 1]

    # The asset: every undelivered report reached it, though its watcher's triggerer died with a
    # batch in flight; the consumer's runs took each report exactly once (a batch sent twice, under
    # one batch id, goes to one run).
    undelivered = {c["mobileid"] for c in calls if int(c["resultcode"]) != 100}
    assert undelivered, "the sandbox reported no call undelivered (deploy_stack.OUTCOMES)"
    events_started = time.monotonic()
    events = _wait_told(dep, undelivered, EVENTS_DEADLINE)
    told = _told(events)
    missing = undelivered - set(told)
    assert not missing, f"{len(missing)} of {len(undelivered)} undelivered reports never reached the asset"
    assert set(told) == undelivered, f"reports told that were delivered: {set(told) - undelivered}"
    runs_of_consumer = _wait_consumer(dep, CONSUMER_DEADLINE)
    events_seconds = time.monotonic() - events_started
    assert runs_of_consumer and all(r["state"] == "success" for r in runs_of_consumer), (
        [(r["dag_run_id"], r["state"]) for r in runs_of_consumer])
    taken = collections.Counter(m for r in runs_of_consumer
                                for m in dep.xcom(EVENTS, r["dag_run_id"], "take") or ())
    taken_twice = {m: n for m, n in taken.items() if n > 1}
    assert not taken_twice, f"reports taken by two runs (or twice by one): {taken_twice}"
    assert set(taken) <= undelivered, f"reports taken that were delivered: {set(taken) - undelivered}"
    # Airflow 3.3 gives a run the events up to its queue row's first one; an event stored between
    # that row and the run starts no run until the next event (apache/airflow#56050). The run's
    # task takes such a batch from its inlet_events: no report waits for another to come.
    # A read of inlet_events that fails (apache/airflow#71360: while a run of the events is
    # queued) leaves such a batch for the next event, as Airflow would: only those may be untaken.
    stranded = _unconsumed(dep)
    waiting = {m for ids in stranded.values() for m in ids}
    assert undelivered - set(taken) <= waiting, (
        f"taken {len(taken)} of {len(undelivered)}: {sorted(undelivered - set(taken) - waiting)} were in "
        f"events a run was started for, yet no run took them")
    if undelivered - set(taken):
        warnings.warn(f"{len(undelivered - set(taken))} report(s) in events no run was started for and no "
                      f"run took (the inlet_events read failed?): {list(stranded)}", stacklevel=1)
    per_batch = collections.Counter(e["extra"]["payload"]["batch"] for e in events)
    copies = sorted(b for b, n in per_batch.items() if n > 1)
    after_kill = [datetime.fromisoformat(e["timestamp"]).timestamp() for e in events]
    after_kill = [t - killer.triggerer_killed_at for t in after_kill if t > killer.triggerer_killed_at]
    kill_to_event = round(min(after_kill), 1) if after_kill else None
    if copies:
        warnings.warn(f"{len(copies)} batch(es) reached the asset twice (taken once each): {copies}",
                      stacklevel=1)

    # --- phase 2: the same deployment, workers and triggerers without [smscn] ledger_url -----------
    for comp in [c for c in dep.components.values() if c.name.startswith(("worker", "triggerer"))]:
        comp.stop()
    dep.start_worker("worker3", ledger=False)
    dep.start_triggerer("triggerer3", ledger=False)
    dep.wait_workers(["worker3"])
    dep.wait_triggerers(["triggerer3"])
    sample = [c["mobileid"] for c in calls[:5]]
    before = dep.sandbox_stats()
    t0 = dep.trigger(EXAMPLE, "deploy_example_unset")
    t1 = dep.trigger(FAILFAST, "deploy_failfast_unset", {"mobileids": ",".join(sample)})
    fail_runs = [(EXAMPLE, "deploy_example_unset"), (FAILFAST, "deploy_failfast_unset")]
    fail_states = _wait_runs(dep, fail_runs, 120)
    fail_seconds = time.monotonic() - min(t0, t1)
    details = "\n".join(_describe(dep, *run) for run in fail_runs)
    assert fail_states == dict.fromkeys(fail_runs, "failed"), f"{fail_states}:\n{details}"
    assert fail_seconds < 60, f"the runs took {fail_seconds:.0f} s to fail"
    first_use = {"send_voice_code": EXAMPLE, "wait_deferred": FAILFAST, "wait_reschedule": FAILFAST}
    for task_id, dag_id in first_use.items():
        run_id = f"{'deploy_example' if dag_id == EXAMPLE else 'deploy_failfast'}_unset"
        ti = next(t for t in dep.task_instances(dag_id, run_id) if t["task_id"] == task_id)
        assert ti["state"] == "failed" and ti["try_number"] == 1, f"{task_id} retried: {ti}"
        log = dep.task_logs(dag_id, run_id, task_id)
        for words in ("AIRFLOW__SMSCN__LEDGER_URL", "[smscn] ledger_url", "CeleryExecutor",
                      "hosts/worker3/smscn_ledger.db", "ledger_single_host"):
            assert words in log, f"{task_id}'s log lacks {words!r}:\n{log[-3000:]}"
    after = dep.sandbox_stats()
    assert after["calls_placed"] == before["calls_placed"] == 123, "a number was called without the ledger"
    assert after["requests"]["status"] == before["requests"]["status"], "a pull happened without the ledger"
    assert after["reports_pending"] == 0

    figures = {
        "phase1_seconds": round(duration, 1),
        "worker_killed": send_kill.host, "worker_killed_after_seconds": round(send_kill.after_seconds, 1),
        "sends_killed_in_flight": sorted(retried_sends), "numbers_in_flight_at_kill": len(send_kill.numbers),
        "send_reply_held_seconds": SEND_HOLD_SECONDS,
        "reply_held_for_seconds_at_kill": round(send_kill.reply_held_for_seconds, 1),
        "try_number_of_killed_sends": retried_sends,
        "triggerer_killed": killer.triggerer,
        "triggerer_killed_after_seconds": round(killer.triggerer_after_seconds, 1),
        "sensors_deferred_on_killed_triggerer": len(killer.deferred),
        "calls_placed": stats["calls_placed"], "numbers_called": len(per_number), "numbers_called_twice": 0,
        "intents_accepted": len(intents),
        "reports_pulled": stats["reports_pulled"], "reports_pending": stats["reports_pending"],
        "status_pulls": len(pulls), "drain_pulls_after_a_full_pull": len(drains),
        f"most_status_pulls_within_{shortest:g}_s": most_per_interval,
        "shortest_gap_between_turns_seconds": round(min(turn_gaps), 3) if turn_gaps else None,
        "pull_gaps_seconds": [round(g, 2) for g in gaps],
        "watcher_started_on": watcher_host,
        "undelivered_reports": len(undelivered), "asset_events": len(events),
        "reports_told": sum(told.values()), "batches_sent_twice": copies,
        "batch_in_flight_at_triggerer_kill": killer.in_flight,
        "triggerer_kill_to_first_event_after_seconds": kill_to_event,
        "consumer_runs": len(runs_of_consumer), "reports_taken": sum(taken.values()),
        "events_no_run_was_started_for": len(stranded),
        "reports_awaiting_a_run": len(undelivered - set(taken)),
        "events_and_consumer_wait_seconds": round(events_seconds, 1),
        "tasks_retried_by_airflow": sorted(f"{t['task_id']} (try {t['try_number']})" for t in retried),
        "fail_fast_seconds": round(fail_seconds, 1),
        "calls_and_pulls_without_ledger_url": 0,
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "figures.json").write_text(json.dumps(figures, indent=2))
    print("\nDEPLOYMENT FIGURES", json.dumps(figures))
