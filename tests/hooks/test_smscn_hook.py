"""SmsCnHook against the real sandbox over HTTP on loopback, and its registration in Airflow."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import pytest

from airflow_provider_smscn.client import SmsCnApiError, SmsCnError, SmsCnValidationError
from airflow_provider_smscn.hooks.smscn import SmsCnHook, _base_url
from tests.support.secret_scan import LEAK_ACCOUNT, LEAK_PWD, LEAK_SECRET_KEY, SecretScan, full_numbers

NUMBERS = ["13900008888", "13900008889"]
AIRFLOW = str(Path(sys.executable).with_name("airflow"))


def wait_for_reports(hook: SmsCnHook, count: int, timeout: float = 10) -> list:
    reports: list = []
    deadline = time.monotonic() + timeout
    while len(reports) < count and time.monotonic() < deadline:
        reports += hook.pull_delivery_reports()
        time.sleep(0.05)
    return reports


@pytest.mark.parametrize("reply_format", ["json", "xml", "txt"])
@pytest.mark.parametrize("auth", ["secret", "password", "api_password"])
def test_every_action_in_every_format_and_auth_mode(smscn_sandbox, monkeypatch, reply_format, auth):
    smscn_sandbox.state.report_delay = 0
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", smscn_sandbox.connection_json(auth=auth,
                                                                                   reply_format=reply_format))
    hook = SmsCnHook()
    assert hook.get_balance() == 100000

    result = hook.send_voice_code(NUMBERS, "700001", {"code": "352333"})
    assert result.mobiles == NUMBERS
    assert len(result.mobileids) == 2 and len(set(result.mobileids)) == 2
    assert all(mid.isdigit() and NUMBERS[0] not in mid for mid in result.mobileids)
    assert [c["mobileid"] for c in smscn_sandbox.calls()] == result.mobileids
    assert hook.get_balance() == 99998

    reports = wait_for_reports(hook, 2)
    assert {r.mobileid: r.mobile for r in reports} == dict(zip(result.mobileids, NUMBERS, strict=True))
    assert all(r.delivered and r.resultcode == 100 and r.status and r.retime for r in reports)
    assert hook.pull_delivery_reports() == []  # each report is handed out once

    records = hook.query_sent_records()
    assert sorted(r.mobile for r in records) == NUMBERS
    assert all(r.status == 1 and "352333" in r.content for r in records)
    assert hook.query_sent_records() == []


def test_sent_records_queried_through_the_hook_still_prove_a_retrys_calls(smscn_sandbox, monkeypatch,
                                                                         tmp_path):
    """The vendor hands each sent record out once, and a send's retry proves a call whose reply was
    lost by the records: a user's own look at them between the attempts must not take that proof."""
    from airflow_provider_smscn.client.errors import SmsCnSendOutcomeUnknownError
    from airflow_provider_smscn.sending import prepare_job, send_voice_codes

    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", f"sqlite:///{tmp_path}/ledger.db")
    conn = json.loads(smscn_sandbox.connection_json())
    conn["extra"]["timeout"] = 0.5
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", json.dumps(conn))
    smscn_sandbox.state.report_delay = 3600  # no report in time: only the sent records can prove
    smscn_sandbox.inject_fault("delay_after", ms=1500, action="sendcode", count=1)  # accepted, reply lost
    hook = SmsCnHook()
    job = prepare_job("dag|send|manual__1", NUMBERS, "700001", {"code": "4711"},
                      proof_timeout=1, proof_poll=0.2)
    with pytest.raises(SmsCnSendOutcomeUnknownError):
        send_voice_codes(hook, job, limit=1000)
    assert sorted(r.mobile for r in hook.query_sent_records()) == NUMBERS  # the user's look
    ids = send_voice_codes(hook, job, limit=1000)  # the retry
    assert [c["mobile"] for c in smscn_sandbox.calls()] == NUMBERS  # nobody called twice
    assert {i.state for i in hook.ledger.get_intents(hook.account_key, ids).values()} == {"accepted"}


def test_reports_pulled_through_the_hook_are_kept_for_the_waiters(smscn_sandbox, monkeypatch, tmp_path):
    """A user's own pull takes reports the vendor hands out once: a sensor waiting on them must
    still find them (in the ledger), without another pull."""
    from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor

    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", f"sqlite:///{tmp_path}/ledger.db")
    smscn_sandbox.state.report_delay = 0
    hook = SmsCnHook()
    ids = hook.send_voice_code(NUMBERS, "700001", {"code": "352333"}).mobileids
    assert sorted(r.mobileid for r in wait_for_reports(hook, 2)) == sorted(ids)
    pulls = smscn_sandbox.stats()["requests"]["status"]
    assert hook.ledger.last_pull_time(hook.account_key) is not None  # the waiters' lease saw the pull
    result = SmsCnDeliverySensor(task_id="wait", mobileids=ids, pull_interval=3600).poke({})
    assert result and sorted(result.xcom_value) == sorted(ids)
    assert smscn_sandbox.stats()["requests"]["status"] == pulls  # found in the ledger, not pulled again


