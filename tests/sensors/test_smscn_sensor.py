"""SmsCnDeliverySensor in poke, reschedule and deferrable mode, and 20 waiters on one account."""

from __future__ import annotations

import itertools
import multiprocessing
import os
import time

import pendulum
import pytest

from airflow_provider_smscn._compat import DAG
from airflow_provider_smscn.operators.smscn import SmsCnSendVoiceCodeOperator
from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor
from tests.support.airflow_dags import run_dag, task_states, xcom_of

NUMBERS = ["13900008888", "13900008889", "13900008890"]
_ids = itertools.count()


def send_and_wait_dag(**sensor_kwargs):
    with DAG(dag_id=f"test_sensor_{next(_ids)}", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
             catchup=False) as dag:
        send = SmsCnSendVoiceCodeOperator(task_id="send", mobiles=NUMBERS, template_id="700001",
                                          variables={"code": "1234"})
        SmsCnDeliverySensor(task_id="wait", mobileids=send.output, poke_interval=0.2, pull_interval=0.2,
                            timeout=60, **sensor_kwargs)
    return dag


@pytest.mark.parametrize("mode", [{"mode": "poke"}, {"mode": "reschedule"}, {"deferrable": True}])
def test_all_delivered_returns_the_reports_with_numbers_masked(smscn_sandbox, mode):
    smscn_sandbox.state.report_delay = 0.3
    run = run_dag(send_and_wait_dag(**mode))
    assert task_states(run) == {"send": "success", "wait": "success"}
    reports = xcom_of(run, "wait")
    assert set(reports) == set(xcom_of(run, "send"))
    assert sorted(r["mobile"] for r in reports.values()) == ["139****8888", "139****8889", "139****8890"]
    assert all(r["delivered"] and r["resultcode"] == 100 for r in reports.values())


@pytest.mark.parametrize("mode", [{"mode": "poke"}, {"deferrable": True}])
def test_an_undelivered_call_fails_with_its_masked_number_and_meaning(smscn_sandbox, mode, caplog, capfd):
    smscn_sandbox.set_account(outcome_by_mobile={"13900008889": 133}, report_delay=0.1)
    run = run_dag(send_and_wait_dag(**mode))
    assert task_states(run) == {"send": "success", "wait": "failed"}
    out = capfd.readouterr()
    text = caplog.text + out.out + out.err
    assert "1 of 3 voice call(s) not delivered: 139****8889" in text
    assert "133 phone powered off" in text


def test_accept_undelivered_succeeds_and_reports_the_outcome(smscn_sandbox):
    smscn_sandbox.set_account(outcome_by_mobile={"13900008889": 131}, report_delay=0.1)
    run = run_dag(send_and_wait_dag(accept_undelivered=True))
    assert task_states(run) == {"send": "success", "wait": "success"}
    outcomes = {r["mobile"]: r["resultcode"] for r in xcom_of(run, "wait").values()}
    assert outcomes["139****8889"] == 131


def test_bad_message_ids_fail_before_any_pull(smscn_sandbox):
    with DAG(dag_id=f"test_sensor_{next(_ids)}", schedule=None,
             start_date=pendulum.datetime(2026, 1, 1)) as dag:
        SmsCnDeliverySensor(task_id="wait", mobileids="12,abc", poke_interval=0.1, timeout=5)
    run = run_dag(dag)
    assert task_states(run) == {"wait": "failed"}
    assert smscn_sandbox.stats()["requests"]["status"] == 0


# -- 20 waiters in separate processes on one account -----------------------------------------------

def _waiter(conn_json: str, ledger_url: str, ids: list[str], interval: float, out) -> None:
    os.environ["AIRFLOW_CONN_SMSCN_DEFAULT"] = conn_json
    os.environ["AIRFLOW__SMSCN__LEDGER_URL"] = ledger_url
    sensor = SmsCnDeliverySensor(task_id="wait", mobileids=ids, pull_interval=interval)
    deadline = time.monotonic() + 120  # a bound, not a measure: 21 processes share 2 cores
    while time.monotonic() < deadline:
        result = sensor.poke({})
        if result:
            out.put(sorted(result.xcom_value))
            return
        time.sleep(0.05)
    out.put([])


def _twenty_waiters(sandbox, ledger_url: str) -> None:
    sandbox.set_account(max_reports_per_pull=50, report_delay=0.2, rate_limit_per_second=10000)
    numbers = [f"1370000{i:04d}" for i in range(200)]
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    ids = SmsCnHook().send_voice_code(numbers, "700001", {"code": "5"}).mobileids
    interval = 1.0
    ctx = multiprocessing.get_context("spawn")
    out = ctx.Queue()
    conn = sandbox.connection_json()
    procs = [ctx.Process(target=_waiter, args=(conn, ledger_url, ids[i::20], interval, out))
             for i in range(20)]
    for p in procs:
        p.start()
    got = [out.get(timeout=300) for _ in procs]  # 20 spawned interpreters import Airflow first
    for p in procs:
        p.join(timeout=30)
    assert sorted(i for chunk in got for i in chunk) == sorted(ids)  # no report lost, none twice
    pulls = sorted(sandbox.stats()["status_pulls"])
    assert len(pulls) >= 4  # 200 reports at 50 a pull
    gaps = [b - a for a, b in itertools.pairwise(pulls)]
    # At most one pull per interval, 20 waiters or not. The lease is granted at least `interval`
    # apart; the sandbox sees the requests a scheduling jitter later (2 cores, 21 processes).
    assert min(gaps) >= interval - 0.25, gaps


