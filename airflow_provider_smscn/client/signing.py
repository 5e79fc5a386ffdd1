"""Authentication parameters of the sms.cn API: ``pwd``, ``tokenkey`` and the Beijing timestamp.

The one place where credentials are derived. ``pwd`` and ``tokenkey`` are credentials in their
own right (whoever sees ``pwd`` can use the account), so the :class:`Signer` hands each new one to
an ``on_secret`` callback (the Airflow hook registers them with the secret masker) and never shows
them in its ``repr``.
"""

from __future__ import annotations

import hashlib
import re
import threading
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from .errors import SmsCnValidationError
from .validation import validate_uid

if TYPE_CHECKING:
    from collections.abc import Callable

#: Beijing time. Asia/Shanghai has kept UTC+8 without daylight saving since 1991, so a fixed
#: offset is exact for any timestamp the server accepts and needs no tz database (tzdata is not
#: installed everywhere, e.g. slim containers and Windows).
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")


#: The server refuses timestamps more than 300 s off its clock (119); reusing one for longer
#: than this would fail even with a perfect local clock.
MAX_SIGNATURE_REUSE_SECONDS = 240.0

_HEX32 = re.compile(r"[0-9a-fA-F]{32}")


def _utc_now() -> datetime:
    return datetime.now(timezone.utc)


def beijing_timestamp(now: datetime | None = None) -> str:
    """Return ``now`` (default: the current time) as Beijing time ``yyyyMMddHHmmss``.

    ``now`` must be timezone-aware: a naive datetime is ambiguous (local time? UTC?) and a guess
    that is off by hours only shows up later as a 119 from the server, so it is refused with
    :class:`SmsCnValidationError`. The local ``TZ`` of the process never matters.
    """
    if now is None:
        now = _utc_now()
    elif now.tzinfo is None or now.tzinfo.utcoffset(now) is None:
        raise SmsCnValidationError(
            "beijing_timestamp() needs a timezone-aware datetime, e.g. datetime.now(timezone.utc)"
        )
    return now.astimezone(BEIJING).strftime("%Y%m%d%H%M%S")


def beijing_unix(text: str | None) -> float | None:
    """A Beijing time as the vendor writes it (``2010-11-14 18:04:19``, or ``yyyyMMddHHmmss``) in
    unix seconds; ``None`` when it cannot be read (empty, other separators, out of range).

    Why: report times are compared as instants, never as strings ("" and "2026/..." would sort
    below and above every real time).
    """
    text = (text or "").strip()
    for fmt in ("%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S"):
        try:
            return datetime.strptime(text, fmt).replace(tzinfo=BEIJING).timestamp()
        except ValueError:
            continue
    return None


def _md5_hex(text: str) -> str:
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def make_pwd(password: str, uid: str) -> str:
    """``pwd`` of the password mode: md5(login password + uid), 32 lowercase hex digits."""
    return _md5_hex(password + uid)


def make_tokenkey(uid: str, secret_key: str, timestamp: str) -> str:
    """``tokenkey`` of the secret-key mode: md5(uid + secretkey + timestamp), lowercase hex."""
    return _md5_hex(uid + secret_key + timestamp)


class Signer:
    """Builds the authentication parameters of each request.

    Modes, first one given wins: ``secret_key`` (the vendor's recommendation: a leaked
    ``tokenkey`` expires after 5 minutes) gives ``uid``, ``tokenkey``, ``timestamp``;
    ``api_password`` (the ready-made 32-hex ``pwd`` shown in the vendor's console) and
    ``password`` (the login password) give ``uid``, ``pwd``. Empty strings count as not given,
    as Airflow connection fields are often ``""``.

    One timestamp, and so one ``tokenkey``, is reused for up to ``signature_reuse_seconds``
    (0 = a fresh one per request) so that a long-lived process hands only a few distinct
    ``tokenkey`` values to ``on_secret``, which is called once per distinct derived credential.
    ``clock`` returns the current time as an aware datetime (injectable for tests).
    """

    __slots__ = ("_cached", "_clock", "_lock", "_on_secret", "_pwd_params", "_reuse", "_secret_key",
                 "mode", "uid")

    def __init__(self, uid: str, *, password: str | None = None, api_password: str | None = None,
                 secret_key: str | None = None, clock: Callable[[], datetime] | None = None,
                 on_secret: Callable[[str], None] | None = None,
                 signature_reuse_seconds: float = 30.0) -> None:
        self.uid = validate_uid(uid)
        reuse = float(signature_reuse_seconds)
        if not 0.0 <= reuse <= MAX_SIGNATURE_REUSE_SECONDS:  # also refuses NaN
            raise SmsCnValidationError(
                f"signature_reuse_seconds must be between 0 and {MAX_SIGNATURE_REUSE_SECONDS:g}"
            )
        self._reuse = reuse
        self._clock = clock or _utc_now
        self._on_secret = on_secret
        self._lock = threading.Lock()
        # (time the timestamp was taken, auth params) of the current signature.
        self._cached: tuple[datetime, dict[str, str]] | None = None
        self._pwd_params: dict[str, str] | None = None
        self._secret_key: str | None = None
        if secret_key:
            _check_str("secret_key", secret_key)
            if secret_key != secret_key.strip():
                raise SmsCnValidationError("secret_key has leading or trailing whitespace")
            self.mode = "secret_key"
            self._secret_key = secret_key
        elif api_password:
            _check_str("api_password", api_password)
            if not _HEX32.fullmatch(api_password):
                raise SmsCnValidationError(
                    "api_password must be the 32 hex digit interface password (md5); "
                    "give the login password as password instead"
                )
            self.mode = "api_password"
            self._pwd_params = {"uid": self.uid, "pwd": api_password.lower()}
        elif password:
            _check_str("password", password)
            self.mode = "password"
            self._pwd_params = {"uid": self.uid, "pwd": make_pwd(password, self.uid)}
        else:
            raise SmsCnValidationError("no credential given: set secret_key, api_password or password")
        if self._pwd_params is not None and on_secret is not None:
            on_secret(self._pwd_params["pwd"])

    def auth_params(self) -> dict[str, str]:
        """The authentication parameters for one request (a fresh dict the caller may extend)."""
        if self._pwd_params is not None:
            return dict(self._pwd_params)
        now = self._clock()
        cached = self._cached
        if cached is not None and 0.0 <= (now - cached[0]).total_seconds() < self._reuse:
            return dict(cached[1])
        return dict(self._new_signature(now))

    def _new_signature(self, now: datetime) -> dict[str, str]:
        timestamp = beijing_timestamp(now)
        assert self._secret_key is not None  # secret_key mode only
        with self._lock:
            cached = self._cached
            if cached is not None and cached[1]["timestamp"] == timestamp:
                # Same second as the current signature: same tokenkey, no new secret.
                return cached[1]
            params = {"uid": self.uid, "tokenkey": make_tokenkey(self.uid, self._secret_key, timestamp),
                      "timestamp": timestamp}
            if self._on_secret is not None:
                self._on_secret(params["tokenkey"])
            self._cached = (now, params)
            return params

    def __repr__(self) -> str:
        return f"Signer(uid={self.uid!r}, mode={self.mode!r})"


def _check_str(name: str, value: object) -> None:
    if not isinstance(value, str):
        raise SmsCnValidationError(f"{name} must be a string, not {type(value).__name__}")
