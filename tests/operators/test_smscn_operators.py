"""The send, balance and sent-records operators in real Airflow runs against the sandbox."""

from __future__ import annotations

import itertools
from datetime import timedelta

import pendulum
import pytest

from airflow_provider_smscn._compat import DAG, AirflowFailException
from airflow_provider_smscn.operators.smscn import (
    SmsCnBalanceCheckOperator,
    SmsCnQuerySentRecordsOperator,
    SmsCnSendVoiceCodeOperator,
)
from tests.support.airflow_dags import run_dag, task_states, xcom_of
from tests.support.connections import use_connection
from tests.support.send_workers import crash_before_request, execute_send, send_operator, task_context

NUMBERS = ["13900008888", "13900008889", "13900008890"]
_ids = itertools.count()


def make_dag(**default_args):
    return DAG(dag_id=f"test_ops_{next(_ids)}", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
               catchup=False, default_args=default_args)


def run_send(retries: int, mobiles: list[str], **kwargs):
    """One run of a DAG whose one task, ``send``, sends to ``mobiles`` (``retries`` immediate retries)."""
    with make_dag(retries=retries, retry_delay=timedelta(seconds=0)) as dag:
        SmsCnSendVoiceCodeOperator(task_id="send", mobiles=mobiles, template_id="700001", **kwargs)
    return run_dag(dag)


def test_send_returns_one_id_per_number_in_order_and_hides_codes(smscn_sandbox):
    with make_dag() as dag:
        SmsCnSendVoiceCodeOperator(task_id="send", mobiles=",".join(NUMBERS), template_id="700001",
                                   variables={"code": "{{ '4' ~ '81516' }}"})
    run = run_dag(dag)
    assert task_states(run) == {"send": "success"}
    ids = xcom_of(run, "send")
    calls = smscn_sandbox.calls()
    assert [c["mobile"] for c in calls] == NUMBERS
    assert ids == [c["mobileid"] for c in calls]
    assert all(c["variables"] == {"code": "481516"} for c in calls)
    assert all(NUMBERS[0] not in i for i in ids)


def test_large_lists_go_out_in_chunks_under_the_limit(smscn_sandbox):
    numbers = [f"1390000{i:04d}" for i in range(25)]
    with make_dag() as dag:
        SmsCnSendVoiceCodeOperator(task_id="send", mobiles=numbers, template_id="700001",
                                   variables={"code": "1234"}, chunk_size=10)
    run = run_dag(dag)
    assert task_states(run) == {"send": "success"}
    assert smscn_sandbox.stats()["requests"]["sendcode"] == 3
    assert len(xcom_of(run, "send")) == 25
    assert [c["mobile"] for c in smscn_sandbox.calls()] == numbers


def test_errors_retrying_cannot_help_fail_without_airflow_retries(smscn_sandbox):
    with make_dag(retries=3, retry_delay=timedelta(seconds=0)) as dag:
        SmsCnSendVoiceCodeOperator(task_id="bad_template", mobiles=NUMBERS[:1], template_id="799999",
                                   variables={"code": "1"})
        SmsCnSendVoiceCodeOperator(task_id="bad_number", mobiles=["12345"], template_id="700001",
                                   variables={"code": "1"})
    run = run_dag(dag)
    assert task_states(run) == {"bad_template": "failed", "bad_number": "failed"}
    assert smscn_sandbox.stats()["requests"]["sendcode"] == 1  # one try: 163 is final; the number never left


def test_retry_after_a_timeout_once_the_vendor_accepted_places_no_second_call(smscn_sandbox, monkeypatch):
    smscn_sandbox.state.report_delay = 0
    use_connection(monkeypatch, smscn_sandbox, timeout=1)
    monkeypatch.setenv("AIRFLOW__SMSCN__PULL_INTERVAL", "0")
    smscn_sandbox.inject_fault("delay_after", ms=2500, action="sendcode", count=1)
    run = run_send(2, NUMBERS[:2], variables={"code": "2718"})
    assert task_states(run) == {"send": "success"}
    calls = smscn_sandbox.calls()
    assert [c["mobile"] for c in calls] == NUMBERS[:2]  # each number called exactly once
    assert smscn_sandbox.stats()["requests"]["sendcode"] == 1  # the retry sent nothing
    assert xcom_of(run, "send") == [c["mobileid"] for c in calls]


def test_a_lost_reply_the_vendor_took_is_proven_and_not_called_again(smscn_sandbox, monkeypatch):
    smscn_sandbox.state.report_delay = 3600  # no report in time: the sent record (ac=query) proves it
    use_connection(monkeypatch, smscn_sandbox, timeout=1)
    smscn_sandbox.inject_fault("delay_after", ms=2500, action="sendcode", count=1)
    run = run_send(1, NUMBERS[:1], variables={"code": "1"}, proof_timeout=5)
    assert task_states(run) == {"send": "success"}
    calls = smscn_sandbox.calls()
    assert len(calls) == 1
    assert xcom_of(run, "send") == [calls[0]["mobileid"]]


