"""``bash .ci/demo --standalone`` stops on Ctrl-C within 5 s and leaves no process behind.

Real parts: the demo as a user starts it (its own session, like a terminal job), the sandbox,
``airflow dags test`` and ``airflow standalone`` with all its components. Ctrl-C is SIGINT to the
demo's process group, as a terminal sends it. One component (the scheduler) is frozen with
SIGSTOP first, so it cannot answer SIGTERM: the hung-component case. Slow (standalone needs
~15-60 s to come up), bounded by its timeout; Airflow 3 only (``airflow3_only``: the demo and
``airflow standalone`` as run here are Airflow 3's).
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import psutil
import pytest

REPO = Path(__file__).resolve().parents[2]
COMPONENTS = ("scheduler", "dag-processor", "api-server", "triggerer")
STARTUP_LIMIT = 420.0
STOP_LIMIT = 5.0

pytestmark = [pytest.mark.airflow3_only, pytest.mark.timeout(STARTUP_LIMIT + 120)]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _live(proc: psutil.Process) -> bool:
    try:
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _tree(pid: int) -> list[psutil.Process]:
    with contextlib.suppress(psutil.NoSuchProcess):
        return [p for p in psutil.Process(pid).children(recursive=True) if _live(p)]
    return []


def _component(proc: psutil.Process) -> str | None:
    """Which Airflow component ``proc`` is: ``.../airflow scheduler``, or a retitled
    ``airflow api_server -- host:...``."""
    with contextlib.suppress(psutil.Error):
        words = " ".join(proc.cmdline()).replace("_", "-").split()
        for name in COMPONENTS:
            if name in words and any(Path(w).name == "airflow" for w in words[: words.index(name)]):
                return name
    return None


def _of_this_demo(home: Path) -> list[psutil.Process]:
    """Every live process on the machine whose environment or command line names the demo's home."""
    found = []
    for proc in psutil.process_iter():
        with contextlib.suppress(psutil.Error):
            where = f"{' '.join(proc.cmdline())} {proc.environ().get('AIRFLOW_HOME', '')}"
            named = str(home) in where
            if named and proc.pid != os.getpid() and _live(proc):
                found.append(proc)
    return found


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/monitor/health", timeout=2) as reply:
            return reply.status == 200
    except OSError:
        return False


def test_ctrl_c_stops_the_standalone_demo_and_everything_it_started(tmp_path: Path) -> None:
    port, home = _free_port(), tmp_path / "demo"
    log_path = tmp_path / "demo.log"
    with log_path.open("w") as log:
        demo = subprocess.Popen(
            ["bash", str(REPO / ".ci" / "demo"), "--standalone", "--port", str(port), "--home", str(home),
             "--dags", "smscn_balance_alert"],
            cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    tree: list[psutil.Process] = []
    try:
        deadline = time.monotonic() + STARTUP_LIMIT
        while True:
            assert demo.poll() is None, f"the demo ended by itself:\n{log_path.read_text()[-3000:]}"
            tree = _tree(demo.pid)
            running = {_component(p) for p in tree}
            if running.issuperset(COMPONENTS) and _healthy(port):
                break
            assert time.monotonic() < deadline, f"standalone not up in {STARTUP_LIMIT} s: {running}"
            time.sleep(1)
        assert re.search(r"smscn_balance_alert +success", log_path.read_text())

        scheduler = next(p for p in tree if _component(p) == "scheduler")
        scheduler.send_signal(signal.SIGSTOP)  # hung: SIGTERM cannot reach it now
        tree = _tree(demo.pid)
        started = time.monotonic()
        os.killpg(demo.pid, signal.SIGINT)  # Ctrl-C in the demo's terminal
        while demo.poll() is None or any(_live(p) for p in tree):
            if time.monotonic() - started > STOP_LIMIT:
                break
            time.sleep(0.05)
        took = time.monotonic() - started
        print(f"everything stopped {took:.2f} s after Ctrl-C")

        left = [p for p in tree if _live(p)]
        assert demo.poll() is not None and not left, (
            f"{took:.1f} s after Ctrl-C: demo exit {demo.poll()}, still alive: "
            f"{[(p.pid, p.name()) for p in left]}\n{log_path.read_text()[-3000:]}")
        assert took < STOP_LIMIT
        assert demo.returncode == 130
        assert _of_this_demo(home) == []
        with pytest.raises(ConnectionRefusedError):  # nothing listens on the API server's port
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
    finally:  # a failed test must not leave a standalone running on the machine
        with contextlib.suppress(ProcessLookupError):
            os.killpg(demo.pid, signal.SIGKILL)
        for proc in [*tree, *_of_this_demo(home)]:
            with contextlib.suppress(psutil.Error):
                proc.kill()
        demo.wait(10)
