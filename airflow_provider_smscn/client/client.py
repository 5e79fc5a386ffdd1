"""SmsCnClient: one method per action of the sms.cn voice API, Airflow-free.

Each call validates its input, signs, sends one form request per attempt, parses the reply into a
typed result and maps ``stat`` codes to exceptions. Retries follow one rule (decisions #17, #18):
retry only what cannot phone anyone twice. So ``sendcode`` is retried when the connection was
never made or the vendor refused the request (107, 110); a read timeout, a reset after sending,
an HTTP 5xx or an unreadable reply raise :class:`SmsCnSendOutcomeUnknownError` instead.
Balance, status and query are also retried on read timeouts, resets and HTTP 5xx.

No exception raised here carries, chains or logs a credential: ``requests`` exceptions (their
text holds URLs and bodies) are replaced by :class:`SmsCnTransportError` naming the exception
class, the action and the host, raised without context.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import random
import re
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from urllib3.exceptions import ConnectTimeoutError, MaxRetryError
from urllib3.util.ssl_match_hostname import CertificateError

from airflow_provider_smscn import __version__

from .codes import SUCCESS, code_info
from .errors import (
    SmsCnApiError,
    SmsCnError,
    SmsCnResponseError,
    SmsCnSendOutcomeUnknownError,
    SmsCnTransportError,
    SmsCnValidationError,
)
from .models import DeliveryReport, SendResult, SentRecord
from .options import default
from .redact import mask_mobiles
from .replies import (
    REPLY_FORMATS,
    charset_from_content_type,
    decode_body,
    parse_reply,
    parse_uint,
    safe_excerpt,
)
from .signing import Signer
from .validation import (
    account_key,
    generate_mobileids,
    normalize_mobileids,
    normalize_mobiles,
    normalize_variables,
    validate_template_id,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping, Sequence

DEFAULT_BASE_URL = "https://api.sms.cn/voice/"
USER_AGENT = f"airflow-provider-smscn/{__version__}"

SENDCODE, NUMBER, STATUS, QUERY = "sendcode", "number", "status", "query"

log = logging.getLogger("airflow_provider_smscn.client")

# encoding option -> (Python codec, value of the ``encode`` parameter)
_ENCODINGS = {"utf-8": ("utf-8", "utf8"), "utf8": ("utf-8", "utf8"), "gbk": ("gbk", "gbk")}
_LANGUAGE = re.compile(r"[A-Za-z]{1,20}")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# HTTP statuses that say the request was not processed: retried like a refusal code.
_HTTP_RETRY_NOT_PROCESSED = frozenset({408, 429})


@dataclass(frozen=True)
class RetryPolicy:
    """How the client retries what is safe to retry: exponential back-off with jitter, bounded.

    The n-th wait is ``initial_wait * multiplier ** (n - 1)``, scaled by a random factor in
    ``[1 - jitter, 1 + jitter]``, never above ``max_wait``. Which ``stat`` codes are retried is
    not a policy setting: the code table says it (``CodeInfo.backoff``, refusals: nothing was
    sent). ``sleep`` is injectable so tests never really sleep. The defaults of ``max_attempts``
    and ``max_wait`` are those of the ``retries`` and ``retry_max_wait`` extras.

    :param max_attempts: attempts in all, 1 to 20 (4 = 3 retries).
    :param initial_wait: the first wait, seconds; 0 <= ``initial_wait`` <= ``max_wait``.
    :param max_wait: cap of every wait, seconds, at most 600.
    :param multiplier: growth of the waits, 1 to 10.
    :param jitter: each wait is scaled by a random factor in ``[1 - jitter, 1 + jitter]``, in [0, 1).
    :param sleep: called with each wait; injectable for tests.
    """

    max_attempts: int = default("retries") + 1
    initial_wait: float = 0.5
    max_wait: float = default("retry_max_wait")
    multiplier: float = 2.0
    jitter: float = 0.25
    sleep: Callable[[float], None] = field(default=time.sleep, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.max_attempts, bool) or not isinstance(self.max_attempts, int) \
                or not 1 <= self.max_attempts <= 20:
            raise SmsCnValidationError("RetryPolicy.max_attempts must be an int from 1 to 20")
        if not (0.0 <= self.initial_wait <= self.max_wait <= 600.0):
            raise SmsCnValidationError("RetryPolicy needs 0 <= initial_wait <= max_wait <= 600 seconds")
        if not 1.0 <= self.multiplier <= 10.0:
            raise SmsCnValidationError("RetryPolicy.multiplier must be between 1 and 10")
        if not 0.0 <= self.jitter < 1.0:
            raise SmsCnValidationError("RetryPolicy.jitter must be a fraction in [0, 1)")
        if not callable(self.sleep):
            raise SmsCnValidationError("RetryPolicy.sleep must be callable")

    def wait_seconds(self, attempt_number: int) -> float:
        """Seconds to wait after failed attempt ``attempt_number`` (1 = the first)."""
        wait = min(self.max_wait, self.initial_wait * self.multiplier ** min(attempt_number - 1, 60))
        if self.jitter:
            wait *= 1.0 + random.uniform(-self.jitter, self.jitter)  # back-off jitter, not cryptography
        return min(self.max_wait, wait)


class _Retry(Exception):
    """Internal: an attempt failed in a way the client retries; ``error`` is what the caller gets
    when the attempts run out."""

    def __init__(self, error: SmsCnError) -> None:
        super().__init__(str(error))
        self.error = error


class SmsCnClient:
    """Client of the sms.cn voice API (``https://api.sms.cn/voice/``).

    Credentials: ``secret_key`` (recommended), else ``api_password`` (the 32-hex interface
    password), else ``password`` (the login password); see :class:`Signer`. ``on_secret`` is
    called with each derived credential (``pwd``, each new ``tokenkey``) so a caller can mask it.
    Everything is validated here, before any request. The client owns one ``requests.Session``
    (created on first use, closed by :meth:`close`) unless ``session`` is given. Signing and
    retry state are thread-safe; sharing one client between threads is as safe as sharing a
    ``requests.Session``. The defaults of the settings a Connection carries come from the extras
    table (``client.options``).

    :param uid: the account name; non-empty, no whitespace or control characters.
    :param password: the login password: ``pwd = md5(password + uid)``.
    :param api_password: the console's 32-hex API password, sent as ``pwd``.
    :param secret_key: secret signing: ``tokenkey = md5(uid + secret_key + timestamp)``. The first
        of ``secret_key``, ``api_password``, ``password`` given wins; ``""`` counts as not given.
    :param base_url: an ``http(s)`` URL without user info, query or fragment.
    :param reply_format: ``json``, ``xml`` or ``txt``.
    :param encoding: ``utf-8`` (or ``utf8``) or ``gbk`` request text (``encode=gbk`` is sent for
        GBK; ``ac=query`` always carries ``encode``).
    :param language: e.g. ``english`` for English messages.
    :param timeout: seconds, or a (connect, read) pair; each in (0, 3600).
    :param method: ``POST`` or ``GET``.
    :param max_numbers_per_request: most numbers in one ``sendcode`` (more raise a validation error).
    :param retry: the back-off policy (default ``RetryPolicy()``).
    :param verify: TLS verification, or the path of a CA bundle.
    :param session: a session of yours (``close()`` leaves it open); default: one owned session,
        created on first use.
    :param clock: an aware "now" for signing (tests).
    :param on_secret: called with each derived credential (``pwd``, each new ``tokenkey``); the
        hook passes Airflow's ``mask_secret``.
    :param signature_reuse_seconds: how long one timestamp / ``tokenkey`` is reused, 0 to 240.
    """

    def __init__(self, uid: str, *, password: str | None = None, api_password: str | None = None,
                 secret_key: str | None = None, base_url: str = DEFAULT_BASE_URL,
                 reply_format: str = default("format"), encoding: str = default("encoding"),
                 language: str | None = default("language"),
                 timeout: float | tuple[float, float] = default("timeout"), method: str = default("method"),
                 max_numbers_per_request: int = default("max_numbers_per_request"),
                 retry: RetryPolicy | None = None,
                 verify: bool | str = default("verify"), session: requests.Session | None = None,
                 clock: Callable[[], dt.datetime] | None = None,
                 on_secret: Callable[[str], None] | None = None,
                 signature_reuse_seconds: float = 30.0) -> None:
        self._signer = Signer(uid, password=password, api_password=api_password, secret_key=secret_key,
                              clock=clock, on_secret=on_secret,
                              signature_reuse_seconds=signature_reuse_seconds)
        self._url, self._host, self.account_key = _check_base_url(base_url, self._signer.uid)
        if reply_format not in REPLY_FORMATS:
            raise SmsCnValidationError(f"reply_format must be one of {', '.join(REPLY_FORMATS)}")
        self._format = reply_format
        if not isinstance(encoding, str) or encoding.lower() not in _ENCODINGS:
            raise SmsCnValidationError("encoding must be 'utf-8' or 'gbk'")
        self._codec, encode_param = _ENCODINGS[encoding.lower()]
        if language and not (isinstance(language, str) and _LANGUAGE.fullmatch(language)):
            raise SmsCnValidationError("language must be a word such as 'english'")
        self._timeout = _check_timeout(timeout)
        if not isinstance(method, str) or method.upper() not in ("POST", "GET"):
            raise SmsCnValidationError("method must be 'POST' or 'GET'")
        self._method = method.upper()
        if isinstance(max_numbers_per_request, bool) or not isinstance(max_numbers_per_request, int) \
                or max_numbers_per_request < 1:
            raise SmsCnValidationError("max_numbers_per_request must be a positive int")
        self._max_numbers = max_numbers_per_request
        if not isinstance(verify, (bool, str)):
            raise SmsCnValidationError("verify must be a bool or the path of a CA bundle")
        self._verify = verify
        self._policy = retry or RetryPolicy()

        # Common parameters; decisions #2: ``encode`` only for GBK, except always on ``ac=query``.
        common = {"format": reply_format}
        if language:
            common["language"] = language.lower()
        self._common = dict(common, encode=encode_param) if self._codec == "gbk" else common
        self._common_query = dict(common, encode=encode_param)
        self._headers = {"User-Agent": USER_AGENT}
        if self._method == "POST":
            self._headers["Content-Type"] = "application/x-www-form-urlencoded"
        if self._method == "GET":
            _install_urllib3_query_filter()

        self._own_session = session is None
        self._session = session
        self._session_lock = threading.Lock()
        self._retrying = Retrying(
            stop=stop_after_attempt(self._policy.max_attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_Retry),
            sleep=self._policy.sleep,
            before_sleep=_log_retry,
            reraise=True,
        )

    @property
    def max_numbers_per_request(self) -> int:
        """Largest count of numbers one ``sendcode`` request may carry (callers chunk by it)."""
        return self._max_numbers

    # ------------------------------------------------------------------ actions

    def send_voice_code(self, mobiles: str | Iterable[str], template_id: str | int,
                        variables: Mapping[str, Any] | str,
                        mobileids: str | Sequence[str] | None = None) -> SendResult:
        """Place a voice verification call to each number, from a variable template (``ac=sendcode``).

        ``mobileids`` (one per number) are generated at random when not given; pass deterministic
        ones (:func:`~.validation.deterministic_mobileid`) to make a retried task safe: the
        vendor refuses a repeat with 124 instead of calling again.
        """
        numbers = normalize_mobiles(mobiles, self._max_numbers)
        template = validate_template_id(template_id)
        content = json.dumps(normalize_variables(variables), ensure_ascii=False, separators=(",", ":"))
        ids = normalize_mobileids(mobileids, len(numbers)) or generate_mobileids(len(numbers))
        params = {"mobile": ",".join(numbers), "mobileids": ",".join(ids), "template": template,
                  "content": content}
        reply = self._call(SENDCODE, self._encode(SENDCODE, self._common, params), ids, numbers)
        return SendResult(mobiles=numbers, mobileids=ids, code=SUCCESS, message=reply.get("message", ""))

    def get_balance(self) -> int:
        """The remaining balance (``ac=number``)."""
        reply = self._call(NUMBER, self._encode(NUMBER, self._common, {}))
        raw = reply.get("number", reply.get("remain"))  # json/xml say number, txt says remain
        balance = parse_uint(raw)
        if balance is None:
            raise SmsCnResponseError("balance reply to ac=number has no numeric 'number'", action=NUMBER,
                                     body_excerpt=safe_excerpt(str(raw)))
        return balance

    def pull_delivery_reports(self) -> list[DeliveryReport]:
        """Pull the next delivery reports of the account (``ac=status``).

        The vendor hands each report out once, to whoever pulls it, including reports of messages
        other systems sent with the same account: keep every report this returns.
        """
        reply = self._call(STATUS, self._encode(STATUS, self._common, {}))
        return [
            DeliveryReport(mobile=item.get("mobile", ""), mobileid=item.get("mobileids", ""),
                           resultcode=_lenient_int(item.get("resultcode"), "resultcode", STATUS),
                           status=item.get("status", ""), retime=item.get("retime", ""))
            for item in reply.get("values", [])
        ]

    def query_sent_records(self, date: str | dt.date | None = None,
                           mobile: str | None = None) -> list[SentRecord]:
        """Fetch the next sent records (``ac=query``): one call, at most 50 records.

        The vendor hands each record out once; an empty list means none are left. ``date``
        (``YYYY-MM-DD`` or a date) and ``mobile`` narrow the query.
        """
        params: dict[str, str] = {}
        if date is not None:
            params["date"] = _query_date(date)
        if mobile is not None:
            params["key"] = normalize_mobiles([mobile], 1)[0]
        reply = self._call(QUERY, self._encode(QUERY, self._common_query, params))
        return [
            SentRecord(mobile=item.get("mobile", ""), sendtime=item.get("sendtime", ""),
                       content=item.get("content", ""),
                       status=_lenient_int(item.get("status"), "status", QUERY))
            for item in reply.get("values", [])
        ]

    # ------------------------------------------------------------------ lifecycle

    def close(self) -> None:
        """Close the session the client created (a session passed in is the caller's to close)."""
        with self._session_lock:
            session, self._session = self._session, (None if self._own_session else self._session)
        if self._own_session and session is not None:
            session.close()

    def __enter__(self) -> SmsCnClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return (f"SmsCnClient(account={self.account_key!r}, auth={self._signer.mode!r}, "
                f"format={self._format!r}, method={self._method!r})")

    # ------------------------------------------------------------------ plumbing

    def _encode(self, action: str, common: Mapping[str, str], params: Mapping[str, str]) -> str:
        """The action's form fields, encoded once for all attempts (auth is added per attempt)."""
        try:
            return urlencode({"ac": action, **common, **params}, encoding=self._codec)
        except UnicodeEncodeError:
            pass  # raised below, outside the handler: the UnicodeEncodeError holds the text
        raise SmsCnValidationError(
            f"the request text of ac={action} cannot be encoded as {self._codec.upper()}; "
            "use encoding='utf-8'"
        )

    def _call(self, action: str, body: str, mobileids: list[str] | None = None,
              mobiles: list[str] | None = None) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            reply: dict[str, Any] = self._retrying(self._attempt, action, body, mobileids)
        except _Retry as retry:
            error = retry.error
        else:
            if log.isEnabledFor(logging.DEBUG):
                log.debug("sms.cn ac=%s on %s ok in %.0f ms%s", action, self.account_key,
                          (time.perf_counter() - started) * 1000,
                          f" for {mask_mobiles(mobiles)}" if mobiles else "")
            return reply
        raise error from None

    def _wait(self, retry_state: RetryCallState) -> float:
        return self._policy.wait_seconds(retry_state.attempt_number)

    def _attempt(self, action: str, body: str, mobileids: list[str] | None) -> dict[str, Any]:
        payload = urlencode(self._signer.auth_params(), encoding=self._codec) + "&" + body
        _WIRE.reset()
        try:
            response = self._send(payload)
        except requests.RequestException as exc:
            failure = self._transport_failure(exc, action, mobileids, _WIRE.nothing_written())
        else:
            return self._read(response, action, mobileids)
        raise failure  # outside the handler: nothing of the requests exception is chained

    def _send(self, payload: str) -> requests.Response:
        session = self._session or self._new_session()
        if self._method == "POST":
            return session.post(self._url, data=payload.encode("ascii"), headers=self._headers,
                                timeout=self._timeout, verify=self._verify, allow_redirects=False)
        return session.get(self._url, params=payload, headers=self._headers, timeout=self._timeout,
                           verify=self._verify, allow_redirects=False)

    def _new_session(self) -> requests.Session:
        with self._session_lock:
            if self._session is None:
                self._session = _wire_watching_session()
            return self._session

    def _transport_failure(self, exc: requests.RequestException, action: str,
                           mobileids: list[str] | None, nothing_written: bool) -> Exception:
        """The error to raise for a ``requests`` exception, wrapped in ``_Retry`` when safe to retry.

        ``sendcode`` is "not sent" only when the failure proves that no byte of the request left:
        the connection was never made, or TLS failed while connecting (``nothing_written``, known
        from our own connection class; a certificate error, by its type, also with a session of
        the caller's). Anything else, an ``SSLError`` included, may follow a written request.
        """
        name = type(exc).__name__
        reason = _connect_failure(exc)
        tls = isinstance(exc, requests.exceptions.SSLError)
        if tls and (nothing_written or _certificate_failure(exc)):
            return SmsCnTransportError(
                f"TLS failure ({name}) while connecting on ac={action} to {self._host}", action=action)
        if reason is not None or nothing_written:
            return _Retry(SmsCnTransportError(
                f"could not connect ({reason or name}) on ac={action} to {self._host}", action=action))
        if action == SENDCODE:
            what = "TLS failure" if tls else name
            return self._outcome_unknown(f"{what} ({name}) after the request may have been written",
                                         mobileids, None)
        # A read (balance, status, query) broken after it was written is a reset like any other:
        # asking again calls nobody, so it is retried, TLS or not.
        what = f"TLS failure ({name})" if tls else name
        return _Retry(SmsCnTransportError(f"{what} on ac={action} to {self._host}", action=action))

    def _read(self, response: requests.Response, action: str,
              mobileids: list[str] | None) -> dict[str, Any]:
        status = response.status_code
        if 300 <= status < 400:
            error = SmsCnTransportError(
                f"HTTP {status} redirect from {self._host} on ac={action}: check base_url "
                "(redirects are not followed, they would resend the credentials)",
                action=action, http_status=status)
            error.retriable = False
            raise error
        if status >= 500:
            if action == SENDCODE:
                raise self._outcome_unknown(f"HTTP {status}", mobileids, status)
            raise _Retry(SmsCnTransportError(f"HTTP {status} from {self._host} on ac={action}",
                                             action=action, http_status=status))
        text = decode_body(response.content, charset_from_content_type(response.headers.get("Content-Type")))
        problem: SmsCnResponseError | None = None
        reply: dict[str, Any] = {}
        try:
            reply = parse_reply(text, self._format, action=action)
        except SmsCnResponseError as exc:
            problem = exc
        # No ``stat`` is the empty ac=query reply (it has ``total``), and nothing else.
        if problem is None and reply["stat"] is None and not (action == QUERY and "total" in reply):
            problem = SmsCnResponseError(f"reply to ac={action} has no 'stat'", action=action,
                                         body_excerpt=safe_excerpt(text))
        if problem is not None:
            problem.http_status = status
            if status >= 400:
                error = SmsCnTransportError(f"HTTP {status} from {self._host} on ac={action}",
                                            action=action, http_status=status,
                                            body_excerpt=problem.body_excerpt)
                if status in _HTTP_RETRY_NOT_PROCESSED:
                    raise _Retry(error)
                error.retriable = False
                raise error
            if action == SENDCODE:
                raise self._outcome_unknown("an unreadable reply", mobileids, status)
            raise problem
        stat = reply["stat"]
        if stat is not None and stat != SUCCESS:
            api_error = SmsCnApiError.from_code(stat, safe_excerpt(reply.get("message", ""), 120),
                                                action=action)
            info = code_info(stat)
            if info is not None and info.backoff:
                raise _Retry(api_error)
            raise api_error
        return reply

    def _outcome_unknown(self, what: str, mobileids: list[str] | None,
                         http_status: int | None) -> SmsCnSendOutcomeUnknownError:
        ids = mobileids or []
        return SmsCnSendOutcomeUnknownError(
            f"ac=sendcode to {self._host}: {what}; the vendor may have accepted the request for "
            f"{len(ids)} number(s). Not retried, to never call anyone twice: look for its message ids "
            "in the delivery reports before sending again",
            mobileids=ids, http_status=http_status,
        )


# ---------------------------------------------------------------------- helpers


def _check_base_url(base_url: str, uid: str) -> tuple[str, str, str]:
    """Return (url, host, account key) of a valid base URL."""
    parts = urlsplit(base_url) if isinstance(base_url, str) else None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        raise SmsCnValidationError("base_url must be an http(s) URL such as https://api.sms.cn/voice/")
    if "@" in parts.netloc or parts.query or parts.fragment:
        raise SmsCnValidationError("base_url must not carry user info, a query string or a fragment")
    host = parts.netloc.lower()
    return base_url, host, account_key(uid, parts.scheme, parts.netloc, parts.path)


def _check_timeout(timeout: float | tuple[float, float]) -> float | tuple[float, float]:
    values = timeout if isinstance(timeout, tuple) else (timeout,)
    if len(values) not in (1, 2) or not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < 3600 for v in values):
        raise SmsCnValidationError("timeout must be seconds > 0, or a (connect, read) pair of them")
    return timeout


def _query_date(date: str | dt.date) -> str:
    if isinstance(date, dt.datetime):
        date = date.date()
    if isinstance(date, dt.date):
        return date.isoformat()
    if isinstance(date, str) and _DATE.fullmatch(date.strip()):
        try:
            return dt.date.fromisoformat(date.strip()).isoformat()
        except ValueError:
            pass
    raise SmsCnValidationError("date must be a date or a YYYY-MM-DD string")


def _connect_failure(exc: requests.RequestException) -> str | None:
    """Name the cause when ``exc`` says the connection was never made (nothing was sent)."""
    if isinstance(exc, (requests.exceptions.ConnectTimeout, requests.exceptions.ProxyError)):
        return type(exc).__name__
    if isinstance(exc, requests.exceptions.ConnectionError) and exc.args:
        cause = exc.args[0]
        # urllib3 reports refused connections, DNS failures and connect timeouts as
        # MaxRetryError(reason=NewConnectionError / NameResolutionError / ConnectTimeoutError).
        if isinstance(cause, MaxRetryError) and isinstance(cause.reason, ConnectTimeoutError):
            return type(cause.reason).__name__
    return None


def _certificate_failure(exc: requests.RequestException) -> bool:
    """True for a certificate that failed verification: that happens in the handshake, before any
    byte of the request can be written."""
    seen: set[int] = set()
    pending: list[object] = [exc]
    while pending:
        current = pending.pop()
        if not isinstance(current, BaseException) or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, (ssl.SSLCertVerificationError, CertificateError)):
            return True
        pending += [*current.args, getattr(current, "reason", None), current.__cause__, current.__context__]
    return False


