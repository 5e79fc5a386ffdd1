"""Run the example DAGs end to end against a local sandbox and print the outcome.

Real parts only: the sandbox serves HTTP on 127.0.0.1, each DAG runs through ``airflow dags test``
in its own process on a fresh SQLite metadata DB, the ledger is a SQLite file in the same
AIRFLOW_HOME. Numbers are printed masked.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAGS = ["smscn_send_and_wait", "smscn_balance_alert", "smscn_trigger_form", "smscn_failure_alert"]


def mask(number: str) -> str:
    return f"{number[:3]}****{number[-4:]}"


def main() -> int:
    home = REPO / ".demo" / "airflow"
    shutil.rmtree(home.parent, ignore_errors=True)
    home.mkdir(parents=True)
    sandbox = subprocess.Popen([str(BIN / "smscn-sandbox"), "--port", "0", "--report-delay", "1"],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert sandbox.stdout is not None
        url = sandbox.stdout.readline().strip()
        control = url.replace("/voice/", "/_control/")
        print(f"sandbox serving {url}")
        env = dict(os.environ)
        env.update({
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags_examples"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__SMSCN__LEDGER_URL": f"sqlite:///{home}/smscn_ledger.db",
            "AIRFLOW__SMSCN__PULL_INTERVAL": "1",
            "AIRFLOW_CONN_SMSCN_DEFAULT": json.dumps({
                "conn_type": "smscn", "login": "test", "password": "123123", "host": url,
                "extra": {"secret_key": "64CQMlr579J0L46U9q1qR285Risfc04G", "language": "english"},
            }),
        })
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        results = {}
        for dag_id in DAGS:
            started = time.monotonic()
            log = home.parent / f"{dag_id}.log"
            with log.open("w") as out:
                proc = subprocess.run([str(BIN / "airflow"), "dags", "test", dag_id], env=env,
                                      stdout=out, stderr=subprocess.STDOUT)
            text = log.read_text(errors="replace")
            finished = re.findall(r"DagRun Finished: dag_id=\S+ .*?state=(\w+)", text)
            state = "success" if proc.returncode == 0 and finished[-1:] == ["success"] else "FAILED"
            results[dag_id] = state
            print(f"{dag_id:24s} {state:8s} {time.monotonic() - started:5.1f} s   (log: {log})")
        calls = json.load(urllib.request.urlopen(control + "calls"))["calls"]
        stats = json.load(urllib.request.urlopen(control + "stats"))
        account = json.load(urllib.request.urlopen(control + "accounts/test"))
        print(f"\nvoice calls placed: {len(calls)}")
        for call in calls:
            print(f"  {mask(call['mobile'])}  message id {call['mobileid']}  template {call['template']}")
        pulls = stats["requests"].get("status", 0)
        print(f"status pulls: {pulls}, reports handed out: {stats['reports_pulled']}")
        print(f"balance left: {account.get('balance')}")
        ok = all(s == "success" for s in results.values())
        if "--standalone" in sys.argv:
            standalone(env)
        return 0 if ok else 1
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=10)


def standalone(env: dict[str, str]) -> None:
    """Keep ``airflow standalone`` running with the sandbox and its connection, for clicking around."""
    env = {**env, "AIRFLOW__CORE__TEST_CONNECTION": "Enabled", "AIRFLOW__CORE__PARALLELISM": "4",
           "AIRFLOW__API__BASE_URL": "http://127.0.0.1:8080",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_ALL_ADMINS": "True",
           "PATH": f"{BIN}{os.pathsep}{env.get('PATH', '')}"}
    print("\nairflow standalone on http://127.0.0.1:8080 (connection smscn_default -> the sandbox); "
          "Ctrl-C stops it")
    print("the calls the demo just placed, on the sms.cn page: http://127.0.0.1:8080/plugin/smscn")
    proc = subprocess.Popen([str(BIN / "airflow"), "standalone"], env=env)
    try:
        proc.wait()
    except KeyboardInterrupt:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    sys.exit(main())
