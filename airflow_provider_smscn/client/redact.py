"""Masking of phone numbers for anything a person or a log may read."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from collections.abc import Iterable


def mask_mobile(mobile: str) -> str:
    """Return ``139****8888`` for ``13900008888``: enough to tell numbers apart, not to call them."""
    mobile = str(mobile)
    if len(mobile) >= 7:
        return f"{mobile[:3]}{'*' * (len(mobile) - 7)}{mobile[-4:]}"
    if len(mobile) > 2:
        return f"{'*' * (len(mobile) - 2)}{mobile[-2:]}"
    return "*" * len(mobile)


def mask_mobiles(mobiles: Iterable[str], limit: int = 5) -> str:
    """A short, masked summary of a list of numbers for log lines."""
    items = list(mobiles)
    shown = ", ".join(mask_mobile(m) for m in items[:limit])
    more = f" and {len(items) - limit} more" if len(items) > limit else ""
    return f"[{shown}{more}]"
