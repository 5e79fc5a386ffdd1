"""Airflow-free client of the sms.cn voice verification code API.

Errors, models and helpers load eagerly (cheap); :class:`SmsCnClient` and :class:`RetryPolicy`
load on first access, because they import ``requests`` and ``tenacity``, which a DAG file that
only imports an error class should not pay for.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .errors import (
    SmsCnAccountError,
    SmsCnApiError,
    SmsCnAuthError,
    SmsCnBalanceError,
    SmsCnError,
    SmsCnLowBalanceError,
    SmsCnRateLimitError,
    SmsCnRequestError,
    SmsCnResponseError,
    SmsCnSendOutcomeUnknownError,
    SmsCnServerError,
    SmsCnTemplateError,
    SmsCnTransportError,
    SmsCnUnknownCodeError,
    SmsCnValidationError,
)
from .models import DeliveryReport, SendResult, SentRecord
from .redact import mask_mobile, mask_mobiles

if TYPE_CHECKING:
    from .client import DEFAULT_BASE_URL, RetryPolicy, SmsCnClient

_LAZY = frozenset({"DEFAULT_BASE_URL", "RetryPolicy", "SmsCnClient"})

__all__ = [
    "DEFAULT_BASE_URL",
    "DeliveryReport",
    "RetryPolicy",
    "SendResult",
    "SentRecord",
    "SmsCnAccountError",
    "SmsCnApiError",
    "SmsCnAuthError",
    "SmsCnBalanceError",
    "SmsCnClient",
    "SmsCnError",
    "SmsCnLowBalanceError",
    "SmsCnRateLimitError",
    "SmsCnRequestError",
    "SmsCnResponseError",
    "SmsCnSendOutcomeUnknownError",
    "SmsCnServerError",
    "SmsCnTemplateError",
    "SmsCnTransportError",
    "SmsCnUnknownCodeError",
    "SmsCnValidationError",
    "mask_mobile",
    "mask_mobiles",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f"{__name__}.client"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
