"""End to end in the real Airflow 3 UI (issue 5, part 3): headless Chromium against ``airflow standalone``.

1. Admin → Connections → Add Connection, type "sms.cn Voice": our relabelled and extra fields show,
   secrets are password inputs; the connection is saved and its Test button reports the balance.
2. The ``smscn_trigger_form`` DAG is triggered through its Params form; the run succeeds and the
   sandbox placed the call.
3. Secrets never reach the browser (edit view), numbers and codes are masked in rendered fields.

Screenshots of every step go to ``test-artifacts/ui/``.
"""

from __future__ import annotations

import json
import re
import time
import urllib.parse
import warnings
from typing import TYPE_CHECKING, Any

import pytest
from playwright.sync_api import expect

from tests.support.ui_stack import SMS_PASSWORD, SMS_SECRET_KEY, SMS_TEMPLATE, SMS_UID, tail, task_log_summary

if TYPE_CHECKING:
    from pathlib import Path

    from playwright.sync_api import Locator, Page, Request, Response, Route

    from tests.support.ui_stack import UiStack

pytestmark = pytest.mark.ui

CONN_ID = "smscn_default"
DAG_ID = "smscn_trigger_form"
MOBILE = "13900008888"
MOBILE_MASKED = "139****8888"
CODE = "246810"  # differs from the form's default, so the call proves the form value went through
RUN_TIMEOUT = 150.0
INPUT_VALUES_JS = "() => Array.from(document.querySelectorAll('input, textarea'), e => e.value)"


# --------------------------------------------------------------------------------------- helpers
def field(scope: Locator, label: str) -> Locator:
    """The form field (role=group) whose label reads ``label`` (an optional required ``*`` ignored).

    Airflow 3.3 renders custom fields with a label whose ``for`` does not match the input's id,
    so ``get_by_label`` cannot find them; the field group is reliable for standard and custom fields.
    """
    text = re.compile(rf"^\s*{re.escape(label)}\s*\*?\s*$")
    return scope.get_by_role("group").filter(has=scope.page.locator("label").filter(has_text=text))


def field_input(scope: Locator, label: str) -> Locator:
    """The text input (or textarea) of the field labelled ``label``."""
    return field(scope, label).locator("input:not([type=hidden]), textarea").first


def shot(page: Page, artifacts: Path, name: str, locator: Locator | None = None) -> None:
    """Screenshot the page (or one element) into ``test-artifacts/ui/<name>.png``."""
    path = str(artifacts / f"{name}.png")
    if locator is not None:
        locator.screenshot(path=path)
    else:
        page.screenshot(path=path, full_page=True)


def open_section(dialog: Locator, name: str) -> None:
    """Expand an accordion section of a dialog (Standard Fields, Extra Fields, ...) if it is closed."""
    trigger = dialog.get_by_role("button", name=name, exact=True)
    if trigger.get_attribute("aria-expanded") != "true":
        trigger.click()
    expect(trigger).to_have_attribute("aria-expanded", "true")


def paste_into_editor(page: Page, editor: Locator, text: str) -> None:
    """Replace the content of a Monaco editor by pasting ``text``.

    Typing is unreliable there: the editor auto-closes quotes and braces and the Params form
    reformats the JSON after every valid keystroke, moving the cursor.
    """
    page.evaluate("text => navigator.clipboard.writeText(text)", text)
    editor.locator(".view-lines").click()
    page.keyboard.press("Control+A")
    page.keyboard.press("Control+V")


def _drop_zero_port(route: Route, request: Request) -> None:
    """Send the UI's connection test without the ``port: 0`` it derives from a missing port."""
    body = json.loads(request.post_data or "{}")
    if body.get("port") == 0:
        body.pop("port")
    route.continue_(post_data=json.dumps(body))


def press_test_connection(page: Page, row: Locator) -> Response:
    """Press the row's Test Connection button; returns the ``POST /api/v2/connections/test`` reply."""
    with page.expect_response(
        lambda r: r.url.endswith("/api/v2/connections/test") and r.request.method == "POST", timeout=30_000
    ) as reply:
        row.get_by_role("button", name="Test Connection").click()
    return reply.value


