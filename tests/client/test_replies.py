from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_smscn.client.errors import SmsCnResponseError
from airflow_provider_smscn.client.replies import (
    charset_from_content_type,
    decode_body,
    parse_reply,
    parse_uint,
    safe_excerpt,
)
from tests.support import vendor_replies as samples

TEXT = "sms&stat=100&message=发送成功"


class TestDecodeBody:
    @pytest.mark.parametrize(
        ("body", "declared"),
        [
            (TEXT.encode("utf-8"), "utf-8"),
            (TEXT.encode("utf-8"), "UTF8"),
            (TEXT.encode("utf-8"), None),
            (TEXT.encode("gbk"), "gbk"),
            (TEXT.encode("gbk"), "GB2312"),
            (TEXT.encode("gbk"), None),  # undeclared GBK: UTF-8 fails, GBK fallback
            (TEXT.encode("gbk"), "utf-8"),  # wrongly declared: still read
            (TEXT.encode("utf-8"), "x-no-such-charset"),
            (b"\xef\xbb\xbf" + TEXT.encode("utf-8"), None),  # BOM dropped
        ],
    )
    def test_utf8_and_gbk(self, body: bytes, declared: str | None) -> None:
        assert decode_body(body, declared) == TEXT

    def test_declared_charset_wins(self) -> None:
        assert decode_body("é".encode("latin-1"), "iso-8859-1") == "é"

    def test_undecodable_bytes_do_not_crash(self) -> None:
        text = decode_body(b"\x80\xff\xfe\x81\x00", "utf-8")
        assert isinstance(text, str)

    @given(st.binary(max_size=200), st.sampled_from([None, "utf-8", "gbk", "latin-1", "bogus"]))
    @settings(max_examples=200, deadline=None)
    def test_never_raises(self, body: bytes, declared: str | None) -> None:
        assert isinstance(decode_body(body, declared), str)

    @pytest.mark.parametrize(
        ("header", "charset"),
        [
            ("text/plain; charset=utf-8", "utf-8"),
            ('text/plain;charset="GBK"', "GBK"),
            ("text/html", None),
            (None, None),
            ("", None),
        ],
    )
    def test_charset_from_content_type(self, header: str | None, charset: str | None) -> None:
        assert charset_from_content_type(header) == charset


class TestParseEveryAction:
    @pytest.mark.parametrize("fmt", samples.FORMATS)
    def test_send(self, fmt: str) -> None:
        assert parse_reply(samples.SEND_OK[fmt], fmt) == {"stat": 100, "message": "发送成功"}

    @pytest.mark.parametrize("fmt", samples.FORMATS)
    def test_balance(self, fmt: str) -> None:
        reply = parse_reply(samples.BALANCE_OK[fmt], fmt)
        assert reply["stat"] == 100
        assert reply.get("number", reply.get("remain")) == "2123432"

    @pytest.mark.parametrize("fmt", samples.FORMATS)
    def test_status(self, fmt: str) -> None:
        expected = {"stat": 100, "total": "2", "values": samples.REPORTS}
        assert parse_reply(samples.STATUS_OK[fmt], fmt) == expected

    @pytest.mark.parametrize("fmt", samples.FORMATS)
    def test_status_empty(self, fmt: str) -> None:
        reply = parse_reply(samples.STATUS_EMPTY[fmt], fmt)
        assert reply["stat"] == 100
        assert reply.get("values", []) == []

    @pytest.mark.parametrize("fmt", samples.FORMATS)
    def test_query(self, fmt: str) -> None:
        assert parse_reply(samples.QUERY_OK[fmt], fmt) == {
            "stat": 100,
            "total": "2",
            "page_size": "2",
            "total_page": "1",
            "values": samples.RECORDS,
        }

    @pytest.mark.parametrize("fmt", samples.FORMATS)
    def test_query_empty_has_no_stat(self, fmt: str) -> None:
        assert parse_reply(samples.QUERY_EMPTY[fmt], fmt) == {
            "stat": None,
            "total": "0",
            "page_size": "0",
            "total_page": "0",
        }

    @pytest.mark.parametrize("fmt", samples.FORMATS)
    @pytest.mark.parametrize("numeric", [False, True])
    def test_error_stat_string_or_number(self, fmt: str, numeric: bool) -> None:
        reply = samples.error_body(fmt, 101, numeric=numeric)
        assert parse_reply(reply, fmt) == {"stat": 101, "message": "验证失败"}


