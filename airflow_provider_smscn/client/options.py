"""The client's settings that a Connection carries as extras: one typed table, the one source.

Each :class:`Option` names an extra, its type, its default, its form label and its meaning. The
client's keyword defaults (:class:`~.client.SmsCnClient`, :class:`~.client.RetryPolicy`), the
hook's reading of a Connection (:func:`read_extras`), the provider info's ``conn-fields``, the 2.11
connection form and docs/connection.md are all built from :data:`OPTIONS`; nothing else repeats a
name or a default. Airflow-free and cheap to import (``get_provider_info`` reads it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .errors import SmsCnValidationError

if TYPE_CHECKING:
    from collections.abc import Mapping

_TRUE, _FALSE = frozenset({"true", "yes", "1", "on"}), frozenset({"false", "no", "0", "off"})


@dataclass(frozen=True)
class Option:
    """One Connection extra: its name, its type, its default and how the form shows it.

    ``kind`` is ``str``, ``int``, ``float`` or ``bool`` (``verify``: a bool or a CA bundle path,
    so a string that is not a boolean word stays a path). ``argument`` is the
    :class:`SmsCnClient` keyword the value goes to (None: the hook uses it itself).
    ``placeholder`` is what the empty form field shows (default: the default).
    """

    name: str
    kind: type
    default: Any
    label: str
    description: str
    argument: str | None = None
    secret: bool = False
    choices: tuple[str, ...] = ()
    placeholder: str | None = None

    def parse(self, value: Any) -> Any:
        """``value`` as read from a Connection (JSON or URI strings), converted to ``kind``.

        Raises :class:`SmsCnValidationError` naming the extra, before any request is sent.
        """
        try:
            if self.kind is bool:
                return _parse_bool_or_path(value)
            if self.kind is int:
                if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
                    raise ValueError
                return int(value)
            if self.kind is float:
                if isinstance(value, bool):
                    raise ValueError
                return float(value)
        except (TypeError, ValueError):
            pass
        else:
            text = str(value).strip()
            # A listed choice in any case becomes the listed spelling; anything else is left to
            # the client's own check (which also knows aliases such as utf8).
            return next((c for c in self.choices if c.lower() == text.lower()), text)
        raise SmsCnValidationError(
            f"Connection extra {self.name!r} must be {_KIND_WORDS[self.kind]}, got a {type(value).__name__}")


_KIND_WORDS = {int: "an integer", float: "a number", bool: "true, false or a CA bundle path", str: "text"}


def _parse_bool_or_path(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    if not isinstance(value, str) or not value.strip():
        raise ValueError
    word = value.strip().lower()
    if word in _TRUE | _FALSE:
        return word in _TRUE
    return value.strip()


OPTIONS: tuple[Option, ...] = (
    Option("api_password", str, None, "API password",
           "The ready 32-hex API password from the sms.cn console, sent as pwd as is "
           "(instead of md5(password + uid)).",
           argument="api_password", secret=True, placeholder="32 hex characters from the console"),
    Option("secret_key", str, None, "Secret key",
           "Switches to tokenkey signing (recommended): md5(uid + secret key + Beijing timestamp).",
           argument="secret_key", secret=True,
           placeholder="secret key for tokenkey signing (recommended)"),
    Option("format", str, "json", "Reply format", "Format of the vendor's replies.",
           argument="reply_format", choices=("json", "xml", "txt")),
    Option("encoding", str, "utf-8", "Request encoding", "Encoding of the request text.",
           argument="encoding", choices=("utf-8", "gbk")),
    Option("language", str, None, "Message language",
           "'english' for English status messages; empty for the vendor's Chinese ones.",
           argument="language", placeholder="english"),
    Option("timeout", float, 10.0, "Timeout (seconds)", "Seconds per request.", argument="timeout"),
    Option("max_numbers_per_request", int, 1000, "Numbers per request",
           "Largest count of numbers in one sendcode request; larger lists are sent in chunks "
           "(the vendor does not document its limit).", argument="max_numbers_per_request"),
    Option("verify", bool, True, "TLS verification", "true, false, or the path of a CA bundle.",
           argument="verify"),
    Option("retries", int, 3, "Retries",
           "Back-off retries of what is safe to retry (refusals, network errors, HTTP 5xx outside "
           "sendcode); 0 = none."),
    Option("retry_max_wait", float, 8.0, "Longest retry wait (seconds)",
           "Upper bound of one back-off wait."),
    Option("scheme", str, "https", "Scheme", "Scheme used when API URL is a bare host name.",
           choices=("https", "http")),
    Option("method", str, "POST", "HTTP method", "POST keeps credentials out of URLs; GET also works.",
           argument="method", choices=("POST", "GET")),
)

BY_NAME: dict[str, Option] = {option.name: option for option in OPTIONS}


def default(name: str) -> Any:
    """The default of the extra ``name`` (the client's keyword defaults read it)."""
    return BY_NAME[name].default


def read_extras(extra: Mapping[str, Any]) -> dict[str, Any]:
    """The extras set in a Connection's ``extra``, typed; unset and empty ones are left out.

    Keys may carry the old form prefix (``extra__smscn__timeout``). Bad values raise
    :class:`SmsCnValidationError` naming the extra.
    """
    values: dict[str, Any] = {}
    for option in OPTIONS:
        raw = extra.get(option.name, extra.get(f"extra__smscn__{option.name}"))
        if raw is not None and raw != "":
            values[option.name] = option.parse(raw)
    return values