def ensure_connection(stack: UiStack) -> None:
    """Create ``smscn_default`` through the REST API unless the connection test already saved it."""
    status, _ = stack.airflow.api("GET", f"/api/v2/connections/{CONN_ID}")
    if status == 200:
        return
    status, body = stack.airflow.api(
        "POST",
        "/api/v2/connections",
        {
            "connection_id": CONN_ID,
            "conn_type": "smscn",
            "login": SMS_UID,
            "password": SMS_PASSWORD,
            "host": stack.sandbox.url,
            "extra": json.dumps({"secret_key": SMS_SECRET_KEY}),
        },
    )
    assert status == 201, f"creating {CONN_ID} answered {status}: {body}"


def wait_for_run(stack: UiStack, run_id: str, timeout: float = RUN_TIMEOUT) -> dict[str, Any]:
    """Poll the REST API (bounded) until the run is finished; returns the run."""
    path = f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        status, body = stack.airflow.api("GET", path)
        assert status == 200, f"GET {path} answered {status}: {body}"
        run = body
        if run["state"] in ("success", "failed"):
            return run
        time.sleep(2)
    pytest.fail(
        f"run {run_id} not finished within {timeout:.0f} s (state {run.get('state')})\n"
        f"{task_log_summary(stack.home, DAG_ID, run_id)}\n{tail(stack.airflow.log, 40)}"
    )


