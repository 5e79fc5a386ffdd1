"""A real CeleryExecutor deployment with killed hosts, measured at the sandbox.

Two Celery workers and two triggerers, each with its own AIRFLOW_HOME as on separate hosts, share
one PostgreSQL ledger. The example send-and-wait DAG and a DAG of 120 calls waited on by 12
deferred and 12 reschedule-mode sensors run while the test SIGKILLs the worker running the most
tasks and the triggerer holding the most triggers (each with all its child processes, as a host
going down). The sandbox then tells what really happened: every number called exactly once,
every report pulled and none left pending, ``ac=status`` at most once per pull interval.

Then the workers and triggerers are replaced by ones without ``[smscn] ledger_url`` (so each
would fall back to a SQLite file in its own home): the first task that needs the ledger must fail
at once, without retries, naming the setting, and nothing may be called or pulled.

Slow (about 3-4 minutes on 2 cores): marked ``deployment``, run by ``.ci/test`` on Airflow 3 only.
"""

from __future__ import annotations

import collections
import itertools
import json
import time
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
RUN_DEADLINE = 420.0
EXAMPLE_PULL_INTERVAL = 1.0  # dags_examples/smscn_send_and_wait.py: pull_interval=1
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "deployment"


def _wait_runs(dep: Deployment, runs: list[tuple[str, str]], timeout: float,
               on_poll: Any = None) -> dict[tuple[str, str], str]:
    deadline = time.monotonic() + timeout
    states: dict[tuple[str, str], str] = {}
    while time.monotonic() < deadline:
        states = {run: dep.run_state(*run) for run in runs}
        if all(s in ("success", "failed") for s in states.values()):
            return states
        if on_poll is not None:
            on_poll()
        time.sleep(2)
    return states


def _describe(dep: Deployment, dag_id: str, run_id: str) -> str:
    return "\n".join(f"{t['task_id']}: {t['state']} try {t['try_number']} on {t.get('hostname')}"
                     for t in dep.task_instances(dag_id, run_id))


class _Killer:
    """SIGKILLs the triggerer holding the most triggers, and a worker: one running a task if one is
    seen running, else (10 s later, on a loaded machine pokes are short) the one that ran the most."""

    def __init__(self, dep: Deployment) -> None:
        self.dep = dep
        self.killed: dict[str, float] = {}
        self.worker_was_running_a_task = False
        self.started = time.monotonic()

    def _kill(self, host: str) -> None:
        self.dep.components[host].kill()
        self.killed[host] = time.monotonic() - self.started

    def __call__(self) -> None:
        dep = self.dep
        if not any(h.startswith("triggerer") for h in self.killed):
            triggers = dep.sql(
                "SELECT j.hostname, count(*) FROM trigger t JOIN job j ON t.triggerer_id = j.id "
                "GROUP BY 1 ORDER BY 2 DESC")
            if triggers and triggers[0][1] >= 2:
                self._kill(triggers[0][0])
        if any(h.startswith("worker") for h in self.killed):
            return
        running = dep.sql(
            "SELECT hostname, count(*) FROM task_instance WHERE dag_id = %s AND state = 'running' "
            "AND hostname LIKE 'worker%%' GROUP BY 1 ORDER BY 2 DESC", args=(LOAD,))
        if running:
            self.worker_was_running_a_task = True
            self._kill(running[0][0])
            return
        triggerer_killed = [t for h, t in self.killed.items() if h.startswith("triggerer")]
        if triggerer_killed and time.monotonic() - self.started > triggerer_killed[0] + 10:
            busiest = dep.sql(
                "SELECT hostname, count(*) FROM task_instance WHERE dag_id = %s "
                "AND hostname LIKE 'worker%%' GROUP BY 1 ORDER BY 2 DESC", args=(LOAD,))
            if busiest:
                self._kill(busiest[0][0])


def test_celery_deployment_survives_killed_hosts_and_fails_fast_without_a_shared_ledger(
        deployment: Deployment) -> None:
    dep = deployment
    for dag_id in (EXAMPLE, LOAD, FAILFAST):
        dep.wait_dag(dag_id)

    # --- phase 1: the shared PostgreSQL ledger, two hosts killed mid-run ---------------------------
    started = time.monotonic()
    dep.trigger(EXAMPLE, "deploy_example")
    dep.trigger(LOAD, "deploy_load")
    killer = _Killer(dep)
    runs = [(EXAMPLE, "deploy_example"), (LOAD, "deploy_load")]
    states = _wait_runs(dep, runs, RUN_DEADLINE, killer)
    duration = time.monotonic() - started
    details = "\n".join(_describe(dep, *run) for run in runs)
    assert len(killer.killed) == 2, f"no moment with running tasks and waiting triggers:\n{details}"
    assert states == dict.fromkeys(runs, "success"), f"runs {states} after {duration:.0f} s:\n{details}"

    calls = dep.sandbox_calls()
    stats = dep.sandbox_stats()
    per_number = collections.Counter(c["mobile"] for c in calls)
    twice = {m: n for m, n in per_number.items() if n > 1}
    assert len(per_number) == 123 and not twice, f"{len(per_number)} numbers called, repeated: {twice}"
    assert stats["calls_placed"] == 123
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
    retried = [t for run in runs for t in dep.task_instances(*run) if t["try_number"] > 1]

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
        "killed_after_seconds": {k: round(v, 1) for k, v in killer.killed.items()},
        "killed_worker_was_running_a_task": killer.worker_was_running_a_task,
        "calls_placed": stats["calls_placed"], "numbers_called": len(per_number), "numbers_called_twice": 0,
        "reports_pulled": stats["reports_pulled"], "reports_pending": stats["reports_pending"],
        "status_pulls": len(pulls), "drain_pulls_after_a_full_pull": len(drains),
        "shortest_gap_between_turns_seconds": round(min(turn_gaps), 3) if turn_gaps else None,
        "pull_gaps_seconds": [round(g, 2) for g in gaps],
        "tasks_retried_by_airflow": sorted(f"{t['task_id']} (try {t['try_number']})" for t in retried),
        "fail_fast_seconds": round(fail_seconds, 1),
        "calls_and_pulls_without_ledger_url": 0,
    }
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    (ARTIFACTS / "figures.json").write_text(json.dumps(figures, indent=2))
    print("\nDEPLOYMENT FIGURES", json.dumps(figures))