class _WireState(threading.local):
    """Per thread, per attempt: did our connection class write a byte of the request?

    ``instrumented`` stays false when the request went through a session of the caller's (or
    failed before reaching a connection): then only the exception's type can prove anything.
    """

    instrumented = False
    written = False

    def reset(self) -> None:
        self.instrumented = self.written = False

    def nothing_written(self) -> bool:
        return self.instrumented and not self.written


_WIRE = _WireState()


class _WatchedConnection:
    """Mixin of urllib3 connections: notes in ``_WIRE`` when request bytes start to leave.

    ``connect()`` (TCP, proxy tunnel, TLS handshake) writes no byte of the request; ``send()``
    outside ``connect()`` does (http.client writes headers and body through it).
    """

    _smscn_connecting = False

    def connect(self) -> None:
        _WIRE.instrumented = True
        self._smscn_connecting = True
        try:
            super().connect()  # type: ignore[misc]
        finally:
            self._smscn_connecting = False

    def send(self, data: Any) -> None:
        if getattr(self, "sock", None) is None and not self._smscn_connecting:
            self.connect()  # http.client would connect here too: a failure leaves nothing written
        if not self._smscn_connecting:
            _WIRE.instrumented = _WIRE.written = True
        super().send(data)  # type: ignore[misc]