def test_twenty_waiters_in_processes_lose_nothing_and_pull_once_per_interval_sqlite(smscn_sandbox, tmp_path):
    _twenty_waiters(smscn_sandbox, f"sqlite:///{tmp_path}/ledger.db")


@pytest.mark.postgres
def test_twenty_waiters_in_processes_lose_nothing_and_pull_once_per_interval_postgres(smscn_sandbox, pg_url):
    _twenty_waiters(smscn_sandbox, pg_url)


# -- the ledger failing right after a pull; a rotated secret -----------------------------------------

def test_a_locked_ledger_right_after_a_pull_makes_the_sensor_poke_again_and_loses_nothing(
        smscn_sandbox, monkeypatch, tmp_path, caplog):
    """Case 6: today the poke raises OperationalError (the task fails) and the pulled batch is gone."""
    from tests.support.report_sources import ledger_locked_after_a_pull

    hook, ids, lock = ledger_locked_after_a_pull(monkeypatch, tmp_path, smscn_sandbox, NUMBERS)
    sensor = SmsCnDeliverySensor(task_id="wait", mobileids=ids, pull_interval=0)
    try:
        assert sensor.poke({}) is False  # the ledger failed: poke again, do not fail the task
        assert sensor.poke({}) is False  # still locked
    finally:
        lock.close()
    result = sensor.poke({})
    assert result and sorted(result.xcom_value) == sorted(ids)
    assert smscn_sandbox.stats()["reports_pulled"] == 3
    rows, _ = hook.ledger.get_reports_after(hook.account_key, 0)
    assert sorted(r.mobileid for _i, r in rows) == sorted(ids)  # none lost, none twice
    assert not any(n in caplog.text for n in NUMBERS)


def test_a_rotated_secret_is_read_afresh_before_a_poking_sensor_fails(smscn_sandbox, monkeypatch):
    """Case 7 for the sensor: a poke-mode sensor holds its hook; a refusal re-reads the Connection once."""
    smscn_sandbox.set_account(report_delay=0)
    sensor = SmsCnDeliverySensor(task_id="wait", mobileids=["12345678901234567890"], pull_interval=0)
    assert sensor.poke({}) is False  # the hook is built and cached
    smscn_sandbox.set_account(secret_key="rotated-secret-0123456789")
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", smscn_sandbox.connection_json())
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    SmsCnHook().send_voice_code(["13900008888"], "700001", {"code": "1"}, mobileids=["12345678901234567890"])
    result = sensor.poke({})
    assert result and list(result.xcom_value) == ["12345678901234567890"]


def test_a_refusal_with_the_connection_read_afresh_fails_the_poking_sensor(smscn_sandbox):
    from airflow_provider_smscn._compat import AirflowFailException

    smscn_sandbox.inject_fault("stat", code=101)
    sensor = SmsCnDeliverySensor(task_id="wait", mobileids=["12345678901234567890"], pull_interval=0)
    with pytest.raises(AirflowFailException, match="101"):
        sensor.poke({})


def test_a_backlog_of_a_thousand_reports_is_in_after_one_poke(smscn_sandbox, monkeypatch, tmp_path):
    """Case 11: today one poke pulls once (100 reports); the rest waits 9 more pull intervals."""
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    # a ledger of its own: in the session's shared one, an earlier test's sandbox on the same port
    # (the same account key) may have pulled within the hour this sensor's lease interval spans
    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", f"sqlite:///{tmp_path}/ledger.db")

    smscn_sandbox.set_account(report_delay=0, rate_limit_per_second=None)
    numbers = [f"1380000{i:04d}" for i in range(1000)]
    ids = SmsCnHook().send_voice_code(numbers, "700001", {"code": "1"}).mobileids
    sensor = SmsCnDeliverySensor(task_id="wait", mobileids=ids, pull_interval=3600)
    result = sensor.poke({})
    assert result and len(result.xcom_value) == 1000
    assert smscn_sandbox.stats()["requests"]["status"] == 11  # 10 full pulls back to back, 1 short


def test_a_deferring_sensor_tells_its_trigger_which_ledger_it_used(smscn_sandbox, monkeypatch, tmp_path):
    from airflow_provider_smscn.ledger import SmsCnLedger

    try:
        from airflow.sdk.exceptions import TaskDeferred
    except ImportError:  # Airflow 2.11
        from airflow.exceptions import TaskDeferred

    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", f"sqlite:///{tmp_path}/worker.db")
    smscn_sandbox.state.report_delay = 3600
    sensor = SmsCnDeliverySensor(task_id="wait", mobileids=["12345678901234567890"], deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute({})
    ledger_id = SmsCnLedger(f"sqlite:///{tmp_path}/worker.db").ledger_id()
    assert deferred.value.trigger.serialize()[1]["ledger_id"] == ledger_id