@pytest.mark.parametrize(
    ("host", "port", "schema", "expected"),
    [
        (None, None, None, "https://api.sms.cn/voice/"),
        ("", None, "", "https://api.sms.cn/voice/"),
        ("http://127.0.0.1:8765/voice/", None, None, "http://127.0.0.1:8765/voice/"),
        ("http://127.0.0.1:8765/voice", None, None, "http://127.0.0.1:8765/voice/"),
        ("127.0.0.1", 8765, "voice", "https://127.0.0.1:8765/voice/"),
        ("api.sms.cn", None, None, "https://api.sms.cn/voice/"),
    ],
)
def test_api_url_from_the_connection(host, port, schema, expected):
    assert _base_url(host, port, schema, "https") == expected


def test_uri_form_connection_reaches_the_sandbox(smscn_sandbox, monkeypatch):
    port = smscn_sandbox.url.split(":")[2].split("/")[0]
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_URI",
                       f"smscn://test:123123@127.0.0.1:{port}/voice?scheme=http&format=xml")
    assert SmsCnHook(smscn_conn_id="smscn_uri").get_balance() == 100000


def test_test_connection_reports_the_balance_or_the_reason(smscn_sandbox, monkeypatch):
    assert SmsCnHook().test_connection() == (True, "Connection to sms.cn works: balance 100000")
    conn = json.loads(smscn_sandbox.connection_json(auth="password"))
    conn["password"] = "wrong-password-123"
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", json.dumps(conn))
    ok, message = SmsCnHook().test_connection()
    assert not ok
    assert "101" in message and "authentication failed" in message
    assert "wrong-password-123" not in message


def test_bad_input_fails_before_any_request(smscn_sandbox):
    hook = SmsCnHook()
    cases = [
        ([], "700001", {"code": "1"}),
        (["1390000888"], "700001", {"code": "1"}),
        (["13900008888", "13900008888"], "700001", {"code": "1"}),
        (["13900008888"], "", {"code": "1"}),
        (["13900008888"], "700001", ["not", "an", "object"]),
        (["13900008888"], "700001", {"code": {"nested": 1}}),
        (["13900008888"], "700001", '{"code": '),
    ]
    for mobiles, template, variables in cases:
        with pytest.raises(SmsCnValidationError):
            hook.send_voice_code(mobiles, template, variables)
    with pytest.raises(SmsCnValidationError, match="mobileid #1"):
        hook.send_voice_code(["13900008888"], "700001", {"code": "1"}, mobileids=["12a"])
    with pytest.raises(SmsCnValidationError):
        hook.send_voice_code(["13900008888", "13900008889"], "700001", {"code": "1"}, mobileids=["1"])
    too_many = [f"139{i:08d}" for i in range(1001)]
    with pytest.raises(SmsCnValidationError, match="1000"):
        hook.send_voice_code(too_many, "700001", {"code": "1"})
    assert smscn_sandbox.stats()["requests"].get("sendcode", 0) == 0
    assert smscn_sandbox.calls() == []


@pytest.mark.parametrize(("extra", "named"),
                         [({"timeout": "ten"}, "timeout"), ({"retries": "two"}, "retries")])
def test_a_bad_connection_extra_is_named_before_any_request(smscn_sandbox, monkeypatch, extra, named):
    conn = json.loads(os.environ["AIRFLOW_CONN_SMSCN_DEFAULT"])
    conn["extra"].update(extra)
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", json.dumps(conn))
    with pytest.raises(SmsCnValidationError, match=f"Connection extra '{named}'"):
        SmsCnHook().get_balance()
    assert sum(smscn_sandbox.stats()["requests"].values()) == 0


def test_connection_extras_reach_the_client_typed(smscn_sandbox, monkeypatch):
    """A URI connection carries every extra as a string: the client gets the table's types."""
    conn = json.loads(os.environ["AIRFLOW_CONN_SMSCN_DEFAULT"])
    conn["extra"].update({"timeout": "4", "max_numbers_per_request": "7", "retries": "0", "format": "XML",
                          "method": "get"})
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", json.dumps(conn))
    client = SmsCnHook().client
    assert (client.max_numbers_per_request, client._timeout) == (7, 4.0)
    assert (client._format, client._method) == ("xml", "GET")
    assert client._policy.max_attempts == 1
    assert SmsCnHook().get_balance() == 100000


