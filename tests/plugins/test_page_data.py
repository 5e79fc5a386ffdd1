"""The sms.cn page's data, read from a real ledger (SQLite file; PostgreSQL where said), without Airflow."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_smscn.client.models import DeliveryReport, SentRecord
from airflow_provider_smscn.client.signing import beijing_timestamp
from airflow_provider_smscn.ledger import SmsCnLedger
from airflow_provider_smscn.ledger.page_counts import BUCKET
from airflow_provider_smscn.plugins import data
from tests.support.databases import EMPTY_DATABASE

ACCOUNT = "test@127.0.0.1:8765/voice/"
OTHER = "other@127.0.0.1:8765/voice/"
NUMBERS = ["13900001111", "13900002222", "13900003333", "13900004444"]


#: The longest range a load counts from the tables once the old buckets are stored: the live minutes.
LIVE_SPAN = 2 * data.BUCKET + data.FREEZE_MARGIN + 5
REPO = Path(__file__).resolve().parents[2]
#: Calls per account in :func:`write_history`, and how many of ACCOUNT's were accepted.
HISTORY_CALLS = 40
HISTORY_PLACED = HISTORY_CALLS - HISTORY_CALLS // 5 + 1


@pytest.fixture
def ledger(tmp_path) -> SmsCnLedger:
    data.forget_caches()
    return SmsCnLedger(f"sqlite:///{tmp_path}/ledger.db")


def new_ledger(backend: str, request: pytest.FixtureRequest, tmp_path: Path) -> SmsCnLedger:
    """An empty ledger on SQLite, or on a fresh schema of the test PostgreSQL (a fresh database of
    the test MariaDB); no counts kept."""
    data.forget_caches()
    if backend == "sqlite":
        return SmsCnLedger(f"sqlite:///{tmp_path}/ledger.db")
    return SmsCnLedger(request.getfixturevalue(EMPTY_DATABASE[backend]))


def write_history(ledger: SmsCnLedger, now: float) -> dict[str, list[Any]]:
    """Calls of the last 28 days, one in five ended ``unknown``, each reported 0 to 4 minutes later;
    and one call of ACCOUNT placed 3 days ago whose report came 2 days later.

    Written as rows with their old times (the ledger stamps what it stores with the time now).
    Returns the accepted calls of ACCOUNT as (id, number) and the unknown ones as (id, number, sent).
    """
    from airflow_provider_smscn.ledger.schema import table

    intents, reports = [], []
    out: dict[str, list[Any]] = {"accepted": [], "unknown": []}
    for account in (ACCOUNT, OTHER):
        for k in range(HISTORY_CALLS):
            at, mid, number = now - 1000 - k * 17 * 3600, f"h{account[0]}{k}", f"1390000{k:04d}"
            state = "unknown" if k % 5 == 0 else "accepted"
            intents.append({"account": account, "mobileid": mid, "idem_key": f"old|send|r{k}",
                            "mobile": number, "state": state, "code": 100 if state == "accepted" else None,
                            "created_at": at, "updated_at": at, "claimed_by": "c0"})
            reports.append({"account": account, "row_key": f"p:old:{mid}", "mobileid": mid, "mobile": number,
                            "resultcode": 130 if k % 3 == 0 else 100, "status": "", "retime": "",
                            "stored_at": at + (k % 5) * 60, "retime_ts": None})
            if account == ACCOUNT:
                out[state].append((mid, number) if state == "accepted" else (mid, number, at))
    sent = now - 3 * 86400
    intents.append({"account": ACCOUNT, "mobileid": "late0", "idem_key": "old|send|late",
                    "mobile": "13900009999", "state": "accepted", "code": 100, "created_at": sent,
                    "updated_at": sent, "claimed_by": "c0"})
    reports.append({"account": ACCOUNT, "row_key": "p:old:late0", "mobileid": "late0",
                    "mobile": "13900009999", "resultcode": 100, "status": "", "retime": "",
                    "stored_at": sent + 2 * 86400, "retime_ts": None})
    with ledger._entry().engine.begin() as conn:
        conn.execute(table("smscn_send_intents").insert(), intents)
        conn.execute(table("smscn_reports").insert(), reports)
    return out


def from_scratch(ledger: SmsCnLedger, page: dict[str, Any]) -> dict[str, Any]:
    """What ``page`` must show: every row of its window counted afresh, at its time."""
    span, step = data.WINDOWS[page["window"]]
    start = data._floor(page["now"] - span, step)
    with ledger._entry().engine.connect() as conn:
        buckets = data.aggregate(conn, start, page["now"] + 1)
    return data._series(buckets, start, page["now"], step)


def shown(page: dict[str, Any]) -> dict[str, Any]:
    return {key: page[key] for key in ("times", "accounts", "series", "totals")}


def check_page_equals_scratch(ledger: SmsCnLedger) -> dict[str, Any]:
    """This process's page and a fresh process's page (no counts in memory) equal a count from
    scratch; returns the totals."""
    page = data.page_data(ledger, "30d")
    assert shown(page) == from_scratch(ledger, page)
    data.forget_caches()
    page = data.page_data(ledger, "30d")
    assert shown(page) == from_scratch(ledger, page)
    return dict(page["totals"])


def spy_on_counting(monkeypatch: pytest.MonkeyPatch) -> list[tuple[float, float]]:
    """The time ranges this process counts from the tables, as they happen."""
    ranges: list[tuple[float, float]] = []
    real = data.aggregate

    def spy(conn: Any, start: float, end: float) -> data.Buckets:
        ranges.append((start, end))
        return real(conn, start, end)

    monkeypatch.setattr(data, "aggregate", spy)
    return ranges


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
    """Old buckets are counted once, by the first load anywhere; later loads, and a fresh process,
    count only the last minutes; calls placed since then appear."""
    write_history(ledger, time.time())
    place(ledger, ACCOUNT, "d|t|r", NUMBERS[:2], "40")
    ranges = spy_on_counting(monkeypatch)
    first = data.page_data(ledger, "30d")
    assert first["totals"][ACCOUNT]["placed"] == HISTORY_PLACED + 2
    assert ranges[0][1] - ranges[0][0] > 26 * 86400  # the frozen span since the oldest row, once
    for fresh_process in (False, True):
        if fresh_process:
            data.forget_caches()
        ranges.clear()
        place(ledger, ACCOUNT, f"d|t|r{fresh_process}", NUMBERS[2:], f"4{int(fresh_process) + 1}")
        again = data.page_data(ledger, "30d")
        assert again["totals"][ACCOUNT]["placed"] == HISTORY_PLACED + 4 + 2 * fresh_process
        assert ranges and all(end - start <= LIVE_SPAN for start, end in ranges), ranges
    assert data.page_data(ledger, "1h")["totals"][ACCOUNT]["placed"] == 6  # a shorter window, same cache


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_fresh_process_shows_a_count_from_scratch_after_late_changes(backend, request, tmp_path):
    """Whatever changes old buckets after they were counted and stored (a call accepted when its
    report came days ago, a call re-marked, pruning), this process and a fresh one show exactly
    what counting every row from scratch shows; a report arriving late counts when it arrives."""
    ledger = new_ledger(backend, request, tmp_path)
    ids = write_history(ledger, time.time())
    totals = check_page_equals_scratch(ledger)[ACCOUNT]  # counts stored in the ledger
    placed, lags = totals["placed"], list(totals["lags"])
    results = totals["delivered"] + totals["undelivered"]

    # A report for a call placed days ago, pulled only now: it lands in the current bucket.
    old_call, old_number = ids["accepted"][-1]
    ledger.store_reports(ACCOUNT, [report(old_call, old_number, 100)], pull_id="late")
    totals = check_page_equals_scratch(ledger)[ACCOUNT]
    assert totals["delivered"] + totals["undelivered"] == results + 1
    assert totals["lags"][-1] == lags[-1] + 1  # sent days ago: the open class
    lags = list(totals["lags"])

    # A call whose send ended 'unknown' days ago (its report came then) proven by a sent record
    # now: accepted now, its old report joins the send-to-report classes of its old bucket.
    unknown, number, created = ids["unknown"][-1]
    ledger.store_sent_records(ACCOUNT, [SentRecord(mobile=number, status=1, sendtime=beijing_timestamp(
        datetime.fromtimestamp(created + 3, timezone.utc)))])
    assert ledger.prove_by_sent_records(ACCOUNT, [unknown], 2.0) == {unknown}
    totals = check_page_equals_scratch(ledger)[ACCOUNT]
    assert (totals["placed"], sum(totals["lags"])) == (placed + 1, sum(lags) + 1)
    placed = totals["placed"]

    # An accepted call of 10 days ago marked rejected: it leaves its old bucket, with its report's lag.
    ledger.mark_intents(ACCOUNT, [ids["accepted"][10][0]], "rejected", code=4030)
    totals = check_page_equals_scratch(ledger)[ACCOUNT]
    assert totals["placed"] == placed - 1

    # Retention: rows older than 2 days go, and the page's counts of them with them; so does the
    # send-to-report time of yesterday's report of a call placed 3 days ago (its intent is gone).
    lags = list(totals["lags"])
    assert ledger.prune(2 * 86400)["smscn_reports"] > 0
    totals = check_page_equals_scratch(ledger)[ACCOUNT]
    assert 0 < totals["placed"] < placed - 1
    assert 0 < sum(totals["lags"]) < sum(lags)


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_counts_from_before_a_change_are_never_stored(backend, request, tmp_path, monkeypatch):
    """A load that counted old buckets, then saw a writer change one of them before it could store
    its counts, does not store them: every process goes on showing the count from scratch."""
    ledger = new_ledger(backend, request, tmp_path)
    ids = write_history(ledger, time.time())
    real = data.aggregate
    changed: list[bool] = []

    def count_then_change(conn: Any, start: float, end: float) -> data.Buckets:
        found = real(conn, start, end)
        if not changed:  # the frozen buckets, counted: another process re-marks an old call now
            changed.append(True)
            ledger.mark_intents(ACCOUNT, [ids["accepted"][5][0]], "rejected", code=4030)
        return found

    monkeypatch.setattr(data, "aggregate", count_then_change)
    stale = data.page_data(ledger, "30d")
    monkeypatch.setattr(data, "aggregate", real)
    assert changed
    totals = check_page_equals_scratch(ledger)[ACCOUNT]
    assert totals["placed"] == stale["totals"][ACCOUNT]["placed"] - 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_new_api_server_process_reads_the_stored_counts(backend, request, tmp_path):
    """A real new Python process: its first load counts only the live minutes, and its page equals
    a count from scratch."""
    ledger = new_ledger(backend, request, tmp_path)
    write_history(ledger, time.time())
    data.page_data(ledger, "30d")  # the first load anywhere stores the counts
    code = """if True:
        import json, sys
        from airflow_provider_smscn.ledger import SmsCnLedger
        from airflow_provider_smscn.plugins import data
        ranges = []
        real = data.aggregate
        def spy(conn, start, end):
            ranges.append((start, end))
            return real(conn, start, end)
        data.aggregate = spy
        page = data.page_data(SmsCnLedger(sys.argv[1]), "30d")
        print(json.dumps({"page": page, "ranges": ranges}))
    """
    out = subprocess.run([sys.executable, "-c", code, ledger._url], capture_output=True, text=True,
                         check=True, timeout=120, cwd=REPO)
    got = json.loads(out.stdout)
    assert got["ranges"] and all(end - start <= LIVE_SPAN for start, end in got["ranges"]), got["ranges"]
    assert shown(got["page"]) == json.loads(json.dumps(from_scratch(ledger, got["page"])))
    assert got["page"]["totals"][ACCOUNT]["placed"] == HISTORY_PLACED


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
    """SQLite's plan for each statement the page runs (first load, stored counts, a change since,
    a fresh process): no full scan of a ledger table."""
    from tests.support.databases import ledger_selects

    ids = write_history(ledger, time.time())
    place(ledger, ACCOUNT, "d|t|r", NUMBERS[:2], "50")
    ledger.store_reports(ACCOUNT, [report("500", NUMBERS[0], 100)], pull_id="p")
    ledger.record_balance(ACCOUNT, 1)
    engine = ledger._entry().engine
    with ledger_selects(ledger) as seen:
        data.page_data(ledger, "7d")
        ledger.mark_intents(ACCOUNT, [ids["accepted"][3][0]], "rejected", code=4030)
        data.page_data(ledger, "7d")  # re-reads the buckets changed since
        data.forget_caches()
        data.page_data(ledger, "7d")  # a fresh process: reads the stored counts
    statements = " ".join(statement for statement, _ in seen)
    assert "smscn_page_counts.generation >" in statements  # what changed since: read
    assert "smscn_page_counts.counts IS NOT NULL" in statements  # the stored counts: read
    with engine.connect() as conn:
        for statement, parameters in seen:
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}",
                                                                     parameters))
            tables = "smscn_reports|smscn_send_intents|smscn_balance_readings|smscn_page_counts"
            full_scan = re.search(rf"SCAN ({tables})\b(?! USING)", plan)
            assert not full_scan, f"{statement}\n-> {plan}"


# -- races between the page's stored counts and the ledger's writers -------------------------------

RACE_BACKENDS = ["sqlite", "postgresql", "mysql"]


def write_call(ledger: SmsCnLedger, mobileid: str, state: str, sent: float, reported: float | None) -> None:
    """One call of ACCOUNT with its old times (and its report, if ``reported``)."""
    from airflow_provider_smscn.ledger.schema import table

    with ledger._entry().engine.begin() as conn:
        conn.execute(table("smscn_send_intents").insert(), [{
            "account": ACCOUNT, "mobileid": mobileid, "idem_key": f"old|send|{mobileid}",
            "mobile": NUMBERS[0], "state": state, "code": 100 if state == "accepted" else None,
            "created_at": sent, "updated_at": sent, "claimed_by": "c0"}])
        if reported is not None:
            conn.execute(table("smscn_reports").insert(), [{
                "account": ACCOUNT, "row_key": f"p:old:{mobileid}", "mobileid": mobileid,
                "mobile": NUMBERS[0], "resultcode": 100, "status": "", "retime": "",
                "stored_at": reported, "retime_ts": None}])


class Pause:
    """Holds one thread's transaction at a point (an SQL statement, or its commit) until released."""

    def __init__(self, ledger: SmsCnLedger, *, before_sql: str | None = None) -> None:
        self.engine = ledger._entry().engine
        self.before_sql = before_sql
        self.thread: int | None = None
        self.reached, self.go = threading.Event(), threading.Event()

    def _hold(self) -> None:
        if threading.get_ident() == self.thread and not self.reached.is_set():
            self.reached.set()
            self.go.wait(60)  # (released by the test; the bound only ends a broken run)

    def _statement(self, conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if self.before_sql and statement.lstrip().upper().startswith(self.before_sql):
            self._hold()

    def _commit(self, conn: Any) -> None:
        if self.before_sql is None:
            self._hold()

    def run(self, fn: Any) -> threading.Thread:
        """Run ``fn`` in a thread, and wait until it reaches the pause."""
        from sqlalchemy import event

        event.listen(self.engine, "before_cursor_execute", self._statement)
        event.listen(self.engine, "commit", self._commit)
        def target() -> None:
            self.thread = threading.get_ident()
            fn()

        thread = threading.Thread(target=target, daemon=True)
        thread.start()
        while not self.reached.wait(0.05):
            assert thread.is_alive(), "the writer ended before its pause"
        return thread

    def release(self, thread: threading.Thread) -> None:
        from sqlalchemy import event

        self.go.set()
        thread.join(60)
        event.remove(self.engine, "before_cursor_execute", self._statement)
        event.remove(self.engine, "commit", self._commit)
        assert not thread.is_alive()


@pytest.mark.parametrize("backend", RACE_BACKENDS)
def test_a_writer_marks_the_buckets_of_the_state_it_replaces(backend, request, tmp_path):
    """Two writers re-mark one old call at once: whichever wins, the buckets its report was stored in
    are recounted, so every process shows the count from scratch (the loser read the call's state
    before the winner changed it, and marked nothing: its stored send-to-report class stayed)."""
    ledger = new_ledger(backend, request, tmp_path)
    write_history(ledger, time.time())
    sent = data._floor(time.time() - 2 * 86400, BUCKET)
    write_call(ledger, "race", "unknown", sent + 10, sent + 3 * 3600)  # its report: another bucket
    check_page_equals_scratch(ledger)  # stored: the report, with no send-to-report class
    pause = Pause(ledger, before_sql="UPDATE SMSCN_SEND_INTENTS")
    loser = pause.run(lambda: ledger.mark_intents(ACCOUNT, ["race"], "rejected", code=4030))
    winner = threading.Thread(target=ledger.mark_intents, args=(ACCOUNT, ["race"], "accepted"),
                              kwargs={"code": 100}, daemon=True)
    winner.start()
    winner.join(5)  # (done, unless it waits for the loser's lock on the call: then after it)
    data.page_data(ledger, "30d")  # a load in between (stores the accepted call's report class)
    pause.release(loser)
    winner.join(60)
    assert not winner.is_alive()
    check_page_equals_scratch(ledger)


@pytest.mark.parametrize("backend", RACE_BACKENDS)
@pytest.mark.parametrize("writer", ["store_reports", "mark_intents", "prove_by_sent_records"])
def test_a_late_commit_marks_the_bucket_it_wrote_into(backend, writer, request, tmp_path, monkeypatch):
    """A writer that stamped its rows long before its commit (here: its clock reads 10 minutes
    ago, as a writer paused that long would) lands in a bucket already frozen and stored: it marks
    that bucket, and every process shows the count from scratch."""
    from airflow_provider_smscn.ledger import store

    ledger = new_ledger(backend, request, tmp_path)
    ids = write_history(ledger, time.time())
    place(ledger, ACCOUNT, "d|t|r", NUMBERS[:1], "40")  # (a row of every table, now)
    unknown, number, created = ids["unknown"][-1]
    ledger.store_sent_records(ACCOUNT, [SentRecord(mobile=number, status=1, sendtime=beijing_timestamp(
        datetime.fromtimestamp(created + 3, timezone.utc)))])
    before = check_page_equals_scratch(ledger)[ACCOUNT]
    from airflow_provider_smscn.ledger.engine import db_now

    monkeypatch.setattr(store, "db_now", lambda conn: db_now(conn) - 600)  # (its start; its end: now)
    if writer == "store_reports":
        ledger.store_reports(ACCOUNT, [report("40", NUMBERS[0], 100)], pull_id="late")
    elif writer == "mark_intents":
        ledger.mark_intents(ACCOUNT, [unknown], "accepted", code=100)
    else:
        assert ledger.prove_by_sent_records(ACCOUNT, [unknown], 2.0) == {unknown}
    monkeypatch.undo()
    after = check_page_equals_scratch(ledger)[ACCOUNT]
    assert after != before


@pytest.mark.parametrize("backend", RACE_BACKENDS)
def test_counts_a_load_could_not_store_are_counted_again(backend, request, tmp_path, monkeypatch):
    """A writer stamped a report 10 minutes ago and paused before its commit (after its check for a
    late commit); a load counts that bucket meanwhile (without the report) and cannot store it, the
    writer holding the counts' lock: it neither waits for the writer nor keeps those counts, so the
    next load shows the report."""
    from airflow_provider_smscn.ledger import page_counts, store
    from airflow_provider_smscn.ledger.engine import db_now

    ledger = new_ledger(backend, request, tmp_path)
    write_history(ledger, time.time())
    place(ledger, ACCOUNT, "d|t|r", NUMBERS[:1], "40")
    for module in (store, page_counts):  # (the writer's checks ran then, too: it sees no late commit)
        monkeypatch.setattr(module, "db_now", lambda conn: db_now(conn) - 600)
    pause = Pause(ledger)  # before its commit
    writer = pause.run(lambda: ledger.store_reports(ACCOUNT, [report("40", NUMBERS[0], 100)], pull_id="x"))
    monkeypatch.undo()
    pages: list[dict[str, Any]] = []
    loaded = threading.Thread(target=lambda: pages.append(data.page_data(ledger, "30d")), daemon=True)
    loaded.start()
    loaded.join(20)  # (a load waits for no writer: the store gives up at once, or after 0.2 s)
    assert not loaded.is_alive(), "the page load waited for a writer"
    pause.release(writer)
    after = check_page_equals_scratch(ledger)[ACCOUNT]
    assert after["delivered"] == pages[0]["totals"][ACCOUNT]["delivered"] + 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_re_marking_a_call_reported_in_another_bucket_recounts_its_send_bucket(backend, request, tmp_path):
    """An accepted call whose report came an hour later (another bucket) is marked rejected: the
    bucket it was placed in is recounted too, not only its report's."""
    ledger = new_ledger(backend, request, tmp_path)
    write_history(ledger, time.time())
    sent = data._floor(time.time() - 2 * 86400, BUCKET)
    write_call(ledger, "moved", "accepted", sent + 10, sent + 3600)
    placed = check_page_equals_scratch(ledger)[ACCOUNT]["placed"]
    ledger.mark_intents(ACCOUNT, ["moved"], "rejected", code=4030)
    assert check_page_equals_scratch(ledger)[ACCOUNT]["placed"] == placed - 1


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_prune_cutting_through_a_bucket_recounts_it(backend, request, tmp_path):
    """Retention whose cutoff falls inside a bucket deletes its older rows: the rest are recounted."""
    ledger = new_ledger(backend, request, tmp_path)
    write_history(ledger, time.time())
    cut = data._floor(time.time() - 5 * 86400, BUCKET)
    write_call(ledger, "before", "accepted", cut + 30, cut + 40)
    write_call(ledger, "after", "accepted", cut + 200, cut + 210)
    placed = check_page_equals_scratch(ledger)[ACCOUNT]["placed"]
    ledger.prune(2 * 86400, now=cut + 100 + 2 * 86400)  # cutoff: cut + 100
    totals = check_page_equals_scratch(ledger)
    assert totals[ACCOUNT]["placed"] < placed
    assert "after" in {c["mobileid"] for c in data.page_data(ledger, "30d")["recent"]}