class TestValuesOrder:
    def _item(self, i: int) -> str:
        return f"<value{i}><mobile>1390000{i:04d}</mobile></value{i}>"

    def test_xml_value10_after_value9(self) -> None:
        order = [10, 2, 0, 11, 1, 9, 3, 4, 5, 6, 7, 8]
        body = f"<result><stat>100</stat><values>{''.join(self._item(i) for i in order)}</values></result>"
        values = parse_reply(body, "xml")["values"]
        assert [v["mobile"] for v in values] == [f"1390000{i:04d}" for i in range(12)]

    def test_txt_value10_after_value9(self) -> None:
        pairs = "&".join(f"value{i}.mobile=1390000{i:04d}" for i in [10, 9, 0, 1, 2, 3, 4, 5, 6, 7, 8])
        values = parse_reply(f"sms&stat=100&{pairs}", "txt")["values"]
        assert [v["mobile"] for v in values] == [f"1390000{i:04d}" for i in range(11)]

    def test_json_values_as_php_object(self) -> None:
        body = '{"stat":"100","values":{"10":{"mobile":"c"},"2":{"mobile":"b"},"0":{"mobile":"a"}}}'
        assert [v["mobile"] for v in parse_reply(body, "json")["values"]] == ["a", "b", "c"]

    def test_json_scalars_become_strings(self) -> None:
        body = '{"stat":100,"total":2,"x":null,"y":1.0,"values":[{"resultcode":100,"n":null}]}'
        assert parse_reply(body, "json") == {
            "stat": 100,
            "total": "2",
            "x": "",
            "y": "1",
            "values": [{"resultcode": "100", "n": ""}],
        }

    def test_xml_repeated_value_tags_in_document_order(self) -> None:
        body = (
            "<result><stat>100</stat><values><value><m>a</m></value><value><m>b</m></value></values></result>"
        )
        assert parse_reply(body, "xml")["values"] == [{"m": "a"}, {"m": "b"}]

    def test_txt_percent_decoding_and_first_equals(self) -> None:
        assert parse_reply("sms&stat=100&message=a%26b%3Dc%25%0Ad=e", "txt")["message"] == "a&b=c%\nd=e"


BILLION_LAUGHS = """<?xml version="1.0"?>
<!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
<!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">]>
<result><stat>100</stat><message>&lol3;</message></result>"""
EXTERNAL_ENTITY = """<?xml version="1.0"?>
<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>
<result><stat>100</stat><message>&xxe;</message></result>"""
DTD_ONLY = """<?xml version="1.0"?><!DOCTYPE result SYSTEM "http://example.invalid/r.dtd">
<result><stat>100</stat></result>"""
HTML = "<html><head><title>502 Bad Gateway</title></head><body><center>502 Bad Gateway</center></body></html>"


