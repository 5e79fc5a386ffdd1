"""Every sandbox fault against SmsCnHook (and through it SmsCnClient), for every action.

Each case either survives (retried to success: the sandbox's request count proves how many
attempts were made) or fails with a clear error: the right type, a message naming the action, and
nothing secret (no credential, no full phone number, no one-time code) in the message, the repr,
the traceback or the log lines. ``sendcode`` is never retried once the vendor may have accepted it:
exactly one request, the calls the sandbox placed, and :class:`SmsCnSendOutcomeUnknownError`.

The retry policy records its waits instead of sleeping, so storms cost no wall time; timeouts use
a 0.5 s read timeout against 2 to 2.5 s of injected latency.
"""

from __future__ import annotations

import logging
import re
import socket
import time
import tracemalloc

import pytest

from airflow_provider_smscn.client import (
    DeliveryReport,
    SendResult,
    SentRecord,
    SmsCnError,
    SmsCnRateLimitError,
    SmsCnResponseError,
    SmsCnSendOutcomeUnknownError,
    SmsCnServerError,
    SmsCnTransportError,
)
from tests.support.connections import use_connection
from tests.support.leak_checks import (
    ACTIONS,
    CODE,
    NUMBERS,
    SleepRecorder,
    assert_clean,
    exception_text,
    fast_hook,
    leak_account,
    requests_seen,
    run_action,
)
from tests.support.secret_scan import SecretScan

pytestmark = pytest.mark.smscn_sandbox(accounts=[leak_account()], report_delay=0, seed=5)

READS = ("number", "status", "query")
BALANCE = 100000


@pytest.fixture
def box(smscn_sandbox, monkeypatch):
    """The sandbox on the leak-check account, with two calls already placed (so status and query
    have something to hand out), and ``smscn_default`` in secret-key mode."""
    use_connection(monkeypatch, smscn_sandbox)
    hook, _ = fast_hook()
    hook.send_voice_code(NUMBERS, "700001", {"code": CODE})
    hook.close()
    return smscn_sandbox


@pytest.fixture
def scan(caplog):
    caplog.set_level(logging.DEBUG)
    return SecretScan()


@pytest.fixture(autouse=True)
def nothing_secret_printed(capfd, caplog):
    """Whatever a test did, nothing it logged or printed (the hook's task-log lines go to stdout
    on Airflow 3) holds a credential, a full number or the code."""
    scan = SecretScan()
    yield
    out, err = capfd.readouterr()
    assert_clean(out + err + caplog.text, scan)


def expect_success(action: str, result: object) -> None:
    """What a survived call must return (the seeded state: two calls placed, reports ready)."""
    if action == "sendcode":
        assert isinstance(result, SendResult) and result.mobiles == NUMBERS
        assert result.message == "发送成功"
    elif action == "number":
        assert result == BALANCE - len(NUMBERS)
    elif action == "status":
        assert isinstance(result, list) and all(isinstance(r, DeliveryReport) for r in result)
        assert sorted(r.mobile for r in result) == NUMBERS
        assert all(r.delivered for r in result)
    else:
        assert isinstance(result, list) and all(isinstance(r, SentRecord) for r in result)
        assert sorted(r.mobile for r in result) == NUMBERS


def failure(box, action: str, error_type: type[SmsCnError], scan: SecretScan, caplog,
            *, attempts: int = 4, timeout: float = 2.0) -> tuple[SmsCnError, list[float]]:
    """Run ``action`` expecting ``error_type``; check the error is clear and clean."""
    hook, sleeper = fast_hook(attempts=attempts, timeout=timeout)
    try:
        with pytest.raises(error_type) as info:
            run_action(hook, action)
    finally:
        hook.close()
    err = info.value
    assert f"ac={action}" in str(err), str(err)
    assert getattr(err, "action", action) == action
    assert_clean(exception_text(err) + caplog.text, scan)
    return err, sleeper.waits


