"""The event-driven examples in real Airflow: ``airflow standalone`` (its own triggerer) on loopback.

One module-scoped stack (sandbox + standalone) runs, in order: undelivered calls starting the
retry DAG through the asset watcher (each report once, a retry placed once, tickets for the
rest), the balance crossing starting the top-up reminder once per fall, and a deadline alert
whose async callback places one voice call in the triggerer without any report being lost.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import pytest

from tests.support.ui_stack import (
    SMS_PASSWORD,
    SMS_SECRET_KEY,
    SMS_UID,
    SandboxProcess,
    UiStack,
    http_json,
    running_stack,
    tail,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

pytestmark = pytest.mark.airflow3_only

RETRY_DAG, TOPUP_DAG, DEADLINE_DAG, FORM_DAG = ("smscn_undelivered_retry", "smscn_topup_reminder",
                                                "smscn_deadline_call", "smscn_trigger_form")
EMPTY, OFF, GOOD, ONCALL = "13900000131", "13900000133", "13900008888", "13900007777"


class Stack(UiStack):
    def control(self, method: str, path: str, body: Any = None) -> Any:
        status, reply = http_json(method, self.sandbox.control_url + path, body)
        assert status == 200, f"sandbox {path} answered {status}: {reply}"
        return reply

    def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """A REST call with a long timeout: standalone on SQLite answers slowly on a loaded machine."""
        return http_json(method, self.airflow.base_url + path, body, token=self.airflow.token(), timeout=60)

    def runs(self, dag_id: str) -> list[dict[str, Any]]:
        status, body = self.api("GET", f"/api/v2/dags/{dag_id}/dagRuns?order_by=run_after")
        assert status == 200, body
        return list(body["dag_runs"])

    def asset_events(self, asset_name: str) -> list[dict[str, Any]]:
        status, body = self.api("GET", "/api/v2/assets/events?limit=100&order_by=timestamp")
        assert status == 200, body
        return [e for e in body["asset_events"] if e.get("name") == asset_name
                or (e.get("uri") or "").endswith(asset_name)]

    def unpause(self, dag_id: str) -> None:
        self.airflow.wait_for_dag(dag_id, timeout=180)
        status, body = self.api("PATCH", f"/api/v2/dags/{dag_id}", {"is_paused": False})
        assert status == 200, body


def wait_until(what: str, check: Callable[[], Any], timeout: float, stack: Stack) -> Any:
    """Poll ``check`` (bounded) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            value = check()
        except TimeoutError:  # a slow answer is not an answer yet
            value = None
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"{what}: not within {timeout:.0f} s\n{tail(stack.airflow.log, 60)}")


def _accounts_and_connection(sandbox: SandboxProcess) -> dict[str, str]:
    """The account's numbers that fail (empty, switched off); the connection standalone uses."""
    status, reply = http_json("POST", sandbox.control_url + "accounts", {
        "uid": SMS_UID, "outcome_by_mobile": {EMPTY: 131, OFF: 133}})
    assert status == 200, reply
    conn = {"conn_type": "smscn", "login": SMS_UID, "password": SMS_PASSWORD, "host": sandbox.url,
            "extra": {"secret_key": SMS_SECRET_KEY}}
    return {"AIRFLOW_CONN_SMSCN_DEFAULT": json.dumps(conn)}


@pytest.fixture(scope="module")
def stack() -> Iterator[Stack]:
    with running_stack("smscn-events-home-", _accounts_and_connection) as running:
        yield Stack(running.home, running.sandbox, running.airflow)


def _succeeded(stack: Stack, dag_id: str, count: int) -> list[dict[str, Any]] | None:
    runs = stack.runs(dag_id)
    failed = [r for r in runs if r["state"] == "failed"]
    assert not failed, f"{dag_id} run failed: {failed}\n{tail(stack.airflow.log, 40)}"
    done = [r for r in runs if r["state"] == "success"]
    return done if len(done) >= count else None


