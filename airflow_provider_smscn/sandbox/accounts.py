"""Sandbox accounts: their configuration, their run-time state, and loading them from JSON.

An account's configuration (:class:`AccountConfig`) is what a test or a config file declares; its
state (:class:`AccountState`) is what the emulated vendor keeps per account while serving: the
balance, accepted message ids, reports waiting to be pulled, sent records not yet fetched, and the
windows behind the rate limit and the send caps. Kept apart so that ``reset`` can rebuild the
state from the declared configuration.
"""

from __future__ import annotations

import collections
import dataclasses
import ipaddress
import json
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from pathlib import Path

_N = TypeVar("_N", int, float)

# The document's example account: its test vectors (docs/api.md, "Authentication") and its
# example template (docs/api.md, "ac=sendcode").
EXAMPLE_UID = "test"
EXAMPLE_PASSWORD = "123123"
EXAMPLE_SECRET_KEY = "64CQMlr579J0L46U9q1qR285Risfc04G"
EXAMPLE_TEMPLATE_ID = "700001"
EXAMPLE_TEMPLATE_TEXT = "您的验证码是：{$code}。"

# Outcome codes of a delivery report (docs/client.md, "Delivery report result codes"): 100
# delivered, 130 failed, 131 empty number, 132 suspended, 133 powered off, 134 no status.
REPORT_CODES = (100, 130, 131, 132, 133, 134)

TEMPLATE_SLOT = re.compile(r"\{\$([A-Za-z0-9_]+)\}")


class AccountConfigError(ValueError):
    """An account definition that cannot be served (bad type, unknown field)."""


def template_slots(text: str) -> list[str]:
    """Return the ``{$name}`` slot names of a template, in order, each once."""
    seen: dict[str, None] = {}
    for name in TEMPLATE_SLOT.findall(text):
        seen.setdefault(name, None)
    return list(seen)


