"""Run the example DAGs end to end against a local sandbox and print the outcome.

Real parts only: the sandbox serves HTTP on 127.0.0.1, each DAG runs through ``airflow dags test``
in its own process on a fresh SQLite metadata DB, the ledger is a SQLite file in the same
AIRFLOW_HOME. Numbers are printed masked.

Stopping: Ctrl-C (SIGINT to the demo's process group), SIGTERM or SIGHUP stop the demo and every
process it started within a few seconds, also when one of them hangs. Each child runs in its own
session, so the terminal's SIGINT reaches only the demo (``airflow standalone`` given SIGINT can
hang with defunct children); the demo then sends SIGTERM to each child's process group, waits
briefly, and sends SIGKILL to whatever is left. The demo is a child subreaper (Linux), so even a
process that left its group is found and reaped.

    bash .ci/demo [--standalone] [--port 8080] [--home DIR] [--dags ID,ID]
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAGS = ["smscn_send_and_wait", "smscn_balance_alert", "smscn_trigger_form", "smscn_failure_alert"]
#: Seconds a stopping child gets after SIGTERM before SIGKILL (the whole stop stays under 5 s).
TERM_GRACE = 2.0
CONTROL_TIMEOUT = 10.0  # seconds for one read of the sandbox's control API


class Stop(Exception):
    """A stop signal arrived (SIGINT, SIGTERM or SIGHUP)."""


class Children:
    """Every process the demo starts, each in a session of its own; :meth:`stop` ends them all."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[Any]] = []

    def popen(self, args: list[str], **kwargs: Any) -> subprocess.Popen[Any]:
        proc = subprocess.Popen(args, start_new_session=True, **kwargs)
        self.procs.append(proc)
        return proc

    def run(self, args: list[str], **kwargs: Any) -> int:
        return self.popen(args, **kwargs).wait()


    def stop(self) -> None:
        """SIGTERM to every child's process group and every descendant, SIGKILL after the grace."""
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # nothing may cut the stop short
            signal.signal(sig, signal.SIG_IGN)
        self._signal(signal.SIGTERM)
        if not self._wait_all_gone(TERM_GRACE):  # a hung component: kill its group and what it started
            self._signal(signal.SIGKILL)
            self._wait_all_gone(1.0)

    def _signal(self, signum: int) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signum)  # the group outlives its leader: signal it anyway
        for pid in _descendants():  # also whatever left its group
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signum)

    def _wait_all_gone(self, seconds: float) -> bool:
        deadline = time.monotonic() + seconds
        while True:
            _reap()
            if not _descendants():
                return True
            if time.monotonic() >= deadline:
                return False
            time.sleep(0.05)


def _descendants() -> list[int]:
    """Live (not zombie) descendants of the demo, from /proc."""
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as stat:
                    fields = stat.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if fields[0] != "Z":
                parents.setdefault(int(fields[1]), []).append(int(entry))
    found, todo = [], [os.getpid()]
    while todo:
        for child in parents.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def _become_subreaper() -> None:
    """Orphaned descendants are re-parented to the demo (not to PID 1), so it finds and reaps them."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER


def _reap() -> None:
    """Collect every exited child, orphans adopted as subreaper included (no zombie left behind)."""
    with contextlib.suppress(ChildProcessError):
        while os.waitpid(-1, os.WNOHANG)[0]:
            pass


def _on_signal(signum: int, frame: object) -> None:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):  # a second Ctrl-C must not cut the stop short
        signal.signal(sig, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _control_json(url: str) -> Any:
    """A sandbox control endpoint's JSON; a sandbox that stopped answering fails the demo, not hangs it."""
    with urllib.request.urlopen(url, timeout=CONTROL_TIMEOUT) as reply:
        return json.load(reply)


def mask(number: str) -> str:
    return f"{number[:3]}****{number[-4:]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--standalone", action="store_true", help="then keep airflow standalone running")
    parser.add_argument("--port", type=int, default=8080, help="port of airflow standalone (8080)")
    parser.add_argument("--home", type=Path, default=REPO / ".demo", help="work directory (.demo)")
    parser.add_argument("--dags", default=",".join(DAGS), help="example DAG ids to run, comma-separated")
    args = parser.parse_args(argv)
    _become_subreaper()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _on_signal)
    children = Children()
    try:
        return demo(args, children)
    except Stop as stop:
        print(f"\n{stop}: stopping every process the demo started", flush=True)
        return 130
    finally:
        children.stop()


