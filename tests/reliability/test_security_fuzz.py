"""Property-based fuzz of the reply readers: ``decode_body`` / ``parse_reply`` and the client's
reading of a whole HTTP reply (status, Content-Type, body) for every action.

``tests/client/test_replies.py`` already fuzzes ``parse_reply`` with arbitrary text and near-valid
bodies; this file adds what it does not cover: raw bytes with any declared charset, structured
json-ish / xml-ish / txt-ish documents, whole HTTP replies through ``SmsCnClient`` (with statuses and
headers), replies echoing the signed request (credentials must not come back out in an error),
and round trips of valid replies built from docs/api-decisions.md (#6-#12).

The contract under test: a reader returns a dict (a typed result) or raises an ``SmsCnError``
(``SmsCnResponseError`` for the parsers), never any other exception.
"""

from __future__ import annotations

import json
import urllib.parse
from xml.sax.saxutils import escape

import pytest
import requests_mock as requests_mock_module
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_smscn.client import (
    DeliveryReport,
    RetryPolicy,
    SendResult,
    SentRecord,
    SmsCnApiError,
    SmsCnClient,
    SmsCnError,
    SmsCnResponseError,
)
from airflow_provider_smscn.client.replies import charset_from_content_type, decode_body, parse_reply
from tests.support.leak_checks import assert_clean, exception_text
from tests.support.secret_scan import LEAK_PASSWORD, LEAK_SECRET_KEY, LEAK_UID, SecretScan

FORMATS = ("json", "xml", "txt")
ACTIONS = ("sendcode", "number", "status", "query")
URL = "http://127.0.0.1:9/voice/"
# No example database: the suite leaves nothing behind in the work tree.
FUZZ = settings(max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=100, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])

# ------------------------------------------------------------------------------ strategies

CHARSETS = st.one_of(
    st.none(),
    st.sampled_from(["utf-8", "UTF8", "gbk", "gb2312", "GB18030", "latin-1", "utf-16", "utf-7", "ascii",
                     "base64", "rot13", "zlib", "hex", "uu", "punycode", "idna", "undefined",
                     "unicode_escape", "no-such-charset", "", "\x00"]),
    st.text(max_size=12),
)
# Text that survives XML (no control characters, no surrogates) and has no edge whitespace
# (readers strip element text; the txt reader strips the body's ends).
VALUE_TEXT = st.text(
    st.characters(blacklist_categories=("Cs", "Cc", "Co", "Cn", "Zl", "Zp")), max_size=20
).map(str.strip)
DIGITS = st.text("0123456789", min_size=1, max_size=30)
MOBILE = st.from_regex(r"\A1[3-9][0-9]{9}\Z")
TIME = st.datetimes().map(lambda d: d.strftime("%Y-%m-%d %H:%M:%S"))

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=20,
)
REPLY_KEYS = st.sampled_from(["stat", "message", "number", "total", "values", "page_size", "total_page",
                              "remain", "0", "mobile"]) | st.text(max_size=6)


