"""A CeleryExecutor deployment on loopback, each worker and triggerer playing a host of its own.

Started by the project's scripts: ``.ci/postgres.sh`` (metadata database and ledger) and
``.ci/redis.sh`` (the broker) on ports of their own, the sms.cn sandbox, then ``airflow
api-server``, ``scheduler``, ``dag-processor``, ``celery worker`` x2 and ``triggerer`` x2. Each
component runs in its own session, so a test can SIGKILL one "host" with every process under it
(also the task runners, which Airflow 3 puts in process groups of their own), and
:meth:`Deployment.stop` ends every process it started, also after a failure.

Shared by all components, as on real separate hosts: the fernet key, the JWT secret, the API
secret key, the DAGs folder, the metadata DB, the broker and (when set) ``[smscn] ledger_url``.
Own per worker / triggerer: ``AIRFLOW_HOME`` (so the default ledger file differs per host), log
server port, host name.

Usable by hand too: ``python -m tests.support.deploy_stack`` starts it and prints the URLs
until Ctrl-C (``.ci/deployment`` wraps that).
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import secrets
import select
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import psutil

from tests.support.local_services import free_port, http_json, tail
from tests.support.paths import REPO

DEPLOYMENT_DAGS = REPO / "tests" / "deployment" / "dags"
BIN = Path(sys.executable).parent


def _service_port(env_var: str) -> int:
    """The port asked for, else one free now: a fixed default inside the kernel's ephemeral range
    (32768-60999) can be held by any outgoing loopback connection of the busy test run."""
    return int(os.environ.get(env_var) or free_port())

PULL_INTERVAL = 2.0
#: Seconds from a call to its report: long enough that sensors wait (defer, reschedule) when hosts die.
REPORT_DELAY = 20.0
#: The client's seconds per request (Connection extra ``timeout``; default 10): longer than any
#: hold the test puts on sendcode replies, so a held send is still in flight when its host dies.
REQUEST_TIMEOUT = 60.0
#: Report outcomes (sandbox weights): about a third of the calls go undelivered, so the asset
#: watcher of tests/deployment/dags/smscn_deploy_events.py has reports to tell.
OUTCOMES = "100=65,130=10,131=10,133=10,134=5"
#: The example DAG's numbers (dags_examples/smscn_send_and_wait.py): always delivered, as its
#: sensor fails on an undelivered call.
DELIVERED_NUMBERS = ("13900008888", "13900008889", "13900008890")
DAG_FILES = [REPO / "dags_examples" / "smscn_send_and_wait.py", *sorted(DEPLOYMENT_DAGS.glob("*.py"))]

#: The sandbox's default account (the vendor document's example).
SMS_UID, SMS_PASSWORD, SMS_SECRET_KEY = "test", "123123", "64CQMlr579J0L46U9q1qR285Risfc04G"


def _script(name: str, *args: str, env: dict[str, str]) -> str:
    """Run a .ci script; its last stdout line (a URL)."""
    out = subprocess.run(["bash", str(REPO / ".ci" / name), *args], env=env, check=True,
                         stdout=subprocess.PIPE, text=True, timeout=300).stdout
    return out.strip().splitlines()[-1] if out.strip() else ""


def _runs(proc: psutil.Process) -> bool:
    try:
        return proc.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


@dataclass
class Component:
    """One Airflow process (and its children), playing one host."""

    name: str
    proc: subprocess.Popen[bytes]
    home: Path
    log: Path
    killed: bool = False

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tree(self) -> list[psutil.Process]:
        """The leader and every process under it, whatever their process group: Airflow 3 puts
        each task runner in a group of its own, which a ``killpg`` of the worker's group misses
        (the task would go on sending and recording, as if its host had not died)."""
        try:
            leader = psutil.Process(self.proc.pid)
            return [leader, *leader.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def kill(self, sig: int = signal.SIGKILL, procs: list[psutil.Process] | None = None) -> None:
        """Signal every process of this host (``procs``: also those seen under it earlier).

        SIGKILL stops them all first and reads the tree again, so nothing forks or is reparented
        away between the look and the kill: a host going down takes every process with it.
        """
        found = {p.pid: p for p in [*(procs or []), *self.tree()]}
        if sig == signal.SIGKILL:
            self.killed = True
            for p in found.values():
                with contextlib.suppress(psutil.Error):
                    p.send_signal(signal.SIGSTOP)
            found.update((p.pid, p) for p in self.tree())
        found = {pid: p for pid, p in found.items() if p.is_running()}  # is_running: not a reused pid
        groups = {self.proc.pid} if self.proc.poll() is None else set()
        for p in found.values():
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(p.pid))
        for group in groups:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(group, sig)
        for p in found.values():  # psutil checks the pid still is that process (no reused pid)
            with contextlib.suppress(psutil.Error):
                p.send_signal(sig)
        if sig == signal.SIGKILL:  # back only when none of them runs (a zombie runs nothing)
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline and any(_runs(p) for p in found.values()):
                time.sleep(0.05)

    def stop(self, timeout: float = 15.0) -> None:
        self.killed = True  # stopped on purpose: not a crash
        procs = self.tree()  # before the leader exits: its orphans leave the tree then
        if self.proc.poll() is None:
            self.kill(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=timeout)
        self.kill(signal.SIGKILL, procs)  # children may outlive the leader
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=5)


@dataclass
class Deployment:
    root: Path
    pg_url: str = ""
    redis_url: str = ""
    pg_port: int = 0
    redis_port: int = 0
    api_port: int = 0
    sandbox_proc: subprocess.Popen[str] | None = None
    sandbox_url: str = ""
    meta_db: str = "smscn_deploy_meta"
    ledger_db: str = "smscn_deploy_ledger"
    components: dict[str, Component] = field(default_factory=dict)
    shared_env: dict[str, str] = field(default_factory=dict)
    dags_folder: Path = field(init=False)

    def __post_init__(self) -> None:
        self.dags_folder = self.root / "dags"

    # -- URLs ------------------------------------------------------------------------------------
    def db_url(self, database: str, driver: str = "postgresql+psycopg2") -> str:
        base = self.pg_url.rsplit("/", 1)[0].split("://", 1)[1]
        return f"{driver}://{base}/{database}"

    @property
    def ledger_url(self) -> str:
        return self.db_url(self.ledger_db)

    @property
    def pull_interval(self) -> float:
        return PULL_INTERVAL

    @property
    def api(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def control(self) -> str:
        return self.sandbox_url.rstrip("/").rsplit("/", 1)[0] + "/_control/"

    # -- start -----------------------------------------------------------------------------------
    def start_services(self) -> None:
        """PostgreSQL and Redis on ports of their own, fresh databases, the sandbox."""
        self.pg_port = self.pg_port or _service_port("SMSCN_DEPLOY_PG_PORT")
        self.redis_port = self.redis_port or _service_port("SMSCN_DEPLOY_REDIS_PORT")
        env = {**os.environ, "SMSCN_PG_PORT": str(self.pg_port), "SMSCN_REDIS_PORT": str(self.redis_port)}
        self.pg_url = _script("postgres.sh", env=env)
        self.redis_url = _script("redis.sh", env=env)
        import psycopg2

        conn = psycopg2.connect(self.pg_url.replace("postgresql+psycopg2", "postgresql"))
        conn.autocommit = True
        with conn.cursor() as cur:
            for db in (self.meta_db, self.ledger_db):
                cur.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
                cur.execute(f"CREATE DATABASE {db}")
        conn.close()
        self.root.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(exist_ok=True)
        for path in DAG_FILES:
            shutil.copy(path, self.dags_folder / path.name)
        self._start_sandbox()

    def _start_sandbox(self) -> None:
        log = open(self.root / "sandbox.log", "w")  # noqa: SIM115 - closed right after Popen
        self.sandbox_proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_smscn.sandbox", "--port", "0",
             "--report-delay", str(REPORT_DELAY), "--rate-limit", "0", "--seed", "7",
             "--outcomes", OUTCOMES, *(f"--outcome-for={m}=100" for m in DELIVERED_NUMBERS)],
            stdout=subprocess.PIPE, stderr=log, text=True, start_new_session=True)
        log.close()
        assert self.sandbox_proc.stdout is not None
        ready, _, _ = select.select([self.sandbox_proc.stdout], [], [], 30)
        self.sandbox_url = self.sandbox_proc.stdout.readline().strip() if ready else ""
        if not self.sandbox_url.startswith("http://127.0.0.1:"):
            raise RuntimeError(f"the sandbox printed no URL: {tail(self.root / 'sandbox.log')}")

    def base_env(self) -> dict[str, str]:
        """Settings every component shares, as one deployment's config on many hosts."""
        if not self.shared_env:
            self.api_port = free_port()
            conn = {"conn_type": "smscn", "login": SMS_UID, "password": SMS_PASSWORD,
                    "host": self.sandbox_url,
                    "extra": {"secret_key": SMS_SECRET_KEY, "timeout": REQUEST_TIMEOUT}}
            self.shared_env = {
                "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": self.db_url(self.meta_db),
                "AIRFLOW__CELERY__BROKER_URL": self.redis_url,
                "AIRFLOW__CELERY__RESULT_BACKEND": self.db_url(self.meta_db, "db+postgresql"),
                "AIRFLOW__CELERY__WORKER_CONCURRENCY": "6",
                "AIRFLOW__CELERY_BROKER_TRANSPORT_OPTIONS__VISIBILITY_TIMEOUT": "60",
                "AIRFLOW__CORE__FERNET_KEY": base64.urlsafe_b64encode(secrets.token_bytes(32)).decode(),
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_hex(32),
                "AIRFLOW__API__SECRET_KEY": secrets.token_hex(32),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__HOSTNAME_CALLABLE": "tests.support.deploy_host.hostname",
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.api}/execution/",
                "AIRFLOW__API__BASE_URL": self.api,
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.api_port),
                "AIRFLOW__API__WORKERS": "1",
                "AIRFLOW__CORE__AUTH_MANAGER":
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
                "AIRFLOW__CORE__PARALLELISM": "16",
                # a killed host: its tasks become zombies after 20 s, its triggers move after 10 s
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "20",
                "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT": "90",
                "AIRFLOW__SCHEDULER__TASK_QUEUED_TIMEOUT_CHECK_INTERVAL": "15",
                "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
                "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "60",
                "AIRFLOW_CONN_SMSCN_DEFAULT": json.dumps(conn),
                "AIRFLOW__SMSCN__LEDGER_URL": self.ledger_url,
                "AIRFLOW__SMSCN__PULL_INTERVAL": str(PULL_INTERVAL),
            }
        return dict(self.shared_env)

    def spawn(self, name: str, args: list[str], *, ledger: bool = True, extra: dict[str, str] | None = None
              ) -> Component:
        """Start ``airflow ARGS`` as host ``name`` with its own AIRFLOW_HOME."""
        home = self.root / "hosts" / name
        home.mkdir(parents=True, exist_ok=True)
        env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW", "SMSCN_TEST"))}
        env.update(self.base_env())
        if not ledger:
            del env["AIRFLOW__SMSCN__LEDGER_URL"]
        env.update(extra or {})
        env.update({
            "AIRFLOW_HOME": str(home),
            "SMSCN_DEPLOY_HOST": name,
            "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}",
            "PYTHONPATH": str(REPO),  # tests.support.deploy_host
            "NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost",
        })
        log = home / f"{name}.log"
        with open(log, "ab") as out:
            proc = subprocess.Popen([str(BIN / "airflow"), *args], stdout=out, stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, cwd=home, env=env, start_new_session=True)
        comp = Component(name, proc, home, log)
        self.components[name] = comp
        return comp

    def migrate(self) -> None:
        comp = self.spawn("migrate", ["db", "migrate"])
        try:
            rc = comp.proc.wait(timeout=240)
        finally:
            comp.stop()
        del self.components["migrate"]
        if rc != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{tail(comp.log)}")

    def start_core(self) -> None:
        """The "control plane" host: api-server, scheduler, dag-processor."""
        self.spawn("api", ["api-server", "--port", str(self.api_port), "--host", "127.0.0.1"])
        self.spawn("scheduler", ["scheduler"])
        self.spawn("dagproc", ["dag-processor"])

    def start_worker(self, name: str, *, ledger: bool = True) -> Component:
        return self.spawn(name, ["celery", "worker", "--celery-hostname", f"{name}@%h"], ledger=ledger,
                          extra={"AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port())})

    def start_triggerer(self, name: str, *, ledger: bool = True) -> Component:
        return self.spawn(name, ["triggerer"], ledger=ledger,
                          extra={"AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port())})

    # -- readiness -------------------------------------------------------------------------------
    def _check_alive(self) -> None:
        for comp in self.components.values():
            if not comp.alive() and not comp.killed:
                raise RuntimeError(f"{comp.name} exited with {comp.proc.returncode}:\n{tail(comp.log)}")

    def wait_api(self, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError):
                if http_json("GET", f"{self.api}/api/v2/monitor/health", timeout=3)[0] == 200:
                    return
            time.sleep(1)
        raise RuntimeError(f"the api-server did not answer within {timeout:.0f} s:\n"
                           f"{tail(self.components['api'].log)}")

    def wait_workers(self, names: list[str], timeout: float = 180.0) -> None:
        """Until each worker's log says Celery is ready."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            if all(" ready." in self.components[n].log.read_text("utf-8", "replace") for n in names):
                return
            time.sleep(1)
        raise RuntimeError("workers not ready: "
                           + " | ".join(tail(self.components[n].log, 15) for n in names))

    def wait_triggerers(self, names: list[str], timeout: float = 120.0) -> None:
        """Until the triggerer job of each host heartbeats in the metadata DB."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._check_alive()
            rows = self.sql("SELECT DISTINCT hostname FROM job WHERE job_type = 'TriggererJob' "
                            "AND state = 'running' AND latest_heartbeat > now() - interval '10 seconds'")
            if set(names) <= {r[0] for r in rows}:
                return
            time.sleep(1)
        raise RuntimeError("triggerers not up: "
                           + " | ".join(tail(self.components[n].log, 15) for n in names))

    def wait_dag(self, dag_id: str, timeout: float = 180.0) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            self._check_alive()
            with contextlib.suppress(OSError):
                last = http_json("GET", f"{self.api}/api/v2/dags/{dag_id}", timeout=30)
            if last is not None and last[0] == 200:
                http_json("PATCH", f"{self.api}/api/v2/dags/{dag_id}", {"is_paused": False}, timeout=60)
                return
            time.sleep(1)
        errors = http_json("GET", f"{self.api}/api/v2/importErrors")
        raise RuntimeError(f"DAG {dag_id} not parsed: {last} {errors}\n"
                           f"{tail(self.components['dagproc'].log)}")

    def reparse(self, dag_id: str) -> None:
        """Ask the dag-processor to parse the DAG's file now (an asset watcher of a DAG is registered
        at the first parse after it is unpaused, else up to ``min_file_process_interval`` later)."""
        status, body = http_json("GET", f"{self.api}/api/v2/dags/{dag_id}", timeout=30)
        if status == 200:
            token = body["file_token"]
            status, body = http_json("PUT", f"{self.api}/api/v2/parseDagFile/{token}", timeout=30)
        if status not in (200, 201):
            raise RuntimeError(f"reparsing {dag_id} answered {status}: {body}")

    # -- observing -------------------------------------------------------------------------------
    def sql(self, query: str, database: str | None = None,
            args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """Read the metadata DB (or the ledger) as an observer."""
        import psycopg2

        conn = psycopg2.connect(self.db_url(database or self.meta_db, "postgresql"))
        try:
            with conn.cursor() as cur:
                cur.execute(query, args)
                return list(cur.fetchall())
        finally:
            conn.close()

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any] | None = None) -> float:
        status, body = http_json("POST", f"{self.api}/api/v2/dags/{dag_id}/dagRuns",
                                 {"dag_run_id": run_id, "logical_date": None, "conf": conf or {}}, timeout=60)
        if status not in (200, 201):
            raise RuntimeError(f"trigger {dag_id} answered {status}: {body}")
        return time.monotonic()

    def run_state(self, dag_id: str, run_id: str) -> str:
        """The run's state; "unanswered" when the API is too busy to answer in time (poll again)."""
        try:
            status, body = http_json("GET", f"{self.api}/api/v2/dags/{dag_id}/dagRuns/{run_id}", timeout=30)
        except OSError:  # a timeout on a loaded machine: an observer asks again
            return "unanswered"
        return str(body.get("state")) if status == 200 else f"http-{status}"

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        try:
            status, body = http_json("GET", f"{self.api}/api/v2/dags/{dag_id}/dagRuns/{run_id}/"
                                     "taskInstances?limit=100", timeout=30)
        except OSError:
            return []
        return list(body.get("task_instances", [])) if status == 200 else []

    def asset_events(self, asset: str) -> list[dict[str, Any]]:
        """Every event of the asset named ``asset``, oldest first (REST API ``/api/v2/assets/events``)."""
        status, body = http_json("GET", f"{self.api}/api/v2/assets?name_pattern={asset}", timeout=30)
        ids = [a["id"] for a in body.get("assets", []) if a["name"] == asset] if status == 200 else []
        if not ids:
            raise RuntimeError(f"no asset {asset!r}: {status} {body}")
        events: list[dict[str, Any]] = []
        while True:
            status, body = http_json("GET", f"{self.api}/api/v2/assets/events?asset_id={ids[0]}"
                                     f"&order_by=timestamp&limit=100&offset={len(events)}", timeout=30)
            if status != 200:
                raise RuntimeError(f"asset events answered {status}: {body}")
            events += body["asset_events"]
            if len(body["asset_events"]) < 100:
                return events

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        """Every run of the DAG (REST API), oldest first."""
        status, body = http_json("GET", f"{self.api}/api/v2/dags/{dag_id}/dagRuns?limit=100&order_by=id",
                                 timeout=30)
        if status != 200:
            raise RuntimeError(f"runs of {dag_id} answered {status}: {body}")
        return list(body["dag_runs"])

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        """The task's XCom value (REST API), None when it has none."""
        status, body = http_json("GET", f"{self.api}/api/v2/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"
                                 f"/taskInstances/{task_id}/xcomEntries/{key}?deserialize=true", timeout=30)
        return body["value"] if status == 200 else None

    def sandbox_stats(self) -> dict[str, Any]:
        return dict(http_json("GET", self.control + "stats", timeout=30)[1])

    def sandbox_calls(self) -> list[dict[str, Any]]:
        return list(http_json("GET", self.control + "calls", timeout=30)[1]["calls"])

    def add_fault(self, kind: str, **params: Any) -> int:
        """A sandbox fault (``airflow_provider_smscn/sandbox/faults.py``); its id."""
        status, body = http_json("POST", self.control + "faults", {"kind": kind, **params}, timeout=30)
        if status != 200:
            raise RuntimeError(f"the sandbox refused the fault: {status} {body}")
        return int(body["id"])

    def clear_faults(self) -> None:
        http_json("DELETE", self.control + "faults", timeout=30)

    def intents(self) -> list[tuple[str, str, str, str]]:
        """The ledger's send intents: (dag_id, task_id, mobile, state), from ``dag|task|run`` keys."""
        if not self.sql("SELECT to_regclass('smscn_send_intents')", self.ledger_db)[0][0]:
            return []  # the first send creates the ledger's tables
        rows = self.sql("SELECT idem_key, mobile, state FROM smscn_send_intents", self.ledger_db)
        return [(*key.split("|")[:2], mobile, state) for key, mobile, state in rows]

    def task_logs(self, dag_id: str, run_id: str, task_id: str) -> str:
        """Every log file of that task on every host (each worker keeps its own logs)."""
        texts = []
        for path in sorted((self.root / "hosts").glob(
                f"*/logs/dag_id={dag_id}/run_id={run_id}/task_id={task_id}/**/*.log")):
            texts.append(path.read_text("utf-8", "replace"))
        return "\n".join(texts)

    # -- stop ------------------------------------------------------------------------------------
    def stop(self) -> None:
        """End every process this deployment started, and the databases and broker it made."""
        for comp in list(self.components.values()):
            comp.stop()
        if self.sandbox_proc is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.sandbox_proc.pid, signal.SIGKILL)
            self.sandbox_proc.wait(timeout=10)
            if self.sandbox_proc.stdout is not None:
                self.sandbox_proc.stdout.close()
        if not (self.pg_port and self.redis_port):
            return
        env = {**os.environ, "SMSCN_PG_PORT": str(self.pg_port), "SMSCN_REDIS_PORT": str(self.redis_port)}
        for script in ("redis.sh", "postgres.sh"):
            with contextlib.suppress(subprocess.SubprocessError, OSError):
                subprocess.run(["bash", str(REPO / ".ci" / script), "stop"], env=env, timeout=90,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def start(root: Path, workers: int = 2, triggerers: int = 2) -> Deployment:
    """Services, migration, then every component; waits until all answer. Stops all on failure."""
    dep = Deployment(root)
    try:
        dep.start_services()
        dep.base_env()
        dep.migrate()
        dep.start_core()
        names = [f"worker{i}" for i in range(1, workers + 1)]
        for name in names:
            dep.start_worker(name)
        trigger_names = [f"triggerer{i}" for i in range(1, triggerers + 1)]
        for name in trigger_names:
            dep.start_triggerer(name)
        dep.wait_api()
        dep.wait_workers(names)
        dep.wait_triggerers(trigger_names)
    except BaseException:
        dep.stop()
        raise
    return dep


if __name__ == "__main__":
    import tempfile

    deployment = start(Path(tempfile.mkdtemp(prefix="smscn-deploy-")))
    print(f"api {deployment.api}\nsandbox {deployment.sandbox_url}\nledger {deployment.ledger_url}\n"
          f"homes {deployment.root / 'hosts'}\nCtrl-C stops everything", flush=True)
    try:
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        deployment.stop()
