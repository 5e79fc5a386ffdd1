"""Fixtures of the UI test: sandbox + ``airflow standalone`` per module, a logged-in headless Chromium.

Nothing here skips: a missing Chromium, Playwright or a standalone that does not come up fails the test.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.ui_stack import (
    ADMIN_USER,
    ARTIFACTS,
    CHROMIUM,
    CHROMIUM_ARGS,
    UiStack,
    running_stack,
    tail,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from playwright.sync_api import BrowserContext, Page, Playwright


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep each phase's report on the item, so fixtures can tell a failed test at teardown."""
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report


@pytest.fixture(scope="module")
def artifacts() -> Path:
    """``test-artifacts/ui/`` at the repo root, emptied of the previous run's screenshots."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTIFACTS.glob("*.png"):
        old.unlink()
    return ARTIFACTS


@pytest.fixture(scope="module")
def ui_stack() -> Iterator[UiStack]:
    """The sandbox and ``airflow standalone`` (SQLite) in a fresh AIRFLOW_HOME, torn down after."""
    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: install Debian's chromium package"
    with running_stack("smscn-ui-home-") as stack:
        yield stack


@pytest.fixture(scope="module")
def playwright_driver() -> Iterator[Playwright]:
    """Playwright's sync driver (no bundled browsers are used)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(
    ui_stack: UiStack,
    playwright_driver: Playwright,
    artifacts: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[BrowserContext]:
    """Debian's headless Chromium with a new profile, logged in as admin through the real login page."""
    context = playwright_driver.chromium.launch_persistent_context(
        str(tmp_path_factory.mktemp("chromium-profile")),
        executable_path=CHROMIUM,
        args=CHROMIUM_ARGS,
        headless=True,
        viewport={"width": 1400, "height": 1000},
    )
    try:
        context.set_default_timeout(20_000)
        base = ui_stack.airflow.base_url
        # the Params form's JSON editor (Monaco) is filled by pasting, as a user would
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
        page = context.new_page()
        page.goto(base + "/", timeout=60_000)
        page.wait_for_url("**/auth/login**", timeout=30_000)
        page.get_by_label("Username").fill(ADMIN_USER)
        page.get_by_label("Password").fill(ui_stack.airflow.admin_password)
        page.screenshot(path=str(artifacts / "00-login.png"))
        page.get_by_role("button", name="Sign in").click()
        page.wait_for_url(base + "/", timeout=30_000)
        assert any(c["name"] == "_token" for c in context.cookies()), "no _token cookie after login"
        page.close()
        yield context
    finally:
        context.close()


@pytest.fixture
def page(
    browser: BrowserContext, ui_stack: UiStack, artifacts: Path, request: pytest.FixtureRequest
) -> Iterator[Page]:
    """A fresh tab; on failure a full-page screenshot and the standalone log tail are kept."""
    tab = browser.new_page()
    yield tab
    report = getattr(request.node, "rep_call", None)
    if report is not None and report.failed:
        try:
            tab.screenshot(path=str(artifacts / f"FAILED-{request.node.name}.png"), full_page=True)
        except Exception as err:  # the page may be gone; the test's own error matters more
            print(f"no failure screenshot: {err}")
        print(f"--- standalone log tail ({ui_stack.airflow.log})\n{tail(ui_stack.airflow.log, 60)}")
    tab.close()