def demo(args: argparse.Namespace, children: Children) -> int:
    home = args.home.resolve() / "airflow"
    shutil.rmtree(home.parent, ignore_errors=True)
    home.mkdir(parents=True)
    sandbox = children.popen([str(BIN / "smscn-sandbox"), "--port", "0", "--report-delay", "1"],
                             stdout=subprocess.PIPE, text=True)
    assert sandbox.stdout is not None
    url = sandbox.stdout.readline().strip()
    control = url.replace("/voice/", "/_control/")
    print(f"sandbox serving {url}")
    from cryptography.fernet import Fernet

    env = dict(os.environ)
    env.update({
        "AIRFLOW_HOME": str(home),
        # one key for every process of the demo: `dags test` stores the asset watchers' triggers
        # encrypted, and a triggerer with a key of its own could not read them (InvalidToken)
        "AIRFLOW__CORE__FERNET_KEY": Fernet.generate_key().decode(),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags_examples"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__SMSCN__LEDGER_URL": f"sqlite:///{home}/smscn_ledger.db",
        "AIRFLOW__SMSCN__PULL_INTERVAL": "1",
        "AIRFLOW_CONN_SMSCN_DEFAULT": json.dumps({
            "conn_type": "smscn", "login": "test", "password": "123123", "host": url,
            "extra": {"secret_key": "64CQMlr579J0L46U9q1qR285Risfc04G", "language": "english"},
        }),
    })
    if children.run([str(BIN / "airflow"), "db", "migrate"], env=env,
                    stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL):
        print("airflow db migrate failed")
        return 1
    results = {}
    for dag_id in [d for d in args.dags.split(",") if d]:
        started = time.monotonic()
        log = home.parent / f"{dag_id}.log"
        with log.open("w") as out:
            code = children.run([str(BIN / "airflow"), "dags", "test", dag_id], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
        text = log.read_text(errors="replace")
        finished = re.findall(r"DagRun Finished: dag_id=\S+ .*?state=(\w+)", text)
        state = "success" if code == 0 and finished[-1:] == ["success"] else "FAILED"
        results[dag_id] = state
        print(f"{dag_id:24s} {state:8s} {time.monotonic() - started:5.1f} s   (log: {log})")
    calls = _control_json(control + "calls")["calls"]
    stats = _control_json(control + "stats")
    account = _control_json(control + "accounts/test")
    print(f"\nvoice calls placed: {len(calls)}")
    for call in calls:
        print(f"  {mask(call['mobile'])}  message id {call['mobileid']}  template {call['template']}")
    pulls = stats["requests"].get("status", 0)
    print(f"status pulls: {pulls}, reports handed out: {stats['reports_pulled']}")
    print(f"balance left: {account.get('balance')}")
    ok = all(s == "success" for s in results.values())
    if args.standalone:
        standalone(env, args.port, children)
    return 0 if ok else 1


def standalone(env: dict[str, str], port: int, children: Children) -> None:
    """Keep ``airflow standalone`` running with the sandbox and its connection, for clicking around."""
    env = {**env, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled", "AIRFLOW__CORE__PARALLELISM": "4",
           "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port),
           "AIRFLOW__API__BASE_URL": f"http://127.0.0.1:{port}",
           "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
           # the log servers on free ports: a second Airflow on the machine keeps its 8793 / 8794
           "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(_free_port()),
           "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(_free_port()),
           "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    print(f"\nairflow standalone on http://127.0.0.1:{port} (connection smscn_default -> the sandbox); "
          "Ctrl-C stops it", flush=True)
    print(f"the calls the demo just placed, on the sms.cn page: http://127.0.0.1:{port}/plugin/smscn",
          flush=True)
    children.run([str(BIN / "airflow"), "standalone"], env=env)


if __name__ == "__main__":
    sys.exit(main())
