"""Run every example DAG for real (``dag.test()``) against the sandbox on the leak-check account, in
each credential mode, then look for what must never be stored or shown:

* the credentials (login password, secret key, API password / ``pwd``, every ``tokenkey`` of the
  run's time window): nowhere, neither in the logs nor in any table of the metadata DB or the
  ledger;
* the phone numbers of the DAGs, unmasked, and the one-time codes the sandbox was asked to speak
  (read back from its ``calls()``): not in the logs (everything logged during the run, stdout and
  stderr, and the task log files), not in XComs, not in the rendered template fields.

Each scan has a positive control (the masked number is in the logs, the XComs and rendered fields
exist), so a capture that silently caught nothing fails instead of passing.
"""

from __future__ import annotations

import logging
import random
import re
import sqlite3
from pathlib import Path

import pytest
from reliability_helpers import (
    create_session,
    leak_account,
    load_dagbag,
    reset_metadata_db,
    stored_rendered_fields,
    stored_xcom_values,
    sync_dags_to_db,
)

from airflow_provider_smscn.sandbox import Sandbox
from tests.secrets_scan import SecretScan, full_numbers

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags_examples"
AUTH_MODES = ("secret", "password", "api_password")
EXAMPLE_DAGS = ("smscn_send_and_wait", "smscn_balance_alert", "smscn_failure_alert", "smscn_trigger_form")
FORM_NUMBERS = ["13912345601", "13912345602"]
#: Every number the example DAGs (and the form's conf below) call.
DAG_NUMBERS = ["13900008888", "13900008889", "13900008890", "13900001111", "13900002222", *FORM_NUMBERS]


