"""Fixtures of the waiting tests (Airflow-free, as the delivery package is)."""

from __future__ import annotations

import pytest


@pytest.fixture
def short_busy_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite engines created from now on give up on a lock after 0.2 s instead of 30 s."""
    from airflow_provider_smscn.ledger import engine

    monkeypatch.setattr(engine, "SQLITE_BUSY_SECONDS", 0.2)  # the retry waits stay: the test counts them