@pytest.mark.parametrize("resend", [False, True])
def test_numbers_without_proof_fail_the_task_unless_resend_uncertain(smscn_sandbox, monkeypatch, resend):
    use_connection(monkeypatch, smscn_sandbox, timeout=1)
    monkeypatch.setenv("AIRFLOW__SMSCN__PULL_INTERVAL", "0.2")
    smscn_sandbox.inject_fault("drop", action="sendcode", count=1)  # lost before the vendor saw it
    run = run_send(3, NUMBERS[:1], variables={"code": "1"}, resend_uncertain=resend, proof_timeout=1)
    calls = smscn_sandbox.calls()
    if resend:  # asked for: the retry calls the number under a new id
        assert task_states(run) == {"send": "success"}
        assert len(calls) == 1 and xcom_of(run, "send") == [calls[0]["mobileid"]]
    else:  # no proof either way: failed, not retried again (3 retries allowed), nobody called
        assert task_states(run) == {"send": "failed"}
        assert calls == []
        assert smscn_sandbox.stats()["requests"]["sendcode"] == 1


def test_balance_check_returns_the_balance_and_fails_under_the_threshold(smscn_sandbox):
    with make_dag(retries=2, retry_delay=timedelta(seconds=0)) as dag:
        SmsCnBalanceCheckOperator(task_id="ok", min_balance=1000)
        SmsCnBalanceCheckOperator(task_id="low", min_balance=100001)
    run = run_dag(dag)
    assert task_states(run) == {"ok": "success", "low": "failed"}
    assert xcom_of(run, "ok") == 100000
    assert smscn_sandbox.stats()["requests"]["number"] == 2  # the low-balance failure was not retried


def test_sent_records_are_drained_into_the_ledger_without_content(smscn_sandbox, tmp_path, monkeypatch):
    from airflow_provider_smscn.ledger import SmsCnLedger

    url = f"sqlite:///{tmp_path}/ledger.db"
    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", url)
    numbers = [f"1380000{i:04d}" for i in range(120)]
    with make_dag() as dag:
        send = SmsCnSendVoiceCodeOperator(task_id="send", mobiles=numbers, template_id="700001",
                                          variables={"code": "909090"})
        send >> SmsCnQuerySentRecordsOperator(task_id="drain")
    run = run_dag(dag)
    assert xcom_of(run, "drain") == {"records": 120, "pages": 3}
    assert "909090" not in (tmp_path / "ledger.db").read_bytes().decode("latin-1")
    account = f"test@{smscn_sandbox.url.split('//')[1]}".rstrip("/")
    ledger = SmsCnLedger(url)
    assert ledger.count_sent_records(account) == 120  # the account's one key: no trailing slash


@pytest.mark.parametrize("bad", [{"mobiles": ""}, {"variables": "[1]"}, {"template_id": ""},
                                 {"chunk_size": 0}])
def test_bad_input_fails_the_task_before_any_request(smscn_sandbox, bad):
    kwargs = {"mobiles": NUMBERS[:1], "template_id": "700001", "variables": {"code": "1"}, **bad}
    with make_dag(retries=2) as dag:
        SmsCnSendVoiceCodeOperator(task_id="send", **kwargs)
    run = run_dag(dag)
    assert task_states(run) == {"send": "failed"}
    assert smscn_sandbox.stats()["requests"]["sendcode"] == 0


def test_numbers_the_vendor_refused_are_sent_again_by_the_airflow_retry(smscn_sandbox, monkeypatch):
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    # the client gives up at once: the Airflow retry takes over
    use_connection(monkeypatch, smscn_sandbox, retries=0)
    smscn_sandbox.inject_fault("stat", code=107, action="sendcode", count=1)
    run = run_send(1, NUMBERS[:2], variables={"code": "31415"})
    assert task_states(run) == {"send": "success"}
    assert smscn_sandbox.stats()["requests"]["sendcode"] == 2  # refused (107), then sent by the retry
    ids = xcom_of(run, "send")
    assert [c["mobileid"] for c in smscn_sandbox.calls()] == ids  # the same ids, each called once
    hook = SmsCnHook()
    intents = hook.ledger.get_intents(hook.account_key, ids)
    assert {i.state for i in intents.values()} == {"accepted"}


# ------------------------------------------------------------------ at most once per run, whatever happens