def test_undelivered_calls_start_the_retry_dag_once_per_report(stack: Stack) -> None:
    stack.unpause(RETRY_DAG)
    stack.unpause(FORM_DAG)
    time.sleep(8)  # the watcher starts in the triggerer and sets its cursor at the end of the ledger
    status, body = stack.api("POST", f"/api/v2/dags/{FORM_DAG}/dagRuns", {
        "logical_date": None, "conf": {"mobiles": f"{EMPTY},{OFF},{GOOD}", "wait": False}})
    assert status == 200, body
    form_run = body["dag_run_id"]
    # run 1: the two undelivered first calls; run 2: the retry to OFF, undelivered again -> ticket
    wait_until("two runs of the retry DAG", lambda: _succeeded(stack, RETRY_DAG, 2), 240, stack)
    time.sleep(6)  # anything emitted twice would start a third run by now
    assert len(stack.runs(RETRY_DAG)) == 2

    calls = stack.control("GET", "calls")["calls"]
    assert [c["mobile"] for c in calls].count(OFF) == 2  # the first call and exactly one retry
    assert [c["mobile"] for c in calls].count(EMPTY) == 1  # an empty number is never called again
    undelivered = {c["mobileid"] for c in calls if c["resultcode"] != 100}

    events = stack.asset_events("smscn_undelivered_calls")
    reported = [r for e in events for r in e["extra"]["payload"]["reports"]]
    assert sorted(r["mobileid"] for r in reported) == sorted(undelivered)  # each exactly once
    assert all("****" in r["mobile"] for r in reported)
    first = {r["mobileid"]: r for r in reported if r["sent_by"] and r["sent_by"]["dag_id"] == FORM_DAG}
    assert len(first) == 2 and all(r["sent_by"] == {"dag_id": FORM_DAG, "task_id": "send_voice_code",
                                                    "run_id": form_run} for r in first.values())
    assert {r["resultcode"] for r in reported} == {131, 133}
    assert {r["meaning"] for r in reported} >= {"empty number"} or all(r["meaning"] for r in reported)

    tickets = [json.loads(line) for line in (stack.home / "smscn_tickets.jsonl").read_text().splitlines()]
    assert sorted(t["resultcode"] for t in tickets) == [131, 133]  # the empty number, the failed retry
    assert all(t["mobile"].startswith("139****") for t in tickets)
    assert next(t for t in tickets if t["resultcode"] == 133)["sent_by"]["dag_id"] == RETRY_DAG


def test_low_balance_starts_the_reminder_once_per_fall(stack: Stack) -> None:
    stack.unpause(TOPUP_DAG)
    time.sleep(10)  # a few checks while the balance is high: no event
    assert stack.runs(TOPUP_DAG) == []
    stack.control("POST", "accounts", {"uid": SMS_UID, "balance": 500})
    wait_until("a reminder run", lambda: _succeeded(stack, TOPUP_DAG, 1), 120, stack)
    stack.control("POST", "accounts", {"uid": SMS_UID, "balance": 450})
    time.sleep(15)  # still low through several checks: no second event
    assert len(stack.runs(TOPUP_DAG)) == 1
    stack.control("POST", "accounts", {"uid": SMS_UID, "balance": 5000})
    time.sleep(15)  # topped up: seen above the threshold again
    stack.control("POST", "accounts", {"uid": SMS_UID, "balance": 400})
    wait_until("a second reminder run", lambda: _succeeded(stack, TOPUP_DAG, 2), 120, stack)
    reminders = [json.loads(line) for line in
                 (stack.home / "smscn_topup_reminders.jsonl").read_text().splitlines()]
    assert [r["balance"] for r in reminders] == [500, 400]
    assert len(stack.asset_events("smscn_low_balance")) == 2


def test_a_missed_deadline_places_one_call_and_loses_no_report(stack: Stack) -> None:
    stack.control("POST", "accounts", {"uid": SMS_UID, "balance": 100000})
    stack.unpause(DEADLINE_DAG)
    before = len(stack.control("GET", "calls")["calls"])
    status, body = stack.api("POST", f"/api/v2/dags/{DEADLINE_DAG}/dagRuns", {"logical_date": None})
    assert status == 200, body

    def oncall_calls() -> list[dict[str, Any]]:
        return [c for c in stack.control("GET", "calls")["calls"] if c["mobile"] == ONCALL]

    wait_until("the deadline call", oncall_calls, 150, stack)
    wait_until("the late run to finish", lambda: _succeeded(stack, DEADLINE_DAG, 1), 150, stack)
    assert len(oncall_calls()) == 1
    assert len(stack.control("GET", "calls")["calls"]) == before + 1

    # Every call's report reached the ledger (the watcher pulls under the shared lease): none lost.
    from airflow_provider_smscn.ledger import SmsCnLedger

    calls = stack.control("GET", "calls")["calls"]
    wait_until("every report pulled", lambda: stack.control("GET", "stats")["reports_pending"] == 0,
               60, stack)
    ledger = SmsCnLedger(f"sqlite:///{stack.home}/ledger.db")
    try:
        from airflow_provider_smscn.client import SmsCnClient

        account = SmsCnClient(SMS_UID, password=SMS_PASSWORD, base_url=stack.sandbox.url).account_key
        kept = ledger.get_reports(account, [c["mobileid"] for c in calls])
    finally:
        ledger.dispose()
    assert sorted(kept) == sorted(c["mobileid"] for c in calls)
    # the deadline call was delivered: it started no retry run
    assert len(stack.runs(RETRY_DAG)) == 2
