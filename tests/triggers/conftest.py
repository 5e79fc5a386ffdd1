"""Shared by the trigger tests: ``asyncio.sleep`` counted, never slept."""

from __future__ import annotations

import pytest

from tests.support.fake_sleep import Sleeps, fake_asyncio_sleep


@pytest.fixture
def sleeps(monkeypatch: pytest.MonkeyPatch) -> Sleeps:
    return fake_asyncio_sleep(monkeypatch)
