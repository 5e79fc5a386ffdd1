"""The control API over HTTP, and the in-process helpers that mirror it."""

from __future__ import annotations

import json
import logging
from typing import Any

import pytest
import requests

from airflow_provider_smscn.sandbox import Sandbox
from tests.support.sandbox_calls import DOC_PWD, PASSWORD, SECRET, call, jcall, md5, numbers, pwd_auth, send


def _get(sandbox: Sandbox, path: str) -> requests.Response:
    return requests.get(sandbox.control_url + path, timeout=5)


def _post(sandbox: Sandbox, path: str, body: Any) -> requests.Response:
    return requests.post(sandbox.control_url + path, json=body, timeout=5)


def test_urls(sandbox: Sandbox) -> None:
    assert sandbox.url == f"http://127.0.0.1:{sandbox.port}/voice/"
    assert sandbox.control_url == f"http://127.0.0.1:{sandbox.port}/_control/"


def test_health(sandbox: Sandbox) -> None:
    response = _get(sandbox, "health")
    assert response.status_code == 200
    assert response.json() == {"ok": True}


def test_stats(sandbox: Sandbox, url: str) -> None:
    assert send(url, mobile=",".join(numbers(3)))["stat"] == "100"
    jcall(url, "status")
    jcall(url, "status")
    jcall(url, "number")
    jcall(url, "query", encode="utf8")
    jcall(url, "bogus")
    stats = _get(sandbox, "stats").json()
    assert stats["requests"] == {"sendcode": 1, "status": 2, "number": 1, "query": 1, "other": 1}
    assert len(stats["status_pulls"]) == 2
    assert all(isinstance(t, float) for t in stats["status_pulls"])
    assert stats["status_pulls"][0] <= stats["status_pulls"][1]
    assert stats["reports_pulled"] == 3
    assert stats["reports_pending"] == 0
    assert sandbox.stats() == stats