# ----------------------------------------------------------------------------------------- tests
def test_connection_form_test_and_save(page: Page, ui_stack: UiStack, artifacts: Path) -> None:
    """Add an sms.cn connection through the form, save it, test it, and see no secret in the edit view."""
    base = ui_stack.airflow.base_url
    page.goto(base + "/")

    # Admin → Connections → Add Connection
    page.get_by_role("button", name="Admin").click()
    page.get_by_role("menuitem", name="Connections").click()
    page.wait_for_url("**/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Add Connection")).to_be_visible()
    shot(page, artifacts, "01-add-connection-empty")

    # connection type "sms.cn Voice" (conn_type smscn)
    conn_type = dialog.get_by_role("combobox", name="Connection Type")
    conn_type.fill("sms.cn")
    page.get_by_role("option", name="sms.cn Voice", exact=True).click()
    expect(dialog.get_by_text("sms.cn Voice", exact=True)).to_be_visible()

    # standard fields: relabelled, with our placeholders; port and schema hidden
    open_section(dialog, "Standard Fields")
    for label in ("API URL", "UID", "Login password"):
        expect(field_input(dialog, label)).to_be_visible()
    for hidden in ("Port", "Schema", "Host", "Login", "Password"):
        expect(field(dialog, hidden)).to_have_count(0)
    expect(field_input(dialog, "Login password")).to_have_attribute("type", "password")
    expect(field_input(dialog, "UID")).to_have_attribute("placeholder", re.compile("uid"))
    shot(page, artifacts, "02-smscn-standard-fields", dialog)

    field_input(dialog, "Connection ID").fill(CONN_ID)
    field_input(dialog, "UID").fill(SMS_UID)
    field_input(dialog, "Login password").fill(SMS_PASSWORD)
    field_input(dialog, "API URL").fill(ui_stack.sandbox.url)

    # extra fields from conn-fields: secrets masked, enums as selects with their defaults
    open_section(dialog, "Extra Fields")
    for label in ("API password", "Secret key"):
        expect(field_input(dialog, label)).to_be_visible()
        expect(field_input(dialog, label)).to_have_attribute("type", "password")
    expect(field(dialog, "Reply format")).to_be_visible()
    expect(field(dialog, "Reply format").get_by_role("combobox")).to_be_visible()
    expect(field(dialog, "Reply format")).to_contain_text("json")
    for label in ("Request encoding", "Message language", "Timeout (seconds)", "Numbers per request",
                  "HTTP method"):
        expect(field(dialog, label)).to_be_visible()
    field_input(dialog, "Secret key").fill(SMS_SECRET_KEY)
    shot(page, artifacts, "03-smscn-extra-fields-filled", dialog)

    # Save: the dialog closes and the list shows the connection
    dialog.get_by_role("button", name="Save").click()
    expect(dialog).to_have_count(0)
    row = page.get_by_role("row").filter(has_text=CONN_ID)
    expect(row).to_have_count(1)
    expect(row).to_contain_text("smscn")
    expect(row).to_contain_text(ui_stack.sandbox.url)
    shot(page, artifacts, "04-connection-saved")
    status, stored = ui_stack.airflow.api("GET", f"/api/v2/connections/{CONN_ID}")
    assert status == 200, stored
    assert (stored["conn_type"], stored["login"], stored["host"]) == ("smscn", SMS_UID, ui_stack.sandbox.url)
    assert json.loads(stored["extra"])["secret_key"] == "***", stored["extra"]  # stored, and redacted

    # Test: in Airflow 3.3 the Test button sits on the list row (the dialog has none)
    reply = press_test_connection(page, row)
    if reply.status == 400 and "differs from the stored connection" in reply.text():
        # Airflow 3.3.2 bug, fixed upstream by apache/airflow#73298: the UI posts port 0
        # (Number(null)) for a connection without a port, and the API takes 0 for another endpoint
        # and refuses to test with the stored (masked) secrets. Send the body as the fixed API
        # would read it, and test again.
        shot(page, artifacts, "05a-test-refused-airflow-port-bug")
        warnings.warn(
            "Airflow UI Test Connection sent port 0 for a portless connection (apache/airflow#73298); "
            "retested without it",
            stacklevel=1,
        )
        page.route("**/api/v2/connections/test", _drop_zero_port)
        reply = press_test_connection(page, row)
    result = reply.json()
    assert reply.status == 200, f"connection test answered {reply.status}: {result}"
    assert result["status"] is True, result
    assert "balance" in result["message"], result
    toast = page.get_by_role("status").filter(has_text="Test Connection Successful")
    expect(toast).to_be_visible()
    expect(toast).to_contain_text("balance")
    page.wait_for_timeout(600)  # let the toast finish sliding in
    shot(page, artifacts, "05-test-connection-success")
    page.unroute("**/api/v2/connections/test")

    # the edit view never carries the login password or the secret key
    row.get_by_role("button", name="Edit Connection").click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name="Edit Connection")).to_be_visible()
    seen: list[str] = []  # the sections open one at a time: collect each one's HTML and input values
    for number, section in enumerate(("Standard Fields", "Extra Fields", "Extra Fields JSON")):
        open_section(dialog, section)
        if section == "Standard Fields":
            expect(field_input(dialog, "UID")).to_have_value(SMS_UID)
        if section == "Extra Fields JSON":
            json_region = dialog.get_by_role("region", name="Extra Fields JSON")
            expect(json_region.get_by_text("Redacted fields", exact=False)).to_be_visible()
            expect(json_region).to_contain_text('"secret_key": "***"')
        seen.append(page.content())
        seen.extend(page.evaluate(INPUT_VALUES_JS))
        slug = section.lower().replace(" ", "-")
        shot(page, artifacts, f"06{'abc'[number]}-edit-connection-{slug}", dialog)
    for secret in (SMS_PASSWORD, SMS_SECRET_KEY):
        assert not any(secret in text for text in seen), "a secret reached the edit view"
    dialog.get_by_role("button", name="Close").click()


