"""Reply shapes in json, xml and txt (document sections 四-七 and docs/api-decisions.md 6-11)."""

from __future__ import annotations

import json
import re
import urllib.parse
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import pytest
import requests

from tests.support.sandbox_calls import DOC_PWD, MOBILE, TEMPLATE, beijing_today, call, jcall, send

if TYPE_CHECKING:
    from airflow_provider_smscn.sandbox import Sandbox

TIME = r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}"


def _text(url: str, ac: str, fmt: str, **params: Any) -> str:
    response = call(url, ac, format=fmt, **params)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    return response.content.decode("utf-8")


def _send_two(url: str) -> None:
    assert send(url, mobile="13900000001,13900000002", mobileids="1001,1002")["stat"] == "100"


SENT = {"mobile": MOBILE, "template": TEMPLATE, "content": '{"code":"1"}'}
BAD_AUTH = {"auth": {"uid": "test", "pwd": "0" * 32}}
#: Replies that are the same every time, to the byte: (action, format, request parameters, reply).
EXACT_REPLIES = {
    "sendcode-json": ("sendcode", "json", SENT, '{"stat":"100","message":"发送成功"}'),
    "sendcode-xml": ("sendcode", "xml", SENT, "<result><stat>100</stat><message>发送成功</message></result>"),
    "sendcode-txt": ("sendcode", "txt", SENT, "sms&stat=100&message=发送成功"),
    "sendcode-error-json": ("sendcode", "json", BAD_AUTH, '{"stat":"101","message":"验证失败"}'),
    "sendcode-error-xml": ("sendcode", "xml", BAD_AUTH,
                           "<result><stat>101</stat><message>验证失败</message></result>"),
    "sendcode-error-txt": ("sendcode", "txt", BAD_AUTH, "sms&stat=101&message=验证失败"),
    "sendcode-error-nonsense": ("sendcode", "nonsense", BAD_AUTH, '{"stat":"101","message":"验证失败"}'),
    "status-empty-json": ("status", "json", {}, '{"stat":"100","total":"0","values":[]}'),
    "status-empty-xml": ("status", "xml", {},
                         "<result><stat>100</stat><total>0</total><values></values></result>"),
    "status-empty-txt": ("status", "txt", {}, "sms&stat=100&total=0"),
    "number-json": ("number", "json", {}, '{"stat":"100","message":"成功","number":"100000"}'),
    "number-xml": ("number", "xml", {},
                   "<result><stat>100</stat><message>成功</message><number>100000</number></result>"),
    "number-txt": ("number", "txt", {}, "sms&stat=100&remain=100000"),
    # an empty query has no stat at all
    "query-empty-json": ("query", "json", {"encode": "utf8"},
                         '{"total":"0","page_size":"0","total_page":"0"}'),
    "query-empty-xml": ("query", "xml", {"encode": "utf8"},
                        "<result><total>0</total><page_size>0</page_size><total_page>0</total_page></result>"),
    "query-empty-txt": ("query", "txt", {"encode": "utf8"}, "sms&total=0&page_size=0&total_page=0"),
    # query's error stat is a number in json (the other actions quote it)
    "query-error-json": ("query", "json", BAD_AUTH, '{"stat":101,"message":"验证失败"}'),
    "query-error-txt": ("query", "txt", BAD_AUTH, "sms&stat=101&message=验证失败"),
}


@pytest.mark.parametrize("case", list(EXACT_REPLIES))
def test_exact_reply(url: str, case: str) -> None:
    action, fmt, params, expected = EXACT_REPLIES[case]
    assert _text(url, action, fmt, **params) == expected


class TestStatus:
    def test_json(self, url: str) -> None:
        _send_two(url)
        reply = json.loads(_text(url, "status", "json"))
        assert list(reply) == ["stat", "total", "values"]
        assert reply["stat"] == "100" and reply["total"] == "2"
        first, second = reply["values"]
        assert list(first) == ["retime", "mobile", "mobileids", "resultcode", "status"]
        assert re.fullmatch(TIME, first["retime"])
        assert (first["mobile"], first["mobileids"], first["resultcode"], first["status"]) == (
            "13900000001",
            "1001",
            "100",
            "DELIVRD",
        )
        assert (second["mobile"], second["mobileids"]) == ("13900000002", "1002")


