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
* the triggerer running the triggers of the most deferred sensors (2 or more).

The sandbox then tells what really happened: every run succeeded, every number called exactly
once and its intent ``accepted``, every report pulled and none left pending, ``ac=status`` at
most once per pull interval.

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
from pathlib import Path
from typing import TYPE_CHECKING

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
RUN_IDS = {EXAMPLE: "deploy_example", LOAD: "deploy_load"}
RUN_DEADLINE = 420.0
#: Seconds the sandbox holds the replies of the first HELD_SENDS sendcode requests after placing
#: their calls: the test's look (three queries every half second) and the kill fit in it.
SEND_HOLD_SECONDS = 25.0
HELD_SENDS = 2
KILL_DEADLINE = 240.0
EXAMPLE_PULL_INTERVAL = 1.0  # dags_examples/smscn_send_and_wait.py: pull_interval=1
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
    """SIGKILLs (every process of) a worker in the middle of its sends, and a triggerer running
    the triggers of deferred sensors; called every half second until both are dead."""

    def __init__(self, dep: Deployment, started: float) -> None:
        self.dep = dep
        self.started = started
        self.send_kill: _SendKill | None = None
        self.triggerer = ""
        self.triggerer_after_seconds = 0.0
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
        """Due when one triggerer runs the triggers of 2 or more deferred sensors."""
        rows = self.dep.sql(
            "SELECT j.hostname, ti.dag_id, ti.task_id FROM task_instance ti "
            "JOIN trigger t ON ti.trigger_id = t.id JOIN job j ON t.triggerer_id = j.id "
            "WHERE ti.state = 'deferred' AND j.hostname LIKE 'triggerer%%'")
        per_host = collections.Counter(r[0] for r in rows)
        if per_host and per_host.most_common(1)[0][1] >= 2:
            host = per_host.most_common(1)[0][0]
            self.dep.components[host].kill()
            self.triggerer, self.triggerer_after_seconds = host, time.monotonic() - self.started
            self.deferred = [(d, t) for h, d, t in rows if h == host]


def test_celery_deployment_survives_killed_hosts_and_fails_fast_without_a_shared_ledger(
        deployment: Deployment) -> None:
    dep = deployment
    for dag_id in (EXAMPLE, LOAD, FAILFAST):
        dep.wait_dag(dag_id)

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
    killer = _Killer(dep, started)
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
    assert killer.triggerer, f"no triggerer ran the triggers of 2 deferred sensors:\n{details}"
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
        "tasks_retried_by_airflow": sorted(f"{t['task_id']} (try {t['try_number']})" for t in retried),
        "fail_fast_seconds": round(fail_seconds, 1),
        "calls_and_pulls_without_ledger_url": 0,
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "figures.json").write_text(json.dumps(figures, indent=2))
    print("\nDEPLOYMENT FIGURES", json.dumps(figures))
