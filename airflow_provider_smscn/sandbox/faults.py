"""Fault injection: what can go wrong between a client and the vendor, on demand.

A fault is declared with a ``kind``, its parameters, an optional ``action`` filter (``sendcode``,
``status``, ``number``, ``query``; ``send`` counts as ``sendcode``) and an optional ``count`` (the
next N matching requests; unlimited until cleared when absent). Each ``/voice/`` request takes at
most one fault of each stage: ``latency`` (before processing), ``delay_after`` (after processing,
before replying) and one reply fault (all other kinds), the oldest matching one first.

Reply faults either replace the vendor (``after`` false: nothing is processed, nothing is sent,
like a proxy answering on its own) or mangle the real reply of a processed request (``after``
true: calls are placed, balance spent, then the reply is lost or broken). ``truncate`` and
``wrong_charset`` always act on the processed reply; the others default to ``after`` false.

Kinds and their parameters:

* ``latency`` ``ms`` (default 1000): sleep before processing.
* ``delay_after`` ``ms`` (default 1000): process (calls placed), then hold the reply; a client
  that times out meanwhile has been served all the same ("timed out after the vendor accepted").
* ``http_status`` ``status`` (default 503), ``after``: an HTML error page with that status.
* ``drop`` ``after``, ``reset``: close the socket without a byte of reply (FIN; RST with ``reset``).
* ``truncate`` ``bytes`` (default half the body), ``length`` (``full``: Content-Length of the
  whole body, then the connection is cut; ``truncated``: a well-formed reply of the cut body).
* ``html`` ``status`` (default 200), ``after``: a proxy's HTML error page in place of the reply.
* ``wrong_charset``: the reply encoded GBK but declared UTF-8 (or the reverse after
  ``encode=gbk``); only visible when the body has non-ASCII text, as every Chinese message does.
* ``xml_bomb`` ``after``: a billion-laughs XML document as the body, status 200.
* ``stat`` ``code``: the vendor's own refusal with that ``stat`` (e.g. a storm of 107), nothing
  processed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

LATENCY = "latency"
DELAY_AFTER = "delay_after"
HTTP_STATUS = "http_status"
DROP = "drop"
TRUNCATE = "truncate"
HTML = "html"
WRONG_CHARSET = "wrong_charset"
XML_BOMB = "xml_bomb"
STAT = "stat"

# kind -> allowed parameters (besides ``action`` and ``count``)
FAULT_PARAMS: dict[str, frozenset[str]] = {
    LATENCY: frozenset({"ms"}),
    DELAY_AFTER: frozenset({"ms"}),
    HTTP_STATUS: frozenset({"status", "after"}),
    DROP: frozenset({"after", "reset"}),
    TRUNCATE: frozenset({"bytes", "length"}),
    HTML: frozenset({"status", "after"}),
    WRONG_CHARSET: frozenset(),
    XML_BOMB: frozenset({"after"}),
    STAT: frozenset({"code"}),
}
FAULT_KINDS = tuple(FAULT_PARAMS)
ACTIONS = ("sendcode", "status", "number", "query")

_STAGE = {LATENCY: "latency", DELAY_AFTER: "delay_after"}


class FaultError(ValueError):
    """A fault declaration that cannot be applied (unknown kind, bad parameter)."""


def normalize_action(action: str) -> str:
    """Map the document's alias ``send`` onto ``sendcode``; other names pass lower-cased."""
    action = action.strip().lower()
    return "sendcode" if action == "send" else action


def _number(params: dict[str, Any], name: str, default: float, *, lo: float, hi: float) -> float:
    value = params.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise FaultError(f"{name} must be a number")
    if not lo <= value <= hi:
        raise FaultError(f"{name} must be between {lo} and {hi}")
    return float(value)


@dataclass
class Fault:
    """One declared fault and how many more requests it may hit."""

    id: int
    kind: str
    params: dict[str, Any]
    actions: frozenset[str] | None = None
    remaining: int | None = None
    applied: int = 0

    @property
    def stage(self) -> str:
        return _STAGE.get(self.kind, "reply")

    @property
    def after(self) -> bool:
        """Whether the request is processed (calls placed) before this fault hits the reply."""
        if self.kind in (TRUNCATE, WRONG_CHARSET):
            return True
        return bool(self.params.get("after", False))

    def matches(self, action: str) -> bool:
        return self.actions is None or action in self.actions

    def public(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "kind": self.kind, **self.params}
        data["action"] = sorted(self.actions) if self.actions is not None else None
        data["remaining"] = self.remaining
        data["applied"] = self.applied
        return data