def _opt_number(name: str, value: Any, kind: Callable[[Any], _N], what: str, minimum: int) -> _N | None:
    """``value`` as ``kind`` (int or float), at least ``minimum``; None stays None; else a clear error."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise AccountConfigError(f"{name} must be {what} or null")
    try:
        number = kind(value)
    except ValueError as exc:
        raise AccountConfigError(f"{name} must be {what} or null") from exc
    if not number >= minimum:  # also refuses NaN
        raise AccountConfigError(f"{name} must be >= {minimum}")
    return number


def _opt_int(name: str, value: Any, *, minimum: int = 0) -> int | None:
    return _opt_number(name, value, int, "an integer", minimum)


def _int(name: str, value: Any, *, minimum: int = 0) -> int:
    number = _opt_int(name, value, minimum=minimum)
    if number is None:
        raise AccountConfigError(f"{name} must be an integer")
    return number


def _opt_float(name: str, value: Any) -> float | None:
    return _opt_number(name, value, float, "a number", 0)


def _bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0", "yes", "no"):
        return value.lower() in ("true", "1", "yes")
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    raise AccountConfigError(f"{name} must be a boolean")


def _str(name: str, value: Any) -> str:
    if not isinstance(value, (str, int)) or isinstance(value, bool):
        raise AccountConfigError(f"{name} must be a string")
    return str(value)


def _templates(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise AccountConfigError("templates must be an object {id: text}")
    return {_str("template id", k).strip(): _str("template text", v) for k, v in value.items()}


def _bound_ips(value: Any) -> list[str]:
    if isinstance(value, str):
        value = [part for part in value.split(",") if part.strip()]
    if not isinstance(value, (list, tuple)):
        raise AccountConfigError("bound_ips must be a list of addresses or networks")
    result = []
    for item in value:
        text = _str("bound_ips item", item).strip()
        try:
            ipaddress.ip_network(text, strict=False)
        except ValueError as exc:
            raise AccountConfigError(f"bound_ips item {text!r} is not an address or network") from exc
        result.append(text)
    return result


def _code(name: str, value: Any) -> int:
    code = _int(name, value)
    if not 100 <= code <= 999:
        raise AccountConfigError(f"{name} must be a three-digit result code")
    return code


def _outcomes(value: Any) -> dict[int, float]:
    if not isinstance(value, dict) or not value:
        raise AccountConfigError("outcomes must be a non-empty object {code: weight}")
    result: dict[int, float] = {}
    for key, weight in value.items():
        number = _opt_float(f"outcomes[{key}]", weight)
        result[_code("outcomes key", key)] = number or 0.0
    if sum(result.values()) <= 0:
        raise AccountConfigError("outcomes must have a positive total weight")
    return result


def _outcome_by_mobile(value: Any) -> dict[str, int]:
    if not isinstance(value, dict):
        raise AccountConfigError("outcome_by_mobile must be an object {mobile: code}")
    return {_str("mobile", k).strip(): _code("outcome_by_mobile value", v) for k, v in value.items()}


@dataclass(frozen=True)
class AccountConfig:
    """What an account is declared to be; immutable so a reset can always go back to it.

    ``report_delay`` None means "the sandbox's default"; ``rate_limit_per_second``, ``hourly_cap``,
    ``daily_cap`` and ``max_variable_length`` None (or 0 for the rate) mean "no limit".

    :param uid: account name; cannot be changed
    :param password: login password (``pwd = md5(password + uid)``)
    :param secret_key: enables ``tokenkey`` signing
    :param balance: balance units
    :param templates: ``{id: text}`` templates with ``{$name}`` slots (none: 161)
    :param bound_ips: addresses / CIDR networks allowed, a list or a comma string (empty: any)
    :param rate_limit_per_second: requests a second; None or 0: no limit; beyond: 107
    :param hourly_cap: calls (numbers) in the last 3600 s; beyond: 151
    :param daily_cap: calls (numbers) per Beijing day; beyond: 152
    :param frozen: every request: 109
    :param send_forbidden: ``sendcode``: 116
    :param report_delay: seconds until a report is pullable; None: the sandbox's ``report_delay``
    :param outcomes: ``{code: weight}``: report result codes drawn by weight (100, 130-134)
    :param outcome_by_mobile: ``{mobile: code}``: fixed result per number
    :param max_numbers: numbers per ``sendcode`` (at least 1); beyond: 106
    :param max_reports_per_pull: reports per ``ac=status`` (at least 1)
    :param max_variable_length: a longer variable value: 169
    :param dedup_mobileids: 124 for an id repeated in the request or already accepted for the
        account. Off by default: the vendor's document promises no id deduplication (it says an
        id may repeat), so with it off a double send shows as two calls
    """

    uid: str
    password: str = ""
    secret_key: str | None = None
    balance: int = 0
    templates: dict[str, str] = field(default_factory=dict)
    bound_ips: list[str] = field(default_factory=list)
    rate_limit_per_second: int | None = 50
    hourly_cap: int | None = None
    daily_cap: int | None = None
    frozen: bool = False
    send_forbidden: bool = False
    report_delay: float | None = None
    outcomes: dict[int, float] = field(default_factory=lambda: {100: 1.0})
    outcome_by_mobile: dict[str, int] = field(default_factory=dict)
    max_numbers: int = 1000
    max_reports_per_pull: int = 100
    max_variable_length: int | None = None
    #: Refuse a ``mobileids`` value already accepted for the account (or repeated in one request)
    #: with 124. Off by default: the vendor's document does not say it deduplicates ids (it says
    #: an id "可以重复出现多次", may repeat), so nothing may rely on it (docs/api-decisions.md #14).
    dedup_mobileids: bool = False

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> AccountConfig:
        """Build a configuration from JSON-like data (string keys, JSON types)."""
        if "uid" not in data:
            raise AccountConfigError("an account needs a uid")
        return cls(uid=_str("uid", data["uid"]).strip()).updated(
            {k: v for k, v in data.items() if k != "uid"}
        )

    def updated(self, data: Mapping[str, Any]) -> AccountConfig:
        """Return a copy with the given fields replaced, each checked and converted."""
        changes: dict[str, Any] = {}
        for key, value in data.items():
            converter = _FIELD_CONVERTERS.get(key)
            if converter is None:
                raise AccountConfigError(f"unknown account field {key!r}")
            changes[key] = converter(key, value)
        if changes.get("uid", self.uid) != self.uid:
            raise AccountConfigError("uid cannot be changed")
        return dataclasses.replace(self, **changes)

    def public(self) -> dict[str, Any]:
        """The configuration as JSON data, without the password or the secret key."""
        return {
            "uid": self.uid,
            "has_password": bool(self.password),
            "has_secret_key": bool(self.secret_key),
            "templates": dict(self.templates),
            "bound_ips": list(self.bound_ips),
            "rate_limit_per_second": self.rate_limit_per_second,
            "hourly_cap": self.hourly_cap,
            "daily_cap": self.daily_cap,
            "frozen": self.frozen,
            "send_forbidden": self.send_forbidden,
            "report_delay": self.report_delay,
            "outcomes": {str(k): v for k, v in self.outcomes.items()},
            "outcome_by_mobile": dict(self.outcome_by_mobile),
            "max_numbers": self.max_numbers,
            "max_reports_per_pull": self.max_reports_per_pull,
            "max_variable_length": self.max_variable_length,
            "dedup_mobileids": self.dedup_mobileids,
        }


_FIELD_CONVERTERS: dict[str, Any] = {
    "uid": _str,
    "password": _str,
    "secret_key": lambda n, v: None if v in (None, "") else _str(n, v),
    "balance": _int,
    "templates": lambda n, v: _templates(v),
    "bound_ips": lambda n, v: _bound_ips(v),
    "rate_limit_per_second": _opt_int,
    "hourly_cap": _opt_int,
    "daily_cap": _opt_int,
    "frozen": _bool,
    "send_forbidden": _bool,
    "report_delay": _opt_float,
    "outcomes": lambda n, v: _outcomes(v),
    "outcome_by_mobile": lambda n, v: _outcome_by_mobile(v),
    "max_numbers": lambda n, v: _int(n, v, minimum=1),
    "max_reports_per_pull": lambda n, v: _int(n, v, minimum=1),
    "max_variable_length": lambda n, v: _opt_int(n, v, minimum=1),
    "dedup_mobileids": _bool,
}

ACCOUNT_FIELDS = tuple(_FIELD_CONVERTERS)


def example_account(**overrides: Any) -> AccountConfig:
    """The document's example account: uid test, password 123123, template 700001, balance 100000."""
    base = AccountConfig(
        uid=EXAMPLE_UID,
        password=EXAMPLE_PASSWORD,
        secret_key=EXAMPLE_SECRET_KEY,
        balance=100000,
        templates={EXAMPLE_TEMPLATE_ID: EXAMPLE_TEMPLATE_TEXT},
    )
    return base.updated(overrides) if overrides else base