def fault_then_run(box, action: str, kind: str, *, attempts: int = 4, timeout: float = 2.0,
                   **fault) -> tuple[int, object, SleepRecorder]:
    """Inject a ``kind`` fault on ``action``, then run it on a fast hook expecting no error.

    Returns the requests of ``action`` seen before, the action's result and the hook's recorded
    retry waits.
    """
    before = requests_seen(box, action)
    box.inject_fault(kind, action=action, **fault)
    hook, sleeper = fast_hook(attempts=attempts, timeout=timeout)
    return before, run_action(hook, action), sleeper


def calls_after_seed(box) -> list[dict]:
    return box.calls()[len(NUMBERS):]


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def assert_send_unknown(box, err: SmsCnSendOutcomeUnknownError, waits: list[float], *,
                        before: int, placed: bool) -> None:
    """One request, never retried; the calls placed are those of that one request (or none)."""
    assert waits == []
    assert requests_seen(box, "sendcode") == before + 1
    assert err.retriable is False
    assert len(err.mobileids) == len(NUMBERS)
    calls = calls_after_seed(box)
    if placed:
        assert [c["mobileid"] for c in calls] == err.mobileids
        assert [c["mobile"] for c in calls] == NUMBERS
    else:
        assert calls == []


# ------------------------------------------------------------------------------ HTTP 5xx


#: A read that fails this way once is tried again and succeeds: (fault kind, its parameters).
PASSING_FAULTS = {
    "http-500": ("http_status", {"status": 500}),
    "http-503": ("http_status", {"status": 503}),
    "html-502": ("html", {"status": 502}),  # a proxy's error page
    "dropped": ("drop", {"reset": False}),
    "reset": ("drop", {"reset": True}),
}
#: A read that fails this way every time gives up after the retry bound: (fault kind, its
#: parameters, what the error says).
LASTING_FAULTS = {
    "http-502": ("http_status", {"status": 502}, "HTTP 502"),
    "dropped": ("drop", {"reset": False}, "ac="),
    "reset": ("drop", {"reset": True}, "ac="),
}


@pytest.mark.parametrize("case", list(PASSING_FAULTS))
@pytest.mark.parametrize("action", READS)
def test_a_passing_fault_is_retried_to_success(box, scan, caplog, action, case):
    kind, params = PASSING_FAULTS[case]
    before, result, sleeper = fault_then_run(box, action, kind, count=1, **params)
    expect_success(action, result)
    assert requests_seen(box, action) == before + 2
    assert len(sleeper.waits) == 1
    assert_clean(caplog.text, scan)


@pytest.mark.parametrize("case", list(LASTING_FAULTS))
@pytest.mark.parametrize("action", READS)
def test_a_lasting_fault_gives_up_after_the_retry_bound(box, scan, caplog, action, case):
    kind, params, says = LASTING_FAULTS[case]
    before = requests_seen(box, action)
    box.inject_fault(kind, action=action, **params)
    err, waits = failure(box, action, SmsCnTransportError, scan, caplog, attempts=3)
    assert type(err) is SmsCnTransportError and says in str(err)
    assert err.http_status == params.get("status")
    assert requests_seen(box, action) == before + 3
    assert len(waits) == 2


@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("status", [500, 503])
def test_sendcode_5xx_is_outcome_unknown_and_never_retried(box, scan, caplog, status, after):
    before = requests_seen(box, "sendcode")
    box.inject_fault("http_status", status=status, after=after, action="sendcode", count=1)
    err, waits = failure(box, "sendcode", SmsCnSendOutcomeUnknownError, scan, caplog)
    assert err.http_status == status
    assert_send_unknown(box, err, waits, before=before, placed=after)