class TestQuery:
    def test_json_stat_is_a_number(self, url: str) -> None:
        _send_two(url)
        reply = json.loads(_text(url, "query", "json", encode="utf8"))
        assert list(reply) == ["stat", "total", "page_size", "total_page", "values"]
        assert reply["stat"] == 100
        assert (reply["total"], reply["page_size"], reply["total_page"]) == ("2", "2", "1")
        assert list(reply["values"][0]) == ["sendtime", "mobile", "content", "status"]
        assert reply["values"][0]["content"] == "您的验证码是：234336。"
        assert reply["values"][0]["status"] == "1"
        assert re.fullmatch(TIME, reply["values"][0]["sendtime"])
        assert reply["values"][0]["sendtime"].startswith(beijing_today())


#: The xml and txt replies once two calls were placed: (action, format, request parameters, the
#: reply as a pattern; the times vary).
TWO_CALLS_REPLIES = {
    "status-xml": ("status", "xml", {}, (
        r"<result><stat>100</stat><total>2</total><values>"
        rf"<value0><retime>{TIME}</retime><mobile>13900000001</mobile><mobileids>1001</mobileids>"
        r"<resultcode>100</resultcode><status>DELIVRD</status></value0>"
        rf"<value1><retime>{TIME}</retime><mobile>13900000002</mobile><mobileids>1002</mobileids>"
        r"<resultcode>100</resultcode><status>DELIVRD</status></value1>"
        r"</values></result>")),
    "status-txt": ("status", "txt", {}, (
        rf"sms&stat=100&total=2&value0\.retime={TIME}&value0\.mobile=13900000001&value0\.mobileids=1001"
        r"&value0\.resultcode=100&value0\.status=DELIVRD"
        rf"&value1\.retime={TIME}&value1\.mobile=13900000002&value1\.mobileids=1002"
        r"&value1\.resultcode=100&value1\.status=DELIVRD")),
    "query-xml": ("query", "xml", {"encode": "utf8"}, (
        r"<result><stat>100</stat><total>2</total><page_size>2</page_size><total_page>1</total_page>"
        rf"<values><value0><sendtime>{TIME}</sendtime><mobile>13900000001</mobile>"
        r"<content>您的验证码是：234336。</content><status>1</status></value0>"
        rf"<value1><sendtime>{TIME}</sendtime><mobile>13900000002</mobile>"
        r"<content>您的验证码是：234336。</content><status>1</status></value1></values></result>")),
    "query-txt": ("query", "txt", {"encode": "utf8"}, (
        r"sms&stat=100&total=2&page_size=2&total_page=1"
        rf"&value0\.sendtime={TIME}&value0\.mobile=13900000001&value0\.content=您的验证码是：234336。"
        r"&value0\.status=1"
        rf"&value1\.sendtime={TIME}&value1\.mobile=13900000002&value1\.content=您的验证码是：234336。"
        r"&value1\.status=1")),
}


@pytest.mark.parametrize("case", list(TWO_CALLS_REPLIES))
def test_reply_to_two_calls(url: str, case: str) -> None:
    action, fmt, params, pattern = TWO_CALLS_REPLIES[case]
    _send_two(url)
    text = _text(url, action, fmt, **params)
    assert re.fullmatch(pattern, text), text
    if fmt == "xml":  # well-formed, one element per value
        values = ET.fromstring(text).find("values")
        assert values is not None and [child.tag for child in values] == ["value0", "value1"]