class _Collect(logging.Handler):
    """Keeps every record (formatted, with its arguments and exception) logged anywhere."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
        except Exception:  # a broken format string must not hide the raw parts
            text = f"{record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[1] is not None:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        self.lines.append(f"{record.name}: {text}")


@pytest.fixture(scope="module")
def dagbag():
    reset_metadata_db()
    bag = load_dagbag(str(DAGS_FOLDER))
    assert not bag.import_errors, bag.import_errors
    assert sorted(bag.dag_ids) == sorted(EXAMPLE_DAGS)
    sync_dags_to_db(bag)
    return bag


@pytest.fixture
def leak_sandbox(monkeypatch):
    with Sandbox(accounts=[leak_account()], report_delay=1.2, seed=11) as box:
        monkeypatch.setenv("AIRFLOW__SMSCN__PULL_INTERVAL", "1")
        yield box


def run(bag, dag_id: str, **kwargs):
    dag = bag.get_dag(dag_id)
    return dag.test(**kwargs)


def code_pattern(codes: set[str]) -> re.Pattern[str] | None:
    return re.compile("|".join(rf"(?<!\d){re.escape(c)}(?!\d)" for c in sorted(codes))) if codes else None


def log_files_of(run_ids: set[str]) -> dict[str, str]:
    """The task log files Airflow wrote for these runs (none when it logs to stdout only)."""
    import os

    root = Path(os.environ["AIRFLOW_HOME"]) / "logs"
    found = {}
    if root.exists():
        for path in root.rglob("*"):
            if path.is_file() and any(f"run_id={rid}" in str(path) or rid in str(path) for rid in run_ids):
                found[str(path)] = path.read_text(encoding="utf-8", errors="replace")
    return found


def dump_sqlite(url: str) -> str:
    """Every row of every table of a SQLite database, as text."""
    path = url.split("sqlite:///", 1)[1].split("?", 1)[0]
    parts = []
    with sqlite3.connect(path) as db:
        tables = [r[0] for r in db.execute("select name from sqlite_master where type='table'")]
        for table in tables:
            for row in db.execute(f'select * from "{table}"'):  # noqa: S608 (names from sqlite_master)
                parts.append(f"{table}: " + " | ".join(
                    v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row))
    return "\n".join(parts)


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_example_dags_leak_no_secret_number_or_code(dagbag, leak_sandbox, monkeypatch, capfd, caplog, auth):
    box = leak_sandbox
    scan = SecretScan()
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", box.connection_json(auth=auth))
    form_code = f"{random.SystemRandom().randrange(100000, 1000000)}"
    collector = _Collect()
    root = logging.getLogger()
    root.addHandler(collector)
    caplog.set_level(logging.DEBUG)
    runs = {}
    try:
        runs["send_and_wait"] = run(dagbag, "smscn_send_and_wait")
        runs["balance_ok"] = run(dagbag, "smscn_balance_alert")
        box.set_account(balance=900)  # under min_balance 1000: the check fails, the notifier calls
        runs["balance_low"] = run(dagbag, "smscn_balance_alert")
        box.set_account(balance=100000)
        runs["failure_alert"] = run(dagbag, "smscn_failure_alert")
        runs["trigger_form"] = run(dagbag, "smscn_trigger_form", run_conf={
            "mobiles": ",".join(FORM_NUMBERS), "template_id": "700001",
            "variables": {"code": form_code}, "wait": True})
    finally:
        root.removeHandler(collector)
    out, err = capfd.readouterr()

    # -- the runs did what the examples promise (so the scans below look at real traffic)
    states = {name: str(getattr(r.state, "value", r.state)) for name, r in runs.items()}
    assert states == {"send_and_wait": "success", "balance_ok": "success", "balance_low": "failed",
                      "failure_alert": "success", "trigger_form": "success"}, states
    calls = box.calls()
    called = [c["mobile"] for c in calls]
    assert called == ["13900008888", "13900008889", "13900008890", "13900001111", "13900002222",
                      *FORM_NUMBERS], called
    codes = {str(v) for c in calls for v in c["variables"].values()}
    assert form_code in codes and len(codes) >= 4
    assert box.stats()["requests"]["status"] >= 2  # the sensors (and their deferred triggers) pulled

    run_ids = {r.run_id for r in runs.values()}
    dag_ids = {r.dag_id for r in runs.values()}
    codes_re = code_pattern(codes)

    # -- logs: every record, stdout/stderr, and the task log files
    files = log_files_of(run_ids)
    logs = "\n".join([*collector.lines, caplog.text, out, err, *files.values()])
    assert "139****8888" in logs, "log capture caught nothing: the masked number must be there"
    assert scan.leaks(logs) == [], f"credentials in the logs: {scan.leaks(logs)}"
    assert full_numbers(logs, DAG_NUMBERS) == [], f"full numbers in the logs: {full_numbers(logs, DAG_NUMBERS)}"
    leaked = codes_re.findall(logs) if codes_re else []
    assert leaked == [], f"one-time codes in the logs: {leaked}"

    # -- XComs and rendered template fields of these runs
    with create_session() as session:
        xcoms = [x for x in stored_xcom_values(session, dag_ids, run_ids)]
        rendered = [r for r in stored_rendered_fields(session, dag_ids, run_ids)]
    assert {t for _, t, _ in xcoms} >= {"send_voice_code", "wait_for_delivery", "check_balance"}
    assert {t for _, t, _ in rendered} >= {"send_voice_code", "wait_for_delivery", "check_balance"}
    for kind, rows in (("XCom", xcoms), ("rendered fields", rendered)):
        for dag_id, task_id, text in rows:
            where = f"{kind} of {dag_id}.{task_id}"
            assert scan.leaks(text) == [], f"credentials in {where}"
            assert full_numbers(text, DAG_NUMBERS) == [], f"full numbers in {where}: {text[:300]}"
            assert not (codes_re and codes_re.search(text)), f"a one-time code in {where}: {text[:300]}"
    send_fields = [t for d, task, t in rendered if task == "send_voice_code"]
    assert all("***" in t and "139****" in t for t in send_fields), send_fields

    # -- credentials: nowhere in the metadata DB or the ledger
    from airflow_provider_smscn.hooks.smscn import ledger_url

    assert scan.leaks(dump_sqlite(metadata_db_url())) == []
    assert scan.leaks(dump_sqlite(ledger_url())) == []


def metadata_db_url() -> str:
    from airflow_provider_smscn._compat import conf

    return conf.get("database", "sql_alchemy_conn")

