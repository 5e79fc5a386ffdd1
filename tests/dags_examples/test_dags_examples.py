"""Every example DAG imports only public names, and runs green with ``dag.test()`` against the sandbox.

The examples are what users copy, so they import what a user writes on Airflow 3
(``from airflow.sdk import DAG, Param, task``). The Airflow 2.11 leg runs these same files and
tests: ``example_dag_bag`` parses them with a stand-in ``airflow.sdk`` module (tests only, present
during the parse only) that maps those three names to their 2.11 homes; see tests/support/airflow_dags.py.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.airflow_dags import ensure_metadata_db, example_dag_bag, task_states, xcom_of

EXAMPLES = Path(__file__).resolve().parents[2] / "dags_examples"
#: The snippets the docs include (examples/): users copy these too.
SNIPPETS = Path(__file__).resolve().parents[2] / "examples"
DAG_IDS = ["smscn_send_and_wait", "smscn_balance_alert", "smscn_trigger_form", "smscn_failure_alert"]
#: Examples of Airflow 3 features (asset watchers, deadline alerts): run in a real triggerer by
#: tests/triggers/test_events_airflow.py; on 2.x their Airflow names do not exist.
AIRFLOW3_EXAMPLES = {"smscn_undelivered_retry": "Asset", "smscn_topup_reminder": "Asset",
                     "smscn_deadline_call": "AsyncCallback"}


@pytest.fixture(scope="module")
def bag():
    ensure_metadata_db()
    return example_dag_bag(str(EXAMPLES))


def test_examples_import_only_public_names():
    """No private module or name (``_compat``, ``_x``) and Airflow names only from ``airflow.sdk``.

    The DAGs import Airflow names from ``airflow.sdk`` itself; the snippets of examples/ may also
    use its public submodules (``airflow.sdk.exceptions``).
    """
    paths = sorted(EXAMPLES.glob("*.py")) + sorted(SNIPPETS.glob("*.py"))
    assert len(paths) > len(list(EXAMPLES.glob("*.py")))  # the snippets are scanned too
    for path in paths:
        dag = path.parent == EXAMPLES
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                modules = [(alias.name, [alias.name.rsplit(".", 1)[-1]]) for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [(node.module or "", [alias.name for alias in node.names])]
            else:
                continue
            for module, names in modules:
                private = [p for p in (*module.split("."), *names) if p.startswith("_") and p != "__future__"]
                assert not private, f"{path.name} imports the private {private} from {module}"
                if module.split(".")[0] == "airflow":
                    public = module == "airflow.sdk" or (not dag and module.startswith("airflow.sdk."))
                    assert public, f"{path.name} imports {names} from {module}"


def test_every_example_imports_without_errors(bag):
    from airflow_provider_smscn._compat import AIRFLOW_V_3

    if AIRFLOW_V_3:
        assert bag.import_errors == {}
        assert sorted(bag.dag_ids) == sorted(DAG_IDS + list(AIRFLOW3_EXAMPLES))
        return
    # 2.x: only the Airflow 3 examples fail, each for the Airflow 3 name it uses (not for ours)
    errors = {Path(path).stem: text for path, text in bag.import_errors.items()}
    assert sorted(errors) == sorted(AIRFLOW3_EXAMPLES)
    for stem, name in AIRFLOW3_EXAMPLES.items():
        assert f"cannot import name '{name}'" in errors[stem], errors[stem]
    assert sorted(bag.dag_ids) == sorted(DAG_IDS)


def _run(bag, dag_id, monkeypatch, **kwargs):
    monkeypatch.setenv("AIRFLOW__SMSCN__PULL_INTERVAL", "0.2")
    return bag.get_dag(dag_id).test(**kwargs)


def test_send_and_wait_delivers_every_call(bag, smscn_sandbox, monkeypatch):
    smscn_sandbox.state.report_delay = 0.3
    run = _run(bag, "smscn_send_and_wait", monkeypatch)
    assert run.state == "success"
    reports = xcom_of(run, "wait_for_delivery")
    assert len(reports) == 3 and all(r["delivered"] for r in reports.values())
    codes = {c["variables"]["code"] for c in smscn_sandbox.calls()}
    assert len(codes) == 1 and next(iter(codes)).isdigit() and len(next(iter(codes))) == 6


def test_balance_alert_returns_the_balance(bag, smscn_sandbox, monkeypatch):
    run = _run(bag, "smscn_balance_alert", monkeypatch)
    assert run.state == "success"
    assert xcom_of(run, "check_balance") == 100000
    assert smscn_sandbox.calls() == []  # no alert: the balance is fine


def test_balance_alert_phones_when_the_balance_runs_low(bag, smscn_sandbox, monkeypatch):
    smscn_sandbox.set_account(balance=500)
    run = _run(bag, "smscn_balance_alert", monkeypatch)
    assert run.state == "failed"
    assert [c["mobile"] for c in smscn_sandbox.calls()] == ["13900001111"]


def test_trigger_form_sends_and_waits_with_the_form_values(bag, smscn_sandbox, monkeypatch):
    smscn_sandbox.state.report_delay = 0.2
    run = _run(bag, "smscn_trigger_form", monkeypatch,
               run_conf={"mobiles": "13900005555,13900006666", "variables": {"code": "777888"}, "wait": True})
    assert run.state == "success"
    assert task_states(run)["wait_for_delivery"] == "success"
    calls = smscn_sandbox.calls()
    assert [c["mobile"] for c in calls] == ["13900005555", "13900006666"]
    assert all(c["variables"] == {"code": "777888"} for c in calls)


def test_trigger_form_can_skip_the_wait(bag, smscn_sandbox, monkeypatch):
    run = _run(bag, "smscn_trigger_form", monkeypatch,
               run_conf={"mobiles": "13900007777", "variables": {"code": "1"}, "wait": False})
    assert run.state == "success"
    assert task_states(run)["wait_for_delivery"] == "skipped"
    assert [c["mobile"] for c in smscn_sandbox.calls()] == ["13900007777"]


def test_failure_alert_phones_and_the_run_stays_green(bag, smscn_sandbox, monkeypatch):
    run = _run(bag, "smscn_failure_alert", monkeypatch)
    assert run.state == "success"
    assert task_states(run) == {"critical_job": "failed", "report": "success"}
    assert [c["mobile"] for c in smscn_sandbox.calls()] == ["13900002222"]
