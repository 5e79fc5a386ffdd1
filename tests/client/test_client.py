from __future__ import annotations

import itertools
import logging
import subprocess
import sys
import traceback
from datetime import date, datetime, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

import pytest
import requests
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from airflow_provider_smscn import __version__
from airflow_provider_smscn.client import (
    DEFAULT_BASE_URL,
    DeliveryReport,
    RetryPolicy,
    SendResult,
    SentRecord,
    SmsCnApiError,
    SmsCnAuthError,
    SmsCnClient,
    SmsCnError,
    SmsCnRateLimitError,
    SmsCnResponseError,
    SmsCnSendOutcomeUnknownError,
    SmsCnTransportError,
    SmsCnUnknownCodeError,
    SmsCnValidationError,
)
from airflow_provider_smscn.client.signing import make_pwd, make_tokenkey
from tests.support.recording_server import RecordingServer, Reply
from tests.support.vendor_replies import (
    BALANCE_OK,
    FORMATS,
    QUERY_EMPTY,
    QUERY_OK,
    RECORDS,
    REPORTS,
    SEND_OK,
    STATUS_EMPTY,
    STATUS_OK,
    error_body,
)

if TYPE_CHECKING:
    from collections.abc import Callable


URL = DEFAULT_BASE_URL
UID = "test"
PASSWORD = "S3cret-Pa55word!"
API_PASSWORD = "0123456789ABCDEF0123456789ABCDEF"
SECRET_KEY = "64CQMlr579J0L46U9q1qR285Risfc04G"
AUTH_MODES: dict[str, dict[str, Any]] = {
    "password": {"password": PASSWORD},
    "api_password": {"api_password": API_PASSWORD},
    "secret_key": {"secret_key": SECRET_KEY},
}
NUMBER = "13900008888"
NUMBER2 = "13900009999"
CLOCK_AT = datetime(2012, 1, 2, 2, 20, 33, tzinfo=timezone.utc)  # 20120102102033 in Beijing


def fixed_clock() -> datetime:
    return CLOCK_AT


def body(text: str, *, charset: str = "utf-8", declare: bool = True, status: int = 200) -> dict[str, Any]:
    """A requests_mock response of ``text`` encoded in ``charset``."""
    content_type = f"text/plain; charset={charset}" if declare else "text/plain"
    return {"content": text.encode(charset), "headers": {"Content-Type": content_type}, "status_code": status}


def form_of(request: Any, encoding: str = "utf-8") -> dict[str, str]:
    raw = request.body.decode("ascii") if request.body else request.query
    return {
        k: v[0] for k, v in parse_qs(raw, keep_blank_values=True, encoding=encoding, errors="strict").items()
    }


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def make_client(sleeps: list[float]) -> Callable[..., SmsCnClient]:
    """SmsCnClient factory: password auth unless told, retries recorded in ``sleeps``, never slept."""

    def factory(**kwargs: Any) -> SmsCnClient:
        if not any(key in kwargs for key in ("password", "api_password", "secret_key")):
            kwargs["password"] = PASSWORD
        kwargs.setdefault("retry", RetryPolicy(sleep=sleeps.append))
        kwargs.setdefault("clock", fixed_clock)
        return SmsCnClient(kwargs.pop("uid", UID), **kwargs)

    return factory


def call(client: SmsCnClient, action: str) -> Any:
    """Run one client method by action name."""
    if action == "sendcode":
        return client.send_voice_code([NUMBER, NUMBER2], "700001", {"code": "352333"})
    if action == "number":
        return client.get_balance()
    if action == "status":
        return client.pull_delivery_reports()
    return client.query_sent_records(date="2024-05-01", mobile=NUMBER)


OK_BODIES = {"sendcode": SEND_OK, "number": BALANCE_OK, "status": STATUS_OK, "query": QUERY_OK}
ACTIONS = tuple(OK_BODIES)


