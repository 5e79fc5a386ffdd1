"""The sms.cn page in the real Airflow 3 UI (issue 11): headless Chromium against ``airflow standalone``.

The example DAGs run first (REST API triggers, the sandbox answers); then the page, reached from
the UI's own navigation, shows their calls, the balance line with the check's threshold, the
recent calls with masked numbers and links to their runs, and a sensor waiting while the sandbox
holds its reports back. Its JSON endpoint refuses a request without a login.
Screenshots of each view go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import json
import time
import urllib.parse
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect

from tests.support.ui_stack import SMS_PASSWORD, SMS_SECRET_KEY, SMS_UID, http_json, tail, task_log_summary

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import FrameLocator, Page

    from tests.support.ui_stack import UiStack

pytestmark = pytest.mark.ui

SEND_DAG = "smscn_send_and_wait"
BALANCE_DAG = "smscn_balance_alert"
SEND_NUMBERS = ["13900008888", "13900008889", "13900008890"]  # the example DAG's numbers
RUN_TIMEOUT = 150.0


def ensure_connection(stack: UiStack) -> None:
    status, _ = stack.airflow.api("GET", "/api/v2/connections/smscn_default")
    if status == 200:
        return
    status, body = stack.airflow.api("POST", "/api/v2/connections", {
        "connection_id": "smscn_default", "conn_type": "smscn", "login": SMS_UID, "password": SMS_PASSWORD,
        "host": stack.sandbox.url, "extra": json.dumps({"secret_key": SMS_SECRET_KEY}),
    })
    assert status == 201, body


def trigger(stack: UiStack, dag_id: str) -> str:
    stack.airflow.wait_for_dag(dag_id)
    status, body = stack.airflow.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
    assert status == 200, body
    status, body = stack.airflow.api("POST", f"/api/v2/dags/{dag_id}/dagRuns", {"logical_date": None})
    assert status == 200, body
    return str(body["dag_run_id"])


def wait_run(stack: UiStack, dag_id: str, run_id: str, timeout: float = RUN_TIMEOUT) -> str:
    path = f"/api/v2/dags/{dag_id}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            status, body = stack.airflow.api("GET", path)
        except OSError:  # a busy standalone may miss one poll's 10 s timeout: poll again
            continue
        assert status == 200, body
        if body["state"] in ("success", "failed"):
            return str(body["state"])
        time.sleep(2)
    pytest.fail(f"{dag_id} run {run_id} not finished in {timeout:.0f} s\n"
                f"{task_log_summary(stack.home, dag_id, run_id)}\n{tail(stack.airflow.log, 40)}")


def control(stack: UiStack, method: str, path: str, body: Any = None) -> Any:
    status, reply = http_json(method, stack.sandbox.control_url + path, body)
    assert status == 200, reply
    return reply


def page_frame(page: Page, base: str) -> FrameLocator:
    """Open the UI, follow its "sms.cn" navigation entry, and return the page's frame once drawn."""
    page.goto(base + "/")
    page.get_by_role("link", name="sms.cn").first.click()
    page.wait_for_url("**/plugin/smscn")
    frame = page.frame_locator("iframe").first
    expect(frame.locator("body[data-ready=true]")).to_have_count(1, timeout=30_000)
    return frame


@pytest.fixture(scope="module")
def example_runs(ui_stack: UiStack) -> dict[str, str]:
    """The example DAGs ran: a send-and-wait of three numbers, two balance checks."""
    ensure_connection(ui_stack)
    runs = {}
    for dag_id in (SEND_DAG, BALANCE_DAG):
        run_id = trigger(ui_stack, dag_id)
        state = wait_run(ui_stack, dag_id, run_id)
        assert state == "success", task_log_summary(ui_stack.home, dag_id, run_id)
        runs[dag_id] = run_id
    run_id = trigger(ui_stack, BALANCE_DAG)  # a second reading: the balance history is a line
    assert wait_run(ui_stack, BALANCE_DAG, run_id) == "success"
    return runs


def test_page_endpoints_refuse_anonymous(ui_stack: UiStack, example_runs: dict[str, str]) -> None:
    """The deployment requires a login: without a token the page and its data answer 401."""
    base = ui_stack.airflow.base_url
    for path in ("/smscn/api/page", "/smscn/api/page?window=7d", "/smscn/"):
        status, body = http_json("GET", base + path)
        assert status == 401, (path, status, body)
        assert "13900008888" not in json.dumps(body)
    status, body = http_json("GET", base + "/smscn/api/page", token=ui_stack.airflow.token())
    assert status == 200, body
    assert body["totals"], body
    status, body = http_json("GET", base + "/smscn/api/page?window=2y", token=ui_stack.airflow.token())
    assert status == 400, body