def test_retries_from_the_connection_extras_bound_the_requests(box, scan, caplog, monkeypatch):
    """``retries`` / ``retry_max_wait`` of the Connection (really sleeping, a few ms)."""
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    use_connection(monkeypatch, box, retries=2, retry_max_wait=0.02)
    box.inject_fault("http_status", status=503, action="number")
    before = requests_seen(box, "number")
    caplog.set_level(logging.INFO, logger="airflow_provider_smscn.client.client")
    with pytest.raises(SmsCnTransportError, match=r"HTTP 503 .*ac=number"):
        SmsCnHook().get_balance()
    assert requests_seen(box, "number") == before + 3
    waits = [float(w) for w in re.findall(r"retrying in ([0-9.]+) s", caplog.text)]
    assert len(waits) == 2 and all(w <= 0.02 for w in waits)  # each wait bounded by retry_max_wait


# ---------------------------------------------------------------------- dropped connections


@pytest.mark.parametrize("after", [False, True])
@pytest.mark.parametrize("reset", [False, True])
def test_sendcode_drop_is_outcome_unknown_and_never_retried(box, scan, caplog, reset, after):
    before = requests_seen(box, "sendcode")
    box.inject_fault("drop", reset=reset, after=after, action="sendcode", count=1)
    err, waits = failure(box, "sendcode", SmsCnSendOutcomeUnknownError, scan, caplog)
    assert_send_unknown(box, err, waits, before=before, placed=after)


def test_sendcode_refused_connection_is_retried_as_nothing_was_sent(scan, caplog, monkeypatch, smscn_sandbox):
    """A connection never made (a closed loopback port) cannot have phoned anyone: retried, then a
    plain transport error, not an 'outcome unknown'."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    closed = smscn_sandbox.connection_json().replace(smscn_sandbox.base_url, f"http://127.0.0.1:{port}")
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", closed)
    hook, sleeper = fast_hook(attempts=3, timeout=0.5)
    with pytest.raises(SmsCnTransportError) as info:
        run_action(hook, "sendcode")
    err = info.value
    assert not isinstance(err, SmsCnSendOutcomeUnknownError)
    assert "could not connect" in str(err) and "ac=sendcode" in str(err)
    assert len(sleeper.waits) == 2
    assert_clean(exception_text(err) + caplog.text, scan)


# -------------------------------------------------------------------------------- timeouts


@pytest.mark.parametrize("action", READS)
def test_read_timeout_once_is_retried_to_success(box, scan, caplog, action):
    # The first reply is held 2.5 s: only the 0.5 s read timeout can make a second request.
    before, result, sleeper = fault_then_run(box, action, "latency", ms=2500, count=1, timeout=0.5)
    expect_success(action, result)
    assert requests_seen(box, action) == before + 2
    assert len(sleeper.waits) == 1
    assert_clean(caplog.text, scan)


@pytest.mark.parametrize("action", READS)
def test_permanent_timeouts_give_up_after_the_retry_bound(box, scan, caplog, action):
    before = requests_seen(box, action)
    box.inject_fault("latency", ms=2500, action=action)
    err, waits = failure(box, action, SmsCnTransportError, scan, caplog, attempts=2, timeout=0.5)
    assert "Timeout" in str(err)  # each attempt gave up at its 0.5 s timeout (the reply takes 2.5 s)
    assert requests_seen(box, action) == before + 2
    assert len(waits) == 1


@pytest.mark.parametrize("kind", ["latency", "delay_after"])
def test_sendcode_read_timeout_is_outcome_unknown_and_never_retried(box, scan, caplog, kind):
    """The vendor accepts the request after (latency) or before (delay_after) the client gave up:
    either way one request, the calls placed once, and the client does not try again."""
    before = requests_seen(box, "sendcode")
    box.inject_fault(kind, ms=2000, action="sendcode", count=1)
    err, waits = failure(box, "sendcode", SmsCnSendOutcomeUnknownError, scan, caplog, timeout=0.5)
    assert "ReadTimeout" in str(err)  # gave up at the timeout, did not wait for the 2 s reply
    assert wait_for(lambda: len(calls_after_seed(box)) == len(NUMBERS))
    time.sleep(0.2)  # nothing else arrives later either
    assert_send_unknown(box, err, waits, before=before, placed=True)


@pytest.mark.parametrize(("kind", "params"), [("delay_after", {"ms": 2000}),
                                              ("http_status", {"status": 503, "after": True}),
                                              ("http_status", {"status": 500, "after": True})])
def test_one_number_accepted_then_no_answer_is_exactly_one_call(box, scan, caplog, kind, params):
    """The vendor accepted, the answer was lost: exactly one call in the sandbox, one request,
    and the error carries the message id of that call."""
    before = requests_seen(box, "sendcode")
    box.inject_fault(kind, action="sendcode", count=1, **params)
    hook, sleeper = fast_hook(timeout=0.5)
    with pytest.raises(SmsCnSendOutcomeUnknownError) as info:
        hook.send_voice_code(NUMBERS[:1], "700001", {"code": CODE})
    assert wait_for(lambda: len(calls_after_seed(box)) == 1)
    time.sleep(0.2)
    calls = calls_after_seed(box)
    assert len(calls) == 1 and calls[0]["mobile"] == NUMBERS[0]
    assert info.value.mobileids == [calls[0]["mobileid"]]
    assert requests_seen(box, "sendcode") == before + 1 and sleeper.waits == []
    assert_clean(exception_text(info.value), scan)


def test_timeout_from_the_connection_extra_bounds_each_attempt(box, scan, caplog, monkeypatch):
    """``timeout`` as the Connection extra (seconds, a float) bounds each attempt's read."""
    from airflow_provider_smscn.client import RetryPolicy
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    use_connection(monkeypatch, box, timeout=0.5)
    box.inject_fault("latency", ms=2500, action="number")
    hook = SmsCnHook(retry=RetryPolicy(max_attempts=1))
    with pytest.raises(SmsCnTransportError, match=r"ReadTimeout.*ac=number|ac=number.*ReadTimeout"):
        hook.get_balance()  # a read timeout: the 0.5 s extra, not the 2.5 s reply, ended the attempt
    assert_clean(caplog.text, scan)


