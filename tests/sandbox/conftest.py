from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_smscn.sandbox import Sandbox
from airflow_provider_smscn.sandbox.accounts import example_account

if TYPE_CHECKING:
    from collections.abc import Iterator


@pytest.fixture
def sandbox() -> Iterator[Sandbox]:
    """The document's example account, reports ready at once, no rate limit (tests send in bursts)."""
    with Sandbox(accounts=[example_account(rate_limit_per_second=None)], report_delay=0, seed=7) as box:
        yield box


@pytest.fixture
def url(sandbox: Sandbox) -> str:
    return sandbox.url
