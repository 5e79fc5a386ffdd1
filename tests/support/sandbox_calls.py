"""Raw-HTTP helpers for the sandbox tests, written from docs/api.md (the vendor's facts), not the client."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime, timedelta, timezone
from typing import Any

import requests

UID = "test"
PASSWORD = "123123"
SECRET = "64CQMlr579J0L46U9q1qR285Risfc04G"
DOC_PWD = "b9887c5ebb23ebb294acab183ecf0769"  # section 一: md5("123123test")
DOC_TOKENKEY = "67da3bb4523ce538ff9adec57dc25162"  # section 一, timestamp 20120102102033
DOC_TIMESTAMP = "20120102102033"
TEMPLATE = "700001"
CODE = '{"code":"234336"}'
MOBILE = "13900008888"
TIMEOUT = 10


def md5(text: str) -> str:
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def beijing_timestamp(offset_seconds: float = 0) -> str:
    now = datetime.now(timezone(timedelta(hours=8))) + timedelta(seconds=offset_seconds)
    return now.strftime("%Y%m%d%H%M%S")


def beijing_today() -> str:
    return datetime.now(timezone(timedelta(hours=8))).strftime("%Y-%m-%d")


def pwd_auth(uid: str = UID, password: str = PASSWORD) -> dict[str, str]:
    return {"uid": uid, "pwd": md5(password + uid)}


def token_auth(uid: str = UID, secret: str = SECRET, offset_seconds: float = 0) -> dict[str, str]:
    stamp = beijing_timestamp(offset_seconds)
    return {"uid": uid, "tokenkey": md5(uid + secret + stamp), "timestamp": stamp}


def call(
    url: str,
    ac: str,
    *,
    method: str = "POST",
    auth: dict[str, str] | None = None,
    session: requests.Session | None = None,
    timeout: float = TIMEOUT,
    **params: Any,
) -> requests.Response:
    """One request to /voice/; POST sends a form body, GET a query string."""
    data = {"ac": ac, **(pwd_auth() if auth is None else auth), **params}
    sender = session or requests
    if method == "GET":
        return sender.get(url, params=data, timeout=timeout)
    return sender.post(url, data=data, timeout=timeout)


def jcall(url: str, ac: str, **kwargs: Any) -> dict[str, Any]:
    """``call`` with a JSON reply, parsed."""
    response = call(url, ac, **kwargs)
    assert response.status_code == 200, response.text
    data: dict[str, Any] = json.loads(response.text)
    return data


def send(url: str, mobile: str = MOBILE, **kwargs: Any) -> dict[str, Any]:
    """A sendcode with the document's template and a code, unless overridden."""
    kwargs.setdefault("template", TEMPLATE)
    kwargs.setdefault("content", CODE)
    return jcall(url, "sendcode", mobile=mobile, **kwargs)


def numbers(count: int, start: int = 13900000000) -> list[str]:
    return [str(start + i) for i in range(count)]