# --------------------------------------------------------------------------- broken bodies


@pytest.mark.parametrize("action", READS)
def test_truncated_body_cut_connection_is_retried(box, scan, caplog, action):
    """Content-Length of the whole body, then the connection is cut: a transport error, retried.
    (For status and query the vendor already handed out what the lost reply carried: the retry
    succeeds, with what is left.)"""
    before, result, sleeper = fault_then_run(box, action, "truncate", count=1)
    if action == "number":
        expect_success(action, result)
    else:
        assert isinstance(result, list)
    assert requests_seen(box, action) == before + 2
    assert len(sleeper.waits) == 1
    assert_clean(caplog.text, scan)


#: A read whose reply cannot be used fails at once, after one request: (reply format, the fault,
#: the error, what its message says, the HTTP status it carries, whether a later retry may help,
#: what its body excerpt holds).
UNREADABLE_READS = {
    "truncated-json": ("json", {"kind": "truncate", "length": "truncated"}, SmsCnResponseError,
                       "unreadable json reply to ac={action}", 200, True, ""),
    "truncated-xml": ("xml", {"kind": "truncate", "length": "truncated"}, SmsCnResponseError,
                      "unreadable xml reply to ac={action}", 200, True, ""),
    # a proxy's error page sent with 200: unreadable, and the excerpt shows what came back
    "html-200": ("json", {"kind": "html"}, SmsCnResponseError, "unreadable json reply to ac={action}", 200,
                 True, "502 Bad Gateway"),
    # a 4xx page (not 408/429) is not retried: a clear transport error naming status and action
    "html-404": ("json", {"kind": "html", "status": 404}, SmsCnTransportError, "HTTP 404", 404, False, ""),
}


