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
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

import pendulum
import pytest

from airflow_provider_smscn.sandbox import Sandbox
from airflow_provider_smscn.triggers.smscn import forget_hook
from tests.support.airflow_dags import create_session, example_dag_bag, reset_metadata_db, serialize_dags
from tests.support.leak_checks import (
    code_pattern,
    leak_account,
    stored_rendered_fields,
    stored_xcom_values,
)
from tests.support.secret_scan import SecretScan, full_numbers

REPO = Path(__file__).resolve().parents[2]
DAGS_FOLDER = REPO / "dags_examples"
AUTH_MODES = ("secret", "password", "api_password")
EXAMPLE_DAGS = ("smscn_send_and_wait", "smscn_balance_alert", "smscn_failure_alert", "smscn_trigger_form")
EVENT_EXAMPLES = ("smscn_deadline_call", "smscn_topup_reminder", "smscn_undelivered_retry")
FORM_NUMBERS = ["13912345601", "13912345602"]
#: Every number the example DAGs (and the form's conf below) call.
DAG_NUMBERS = ["13900008888", "13900008889", "13900008890", "13900001111", "13900002222", *FORM_NUMBERS]


#: Loggers captured at DEBUG: the provider, the HTTP stack under it and the task loggers (operator,
#: hook, sensor lines). Airflow's own modules stay at INFO, the level they run at in production:
#: at DEBUG, Airflow 2.11 logs every run's DagRun.conf (airflow.models.param), which for the
#: trigger form holds what the user typed, numbers and code included (see the report).
VERBOSE_LOGGERS = ("airflow_provider_smscn", "urllib3", "requests", "airflow.task", "py.warnings")


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
def metadata_db():
    reset_metadata_db()


@pytest.fixture
def dagbag(metadata_db):
    """The example DAGs, parsed afresh for each test: a notifier caches its hook (and so the
    connection of the run that first used it) for the life of the DAG object."""
    from airflow_provider_smscn._compat import AIRFLOW_V_3

    bag = example_dag_bag(str(DAGS_FOLDER))
    # every example is scanned here but the event-driven ones (asset watchers and a deadline alert),
    # which need a real triggerer: tests/triggers/test_events_airflow.py runs them; on 2.x they do
    # not parse at all (tests/dags_examples checks that they fail for their Airflow 3 name only)
    errors = sorted(Path(path).stem for path in bag.import_errors)
    assert errors == ([] if AIRFLOW_V_3 else sorted(EVENT_EXAMPLES)), bag.import_errors
    assert sorted(bag.dag_ids) == sorted(EXAMPLE_DAGS + (EVENT_EXAMPLES if AIRFLOW_V_3 else ()))
    for dag in bag.dags.values():
        for task in dag.tasks:
            if task.task_id == "wait_for_delivery":
                task.timeout = 60  # bounded: the examples wait up to 10 minutes
    serialize_dags(bag.dags.values())
    return bag


@pytest.fixture
def leak_sandbox(monkeypatch):
    forget_hook("smscn_default")  # each test has its own sandbox: no hook shared from the last
    with Sandbox(accounts=[leak_account()], report_delay=1.2, seed=11) as box:
        monkeypatch.setenv("AIRFLOW__SMSCN__PULL_INTERVAL", "1")
        yield box
    forget_hook("smscn_default")  # each test has its own sandbox: no hook shared from the last


def run(bag, dag_id: str, **kwargs):
    dag = bag.get_dag(dag_id)
    return dag.test(**kwargs)


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
            for row in db.execute(f'select * from "{table}"'):  # table names from sqlite_master
                parts.append(f"{table}: " + " | ".join(
                    v.decode("utf-8", "replace") if isinstance(v, bytes) else str(v) for v in row))
    return "\n".join(parts)


@dataclass
class Evidence:
    """What the runs left behind, as text."""

    logs: str = ""
    xcoms: list[tuple[str, str, str]] = field(default_factory=list)
    rendered: list[tuple[str, str, str]] = field(default_factory=list)
    stored: str = ""  # every row of the metadata DB and of the ledger