def test_api_errors_carry_code_and_meaning(smscn_sandbox):
    smscn_sandbox.set_account(balance=1)
    with pytest.raises(SmsCnApiError) as err:
        SmsCnHook().send_voice_code(NUMBERS, "700001", {"code": "1"})
    assert err.value.code == 102 and not err.value.retriable
    assert "insufficient balance" in str(err.value)


def _exercise(hook: SmsCnHook, sandbox) -> list[BaseException]:
    """Every hook method, succeeding and failing; returns the errors raised."""
    errors: list[BaseException] = []
    calls = [
        hook.get_balance,
        lambda: hook.send_voice_code(NUMBERS, "700001", {"code": "975312"}),
        hook.pull_delivery_reports,
        hook.query_sent_records,
        hook.test_connection,
    ]
    for fault in (None, {"kind": "http_status", "status": 503}, {"kind": "drop"},
                  {"kind": "stat", "code": 101},
                  {"kind": "html"}):
        sandbox.clear_faults()
        if fault:
            sandbox.inject_fault(**fault)
        for call in calls:
            try:
                call()
            except SmsCnError as err:
                errors.append(err)
    sandbox.clear_faults()
    return errors


@pytest.mark.parametrize("auth", ["secret", "password", "api_password"])
def test_no_secret_and_no_full_number_reaches_logs_errors_or_reprs(
        smscn_sandbox, monkeypatch, caplog, capsys, auth):
    smscn_sandbox.set_account(**LEAK_ACCOUNT)
    conn = {"conn_type": "smscn", "login": LEAK_ACCOUNT["uid"], "host": smscn_sandbox.url,
            "extra": {"timeout": 2, "retries": 1, "retry_max_wait": 0.01}}
    if auth == "api_password":
        conn["extra"]["api_password"] = LEAK_PWD
    else:
        conn["password"] = LEAK_ACCOUNT["password"]
    if auth == "secret":
        conn["extra"]["secret_key"] = LEAK_SECRET_KEY
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", json.dumps(conn))
    scan = SecretScan()
    caplog.set_level(logging.DEBUG)
    hook = SmsCnHook()
    errors = _exercise(hook, smscn_sandbox)
    assert errors, "the failing half of the exercise raised nothing"
    texts = [r.getMessage() for r in caplog.records]
    texts += ["".join(traceback.format_exception(e)) + repr(e) for e in errors]
    texts += [repr(hook), repr(hook.client), str(vars(hook.client).get("_signer", ""))]
    out = capsys.readouterr()
    texts += [out.out, out.err]
    everything = "\n".join(texts)
    assert scan.leaks(everything) == []
    assert full_numbers(everything, NUMBERS) == []
    assert "139****8888" in everything  # numbers do show, masked


def test_credentials_are_registered_with_the_secret_masker(smscn_sandbox, monkeypatch):
    try:
        from airflow.sdk._shared.secrets_masker import redact
    except ImportError:  # Airflow 2.11
        from airflow.utils.log.secrets_masker import redact
    smscn_sandbox.set_account(**LEAK_ACCOUNT)
    conn = {"conn_type": "smscn", "login": LEAK_ACCOUNT["uid"], "password": LEAK_ACCOUNT["password"],
            "host": smscn_sandbox.url, "extra": {"secret_key": LEAK_SECRET_KEY}}
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", json.dumps(conn))
    scan = SecretScan()
    hook = SmsCnHook()
    hook.get_balance()
    line = " ".join(scan.secrets().values())
    redacted = redact(line)
    assert LEAK_SECRET_KEY not in redacted and LEAK_ACCOUNT["password"] not in redacted
    used = [k for k in scan.secrets().values() if len(k) == 32 and k != LEAK_PWD]
    assert any(k not in redacted for k in []) is False
    assert sum(k not in redacted for k in used) < len(used)  # the tokenkey actually used is masked


def _json_out(proc: subprocess.CompletedProcess[str]) -> list[dict]:
    """The JSON list an ``airflow ... -o json`` command printed (log lines may precede it)."""
    return json.loads(proc.stdout[proc.stdout.index("["):])


