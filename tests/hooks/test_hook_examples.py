"""examples/hook_tasks.py, shown in docs/hook.md, run for real against the sandbox."""

from __future__ import annotations

from pathlib import Path

from tests.support.airflow_dags import ensure_metadata_db, example_dag_bag, run_dag, task_states, xcom_of

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "hook_tasks.py"


def test_hook_tasks_example_runs_green(smscn_sandbox):
    ensure_metadata_db()
    bag = example_dag_bag(str(EXAMPLE))
    assert bag.import_errors == {}
    run = run_dag(bag.get_dag("smscn_hook_tasks"))
    assert run.state == "success", task_states(run)
    assert xcom_of(run, "balance") == 100000
    calls = smscn_sandbox.calls()
    assert [c["mobile"] for c in calls] == ["13900008888", "13900008889"]
    assert xcom_of(run, "call_once") == [c["mobileid"] for c in calls]
