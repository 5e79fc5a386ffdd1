"""Authentication and account gates (sections 一 and 四), over raw HTTP."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import TYPE_CHECKING

import pytest
import requests

from airflow_provider_smscn.sandbox import Sandbox, server
from airflow_provider_smscn.sandbox.accounts import example_account
from airflow_provider_smscn.sandbox.server import api_password, tokenkey
from tests.support.sandbox_calls import (
    DOC_PWD,
    DOC_TIMESTAMP,
    DOC_TOKENKEY,
    PASSWORD,
    SECRET,
    UID,
    jcall,
    md5,
    pwd_auth,
    send,
    token_auth,
)

if TYPE_CHECKING:
    from collections.abc import Callable


def test_document_vectors_hold() -> None:
    assert md5(PASSWORD + UID) == DOC_PWD
    assert md5(UID + SECRET + DOC_TIMESTAMP) == DOC_TOKENKEY
    assert api_password(PASSWORD, UID) == DOC_PWD
    assert tokenkey(UID, SECRET, DOC_TIMESTAMP) == DOC_TOKENKEY


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_document_pwd_is_accepted(url: str, method: str) -> None:
    reply = jcall(url, "number", method=method, auth={"uid": UID, "pwd": DOC_PWD})
    assert reply["stat"] == "100"


def test_pwd_hex_case_does_not_matter(url: str) -> None:
    assert jcall(url, "number", auth={"uid": UID, "pwd": DOC_PWD.upper()})["stat"] == "100"


def test_document_tokenkey_is_too_old(url: str) -> None:
    auth = {"uid": UID, "tokenkey": DOC_TOKENKEY, "timestamp": DOC_TIMESTAMP}
    assert jcall(url, "number", auth=auth) == {"stat": "119", "message": "超过验证时效"}


@pytest.mark.parametrize("offset", [0, 290, -290])
def test_fresh_tokenkey_is_accepted(url: str, offset: int) -> None:
    assert jcall(url, "number", auth=token_auth(offset_seconds=offset))["stat"] == "100"


@pytest.mark.parametrize("offset", [310, -310, 86400])
def test_tokenkey_outside_five_minutes_gives_119(url: str, offset: int) -> None:
    assert jcall(url, "number", auth=token_auth(offset_seconds=offset))["stat"] == "119"


@pytest.mark.parametrize(
    "stamp", [None, "", "2012010210203", "201201021020330", "20121302102033", "2012-01-02"]
)
def test_malformed_or_missing_timestamp_gives_118(url: str, stamp: str | None) -> None:
    auth = {"uid": UID, "tokenkey": DOC_TOKENKEY}
    if stamp is not None:
        auth["timestamp"] = stamp
    assert jcall(url, "number", auth=auth) == {"stat": "118", "message": "验证时间戳格式不对"}


def test_tokenkey_wins_over_pwd(url: str) -> None:
    auth = {**pwd_auth(), "tokenkey": "0" * 32, "timestamp": token_auth()["timestamp"]}
    assert jcall(url, "number", auth=auth)["stat"] == "101"


@pytest.mark.parametrize(
    "make_auth",
    [
        lambda: {"uid": UID, "pwd": md5("wrong" + UID)},
        lambda: {"uid": "nobody", "pwd": md5(PASSWORD + "nobody")},
        lambda: {"uid": "", "pwd": DOC_PWD},
        lambda: {"pwd": DOC_PWD},
        lambda: {"uid": UID},
        lambda: {"uid": UID, "pwd": ""},
        # signed when the test runs, not when it is collected: a slow run would make it 119
        lambda: token_auth(secret="not-the-secret"),
        lambda: token_auth(uid="nobody"),
    ],
    ids=["wrong-pwd", "unknown-uid", "empty-uid", "no-uid", "no-credentials", "empty-pwd", "bad-sig", "uid"],
)
def test_bad_credentials_give_101(url: str, make_auth: Callable[[], dict[str, str]]) -> None:
    assert jcall(url, "number", auth=make_auth()) == {"stat": "101", "message": "验证失败"}


def test_tokenkey_on_account_without_secret_gives_101() -> None:
    account = {"uid": "plain", "password": "pw", "balance": 1}
    with Sandbox(accounts=[account]) as box:
        assert jcall(box.url, "number", auth=pwd_auth("plain", "pw"))["stat"] == "100"
        assert jcall(box.url, "number", auth=token_auth("plain", secret=""))["stat"] == "101"


def test_bound_ip_mismatch_gives_117(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(bound_ips=["10.1.2.3"])
    assert jcall(url, "number") == {"stat": "117", "message": "绑定IP不正确"}
    assert send(url)["stat"] == "117"
    assert sandbox.calls() == []
    sandbox.set_account(bound_ips=["10.1.2.3", "127.0.0.0/8"])
    assert jcall(url, "number")["stat"] == "100"


def test_bad_credentials_checked_before_ip_binding(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(bound_ips=["10.1.2.3"])
    assert jcall(url, "number", auth=pwd_auth(password="wrong"))["stat"] == "101"


def test_frozen_account_gives_109(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(frozen=True)
    assert jcall(url, "number") == {"stat": "109", "message": "账号冻结"}
    assert send(url)["stat"] == "109"
    assert sandbox.calls() == []
    sandbox.set_account(frozen=False)
    assert send(url)["stat"] == "100"


def test_rate_limit_gives_107_and_refusals_do_not_count(
    sandbox: Sandbox, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The sandbox's monotonic clock stands still unless the test moves it: the one-second window is
    # checked exactly, however slow the machine.
    now = [1000.0]
    monkeypatch.setattr(server, "time", SimpleNamespace(monotonic=lambda: now[0], time=time.time,
                                                        sleep=time.sleep))
    sandbox.set_account(rate_limit_per_second=3)
    with requests.Session() as session:
        accepted = [jcall(url, "number", session=session)["stat"] for _ in range(3)]
        now[0] += 0.5
        refused = [jcall(url, "number", session=session)["stat"] for _ in range(3)]
        assert jcall(url, "status", session=session) == {"stat": "107", "message": "频率过快"}
        now[0] += 0.55
        # the accepted three are over a second old, the refused ones are not: they must not count
        after_window = jcall(url, "number", session=session)["stat"]
        fourth_and_fifth = [jcall(url, "number", session=session)["stat"] for _ in range(2)]
        over_again = jcall(url, "number", session=session)["stat"]
    assert accepted == ["100"] * 3
    assert refused == ["107"] * 3
    assert after_window == "100"
    assert fourth_and_fifth == ["100"] * 2 and over_again == "107"  # the new window holds three again


def test_default_rate_limit_is_50_a_second() -> None:
    with Sandbox() as box, requests.Session() as session:
        started = time.monotonic()
        stats = [jcall(box.url, "number", session=session)["stat"] for _ in range(51)]
        if time.monotonic() - started >= 1.0:
            pytest.skip("51 local requests took over a second; the one-second window cannot be checked")
    assert stats == ["100"] * 50 + ["107"]


def test_rate_limit_is_per_account() -> None:
    other = {"uid": "other", "password": "pw", "balance": 1, "rate_limit_per_second": 1}
    with Sandbox(accounts=[example_account(rate_limit_per_second=1), other]) as box:
        assert jcall(box.url, "number")["stat"] == "100"
        assert jcall(box.url, "number", auth=pwd_auth("other", "pw"))["stat"] == "100"
        assert jcall(box.url, "number")["stat"] == "107"


@pytest.mark.parametrize("ac", ["", "nonsense", "SENDCODE!"])
def test_unknown_action_gives_103(url: str, ac: str) -> None:
    assert jcall(url, ac) == {"stat": "103", "message": "操作失败"}


def test_send_forbidden_gives_116_only_for_sends(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(send_forbidden=True)
    assert send(url) == {"stat": "116", "message": "禁止接口发送"}
    assert jcall(url, "number")["stat"] == "100"
