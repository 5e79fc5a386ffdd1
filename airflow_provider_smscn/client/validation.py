"""Checks of everything a request carries, made before any request is sent.

A refused input costs nothing; a malformed one that reaches the vendor can cost a phone call.
Messages name what is wrong and where, show numbers only masked and never show variable values:
those are one-time codes.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import secrets
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from .errors import SmsCnValidationError
from .redact import mask_mobile

_MOBILE = re.compile(r"1[0-9]{10}")
_LANDLINE = re.compile(r"0[0-9]{9,11}")
_DIGITS = re.compile(r"[0-9]+")
_VARIABLE_KEY = re.compile(r"[A-Za-z0-9_]+")
_UID = re.compile(r"[^\s\x00-\x1f\x7f]+")

#: Message ids: digits only, at most this many (decisions #14).
MAX_MOBILEID_DIGITS = 30
#: Length of the ids this module generates: unique enough (9e19 values) and well under the limit.
MOBILEID_DIGITS = 20
_MOBILEID_SPAN = 9 * 10 ** (MOBILEID_DIGITS - 1)  # ids from 10**19 to 10**20 - 1: first digit non-zero


def validate_uid(uid: object) -> str:
    """The account name: a non-empty string without whitespace or control characters."""
    if not isinstance(uid, str) or not uid:
        raise SmsCnValidationError("uid (the sms.cn account name) must be a non-empty string")
    if not _UID.fullmatch(uid):
        raise SmsCnValidationError("uid must not contain whitespace or control characters")
    return uid


_DEFAULT_PORTS = {"http": 80, "https": 443}
_STORED_KEY = re.compile(r"(?P<uid>.+?)@(?P<host>[^@/]+)(?P<path>/.*)?", re.DOTALL)


def account_key(uid: str, scheme: str, netloc: str, path: str) -> str:
    """The key that scopes an account's intents, leases and reports: ``uid@host[:port]/path``.

    One spelling per account: host lowercased, the scheme's default port dropped, trailing
    slashes stripped (``.../voice/``, ``.../voice`` and ``HTTPS://API.SMS.CN:443/voice`` are one
    account), so an edited Connection never makes a retry call everyone again.
    """
    host = netloc.lower()
    port = _DEFAULT_PORTS.get(scheme.lower())
    if port is not None and host.endswith(f":{port}") and not host.endswith("]"):
        host = host[: -len(f":{port}")]
    return f"{uid}@{host}/{path.strip('/')}"


def normalise_account_key(key: str) -> str:
    """:func:`account_key` of a key stored by an older version (the scheme is not in it, so
    either default port goes); anything else (e.g. a lease that is not an account) unchanged."""
    match = _STORED_KEY.fullmatch(key)
    if match is None:
        return key
    host = match["host"].lower()
    for port in _DEFAULT_PORTS.values():
        if host.endswith(f":{port}"):
            host = host[: -len(f":{port}")]
    return f"{match['uid']}@{host}/{(match['path'] or '').strip('/')}"


def _split(value: str | Iterable[Any], what: str) -> list[Any]:
    if isinstance(value, str):
        return value.split(",")
    if isinstance(value, (bytes, bytearray, Mapping)):
        raise SmsCnValidationError(f"{what} must be a comma separated string or a list of strings")
    try:
        return list(value)
    except TypeError:
        raise SmsCnValidationError(
            f"{what} must be a comma separated string or a list of strings, not {type(value).__name__}"
        ) from None


def _number_problem(number: str) -> str | None:
    """What is wrong with a trimmed number (decisions #19), or None when it is valid."""
    if _MOBILE.fullmatch(number) or _LANDLINE.fullmatch(number):
        return None
    if not _DIGITS.fullmatch(number):
        return "contains characters other than digits (give it without +86, dashes or spaces)"
    if number[0] == "1":
        return f"has {len(number)} digits, a mobile number has 11"
    if number[0] == "0":
        return f"has {len(number)} digits, a landline with area code has 10 to 12"
    return "must start with 1 (mobile) or 0 (landline with area code)"


def normalize_mobiles(mobiles: str | Iterable[str], limit: int) -> list[str]:
    """Return the numbers of one request as a list of trimmed, valid, distinct numbers.

    Accepts ``"13900008888,13900009999"`` or a list. A repeated number is refused: it would
    place two calls. ``limit`` is the most numbers one request may carry.
    """
    if limit < 1:
        raise SmsCnValidationError("the number limit per request must be at least 1")
    items = _split(mobiles, "mobiles")
    if not items or items == [""]:
        raise SmsCnValidationError("no phone number given")
    if len(items) > limit:
        raise SmsCnValidationError(f"{len(items)} numbers given, at most {limit} per request")
    result: list[str] = []
    seen: dict[str, int] = {}
    for position, item in enumerate(items, start=1):
        if not isinstance(item, str):
            raise SmsCnValidationError(
                f"number #{position} must be a string, not {type(item).__name__}"
                " (an int would lose a landline's leading 0)"
            )
        number = item.strip()
        if not number:
            raise SmsCnValidationError(f"number #{position} is empty")
        problem = _number_problem(number)
        if problem:
            raise SmsCnValidationError(f"number #{position} ({mask_mobile(number)}) {problem}")
        if number in seen:
            raise SmsCnValidationError(
                f"number #{position} ({mask_mobile(number)}) repeats number #{seen[number]}"
                " (it would be called twice)"
            )
        seen[number] = position
        result.append(number)
    return result


def normalize_variables(variables: Mapping[str, Any] | str) -> dict[str, str | int | float]:
    """Return the template variables as a flat dict, from a mapping or a JSON object string.

    Keys are the template's ``{$name}`` slots; values must be strings or numbers.
    """
    if isinstance(variables, str):
        try:
            variables = json.loads(variables)
        except ValueError:
            raise SmsCnValidationError("variables is not valid JSON (expected an object like "
                                       '{"code": "123456"})') from None
    if not isinstance(variables, Mapping):
        raise SmsCnValidationError(
            f"variables must be a JSON object / mapping, not {type(variables).__name__}"
        )
    if not variables:
        raise SmsCnValidationError("no template variables given")
    result: dict[str, str | int | float] = {}
    for key, value in variables.items():
        if not isinstance(key, str) or not _VARIABLE_KEY.fullmatch(key):
            shown = repr(key)[:40] if isinstance(key, str) else type(key).__name__
            raise SmsCnValidationError(
                f"variable name {shown} is not a template slot name (letters, digits and _)"
            )
        if isinstance(value, bool) or not isinstance(value, (str, int, float)):
            raise SmsCnValidationError(
                f"variable {key!r} is a {type(value).__name__}; values must be strings or numbers"
            )
        if isinstance(value, float) and not math.isfinite(value):
            raise SmsCnValidationError(f"variable {key!r} is not a finite number")
        result[key] = value
    return result


def validate_template_id(template_id: object) -> str:
    """The template id as a string of digits (an int is accepted)."""
    if isinstance(template_id, int) and not isinstance(template_id, bool) and template_id >= 0:
        template_id = str(template_id)
    if not isinstance(template_id, str) or not _DIGITS.fullmatch(template_id.strip()):
        raise SmsCnValidationError("template_id must be the template's numeric id, e.g. 700001")
    return template_id.strip()


def normalize_mobileids(mobileids: str | Sequence[str] | None, count: int) -> list[str] | None:
    """Check caller-given message ids: one per number, digits only, at most 30 digits, distinct."""
    if mobileids is None:
        return None
    items = _split(mobileids, "mobileids")
    if len(items) != count:
        raise SmsCnValidationError(f"{len(items)} mobileids given for {count} numbers: give one per number")
    result: list[str] = []
    seen: set[str] = set()
    for position, item in enumerate(items, start=1):
        if isinstance(item, int) and not isinstance(item, bool):
            item = str(item)
        if not isinstance(item, str):
            raise SmsCnValidationError(f"mobileid #{position} must be a string of digits")
        mobileid = item.strip()
        if not _DIGITS.fullmatch(mobileid) or len(mobileid) > MAX_MOBILEID_DIGITS:
            raise SmsCnValidationError(
                f"mobileid #{position} must be 1 to {MAX_MOBILEID_DIGITS} digits"
            )
        if mobileid in seen:
            raise SmsCnValidationError(f"mobileid #{position} repeats an earlier one; ids must be unique")
        seen.add(mobileid)
        result.append(mobileid)
    return result


def generate_mobileids(count: int) -> list[str]:
    """``count`` distinct random 20-digit message ids.

    Random rather than the vendor's suggested "number + milliseconds": ids show up in logs,
    XComs and reports, and must not reveal who was called.
    """
    if count < 0:
        raise SmsCnValidationError("count must not be negative")
    ids: dict[str, None] = {}
    while len(ids) < count:
        ids[str(10 ** (MOBILEID_DIGITS - 1) + secrets.randbelow(_MOBILEID_SPAN))] = None
    return list(ids)


def deterministic_mobileid(key: str) -> str:
    """A 20-digit message id derived from ``key`` (sha256), the same on every retry.

    With a key such as dag/task/run/map index/number, a retried task reuses the ids of its first
    try, so the vendor refuses a repeat (124) instead of phoning again, and reports still match.
    """
    if not isinstance(key, str) or not key:
        raise SmsCnValidationError("the key of a deterministic mobileid must be a non-empty string")
    digest = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest(), "big")
    return str(10 ** (MOBILEID_DIGITS - 1) + digest % _MOBILEID_SPAN)
