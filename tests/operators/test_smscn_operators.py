"""The send, balance and sent-records operators in real Airflow runs against the sandbox."""

from __future__ import annotations

import itertools
import json
from datetime import timedelta

import pendulum
import pytest

from airflow_provider_smscn._compat import DAG
from airflow_provider_smscn.operators.smscn import (
    SmsCnBalanceCheckOperator,
    SmsCnQuerySentRecordsOperator,
    SmsCnSendVoiceCodeOperator,
)
from tests.airflow_helpers import run_dag, task_states, xcom_of

NUMBERS = ["13900008888", "13900008889", "13900008890"]
_ids = itertools.count()


def make_dag(**default_args):
    return DAG(dag_id=f"test_ops_{next(_ids)}", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
               catchup=False, default_args=default_args)


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
    conn = json.loads(smscn_sandbox.connection_json())
    conn["extra"]["timeout"] = 1
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", json.dumps(conn))
    monkeypatch.setenv("AIRFLOW__SMSCN__PULL_INTERVAL", "0")
    smscn_sandbox.inject_fault("delay_after", ms=2500, action="sendcode", count=1)
    with make_dag(retries=2, retry_delay=timedelta(seconds=0)) as dag:
        SmsCnSendVoiceCodeOperator(task_id="send", mobiles=NUMBERS[:2], template_id="700001",
                                   variables={"code": "2718"})
    run = run_dag(dag)
    assert task_states(run) == {"send": "success"}
    calls = smscn_sandbox.calls()
    assert [c["mobile"] for c in calls] == NUMBERS[:2]  # each number called exactly once
    assert smscn_sandbox.stats()["requests"]["sendcode"] == 1  # the retry sent nothing
    assert xcom_of(run, "send") == [c["mobileid"] for c in calls]


def test_uncertain_numbers_are_not_called_again_unless_asked(smscn_sandbox, monkeypatch):
    smscn_sandbox.state.report_delay = 3600  # no report can prove the first attempt went out
    conn = json.loads(smscn_sandbox.connection_json())
    conn["extra"]["timeout"] = 1
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", json.dumps(conn))
    for resend, expected_calls in ((False, 1), (True, 2)):
        smscn_sandbox.reset()
        smscn_sandbox.state.report_delay = 3600
        smscn_sandbox.inject_fault("delay_after", ms=2500, action="sendcode", count=1)
        with make_dag(retries=1, retry_delay=timedelta(seconds=0)) as dag:
            SmsCnSendVoiceCodeOperator(task_id="send", mobiles=NUMBERS[:1], template_id="700001",
                                       variables={"code": "1"}, resend_uncertain=resend)
        run = run_dag(dag)
        assert task_states(run) == {"send": "success"}
        calls = smscn_sandbox.calls()
        assert len(calls) == expected_calls
        assert xcom_of(run, "send") == [calls[-1]["mobileid"]]


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
    assert sum(ledger.count_sent_records(a) for a in {account, account + "/"}) == 120


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

    conn = json.loads(smscn_sandbox.connection_json())
    conn["extra"]["retries"] = 0  # the client gives up at once: the Airflow retry takes over
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", json.dumps(conn))
    smscn_sandbox.inject_fault("stat", code=107, action="sendcode", count=1)
    with make_dag(retries=1, retry_delay=timedelta(seconds=0)) as dag:
        SmsCnSendVoiceCodeOperator(task_id="send", mobiles=NUMBERS[:2], template_id="700001",
                                   variables={"code": "31415"})
    run = run_dag(dag)
    assert task_states(run) == {"send": "success"}
    assert smscn_sandbox.stats()["requests"]["sendcode"] == 2  # refused (107), then sent by the retry
    ids = xcom_of(run, "send")
    assert [c["mobileid"] for c in smscn_sandbox.calls()] == ids  # the same ids, each called once
    hook = SmsCnHook()
    intents = hook.ledger.get_intents(hook.account_key, ids)
    assert {i.state for i in intents.values()} == {"accepted"}