def _airflow(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([AIRFLOW, *args], env=env, capture_output=True, text=True, timeout=180)


def test_airflow_cli_knows_the_provider_and_the_connection_type(smscn_sandbox, tmp_path):
    env = {**os.environ, "AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{tmp_path}/airflow.db"}
    env.pop("AIRFLOW_CONN_SMSCN_DEFAULT", None)
    env.pop("AIRFLOW__CORE__UNIT_TEST_MODE", None)
    assert _airflow("db", "migrate", env=env).returncode == 0
    providers = _airflow("providers", "list", "-o", "json", env=env)
    assert "airflow-provider-smscn" in providers.stdout
    hooks = _airflow("providers", "hooks", "-o", "json", env=env)
    assert "smscn" in hooks.stdout and "SmsCnHook" in hooks.stdout
    widgets = _airflow("providers", "widgets", "-o", "json", env=env)
    assert "extra__smscn__secret_key" in widgets.stdout
    conn = json.loads(smscn_sandbox.connection_json())
    conn_json = json.dumps(conn)
    added = _airflow("connections", "add", "smscn_cli", "--conn-json", conn_json, env=env)
    assert added.returncode == 0, added.stderr[-2000:]
    got = _airflow("connections", "get", "smscn_cli", "-o", "json", env=env)
    assert _json_out(got)[0]["conn_type"] == "smscn"
    typed = _airflow("connections", "add", "smscn_typed", "--conn-type", "smscn", "--conn-login", "test",
                     env=env)
    assert typed.returncode == 0
    assert _json_out(_airflow("connections", "get", "smscn_typed", "-o", "json", env=env))[0][
        "conn_type"] == "smscn"
    balance_calls = smscn_sandbox.stats()["requests"].get("number", 0)
    tested = _airflow("connections", "test", "smscn_cli", env=env)
    assert tested.returncode == 0, tested.stdout[-2000:] + tested.stderr[-2000:]
    assert "Connection success" in tested.stdout
    assert smscn_sandbox.stats()["requests"]["number"] == balance_calls + 1
    assert conn["password"] not in tested.stdout + tested.stderr


class _Supervisor:
    """Answers a task's ``GetAssetEventByAsset`` from a list of stored events, as the execution
    API does (``timestamp >= after``, oldest first, ``limit``); the task's side is Airflow's own."""

    def __init__(self, events: list) -> None:
        self.events, self.asked = events, []

    def send(self, msg):
        from airflow.sdk.execution_time.comms import AssetEventsResult

        self.asked.append(msg)
        found = sorted((e for e in self.events if msg.after is None or e.timestamp >= msg.after),
                       key=lambda e: e.timestamp)
        return AssetEventsResult(asset_events=found[:msg.limit])


@pytest.mark.airflow3_only
def test_a_run_takes_the_batches_airflow_started_no_run_for_through_the_task_sdks_accessors(
        monkeypatch, tmp_path):
    """The Task SDK's own ``triggering_asset_events`` and ``inlet_events`` objects: the asset keys of
    one are accepted by the other, and the read is filtered by time (apache/airflow#56050)."""
    from datetime import datetime, timedelta, timezone

    from airflow.sdk import Asset
    from airflow.sdk.api.datamodels._generated import AssetResponse, DagRunAssetReference
    from airflow.sdk.execution_time import task_runner
    from airflow.sdk.execution_time.comms import AssetEventDagRunReferenceResult, AssetEventResult
    from airflow.sdk.execution_time.context import InletEventsAccessors, TriggeringAssetEventsAccessor

    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", f"sqlite:///{tmp_path}/ledger.db")
    asset = Asset("smscn_undelivered_calls")
    start = datetime(2026, 12, 3, 1, tzinfo=timezone.utc)

    def stored(n: int, second: int, *runs: str) -> AssetEventResult:
        return AssetEventResult(
            id=n, timestamp=start + timedelta(seconds=second), asset=AssetResponse(
                name=asset.name, uri=asset.uri, group="asset"),
            extra={"from_trigger": True, "payload": {"watch": "w", "batch": f"{n}-{n}", "reports": []}},
            created_dagruns=[DagRunAssetReference(
                run_id=r, dag_id="retry", logical_date=None, start_date=start, end_date=None, state="running",
                data_interval_start=None, data_interval_end=None, partition_key=None) for r in runs])

    events = [stored(1, -120), stored(2, 0, "r1"), stored(3, 1), stored(4, 2, "r2")]
    supervisor = _Supervisor(events)
    monkeypatch.setattr(task_runner, "SUPERVISOR_COMMS", supervisor, raising=False)
    triggering = TriggeringAssetEventsAccessor.build([AssetEventDagRunReferenceResult(
        asset={"name": asset.name, "uri": asset.uri, "extra": {}}, extra=events[1].extra, source_task_id=None,
        source_dag_id=None, source_run_id=None, source_map_index=None, source_aliases=[],
        timestamp=events[1].timestamp)])

    taken = SmsCnHook().take_event_batches(triggering, consumer="retry", taker="r1",
                                           inlet_events=InletEventsAccessors([asset]))
    assert [b["batch"] for b in taken] == ["2-2", "3-3"]  # its own, and the one no run was started for
    asked = supervisor.asked[0]  # from the run's first event (less the clock margin), bounded
    assert (asked.after, asked.limit) == (events[1].timestamp - timedelta(seconds=60), 1000)
    with pytest.raises(SmsCnValidationError, match="is not an inlet of this task"):
        SmsCnHook().take_event_batches(triggering, consumer="retry", taker="r1",
                                       inlet_events=InletEventsAccessors([]))
