"""The emulated sms.cn voice API: request parsing, the four actions, and the HTTP server.

Written from the vendor's document (its facts in docs/api.md) and docs/api-decisions.md only,
never from the project's client, so the two cannot share a misunderstanding. Standard library only.

Behaviour the document does not fix, as this sandbox implements it:

Requests
  * ``/voice/`` (and ``/voice``) answers GET and POST (form-encoded); parameters from the query
    string and the body are merged, a later occurrence wins (the body over the query string), as
    PHP's ``$_REQUEST`` does. Values are stripped of surrounding spaces.
  * Charset: ``encode=gbk`` (also ``gb2312``, ``gb18030``, ``cp936``) decodes the form as GBK and
    encodes the reply as GBK, declared ``charset=gbk``; ``encode=utf8``/``utf-8`` decodes UTF-8.
    Without ``encode`` the form is UTF-8, except ``ac=query`` (GBK by default: docs/api.md,
    decision #2). A form that does not decode in its charset gets 104 (非法字符) after
    authentication.
  * ``format`` other than ``json``/``xml``/``txt`` falls back to json; ``language=english``
    (any case) gives English messages.

Order of checks (the first failing one answers)
  101 no ``uid`` or neither ``pwd`` nor ``tokenkey``; with ``tokenkey``: 118 ``timestamp`` missing
  or not a real ``yyyyMMddHHmmss``, 119 more than 300 s from Beijing time (UTC+8, which has had no
  daylight saving since 1991), then 101 unknown uid or wrong signature; with ``pwd`` only: 101
  unknown uid or ``pwd`` != md5(password + uid) (hex compared case-insensitively). ``tokenkey`` wins
  when both are given. Then 117 (the account has ``bound_ips``, addresses or CIDR networks, and the
  peer address is not among them), 109 frozen, 107 over the per-account rate (a sliding one-second
  window of accepted requests; refused requests do not count), 103 unknown or missing ``ac``,
  104 undecodable form, then the action.

sendcode (alias send); the whole request is refused on any error, nothing is sent
  116 account flagged ``send_forbidden``; 108 no number (empty items between commas are ignored,
  so a trailing comma is fine); 106 more numbers than ``max_numbers`` (1000); 112 a number that is
  neither 11 digits starting with 1 nor 0 + 9-11 digits; 161 the account has no template; 163
  ``template`` missing or unknown; ``content``: 108 when empty and the template has slots, 164 when
  not a JSON object, keys not exactly the template's ``{$name}`` slots, or a value not a string or
  number; 169 a value longer than ``max_variable_length`` (off by default).
  ``mobileids`` (optional): 104 when their count differs from the numbers', or one is not 1-30
  digits. Only on accounts with ``dedup_mobileids`` (off by default, as the document promises no
  deduplication): 124 when one repeats inside the request or was already accepted for the account.
  151 the calls would exceed ``hourly_cap`` over the last 3600 s; 152 they would exceed
  ``daily_cap`` over the Beijing calendar day (caps count calls, i.e. numbers; off by default);
  102 fewer balance units than numbers. Success: ``{"stat":"100","message":"发送成功"}`` and no
  more: the reply carries no message ids, so ids the sandbox generates (20 random digits from the
  seeded RNG, unique per account, never containing the number) are seen only in reports, query
  results and ``/_control/calls``. A number repeated in one request places two calls.

status
  Each placed call yields one report, pullable ``report_delay`` seconds after the send, with a
  result code from ``outcome_by_mobile`` or else drawn from the ``outcomes`` weights (default all
  100) with the seeded RNG at send time. A pull hands out at most ``max_reports_per_pull`` (100)
  ready reports, oldest send first, each once to whoever pulls it. ``retime`` is the moment the
  report became ready; ``status`` is DELIVRD (100), UNDELIV (130), MN:0001 (131), MK:0005 (132),
  MK:0004 (133), UNKNOWN (134 and anything else). ``total`` is the count in this reply.

number
  ``{"stat":"100","message":"成功","number":"N"}``; txt ``sms&stat=100&remain=N``.

query
  Records of accepted calls only (refused requests leave none, so ``status`` is always "1"), in
  send order; ``date`` (YYYY-MM-DD, Beijing) and ``key`` (exact number) filter; a malformed
  ``date`` gives 104. At most 50 a call, each once. ``content`` is the template with its slots
  filled. ``stat`` is a JSON number in every json reply of this action, errors included.

Everything else (faults, the control API, logging) is described in ``faults.py`` and
``control.py``. The server never logs a request line: query strings carry credentials.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import hmac
import ipaddress
import json
import logging
import math
import random
import re
import socket
import socketserver
import struct
import sys
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.sandbox import control, faults, replies
from airflow_provider_smscn.sandbox.accounts import (
    AccountConfig,
    AccountState,
    Report,
    SendRecord,
    example_account,
    template_slots,
)

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

log = logging.getLogger("airflow_provider_smscn.sandbox")

BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
TIMESTAMP_WINDOW_SECONDS = 300
QUERY_PAGE_SIZE = 50
MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_MESSAGE_ID_DIGITS = 30

ACTIONS = ("sendcode", "status", "number", "query")
_NUMBER = re.compile(r"(?:1\d{10}|0\d{9,11})")
_DIGITS = re.compile(r"\d+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_GBK_NAMES = {"gbk": "gbk", "gb2312": "gbk", "cp936": "gbk", "gb18030": "gb18030"}
_UTF8_NAMES = {"utf8", "utf-8"}

REPORT_STATUS_TEXT = {100: "DELIVRD", 130: "UNDELIV", 131: "MN:0001", 132: "MK:0005", 133: "MK:0004"}


# --- signing and time (docs/api.md, "Authentication") ------------------------------------------


def md5_hex(text: str) -> str:
    """Lower-case hex md5 of the UTF-8 text, as the document's examples compute it."""
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def api_password(password: str, uid: str) -> str:
    """The ``pwd`` parameter: md5(login password + uid)."""
    return md5_hex(password + uid)


