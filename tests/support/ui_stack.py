"""The processes behind the UI test: the sms.cn sandbox and ``airflow standalone``, both on 127.0.0.1.

Each runs in its own process group (``start_new_session``) so teardown can end it with every child
(standalone forks the API server, scheduler, dag processor and triggerer).
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tests.support.local_services import free_port, http_json, stop_group, tail
from tests.support.paths import REPO

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

DAGS_FOLDER = REPO / "dags_examples"
ARTIFACTS = REPO / "test-artifacts" / "ui"
BIN = Path(sys.executable).parent
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

ADMIN_USER = "admin"
STARTUP_TIMEOUT = 120.0

#: The sandbox's default account (the vendor document's example).
SMS_UID = "test"
SMS_PASSWORD = "123123"
SMS_SECRET_KEY = "64CQMlr579J0L46U9q1qR285Risfc04G"
SMS_TEMPLATE = "700001"


@dataclass
class SandboxProcess:
    """``python -m airflow_provider_smscn.sandbox --port 0`` and the URL it printed."""

    proc: subprocess.Popen[str]
    url: str

    @property
    def control_url(self) -> str:
        """``http://127.0.0.1:PORT/_control/`` (sibling of ``/voice/``)."""
        return self.url.rstrip("/").rsplit("/", 1)[0] + "/_control/"

    def calls(self) -> list[dict[str, Any]]:
        """Every call the sandbox accepted, in order."""
        status, body = http_json("GET", self.control_url + "calls")
        assert status == 200, f"sandbox control API answered {status}: {body}"
        return list(body["calls"])

    @classmethod
    def start(cls, home: Path) -> SandboxProcess:
        """Start it and read its base URL from the first stdout line (bounded)."""
        log = open(home / "sandbox.log", "w")  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            [sys.executable, "-m", "airflow_provider_smscn.sandbox", "--port", "0", "--report-delay", "1"],
            stdout=subprocess.PIPE,
            stderr=log,
            text=True,
            start_new_session=True,
            env=_base_env(home),
        )
        log.close()
        assert proc.stdout is not None
        url = ""
        ready, _, _ = select.select([proc.stdout], [], [], 30)  # bounded: the URL is the first line
        if ready:
            url = proc.stdout.readline().strip()
        if not url.startswith("http://127.0.0.1:"):
            stop_group(proc)
            log_tail = tail(home / "sandbox.log", 80)
            raise RuntimeError(f"the sandbox printed no URL within 30 s: {url!r}\n{log_tail}")
        return cls(proc, url)

    def stop(self) -> None:
        """End the sandbox process."""
        stop_group(self.proc, timeout=10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()


def _base_env(home: Path) -> dict[str, str]:
    """A clean environment: no AIRFLOW_* / connection settings inherited from the pytest process."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "_AIRFLOW"))}
    env["AIRFLOW_HOME"] = str(home)
    # standalone starts its components as `airflow ...` looked up on PATH: use the venv's
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    env["NO_PROXY"] = env["no_proxy"] = "127.0.0.1,localhost"
    return env


@dataclass
class Standalone:
    """``airflow standalone`` on 127.0.0.1:port with the simple auth manager and a known admin."""

    proc: subprocess.Popen[bytes]
    home: Path
    port: int
    log: Path
    _token: str | None = field(default=None, repr=False)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_password(self) -> str:
        """The generated password of ``admin`` (written by the simple auth manager at start)."""
        path = self.home / "simple_auth_manager_passwords.json.generated"
        return str(json.loads(path.read_text())[ADMIN_USER])

    def token(self) -> str:
        """A JWT from ``POST /auth/token`` (cached)."""
        if self._token is None:
            status, body = http_json(
                "POST",
                f"{self.base_url}/auth/token",
                {"username": ADMIN_USER, "password": self.admin_password},
            )
            assert status in (200, 201), f"/auth/token answered {status}: {body}"
            self._token = str(body["access_token"])
        return self._token

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """An authenticated REST call, ``path`` starting at ``/api/v2/...``."""
        return http_json(method, self.base_url + path, body, token=self.token())

    @classmethod
    def start(cls, home: Path, extra_env: dict[str, str] | None = None) -> Standalone:
        """Start standalone and wait (bounded) until the API answers and the admin password exists."""
        port = free_port()
        env = _base_env(home)
        env.update(
            {
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(port),
                "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
                "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
                "AIRFLOW__CORE__PARALLELISM": "4",
                "AIRFLOW__CORE__AUTH_MANAGER": (
                    "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
                ),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN_USER}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "False",
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__SCHEDULER__MIN_FILE_PROCESS_INTERVAL": "5",
                "AIRFLOW__SMSCN__LEDGER_URL": f"sqlite:///{home}/ledger.db",
                "AIRFLOW__SMSCN__PULL_INTERVAL": "1",
            }
        )
        env.update(extra_env or {})
        log = home / "standalone.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [str(BIN / "airflow"), "standalone"],
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=home,
                env=env,
                start_new_session=True,
            )
        stack = cls(proc, home, port, log)
        try:
            stack._wait_ready()
        except BaseException:
            stack.stop()
            raise
        return stack

    def _wait_ready(self, timeout: float = STARTUP_TIMEOUT) -> None:
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"airflow standalone exited with {self.proc.returncode}\n{tail(self.log, 80)}"
                )
            try:
                last = http_json("GET", f"{self.base_url}/api/v2/monitor/health", timeout=3)
                pw_file = self.home / "simple_auth_manager_passwords.json.generated"
                if last[0] == 200 and pw_file.exists():
                    return
            except OSError as err:
                last = err
            time.sleep(1)
        raise RuntimeError(
            f"airflow standalone did not answer within {timeout:.0f} s (last: {last!r})\n{tail(self.log, 80)}"
        )

    def wait_for_dag(self, dag_id: str, timeout: float = 90.0) -> dict[str, Any]:
        """Wait (bounded) until the dag processor has serialized ``dag_id``; returns the DAG."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            last = self.api("GET", f"/api/v2/dags/{dag_id}")
            if last[0] == 200:
                return dict(last[1])
            time.sleep(1)
        errors = self.api("GET", "/api/v2/importErrors")
        raise AssertionError(
            f"DAG {dag_id} not parsed within {timeout:.0f} s: {last}; import errors: {errors}\n"
            f"{tail(self.log, 80)}"
        )

    def stop(self) -> None:
        """End standalone and all its children."""
        stop_group(self.proc, timeout=30)


@dataclass
class UiStack:
    """What the tests talk to: the sandbox, standalone, and the throwaway AIRFLOW_HOME."""

    home: Path
    sandbox: SandboxProcess
    airflow: Standalone


@contextlib.contextmanager
def running_stack(prefix: str, configure: Callable[[SandboxProcess], dict[str, str]] | None = None
                  ) -> Iterator[UiStack]:
    """The sandbox and ``airflow standalone`` (SQLite) in a fresh AIRFLOW_HOME, every process
    stopped afterwards. ``configure`` prepares the running sandbox and returns extra environment
    for standalone."""
    home = Path(tempfile.mkdtemp(prefix=prefix))
    sandbox = SandboxProcess.start(home)
    airflow: Standalone | None = None
    try:
        airflow = Standalone.start(home, configure(sandbox) if configure else None)
        yield UiStack(home, sandbox, airflow)
    finally:
        if airflow is not None:
            airflow.stop()
        sandbox.stop()
    shutil.rmtree(home, ignore_errors=True)


def task_log_summary(home: Path, dag_id: str, run_id: str, lines: int = 15) -> str:
    """The last events of every task log of a run, errors with their exception (for failure messages)."""
    run_dir = home / "logs" / f"dag_id={dag_id}" / f"run_id={run_id}"
    out: list[str] = []
    for path in sorted(run_dir.glob("task_id=*/attempt=*.log")):
        events: list[str] = []
        for raw in path.read_text("utf-8", "replace").splitlines():
            try:
                event = json.loads(raw)
            except ValueError:
                events.append(raw)
                continue
            text = f"{event.get('level', '?')}: {event.get('event', '')}"
            for detail in event.get("error_detail") or []:
                text += f" [{detail.get('exc_type')}: {detail.get('exc_value')}]"
            events.append(text)
        out.append(f"--- {path.relative_to(run_dir)}")
        out.extend(events[-lines:])
    return "\n".join(out) or f"<no task logs under {run_dir}>"