@dataclass
class Report:
    """A delivery report waiting for a pull (docs/api.md, ``ac=status``)."""

    ready_at: float  # time.monotonic() from which it may be pulled
    ready_wall: float  # the same instant as a Unix time, for ``retime``
    mobile: str
    mobileid: str
    resultcode: int


@dataclass
class SendRecord:
    """A sent record waiting for ``ac=query`` (docs/api.md, ``ac=query``)."""

    sent_wall: float
    mobile: str
    content: str
    status: str = "1"


@dataclass
class AccountState:
    """What the emulated vendor keeps for one account while serving."""

    config: AccountConfig
    balance: int
    accepted_ids: set[str] = field(default_factory=set)
    reports: list[Report] = field(default_factory=list)
    records: list[SendRecord] = field(default_factory=list)
    request_times: collections.deque[float] = field(default_factory=collections.deque)
    hourly_sends: collections.deque[tuple[float, int]] = field(default_factory=collections.deque)
    daily_sends: dict[str, int] = field(default_factory=dict)
    calls_placed: int = 0

    @classmethod
    def fresh(cls, config: AccountConfig) -> AccountState:
        return cls(config=config, balance=config.balance)

    def public(self) -> dict[str, Any]:
        """The account's configuration and live counters, without secrets."""
        data = self.config.public()
        data["balance"] = self.balance
        data["calls_placed"] = self.calls_placed
        data["reports_pending"] = len(self.reports)
        data["records_pending"] = len(self.records)
        data["message_ids_used"] = len(self.accepted_ids)
        return data


def load_config(path: str | Path) -> dict[str, Any]:
    """Read a sandbox config file.

    Either one account object (``{"uid": ..., ...}``) or
    ``{"accounts": [...], "report_delay": s, "seed": n, "faults": [...]}``. Returns the latter shape
    with ``accounts`` as :class:`AccountConfig` objects.
    """
    with open(path, encoding="utf-8") as handle:
        data = json.load(handle)
    if not isinstance(data, dict):
        raise AccountConfigError("the config file must hold a JSON object")
    if "uid" in data:
        data = {"accounts": [data]}
    unknown = set(data) - {"accounts", "report_delay", "seed", "faults"}
    if unknown:
        raise AccountConfigError(f"unknown config keys: {sorted(unknown)}")
    accounts = data.get("accounts", [])
    if not isinstance(accounts, list) or not all(isinstance(a, dict) for a in accounts):
        raise AccountConfigError("accounts must be a list of objects")
    faults = data.get("faults", [])
    if not isinstance(faults, list) or not all(isinstance(f, dict) for f in faults):
        raise AccountConfigError("faults must be a list of objects")
    return {
        "accounts": [AccountConfig.from_mapping(a) for a in accounts],
        "report_delay": _opt_float("report_delay", data.get("report_delay")),
        "seed": data.get("seed"),
        "faults": faults,
    }