class TestUnreadable:
    @pytest.mark.parametrize("body", [BILLION_LAUGHS, EXTERNAL_ENTITY, DTD_ONLY])
    def test_xml_attacks_refused(self, body: str) -> None:
        with pytest.raises(SmsCnResponseError, match="XML refused"):
            parse_reply(body, "xml", action="status")

    @pytest.mark.parametrize("fmt", samples.FORMATS)
    @pytest.mark.parametrize("body", [HTML, "", "   \n", "Internal Server Error"])
    def test_html_and_empty(self, fmt: str, body: str) -> None:
        with pytest.raises(SmsCnResponseError, match="unreadable") as info:
            parse_reply(body, fmt, action="number")
        assert "ac=number" in str(info.value)

    @pytest.mark.parametrize(
        ("fmt", "body", "reason"),
        [
            ("json", '{"stat":"100","message":"发送', "not valid JSON"),
            ("json", '["stat", 100]', "not an object"),
            ("json", '"100"', "not an object"),
            ("json", "null", "not an object"),
            ("json", "[" * 100_000, "not valid JSON"),
            ("json", '{"stat":"ok"}', "'stat' is not a number"),
            ("json", '{"stat":true}', "'stat' is not a number"),
            ("json", '{"stat":"100","values":[1,2]}', "'values'"),
            ("xml", "<result><stat>100</stat>", "not well-formed"),
            ("xml", "<result><stat>x</stat></result>", "'stat' is not a number"),
            ("xml", "<result><stat>１００</stat></result>", "'stat' is not a number"),
            ("txt", "sms", "no key=value"),
            ("txt", "ok&stat=100", "no 'sms&' prefix"),
            ("txt", "sms&stat=100&garbage", "key=value"),
        ],
    )
    def test_malformed(self, fmt: str, body: str, reason: str) -> None:
        with pytest.raises(SmsCnResponseError, match=reason):
            parse_reply(body, fmt, action="sendcode")

    def test_txt_without_prefix_but_with_pairs_is_read(self) -> None:
        assert parse_reply("stat=100&remain=5", "txt") == {"stat": 100, "remain": "5"}

    def test_excerpt_is_short_and_redacted(self) -> None:
        body = (
            "<html>pwd=b9887c5ebb23ebb294acab183ecf0769&tokenkey=67DA3BB4523CE538FF9ADEC57DC25162 "
            '"secret_key": "64CQMlr579J0L46U9q1qR285Risfc04G" call 13900008888 ' + "x" * 500
        )
        with pytest.raises(SmsCnResponseError) as info:
            parse_reply(body, "json", action="status")
        error = info.value
        assert error.body_excerpt is not None and len(error.body_excerpt) <= 200
        for secret in [
            "b9887c5ebb23ebb294acab183ecf0769",
            "67DA3BB4523CE538FF9ADEC57DC25162",
            "64CQMlr579J0L46U9q1qR285Risfc04G",
            "13900008888",
        ]:
            assert secret not in str(error)
        assert "139****8888" in str(error)
        assert error.action == "status"

    def test_lone_md5_redacted(self) -> None:
        assert "b9887c5e" not in safe_excerpt("oops b9887c5ebb23ebb294acab183ecf0769 oops")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("100", 100),
        (" 7 ", 7),
        (5, 5),
        ("-1", None),
        (True, None),
        ("²", None),
        ("", None),
        (None, None),
        (-3, None),
    ],
)
def test_parse_uint(value: object, expected: int | None) -> None:
    assert parse_uint(value) == expected


@pytest.mark.parametrize("fmt", samples.FORMATS)
@given(text=st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_fuzz_only_response_errors(fmt: str, text: str) -> None:
    try:
        reply = parse_reply(text, fmt)
    except SmsCnResponseError as exc:
        assert exc.body_excerpt is not None and len(exc.body_excerpt) <= 200
    else:
        assert reply["stat"] is None or isinstance(reply["stat"], int)
        assert all(isinstance(v, dict) for v in reply.get("values", []))


@pytest.mark.parametrize("fmt", samples.FORMATS)
@given(
    text=st.one_of(
        st.from_regex(r"\A(sms&)?([a-z0-9_.]{1,8}=[^&]{0,8}&){0,5}\Z"),
        st.from_regex(r"\A<result>(<[a-z0-9]{1,6}>[^<&]{0,6}</[a-z0-9]{1,6}>){0,4}</result>\Z"),
        st.from_regex(r'\A\{("[a-z]{1,5}":("[^"\\]{0,5}"|[0-9]{1,3}|\[\]|null),?){0,4}\}\Z'),
    )
)
@settings(max_examples=300, deadline=None)
def test_fuzz_near_valid_bodies(fmt: str, text: str) -> None:
    with contextlib.suppress(SmsCnResponseError):
        parse_reply(text, fmt)
