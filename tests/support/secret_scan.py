"""Helpers that look for credentials and full phone numbers in whatever a user could read."""

from __future__ import annotations

import hashlib
import re
import time
from datetime import datetime, timedelta, timezone

BEIJING = timezone(timedelta(hours=8))
LEAK_UID = "leakcheck"
LEAK_PASSWORD = "Pw-9f8e7d6c5b4a3921"
LEAK_SECRET_KEY = "Sk7Qw3Er5Ty7Ui9Op1As3Df5Gh7Jk9Lz"
LEAK_PWD = hashlib.md5((LEAK_PASSWORD + LEAK_UID).encode()).hexdigest()
LEAK_ACCOUNT = {"uid": LEAK_UID, "password": LEAK_PASSWORD, "secret_key": LEAK_SECRET_KEY,
                "balance": 100000, "templates": {"700001": "您的验证码是：{$code}。"}}


def tokenkeys_between(start: float, end: float, uid: str = LEAK_UID, key: str = LEAK_SECRET_KEY) -> set[str]:
    """Every tokenkey the client could have derived between two unix times (a second each)."""
    keys = set()
    t = int(start) - 60
    while t <= int(end) + 60:
        stamp = datetime.fromtimestamp(t, BEIJING).strftime("%Y%m%d%H%M%S")
        keys.add(hashlib.md5(f"{uid}{key}{stamp}".encode()).hexdigest())
        t += 1
    return keys


class SecretScan:
    """Collects the secrets of one test window and reports which of them a text contains."""

    def __init__(self) -> None:
        self.started = time.time()

    def secrets(self) -> dict[str, str]:
        found = {"password": LEAK_PASSWORD, "secret_key": LEAK_SECRET_KEY, "pwd/api_password": LEAK_PWD}
        for i, key in enumerate(sorted(tokenkeys_between(self.started, time.time()))):
            found[f"tokenkey#{i}"] = key
        return found

    def leaks(self, text: str) -> list[str]:
        return [name for name, value in self.secrets().items() if value in text]


def full_numbers(text: str, numbers: list[str]) -> list[str]:
    """The numbers that appear unmasked in ``text``."""
    return [n for n in numbers if re.search(rf"(?<!\d){n}(?!\d)", text)]