def test_trigger_form_run_succeeds_and_masks(page: Page, ui_stack: UiStack, artifacts: Path) -> None:
    """Trigger the Params form DAG in the UI: the run succeeds, the call is placed, fields are masked."""
    ensure_connection(ui_stack)  # normally saved through the form by the test above
    base = ui_stack.airflow.base_url
    ui_stack.airflow.wait_for_dag(DAG_ID)
    calls_before = len(ui_stack.sandbox.calls())

    # Dags → smscn_trigger_form
    page.goto(base + "/")
    page.get_by_role("link", name="Dags", exact=True).click()
    page.get_by_role("link", name=DAG_ID, exact=True).first.click()
    page.wait_for_url(f"**/dags/{DAG_ID}**")
    trigger = page.get_by_role("button", name="Trigger Dag")
    expect(trigger).to_have_count(1)  # the list has one per DAG: wait for the DAG's own page
    expect(page.get_by_role("link", name="Overview", exact=True)).to_be_visible()
    shot(page, artifacts, "10-dag")

    # Trigger → the Params form
    trigger.click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_role("heading", name=re.compile(f"Trigger Dag.*{DAG_ID}"))).to_be_visible()
    unpause = dialog.get_by_role("checkbox", name=re.compile(f"Unpause {DAG_ID}"))
    if unpause.count():
        unpause.check()  # the DAG starts paused; the form unpauses it on trigger
    open_section(dialog, "Run Parameters")
    field_input(dialog, "Numbers").fill(MOBILE)
    expect(field_input(dialog, "Template id")).to_have_value(SMS_TEMPLATE)
    variables = field(dialog, "Template variables")
    paste_into_editor(page, variables, json.dumps({"code": CODE}))
    expect(variables.locator(".view-lines")).to_contain_text(CODE)
    wait_switch = field(dialog, "Wait for delivery").get_by_role("checkbox")
    wait_switch.check()
    expect(wait_switch).to_be_checked()
    shot(page, artifacts, "11-trigger-form-filled", dialog)

    with page.expect_response(
        lambda r: r.url.endswith(f"/api/v2/dags/{DAG_ID}/dagRuns") and r.request.method == "POST"
    ) as reply:
        dialog.get_by_role("button", name="Trigger", exact=True).click()
    assert reply.value.status == 200, reply.value.text()
    created = reply.value.json()
    run_id = created["dag_run_id"]
    assert created["conf"] == {"mobiles": MOBILE, "template_id": SMS_TEMPLATE,
                               "variables": {"code": CODE}, "wait": True}

    # the run succeeds (REST poll, bounded), and the run page says so
    run = wait_for_run(ui_stack, run_id)
    assert run["state"] == "success", (
        f"run {run_id} ended {run['state']}\n{task_log_summary(ui_stack.home, DAG_ID, run_id)}"
    )
    page.goto(f"{base}/dags/{DAG_ID}/runs/{urllib.parse.quote(run_id, safe='')}")
    header = page.get_by_test_id("header-card")
    expect(header.get_by_test_id("state-badge")).to_have_text("Success", timeout=30_000)
    for task_id in ("send_voice_code", "wait_requested", "wait_for_delivery"):
        expect(page.get_by_role("row").filter(has_text=task_id).get_by_test_id("state-badge")).to_have_text(
            "Success", timeout=15_000
        )
    shot(page, artifacts, "12-run-success")

    # the sandbox placed exactly one call, to that number, with the form's template and code
    new_calls = ui_stack.sandbox.calls()[calls_before:]
    assert [(c["mobile"], str(c["template"]), c["variables"]) for c in new_calls] == [
        (MOBILE, SMS_TEMPLATE, {"code": CODE})
    ], new_calls

    # rendered template fields: number masked, variables hidden (REST and the UI's Rendered Templates)
    run_path = f"/api/v2/dags/{DAG_ID}/dagRuns/{urllib.parse.quote(run_id, safe='')}"
    status, ti = ui_stack.airflow.api("GET", f"{run_path}/taskInstances/send_voice_code")
    assert status == 200, ti
    rendered = ti["rendered_fields"]
    assert rendered["mobiles"] == MOBILE_MASKED, rendered
    assert rendered["template_id"] == SMS_TEMPLATE, rendered
    assert rendered["variables"] in ("***", {"code": "***"}), rendered
    assert MOBILE not in json.dumps(rendered) and CODE not in json.dumps(rendered), rendered

    # the task logs carry the masked number only, never the number or the code
    for task_id in ("send_voice_code", "wait_for_delivery"):
        log_path = f"{run_path}/taskInstances/{task_id}/logs/1?full_content=true"
        status, log = ui_stack.airflow.api("GET", log_path)
        assert status == 200, log
        text = json.dumps(log)
        assert MOBILE not in text and CODE not in text, f"{task_id} log shows the number or the code"
        if task_id == "send_voice_code":
            assert MOBILE_MASKED in text, f"{task_id} log does not name the masked number: {text[-2000:]}"

    send_row = page.get_by_role("row").filter(has_text="send_voice_code")
    send_row.get_by_role("link", name="send_voice_code").click()
    page.get_by_role("link", name="Rendered Templates").click()
    page.wait_for_url("**/rendered_templates")
    main = page.locator("#details-panel")
    expect(main).to_contain_text(MOBILE_MASKED)
    expect(main).to_contain_text("***")
    assert MOBILE not in page.content() and CODE not in page.content()
    shot(page, artifacts, "13-rendered-templates-masked")