@pytest.mark.parametrize("case", list(UNREADABLE_READS))
@pytest.mark.parametrize("action", READS)
def test_unreadable_read_reply_fails_at_once(box, scan, caplog, monkeypatch, action, case):
    reply_format, fault, error_type, says, status, retriable, excerpt = UNREADABLE_READS[case]
    use_connection(monkeypatch, box, reply_format=reply_format)
    before = requests_seen(box, action)
    box.inject_fault(**fault, action=action, count=1)
    err, waits = failure(box, action, error_type, scan, caplog)
    assert says.format(action=action) in str(err)
    assert err.http_status == status and err.retriable is retriable
    assert excerpt in (err.body_excerpt or "")
    assert requests_seen(box, action) == before + 1
    assert waits == []


@pytest.mark.parametrize(("fault", "placed"), [
    # the call was placed; its reply broke off (whole, or cut short)
    ({"kind": "truncate", "length": "full"}, True),
    ({"kind": "truncate", "length": "truncated"}, True),
    # a proxy's page: the call never reached the vendor
    ({"kind": "html", "status": 200}, False),
    ({"kind": "html", "status": 502}, False),
], ids=["truncated-full", "truncated", "html-200", "html-502"])
def test_sendcode_unreadable_reply_is_outcome_unknown(box, scan, caplog, fault, placed):
    before = requests_seen(box, "sendcode")
    box.inject_fault(**fault, action="sendcode", count=1)
    err, waits = failure(box, "sendcode", SmsCnSendOutcomeUnknownError, scan, caplog)
    assert_send_unknown(box, err, waits, before=before, placed=placed)


@pytest.mark.parametrize("reply_format", ["json", "xml", "txt"])
@pytest.mark.parametrize("encoding", ["utf-8", "gbk"])
@pytest.mark.parametrize("action", ACTIONS)
def test_wrong_charset_is_read_all_the_same(box, scan, caplog, monkeypatch, action, encoding, reply_format):
    """GBK declared as UTF-8 (and UTF-8 declared as GBK after ``encode=gbk``): one request, read."""
    use_connection(monkeypatch, box, reply_format=reply_format, encoding=encoding)
    before, result, sleeper = fault_then_run(box, action, "wrong_charset", count=1)
    if action == "sendcode":
        expect_success(action, result)
        assert len(calls_after_seed(box)) == len(NUMBERS)
    elif action == "number":
        assert result == BALANCE - len(NUMBERS)
    else:
        expect_success(action, result)
    assert requests_seen(box, action) == before + 1
    assert sleeper.waits == []
    assert_clean(caplog.text, scan)


def test_wrong_charset_query_content_keeps_its_chinese_text(box, monkeypatch):
    """The record content (the template text) survives a wrong declared charset in every format."""
    for encoding in ("utf-8", "gbk"):
        box.reset()
        use_connection(monkeypatch, box, encoding=encoding)
        hook, _ = fast_hook()
        hook.send_voice_code(NUMBERS[:1], "700001", {"code": CODE})
        box.inject_fault("wrong_charset", action="query", count=1)
        records = hook.query_sent_records()
        assert [r.content for r in records] == [f"您的验证码是：{CODE}。"], encoding


# ------------------------------------------------------------------------------- XML bomb


@pytest.mark.parametrize("reply_format", ["xml", "json", "txt"])
@pytest.mark.parametrize("action", ACTIONS)
def test_xml_bomb_is_refused_without_memory_blowup(box, scan, caplog, monkeypatch, action, reply_format):
    use_connection(monkeypatch, box, reply_format=reply_format)
    before = requests_seen(box, action)
    box.inject_fault("xml_bomb", action=action, count=1)
    expected = SmsCnSendOutcomeUnknownError if action == "sendcode" else SmsCnResponseError
    tracemalloc.start()
    try:
        err, waits = failure(box, action, expected, scan, caplog)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 32 * 1024 * 1024, f"peak {peak} bytes"
    assert "lollol" not in str(err)
    assert requests_seen(box, action) == before + 1
    if action == "sendcode":
        assert_send_unknown(box, err, waits, before=before, placed=False)
    else:
        assert waits == []
        if reply_format == "xml":
            assert "XML refused" in str(err)