class TestConstruction:
    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"uid": ""}, "uid"),
            ({"uid": "te st"}, "uid"),
            ({"password": ""}, "no credential"),
            ({"api_password": "not-hex"}, "32 hex"),
            ({"reply_format": "yaml"}, "reply_format"),
            ({"encoding": "latin-1"}, "encoding"),
            ({"method": "PUT"}, "method"),
            ({"base_url": "ftp://api.sms.cn/voice/"}, "http"),
            ({"base_url": "api.sms.cn/voice/"}, "http"),
            ({"base_url": "https://user:pw@api.sms.cn/voice/"}, "user info"),
            ({"base_url": "https://api.sms.cn/voice/?ac=x"}, "query"),
            ({"timeout": 0}, "timeout"),
            ({"timeout": (1.0, -1.0)}, "timeout"),
            ({"timeout": True}, "timeout"),
            ({"max_numbers_per_request": 0}, "max_numbers"),
            ({"language": "english!"}, "language"),
            ({"signature_reuse_seconds": 301, "secret_key": SECRET_KEY}, "signature_reuse"),
            ({"verify": 1}, "verify"),
        ],
    )
    def test_bad_configuration_refused(
        self, make_client: Callable[..., SmsCnClient], kwargs: dict[str, Any], match: str
    ) -> None:
        with pytest.raises(SmsCnValidationError, match=match):
            make_client(**kwargs)

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"max_attempts": 0},
            {"max_attempts": 21},
            {"jitter": 1.0},
            {"multiplier": 0.5},
            {"initial_wait": 9, "max_wait": 8},
            {"sleep": None},
        ],
    )
    def test_bad_retry_policy(self, kwargs: dict[str, Any]) -> None:
        with pytest.raises(SmsCnValidationError, match="RetryPolicy"):
            RetryPolicy(**kwargs)

    def test_account_key_and_repr(self, make_client: Callable[..., SmsCnClient]) -> None:
        client = make_client(base_url="http://127.0.0.1:8080/voice/", secret_key=SECRET_KEY)
        assert client.account_key == "test@127.0.0.1:8080/voice"
        assert make_client().account_key == "test@api.sms.cn/voice"
        assert make_client(base_url="https://API.sms.cn").account_key == "test@api.sms.cn/"
        # One account, one key, however the URL is spelled (else a retry finds no intents).
        for spelling in ("https://api.sms.cn/voice", "HTTPS://API.SMS.CN:443/voice/",
                         "https://api.sms.cn/voice//"):
            assert make_client(base_url=spelling).account_key == "test@api.sms.cn/voice"
        assert make_client(base_url="http://api.sms.cn:80/voice").account_key == "test@api.sms.cn/voice"
        other_port = make_client(base_url="https://api.sms.cn:8443/voice")
        assert other_port.account_key == "test@api.sms.cn:8443/voice"
        assert repr(client) == (
            "SmsCnClient(account='test@127.0.0.1:8080/voice', auth='secret_key', "
            "format='json', method='POST')"
        )

    def test_session_is_lazy_reused_and_closed(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any
    ) -> None:
        requests_mock.post(URL, **body(BALANCE_OK["json"]))
        with make_client() as client:
            assert client._session is None
            client.get_balance()
            session = client._session
            client.get_balance()
            assert client._session is session
        assert client._session is None

    def test_given_session_used_and_not_closed(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any
    ) -> None:
        requests_mock.post(URL, **body(BALANCE_OK["json"]))
        session = requests.Session()
        closed: list[bool] = []
        session.close = lambda: closed.append(True)  # type: ignore[method-assign]
        with make_client(session=session) as client:
            client.get_balance()
            assert client._session is session
        assert closed == []


#: The three reads, each against the vendor's reply in every format: what the client returns.
READS = [
    pytest.param(BALANCE_OK, "get_balance", 2123432, id="number"),
    pytest.param(STATUS_OK, "pull_delivery_reports",
                 [DeliveryReport(mobile=r["mobile"], mobileid=r["mobileids"], resultcode=int(r["resultcode"]),
                                 status=r["status"], retime=r["retime"]) for r in REPORTS], id="status"),
    pytest.param(QUERY_OK, "query_sent_records",
                 [SentRecord(mobile=r["mobile"], sendtime=r["sendtime"], content=r["content"],
                             status=int(r["status"])) for r in RECORDS], id="query"),
]