def build_fault(fault_id: int, kind: str, params: dict[str, Any]) -> Fault:
    """Check a declaration and return the fault; raises :class:`FaultError` when it is wrong."""
    if kind not in FAULT_PARAMS:
        raise FaultError(f"unknown fault kind {kind!r}; known: {', '.join(FAULT_KINDS)}")
    params = dict(params)
    action = params.pop("action", None)
    count = params.pop("count", None)
    unknown = set(params) - FAULT_PARAMS[kind]
    if unknown:
        raise FaultError(f"unknown parameters for {kind}: {sorted(unknown)}")
    actions: frozenset[str] | None = None
    if action is not None:
        names = [action] if isinstance(action, str) else action
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise FaultError("action must be a string or a list of strings")
        actions = frozenset(normalize_action(n) for n in names)
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 1):
        raise FaultError("count must be a positive integer")
    clean: dict[str, Any] = {}
    if kind in (LATENCY, DELAY_AFTER):
        clean["ms"] = _number(params, "ms", 1000, lo=0, hi=600_000)
    if kind in (HTTP_STATUS, HTML):
        default = 503 if kind == HTTP_STATUS else 200
        clean["status"] = int(_number(params, "status", default, lo=200, hi=599))
    if kind == STAT:
        if "code" not in params:
            raise FaultError("a stat fault needs a code")
        clean["code"] = int(_number(params, "code", 0, lo=100, hi=999))
    if kind == TRUNCATE:
        if "bytes" in params:
            clean["bytes"] = int(_number(params, "bytes", 0, lo=0, hi=1 << 30))
        length = params.get("length", "full")
        if length not in ("full", "truncated"):
            raise FaultError("length must be 'full' or 'truncated'")
        clean["length"] = length
    for flag in ("after", "reset"):
        if flag in params:
            if not isinstance(params[flag], bool):
                raise FaultError(f"{flag} must be true or false")
            clean[flag] = params[flag]
    return Fault(id=fault_id, kind=kind, params=clean, actions=actions, remaining=count)


@dataclass
class Selection:
    """The faults one request takes, at most one per stage."""

    latency: Fault | None = None
    delay_after: Fault | None = None
    reply: Fault | None = None

    def __bool__(self) -> bool:
        return any((self.latency, self.delay_after, self.reply))


@dataclass
class FaultSet:
    """The active faults; thread-safe, counts taken atomically with the choice."""

    _faults: list[Fault] = field(default_factory=list)
    _next_id: int = 1
    _lock: threading.Lock = field(default_factory=threading.Lock)
    applied_total: int = 0

    def add(self, kind: str, params: dict[str, Any]) -> Fault:
        with self._lock:
            fault = build_fault(self._next_id, kind, params)
            self._next_id += 1
            self._faults.append(fault)
            return fault

    def clear(self) -> None:
        with self._lock:
            self._faults.clear()

    def remove(self, fault_id: int) -> bool:
        with self._lock:
            before = len(self._faults)
            self._faults = [f for f in self._faults if f.id != fault_id]
            return len(self._faults) != before

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self.applied_total = 0

    def public(self) -> list[dict[str, Any]]:
        with self._lock:
            return [f.public() for f in self._faults]

    def select(self, action: str) -> Selection:
        """Take the faults for one request of ``action``, spending one of each one's count."""
        chosen = Selection()
        with self._lock:
            for fault in self._faults:
                stage = fault.stage
                if getattr(chosen, stage) is not None or not fault.matches(action):
                    continue
                setattr(chosen, stage, fault)
                fault.applied += 1
                self.applied_total += 1
                if fault.remaining is not None:
                    fault.remaining -= 1
            self._faults = [f for f in self._faults if f.remaining is None or f.remaining > 0]
        return chosen


def html_page(status: int) -> bytes:
    """A proxy's error page, the kind a load balancer sends in place of the vendor's reply."""
    return (
        "<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
        "<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
        f"<!-- sandbox html fault, HTTP {status} -->\r\n</body>\r\n</html>\r\n"
    ).encode("ascii")


def xml_bomb() -> bytes:
    """The billion-laughs document: ten levels of ten-fold entity expansion (about 3 GB expanded)."""
    lines = ['<?xml version="1.0"?>', "<!DOCTYPE result [", ' <!ENTITY lol0 "lol">']
    for level in range(1, 10):
        ref = f"&lol{level - 1};"
        lines.append(f' <!ENTITY lol{level} "{ref * 10}">')
    lines.append("]>")
    lines.append("<result><stat>100</stat><message>&lol9;</message></result>")
    return "\n".join(lines).encode("ascii")
