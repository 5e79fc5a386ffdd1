"""The deployment fixture: the whole CeleryExecutor stack, stopped (every process) whatever happens."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

if TYPE_CHECKING:
    from collections.abc import Iterator

    from deploy_stack import Deployment


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "deployment: starts a real CeleryExecutor deployment (minutes)")


@pytest.fixture
def deployment(tmp_path: Path) -> Iterator[Deployment]:
    import deploy_stack

    dep = deploy_stack.start(tmp_path / "deploy")
    try:
        yield dep
    finally:
        dep.stop()