def test_page_shows_example_calls_and_balance(
    page: Page, ui_stack: UiStack, artifacts: Path, example_runs: dict[str, str]
) -> None:
    """The sms.cn entry of the UI shows the example DAGs' calls, deliveries, balance line and runs."""
    base = ui_stack.airflow.base_url
    with page.expect_response(lambda r: "/smscn/api/page" in r.url) as reply:
        frame = page_frame(page, base)
    data = reply.value.json()
    page.wait_for_timeout(300)
    page.screenshot(path=str(artifacts / "20-smscn-page-in-ui.png"))

    # totals: three calls placed and delivered by the send DAG
    expect(frame.locator("#kpi-placed")).to_have_text("3")
    expect(frame.locator("#kpi-delivered")).to_have_text("3")
    expect(frame.locator("#kpi-undelivered")).to_have_text("0")
    expect(frame.locator("#kpi-rate")).to_have_text("100.0 %")
    assert sum(sum(s["placed"]) for s in data["series"].values()) == 3, data["series"]
    assert sum(t["lags"][i] for t in data["totals"].values() for i in range(len(t["lags"]))) == 3

    # balance: two readings of the balance check, its threshold 1000 named
    readings = data["balance"]["readings"]
    assert [r["dag_id"] for r in readings].count(BALANCE_DAG) >= 2, readings  # +1 scheduled run (@hourly)
    assert {(t["dag_id"], t["task_id"], t["threshold"]) for t in data["balance"]["thresholds"]} == {
        (BALANCE_DAG, "check_balance", 1000)}
    expect(frame.locator("#kpi-balance")).not_to_have_text("–")
    expect(frame.locator("#balance-note")).to_contain_text("reading(s) in this window")

    # recent calls: masked numbers, message ids, the result's meaning, a link to the run
    recent = frame.locator("#recent tbody tr")
    expect(recent).to_have_count(3)
    for number in SEND_NUMBERS:
        expect(frame.locator("#recent")).to_contain_text(f"{number[:3]}****{number[-4:]}")
    expect(frame.locator("#recent")).to_contain_text("delivered")
    send_run = example_runs[SEND_DAG]
    link = recent.first.get_by_role("link", name=f"{SEND_DAG} › send_voice_code")
    run_href = f"/smscn/../dags/{SEND_DAG}/runs/{urllib.parse.quote(send_run, safe='')}"
    expect(link).to_have_attribute("href", run_href)
    expect(frame.locator("#pulls")).to_contain_text(SMS_UID)

    # no full number anywhere: not in the data, not in the page
    html = frame.locator("html").inner_html()
    for number in SEND_NUMBERS:
        assert number not in html and number not in json.dumps(data)
    for secret in (SMS_PASSWORD, SMS_SECRET_KEY):
        assert secret not in html and secret not in json.dumps(data)

    for name, selector in (("21-smscn-kpis", ".kpis"),
                           ("22-smscn-calls-over-time", "section:has(#chart-calls)"),
                           ("23-smscn-send-to-report", "section:has(#chart-lag)"),
                           ("24-smscn-balance-history", "section:has(#chart-balance)"),
                           ("25-smscn-recent-calls", "section:has(#recent)")):
        frame.locator(selector).screenshot(path=str(artifacts / f"{name}.png"))

    # the link opens the run in the UI
    link.click()
    page.wait_for_url(f"**/dags/{SEND_DAG}/runs/**")
    expect(page.get_by_test_id("header-card").get_by_test_id("state-badge")).to_have_text("Success")

    # the page on its own (same session cookie), the whole of it
    page.goto(base + "/smscn/")
    expect(page.locator("body[data-ready=true]")).to_have_count(1, timeout=30_000)
    page.screenshot(path=str(artifacts / "26-smscn-page-full.png"), full_page=True)


def test_page_shows_a_waiter_and_the_last_pull(page: Page, ui_stack: UiStack, artifacts: Path,
                                               example_runs: dict[str, str]) -> None:
    """While the sandbox holds reports back, the delivery sensor shows as waiting; then it finishes."""
    base = ui_stack.airflow.base_url
    control(ui_stack, "POST", "faults", {"kind": "stat", "code": 103, "action": "status"})
    try:
        run_id = trigger(ui_stack, SEND_DAG)
        frame = page_frame(page, base)
        waiters = frame.locator("#waiters tbody")
        deadline = time.monotonic() + 90
        while "wait_for_delivery" not in waiters.inner_text() and time.monotonic() < deadline:
            page.wait_for_timeout(1000)
            frame.locator("#windows button[data-window='1h']").click()  # reloads the data
        expect(waiters).to_contain_text(f"{SEND_DAG} › wait_for_delivery")
        expect(waiters).to_contain_text(run_id)
        expect(frame.locator("#pulls")).to_contain_text("pulling")
        frame.locator("section:has(#pulls)").screenshot(path=str(artifacts / "27-smscn-pulls.png"))
        frame.locator("section:has(#waiters)").screenshot(path=str(artifacts / "28-smscn-waiters.png"))
    finally:
        control(ui_stack, "DELETE", "faults")
    assert wait_run(ui_stack, SEND_DAG, run_id) == "success"
