"""One exception family for everything the client raises.

Messages never carry credentials, request bodies or URLs with parameters, and numbers only
masked: they end up in task logs and in the Airflow UI.
"""

from __future__ import annotations

from .codes import Category, code_info


class SmsCnError(Exception):
    """Base of every error raised by this package."""

    #: Whether trying the same thing again later can succeed (Airflow retries use this).
    retriable: bool = False


class SmsCnValidationError(SmsCnError, ValueError):
    """Bad input, found before any request was sent (nothing was sent)."""


class SmsCnTransportError(SmsCnError):
    """The request failed below the API: network, HTTP status or an unreadable body."""

    retriable = True

    def __init__(self, message: str, *, action: str | None = None, http_status: int | None = None,
                 body_excerpt: str | None = None) -> None:
        super().__init__(message)
        self.action = action
        self.http_status = http_status
        self.body_excerpt = body_excerpt


class SmsCnResponseError(SmsCnTransportError):
    """The vendor answered, but not in a shape this client can read."""


class SmsCnSendOutcomeUnknownError(SmsCnTransportError):
    """A ``sendcode`` request may have reached the vendor, but no answer came back.

    Retrying blindly could phone the same people twice, so the client never retries this case
    itself; ``mobileids`` tells the caller which message ids to look for in delivery reports.
    """

    retriable = False

    def __init__(self, message: str, *, mobileids: list[str], action: str | None = "sendcode",
                 http_status: int | None = None) -> None:
        super().__init__(message, action=action, http_status=http_status)
        self.mobileids = list(mobileids)


class SmsCnApiError(SmsCnError):
    """The vendor answered with a ``stat`` code other than 100.

    ``code`` is the int code, ``meaning`` its English meaning from the document,
    ``server_message`` what the vendor said, ``retriable`` whether a later retry can help.
    """

    category: Category | None = None

    def __init__(self, code: int, server_message: str = "", *, action: str | None = None) -> None:
        info = code_info(code)
        self.code = int(code)
        self.action = action
        self.server_message = server_message
        self.documented = info is not None
        if info is None:
            self.meaning = f"unknown stat code {code} (not in the vendor's document)"
            self.retriable = False
        else:
            self.meaning = info.meaning
            self.retriable = info.retriable
        where = f" on ac={action}" if action else ""
        said = f" (vendor said: {server_message})" if server_message else ""
        super().__init__(f"sms.cn API error {self.code}{where}: {self.meaning}{said}")

    @classmethod
    def from_code(cls, code: int, server_message: str = "", *, action: str | None = None) -> SmsCnApiError:
        """Build the most specific subclass for ``code``."""
        info = code_info(code)
        klass = _BY_CATEGORY.get(info.category, SmsCnApiError) if info else SmsCnUnknownCodeError
        return klass(code, server_message, action=action)


class SmsCnAuthError(SmsCnApiError):
    """Credentials, signature, timestamp or bound IP rejected."""

    category = Category.AUTH


class SmsCnBalanceError(SmsCnApiError):
    """Not enough balance left to send."""

    category = Category.BALANCE


class SmsCnAccountError(SmsCnApiError):
    """The account may not send right now: frozen, API forbidden, locked."""

    category = Category.ACCOUNT


class SmsCnRateLimitError(SmsCnApiError):
    """Too frequent, or over an hourly / daily cap."""

    category = Category.RATE_LIMIT


class SmsCnRequestError(SmsCnApiError):
    """The request itself was refused: numbers, content, duplicates."""

    category = Category.REQUEST


class SmsCnTemplateError(SmsCnApiError):
    """Template missing, wrong, under review or not matching the variables."""

    category = Category.TEMPLATE


class SmsCnServerError(SmsCnApiError):
    """The vendor failed on its side."""

    category = Category.SERVER


class SmsCnUnknownCodeError(SmsCnApiError):
    """A ``stat`` code the vendor's document does not list."""


class SmsCnLowBalanceError(SmsCnError):
    """The balance is below the threshold the user set (raised by the balance check)."""

    def __init__(self, balance: int, min_balance: int) -> None:
        self.balance = balance
        self.min_balance = min_balance
        super().__init__(f"sms.cn balance {balance} is below the minimum of {min_balance}")


#: The subclass raised for each category: each subclass names its own ``category`` (one source).
_BY_CATEGORY: dict[Category, type[SmsCnApiError]] = {
    cls.category: cls for cls in SmsCnApiError.__subclasses__() if cls.category is not None
}