def _wire_watching_session() -> requests.Session:
    """A session whose connections report to ``_WIRE`` (see ``_transport_failure``)."""
    from requests.adapters import HTTPAdapter
    from urllib3.connection import HTTPConnection, HTTPSConnection
    from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

    class _HTTP(_WatchedConnection, HTTPConnection):
        pass

    class _HTTPS(_WatchedConnection, HTTPSConnection):
        pass

    class _HTTPPool(HTTPConnectionPool):
        ConnectionCls = _HTTP

    class _HTTPSPool(HTTPSConnectionPool):
        ConnectionCls = _HTTPS

    class _Adapter(HTTPAdapter):
        def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
            super().init_poolmanager(*args, **kwargs)
            self.poolmanager.pool_classes_by_scheme = {"http": _HTTPPool, "https": _HTTPSPool}

    session = requests.Session()
    session.mount("http://", _Adapter())
    session.mount("https://", _Adapter())
    return session


def _lenient_int(value: str | None, name: str, action: str) -> int:
    """A report field as int; -1 (and a warning) rather than an error, which would lose the batch:
    the vendor hands each report and record out only once."""
    number = parse_uint(value)
    if number is not None:
        return number
    log.warning("sms.cn ac=%s: item with a non-numeric %s kept with %s=-1", action, name, name)
    return -1


