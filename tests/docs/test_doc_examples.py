"""The files under examples/ that the docs show (docs/gen_docs.py ``example`` blocks), run for real.

Each runs against the sandbox the way a user would run it: the pytest example's own test
functions are collected here, scripts are run or called, the shell files are run by bash or their
exported values used as Airflow reads them. Airflow 3 only where the example imports ``airflow.sdk``
(on 2.11 the rest runs too).
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_smscn.sandbox import Sandbox

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"smscn_docs_example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# The example's own tests, collected as they stand (marker, fixture and all): a user's test module.
_pytest_example = _load("sandbox_in_pytest")
test_my_task = _pytest_example.test_my_task
test_vendor_times_out = _pytest_example.test_vendor_times_out


def test_the_in_process_sandbox_example_counts_the_calls_that_went_through(capsys):
    assert _load("sandbox_in_process").calls_after_one_failure() == 2
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/voice/\n", capsys.readouterr().out)


@pytest.mark.smscn_sandbox(report_delay=0)
def test_the_ledger_example_collects_its_report_through_the_ledger(smscn_sandbox, tmp_path):
    from airflow_provider_smscn.client import SmsCnClient
    from airflow_provider_smscn.ledger import SmsCnLedger

    ledger_url = f"sqlite:///{tmp_path}/ledger.db"
    example = _load("ledger_without_airflow")
    found = example.send_and_collect(smscn_sandbox.url, ledger_url, pull_interval=0.05)
    [call] = smscn_sandbox.calls()
    assert list(found) == [call["mobileid"]]
    with SmsCnClient("test", password="123123", base_url=smscn_sandbox.url) as client:
        account = client.account_key
    assert SmsCnLedger(ledger_url).get_reports(account, list(found)) == found  # kept for other waiters


def test_the_config_file_example_starts_the_sandbox_it_describes(tmp_path):
    from airflow_provider_smscn.client import SmsCnClient

    proc = subprocess.Popen([sys.executable, "-m", "airflow_provider_smscn.sandbox", "--port", "0",
                             "--config", str(EXAMPLES / "sandbox_config.json")],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout is not None
        url = proc.stdout.readline().strip()
        with SmsCnClient("ops", password="s3cret", base_url=url) as ops:
            assert ops.get_balance() == 50
            ops.send_voice_code(["13900000001"], "800001", {"task": "load"})
            assert ops.get_balance() == 49
        with SmsCnClient("test", secret_key="64CQMlr579J0L46U9q1qR285Risfc04G", base_url=url) as test:
            assert test.get_balance() == 100000
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_the_control_api_example_changes_the_running_sandbox():
    with Sandbox() as sandbox:
        proc = subprocess.run(["bash", str(EXAMPLES / "sandbox_control.sh")], capture_output=True, text=True,
                              env={**os.environ, "SANDBOX": sandbox.base_url}, check=False, timeout=60)
        assert proc.returncode == 0, proc.stderr
        assert sandbox.account("test")["balance"] == 10
        faults = json.loads(_get(sandbox.control_url + "faults"))["faults"]
        assert [fault["kind"] for fault in faults] == ["delay_after"]
        assert '"requests"' in proc.stdout  # the stats it printed last


def _get(url: str) -> str:
    from urllib.request import urlopen

    with urlopen(url, timeout=10) as reply:
        return reply.read().decode()


def _exports(name: str) -> list[str]:
    """The values the shell file exports as AIRFLOW_CONN_SMSCN_DEFAULT, as bash reads them."""
    text = (EXAMPLES / name).read_text(encoding="utf-8")
    return [shlex.split(m.group(1))[0] for m in re.finditer(r"^export AIRFLOW_CONN_SMSCN_DEFAULT=('[^']*')",
                                                            text, re.M)]


def test_the_json_connection_example_names_the_vendor_and_signs_with_the_secret_key(monkeypatch):
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    [value] = [v for v in _exports("connection_env.sh") if v.startswith("{")]
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", value)
    client = SmsCnHook().client
    assert client.account_key == "test@api.sms.cn/voice"
    assert "auth='secret_key'" in repr(client)


def test_the_cli_connection_example_is_a_command_this_airflow_takes(monkeypatch):
    """The ``airflow connections add`` line, read by Airflow's own CLI parser (no metadata DB
    touched), gives a Connection the hook signs with the secret key."""
    from airflow.cli import cli_parser

    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    text = (EXAMPLES / "connection_env.sh").read_text(encoding="utf-8")
    region = re.search(r"^# \[START cli\]\n(.*?)^# \[END cli\]", text, re.S | re.M)
    assert region is not None
    argv = shlex.split(region.group(1).replace("\\\n", " "))
    assert argv[:3] == ["airflow", "connections", "add"]
    args = cli_parser.get_parser().parse_args(argv[1:])
    assert args.conn_id == "smscn_default"
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", json.dumps(
        {"conn_type": args.conn_type, "login": args.conn_login, "password": args.conn_password,
         "extra": json.loads(args.conn_extra)}))
    client = SmsCnHook().client
    assert client.account_key == "test@api.sms.cn/voice"
    assert "auth='secret_key'" in repr(client)


def test_both_uri_connection_examples_reach_the_sandbox(monkeypatch):
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    uris = [v for v in _exports("connection_env.sh") if v.startswith("smscn://")]
    assert len(uris) == 2
    with Sandbox() as sandbox:
        port = sandbox.base_url.rsplit(":", 1)[1]
        for uri in uris:
            # the example's host and port, and its placeholder secret key, made this sandbox's
            uri = uri.replace("8765", port).replace("secret_key=...",
                                                    "secret_key=64CQMlr579J0L46U9q1qR285Risfc04G")
            monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", uri)
            hook = SmsCnHook()
            try:
                assert hook.get_balance() == 100000
            finally:
                hook.close()
        assert sandbox.stats()["requests"]["number"] == 2


@pytest.mark.airflow3_only
@pytest.mark.smscn_sandbox(report_delay=0)
def test_the_deferring_operator_example_resumes_with_the_reports(smscn_sandbox):
    from airflow.sdk.exceptions import TaskDeferred

    from airflow_provider_smscn.client import SmsCnClient

    with SmsCnClient("test", password="123123", base_url=smscn_sandbox.url) as client:
        ids = client.send_voice_code(["13900000001", "13900000002"], "700001", {"code": "1234"}).mobileids
    operator = _load("deferring_operator").WaitForCallsOperator(task_id="wait", mobileids=ids)
    with pytest.raises(TaskDeferred) as deferred:
        operator.execute({})
    assert deferred.value.method_name == "done"

    async def first_event() -> Any:
        return await deferred.value.trigger.run().__anext__()

    event = asyncio.run(first_event())
    reports = getattr(operator, deferred.value.method_name)({}, event.payload)
    assert sorted(reports) == sorted(ids)
    assert {r["mobile"] for r in reports.values()} == {"139****0001", "139****0002"}