def test_txt_escapes_separators(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(templates={"9": "a{$v}b"})
    assert send(url, template="9", content=json.dumps({"v": "%&=\r\n"}))["stat"] == "100"
    text = _text(url, "query", "txt", encode="utf8")
    assert "&value0.content=a%25%26%3D%0D%0Ab&" in text


def test_xml_escapes_markup(sandbox: Sandbox, url: str) -> None:
    sandbox.set_account(templates={"9": "{$v}"})
    assert send(url, template="9", content=json.dumps({"v": "<b>&"}))["stat"] == "100"
    root = ET.fromstring(_text(url, "query", "xml", encode="utf8"))
    assert root.findtext("values/value0/content") == "<b>&"


class TestGbk:
    def test_gbk_request_gets_gbk_reply(self, sandbox: Sandbox, url: str) -> None:
        sandbox.set_account(templates={"1": "{$name}，您的验证码是{$code}。"})
        form = {
            "ac": "sendcode",
            "uid": "test",
            "pwd": DOC_PWD,
            "mobile": MOBILE,
            "template": "1",
            "content": json.dumps({"name": "张伟", "code": "1234"}, ensure_ascii=False),
            "encode": "gbk",
        }
        body = urllib.parse.urlencode(form, encoding="gbk")
        response = requests.post(
            url, data=body, headers={"Content-Type": "application/x-www-form-urlencoded"}, timeout=10
        )
        assert response.headers["Content-Type"] == "text/plain; charset=gbk"
        assert response.content == '{"stat":"100","message":"发送成功"}'.encode("gbk")
        assert sandbox.calls()[0]["variables"] == {"name": "张伟", "code": "1234"}
        query = call(url, "query", encode="gbk")
        assert query.headers["Content-Type"] == "text/plain; charset=gbk"
        content = json.loads(query.content.decode("gbk"))["values"][0]["content"]
        assert content == "张伟，您的验证码是1234。"

    def test_gbk_get_request(self, sandbox: Sandbox, url: str) -> None:
        sandbox.set_account(templates={"1": "{$name}"})
        query = urllib.parse.urlencode(
            {"ac": "sendcode", "uid": "test", "pwd": DOC_PWD, "mobile": MOBILE, "template": "1",
             "content": '{"name":"王"}', "encode": "gbk", "format": "txt"},
            encoding="gbk",
        )  # fmt: skip
        response = requests.get(f"{url}?{query}", timeout=10)
        assert response.content.decode("gbk") == "sms&stat=100&message=发送成功"
        assert sandbox.calls()[0]["variables"] == {"name": "王"}

    def test_query_defaults_to_gbk(self, url: str) -> None:
        # section 七: ac=query reads GBK unless told encode=utf8 (other actions read UTF-8)
        gbk_key = urllib.parse.quote_from_bytes("王".encode("gbk"))  # %CD%F5: not valid UTF-8
        base = f"{url}?uid=test&pwd={DOC_PWD}&key={gbk_key}"
        assert requests.get(f"{base}&ac=query", timeout=10).json() == {
            "total": "0",
            "page_size": "0",
            "total_page": "0",
        }
        assert requests.get(f"{base}&ac=query&encode=utf8", timeout=10).json()["stat"] == 104
        assert requests.get(f"{base}&ac=number", timeout=10).json()["stat"] == "104"


class TestEnglish:
    def test_success(self, url: str) -> None:
        assert send(url, language="english") == {"stat": "100", "message": "SUCCESS"}
        assert jcall(url, "number", language="english")["message"] == "SUCCESS"

    @pytest.mark.parametrize(
        ("params", "code"),
        [({"auth": {"uid": "test", "pwd": "x"}}, "101"), ({"mobile": ""}, "108"), ({"template": "1"}, "163")],
    )
    def test_errors_are_english(self, url: str, params: dict[str, Any], code: str) -> None:
        reply = send(url, language="english", **params)
        assert reply["stat"] == code
        assert reply["message"].isascii() and reply["message"].strip()

    def test_default_is_chinese(self, url: str) -> None:
        assert send(url, mobile="")["message"] == "号码内容空"