def run_and_collect(bag, plan, capfd, caplog) -> tuple[dict, Evidence]:
    """Run ``plan`` (name -> callable(bag) returning a DagRun) capturing every log line, then read
    the XComs, rendered fields and whole databases those runs left."""
    from airflow_provider_smscn.hooks.smscn import ledger_url

    collector = _Collect()
    root = logging.getLogger()
    root.addHandler(collector)
    caplog.set_level(logging.INFO)  # Airflow's own level in production
    for name in VERBOSE_LOGGERS:
        caplog.set_level(logging.DEBUG, logger=name)
    runs = {}
    try:
        for name, step in plan.items():
            runs[name] = step(bag)
    finally:
        root.removeHandler(collector)
    out, err = capfd.readouterr()
    run_ids = {r.run_id for r in runs.values()}
    dag_ids = {r.dag_id for r in runs.values()}
    logs = [*collector.lines, caplog.text, out, err, *log_files_of(run_ids).values()]
    evidence = Evidence(logs="\n".join(logs))
    with create_session() as session:
        evidence.xcoms = stored_xcom_values(session, dag_ids, run_ids)
        evidence.rendered = stored_rendered_fields(session, dag_ids, run_ids)
    evidence.stored = dump_sqlite(metadata_db_url()) + "\n" + dump_sqlite(ledger_url())
    return runs, evidence


def findings(evidence: Evidence, scan: SecretScan, numbers: list[str],
             codes: set[str]) -> dict[str, list[str]]:
    """Every leak found, keyed by where: credentials anywhere (logs, XCom, rendered fields, the
    databases); full numbers and one-time codes in the logs, XComs and rendered fields."""
    codes_re = code_pattern(codes)
    found: dict[str, list[str]] = {}

    def look(where: str, text: str, *, data: bool = True) -> None:
        hits = [f"credential {name}" for name in scan.leaks(text)]
        if data:
            hits += [f"number {n}" for n in full_numbers(text, numbers)]
            hits += [f"code {c}" for c in (codes_re.findall(text) if codes_re else [])]
        if hits:
            found[where] = sorted(set(hits))

    look("logs", evidence.logs)
    for kind, rows in (("XCom", evidence.xcoms), ("rendered fields", evidence.rendered)):
        for dag_id, task_id, text in rows:
            look(f"{kind} of {dag_id}.{task_id}", text)
    look("metadata DB and ledger", evidence.stored, data=False)
    return found


def dag_run(dag_id: str, **kwargs):
    return lambda bag: bag.get_dag(dag_id).test(**kwargs)


def state_of(run) -> str:
    return str(getattr(run.state, "value", run.state))


@pytest.mark.parametrize("auth", AUTH_MODES)
def test_example_dags_leak_no_secret_number_or_code(dagbag, leak_sandbox, monkeypatch, capfd, caplog, auth):
    box = leak_sandbox
    scan = SecretScan()
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", box.connection_json(auth=auth))
    form_code = f"{random.SystemRandom().randrange(100000, 1000000)}"

    def low_balance(bag):  # under min_balance 1000: the check fails and its notifier calls
        box.set_account(balance=900)
        try:
            return bag.get_dag("smscn_balance_alert").test()
        finally:
            box.set_account(balance=100000)

    runs, evidence = run_and_collect(dagbag, {
        "send_and_wait": dag_run("smscn_send_and_wait"),
        "balance_ok": dag_run("smscn_balance_alert"),
        "balance_low": low_balance,
        "failure_alert": dag_run("smscn_failure_alert"),
        "trigger_form": dag_run("smscn_trigger_form", run_conf={
            "mobiles": ",".join(FORM_NUMBERS), "template_id": "700001",
            "variables": {"code": form_code}, "wait": True}),
    }, capfd, caplog)

    # the runs did what the examples promise, so the scan looks at real traffic
    states = {name: state_of(r) for name, r in runs.items()}
    assert states == {"send_and_wait": "success", "balance_ok": "success", "balance_low": "failed",
                      "failure_alert": "success", "trigger_form": "success"}, states
    calls = box.calls()
    assert [c["mobile"] for c in calls] == ["13900008888", "13900008889", "13900008890", "13900001111",
                                            "13900002222", *FORM_NUMBERS]
    codes = {str(v) for c in calls for v in c["variables"].values()}
    assert form_code in codes and len(codes) >= 4, codes
    assert box.stats()["requests"]["status"] >= 2  # the sensors and their deferred triggers pulled

    # positive controls: the capture saw the masked numbers, the rows exist, the fields are hidden
    assert "139****8888" in evidence.logs and "139****5601" in evidence.logs
    xcom_tasks = {task for _, task, _ in evidence.xcoms}
    assert xcom_tasks >= {"send_voice_code", "wait_for_delivery", "check_balance"}, xcom_tasks
    assert {task for _, task, _ in evidence.rendered} >= {"send_voice_code", "wait_for_delivery"}
    send_fields = [text for _, task, text in evidence.rendered if task == "send_voice_code"]
    assert len(send_fields) == 2 and all("***" in t and "139****" in t for t in send_fields), send_fields

    assert findings(evidence, scan, DAG_NUMBERS, codes) == {}