def _log_retry(retry_state: RetryCallState) -> None:
    outcome = retry_state.outcome
    failure = outcome.exception() if outcome is not None else None
    error = failure.error if isinstance(failure, _Retry) else failure
    wait = retry_state.next_action.sleep if retry_state.next_action else 0.0
    log.info("sms.cn ac=%s attempt %d failed (%s); retrying in %.2f s", retry_state.args[0],
             retry_state.attempt_number, error, wait)


class _RedactQueryFilter(logging.Filter):
    """Cuts the query string out of urllib3's request log lines that carry ``pwd`` / ``tokenkey``
    (with ``method='GET'`` they also hold numbers and codes). Other lines pass untouched."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(_is_signed_url(a) for a in record.args):
            record.args = tuple(f"{str(a).split('?', 1)[0]}?<redacted>" if _is_signed_url(a) else a
                                for a in record.args)
        return True


def _is_signed_url(value: object) -> bool:
    return isinstance(value, str) and "?" in value and ("pwd=" in value or "tokenkey=" in value)


_query_filter_lock = threading.Lock()


def _install_urllib3_query_filter() -> None:
    target = logging.getLogger("urllib3.connectionpool")
    with _query_filter_lock:
        if not any(isinstance(f, _RedactQueryFilter) for f in target.filters):
            target.addFilter(_RedactQueryFilter())