@st.composite
def json_ish(draw: st.DrawFn) -> str:
    """JSON documents shaped like replies: objects with reply keys and any JSON values."""
    data = draw(st.dictionaries(REPLY_KEYS, json_values, max_size=6))
    if draw(st.booleans()):
        data["stat"] = draw(st.sampled_from(["100", 100, "107", "abc", -1, 1.5, None, [], {}, "１００"]))
    if draw(st.booleans()):
        data["values"] = draw(st.one_of(
            st.lists(st.dictionaries(REPLY_KEYS, json_values, max_size=4), max_size=4),
            st.dictionaries(st.sampled_from(["0", "1", "10", "x", "-1"]),
                            st.dictionaries(REPLY_KEYS, json_values, max_size=3), max_size=3),
            json_values,
        ))
    text = json.dumps(data, ensure_ascii=draw(st.booleans()), allow_nan=True)
    return draw(st.sampled_from([text, text[: len(text) // 2], " " + text + "\n", "\ufeff" + text]))


TAGS = st.sampled_from(["result", "stat", "message", "number", "values", "value0", "value1", "value10",
                        "value", "mobile", "mobileids", "total", "x"])


@st.composite
def xml_element(draw: st.DrawFn, depth: int = 0) -> str:
    tag = draw(TAGS)
    attrs = "".join(f' a{i}="{escape(v, {chr(34): "&quot;"})}"'
                    for i, v in enumerate(draw(st.lists(VALUE_TEXT, max_size=2))))
    children = draw(st.lists(xml_element(depth + 1), max_size=3)) if depth < 3 else []
    text = escape(draw(VALUE_TEXT))
    if draw(st.booleans()) and not children:
        text = f"<![CDATA[{draw(VALUE_TEXT).replace(']]>', '')}]]>"
    return f"<{tag}{attrs}>{text}{''.join(children)}</{tag}>"


@st.composite
def xml_ish(draw: st.DrawFn) -> str:
    """XML documents shaped like replies, plus the hostile parts: DTDs, entities, PIs, comments."""
    body = draw(xml_element())
    if draw(st.booleans()):
        body = f"<result>{draw(xml_element(1))}<stat>{escape(draw(VALUE_TEXT))}</stat></result>"
    prolog = draw(st.sampled_from([
        "", '<?xml version="1.0" encoding="utf-8"?>', '<?xml version="1.0" encoding="gbk"?>',
        "<!-- comment -->", '<!DOCTYPE result [<!ENTITY e "boom">]>',
        '<!DOCTYPE result SYSTEM "http://127.0.0.1:9/x.dtd">', "<?pi data?>",
    ]))
    text = prolog + body
    if draw(st.booleans()):
        cut = draw(st.integers(0, len(text)))
        text = text[:cut] + draw(st.sampled_from(["", "&e;", "&#0;", "&#xD800;", "<", "&amp", "]]>"]))
    return text


TXT_KEY = st.one_of(
    st.sampled_from(["stat", "message", "remain", "total", "page_size", "total_page"]),
    st.builds(lambda i, k: f"value{i}.{k}", st.integers(0, 1_000_000_0),
              st.sampled_from(["mobile", "mobileids", "status", "resultcode", "retime", "content", ""])),
    st.text(max_size=6),
)
TXT_VALUE = st.one_of(
    st.text(max_size=12),
    st.from_regex(r"\A(%[0-9A-Fa-f]{2}|%[^0-9A-Fa-f]?.?|[^&%])*\Z", fullmatch=True),
)


@st.composite
def txt_ish(draw: st.DrawFn) -> str:
    """txt replies: an optional prefix, then ``key=value`` pairs joined by ``&`` (percent escapes)."""
    pairs = draw(st.lists(st.tuples(TXT_KEY, st.sampled_from(["=", "", "=="]), TXT_VALUE), max_size=8))
    prefix = draw(st.sampled_from(["sms&", "", "SMS&", "html&", "&", "sms"]))
    return prefix + "&".join(k + sep + v for k, sep, v in pairs)


ANY_TEXT = st.one_of(json_ish(), xml_ish(), txt_ish(), st.text(max_size=200))
ENCODED = st.tuples(ANY_TEXT, st.sampled_from(["utf-8", "gbk", "gb18030", "utf-16", "latin-1"])).map(
    lambda pair: pair[0].encode(pair[1], errors="replace"))
ANY_BODY = st.one_of(st.binary(max_size=300), ENCODED)


def check_reply(reply: object) -> None:
    """The one shape every successful parse has (replies.py docstring)."""
    assert isinstance(reply, dict)
    assert reply["stat"] is None or (isinstance(reply["stat"], int) and reply["stat"] >= 0)
    for key, value in reply.items():
        assert isinstance(key, str)
        if key == "values":
            assert isinstance(value, list)
            assert all(isinstance(item, dict) and all(isinstance(v, str) for v in item.values())
                       for item in value)
        elif key != "stat":
            assert isinstance(value, str)


def parse_or_response_error(text: str, fmt: str) -> dict | None:
    try:
        reply = parse_reply(text, fmt, action="status")
    except SmsCnResponseError as exc:
        assert "ac=status" in str(exc)
        assert exc.body_excerpt is not None and len(exc.body_excerpt) <= 200
        return None
    check_reply(reply)
    return reply


# -------------------------------------------------------------------------- decode + parse


@FUZZ
@given(body=st.binary(max_size=300), charset=CHARSETS)
@example(body=b"sms&stat=100", charset="base64")
@example(body=b"sms&stat=100", charset="rot13")
@example(body=b"\xff", charset="undefined")
@example(body=b"sms&stat=100", charset="\x00")
def test_decode_body_never_raises_whatever_the_declared_charset(body, charset):
    assert isinstance(decode_body(body, charset), str)


@FUZZ
@given(content_type=st.one_of(st.none(), st.text(max_size=60),
                              st.builds("text/plain; charset={}".format, CHARSETS)),
       body=ANY_BODY)
@example(content_type="text/plain; charset=zlib", body=b'{"stat":"100"}')
def test_content_type_header_then_decode_never_raises(content_type, body):
    assert isinstance(decode_body(body, charset_from_content_type(content_type)), str)


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(body=ANY_BODY, charset=CHARSETS)
def test_any_bytes_decode_then_parse_to_a_dict_or_a_response_error(fmt, body, charset):
    parse_or_response_error(decode_body(body, charset), fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(text=json_ish())
@example(text="[" * 100_000)
@example(text='{"values":' * 5000)
@example(text='{"stat": 1e999}')
@example(text='{"stat": "100", "values": {"0": {}, "x": {}}}')
def test_json_ish_documents(fmt, text):
    parse_or_response_error(text, fmt)


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(text=xml_ish())
@example(text="<result>" * 50_000)
@example(text="<a>" * 3000 + "</a>" * 3000)
@example(text='<!DOCTYPE r [<!ENTITY a "a"><!ENTITY b "&a;&a;">]><result><stat>&b;</stat></result>')
@example(text='<result xmlns:x="u"><x:stat>100</x:stat><values><value0 /></values></result>')
def test_xml_ish_documents(fmt, text):
    reply = parse_or_response_error(text, fmt)
    if fmt == "xml" and "<!DOCTYPE" in text:
        assert reply is None  # DTDs are refused, whatever they declare


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(text=txt_ish())
@example(text="sms&value99999999.mobile=1&stat=100")
@example(text="sms&stat=100&message=%E5%8F%91%ZZ%")
@example(text="sms&stat=%31%30%30")
def test_txt_ish_documents(fmt, text):
    parse_or_response_error(text, fmt)


# ---------------------------------------------------------------------- the client's reading


def fuzz_client(fmt: str, attempts: int = 2, **kwargs) -> SmsCnClient:
    return SmsCnClient(LEAK_UID, secret_key=LEAK_SECRET_KEY, base_url=URL, reply_format=fmt,
                       retry=RetryPolicy(max_attempts=attempts, sleep=lambda _: None), **kwargs)


def call(client: SmsCnClient, action: str) -> object:
    if action == "sendcode":
        return client.send_voice_code(["13912340001"], "700001", {"code": "730519"})
    if action == "number":
        return client.get_balance()
    if action == "status":
        return client.pull_delivery_reports()
    return client.query_sent_records()


RESULT_TYPES = {"sendcode": SendResult, "number": int, "status": DeliveryReport, "query": SentRecord}
STATUSES = st.sampled_from([200, 200, 200, 201, 204, 301, 302, 400, 404, 408, 429, 500, 502, 503])
CONTENT_TYPES = st.one_of(
    st.sampled_from(["text/plain; charset=utf-8", "text/plain; charset=gbk", "text/plain", "text/html",
                     "application/json", "application/xml; charset=base64",
                     'text/plain; charset="utf-16"']),
    st.builds("text/plain; charset={}".format, st.text(st.characters(min_codepoint=33, max_codepoint=126),
                                                       max_size=10)),
)


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(action=st.sampled_from(ACTIONS), status=STATUSES, content_type=CONTENT_TYPES, body=ANY_BODY)
def test_client_reads_any_http_reply_into_a_result_or_an_smscn_error(fmt, action, status, content_type, body):
    client = fuzz_client(fmt, attempts=2)
    with requests_mock_module.Mocker() as mock:
        mock.post(URL, content=body, status_code=status, headers={"Content-Type": content_type})
        try:
            result = call(client, action)
        except SmsCnError as exc:
            assert exc.__cause__ is None
            assert f"ac={action}" in str(exc) or getattr(exc, "action", None) == action
        else:
            # a readable reply is taken for what it says even under a 4xx; redirects and 5xx never
            assert status < 300 or 400 <= status < 500
            expected = RESULT_TYPES[action]
            if isinstance(result, list):
                assert all(isinstance(item, expected) for item in result)
            else:
                assert isinstance(result, expected)
        assert 1 <= mock.call_count <= 2  # the retry bound holds, whatever came back


@pytest.mark.parametrize("fmt", FORMATS)
@FEW
@given(action=st.sampled_from(ACTIONS), status=st.sampled_from([200, 400, 403, 404, 500, 503]),
       wrap=st.sampled_from(["{}", "<html>{}</html>", "sms&{}", '{{"echo": "{}"}}',
                             "<result><x>{}</x></result>"]),
       unquote=st.booleans(), auth=st.sampled_from(["secret", "password", "api_password"]))
def test_reply_echoing_the_signed_request_never_shows_a_credential(fmt, action, status, wrap, unquote, auth):
    """A proxy or WAF page that quotes the request back: the error must not carry the credentials,
    the full numbers or the code that were in it."""
    scan = SecretScan()
    creds = {"secret": {"secret_key": LEAK_SECRET_KEY}, "password": {"password": LEAK_PASSWORD},
             "api_password": {"api_password": scan.secrets()["pwd/api_password"]}}[auth]
    client = SmsCnClient(LEAK_UID, base_url=URL, reply_format=fmt,
                         retry=RetryPolicy(max_attempts=1, sleep=lambda _: None), **creds)

    def echo(request, context):
        form = request.text or ""
        if unquote:
            form = urllib.parse.unquote(form)
        context.status_code = status
        return wrap.format(form).encode("utf-8")

    with requests_mock_module.Mocker() as mock:
        mock.post(URL, content=echo)
        with pytest.raises(SmsCnError) as info:
            call(client, action)
    assert_clean(exception_text(info.value), scan, numbers=["13912340001"], codes=["730519"])


# ---------------------------------------------------------------------------- round trips


def txt_escape(value: str) -> str:
    """Decision #6: only %, &, =, CR and LF are percent-encoded."""
    return "".join(urllib.parse.quote(ch) if ch in "%&=\r\n" else ch for ch in value)


def render(fmt: str, head: dict[str, str], items: list[dict[str, str]], *, numeric_stat: bool = False,
           xml_decl: str = "") -> str:
    """A reply of ``fmt`` as docs/api-decisions.md shows it: ``head`` scalars, ``items`` the values."""
    if fmt == "json":
        data: dict[str, object] = dict(head)
        if numeric_stat and "stat" in data:
            data["stat"] = int(head["stat"])
        if items or "total" in head:
            data["values"] = items
        return json.dumps(data, ensure_ascii=False)
    if fmt == "xml":
        scalars = "".join(f"<{k}>{escape(v)}</{k}>" for k, v in head.items())
        values = "".join(f"<value{i}>" + "".join(f"<{k}>{escape(v)}</{k}>" for k, v in item.items())
                         + f"</value{i}>" for i, item in enumerate(items))
        return f"{xml_decl}<result>{scalars}<values>{values}</values></result>"
    pairs = [f"{k}={txt_escape(v)}" for k, v in head.items()]
    pairs += [f"value{i}.{k}={txt_escape(v)}" for i, item in enumerate(items) for k, v in item.items()]
    return "sms&" + "&".join(pairs)


REPORT = st.fixed_dictionaries({
    "retime": TIME, "mobile": MOBILE, "mobileids": DIGITS,
    "resultcode": st.sampled_from(["100", "130", "131", "132", "133", "134"]),
    "status": VALUE_TEXT,
})
RECORD = st.fixed_dictionaries({
    "sendtime": TIME, "mobile": MOBILE,
    "content": VALUE_TEXT.map(lambda t: f"您的验证码是：{t}。"), "status": st.sampled_from(["0", "1"]),
})
WIRE = st.sampled_from([("utf-8", True), ("utf-8", False), ("gbk", True), ("gbk", False)])
XML_DECL = st.sampled_from(["", '<?xml version="1.0" encoding="utf-8"?>\n',
                            '<?xml version="1.0" encoding="gbk"?>'])


def wire(text: str, charset: str, declared: bool) -> tuple[bytes, str | None]:
    return text.encode(charset, errors="strict"), (charset if declared else None)


def gbk_safe(*texts: str) -> bool:
    try:
        for text in texts:
            text.encode("gbk")
    except UnicodeEncodeError:
        return False
    return True


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(items=st.lists(REPORT, max_size=12), numeric=st.booleans(), on_wire=WIRE, decl=XML_DECL)
def test_status_reply_round_trip(fmt, items, numeric, on_wire, decl):
    text = render(fmt, {"stat": "100", "total": str(len(items))}, items, numeric_stat=numeric, xml_decl=decl)
    charset = on_wire[0] if gbk_safe(text) else "utf-8"
    reply = parse_reply(decode_body(*wire(text, charset, on_wire[1])), fmt)
    assert reply["stat"] == 100
    assert reply["total"] == str(len(items))
    assert reply.get("values", []) == items


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(items=st.lists(RECORD, min_size=1, max_size=50), on_wire=WIRE)
def test_query_reply_round_trip_through_the_client(fmt, items, on_wire):
    """Query records (Chinese text with &, =, % in it) read back equal, through the client."""
    pages = -(-len(items) // 50)
    head = {"stat": "100", "total": str(len(items)), "page_size": str(len(items)), "total_page": str(pages)}
    text = render(fmt, head, items, numeric_stat=True)
    charset = on_wire[0] if gbk_safe(text) else "utf-8"
    content_type = f"text/plain; charset={charset}" if on_wire[1] else "text/plain"
    client = fuzz_client(fmt, encoding=charset if charset == "gbk" else "utf-8")
    with requests_mock_module.Mocker() as mock:
        mock.post(URL, content=text.encode(charset), headers={"Content-Type": content_type})
        records = client.query_sent_records()
    assert [(r.mobile, r.sendtime, r.content, r.status) for r in records] == [
        (i["mobile"], i["sendtime"], i["content"], int(i["status"])) for i in items]


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(items=st.lists(REPORT, max_size=12), on_wire=WIRE)
def test_status_reports_round_trip_through_the_client(fmt, items, on_wire):
    text = render(fmt, {"stat": "100", "total": str(len(items))}, items)
    charset = on_wire[0] if gbk_safe(text) else "utf-8"
    client = fuzz_client(fmt)
    with requests_mock_module.Mocker() as mock:
        mock.post(URL, content=text.encode(charset),
                  headers={"Content-Type": f"text/plain; charset={charset}" if on_wire[1] else "text/plain"})
        reports = client.pull_delivery_reports()
    assert [(r.mobile, r.mobileid, r.resultcode, r.status, r.retime) for r in reports] == [
        (i["mobile"], i["mobileids"], int(i["resultcode"]), i["status"], i["retime"]) for i in items]


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(balance=st.integers(0, 10**15), message=VALUE_TEXT, numeric=st.booleans())
def test_balance_reply_round_trip(fmt, balance, message, numeric):
    """json/xml carry ``number``, txt ``remain`` (decisions #6, #9)."""
    head = ({"stat": "100", "message": message, "number": str(balance)} if fmt != "txt"
            else {"stat": "100", "remain": str(balance)})
    client = fuzz_client(fmt)
    with requests_mock_module.Mocker() as mock:
        mock.post(URL, content=render(fmt, head, [], numeric_stat=numeric).encode("utf-8"))
        assert client.get_balance() == balance


@pytest.mark.parametrize("fmt", FORMATS)
@FUZZ
@given(code=st.integers(101, 999), message=VALUE_TEXT, numeric=st.booleans(), action=st.sampled_from(ACTIONS))
def test_error_reply_round_trip(fmt, code, message, numeric, action):
    """Any code but 100 (and the back-off codes) raises its SmsCnApiError, the code and message intact."""
    client = fuzz_client(fmt, attempts=1)
    with requests_mock_module.Mocker() as mock:
        mock.post(URL, content=render(fmt, {"stat": str(code), "message": message}, [],
                                      numeric_stat=numeric).encode("utf-8"))
        with pytest.raises(SmsCnApiError) as info:
            call(client, action)
    err = info.value
    assert err.code == code and err.action == action
    assert f"sms.cn API error {code} on ac={action}" in str(err)
    if len(message) < 100 and not any(ch.isdigit() for ch in message):
        assert err.server_message == " ".join(message.split())