class TestEveryActionEveryFormat:
    @pytest.fixture(
        params=[("utf-8", True), ("utf-8", False), ("gbk", True), ("gbk", False)],
        ids=["utf8-declared", "utf8-undeclared", "gbk-declared", "gbk-undeclared"],
    )
    def charset(self, request: pytest.FixtureRequest) -> tuple[str, bool]:
        return request.param  # type: ignore[no-any-return]

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_send(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, fmt: str, charset: tuple[str, bool]
    ) -> None:
        requests_mock.post(URL, **body(SEND_OK[fmt], charset=charset[0], declare=charset[1]))
        result = make_client(reply_format=fmt).send_voice_code(f"{NUMBER}, {NUMBER2}", 700001, {"code": "1"})
        assert isinstance(result, SendResult)
        assert result.mobiles == [NUMBER, NUMBER2]
        assert len(result.mobileids) == 2 and all(len(i) == 20 for i in result.mobileids)
        assert result.code == 100 and result.message == "发送成功"
        assert form_of(requests_mock.last_request)["mobileids"] == ",".join(result.mobileids)

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize(("replies", "method", "expected"), READS)
    def test_read(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, fmt: str,
        charset: tuple[str, bool], replies: dict[str, str], method: str, expected: Any,
    ) -> None:
        requests_mock.post(URL, **body(replies[fmt], charset=charset[0], declare=charset[1]))
        assert getattr(make_client(reply_format=fmt), method)() == expected

    def test_what_the_reads_return_flags_delivery_and_hides_content(self) -> None:
        reports, records = (read.values[2] for read in READS[1:])
        assert [r.delivered for r in reports] == [True, False]
        assert "352333" not in repr(records)

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize(("action", "empty"), [("status", STATUS_EMPTY), ("query", QUERY_EMPTY)])
    def test_empty_reply_is_an_empty_list(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, fmt: str, action: str,
        empty: dict[str, str],
    ) -> None:
        requests_mock.post(URL, **body(empty[fmt]))
        assert call(make_client(reply_format=fmt), action) == []

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("action", ["sendcode", "number", "status"])
    def test_reply_without_stat_is_unreadable_outside_query(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, fmt: str, action: str
    ) -> None:
        requests_mock.post(URL, **body(QUERY_EMPTY[fmt]))
        expected = SmsCnSendOutcomeUnknownError if action == "sendcode" else SmsCnResponseError
        with pytest.raises(expected):
            call(make_client(reply_format=fmt), action)
        assert requests_mock.call_count == 1

    @pytest.mark.parametrize("fmt", FORMATS)
    @pytest.mark.parametrize("numeric", [False, True])
    @pytest.mark.parametrize("action", ACTIONS)
    def test_error_codes(
        self,
        make_client: Callable[..., SmsCnClient],
        requests_mock: Any,
        fmt: str,
        numeric: bool,
        action: str,
    ) -> None:
        requests_mock.post(URL, **body(error_body(fmt, 101, numeric=numeric), charset="gbk"))
        with pytest.raises(SmsCnAuthError) as info:
            call(make_client(reply_format=fmt), action)
        assert info.value.code == 101 and info.value.action == action
        assert info.value.server_message == "验证失败"

    @pytest.mark.parametrize("fmt", FORMATS)
    def test_unknown_code(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, fmt: str
    ) -> None:
        requests_mock.post(URL, **body(error_body(fmt, 199, "未知")))
        with pytest.raises(SmsCnUnknownCodeError, match="199") as info:
            make_client(reply_format=fmt).get_balance()
        assert info.value.code == 199
        assert requests_mock.call_count == 1

    def test_balance_without_number(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any
    ) -> None:
        requests_mock.post(URL, **body('{"stat":"100","message":"ok"}'))
        with pytest.raises(SmsCnResponseError, match="numeric"):
            make_client().get_balance()

    def test_odd_report_kept_not_dropped(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        requests_mock.post(URL, **body('{"stat":"100","total":"1","values":[{"mobile":"13900008888"}]}'))
        reports = make_client().pull_delivery_reports()
        assert reports == [DeliveryReport(mobile=NUMBER, mobileid="", resultcode=-1)]
        assert "non-numeric resultcode" in caplog.text

    def test_vendor_message_numbers_masked(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any
    ) -> None:
        requests_mock.post(URL, **body(error_body("json", 112, f"号码{NUMBER}错误")))
        with pytest.raises(SmsCnApiError) as info:
            make_client().get_balance()
        assert NUMBER not in str(info.value) and "139****8888" in str(info.value)


class TestRequestShape:
    def test_sendcode_form(self, make_client: Callable[..., SmsCnClient], requests_mock: Any) -> None:
        requests_mock.post(URL, **body(SEND_OK["json"]))
        result = make_client(timeout=(3.0, 7.0)).send_voice_code(
            [NUMBER, " 02112345678 "], "700001", '{"code": "352333", "name": "张三"}', mobileids=["11", "22"]
        )
        request = requests_mock.last_request
        assert request.method == "POST"
        assert form_of(request) == {
            "ac": "sendcode",
            "format": "json",
            "uid": UID,
            "pwd": make_pwd(PASSWORD, UID),
            "mobile": f"{NUMBER},02112345678",
            "mobileids": "11,22",
            "template": "700001",
            "content": '{"code":"352333","name":"张三"}',
        }
        assert result.mobileids == ["11", "22"]
        assert request.headers["User-Agent"] == f"airflow-provider-smscn/{__version__}"
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert request.timeout == (3.0, 7.0)
        assert request.verify  # on (requests may resolve True to a CA bundle path)

    @pytest.mark.parametrize(("encoding", "sent"), [("utf-8", "utf8"), ("UTF8", "utf8"), ("gbk", "gbk")])
    def test_query_always_sends_encode(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, encoding: str, sent: str
    ) -> None:
        requests_mock.post(URL, **body(QUERY_EMPTY["json"]))
        make_client(encoding=encoding).query_sent_records(date=date(2024, 5, 1), mobile=f" {NUMBER} ")
        form = form_of(requests_mock.last_request)
        assert form["encode"] == sent
        assert form["date"] == "2024-05-01" and form["key"] == NUMBER

    @pytest.mark.parametrize("value", [datetime(2024, 5, 1, 23, 0), "2024-05-01"])
    def test_query_date_forms(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, value: Any
    ) -> None:
        requests_mock.post(URL, **body(QUERY_EMPTY["json"]))
        make_client().query_sent_records(date=value)
        assert form_of(requests_mock.last_request)["date"] == "2024-05-01"

    def test_utf8_sends_no_encode_outside_query(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any
    ) -> None:
        requests_mock.post(URL, **body(BALANCE_OK["json"]))
        make_client().get_balance()
        assert "encode" not in form_of(requests_mock.last_request)

    def test_gbk_request(self, make_client: Callable[..., SmsCnClient], requests_mock: Any) -> None:
        requests_mock.post(URL, **body(SEND_OK["json"], charset="gbk"))
        make_client(encoding="gbk").send_voice_code(NUMBER, 1, {"name": "张三"})
        request = requests_mock.last_request
        with pytest.raises(UnicodeDecodeError):
            form_of(request, "utf-8")
        form = form_of(request, "gbk")
        assert form["encode"] == "gbk" and form["content"] == '{"name":"张三"}'

    def test_secret_key_mode_params(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any
    ) -> None:
        requests_mock.post(URL, **body(BALANCE_OK["json"]))
        make_client(secret_key=SECRET_KEY, password=PASSWORD).get_balance()
        form = form_of(requests_mock.last_request)
        assert form["tokenkey"] == make_tokenkey(UID, SECRET_KEY, "20120102102033")
        assert form["timestamp"] == "20120102102033"
        assert "pwd" not in form

    def test_get_and_language(self, make_client: Callable[..., SmsCnClient], requests_mock: Any) -> None:
        requests_mock.get(URL, **body('{"stat":"100","message":"SUCCESS","number":"5"}'))
        assert make_client(method="get", language="english", reply_format="json").get_balance() == 5
        request = requests_mock.last_request
        assert request.method == "GET" and not request.body
        form = form_of(request)
        assert form["language"] == "english" and form["ac"] == "number" and form["pwd"]

    def test_verify_passed(self, make_client: Callable[..., SmsCnClient], requests_mock: Any) -> None:
        requests_mock.post(URL, **body(BALANCE_OK["json"]))
        make_client(verify="/etc/ssl/ca.pem").get_balance()
        assert requests_mock.last_request.verify == "/etc/ssl/ca.pem"

    def test_redirect_not_followed(self, make_client: Callable[..., SmsCnClient], requests_mock: Any) -> None:
        requests_mock.post(URL, status_code=302, headers={"Location": "https://elsewhere.example/x"})
        requests_mock.get("https://elsewhere.example/x", text="{}")
        with pytest.raises(SmsCnTransportError, match="redirect") as info:
            make_client().get_balance()
        assert info.value.retriable is False and info.value.http_status == 302
        assert requests_mock.call_count == 1


class TestValidationBeforeAnyRequest:
    @pytest.mark.parametrize(
        ("args", "match"),
        [
            (("", "700001", {"code": "1"}), "no phone number"),
            (("1390000888", "700001", {"code": "1"}), "number #1"),
            ((f"{NUMBER},{NUMBER}", "700001", {"code": "1"}), "repeats"),
            ((NUMBER, "abc", {"code": "1"}), "template_id"),
            ((NUMBER, "700001", {"code": None}), "NoneType"),
            ((NUMBER, "700001", "not json"), "JSON"),
            ((NUMBER, "700001", {"code": "1"}, ["1", "2"]), "2 mobileids given for 1"),
            ((NUMBER, "700001", {"code": "1"}, ["x"]), "digits"),
        ],
    )
    def test_send(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, args: tuple[Any, ...], match: str
    ) -> None:
        requests_mock.post(URL, **body(SEND_OK["json"]))
        with pytest.raises(SmsCnValidationError, match=match):
            make_client().send_voice_code(*args)
        assert requests_mock.call_count == 0

    def test_too_many_numbers(self, make_client: Callable[..., SmsCnClient], requests_mock: Any) -> None:
        requests_mock.post(URL, **body(SEND_OK["json"]))
        with pytest.raises(SmsCnValidationError, match="3 numbers given, at most 2"):
            make_client(max_numbers_per_request=2).send_voice_code(
                [NUMBER, NUMBER2, "13900007777"], 1, {"code": "1"}
            )
        assert requests_mock.call_count == 0

    def test_text_not_encodable_as_gbk(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any
    ) -> None:
        requests_mock.post(URL, **body(SEND_OK["json"]))
        with pytest.raises(SmsCnValidationError, match="GBK") as info:
            make_client(encoding="gbk").send_voice_code(NUMBER, 1, {"code": "352333😀"})
        assert "352333" not in str(info.value)
        assert info.value.__context__ is None
        assert requests_mock.call_count == 0

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"date": "2024/05/01"}, "date"),
            ({"date": "2024-13-01"}, "date"),
            ({"date": 20240501}, "date"),
            ({"mobile": "123"}, "number"),
        ],
    )
    def test_query(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, kwargs: dict[str, Any], match: str
    ) -> None:
        requests_mock.post(URL, **body(QUERY_EMPTY["json"]))
        with pytest.raises(SmsCnValidationError, match=match):
            make_client().query_sent_records(**kwargs)
        assert requests_mock.call_count == 0


