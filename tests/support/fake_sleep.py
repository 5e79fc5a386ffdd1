"""``asyncio.sleep`` replaced for a test: each sleep recorded, none slept (the loop still turns).

The ``sleeps`` fixture of tests/triggers/conftest.py installs it; a test reads ``sleeps.seen`` and
may set ``sleeps.on_sleep`` to act at the n-th sleep (its way of doing something "later").
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pytest

#: The real one, for a test's own waiting while the fake is installed.
real_sleep = asyncio.sleep


class Sleeps:
    """The waiting's sleeps, recorded; ``on_sleep`` runs at each with the count so far."""

    def __init__(self) -> None:
        self.seen: list[float] = []
        self.on_sleep = lambda count: None

    async def __call__(self, seconds: float) -> None:
        self.seen.append(seconds)
        self.on_sleep(len(self.seen))
        await real_sleep(0)


def fake_asyncio_sleep(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    """Replace ``asyncio.sleep`` for the test (``monkeypatch`` restores it) and return the record."""
    fake = Sleeps()
    monkeypatch.setattr(asyncio, "sleep", fake)
    return fake