def mapped_xcoms(dag_run, task_id):
    """The return value of each map index of a mapped task."""
    from tests.support.airflow_dags import create_session, xcom_model

    model = xcom_model()
    with create_session() as session:
        rows = session.query(model).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id,
                                              key="return_value").all()
        return {row.map_index: model.deserialize_value(row) if model.__name__ == "XComModel" else row.value
                for row in rows}


def test_two_executions_of_one_task_instance_call_each_number_once(tmp_path, monkeypatch, ledger_url_for):
    """A zombie and its retry run ``execute`` of the same task instance at once, chunk by chunk,
    with 300 ms of vendor latency and the vendor's id dedup off: each number is called once, by
    the execution that claimed it, and every intent ends accepted."""
    import multiprocessing

    from airflow_provider_smscn.ledger import SmsCnLedger
    from airflow_provider_smscn.sandbox import Sandbox
    from airflow_provider_smscn.sandbox.accounts import example_account
    numbers = [f"1390000{i:04d}" for i in range(6)]
    url = ledger_url_for(tmp_path)
    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", url)
    monkeypatch.setenv("AIRFLOW__SMSCN__PULL_INTERVAL", "0.2")
    account_config = example_account(rate_limit_per_second=None)
    with Sandbox(accounts=[account_config], report_delay=0, latency_ms=300) as box:
        monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", box.connection_json())
        ctx = multiprocessing.get_context("spawn")
        start, results = ctx.Barrier(2), ctx.Queue()
        procs = [ctx.Process(target=execute_send, args=("run_twice", numbers, start, results),
                             kwargs={"chunk_size": 1}) for _ in range(2)]
        for proc in procs:
            proc.start()
        outcomes = [results.get(timeout=180) for _ in procs]
        for proc in procs:
            proc.join(30)
        calls = box.calls()
        account = f"test@{box.url.split('//')[1]}".rstrip("/")
    assert [kind for kind, _ in outcomes] == ["ok", "ok"], outcomes
    assert outcomes[0][1] == outcomes[1][1]  # both report the same ids
    assert sorted(c["mobile"] for c in calls) == numbers  # every number exactly once
    ledger = SmsCnLedger(url)
    intents = ledger.get_intents(account, outcomes[0][1])  # the account's one key
    assert {i.state for i in intents.values()} == {"accepted"} and len(intents) == len(numbers)


def test_a_cleared_mapped_send_with_reordered_input_calls_nobody_again(smscn_sandbox):
    first = [send_operator(m).execute(task_context("run_r", i))
             for i, m in enumerate([[NUMBERS[0]], [NUMBERS[1]]])]
    again = [send_operator(m).execute(task_context("run_r", i))
             for i, m in enumerate([[NUMBERS[1]], [NUMBERS[0]]])]  # cleared; upstream reordered
    assert [c["mobile"] for c in smscn_sandbox.calls()] == NUMBERS[:2]
    assert again == [first[1], first[0]]


def test_a_number_in_two_map_indexes_is_called_once(smscn_sandbox):
    with make_dag() as dag:
        SmsCnSendVoiceCodeOperator.partial(task_id="send", template_id="700001", variables={"code": "7"}) \
            .expand(mobiles=[[NUMBERS[0]], [NUMBERS[1]], [NUMBERS[0], NUMBERS[2]]])
    run = run_dag(dag)
    assert task_states(run) == {"send": "success"}
    calls = smscn_sandbox.calls()
    assert sorted(c["mobile"] for c in calls) == sorted(NUMBERS)
    ids = {c["mobile"]: c["mobileid"] for c in calls}
    assert mapped_xcoms(run, "send") == {0: [ids[NUMBERS[0]]], 1: [ids[NUMBERS[1]]],
                                         2: [ids[NUMBERS[0]], ids[NUMBERS[2]]]}


def test_a_crash_between_intent_and_request_fails_the_retry_without_retries(smscn_sandbox, monkeypatch):
    import multiprocessing

    monkeypatch.setenv("AIRFLOW__SMSCN__PULL_INTERVAL", "0.2")
    ctx = multiprocessing.get_context("spawn")
    crashed = ctx.Process(target=crash_before_request, args=("run_c", NUMBERS[:2]))
    crashed.start()
    crashed.join(120)
    assert crashed.exitcode == 17  # died after writing its intents, before the request
    retry = send_operator(NUMBERS[:2], proof_timeout=1)
    with pytest.raises(AirflowFailException) as info:  # fails without Airflow retries
        retry.execute(task_context("run_c"))
    message = str(info.value)
    assert "139****8888" in message and "139****8889" in message and "resend_uncertain=True" in message
    assert NUMBERS[0] not in message
    assert smscn_sandbox.calls() == []
    resend = send_operator(NUMBERS[:2], proof_timeout=0, resend_uncertain=True)
    ids = resend.execute(task_context("run_c"))
    assert [c["mobileid"] for c in smscn_sandbox.calls()] == ids