def connect_refused(request: Any, context: Any) -> Any:
    """What requests raises for a refused connection; its text holds the URL, as requests' does."""
    raise requests.exceptions.ConnectionError(
        MaxRetryError(None, request.url, NewConnectionError(None, "Connection refused")),  # type: ignore[arg-type]
        request=request,
    )


def connect_timeout(request: Any, context: Any) -> Any:
    raise requests.exceptions.ConnectTimeout(f"connect timed out: {request.url}", request=request)


def read_timeout(request: Any, context: Any) -> Any:
    raise requests.exceptions.ReadTimeout(
        f"read timed out: {request.url} body={request.body!r}", request=request
    )


def reset_after_send(request: Any, context: Any) -> Any:
    raise requests.exceptions.ConnectionError(
        ProtocolError("Connection aborted.", ConnectionResetError(104, f"reset {request.url}")),
        request=request,
    )


def chunked_error(request: Any, context: Any) -> Any:
    raise requests.exceptions.ChunkedEncodingError(f"broken body {request.body!r}", request=request)


class TestRetries:
    def test_107_then_success(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, sleeps: list[float]
    ) -> None:
        requests_mock.post(URL, [body(error_body("json", 107)), body(SEND_OK["json"])])
        result = make_client().send_voice_code(NUMBER, 1, {"code": "1"})
        assert result.code == 100
        assert requests_mock.call_count == 2
        assert len(sleeps) == 1 and 0.375 <= sleeps[0] <= 0.625
        first, second = (form_of(r)["mobileids"] for r in requests_mock.request_history)
        assert first == second  # the retry carries the same message ids

    @pytest.mark.parametrize("code", [107, 110])
    def test_backoff_codes_until_attempts_run_out(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, sleeps: list[float], code: int
    ) -> None:
        requests_mock.post(URL, **body(error_body("json", code)))
        with pytest.raises(SmsCnRateLimitError) as info:
            make_client().send_voice_code(NUMBER, 1, {"code": "1"})
        assert info.value.code == code
        assert requests_mock.call_count == 4
        assert len(sleeps) == 3
        assert sleeps == sorted(sleeps) and sleeps[0] < sleeps[-1] <= 8.0

    def test_waits_exponential_and_bounded(self, requests_mock: Any) -> None:
        waits: list[float] = []
        policy = RetryPolicy(max_attempts=8, initial_wait=1.0, max_wait=5.0, jitter=0.0, sleep=waits.append)
        requests_mock.post(URL, **body(error_body("json", 107)))
        with pytest.raises(SmsCnRateLimitError):
            SmsCnClient(UID, password=PASSWORD, retry=policy).get_balance()
        assert waits == [1.0, 2.0, 4.0, 5.0, 5.0, 5.0, 5.0]

    def test_jitter_stays_within_bounds(self) -> None:
        policy = RetryPolicy(initial_wait=1.0, max_wait=3.0, jitter=0.25)
        samples = [policy.wait_seconds(n) for n in (1, 2, 3) for _ in range(200)]
        assert all(0.75 <= s <= 3.0 for s in samples)
        assert len(set(samples)) > 100

    def test_single_attempt_policy(self, requests_mock: Any, sleeps: list[float]) -> None:
        requests_mock.post(URL, **body(error_body("json", 107)))
        with pytest.raises(SmsCnRateLimitError):
            SmsCnClient(
                UID, password=PASSWORD, retry=RetryPolicy(max_attempts=1, sleep=sleeps.append)
            ).get_balance()
        assert requests_mock.call_count == 1 and sleeps == []

    @pytest.mark.parametrize("code", [101, 102, 103, 109, 117, 119, 124, 151, 152, 164])
    @pytest.mark.parametrize("action", ACTIONS)
    def test_no_retry_on_refusals(
        self,
        make_client: Callable[..., SmsCnClient],
        requests_mock: Any,
        sleeps: list[float],
        code: int,
        action: str,
    ) -> None:
        requests_mock.post(URL, **body(error_body("json", code)))
        with pytest.raises(SmsCnApiError) as info:
            call(make_client(), action)
        assert info.value.code == code
        assert requests_mock.call_count == 1 and sleeps == []

    @pytest.mark.parametrize("failure", [read_timeout, reset_after_send, chunked_error])
    def test_sendcode_never_retried_once_sent(
        self,
        make_client: Callable[..., SmsCnClient],
        requests_mock: Any,
        sleeps: list[float],
        failure: Callable[..., Any],
    ) -> None:
        requests_mock.post(URL, text=failure)
        with pytest.raises(SmsCnSendOutcomeUnknownError) as info:
            make_client().send_voice_code([NUMBER, NUMBER2], 1, {"code": "1"}, mobileids=["11", "22"])
        assert info.value.mobileids == ["11", "22"]
        assert info.value.retriable is False and info.value.action == "sendcode"
        assert requests_mock.call_count == 1 and sleeps == []

    @pytest.mark.parametrize("status", [500, 502, 503, 504])
    def test_sendcode_5xx_outcome_unknown(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, status: int
    ) -> None:
        requests_mock.post(URL, **body("<html>oops</html>", status=status))
        with pytest.raises(SmsCnSendOutcomeUnknownError, match=f"HTTP {status}") as info:
            make_client().send_voice_code(NUMBER, 1, {"code": "1"})
        assert info.value.http_status == status and len(info.value.mobileids) == 1
        assert requests_mock.call_count == 1

    def test_sendcode_unreadable_200_outcome_unknown(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any
    ) -> None:
        requests_mock.post(URL, **body('{"stat":"100","mess'))
        with pytest.raises(SmsCnSendOutcomeUnknownError):
            make_client().send_voice_code(NUMBER, 1, {"code": "1"})
        assert requests_mock.call_count == 1

    @pytest.mark.parametrize(
        ("failure", "action"),
        # a connection that never opened sent nothing: every action may try again
        [*itertools.product([connect_refused, connect_timeout], ACTIONS),
         # a request that may have been processed: only the idempotent reads try again
         *itertools.product([read_timeout, reset_after_send, chunked_error], ["number", "status", "query"])],
    )
    def test_network_errors_retried_where_safe(
        self,
        make_client: Callable[..., SmsCnClient],
        requests_mock: Any,
        sleeps: list[float],
        failure: Callable[..., Any],
        action: str,
    ) -> None:
        requests_mock.post(URL, [{"text": failure}, body(OK_BODIES[action]["json"])])
        call(make_client(), action)
        assert requests_mock.call_count == 2 and len(sleeps) == 1

    def test_connect_failures_exhausted(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, sleeps: list[float]
    ) -> None:
        requests_mock.post(URL, text=connect_refused)
        with pytest.raises(SmsCnTransportError, match="could not connect") as info:
            make_client().send_voice_code(NUMBER, 1, {"code": "1"})
        assert not isinstance(info.value, SmsCnSendOutcomeUnknownError)
        assert "NewConnectionError" in str(info.value) and "api.sms.cn" in str(info.value)
        assert requests_mock.call_count == 4 and len(sleeps) == 3

    @pytest.mark.parametrize("action", ["number", "status", "query"])
    def test_idempotent_actions_retry_5xx_then_give_up(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, sleeps: list[float], action: str
    ) -> None:
        requests_mock.post(URL, **body("Service Unavailable", status=503))
        with pytest.raises(SmsCnTransportError, match="HTTP 503") as info:
            call(make_client(), action)
        assert info.value.http_status == 503 and info.value.retriable is True
        assert requests_mock.call_count == 4 and len(sleeps) == 3

    def test_status_read_timeout_retried_then_raised(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any
    ) -> None:
        requests_mock.post(URL, text=read_timeout)
        with pytest.raises(SmsCnTransportError, match=r"ReadTimeout on ac=status to api\.sms\.cn"):
            make_client().pull_delivery_reports()
        assert requests_mock.call_count == 4

    @pytest.mark.parametrize("status", [408, 429])
    def test_not_processed_statuses_retried(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, status: int
    ) -> None:
        requests_mock.post(URL, [body("slow down", status=status), body(SEND_OK["json"])])
        make_client().send_voice_code(NUMBER, 1, {"code": "1"})
        assert requests_mock.call_count == 2

    @pytest.mark.parametrize("action", ACTIONS)
    def test_http_4xx_page_not_retried(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, action: str
    ) -> None:
        requests_mock.post(URL, **body("<html>404 Not Found</html>", status=404))
        with pytest.raises(SmsCnTransportError, match="HTTP 404") as info:
            call(make_client(), action)
        assert not isinstance(info.value, SmsCnSendOutcomeUnknownError)
        assert info.value.retriable is False and info.value.http_status == 404
        assert requests_mock.call_count == 1

    def test_http_401_with_a_stat_maps_the_code(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any
    ) -> None:
        requests_mock.post(URL, **body(error_body("json", 101), status=401))
        with pytest.raises(SmsCnAuthError):
            make_client().get_balance()

    def test_tls_failure_not_retried(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any
    ) -> None:
        requests_mock.post(URL, exc=requests.exceptions.SSLError("certificate verify failed"))
        with pytest.raises(SmsCnTransportError, match="TLS"):
            make_client().send_voice_code(NUMBER, 1, {"code": "1"})
        assert requests_mock.call_count == 1

    def test_retries_logged_without_secrets(
        self, make_client: Callable[..., SmsCnClient], requests_mock: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        caplog.set_level(logging.DEBUG)
        requests_mock.post(URL, [body(error_body("json", 107)), body(BALANCE_OK["json"])])
        make_client().get_balance()
        assert "ac=number attempt 1 failed" in caplog.text and "107" in caplog.text


# ---------------------------------------------------------------------- secrets


def exception_text(exc: BaseException) -> str:
    """Everything an exception could show: formatted chain, and str/repr/attributes of every link."""
    parts = ["".join(traceback.format_exception(exc))]
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        link = todo.pop()
        if link is None or id(link) in seen:
            continue
        seen.add(id(link))
        parts += [str(link), repr(link), repr(link.args), repr(getattr(link, "__dict__", {}))]
        todo += [link.__cause__, link.__context__]
    return "\n".join(parts)


class SecretWatch:
    """Collects every credential a client could leak: the given ones, and the derived ones it sent."""

    def __init__(self) -> None:
        self.secrets = {PASSWORD, API_PASSWORD, API_PASSWORD.lower(), SECRET_KEY, make_pwd(PASSWORD, UID)}
        self.reported: set[str] = set()  # through on_secret
        self.sent: set[str] = set()  # pwd / tokenkey seen on the wire

    def on_secret(self, value: str) -> None:
        self.reported.add(value)
        self.secrets.add(value)

    def saw_form(self, form: dict[str, str]) -> None:
        for key in ("pwd", "tokenkey"):
            if form.get(key):
                self.sent.add(form[key])
                self.secrets.add(form[key])

    def assert_clean(self, text: str, where: str) -> None:
        for secret in self.secrets:
            assert secret not in text, f"a credential leaked into {where}"
        assert NUMBER not in text and NUMBER2 not in text, f"an unmasked number in {where}"


def run_and_check(client: SmsCnClient, watch: SecretWatch, caplog: pytest.LogCaptureFixture) -> list[Any]:
    outcomes = []
    for action in ACTIONS:
        try:
            outcomes.append(call(client, action))
        except SmsCnError as exc:
            watch.assert_clean(exception_text(exc), f"the exception of ac={action}")
            outcomes.append(exc)
    watch.assert_clean(repr(client) + str(client), "repr(client)")
    # requests_mock's own adapter logs whole URLs: a test tool, not part of any real request path
    # (the real-HTTP test below covers urllib3).
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    log_text = "\n".join(
        f"{formatter.format(r)} {r.args!r}" for r in caplog.records if not r.name.startswith("requests_mock")
    )
    watch.assert_clean(log_text, "the logs")
    return outcomes


MOCK_SCENARIOS: dict[str, dict[str, Any]] = {
    "ok": {},
    "auth-101": body(error_body("json", 101)),
    "http-401": body("<html>401 Authorization Required</html>", status=401),
    "http-500": body("<html>500</html>", status=500),
    "refused": {"text": connect_refused},
    "read-timeout": {"text": read_timeout},
    "reset": {"text": reset_after_send},
    "connect-timeout": {"text": connect_timeout},
    "unknown-code": body(error_body("json", 199)),
}


@pytest.fixture
def all_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "requests", "airflow_provider_smscn", "tenacity"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


class TestSecretsNeverLeak:
    @pytest.mark.parametrize("scenario", list(MOCK_SCENARIOS))
    @pytest.mark.parametrize("mode", list(AUTH_MODES))
    @pytest.mark.parametrize("method", ["POST", "GET"])
    def test_mocked_transport(
        self,
        requests_mock: Any,
        all_logs: pytest.LogCaptureFixture,
        sleeps: list[float],
        scenario: str,
        mode: str,
        method: str,
    ) -> None:
        watch = SecretWatch()

        def respond(request: Any, context: Any) -> bytes:
            watch.saw_form(form_of(request))
            spec = MOCK_SCENARIOS[scenario]
            if "text" in spec:
                spec["text"](request, context)
            if not spec:
                action = form_of(request)["ac"]
                spec = body(OK_BODIES[action]["json"])
            context.status_code = spec["status_code"]
            context.headers.update(spec["headers"])
            return spec["content"]  # type: ignore[no-any-return]

        requests_mock.register_uri(method, URL, content=respond)
        client = SmsCnClient(
            UID,
            **AUTH_MODES[mode],
            method=method,
            on_secret=watch.on_secret,
            retry=RetryPolicy(sleep=sleeps.append),
            signature_reuse_seconds=0,
        )
        outcomes = run_and_check(client, watch, all_logs)
        if scenario == "ok":
            assert not any(isinstance(o, Exception) for o in outcomes)
            assert "139****8888" in all_logs.text  # numbers do reach the log, masked
        else:
            assert all(isinstance(o, SmsCnError) for o in outcomes)
        assert watch.sent and watch.sent <= watch.reported  # every credential sent was handed to on_secret

    @pytest.mark.parametrize("mode", list(AUTH_MODES))
    @pytest.mark.parametrize("method", ["POST", "GET"])
    def test_real_http(
        self,
        recording_server: RecordingServer,
        refused_url: str,
        all_logs: pytest.LogCaptureFixture,
        mode: str,
        method: str,
    ) -> None:
        watch = SecretWatch()
        sleeps: list[float] = []
        outcomes: list[Any] = []
        scenarios = [
            [Reply(body=OK_BODIES[a]["json"].encode()) for a in ACTIONS],
            [Reply(body=error_body("json", 101).encode())] * 4,
            [Reply(status=401, body=b"<html>401</html>", content_type="text/html")] * 4,
            [Reply(status=500, body=b"<html>500</html>", content_type="text/html")] * 10,
            [Reply(body=b"garbage pwd=oops")] * 4,
            [Reply(delay=0.3)] * 7,
        ]
        for replies in scenarios:
            recording_server.replies.clear()
            recording_server.queue(*replies)
            client = SmsCnClient(
                UID,
                **AUTH_MODES[mode],
                method=method,
                base_url=recording_server.url,
                timeout=0.1,
                on_secret=watch.on_secret,
                signature_reuse_seconds=0,
                retry=RetryPolicy(max_attempts=2, sleep=sleeps.append),
            )
            with client:
                outcomes += run_and_check(client, watch, all_logs)
        refused = SmsCnClient(
            UID,
            **AUTH_MODES[mode],
            method=method,
            base_url=refused_url,
            retry=RetryPolicy(max_attempts=2, sleep=sleeps.append),
        )
        outcomes += run_and_check(refused, watch, all_logs)
        for request in recording_server.requests:
            watch.saw_form(request.form())
        assert watch.sent and watch.sent <= watch.reported
        # Re-check everything now that every derived credential the server saw is known.
        watch.assert_clean(all_logs.text, "the logs")
        for outcome in outcomes:
            if isinstance(outcome, BaseException):
                watch.assert_clean(exception_text(outcome), "an exception")
        assert "connectionpool" in all_logs.text or any(
            r.name.startswith("urllib3") for r in all_logs.records
        )
        assert any(isinstance(o, SmsCnSendOutcomeUnknownError) for o in outcomes)
        assert sum(isinstance(o, SmsCnAuthError) for o in outcomes) == 4


# ---------------------------------------------------------------------- end to end


def text_reply(text: str, charset: str = "utf-8") -> Reply:
    return Reply(body=text.encode(charset), content_type=f"text/plain; charset={charset}")


class TestAgainstARealHttpServer:
    def test_post_form_as_sent(self, recording_server: RecordingServer) -> None:
        client = SmsCnClient(UID, secret_key=SECRET_KEY, base_url=recording_server.url, clock=fixed_clock)
        with client:
            result = client.send_voice_code([NUMBER], "700001", {"code": "352333"})
        (request,) = recording_server.requests
        assert request.method == "POST" and request.path == "/voice/" and request.query == ""
        assert request.headers["Content-Type"] == "application/x-www-form-urlencoded"
        assert request.headers["User-Agent"] == f"airflow-provider-smscn/{__version__}"
        assert request.form() == {
            "ac": "sendcode",
            "format": "json",
            "uid": UID,
            "tokenkey": "67da3bb4523ce538ff9adec57dc25162",
            "timestamp": "20120102102033",
            "mobile": NUMBER,
            "mobileids": result.mobileids[0],
            "template": "700001",
            "content": '{"code":"352333"}',
        }

    def test_query_sends_encode_and_reads_the_empty_reply(self, recording_server: RecordingServer) -> None:
        recording_server.queue(text_reply(QUERY_EMPTY["xml"]))
        client = SmsCnClient(UID, password=PASSWORD, base_url=recording_server.url, reply_format="xml")
        assert client.query_sent_records(mobile=NUMBER) == []
        form = recording_server.requests[0].form()
        assert form["encode"] == "utf8" and form["key"] == NUMBER and form["format"] == "xml"
        assert form["pwd"] == make_pwd(PASSWORD, UID)

    def test_gbk_both_ways(self, recording_server: RecordingServer) -> None:
        recording_server.queue(text_reply(error_body("txt", 164, "全文模板不匹配"), "gbk"))
        client = SmsCnClient(
            UID, api_password=API_PASSWORD, base_url=recording_server.url, reply_format="txt", encoding="gbk"
        )
        with pytest.raises(SmsCnApiError) as info:
            client.send_voice_code(NUMBER, 1, {"name": "张三"})
        assert info.value.code == 164 and info.value.server_message == "全文模板不匹配"
        request = recording_server.requests[0]
        with pytest.raises(UnicodeDecodeError):
            request.form("utf-8")
        form = request.form("gbk")
        assert form["content"] == '{"name":"张三"}' and form["encode"] == "gbk"
        assert form["pwd"] == API_PASSWORD.lower()

    def test_get(self, recording_server: RecordingServer) -> None:
        recording_server.queue(text_reply(BALANCE_OK["txt"]))
        client = SmsCnClient(
            UID, password=PASSWORD, base_url=recording_server.url, reply_format="txt", method="GET"
        )
        assert client.get_balance() == 2123432
        request = recording_server.requests[0]
        assert request.method == "GET" and request.body == b""
        assert request.form()["ac"] == "number"

    def test_timeout_honoured(self, recording_server: RecordingServer) -> None:
        recording_server.queue(*[Reply(delay=1.0)] * 3)
        sleeps: list[float] = []
        client = SmsCnClient(
            UID,
            password=PASSWORD,
            base_url=recording_server.url,
            timeout=(1.0, 0.2),
            retry=RetryPolicy(max_attempts=2, sleep=sleeps.append),
        )
        # Each reply is held 1.0 s: a ReadTimeout can only come from the 0.2 s read timeout (no
        # clock read here, so a slow machine cannot fail it); the counts show who retried.
        with pytest.raises(SmsCnSendOutcomeUnknownError, match="ReadTimeout"):
            client.send_voice_code(NUMBER, 1, {"code": "1"})
        assert len(recording_server.requests) == 1 and sleeps == []  # a send is never retried
        with pytest.raises(SmsCnTransportError, match="ReadTimeout on ac=status"):
            client.pull_delivery_reports()
        assert len(recording_server.requests) == 3 and len(sleeps) == 1

    @pytest.mark.parametrize("action", ACTIONS)
    def test_connection_refused_retried(self, refused_url: str, action: str) -> None:
        sleeps: list[float] = []
        client = SmsCnClient(
            UID,
            password=PASSWORD,
            base_url=refused_url,
            retry=RetryPolicy(max_attempts=3, sleep=sleeps.append),
        )
        with pytest.raises(SmsCnTransportError, match="could not connect") as info:
            call(client, action)
        assert not isinstance(info.value, SmsCnSendOutcomeUnknownError)
        assert len(sleeps) == 2


# ---------------------------------------------------------------------- imports


def test_error_imports_stay_cheap_and_airflow_free() -> None:
    code = (
        "import sys\n"
        "import airflow_provider_smscn.client.errors, airflow_provider_smscn.client\n"
        "assert 'requests' not in sys.modules and 'tenacity' not in sys.modules, 'eager import'\n"
        "from airflow_provider_smscn.client import SmsCnClient, RetryPolicy, DEFAULT_BASE_URL\n"
        "import airflow_provider_smscn.client.replies, airflow_provider_smscn.client.validation\n"
        "assert 'requests' in sys.modules\n"
        "airflow = [m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')]\n"
        "assert not airflow, airflow\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
