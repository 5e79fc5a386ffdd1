"""Two triggerers run the delivery-event watcher; one is frozen then resumed, the other restarted.

A real deployment on loopback (SQLite metadata DB, PostgreSQL ledger, ``airflow api-server``,
``scheduler``, ``dag-processor`` and two ``airflow triggerer`` processes, the sms.cn sandbox as a
process). Calls are placed at a steady pace (a share of them undelivered); meanwhile

* triggerer 1 is frozen (SIGSTOP) long enough for triggerer 2 to take its triggers over, then
  resumed (SIGCONT): for a while both run the watcher at once (Airflow's failover overlap);
* triggerer 2 is stopped (SIGTERM; ``--kill``: SIGKILL) and started again.

The watcher emits one report per event (``max_batch=1``), so the counts compare directly:
undelivered reports placed vs asset events vs distinct reports in them, and the reports the DAG
runs took (``SmsCnHook.take_event_batches``: a batch sent again goes to one run). Latency: from a report
becoming pullable at the sandbox (send time + report delay) to its asset event, and to the end
of the task that took it. At the end, ``--burst`` calls are placed at once, then none: a burst of
events with no report after it. The consumer passes its ``inlet_events`` too (``--no-inlets``: its
triggering events only, where Airflow 3.3 leaves an event stored while a run was queued for the
run of the next event, apache/airflow#56050).

Usage: ``.venv/bin/python benchmarks/bench_event_watchers.py [--calls 120] [--kill] [--no-inlets]``
(about 4 minutes).
Needs ``SMSCN_TEST_PG_URL`` (or ``.ci/postgres.sh`` is run). Everything it starts, it stops.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.support.local_services import free_port, http_json, stop_group  # noqa: E402
from tests.support.ui_stack import SMS_PASSWORD, SMS_SECRET_KEY, SMS_UID, SandboxProcess  # noqa: E402

BIN = Path(sys.executable).parent
REPORT_DELAY = 1.0
DAG_FILE = '''
from __future__ import annotations
import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task
from airflow_provider_smscn.triggers.smscn import SmsCnDeliveryEventTrigger

calls = Asset("bench_undelivered", watchers=[AssetWatcher(
    name="bench_watcher",
    trigger=SmsCnDeliveryEventTrigger(name="bench", poll_interval=1, pull_interval=1, max_batch=1))])

with DAG(dag_id="bench_react", schedule=[calls], start_date=pendulum.datetime(2026, 1, 1), catchup=False):
    @task(inlets=[calls])
    def seen(triggering_asset_events=None, inlet_events=None, run_id=None) -> list[str]:
        from airflow_provider_smscn.hooks.smscn import SmsCnHook

        taken = SmsCnHook().take_event_batches(triggering_asset_events, consumer="bench_react", taker=run_id,
                                               inlet_events=inlet_events if INLETS else None)
        return [r["mobileid"] for batch in taken for r in batch["reports"]]
    seen()
'''


def pg_database(server: str) -> str:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    name = f"smscn_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    return make_url(server).set(database=name).render_as_string(hide_password=False)


def wait_for_cursor(ledger_url: str, timeout: float = 180) -> None:
    from sqlalchemy import func, select

    from airflow_provider_smscn.ledger import SmsCnLedger
    from airflow_provider_smscn.ledger.schema import table

    ledger = SmsCnLedger(ledger_url)
    deadline = time.monotonic() + timeout
    count = select(func.count()).select_from(table("smscn_event_cursors"))
    try:
        while time.monotonic() < deadline:
            if ledger._read(lambda conn: conn.execute(count).scalar()):
                return
            time.sleep(1)
        raise RuntimeError("the watcher did not start within the time allowed")
    finally:
        ledger.dispose()


def drop_database(server: str, url: str) -> None:
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    engine = create_engine(server, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{make_url(url).database}"')
    engine.dispose()


class Deployment:
    def __init__(self, home: Path, sandbox: SandboxProcess, metadata_url: str, ledger_url: str,
                 inlets: bool = True) -> None:
        self.home = home
        self.port = free_port()
        dags = home / "dags"
        dags.mkdir()
        (dags / "bench_react.py").write_text(DAG_FILE.replace("INLETS", str(inlets)))
        conn = {"conn_type": "smscn", "login": SMS_UID, "password": SMS_PASSWORD, "host": sandbox.url,
                "extra": {"secret_key": SMS_SECRET_KEY}}
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
        env.update({
            "AIRFLOW_HOME": str(home), "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
            # SQLite metadata (shared by the processes of this one machine): PostgreSQL as Airflow's
            # database needs apache-airflow[postgres] (asyncpg), which the project does not install.
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": metadata_url,
            "AIRFLOW__CORE__EXECUTOR": "LocalExecutor", "AIRFLOW__CORE__PARALLELISM": "4",
            "AIRFLOW__CORE__DAGS_FOLDER": str(dags), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__CORE__FERNET_KEY": "", "AIRFLOW__API_AUTH__JWT_SECRET": uuid.uuid4().hex,
            "AIRFLOW__API__SECRET_KEY": uuid.uuid4().hex, "AIRFLOW__API__HOST": "127.0.0.1",
            "AIRFLOW__API__PORT": str(self.port), "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{self.port}",
            "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{self.port}/execution/",
            "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
            "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
            "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
            "AIRFLOW__SCHEDULER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
            "AIRFLOW__SMSCN__LEDGER_URL": ledger_url, "AIRFLOW__SMSCN__PULL_INTERVAL": "1",
            "AIRFLOW_CONN_SMSCN_DEFAULT": json.dumps(conn),
        })
        self.env = env
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        self.task_ended: dict[str, str] = {}

    def run(self, *args: str) -> None:
        subprocess.run([str(BIN / "airflow"), *args], env=self.env, cwd=self.home, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=600)

    def start(self, name: str, *args: str, **extra: str) -> None:
        env = {**self.env, **extra}
        with open(self.home / f"{name}.log", "ab") as out:
            self.procs[name] = subprocess.Popen([str(BIN / "airflow"), *args], env=env, cwd=self.home,
                                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)

    def triggerer(self, n: int) -> None:
        self.start(f"triggerer{n}", "triggerer",
                   AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()))

    def api(self, method: str, path: str, body: Any = None) -> Any:
        for _ in range(10):
            try:
                status, reply = http_json(method, f"http://127.0.0.1:{self.port}{path}", body, timeout=60)
            except OSError:
                time.sleep(2)
                continue
            if status in (200, 201):
                return reply
            time.sleep(2)
        raise RuntimeError(f"{method} {path} kept failing: {status} {reply}")

    def consumed(self, expected: set[str],
                 timeout: float = 90) -> tuple[list[dict[str, Any]], list[tuple[str, str]]]:
        """The DAG runs and what they took ((mobileid, run id) per report taken), once all finished
        and took ``expected`` (bounded). Also when the task that took them ended (by run id)."""
        deadline = time.monotonic() + timeout
        while True:
            runs = self.api("GET", "/api/v2/dags/bench_react/dagRuns?limit=1000")["dag_runs"]
            taken: list[tuple[str, str]] = []
            for run in runs:
                if run["state"] != "success":
                    continue
                path = (f"/api/v2/dags/bench_react/dagRuns/{run['dag_run_id']}/taskInstances/seen/"
                        "xcomEntries/return_value")
                value = self.api("GET", path)["value"]
                ids = (json.loads(value) if isinstance(value, str) else value) or []
                taken += [(mobileid, run["dag_run_id"]) for mobileid in ids]
                task = self.api("GET", path.rsplit("/xcomEntries/", 1)[0])
                self.task_ended[run["dag_run_id"]] = task["end_date"]
            finished = all(run["state"] in ("success", "failed") for run in runs)
            if (finished and expected <= {m for m, _ in taken}) or time.monotonic() > deadline:
                return runs, taken
            time.sleep(3)

    def holder(self) -> str:
        """The triggerer whose log last says it started the watcher's trigger."""
        latest: tuple[str, str] = ("", "")
        for name in ("triggerer1", "triggerer2"):
            for line in (self.home / f"{name}.log").read_text("utf-8", "replace").splitlines():
                if "trigger ID" in line and "starting" in line and line[:27] > latest[0]:
                    latest = (line[:27], name)
        return latest[1] or "triggerer1"

    def stop(self) -> None:
        for proc in self.procs.values():
            stop_group(proc, timeout=20)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=120)
    parser.add_argument("--kill", action="store_true", help="restart the triggerer by SIGKILL, not SIGTERM")
    parser.add_argument("--burst", type=int, default=10, help="calls placed at once at the end")
    parser.add_argument("--no-inlets", action="store_true",
                        help="the consumer takes its triggering events only (not its inlet_events too)")
    args = parser.parse_args()
    server = os.environ.get("SMSCN_TEST_PG_URL") or subprocess.run(
        ["bash", str(REPO / ".ci" / "postgres.sh")], capture_output=True, text=True,
        check=True).stdout.split()[-1]
    home = Path(tempfile.mkdtemp(prefix="smscn-bench-react-"))
    sandbox = SandboxProcess.start(home)
    ledger_url = pg_database(server)
    dep = Deployment(home, sandbox, f"sqlite:///{home}/airflow.db", ledger_url, inlets=not args.no_inlets)
    try:
        http_json("POST", sandbox.control_url + "accounts",
                  {"uid": SMS_UID, "outcomes": {"100": 1, "133": 1}, "report_delay": REPORT_DELAY})
        dep.run("db", "migrate")
        dep.start("api", "api-server", "--port", str(dep.port))
        dep.start("scheduler", "scheduler")
        dep.start("dag-processor", "dag-processor")
        dep.triggerer(1)
        dep.triggerer(2)
        for _ in range(90):
            try:
                url = f"http://127.0.0.1:{dep.port}/api/v2/dags/bench_react"
                if http_json("GET", url, timeout=10)[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(2)
        dep.api("PATCH", "/api/v2/dags/bench_react", {"is_paused": False})
        wait_for_cursor(ledger_url)  # the watcher runs: its cursor is in the ledger
        from airflow_provider_smscn.client import SmsCnClient

        client = SmsCnClient(SMS_UID, password=SMS_PASSWORD, secret_key=SMS_SECRET_KEY, base_url=sandbox.url)
        began = time.monotonic()
        marks: dict[str, float] = {}
        frozen = restarted = ""
        for n in range(args.calls):
            client.send_voice_code([f"139{n:08d}"], "700001", {"code": "1"})
            elapsed = time.monotonic() - began
            if elapsed > 10 and "freeze" not in marks:
                frozen = dep.holder()  # the triggerer running the watcher now
                os.killpg(dep.procs[frozen].pid, signal.SIGSTOP)
                marks["freeze"] = elapsed
            if elapsed > 35 and "thaw" not in marks:
                os.killpg(dep.procs[frozen].pid, signal.SIGCONT)
                marks["thaw"] = elapsed
            if elapsed > 50 and "restart" not in marks:
                restarted = dep.holder()
                if args.kill:
                    os.killpg(dep.procs[restarted].pid, signal.SIGKILL)
                    dep.procs[restarted].wait(timeout=30)
                else:
                    stop_group(dep.procs[restarted], timeout=30)
                dep.triggerer(int(restarted[-1]))
                marks["restart"] = time.monotonic() - began
            time.sleep(0.6)
        # a last burst, then quiet: back-to-back events with no report after them
        client.send_voice_code([f"138{n:08d}" for n in range(args.burst)], "700001", {"code": "1"})
        calls = http_json("GET", sandbox.control_url + "calls")[1]["calls"]
        undelivered = {c["mobileid"]: c for c in calls if int(c["resultcode"]) != 100}
        events: list[dict[str, Any]] = []
        for _ in range(60):  # drain: until every undelivered report has an event (bounded)
            events = [e for e in dep.api("GET", "/api/v2/assets/events?limit=1000")["asset_events"]
                      if e.get("name") == "bench_undelivered"]
            if len(events) >= len(undelivered):
                break
            time.sleep(3)
        time.sleep(10)  # a late duplicate would show now
        events = [e for e in dep.api("GET", "/api/v2/assets/events?limit=1000")["asset_events"]
                  if e.get("name") == "bench_undelivered"]
        ids = [r["mobileid"] for e in events for r in e["extra"]["payload"]["reports"]]
        batches = [e["extra"]["payload"]["batch"] for e in events]
        runs, taken = dep.consumed(set(ids))
        event_lat, run_lat = [], []
        event_by_id = {}
        for e in events:
            for r in e["extra"]["payload"]["reports"]:
                event_by_id[r["mobileid"]] = e
        for mobileid, run_id in taken:
            call = undelivered.get(mobileid)
            if call is not None and dep.task_ended.get(run_id):
                run_lat.append(_ts(dep.task_ended[run_id]) - (float(call["time"]) + REPORT_DELAY))
        # what a run took beyond the events it was started by (the task's inlet_events)
        beyond = 0
        for run in runs:
            path = f"/api/v2/dags/bench_react/dagRuns/{run['dag_run_id']}/upstreamAssetEvents"
            upstream = {r["mobileid"] for e in dep.api("GET", path)["asset_events"]
                        for r in e["extra"]["payload"]["reports"]}
            beyond += sum(1 for m, run_id in taken if run_id == run["dag_run_id"] and m not in upstream)
        for mid, e in event_by_id.items():
            call = undelivered.get(mid)
            if call is not None:
                event_lat.append(_ts(e["timestamp"]) - (float(call["time"]) + REPORT_DELAY))
        after_runs = [e for e in dep.api("GET", "/api/v2/assets/events?limit=1000")["asset_events"]
                      if e.get("name") == "bench_undelivered"]
        print(json.dumps({
            "calls": len(calls), "undelivered_reports": len(undelivered), "asset_events": len(events),
            "reports_in_events": len(ids), "distinct_reports_in_events": len(set(ids)),
            "missing": len(set(undelivered) - set(ids)), "batch_ids": len(set(batches)),
            "batches_sent_again": len(batches) - len(set(batches)),
            "inlet_events": not args.no_inlets, "reports_taken_by_runs": len(taken),
            "distinct_taken": len({m for m, _ in taken}), "taken_beyond_triggering_events": beyond,
            "undelivered_not_taken": len(set(undelivered) - {m for m, _ in taken}),
            "events_no_run_was_started_for": sum(1 for e in after_runs if not e.get("created_dagruns")),
            "dag_runs": len(runs), "marks_s": marks,
            "frozen": frozen, "restarted": restarted,
            "report_to_event_s": _stats(event_lat), "report_to_taking_task_end_s": _stats(run_lat),
        }, indent=2))
    finally:
        dep.stop()
        sandbox.stop()
        drop_database(server, ledger_url)
        print(f"logs kept in {home}", file=sys.stderr)


def _ts(text: str) -> float:
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


def _stats(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    values = sorted(values)
    return {"n": len(values), "median": round(statistics.median(values), 2),
            "p90": round(values[int(0.9 * (len(values) - 1))], 2), "max": round(values[-1], 2)}


if __name__ == "__main__":
    main()
