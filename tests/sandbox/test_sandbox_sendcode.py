"""ac=sendcode (section 四): validation codes, balance, message ids, caps."""

from __future__ import annotations

import urllib.parse
from typing import Any

import pytest
import requests

from airflow_provider_smscn.sandbox import Sandbox
from tests.support.sandbox_calls import CODE, DOC_PWD, MOBILE, TEMPLATE, jcall, numbers, pwd_auth, send


def _balance(url: str) -> int:
    return int(jcall(url, "number")["number"])


@pytest.mark.parametrize("ac", ["sendcode", "send"])
@pytest.mark.parametrize("method", ["GET", "POST"])
def test_send_places_a_call_and_spends_one_unit(sandbox: Sandbox, url: str, ac: str, method: str) -> None:
    reply = jcall(url, ac, method=method, mobile=MOBILE, template=TEMPLATE, content=CODE)
    assert reply == {"stat": "100", "message": "发送成功"}
    assert _balance(url) == 99999
    [placed] = sandbox.calls()
    assert placed["uid"] == "test"
    assert placed["mobile"] == MOBILE
    assert placed["template"] == TEMPLATE
    assert placed["variables"] == {"code": "234336"}
    assert placed["mobileid"].isdigit()


def test_document_example_with_spaces_and_ids(sandbox: Sandbox, url: str) -> None:
    # the document's URL has a space before content; its full-width colon is a typo (see test below)
    reply = send(url, mobileids="1390000888812869461937", content=' {"code":"234336"}')
    assert reply["stat"] == "100"
    assert sandbox.calls()[0]["mobileid"] == "1390000888812869461937"


def test_many_numbers_spend_one_unit_each(sandbox: Sandbox, url: str) -> None:
    mobiles = numbers(5)
    assert send(url, mobile=",".join(mobiles))["stat"] == "100"
    assert _balance(url) == 100000 - 5
    assert [c["mobile"] for c in sandbox.calls()] == mobiles


def test_generated_ids_are_unique_digits_without_the_number(sandbox: Sandbox, url: str) -> None:
    mobiles = numbers(200)
    assert send(url, mobile=",".join(mobiles))["stat"] == "100"
    ids = [c["mobileid"] for c in sandbox.calls()]
    assert len(set(ids)) == 200
    for mobile, message_id in zip(mobiles, ids, strict=True):
        assert message_id.isdigit() and len(message_id) <= 30
        assert mobile not in message_id


def test_given_ids_are_used_in_order(sandbox: Sandbox, url: str) -> None:
    assert send(url, mobile="13900000001, 13900000002", mobileids="111,222,")["stat"] == "100"
    assert [(c["mobile"], c["mobileid"]) for c in sandbox.calls()] == [
        ("13900000001", "111"),
        ("13900000002", "222"),
    ]


def test_landline_with_area_code_is_a_number(url: str) -> None:
    assert send(url, mobile="01088886666")["stat"] == "100"


@pytest.mark.parametrize(
    ("params", "code"),
    [
        ({"mobile": ""}, 108),
        ({"mobile": " , ,"}, 108),
        ({"content": ""}, 108),
        ({"mobile": "1390000888"}, 112),
        ({"mobile": "139000088889"}, 112),
        ({"mobile": "23900008888"}, 112),
        ({"mobile": "1390000888a"}, 112),
        ({"mobile": "+8613900008888"}, 112),
        ({"mobile": "13900008888,12345"}, 112),
        ({"template": ""}, 163),
        ({"template": "700002"}, 163),
        ({"content": '{"code"："234336"}'}, 164),  # the document's example, full-width colon
        ({"content": '{"cod":"1"}'}, 164),
        ({"content": '{"code":"1","extra":"2"}'}, 164),
        ({"content": "{}"}, 164),
        ({"content": '["1"]'}, 164),
        ({"content": '{"code":true}'}, 164),
        ({"content": '{"code":null}'}, 164),
        ({"content": '{"code":{"a":1}}'}, 164),
        ({"mobileids": "1,2"}, 104),
        ({"mobileids": "12a"}, 104),
        ({"mobileids": "1" * 31}, 104),
        ({"mobile": "13900000001,13900000002", "mobileids": "7,7"}, 124),
    ],
)
def test_refusals_place_nothing(sandbox: Sandbox, url: str, params: dict[str, Any], code: int) -> None:
    sandbox.set_account(dedup_mobileids=True)  # 124 only exists with the (undocumented) id dedup
    reply = send(url, **params)
    assert reply["stat"] == str(code), reply
    assert reply["message"]
    assert sandbox.calls() == []
    assert _balance(url) == 100000


def test_number_values_are_variables(sandbox: Sandbox, url: str) -> None:
    assert send(url, content='{"code":352333}')["stat"] == "100"
    assert sandbox.calls()[0]["variables"] == {"code": 352333}


