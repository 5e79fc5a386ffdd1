"""The sms.cn page's data, read from a real ledger (SQLite file), without Airflow."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from airflow_provider_smscn.client.models import DeliveryReport
from airflow_provider_smscn.ledger import SmsCnLedger
from airflow_provider_smscn.plugins import data

ACCOUNT = "test@127.0.0.1:8765/voice/"
OTHER = "other@127.0.0.1:8765/voice/"
NUMBERS = ["13900001111", "13900002222", "13900003333", "13900004444"]


@pytest.fixture
def ledger(tmp_path) -> SmsCnLedger:
    data.forget_caches()
    return SmsCnLedger(f"sqlite:///{tmp_path}/ledger.db")


def place(ledger: SmsCnLedger, account: str, idem_key: str, numbers: list[str], prefix: str) -> list[str]:
    """Claim ids for ``numbers`` and record the vendor's 100 for them, as a send does."""
    ids = [f"{prefix}{i}" for i in range(len(numbers))]
    ledger.claim_intents(account, idem_key, list(zip(ids, numbers, strict=True)), claimant="c1")
    ledger.mark_intents(account, ids, "accepted", code=100, claimant="c1")
    return ids


def report(mobileid: str, mobile: str, code: int) -> DeliveryReport:
    return DeliveryReport(mobile=mobile, mobileid=mobileid, resultcode=code, status="DELIVRD" if code == 100
                          else "UNDELIV", retime="2026-11-29 10:00:00")


def test_counts_rate_lag_and_recent_calls(ledger):
    """Placed, delivered, undelivered, rate, send-to-report classes; recent calls masked, with their run."""
    ids = place(ledger, ACCOUNT, "etl|send|manual__1|-1", NUMBERS[:3], "10")
    ledger.claim_intents(ACCOUNT, "etl|send|manual__1|-1", [("104", NUMBERS[3])], claimant="c1")
    ledger.mark_intents(ACCOUNT, ["104"], "rejected", code=102, claimant="c1")
    ledger.store_reports(ACCOUNT, [report(ids[0], NUMBERS[0], 100), report(ids[1], NUMBERS[1], 130)],
                         pull_id="p1")
    ledger.store_reports(ACCOUNT, [report(ids[2], NUMBERS[2], 100)], pull_id="p2")
    ledger.record_balance(ACCOUNT, 500, source="check", threshold=1000, dag_id="alerts", task_id="check")

    page = data.page_data(ledger, "1h")

    totals = page["totals"][ACCOUNT]
    assert (totals["placed"], totals["delivered"], totals["undelivered"]) == (3, 2, 1)
    assert totals["rate"] == pytest.approx(2 / 3)
    assert totals["lags"][0] == 3 and sum(totals["lags"]) == 3  # stored right after the send: < 5 s
    assert [(r["code"], r["meaning"], r["n"]) for r in totals["results"]] == [
        (100, "delivered", 2), (130, "failed", 1)]
    series = page["series"][ACCOUNT]
    assert (sum(series["placed"]), sum(series["delivered"]), sum(series["undelivered"])) == (3, 2, 1)
    assert len(page["times"]) == len(series["placed"]) and page["bucket_seconds"] == 300

    recent = {r["mobileid"]: r for r in page["recent"]}
    assert set(recent) == {*ids, "104"}
    assert recent[ids[1]]["mobile"] == "139****2222"
    assert (recent[ids[1]]["resultcode"], recent[ids[1]]["meaning"]) == (130, "failed")
    refused = recent["104"]
    assert (refused["state"], refused["stat"], refused["resultcode"]) == ("rejected", 102, None)
    origins = {(r["dag_id"], r["task_id"], r["run_id"]) for r in recent.values()}
    assert origins == {("etl", "send", "manual__1")}
    assert page["balance"]["thresholds"] == [
        {"account": ACCOUNT, "dag_id": "alerts", "task_id": "check", "threshold": 1000}]
    assert [r["balance"] for r in page["balance"]["readings"]] == [500]

    text = json.dumps(page)
    assert not any(number in text for number in NUMBERS), "a full number reached the page data"