def tokenkey(uid: str, secret_key: str, timestamp: str) -> str:
    """The ``tokenkey`` parameter: md5(uid + secretkey + timestamp)."""
    return md5_hex(uid + secret_key + timestamp)


def beijing_timestamp(unix_time: float | None = None) -> str:
    """``yyyyMMddHHmmss`` in Beijing time, the ``timestamp`` parameter's format."""
    moment = datetime.fromtimestamp(time.time() if unix_time is None else unix_time, BEIJING)
    return moment.strftime("%Y%m%d%H%M%S")


def beijing_text(unix_time: float) -> str:
    """``YYYY-MM-DD HH:MM:SS`` in Beijing time, the format of ``retime`` and ``sendtime``."""
    return datetime.fromtimestamp(unix_time, BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def beijing_date(unix_time: float) -> str:
    return datetime.fromtimestamp(unix_time, BEIJING).strftime("%Y-%m-%d")


def mask_number(number: str) -> str:
    """139****8888: enough to tell calls apart in a log, not enough to phone anyone."""
    if len(number) >= 8:
        return number[:3] + "****" + number[-4:]
    return "****"


# --- requests and replies -----------------------------------------------------------------------


@dataclass
class VoiceRequest:
    """One ``/voice/`` request, decoded."""

    params: dict[str, str]
    ac: str
    fmt: str
    english: bool
    reply_charset: str
    decode_error: bool
    client_ip: str

    def get(self, name: str) -> str:
        return self.params.get(name, "")


@dataclass
class VoiceReply:
    """The vendor's answer before any fault mangles it."""

    stat: int
    payload: dict[str, Any]
    fmt: str
    charset: str

    @property
    def content_type(self) -> str:
        return f"text/plain; charset={self.charset}"

    def text(self) -> str:
        return replies.render_text(self.payload, self.fmt)

    def body(self) -> bytes:
        return replies.encode_body(self.text(), self.charset)


def _peek(pairs: list[tuple[bytes, bytes]], name: bytes) -> str:
    value = b""
    for key, item in pairs:
        if key == name:
            value = item
    return value.decode("latin-1").strip().lower()


def _form_pairs(raw: bytes) -> list[tuple[bytes, bytes]]:
    """Split a form into undecoded (name, value) bytes; the charset is known only afterwards."""
    pairs = []
    for field in raw.split(b"&"):
        if not field:
            continue
        name, _, value = field.partition(b"=")
        pairs.append(
            (
                urllib.parse.unquote_to_bytes(name.replace(b"+", b" ")),
                urllib.parse.unquote_to_bytes(value.replace(b"+", b" ")),
            )
        )
    return pairs


def parse_voice_request(query: bytes, body: bytes, client_ip: str) -> VoiceRequest:
    """Decode the form of a ``/voice/`` request in the charset its ``encode`` names."""
    pairs = _form_pairs(query) + _form_pairs(body)
    ac = faults.normalize_action(_peek(pairs, b"ac"))
    encode = _peek(pairs, b"encode")
    reply_charset = "utf-8"
    if encode in _GBK_NAMES:
        charset, reply_charset = _GBK_NAMES[encode], "gbk"
    elif encode in _UTF8_NAMES:
        charset = "utf-8"
    else:
        charset = "gbk" if ac == "query" else "utf-8"
    params: dict[str, str] = {}
    decode_error = False
    for raw_key, raw_value in pairs:
        try:
            key, value = raw_key.decode(charset), raw_value.decode(charset)
        except UnicodeDecodeError:
            decode_error = True
            key = raw_key.decode(charset, errors="replace")
            value = raw_value.decode(charset, errors="replace")
        params[key] = value.strip()
    fmt = params.get("format", "").lower()
    return VoiceRequest(
        params=params,
        ac=ac,
        fmt=fmt if fmt in replies.FORMATS else replies.JSON,
        english=params.get("language", "").lower() == "english",
        reply_charset=reply_charset,
        decode_error=decode_error,
        client_ip=client_ip,
    )


class _Refused(Exception):
    """A ``stat`` code ending the processing of a request."""

    def __init__(self, code: int) -> None:
        super().__init__(code)
        self.code = code


# --- the vendor's state and actions -----------------------------------------------------------


class SandboxState:
    """Everything the emulated vendor knows, behind one lock.

    One lock for all of it keeps every report handed out exactly once and every balance unit spent
    once; the work done under it is microseconds, the network I/O happens outside it.
    """

    def __init__(
        self,
        accounts: Iterable[AccountConfig] | None = None,
        *,
        report_delay: float = 1.0,
        seed: int | None = None,
        faults_at_start: Iterable[Mapping[str, Any]] = (),
        verbose: bool = False,
    ) -> None:
        configs = list(accounts) if accounts is not None else [example_account()]
        if not configs:
            raise ValueError("the sandbox needs at least one account")
        uids = [c.uid for c in configs]
        if len(set(uids)) != len(uids):
            raise ValueError("account uids must be unique")
        self.initial_accounts = configs
        self.report_delay = float(report_delay)
        self.seed = seed
        self.verbose = verbose
        self.lock = threading.RLock()
        self.faults = faults.FaultSet()
        self.stopping = threading.Event()
        self.accounts: dict[str, AccountState] = {}
        self.rng = random.Random(seed)
        self.request_counts: collections.Counter[str] = collections.Counter()
        self.status_pulls: list[float] = []
        self.reports_pulled = 0
        self.call_log: list[dict[str, Any]] = []
        self.reset()
        for spec in faults_at_start:
            spec = dict(spec)
            self.faults.add(str(spec.pop("kind", "")), spec)

    # control side

    def reset(self) -> None:
        """Back to the start: configured accounts, no counters, calls, reports or faults."""
        with self.lock:
            self.accounts = {c.uid: AccountState.fresh(c) for c in self.initial_accounts}
            self.rng = random.Random(self.seed)
            self.request_counts = collections.Counter()
            self.status_pulls = []
            self.reports_pulled = 0
            self.call_log = []
            self.faults.reset()

    def set_account(self, fields: Mapping[str, Any]) -> dict[str, Any]:
        """Add an account or update the given fields of an existing one (``balance`` sets it)."""
        uid = str(fields.get("uid", "")).strip()
        if not uid:
            raise ValueError("an account needs a uid")
        with self.lock:
            state = self.accounts.get(uid)
            if state is None:
                config = AccountConfig.from_mapping(fields)
                state = self.accounts[uid] = AccountState.fresh(config)
            else:
                state.config = state.config.updated({k: v for k, v in fields.items() if k != "uid"})
                if "balance" in fields:
                    state.balance = state.config.balance
            return self._account_public(state)

    def account(self, uid: str) -> dict[str, Any] | None:
        with self.lock:
            state = self.accounts.get(uid)
            return None if state is None else self._account_public(state)

    def account_config(self, uid: str) -> AccountConfig | None:
        with self.lock:
            state = self.accounts.get(uid)
            return None if state is None else state.config

    def _account_public(self, state: AccountState) -> dict[str, Any]:
        data = state.public()
        if data["report_delay"] is None:
            data["report_delay"] = self.report_delay
        return data

    def stats(self) -> dict[str, Any]:
        with self.lock:
            requests = dict.fromkeys(ACTIONS, 0)
            requests.update(self.request_counts)
            return {
                "requests": requests,
                "status_pulls": list(self.status_pulls),
                "reports_pulled": self.reports_pulled,
                "reports_pending": sum(len(a.reports) for a in self.accounts.values()),
                "calls_placed": len(self.call_log),
                "faults_applied": self.faults.applied_total,
            }

    def calls(self) -> list[dict[str, Any]]:
        with self.lock:
            return [dict(c, variables=dict(c["variables"])) for c in self.call_log]

    def count_request(self, ac: str) -> None:
        with self.lock:
            self.request_counts[ac if ac in ACTIONS else "other"] += 1
            if ac == "status":
                self.status_pulls.append(time.time())

    def sleep(self, seconds: float) -> None:
        """Sleep, but wake up at once when the server stops."""
        if seconds > 0:
            self.stopping.wait(seconds)

    # the vendor side

    def stat_reply(self, request: VoiceRequest, code: int) -> VoiceReply:
        """A bare ``stat`` + ``message`` reply (every error, and forced ``stat`` faults)."""
        stat: int | str = code if request.ac == "query" and request.fmt == replies.JSON else str(code)
        payload = {"stat": stat, "message": replies.message(code, english=request.english)}
        return VoiceReply(code, payload, request.fmt, request.reply_charset)

    def handle(self, request: VoiceRequest) -> VoiceReply:
        """Answer one ``/voice/`` request as the vendor would."""
        try:
            with self.lock:
                account = self._authorize(request)
                action = getattr(self, f"_ac_{request.ac}", None) if request.ac in ACTIONS else None
                if action is None:
                    raise _Refused(103)
                if request.decode_error:
                    raise _Refused(104)
                reply: VoiceReply = action(request, account)
                return reply
        except _Refused as refused:
            return self.stat_reply(request, refused.code)

    def _authorize(self, request: VoiceRequest) -> AccountState:
        uid, pwd, key = request.get("uid"), request.get("pwd"), request.get("tokenkey")
        if not uid or not (pwd or key):
            raise _Refused(101)
        if key:
            stamp = request.get("timestamp")
            if not re.fullmatch(r"\d{14}", stamp):
                raise _Refused(118)
            try:
                moment = datetime.strptime(stamp, "%Y%m%d%H%M%S").replace(tzinfo=BEIJING)
            except ValueError:
                raise _Refused(118) from None
            if abs(moment.timestamp() - time.time()) > TIMESTAMP_WINDOW_SECONDS:
                raise _Refused(119)
        account = self.accounts.get(uid)
        if account is None:
            raise _Refused(101)
        config = account.config
        if key:
            if not config.secret_key:
                raise _Refused(101)
            expected = tokenkey(uid, config.secret_key, request.get("timestamp"))
        else:
            key, expected = pwd, api_password(config.password, uid)
        if not hmac.compare_digest(key.lower().encode(), expected.encode()):
            raise _Refused(101)
        if config.bound_ips and not _ip_allowed(request.client_ip, config.bound_ips):
            raise _Refused(117)
        if config.frozen:
            raise _Refused(109)
        limit = config.rate_limit_per_second
        if limit:
            now = time.monotonic()
            window = account.request_times
            while window and window[0] <= now - 1.0:
                window.popleft()
            if len(window) >= limit:
                raise _Refused(107)
            window.append(now)
        return account

    def _ac_sendcode(self, request: VoiceRequest, account: AccountState) -> VoiceReply:
        config = account.config
        if config.send_forbidden:
            raise _Refused(116)
        mobiles = [m.strip() for m in request.get("mobile").split(",") if m.strip()]
        if not mobiles:
            raise _Refused(108)
        if len(mobiles) > config.max_numbers:
            raise _Refused(106)
        if not all(_NUMBER.fullmatch(m) for m in mobiles):
            raise _Refused(112)
        if not config.templates:
            raise _Refused(161)
        template_id = request.get("template")
        template = config.templates.get(template_id)
        if template is None:
            raise _Refused(163)
        variables = self._variables(request.get("content"), template, config)
        ids = self._message_ids(request.get("mobileids"), mobiles, account)
        count = len(mobiles)
        now_wall, now_mono = time.time(), time.monotonic()
        if config.hourly_cap is not None:
            while account.hourly_sends and account.hourly_sends[0][0] <= now_wall - 3600:
                account.hourly_sends.popleft()
            if sum(n for _, n in account.hourly_sends) + count > config.hourly_cap:
                raise _Refused(151)
        day = beijing_date(now_wall)
        if config.daily_cap is not None and account.daily_sends.get(day, 0) + count > config.daily_cap:
            raise _Refused(152)
        if count > account.balance:
            raise _Refused(102)

        # accepted: spend, place the calls, schedule their reports
        account.balance -= count
        account.hourly_sends.append((now_wall, count))
        account.daily_sends[day] = account.daily_sends.get(day, 0) + count
        if ids is None:
            ids = [self._new_message_id(m, account) for m in mobiles]
        text = _fill(template, variables)
        delay = self.report_delay if config.report_delay is None else config.report_delay
        codes, weights = list(config.outcomes), list(config.outcomes.values())
        for mobile, message_id in zip(mobiles, ids, strict=True):
            code = config.outcome_by_mobile.get(mobile)
            if code is None:
                code = self.rng.choices(codes, weights)[0]
            account.accepted_ids.add(message_id)
            account.reports.append(Report(now_mono + delay, now_wall + delay, mobile, message_id, code))
            account.records.append(SendRecord(now_wall, mobile, text))
            self.call_log.append(
                {
                    "uid": config.uid,
                    "mobile": mobile,
                    "mobileid": message_id,
                    "template": template_id,
                    "variables": dict(variables),
                    "time": now_wall,
                    "resultcode": code,
                }
            )
        account.calls_placed += count
        payload = {"stat": "100", "message": replies.message(100, english=request.english)}
        return VoiceReply(100, payload, request.fmt, request.reply_charset)

    @staticmethod
    def _variables(content: str, template: str, config: AccountConfig) -> dict[str, Any]:
        slots = template_slots(template)
        if not content:
            if slots:
                raise _Refused(108)
            return {}
        try:
            variables = json.loads(content)
        except ValueError:
            raise _Refused(164) from None
        if not isinstance(variables, dict) or set(variables) != set(slots):
            raise _Refused(164)
        for value in variables.values():
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise _Refused(164)
            limit = config.max_variable_length
            if limit is not None and len(str(value)) > limit:
                raise _Refused(169)
        return variables

    @staticmethod
    def _message_ids(raw: str, mobiles: list[str], account: AccountState) -> list[str] | None:
        if not raw:
            return None
        ids = [i.strip() for i in raw.split(",") if i.strip()]
        if len(ids) != len(mobiles):
            raise _Refused(104)
        if not all(_DIGITS.fullmatch(i) and len(i) <= MAX_MESSAGE_ID_DIGITS for i in ids):
            raise _Refused(104)
        if account.config.dedup_mobileids and (
                len(set(ids)) != len(ids) or any(i in account.accepted_ids for i in ids)):
            raise _Refused(124)
        return ids

    def _new_message_id(self, mobile: str, account: AccountState) -> str:
        while True:
            candidate = str(self.rng.randrange(10**19, 10**20))
            if mobile not in candidate and candidate not in account.accepted_ids:
                return candidate

    def _ac_status(self, request: VoiceRequest, account: AccountState) -> VoiceReply:
        now = time.monotonic()
        cap = account.config.max_reports_per_pull
        taken: list[Report] = []
        kept: list[Report] = []
        for report in account.reports:
            (taken if len(taken) < cap and report.ready_at <= now else kept).append(report)
        account.reports = kept
        self.reports_pulled += len(taken)
        values = [
            {
                "retime": beijing_text(r.ready_wall),
                "mobile": r.mobile,
                "mobileids": r.mobileid,
                "resultcode": str(r.resultcode),
                "status": REPORT_STATUS_TEXT.get(r.resultcode, "UNKNOWN"),
            }
            for r in taken
        ]
        payload = {"stat": "100", "total": str(len(values)), "values": values}
        return VoiceReply(100, payload, request.fmt, request.reply_charset)

    def _ac_number(self, request: VoiceRequest, account: AccountState) -> VoiceReply:
        payload: dict[str, Any]
        if request.fmt == replies.TXT:
            payload = {"stat": "100", "remain": str(account.balance)}
        else:
            text = replies.message(100, english=request.english, plain_success=True)
            payload = {"stat": "100", "message": text, "number": str(account.balance)}
        return VoiceReply(100, payload, request.fmt, request.reply_charset)

    def _ac_query(self, request: VoiceRequest, account: AccountState) -> VoiceReply:
        date, key = request.get("date"), request.get("key")
        if date:
            try:
                if not _DATE.fullmatch(date):
                    raise ValueError(date)
                datetime.strptime(date, "%Y-%m-%d")
            except ValueError:
                raise _Refused(104) from None
        matching = [
            r
            for r in account.records
            if (not date or beijing_date(r.sent_wall) == date) and (not key or r.mobile == key)
        ]
        page = matching[:QUERY_PAGE_SIZE]
        if not page:
            empty = {"total": "0", "page_size": "0", "total_page": "0"}
            return VoiceReply(100, empty, request.fmt, request.reply_charset)
        fetched = {id(r) for r in page}
        account.records = [r for r in account.records if id(r) not in fetched]
        payload = {
            "stat": 100 if request.fmt == replies.JSON else "100",
            "total": str(len(matching)),
            "page_size": str(len(page)),
            "total_page": str(math.ceil(len(matching) / QUERY_PAGE_SIZE)),
            "values": [
                {
                    "sendtime": beijing_text(r.sent_wall),
                    "mobile": r.mobile,
                    "content": r.content,
                    "status": r.status,
                }
                for r in page
            ],
        }
        return VoiceReply(100, payload, request.fmt, request.reply_charset)


def _fill(template: str, variables: Mapping[str, Any]) -> str:
    def value(match: re.Match[str]) -> str:
        item = variables.get(match.group(1))
        return match.group(0) if item is None else str(item)

    return re.sub(r"\{\$([A-Za-z0-9_]+)\}", value, template)


def _ip_allowed(client_ip: str, bound: list[str]) -> bool:
    try:
        address = ipaddress.ip_address(client_ip)
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    for entry in bound:
        network = ipaddress.ip_network(entry, strict=False)
        if address.version == network.version and address in network:
            return True
    return False


# --- HTTP ---------------------------------------------------------------------------------------


class SandboxHTTPServer(ThreadingHTTPServer):
    """A threading HTTP server that knows its state and can cut its open connections on stop."""

    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 512

    def __init__(self, address: tuple[str, int], state: SandboxState) -> None:
        if ":" in address[0]:
            self.address_family = socket.AF_INET6
        self.state = state
        self._connections: set[socket.socket] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, SandboxRequestHandler)

    def server_bind(self) -> None:
        # HTTPServer.server_bind resolves the host name (socket.getfqdn), which can stall for seconds.
        socketserver.TCPServer.server_bind(self)
        host, port = self.server_address[:2]
        self.server_name, self.server_port = str(host), int(port)

    def track(self, connection: socket.socket, alive: bool) -> None:
        with self._connections_lock:
            if alive:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    def close_connections(self) -> None:
        """Shut every open client connection, so keep-alive threads end with the server."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # The default prints a traceback that may quote the request; say only what failed.
        if self.state.verbose:
            log.warning("sandbox: error while serving a request (%s)", _current_exception_name())


def _current_exception_name() -> str:
    exc = sys.exc_info()[1]
    return type(exc).__name__ if exc else "unknown"


class SandboxRequestHandler(BaseHTTPRequestHandler):
    """Routes ``/voice/`` to the emulated vendor and ``/_control/`` to the control API."""

    protocol_version = "HTTP/1.1"
    server_version = "smscn-sandbox"
    sys_version = ""
    timeout = 120
    server: SandboxHTTPServer

    def setup(self) -> None:
        super().setup()
        # Headers and body leave in separate writes: without NODELAY, Nagle's algorithm and the
        # client's delayed ACK hold every keep-alive reply for ~40 ms.
        with contextlib.suppress(OSError):
            self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.server.track(self.connection, True)

    def finish(self) -> None:
        with contextlib.suppress(OSError):
            super().finish()
        self.server.track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:
        """Never log the request line: its query string may hold ``pwd`` or ``tokenkey``."""

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    # plumbing

    def _dispatch(self, method: str) -> None:
        try:
            self._route(method)
        except Exception as exc:
            # A sandbox bug: answer 500 like a broken vendor would, rather than dropping silently.
            # Logged by type and place only: an exception's text may quote request values.
            frame = traceback.extract_tb(exc.__traceback__)[-1]
            log.error(
                "sandbox: internal error %s at %s:%s while serving %s",
                type(exc).__name__,
                frame.filename,
                frame.lineno,
                method,
            )
            self._send(
                HTTPStatus.INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8", b"sandbox error\n", close=True
            )

    def _route(self, method: str) -> None:
        try:
            body = self._read_body()
        except ValueError:
            self._send(HTTPStatus.BAD_REQUEST, "text/plain; charset=utf-8", b"bad request body\n", close=True)
            return
        raw_path, _, raw_query = self.path.partition("?")
        path = urllib.parse.unquote(raw_path)
        if path in ("/voice/", "/voice") and method in ("GET", "POST"):
            self._voice(raw_query.encode("latin-1"), body)
        elif path == "/_control" or path.startswith("/_control/"):
            status, data = control.handle(self.server.state, method, path, body)
            payload = json.dumps(data, ensure_ascii=False).encode("utf-8")
            self._send(status, "application/json; charset=utf-8", payload)
        else:
            self._send(HTTPStatus.NOT_FOUND, "text/html; charset=utf-8", b"<html><body>404</body></html>")

    def _read_body(self) -> bytes:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            chunks: list[bytes] = []
            size = 0
            while True:
                line = self.rfile.readline(1024)
                length = int(line.split(b";")[0].strip() or b"0", 16)
                if length == 0:
                    while self.rfile.readline(1024) not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(chunks)
                size += length
                if size > MAX_BODY_BYTES:
                    raise ValueError("body too large")
                chunks.append(self.rfile.read(length))
                self.rfile.readline(16)
        length = int(self.headers.get("Content-Length") or 0)
        if length < 0 or length > MAX_BODY_BYTES:
            raise ValueError("body too large")
        return self.rfile.read(length) if length else b""

    def _send(
        self, status: int, content_type: str, body: bytes, *, close: bool = False, declared: int | None = None
    ) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body) if declared is None else declared))
            if close:
                self.send_header("Connection", "close")
                self.close_connection = True
            self.end_headers()
            self.wfile.write(body)
            self.wfile.flush()
        except OSError:  # the client gave up (e.g. timed out during delay_after)
            self.close_connection = True

    def _drop(self, reset: bool) -> None:
        """Close the socket without a byte of reply; ``reset`` sends a TCP RST instead of a FIN."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            if reset:
                # linger 0: the close that follows (once rfile/wfile let go) sends RST, not FIN
                self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                self.connection.close()
            else:
                self.connection.shutdown(socket.SHUT_RDWR)

    def _voice(self, query: bytes, body: bytes) -> None:
        state = self.server.state
        started = time.monotonic()
        request = parse_voice_request(query, body, self.client_address[0])
        state.count_request(request.ac)
        chosen = state.faults.select(request.ac)
        if chosen.latency is not None:
            state.sleep(chosen.latency.params["ms"] / 1000)
        fault = chosen.reply
        reply: VoiceReply | None = None
        if fault is None or fault.after:
            reply = state.handle(request)
            if chosen.delay_after is not None:
                state.sleep(chosen.delay_after.params["ms"] / 1000)
        status = self._answer(request, reply, fault)
        if state.verbose:
            mobiles = ",".join(mask_number(m.strip()) for m in request.get("mobile").split(",") if m.strip())
            log.info(
                "sandbox: ac=%s format=%s%s -> %s stat=%s fault=%s (%.1f ms)",
                request.ac or "-",
                request.fmt,
                f" mobile={mobiles}" if mobiles else "",
                status,
                reply.stat if reply is not None else "-",
                fault.kind if fault is not None else "-",
                (time.monotonic() - started) * 1000,
            )

    def _answer(self, request: VoiceRequest, reply: VoiceReply | None, fault: faults.Fault | None) -> str:
        """Send the reply, or what the fault makes of it; returns a word for the log."""
        if fault is None:
            assert reply is not None
            self._send(HTTPStatus.OK, reply.content_type, reply.body())
            return "200"
        kind, params = fault.kind, fault.params
        if kind == faults.DROP:
            self._drop(bool(params.get("reset")))
            return "dropped"
        if kind == faults.HTTP_STATUS:
            status = int(params["status"])
            phrase = _phrase(status)
            title = f"{status} {phrase}"
            page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
            self._send(status, "text/html; charset=utf-8", page.encode("utf-8"))
            return str(status)
        if kind == faults.HTML:
            status = int(params["status"])
            self._send(status, "text/html", faults.html_page(status))
            return f"{status} html"
        if kind == faults.XML_BOMB:
            self._send(HTTPStatus.OK, "text/plain; charset=utf-8", faults.xml_bomb())
            return "200 xml bomb"
        if kind == faults.STAT:
            forced = self.server.state.stat_reply(request, int(params["code"]))
            self._send(HTTPStatus.OK, forced.content_type, forced.body())
            return f"200 forced stat {params['code']}"
        assert reply is not None
        body = reply.body()
        if kind == faults.WRONG_CHARSET:
            other = "utf-8" if reply.charset != "utf-8" else "gbk"
            self._send(HTTPStatus.OK, reply.content_type, replies.encode_body(reply.text(), other))
            return "200 wrong charset"
        # truncate
        keep = int(params.get("bytes", len(body) // 2))
        keep = max(0, min(keep, len(body) - 1))
        if params.get("length") == "truncated":
            self._send(HTTPStatus.OK, reply.content_type, body[:keep])
        else:
            self._send(HTTPStatus.OK, reply.content_type, body[:keep], close=True, declared=len(body))
            self._drop(reset=False)
        return "200 truncated"


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"
