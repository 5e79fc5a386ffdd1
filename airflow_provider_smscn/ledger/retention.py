"""How long the ledger keeps rows: one rule, checked wherever the setting is read."""

from __future__ import annotations

import math

#: The shortest retention the ledger accepts. An ``unknown`` or ``pending`` intent is what stops
#: a retry from calling a number again, and a report may wait for a sensor that pokes hourly:
#: pruning them sooner than a day turns a safe retry into a second call.
MIN_RETENTION_DAYS = 1.0
SECONDS_PER_DAY = 86400.0


def check_retention_days(value: object) -> float:
    """``[smscn] retention_days`` as a float; a clear error if it is not a number of days >= 1."""
    try:
        days = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"[smscn] retention_days must be a number of days, not {value!r}") from None
    if math.isnan(days) or days < MIN_RETENTION_DAYS:
        raise ValueError(
            f"[smscn] retention_days must be at least {MIN_RETENTION_DAYS:g} day, got {value!r}: the "
            "ledger's send intents are what keeps a retry from calling a number twice, so they "
            "(and unread delivery reports) are kept at least that long")
    return days


def check_retention_seconds(seconds: float) -> float:
    """The same rule for a retention given in seconds (``prune``'s argument)."""
    if math.isnan(seconds) or seconds < MIN_RETENTION_DAYS * SECONDS_PER_DAY:
        raise ValueError(
            f"[smscn] retention_days must be at least {MIN_RETENTION_DAYS:g} day: refusing to prune rows "
            f"younger than {seconds!r} seconds")
    return float(seconds)
