"""No silent split: a ledger that workers on other hosts cannot share fails the first task that needs it.

Real Airflow runs (``dag.test()``) with ``[core] executor`` set to a remote executor and
``[smscn] ledger_url`` unset: the send operator and both sensor modes fail at once, without
Airflow retries, before any call is placed or any report pulled; the trigger ends in an error
event. ``[smscn] ledger_single_host = True`` keeps the local file working for one host.
"""

from __future__ import annotations

import itertools
from datetime import timedelta

import pendulum
import pytest

from airflow_provider_smscn._compat import AIRFLOW_V_3, DAG, AirflowFailException
from airflow_provider_smscn.hooks.smscn import SmsCnHook, SmsCnLedgerNotSharedFailure, ledger_verdict
from airflow_provider_smscn.operators.smscn import SmsCnSendVoiceCodeOperator
from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor
from airflow_provider_smscn.triggers.smscn import SmsCnDeliveryTrigger, forget_hook
from tests.support.airflow_dags import run_dag, task_states, xcom_of

NUMBERS = ["13900007701", "13900007702"]
IDS = ["12345678901234567890"]
_ids = itertools.count()


@pytest.fixture
def celery_without_ledger_url(monkeypatch, tmp_path):
    """This process configured as one host of a CeleryExecutor deployment, ``ledger_url`` unset."""
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "CeleryExecutor")
    monkeypatch.delenv("AIRFLOW__SMSCN__LEDGER_URL", raising=False)
    if not AIRFLOW_V_3:
        # 2.11's dag.test() refuses CeleryExecutor over the test's SQLite metadata DB although it runs
        # every task in-process: let it through, the tasks still read [core] executor = CeleryExecutor
        from airflow.executors.executor_loader import ExecutorLoader

        monkeypatch.setattr(ExecutorLoader, "validate_database_executor_compatibility",
                            classmethod(lambda cls, executor: None))
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    forget_hook("smscn_default")
    _forget_executors()
    yield tmp_path
    forget_hook("smscn_default")
    _forget_executors()  # else the next tests' runs still see CeleryExecutor (2.11 caches it)


def _forget_executors() -> None:
    """Drop the executor names Airflow's loader cached from ``[core] executor`` (module globals)."""
    from airflow.executors import executor_loader

    for name in ("_executor_names", "_alias_to_executors", "_module_to_executors",
                 "_classname_to_executors", "_loaded_executors"):
        cache = getattr(executor_loader, name, None)
        if hasattr(cache, "clear"):
            cache.clear()


def _dag() -> DAG:
    return DAG(dag_id=f"test_ledger_guard_{next(_ids)}", schedule=None, catchup=False,
               start_date=pendulum.datetime(2026, 1, 1),
               default_args={"retries": 3, "retry_delay": timedelta(seconds=0)})


def test_the_hook_refuses_a_per_host_ledger_naming_the_setting(celery_without_ledger_url):
    with pytest.raises(SmsCnLedgerNotSharedFailure) as err:
        SmsCnHook().ledger  # noqa: B018
    assert isinstance(err.value, AirflowFailException)  # Airflow does not retry it
    text = str(err.value)
    for words in ("[smscn] ledger_url", "AIRFLOW__SMSCN__LEDGER_URL", "CeleryExecutor",
                  f"{celery_without_ledger_url}/smscn_ledger.db", "ledger_single_host"):
        assert words in text
    assert not (celery_without_ledger_url / "smscn_ledger.db").exists()  # nothing written on the way


def test_send_and_both_sensor_modes_fail_at_once_without_calling_or_pulling(
        smscn_sandbox, celery_without_ledger_url):
    smscn_sandbox.state.report_delay = 0
    # a call placed earlier, its report ready: a sensor with a usable ledger would succeed at once
    ids = SmsCnHook().send_voice_code(["13900007700"], "700001", {"code": "1"}).mobileids
    with _dag() as dag:
        SmsCnSendVoiceCodeOperator(task_id="send", mobiles=NUMBERS, template_id="700001",
                                   variables={"code": "1"})
        SmsCnDeliverySensor(task_id="wait_reschedule", mobileids=ids, mode="reschedule", poke_interval=1,
                            timeout=30)
        SmsCnDeliverySensor(task_id="wait_deferred", mobileids=ids, deferrable=True, poke_interval=1,
                            timeout=30)
    run = run_dag(dag)
    assert task_states(run) == {"send": "failed", "wait_reschedule": "failed", "wait_deferred": "failed"}
    from tests.support.airflow_dags import create_session

    with create_session() as session:
        tries = {ti.task_id: ti.try_number for ti in run.get_task_instances(session=session)}
    assert set(tries.values()) == {1}, f"retried although no retry can help: {tries}"
    stats = smscn_sandbox.stats()
    assert stats["calls_placed"] == 1 and stats["requests"]["status"] == 0  # only the call made above
    assert stats["reports_pending"] == 1  # still at the vendor: nobody pulled it into a per-host file


def test_single_host_keeps_a_local_file_working(smscn_sandbox, celery_without_ledger_url, monkeypatch):
    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_SINGLE_HOST", "True")
    smscn_sandbox.state.report_delay = 0
    with _dag() as dag:
        send = SmsCnSendVoiceCodeOperator(task_id="send", mobiles=NUMBERS, template_id="700001",
                                          variables={"code": "1"})
        send >> SmsCnDeliverySensor(task_id="wait", mobileids=send.output, poke_interval=1, timeout=60)
    run = run_dag(dag)
    assert task_states(run) == {"send": "success", "wait": "success"}
    assert len(xcom_of(run, "wait")) == 2
    assert (celery_without_ledger_url / "smscn_ledger.db").exists()


async def test_the_trigger_ends_in_an_error_event_naming_the_setting(smscn_sandbox,
                                                                    celery_without_ledger_url):
    trigger = SmsCnDeliveryTrigger(mobileids=IDS, poll_interval=0.1, pull_interval=0)
    events = [event async for event in trigger.run()]
    assert [e.payload["status"] for e in events] == ["error"]
    assert "AIRFLOW__SMSCN__LEDGER_URL" in events[0].payload["message"]
    assert smscn_sandbox.stats()["requests"]["status"] == 0


def test_the_verdict_reads_airflow_config(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", f"sqlite:///{tmp_path}/l.db")
    assert ledger_verdict().shared
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor,KubernetesExecutor")
    verdict = ledger_verdict()
    assert not verdict.shared and f"[smscn] ledger_url = sqlite:///{tmp_path}/l.db" in verdict.message()


def test_a_kubernetes_executor_pod_is_not_taken_for_a_local_host(monkeypatch, tmp_path):
    # review 9: KubernetesExecutor pod templates commonly set AIRFLOW__CORE__EXECUTOR=LocalExecutor
    # inside the task pod (`airflow generate_pod_template`, many charts); Airflow's pod generator marks
    # every such pod with AIRFLOW_IS_K8S_EXECUTOR_POD=True. Each pod's SQLite file is its own.
    monkeypatch.setenv("AIRFLOW__CORE__EXECUTOR", "LocalExecutor")
    monkeypatch.setenv("AIRFLOW_IS_K8S_EXECUTOR_POD", "True")
    monkeypatch.delenv("AIRFLOW__SMSCN__LEDGER_URL", raising=False)
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    verdict = ledger_verdict()
    assert not verdict.shared, verdict.message()
