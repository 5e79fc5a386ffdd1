"""The ``stat`` code table of the sms.cn voice API: one place for meanings and retry advice.

``retriable`` answers "can a later attempt of the same request succeed without anyone changing
anything?". ``backoff`` marks the codes the client itself retries at once with exponential
back-off: the server refused the request outright, so nothing was sent and a retry cannot call
anyone twice.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

SUCCESS = 100


class Category(str, Enum):
    """Families of failure, used to pick the exception class."""

    SUCCESS = "success"
    AUTH = "auth"
    BALANCE = "balance"
    ACCOUNT = "account"
    RATE_LIMIT = "rate_limit"
    REQUEST = "request"
    TEMPLATE = "template"
    SERVER = "server"


@dataclass(frozen=True)
class CodeInfo:
    """What one ``stat`` code means and whether retrying can help."""

    code: int
    meaning: str
    category: Category
    retriable: bool = False
    backoff: bool = False
    documented: bool = True


def _c(code: int, meaning: str, category: Category, *, retriable: bool = False, backoff: bool = False,
       documented: bool = True) -> tuple[int, CodeInfo]:
    return code, CodeInfo(code, meaning, category, retriable, backoff, documented)


STAT_CODES: dict[int, CodeInfo] = dict(
    [
        _c(100, "success", Category.SUCCESS),
        _c(101, "authentication failed (wrong uid, password or signature)", Category.AUTH),
        _c(102, "insufficient balance", Category.BALANCE),
        _c(103, "operation failed on the vendor side", Category.SERVER, retriable=True),
        _c(104, "illegal characters in the content", Category.REQUEST),
        _c(105, "content too long", Category.REQUEST),
        _c(106, "too many numbers in one request", Category.REQUEST),
        _c(107, "requests too frequent (rate limited)", Category.RATE_LIMIT, retriable=True, backoff=True),
        _c(108, "number or content empty", Category.REQUEST),
        _c(109, "account frozen", Category.ACCOUNT),
        _c(112, "wrong number", Category.REQUEST),
        _c(116, "sending through the API is forbidden for this account", Category.ACCOUNT),
        _c(117, "the caller's IP address is not bound to the account", Category.AUTH),
        _c(118, "timestamp format wrong (expected yyyyMMddHHmmss, Beijing time)", Category.AUTH),
        _c(119, "signature expired: the timestamp is more than 5 minutes off Beijing time", Category.AUTH),
        _c(124, "too many duplicate submissions", Category.REQUEST),
        _c(151, "over the configured limit / hourly send limit", Category.RATE_LIMIT, retriable=True),
        _c(152, "daily send limit reached", Category.RATE_LIMIT),
        _c(161, "no template added", Category.TEMPLATE),
        _c(162, "template format wrong", Category.TEMPLATE),
        _c(163, "template id wrong", Category.TEMPLATE),
        _c(164, "content does not match the template", Category.TEMPLATE),
        _c(166, "template content duplicated", Category.TEMPLATE),
        _c(167, "template under review", Category.TEMPLATE),
        _c(168, "template rejected", Category.TEMPLATE),
        _c(169, "variable content over the limit", Category.TEMPLATE),
        # Codes seen in public clients of the vendor's older SMS endpoints (docs/api.md).
        _c(110, "single sends too frequent", Category.RATE_LIMIT, retriable=True, backoff=True,
           documented=False),
        _c(111, "sending paused by the system", Category.SERVER, retriable=True, documented=False),
        _c(113, "schedule time format wrong", Category.REQUEST, documented=False),
        _c(114, "account locked for 10 minutes", Category.ACCOUNT, retriable=True, documented=False),
        _c(115, "connection failed on the vendor side", Category.SERVER, retriable=True, documented=False),
        _c(120, "system upgrade in progress", Category.SERVER, retriable=True, documented=False),
    ]
)

# Delivery report ``resultcode`` values (docs/api.md, ac=status).
RESULT_CODES: dict[int, str] = {
    100: "delivered",
    130: "failed",
    131: "empty (non-existent) number",
    132: "number suspended",
    133: "phone powered off",
    134: "no status from the carrier",
}


def code_info(code: int) -> CodeInfo | None:
    """Return the table entry for ``code``, or None for a code the vendor never documented."""
    return STAT_CODES.get(code)


def result_meaning(resultcode: int) -> str:
    """English meaning of a delivery report's ``resultcode``."""
    return RESULT_CODES.get(resultcode, f"unknown result code {resultcode}")
