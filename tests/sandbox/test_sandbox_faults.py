"""Fault injection: each kind, its action filter and count, through Python and over HTTP."""

from __future__ import annotations

import http.client
import json
import socket
import time
from typing import TYPE_CHECKING

import defusedxml.ElementTree
import pytest
import requests

from tests.support.sandbox_calls import DOC_PWD, MOBILE, call, jcall, send

if TYPE_CHECKING:
    from airflow_provider_smscn.sandbox import Sandbox


def _balance(url: str) -> int:
    return int(jcall(url, "number")["number"])


def test_latency_is_added_before_processing(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("latency", ms=250, action="number", count=1)
    started = time.monotonic()
    assert jcall(url, "number")["stat"] == "100"
    assert time.monotonic() - started >= 0.25  # a lower bound: a slow machine only adds to it
    assert sandbox.stats()["faults_applied"] == 1 and sandbox.state.faults.public() == []  # spent
    assert jcall(url, "number")["stat"] == "100"
    assert sandbox.stats()["faults_applied"] == 1  # count=1: the next request is not held


def test_latency_beyond_the_client_timeout_still_reaches_the_vendor(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("latency", ms=500, action="sendcode", count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(url, "sendcode", mobile=MOBILE, template="700001", content='{"code":"1"}', timeout=0.1)
    # held before processing: by the time it is processed the client is gone, but it is processed
    deadline = time.monotonic() + 3
    while not sandbox.calls() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(sandbox.calls()) == 1  # a real vendor too would process a request whose client left


def test_delay_after_accepts_then_holds_the_reply(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("delay_after", ms=400, action="sendcode", count=1)
    with pytest.raises(requests.exceptions.ReadTimeout):
        call(
            url,
            "sendcode",
            mobile=MOBILE,
            mobileids="9001",
            template="700001",
            content='{"code":"1"}',
            timeout=0.15,
        )
    # the vendor accepted it before the client timed out
    assert [c["mobileid"] for c in sandbox.calls()] == ["9001"]
    assert _balance(url) == 99999
    # with the (optional) id dedup, the retry of the same ids is refused: nothing is phoned twice
    sandbox.set_account(dedup_mobileids=True)
    assert send(url, mobileids="9001")["stat"] == "124"
    assert len(sandbox.calls()) == 1


def test_http_status_with_action_and_count(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("http_status", status=503, action="sendcode", count=2)
    for _ in range(2):
        response = call(url, "sendcode", mobile=MOBILE, template="700001", content='{"code":"1"}')
        assert response.status_code == 503
        assert "503" in response.text
    assert call(url, "number").status_code == 200  # other actions unaffected
    assert sandbox.calls() == []  # the proxy answered; the vendor never saw the request
    assert send(url)["stat"] == "100"  # count spent
    assert sandbox.stats()["faults_applied"] == 2


def test_http_status_after_processing(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("http_status", status=502, after=True, count=1)
    response = call(url, "sendcode", mobile=MOBILE, template="700001", content='{"code":"1"}')
    assert response.status_code == 502
    assert len(sandbox.calls()) == 1


def test_faults_without_count_last_until_cleared(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("http_status", status=500, action="number")
    assert [call(url, "number").status_code for _ in range(5)] == [500] * 5
    sandbox.clear_faults()
    assert call(url, "number").status_code == 200


@pytest.mark.parametrize("reset", [False, True])
def test_drop_closes_without_reply(sandbox: Sandbox, url: str, reset: bool) -> None:
    sandbox.inject_fault("drop", reset=reset, count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        call(url, "sendcode", mobile=MOBILE, template="700001", content='{"code":"1"}')
    assert sandbox.calls() == []
    assert send(url)["stat"] == "100"


@pytest.mark.parametrize(("reset", "expected"), [(False, "eof"), (True, "reset")])
def test_drop_closes_with_fin_or_rst(sandbox: Sandbox, url: str, reset: bool, expected: str) -> None:
    sandbox.inject_fault("drop", reset=reset, count=1)
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(f"GET /voice/?ac=number&uid=test&pwd={DOC_PWD} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        try:
            outcome = "eof" if raw.recv(100) == b"" else "data"
        except ConnectionResetError:
            outcome = "reset"
    assert outcome == expected


def test_drop_after_processing_places_the_call(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("drop", after=True, action="sendcode", count=1)
    with pytest.raises(requests.exceptions.ConnectionError):
        call(url, "sendcode", mobile=MOBILE, template="700001", content='{"code":"1"}')
    assert len(sandbox.calls()) == 1


def test_truncate_cuts_the_body_and_the_connection(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("truncate", action="number", count=1)
    with pytest.raises(requests.exceptions.RequestException):
        call(url, "number").content  # noqa: B018  # reading the body is what fails
    host, port = url.split("//")[1].split("/")[0].split(":")
    sandbox.inject_fault("truncate", action="number", count=1)
    connection = http.client.HTTPConnection(host, int(port), timeout=5)
    connection.request("GET", f"/voice/?ac=number&uid=test&pwd={DOC_PWD}")
    response = connection.getresponse()
    with pytest.raises(http.client.IncompleteRead) as cut:
        response.read()
    full = '{"stat":"100","message":"成功","number":"100000"}'.encode()
    assert cut.value.partial == full[: len(full) // 2]
    connection.close()


def test_truncate_with_an_honest_length(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("truncate", length="truncated", bytes=10, count=1)
    response = call(url, "number")
    assert response.status_code == 200
    assert response.content == b'{"stat":"1'
    with pytest.raises(ValueError):
        json.loads(response.text)
    assert jcall(url, "number")["stat"] == "100"  # the connection survived for the next request


def test_html_page_in_place_of_the_reply(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("html", count=1)
    response = call(url, "status")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/html")
    assert response.text.lstrip().startswith("<html>")
    assert "Bad Gateway" in response.text
    sandbox.inject_fault("html", status=502, count=1)
    assert call(url, "status").status_code == 502


def test_wrong_charset_body(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("wrong_charset", count=1)
    response = call(url, "number")
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    with pytest.raises(UnicodeDecodeError):
        response.content.decode("utf-8")
    assert json.loads(response.content.decode("gbk")) == {
        "stat": "100",
        "message": "成功",
        "number": "100000",
    }


def test_wrong_charset_on_a_gbk_request(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("wrong_charset", count=1)
    response = call(url, "number", encode="gbk")
    assert response.headers["Content-Type"] == "text/plain; charset=gbk"
    assert json.loads(response.content.decode("utf-8"))["message"] == "成功"


def test_xml_bomb(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("xml_bomb", action="status", count=1)
    response = call(url, "status", format="xml")
    assert response.status_code == 200
    assert b"<!ENTITY lol9" in response.content
    assert len(response.content) < 2000  # small on the wire, billions of characters expanded
    with pytest.raises(defusedxml.EntitiesForbidden):
        defusedxml.ElementTree.fromstring(response.content)


def test_forced_stat_storm(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("stat", code=107, action="sendcode", count=3)
    replies = [send(url) for _ in range(4)]
    assert replies[:3] == [{"stat": "107", "message": "频率过快"}] * 3
    assert replies[3]["stat"] == "100"
    assert len(sandbox.calls()) == 1


def test_forced_stat_on_query_is_numeric_and_format_aware(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("stat", code=103)
    assert jcall(url, "query", encode="utf8") == {"stat": 103, "message": "操作失败"}
    assert (
        call(url, "number", format="xml").text
        == "<result><stat>103</stat><message>操作失败</message></result>"
    )


def test_stages_combine(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("latency", ms=100, count=1)
    sandbox.inject_fault("delay_after", ms=100, count=1)
    sandbox.inject_fault("http_status", status=502, after=True, count=1)
    started = time.monotonic()
    response = call(url, "sendcode", mobile=MOBILE, template="700001", content='{"code":"1"}')
    assert response.status_code == 502
    assert time.monotonic() - started >= 0.2
    assert len(sandbox.calls()) == 1
    assert sandbox.state.faults.public() == []


def test_oldest_matching_reply_fault_wins(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("http_status", status=500, count=1)
    sandbox.inject_fault("http_status", status=501, count=1)
    assert [call(url, "number").status_code for _ in range(3)] == [500, 501, 200]


def test_send_alias_matches_sendcode_filter(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("http_status", status=503, action="sendcode", count=1)
    assert call(url, "send", mobile=MOBILE, template="700001", content='{"code":"1"}').status_code == 503


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("nonsense", {}),
        ("latency", {"ms": -1}),
        ("latency", {"status": 500}),
        ("http_status", {"status": 99}),
        ("stat", {}),
        ("drop", {"count": 0}),
        ("truncate", {"length": "sometimes"}),
        ("drop", {"after": "yes"}),
    ],
)
def test_bad_faults_are_refused(sandbox: Sandbox, kind: str, params: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        sandbox.inject_fault(kind, **params)
    response = requests.post(sandbox.control_url + "faults", json={"kind": kind, **params}, timeout=5)
    assert response.status_code == 400
    assert response.json()["error"]


def test_faults_over_http(sandbox: Sandbox, url: str) -> None:
    control = sandbox.control_url
    created = requests.post(
        control + "faults",
        json={"kind": "http_status", "status": 503, "action": "sendcode", "count": 2},
        timeout=5,
    )
    assert created.status_code == 200
    fault_id = created.json()["id"]
    listed = requests.get(control + "faults", timeout=5).json()["faults"]
    assert [(f["id"], f["kind"], f["status"], f["remaining"]) for f in listed] == [
        (fault_id, "http_status", 503, 2)
    ]
    assert call(url, "sendcode", mobile=MOBILE, template="700001", content='{"code":"1"}').status_code == 503
    assert requests.get(control + "faults", timeout=5).json()["faults"][0]["remaining"] == 1
    assert requests.delete(control + "faults", timeout=5).json() == {"cleared": 1}
    assert send(url)["stat"] == "100"
    second = requests.post(control + "faults", json={"kind": "drop"}, timeout=5).json()["id"]
    assert requests.delete(f"{control}faults/{second}", timeout=5).status_code == 200
    assert requests.delete(f"{control}faults/{second}", timeout=5).status_code == 404
    assert send(url)["stat"] == "100"


def test_a_dropped_connection_does_not_hurt_the_server(sandbox: Sandbox, url: str) -> None:
    sandbox.inject_fault("drop", count=5)
    for _ in range(5):
        with pytest.raises(requests.exceptions.ConnectionError):
            call(url, "number")
    host, port = url.split("//")[1].split("/")[0].split(":")
    with socket.create_connection((host, int(port)), timeout=5) as raw:
        raw.sendall(b"BREW /voice/?ac=number HTTP/1.1\r\nHost: x\r\n\r\n")
        assert raw.recv(100).startswith(b"HTTP/1.1 501")
    assert jcall(url, "number")["stat"] == "100"