def test_pending_reports_are_counted(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(report_delay=60)
    assert send(url, mobile=",".join(numbers(2)))["stat"] == "100"
    assert jcall(url, "status")["total"] == "0"
    stats = _get(sandbox, "stats").json()
    assert (stats["reports_pulled"], stats["reports_pending"]) == (0, 2)


def test_calls(sandbox: Sandbox, url: str) -> None:
    assert send(url, mobile="13900000001,13900000002", mobileids="11,12")["stat"] == "100"
    assert send(url, content='{"code":"999"}')["stat"] == "100"
    assert send(url, mobile="")["stat"] == "108"
    calls = _get(sandbox, "calls").json()["calls"]
    assert [(c["mobile"], c["mobileid"], c["variables"]) for c in calls[:2]] == [
        ("13900000001", "11", {"code": "234336"}),
        ("13900000002", "12", {"code": "234336"}),
    ]
    assert calls[2]["variables"] == {"code": "999"}
    for placed in calls:
        assert placed["uid"] == "test" and placed["template"] == "700001"
        assert isinstance(placed["time"], float)
    assert calls == sandbox.calls()


def test_accounts_add_and_read(sandbox: Sandbox, url: str) -> None:
    body = {
        "uid": "acme",
        "password": "s3cret-pw",
        "secret_key": "ACME-SECRET-KEY",
        "balance": 7,
        "templates": {"800001": "码{$code}"},
        "outcomes": {"100": 1, "131": 2},
        "outcome_by_mobile": {"13900000009": 133},
        "max_numbers": 5,
        "max_reports_per_pull": 9,
        "rate_limit_per_second": 10,
        "hourly_cap": 100,
        "daily_cap": 1000,
        "frozen": False,
        "report_delay": 0,
        "bound_ips": ["127.0.0.1"],
    }
    response = _post(sandbox, "accounts", body)
    assert response.status_code == 200
    created = response.json()
    assert created["balance"] == 7 and created["max_numbers"] == 5
    assert created["outcomes"] == {"100": 1.0, "131": 2.0}
    assert created["outcome_by_mobile"] == {"13900000009": 133}
    auth = pwd_auth("acme", "s3cret-pw")
    assert (
        jcall(url, "sendcode", auth=auth, mobile="13900000009", template="800001", content='{"code":"5"}')[
            "stat"
        ]
        == "100"
    )
    state = _get(sandbox, "accounts/acme").json()
    assert state["balance"] == 6
    assert state["calls_placed"] == 1
    assert jcall(url, "status", auth=auth)["values"][0]["resultcode"] == "133"
    everything = json.dumps(_get(sandbox, "accounts").json()) + json.dumps(state) + json.dumps(created)
    for secret in ("s3cret-pw", "ACME-SECRET-KEY", md5("s3cret-pwacme"), PASSWORD, SECRET, DOC_PWD):
        assert secret not in everything


def test_accounts_update_keeps_state(sandbox: Sandbox, url: str) -> None:
    assert send(url)["stat"] == "100"
    response = _post(sandbox, "accounts", {"uid": "test", "balance": 3, "frozen": True})
    assert response.json()["balance"] == 3
    assert send(url)["stat"] == "109"
    _post(sandbox, "accounts", {"uid": "test", "frozen": False})
    assert jcall(url, "number")["number"] == "3"
    assert len(jcall(url, "status")["values"]) == 1  # reports survived the update


@pytest.mark.parametrize(
    "body",
    [
        {"uid": "test", "balanse": 3},
        {"uid": "test", "balance": "lots"},
        {"uid": "test", "balance": -1},
        {"uid": "test", "hourly_cap": True},
        {"uid": "test", "max_numbers": 0},
        {"uid": "test", "report_delay": "NaN"},
        {"uid": "test", "report_delay": -0.5},
        {"uid": "test", "outcomes": {"100": -1}},
        {"uid": "test", "outcomes": {"abc": 1}},
        {"uid": "test", "outcomes": {}},
        {"uid": "test", "bound_ips": ["not-an-ip"]},
        {"uid": "test", "frozen": "perhaps"},
        {"balance": 3},
        ["not", "an", "object"],
    ],
)
def test_accounts_bad_bodies(sandbox: Sandbox, body: Any) -> None:
    response = _post(sandbox, "accounts", body)
    assert response.status_code == 400
    assert response.json()["error"]
    assert sandbox.account()["balance"] == 100000


def test_unknown_account_and_routes(sandbox: Sandbox) -> None:
    assert _get(sandbox, "accounts/nobody").status_code == 404
    assert _get(sandbox, "nothing-here").status_code == 404
    assert requests.delete(sandbox.control_url + "health", timeout=5).status_code == 405
    assert requests.get(sandbox.base_url + "/elsewhere", timeout=5).status_code == 404
    not_json = requests.post(sandbox.control_url + "faults", data=b"{oops", timeout=5)
    assert not_json.status_code == 400


def test_reset(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(report_delay=60)
    assert send(url, mobile=",".join(numbers(2)), mobileids="1,2")["stat"] == "100"
    _post(sandbox, "accounts", {"uid": "extra", "password": "x"})
    sandbox.inject_fault("latency", ms=1)
    assert _post(sandbox, "reset", {}).json() == {"ok": True}
    stats = sandbox.stats()
    assert stats["requests"] == {"sendcode": 0, "status": 0, "number": 0, "query": 0}
    assert (stats["reports_pending"], stats["reports_pulled"], stats["status_pulls"]) == (0, 0, [])
    assert sandbox.calls() == []
    assert sandbox.state.faults.public() == []
    assert _get(sandbox, "accounts/extra").status_code == 404
    assert sandbox.account()["balance"] == 100000
    assert sandbox.account()["report_delay"] == 0  # the sandbox default again, not 60
    assert send(url, mobileids="1")["stat"] == "100"  # accepted ids forgotten too


def test_set_account_and_account_in_process(sandbox: Sandbox) -> None:
    assert sandbox.set_account(balance=5)["balance"] == 5
    assert sandbox.account("test")["balance"] == 5
    with pytest.raises(KeyError):
        sandbox.account("nobody")
    with pytest.raises(ValueError):
        sandbox.set_account(unknown_field=1)


class TestConnectionJson:
    def test_secret(self, sandbox: Sandbox) -> None:
        assert json.loads(sandbox.connection_json()) == {
            "conn_type": "smscn",
            "login": "test",
            "password": "123123",
            "host": sandbox.url,
            "extra": {"secret_key": SECRET},
        }

    def test_password(self, sandbox: Sandbox) -> None:
        assert json.loads(sandbox.connection_json(auth="password", reply_format="xml")) == {
            "conn_type": "smscn",
            "login": "test",
            "password": "123123",
            "host": sandbox.url,
            "extra": {"format": "xml"},
        }

    def test_api_password(self, sandbox: Sandbox) -> None:
        assert json.loads(sandbox.connection_json(auth="api_password")) == {
            "conn_type": "smscn",
            "login": "test",
            "host": sandbox.url,
            "extra": {"api_password": DOC_PWD},
        }

    def test_env_and_errors(self, sandbox: Sandbox) -> None:
        env = sandbox.connection_env("my_sms", auth="password")
        assert list(env) == ["AIRFLOW_CONN_MY_SMS"]
        assert json.loads(env["AIRFLOW_CONN_MY_SMS"])["host"] == sandbox.url
        with pytest.raises(ValueError):
            sandbox.connection_json(auth="token")

    def test_needs_a_running_sandbox(self) -> None:
        box = Sandbox()
        with pytest.raises(RuntimeError):
            box.connection_json()
        with box:
            assert box.running
        assert not box.running


def test_in_process_sandbox_restarts() -> None:
    box = Sandbox(report_delay=0).start()
    try:
        first = box.url
        assert send(first)["stat"] == "100"
        box.stop()
        with pytest.raises(requests.exceptions.ConnectionError):
            requests.get(first, timeout=2)
        box.start()
        assert jcall(box.url, "number")["number"] == "99999"  # state survives a restart
    finally:
        box.stop()
    box.stop()  # idempotent


def test_an_internal_error_answers_500_without_logging_request_data(
    sandbox: Sandbox, url: str, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(request: Any) -> Any:
        raise RuntimeError(f"pwd was {request.get('pwd')}")

    monkeypatch.setattr(sandbox.state, "handle", broken)
    with caplog.at_level(logging.ERROR, logger="airflow_provider_smscn.sandbox"):
        response = call(url, "number")
    assert response.status_code == 500
    assert "RuntimeError" in caplog.text
    assert DOC_PWD not in caplog.text
    monkeypatch.undo()
    assert jcall(url, "number")["stat"] == "100"