def test_the_scan_finds_planted_leaks(dagbag, leak_sandbox, monkeypatch, capfd, caplog):
    """The scan is not blind: unmask the numbers and codes where the provider masks them, and log
    the credentials, and each place is reported."""
    from airflow_provider_smscn import delivery
    from airflow_provider_smscn.hooks.smscn import SmsCnHook
    from airflow_provider_smscn.operators import masked
    from tests.support.secret_scan import LEAK_PASSWORD

    box = leak_sandbox
    scan = SecretScan()
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", box.connection_json(auth="secret"))
    monkeypatch.setattr(masked, "masked_view", lambda value, kind: value)
    monkeypatch.setattr(delivery, "report_payload", lambda report: report.to_dict())
    real_send = SmsCnHook.send_voice_code

    def leaky_send(self, mobiles, template_id, variables, mobileids=None):
        logging.getLogger("canary").info("sending to %s with %s", mobiles, variables)
        print(f"password is {LEAK_PASSWORD}")  # stdout must be scanned too
        return real_send(self, mobiles, template_id, variables, mobileids)

    monkeypatch.setattr(SmsCnHook, "send_voice_code", leaky_send)
    runs, evidence = run_and_collect(dagbag, {"send_and_wait": dag_run("smscn_send_and_wait")}, capfd, caplog)
    assert state_of(runs["send_and_wait"]) == "success"
    codes = {str(v) for c in box.calls() for v in c["variables"].values()}
    found = findings(evidence, scan, DAG_NUMBERS, codes)
    code = next(iter(codes))
    assert {"credential password", "number 13900008888", f"code {code}"} <= set(found["logs"]), found
    assert "number 13900008888" in found["XCom of smscn_send_and_wait.wait_for_delivery"], found
    assert {"number 13900008888", f"code {code}"} <= set(
        found["rendered fields of smscn_send_and_wait.send_voice_code"]), found


MAPPED_NUMBERS = ["13912345701", "13912345702", "13912345703"]


def test_plain_and_mapped_sends_leak_no_number_or_code(metadata_db, leak_sandbox, monkeypatch, capfd, caplog):
    """Mapped operators are built and rendered by other paths than plain ones: neither may store
    or show a full number or the code (rendered fields, XCom, logs)."""
    from airflow_provider_smscn._compat import DAG
    from airflow_provider_smscn.operators.smscn import SmsCnSendVoiceCodeOperator

    box = leak_sandbox
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", box.connection_json(auth="secret"))
    code = f"{random.SystemRandom().randrange(100000, 1000000)}"
    with DAG(dag_id="smscn_leak_mapped", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
             catchup=False, params={"code": code, "first": MAPPED_NUMBERS[0]}) as dag:
        SmsCnSendVoiceCodeOperator(task_id="plain", mobiles="{{ params.first }}", template_id="700001",
                                   variables={"code": "{{ params.code }}"})
        SmsCnSendVoiceCodeOperator.partial(
            task_id="mapped", template_id="700001", variables={"code": "{{ params.code }}"},
        ).expand(mobiles=[[n] for n in MAPPED_NUMBERS[1:]])
        SmsCnSendVoiceCodeOperator.partial(
            task_id="mapped_kwargs", template_id="700001",
        ).expand_kwargs([{"mobiles": "{{ params.first }}", "variables": {"code": code}}])
    serialize_dags([dag])
    runs, evidence = run_and_collect(None, {"mapped": lambda _bag: dag.test()}, capfd, caplog)
    assert state_of(runs["mapped"]) == "success"
    calls = box.calls()
    assert sorted(c["mobile"] for c in calls) == sorted([MAPPED_NUMBERS[0], *MAPPED_NUMBERS])
    assert {str(v) for c in calls for v in c["variables"].values()} == {code}

    # positive controls: one rendered-fields row per task instance (3 mapped), masked values in them
    rows = [(task, text) for _, task, text in evidence.rendered]
    assert sorted(task for task, _ in rows) == ["mapped", "mapped", "mapped_kwargs", "plain"], rows
    assert all("***" in text and "139****57" in text for _, text in rows), rows
    assert {task for _, task, _ in evidence.xcoms} >= {"plain", "mapped", "mapped_kwargs"}
    assert "139****5701" in evidence.logs

    assert findings(evidence, SecretScan(), MAPPED_NUMBERS, {code}) == {}


def metadata_db_url() -> str:
    from airflow_provider_smscn._compat import conf

    return conf.get("database", "sql_alchemy_conn")
