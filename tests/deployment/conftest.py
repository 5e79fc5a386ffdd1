"""The deployment fixture: the whole CeleryExecutor stack, stopped (every process) whatever happens."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from tests.support.deploy_stack import Deployment, start

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deployment: starts a real CeleryExecutor deployment (minutes)")


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    dep = start(tmp_path / "deploy")
    try:
        yield dep
    finally:
        dep.stop()