def test_accounts_are_kept_apart_and_dags_filtered(ledger):
    """Per account totals; a viewer without access to a DAG sees neither its calls nor its readings."""
    place(ledger, ACCOUNT, "secret_dag|send|r1", NUMBERS[:2], "20")
    place(ledger, OTHER, "open_dag|send|r2", NUMBERS[2:3], "30")
    ledger.record_balance(ACCOUNT, 10, source="check", threshold=5, dag_id="secret_dag", task_id="t")
    ledger.record_balance(OTHER, 11, source="hook")

    page = data.page_data(ledger, "24h", dag_allowed=lambda dag: dag != "secret_dag")

    assert {a: t["placed"] for a, t in page["totals"].items()} == {ACCOUNT: 2, OTHER: 1}
    assert [r["dag_id"] for r in page["recent"]] == ["open_dag"]
    assert [r["account"] for r in page["balance"]["readings"]] == [OTHER]
    assert page["balance"]["thresholds"] == []


def test_frozen_buckets_are_counted_once_and_new_rows_still_show(ledger, monkeypatch):
    """A second load reads only the recent minutes from the tables; calls placed since then appear."""
    place(ledger, ACCOUNT, "d|t|r", NUMBERS[:2], "40")
    ranges: list[tuple[float, float]] = []
    real = data.aggregate

    def spy(conn: Any, start: float, end: float) -> data.Buckets:
        ranges.append((start, end))
        return real(conn, start, end)

    monkeypatch.setattr(data, "aggregate", spy)
    first = data.page_data(ledger, "30d")
    assert first["totals"][ACCOUNT]["placed"] == 2
    assert ranges[0][1] - ranges[0][0] > 29 * 86400  # the whole frozen span, once
    ranges.clear()
    place(ledger, ACCOUNT, "d|t|r2", NUMBERS[2:], "41")
    second = data.page_data(ledger, "30d")
    assert second["totals"][ACCOUNT]["placed"] == 4
    assert all(end - start <= 2 * data.BUCKET + data.FREEZE_MARGIN + 5 for start, end in ranges), ranges
    assert data.page_data(ledger, "1h")["totals"][ACCOUNT]["placed"] == 4  # a shorter window, same cache


def test_windows_and_idem_keys():
    with pytest.raises(ValueError, match="window must be one of"):
        data.page_data(SmsCnLedger("sqlite://"), "2y")
    assert data.parse_idem_key("dag|task|manual__2026|3") == {
        "dag_id": "dag", "task_id": "task", "run_id": "manual__2026", "map_index": 3}
    assert data.parse_idem_key("dag|task|scheduled__x") == {
        "dag_id": "dag", "task_id": "task", "run_id": "scheduled__x", "map_index": -1}
    assert data.parse_idem_key("my-own-key") == {}
    assert data.account_label(ACCOUNT) == "test @ 127.0.0.1:8765"


def test_every_page_query_is_index_backed(ledger):
    """SQLite's plan for each statement the page runs: no full scan of a ledger table."""
    from sqlalchemy import event

    place(ledger, ACCOUNT, "d|t|r", NUMBERS[:2], "50")
    ledger.store_reports(ACCOUNT, [report("500", NUMBERS[0], 100)], pull_id="p")
    ledger.record_balance(ACCOUNT, 1)
    engine = ledger._entry().engine
    seen: list[tuple[str, Any]] = []

    def keep(conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "smscn_" in statement:
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        data.page_data(ledger, "7d")
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert len(seen) >= 6
    with engine.connect() as conn:
        for statement, parameters in seen:
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                                                     parameters))
            tables = "smscn_reports|smscn_send_intents|smscn_balance_readings"
            full_scan = re.search(rf"SCAN ({tables})\b(?! USING)", plan)
            assert not full_scan, f"{statement}\n-> {plan}"