def test_too_many_numbers_gives_106(sandbox: Sandbox, url: str) -> None:
    assert send(url, mobile=",".join(numbers(1001)))["stat"] == "106"
    assert send(url, mobile=",".join(numbers(1000)))["stat"] == "100"
    sandbox.set_account(max_numbers=3)
    assert send(url, mobile=",".join(numbers(4, start=13800000000)))["stat"] == "106"
    assert len(sandbox.calls()) == 1000


def test_short_balance_refuses_the_whole_request(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(balance=2)
    assert send(url, mobile=",".join(numbers(3))) == {"stat": "102", "message": "短信不足"}
    assert _balance(url) == 2
    assert sandbox.calls() == []
    assert send(url, mobile=",".join(numbers(2)))["stat"] == "100"
    assert _balance(url) == 0
    assert send(url)["stat"] == "102"


def test_no_template_gives_161() -> None:
    with Sandbox(accounts=[{"uid": "bare", "password": "pw", "balance": 9}]) as box:
        auth = pwd_auth("bare", "pw")
        assert jcall(box.url, "number", auth=auth)["stat"] == "100"
        reply = jcall(box.url, "sendcode", auth=auth, mobile=MOBILE, template=TEMPLATE, content=CODE)
        assert reply == {"stat": "161", "message": "未添加短信模板"}


def test_template_without_slots_takes_no_content(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(templates={"700001": "您的验证码是：{$code}。", "700009": "欢迎"})
    assert send(url, template="700009", content="")["stat"] == "100"
    assert send(url, template="700009", content='{"code":"1"}')["stat"] == "164"


def test_template_with_two_slots(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(templates={"1": "{$name}，您的验证码是{$code}，{$code}"})
    assert send(url, template="1", content='{"code":"1"}')["stat"] == "164"
    assert send(url, template="1", content='{"code":"1","name":"王"}')["stat"] == "100"


def test_variable_length_limit_gives_169(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(max_variable_length=6)
    assert send(url, content='{"code":"1234567"}') == {"stat": "169", "message": "变量内容超过限制"}
    assert send(url, content='{"code":"123456"}')["stat"] == "100"


def test_repeated_message_ids_are_calls_like_any_other_by_default(sandbox: Sandbox, url: str) -> None:
    """The document says an id may repeat ("可以重复出现多次"): without the dedup option a repeat
    is sent, so a test that sends twice sees two calls."""
    assert send(url, mobile="13900000001", mobileids="501")["stat"] == "100"
    assert send(url, mobile="13900000001", mobileids="501")["stat"] == "100"
    assert send(url, mobile="13900000002,13900000003", mobileids="7,7")["stat"] == "100"
    assert [c["mobileid"] for c in sandbox.calls()] == ["501", "501", "7", "7"]


def test_repeated_message_id_gives_124_and_sends_nothing(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(dedup_mobileids=True)
    assert send(url, mobile="13900000001,13900000002", mobileids="501,502")["stat"] == "100"
    reply = send(url, mobile="13900000003,13900000004", mobileids="503,502")
    assert reply == {"stat": "124", "message": "重复提交过多"}
    assert len(sandbox.calls()) == 2
    assert _balance(url) == 99998
    assert send(url, mobile="13900000003", mobileids="503")["stat"] == "100"


def test_generated_ids_are_also_remembered(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(dedup_mobileids=True)
    assert send(url)["stat"] == "100"
    generated = sandbox.calls()[0]["mobileid"]
    assert send(url, mobileids=generated)["stat"] == "124"


def test_hourly_cap_gives_151(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(hourly_cap=3)
    assert send(url, mobile=",".join(numbers(2)))["stat"] == "100"
    assert send(url, mobile=",".join(numbers(2))) == {"stat": "151", "message": "每小时发送量限制"}
    assert send(url)["stat"] == "100"
    assert send(url)["stat"] == "151"
    assert len(sandbox.calls()) == 3


def test_daily_cap_gives_152(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(daily_cap=2, hourly_cap=5)
    assert send(url, mobile=",".join(numbers(2)))["stat"] == "100"
    assert send(url) == {"stat": "152", "message": "每天发送量限制"}
    assert len(sandbox.calls()) == 2


def test_caps_are_off_by_default(sandbox: Sandbox, url: str) -> None:
    for _ in range(3):
        assert send(url, mobile=",".join(numbers(1000)))["stat"] == "100"
    assert sandbox.account()["hourly_cap"] is None
    assert sandbox.account()["daily_cap"] is None


def test_gbk_content_without_encode_is_refused_with_104(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(templates={"1": "{$name}您好"})
    form = f"ac=sendcode&uid=test&pwd={DOC_PWD}&mobile={MOBILE}&template=1&content="
    raw = form.encode("ascii") + urllib.parse.quote_from_bytes('{"name":"王"}'.encode("gbk")).encode()
    response = requests.post(
        url, data=raw, headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10
    )
    assert response.json() == {"stat": "104", "message": "非法字符"}
    assert sandbox.calls() == []