# ------------------------------------------------------------------------------ 107 storms


@pytest.mark.parametrize("code", [107, 110])
@pytest.mark.parametrize("storm", [1, 3])
@pytest.mark.parametrize("action", ACTIONS)
def test_rate_limit_storm_backs_off_then_succeeds(box, scan, caplog, action, storm, code):
    before, result, sleeper = fault_then_run(box, action, "stat", code=code, count=storm)
    expect_success(action, result)
    assert requests_seen(box, action) == before + storm + 1
    assert len(sleeper.waits) == storm
    assert sleeper.waits == sorted(sleeper.waits) and all(0 < w <= 8.0 for w in sleeper.waits)
    if action == "sendcode":  # refused requests placed nothing; the accepted one placed each call once
        calls = calls_after_seed(box)
        assert [c["mobile"] for c in calls] == NUMBERS
        assert all(c["variables"] == {"code": CODE} for c in calls)
    assert f"ac={action} attempt 1 failed" in caplog.text
    assert_clean(caplog.text, scan)


@pytest.mark.parametrize("attempts", [1, 4, 6])
@pytest.mark.parametrize("action", ACTIONS)
def test_permanent_rate_limit_storm_is_a_clear_rate_limit_error(box, scan, caplog, action, attempts):
    before = requests_seen(box, action)
    box.inject_fault("stat", code=107, action=action)
    err, waits = failure(box, action, SmsCnRateLimitError, scan, caplog, attempts=attempts)
    assert err.code == 107 and err.retriable is True
    assert f"sms.cn API error 107 on ac={action}" in str(err)
    assert requests_seen(box, action) == before + attempts
    assert len(waits) == attempts - 1
    if action == "sendcode":
        assert calls_after_seed(box) == []


@pytest.mark.parametrize("action", ACTIONS)
def test_server_failure_code_is_not_retried_by_the_client(box, scan, caplog, action):
    """103 is retriable advice for Airflow, but the client does not loop on it by itself."""
    before = requests_seen(box, action)
    box.inject_fault("stat", code=103, action=action)
    err, waits = failure(box, action, SmsCnServerError, scan, caplog)
    assert err.retriable is True and waits == []
    assert requests_seen(box, action) == before + 1


# -------------------------------------------------------------------- every credential mode


@pytest.mark.parametrize("auth", ["secret", "password", "api_password"])
def test_no_credential_in_any_failure_of_any_auth_mode(box, scan, caplog, monkeypatch, auth):
    """Each failure kind in each signing mode: the errors and the debug log hold no secret."""
    use_connection(monkeypatch, box, auth=auth)
    texts = []
    for action, kind, params, expected in [
        ("number", "http_status", {"status": 503}, SmsCnTransportError),
        ("status", "drop", {"reset": True}, SmsCnTransportError),
        ("query", "html", {}, SmsCnResponseError),
        ("number", "stat", {"code": 107}, SmsCnRateLimitError),
        ("sendcode", "http_status", {"status": 500, "after": True}, SmsCnSendOutcomeUnknownError),
        ("sendcode", "truncate", {"length": "truncated"}, SmsCnSendOutcomeUnknownError),
    ]:
        box.clear_faults()
        box.inject_fault(kind, action=action, **params)
        hook, _ = fast_hook(attempts=2)
        with pytest.raises(expected) as info:
            run_action(hook, action)
        texts.append(exception_text(info.value))
        hook.close()
    box.clear_faults()
    assert_clean("\n".join(texts) + caplog.text, scan)
