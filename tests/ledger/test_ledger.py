"""Tests of the ledger on every backend of ``conftest.backend`` (never skipped: servers are started)."""

from __future__ import annotations

import itertools
import math
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path

import pytest

from airflow_provider_smscn.client.models import DeliveryReport, SentRecord
from airflow_provider_smscn.ledger import SendIntent, SmsCnLedger
from tests.support.databases import query
from tests.support.ledger_workers import (
    claim_worker,
    fork_child_store,
    lease_worker,
    report_for,
    run_workers,
    skewed_lease_worker,
    store_worker,
)
from tests.support.paths import REPO

MOBILE = "13912345678"


def report(i: int) -> DeliveryReport:
    return DeliveryReport(*report_for(i))


# --------------------------------------------------------------------------------------------
# Setup and plumbing
# --------------------------------------------------------------------------------------------

def test_tables_created_in_place(backend: tuple[str, str], ledger: SmsCnLedger) -> None:
    name, url = backend
    assert ledger.count_sent_records("acct") == 0
    if name == "sqlite":
        db = Path(url.removeprefix("sqlite:///"))
        assert db.is_file()
        rows = query(url, "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'smscn_%'")
        assert query(url, "PRAGMA journal_mode") == [("wal",)]
    elif name == "mysql":
        rows = query(url, "SELECT table_name FROM information_schema.tables "
                          "WHERE table_schema = DATABASE() AND table_name LIKE 'smscn%%'")
        # Keys compare exactly, as on the other backends (not the server's case-insensitive default).
        collations = query(url, "SELECT DISTINCT table_collation FROM information_schema.tables WHERE "
                                "table_schema = DATABASE() AND table_name IN ('smscn_reports', "
                                "'smscn_pull_lease', 'smscn_send_intents', 'smscn_sent_records', "
                                "'smscn_event_cursors', 'smscn_page_counts', 'smscn_ledger_meta')")
        assert collations == [("utf8mb4_bin",)]
    else:
        schema = url.split("search_path%3D")[-1] if "%3D" in url else url.split("search_path=")[-1]
        rows = query(url, "SELECT table_name FROM information_schema.tables "
                          "WHERE table_schema = :s AND table_name LIKE 'smscn%%'", {"s": schema})
        assert query(url, "SELECT current_schema()") == [(schema,)]
    assert sorted(r[0] for r in rows) == ["smscn_alembic_version", "smscn_balance_readings",
                                          "smscn_event_cursors", "smscn_ledger_meta", "smscn_page_counts",
                                          "smscn_pull_lease",
                                          "smscn_reports", "smscn_send_intents", "smscn_sent_records"]
    from airflow_provider_smscn.ledger.schema import HEAD_REVISION

    assert query(url, "SELECT version_num FROM smscn_alembic_version") == [(HEAD_REVISION,)]


def test_keys_compare_exactly(ledger: SmsCnLedger) -> None:
    # Ids and accounts that differ only in case are different keys everywhere (MySQL's default
    # collation would merge them; its binary collation still ignores trailing spaces).
    assert ledger.claim_intents("acct", "k", [("id-a", MOBILE), ("ID-A", MOBILE)], "c") == {"id-a", "ID-A"}
    assert ledger.store_reports("acct", [DeliveryReport(MOBILE, "m", 100)]) == 1
    assert ledger.store_reports("ACCT", [DeliveryReport(MOBILE, "m", 134)]) == 1
    assert ledger.get_reports("acct", ["m"])["m"].resultcode == 100
    assert ledger.get_reports("acct", ["M"]) == {}


def test_url_for_display_hides_password() -> None:
    led = SmsCnLedger("postgresql+psycopg2://u:s3cret-pw@db.example:5432/x")
    assert "s3cret-pw" not in led.url_for_display
    assert "s3cret-pw" not in repr(led)
    assert led.url_for_display.startswith("postgresql+psycopg2://u:")
    with pytest.raises(ValueError):
        SmsCnLedger("")
    # libpq and the MySQL drivers also take the password as a query parameter (review 9)
    queried = SmsCnLedger("mysql+pymysql://u@db.example/x?charset=utf8mb4&password=s3cret-pw")
    assert "s3cret-pw" not in queried.url_for_display and "s3cret-pw" not in repr(queried)
    assert "charset=utf8mb4" in queried.url_for_display


def test_import_is_cheap() -> None:
    code = ("import sys, airflow_provider_smscn.ledger as m; m.SmsCnLedger('sqlite:////nonexistent/x.db'); "
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('sqlalchemy', 'airflow')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                         cwd=REPO)
    assert out.stdout.strip() == "[]"


def test_dispose_then_reuse(ledger: SmsCnLedger, url: str) -> None:
    assert ledger.store_reports("acct", [report(1)]) == 1
    ledger.dispose()
    ledger.dispose()  # twice is harmless
    assert SmsCnLedger(url).get_reports("acct", ["mid-000001"]) == {"mid-000001": report(1)}


def test_forked_child_gets_its_own_engine(ledger: SmsCnLedger, url: str) -> None:
    # Airflow's executors fork: a child must not talk over the parent's pooled connections.
    assert ledger.store_reports("acct", [report(1)]) == 1
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    child = ctx.Process(target=fork_child_store, args=(url, "acct", results))
    child.start()
    new, fresh_engine, error = results.get(timeout=60)
    child.join(timeout=30)
    assert error is None, error
    assert (new, fresh_engine, child.exitcode) == (1, True, 0)
    # The parent's pooled connection still works, and sees the child's report.
    assert set(ledger.get_reports("acct", ["mid-000001", "mid-000007"])) == {"mid-000001", "mid-000007"}
    assert ledger.store_reports("acct", [report(2)]) == 1


# --------------------------------------------------------------------------------------------
# Delivery reports
# --------------------------------------------------------------------------------------------

def test_store_and_get_are_idempotent(ledger: SmsCnLedger) -> None:
    first = [report(1), report(2), report(3)]
    assert ledger.store_reports("acct", first, pull_id="pull-1") == 3
    assert ledger.store_reports("acct", first, pull_id="pull-1") == 0  # the same batch again: nothing
    # A different report for a stored id is a row of its own; so is every report of a call
    # without a pull id (a batch of its own: two identical reports are two reports).
    later = DeliveryReport(mobile=MOBILE, mobileid="mid-000002", resultcode=4012, status="X",
                           retime="2025-01-02 00:00:00")
    assert ledger.store_reports("acct", [later, report(4), report(4)]) == 3
    assert ledger.store_reports("acct", []) == 0

    got = ledger.get_reports("acct", ["mid-000001", "mid-000002", "mid-000004", "absent", "mid-000002"])
    assert got == {"mid-000001": report(1), "mid-000002": later, "mid-000004": report(4)}
    assert ledger.get_reports("acct", []) == {}
    # Accounts do not see each other's reports, and the same id may exist in both.
    assert ledger.get_reports("other", ["mid-000001"]) == {}
    assert ledger.store_reports("other", [report(1)]) == 1
    assert ledger.get_reports("other", iter(["mid-000001"])) == {"mid-000001": report(1)}


def test_reports_after_a_cursor(ledger: SmsCnLedger) -> None:
    assert ledger.get_reports_after("acct", 0) == ([], 0)
    assert ledger.report_cursor("acct") == 0
    ledger.store_reports("acct", [report(1), report(2)])
    ledger.store_reports("other", [report(3)])
    ledger.store_reports("acct", [report(4)])
    rows, cursor = ledger.get_reports_after("acct", 0)
    assert [r for _, r in rows] == [report(1), report(2), report(4)]
    assert cursor == rows[-1][0] == ledger.report_cursor("acct")
    assert ledger.get_reports_after("acct", cursor) == ([], cursor)  # nothing new
    page, c1 = ledger.get_reports_after("acct", 0, limit=2)
    assert [r for _, r in page] == [report(1), report(2)]
    rest, c2 = ledger.get_reports_after("acct", c1, limit=2)
    assert [r for _, r in rest] == [report(4)] and c2 == cursor
    ledger.store_reports("acct", [report(5)])
    assert [r for _, r in ledger.get_reports_after("acct", cursor)[0]] == [report(5)]
    with pytest.raises(ValueError):
        ledger.get_reports_after("acct", 0, limit=0)


# The ac=status sample of the vendor's document (its two reports for one mobileids, verbatim).
DOC_STATUS_SAMPLE = (
    '{\n"stat":"100","total":"50",\n\n"values":[\n\n'
    '{"retime":"2010-11-14 18:04:19","mobile":"13900008888","mobileids":"1390000888800001",'
    '"resultcode":"100","status":"DELIVRD"},\n\n'
    '{"retime":"2010-11-14 18:09:19","mobile":"13900008888","mobileids":"1390000888800001",'
    '"resultcode":"100","status":"DELIVRD"}\n]\n}'
)


def doc_sample_reports() -> list[DeliveryReport]:
    """The sample parsed as the client parses a pull."""
    from airflow_provider_smscn.client.replies import parse_reply

    reply = parse_reply(DOC_STATUS_SAMPLE, "json", action="status")
    return [DeliveryReport(mobile=v["mobile"], mobileid=v["mobileids"], resultcode=int(v["resultcode"]),
                           status=v.get("status", ""), retime=v.get("retime", "")) for v in reply["values"]]


def test_vendor_sample_with_two_reports_for_one_id_stores_both(backend: tuple[str, str],
                                                                 ledger: SmsCnLedger) -> None:
    pulled = doc_sample_reports()
    assert len(pulled) == 2 and pulled[0].mobileid == pulled[1].mobileid
    assert ledger.store_reports("acct", pulled) == 2
    assert query(backend[1], "SELECT count(*) FROM smscn_reports") == [(2,)]
    # The answer for the id is its latest report by retime.
    assert ledger.get_reports("acct", ["1390000888800001"]) == {"1390000888800001": pulled[1]}
    assert [r for _, r in ledger.get_reports_after("acct", 0)[0]] == pulled


def test_later_delivered_report_wins_over_earlier_failure(ledger: SmsCnLedger) -> None:
    failed = DeliveryReport(MOBILE, "m0", 134, "UNDELIV", "2025-03-01 10:00:05")
    delivered = DeliveryReport(MOBILE, "m0", 100, "DELIVRD", "2025-03-01 10:02:00")
    # A 134, then a later pull brings the 100: the call was delivered.
    assert ledger.store_reports("acct", [failed]) == 1
    assert ledger.store_reports("acct", [delivered]) == 1
    assert ledger.get_reports("acct", ["m0"]) == {"m0": delivered}
    # The later report may even arrive in an earlier pull: retime decides, not arrival.
    failed, delivered = (DeliveryReport(MOBILE, "m1", r.resultcode, r.status, r.retime)
                         for r in (failed, delivered))
    assert ledger.store_reports("acct", [delivered], pull_id="pull-1") == 1
    assert ledger.store_reports("acct", [failed], pull_id="pull-2") == 1
    got = ledger.get_reports("acct", ["m1"])["m1"]
    assert got == delivered and got.delivered
    # Same retime: the report stored later wins.
    again = DeliveryReport(MOBILE, "m1", 131, "UNDELIV", "2025-03-01 10:02:00")
    assert ledger.store_reports("acct", [again], pull_id="pull-3") == 1
    assert ledger.get_reports("acct", ["m1"])["m1"] == again


def test_reports_without_an_id_are_stored_too(backend: tuple[str, str], ledger: SmsCnLedger) -> None:
    # Reports of messages other systems sent with the account may carry no id: kept all the same.
    anonymous = [DeliveryReport(MOBILE, "", 100, "DELIVRD", "2025-03-01 10:00:00"),
                 DeliveryReport("13800000002", "", 131, "UNDELIV", "2025-03-01 10:00:01")]
    assert ledger.store_reports("acct", [*anonymous, report(1)]) == 3
    assert query(backend[1], "SELECT count(*) FROM smscn_reports WHERE mobileid = ''") == [(2,)]
    assert [r for _, r in ledger.get_reports_after("acct", 0)[0]] == [*anonymous, report(1)]


def test_batch_stored_twice_under_its_pull_id_lands_once(backend: tuple[str, str],
                                                        ledger: SmsCnLedger) -> None:
    # A retry after a lost commit, or a spool replay, writes the same pull again.
    batch = [*doc_sample_reports(), report(1), report(1)]  # the vendor may repeat a report in a pull
    assert ledger.store_reports("acct", batch, pull_id="pull-7") == 4
    assert ledger.store_reports("acct", batch, pull_id="pull-7") == 0
    assert ledger.store_reports("acct", batch[:2], pull_id="pull-7") == 0
    assert query(backend[1], "SELECT count(*) FROM smscn_reports") == [(4,)]
    # Another pull with equal reports is another pull: its rows are stored.
    assert ledger.store_reports("acct", batch[:1], pull_id="pull-8") == 1
    assert ledger.store_reports("other", batch, pull_id="pull-7") == 4  # per account
    with pytest.raises(ValueError, match="pull_id"):
        ledger.store_reports("acct", batch, pull_id="x" * 200)


def test_same_pull_written_by_racing_processes_lands_once(backend: tuple[str, str], url: str,
                                                         ledger: SmsCnLedger) -> None:
    # 8 processes replay the same 300-report pull at once (under one pull id), in batches.
    arg_sets = [(url, "acct", f"w{k}", list(range(300)), 300, "pull-42") for k in range(8)]
    results = run_workers(store_worker, arg_sets)
    assert sum(r[1] for r in results) == 300
    assert query(url, "SELECT count(*) FROM smscn_reports") == [(300,)]
    rows, _ = ledger.get_reports_after("acct", 0)
    assert [r for _, r in rows] == [report(i) for i in range(300)]  # stored in the pull's order


def test_report_fields_round_trip(ledger: SmsCnLedger) -> None:
    odd = DeliveryReport(mobile="8613900001111", mobileid="x" * 200, resultcode=4012, status="",
                         retime="2025-06-01 12:00:00")
    assert ledger.store_reports("acct", [odd]) == 1
    got = ledger.get_reports("acct", [odd.mobileid])[odd.mobileid]
    assert got == odd and not got.delivered


def test_thousands_of_ids(ledger: SmsCnLedger) -> None:
    reports = [report(i) for i in range(4000)]
    assert ledger.store_reports("acct", reports, pull_id="pull-big") == 4000
    wanted = [f"mid-{i:06d}" for i in range(0, 7000)]  # 3000 absent ones too
    got = ledger.get_reports("acct", wanted)
    assert len(got) == 4000
    assert got == {r.mobileid: r for r in reports}
    assert ledger.store_reports("acct", reports, pull_id="pull-big") == 0


def test_concurrent_store_from_20_processes(ledger: SmsCnLedger, url: str) -> None:
    # Worker k replays pulls (blocks of 50 under one pull id each) k*50 .. k*50+199, odd workers
    # last block first: each pull is offered by up to 4 processes at once. Together they must
    # store each of the 1150 reports exactly once.
    span, step, workers, block = 200, 50, 20, 50

    def blocks(k: int) -> list[int]:
        starts = list(range(k * step, k * step + span, block))[::(1 if k % 2 else -1)]
        return [i for start in starts for i in range(start, start + block)]

    arg_sets = [(url, "acct", f"w{k}", blocks(k), block, "by-first") for k in range(workers)]
    results = run_workers(store_worker, arg_sets)
    expected = {i for k in range(workers) for i in range(k * step, k * step + span)}
    assert sum(r[1] for r in results) == len(expected) == 1150
    got = ledger.get_reports("acct", [report_for(i)[1] for i in expected])
    assert got == {report_for(i)[1]: report(i) for i in expected}
    assert query(url, "SELECT count(*), count(DISTINCT mobileid) FROM smscn_reports") == [(1150, 1150)]


# --------------------------------------------------------------------------------------------
# Pull lease
# --------------------------------------------------------------------------------------------

def test_lease_in_one_process(ledger: SmsCnLedger) -> None:
    t0 = 1_700_000_000.0
    assert ledger.last_pull_time("acct") is None
    assert ledger.try_acquire_pull("acct", "a", 10.0, now=t0) is True  # first use inserts the row
    assert ledger.try_acquire_pull("acct", "b", 10.0, now=t0) is False
    assert ledger.try_acquire_pull("acct", "b", 10.0, now=t0 + 9.999) is False
    assert ledger.last_pull_time("acct") == t0
    assert ledger.try_acquire_pull("other", "b", 10.0, now=t0 + 1) is True  # per account
    assert ledger.try_acquire_pull("acct", "b", 10.0, now=t0 + 10.0) is True
    assert ledger.last_pull_time("acct") == t0 + 10.0
    assert query_lease(ledger, "acct") == ("b", t0 + 20.0, t0 + 10.0)
    # Each caller's own interval counts: a slow waiter does not hold back a fast one.
    assert ledger.try_acquire_pull("acct", "fast", 2.0, now=t0 + 11.999) is False
    assert ledger.try_acquire_pull("acct", "slow", 60.0, now=t0 + 12.0) is False
    assert ledger.try_acquire_pull("acct", "fast", 2.0, now=t0 + 12.0) is True
    assert ledger.try_acquire_pull("acct", "slow", 60.0, now=t0 + 71.0) is False
    assert query_lease(ledger, "acct") == ("fast", t0 + 14.0, t0 + 12.0)
    # A zero interval lets every call through.
    assert ledger.try_acquire_pull("zero", "a", 0.0, now=t0) is True
    assert ledger.try_acquire_pull("zero", "b", 0.0, now=t0) is True
    # The default clock is the database's.
    before = time.time()
    assert ledger.try_acquire_pull("clock", "a", 60.0) is True
    assert ledger.try_acquire_pull("clock", "a", 60.0) is False
    last = ledger.last_pull_time("clock")
    assert last is not None and before - 0.002 <= last <= time.time()  # SQLite's clock: ms resolution
    with pytest.raises(ValueError):
        ledger.try_acquire_pull("acct", "a", -1.0)


def test_renew_pull_only_for_the_holder(ledger: SmsCnLedger) -> None:
    assert ledger.try_acquire_pull("acct", "a", 60.0)
    first = ledger.last_pull_time("acct")
    assert first is not None
    assert ledger.renew_pull("acct", "b", 60.0) is False  # not the holder
    assert ledger.last_pull_time("acct") == first
    time.sleep(0.01)
    assert ledger.renew_pull("acct", "a", 60.0) is True  # the holder pulls again at once
    renewed = ledger.last_pull_time("acct")
    assert renewed is not None and renewed > first
    assert ledger.try_acquire_pull("acct", "b", 60.0) is False  # the renewed slot still holds others off
    assert ledger.renew_pull("never-pulled", "a", 60.0) is False
    assert ledger.pull_due("acct", 60.0) is False and ledger.pull_due("never-pulled", 60.0) is True


def query_lease(ledger: SmsCnLedger, account: str) -> tuple[str, float, float]:
    rows = query(ledger._url, "SELECT holder, next_pull_at, last_pull_at FROM smscn_pull_lease "
                              "WHERE account = :a", {"a": account})
    assert len(rows) == 1
    return rows[0][0], float(rows[0][1]), float(rows[0][2])


def test_lease_is_atomic_across_20_processes(backend: tuple[str, str], url: str) -> None:
    duration, interval, workers = 2.0, 0.2, 20
    arg_sets = [(url, "acct", f"holder-{k}", interval, duration) for k in range(workers)]
    results = run_workers(lease_worker, arg_sets)
    wins = sorted(w for r in results for w in r[1][0])
    attempts = sum(r[1][1] for r in results)
    bound = math.ceil(duration / interval) + 1
    gaps = [b - a for a, b in itertools.pairwise(wins)]
    print(f"\n[{backend[0]}] lease: {len(wins)} acquisitions (bound {bound}) in {attempts} attempts "
          f"by {workers} processes; smallest gap {min(gaps, default=float('nan')):.4f}s")
    assert attempts > 3 * workers  # the processes really competed (each attempt waits for the row lock)
    # Slots are granted by the ledger's clock inside the transaction: a call begun just before the
    # end may be granted a little after it, so the bound is over the span the slots really cover.
    assert len(wins) <= math.floor((wins[-1] - wins[0]) / interval + 1e-9) + 1
    assert all(gap >= interval - 1e-6 for gap in gaps), gaps
    # Not starved either: with everyone polling, the lease is taken nearly every interval.
    assert len(wins) >= bound // 2
    holders = {r[0] for r in results if r[1][0]}
    assert len(holders) >= 1
    led = SmsCnLedger(url)
    assert led.last_pull_time("acct") == pytest.approx(wins[-1], abs=1e-6)
    led.dispose()


def test_pull_time_more_than_one_interval_ahead_is_stale(ledger: SmsCnLedger) -> None:
    t0 = 1_700_000_000.0
    assert ledger.try_acquire_pull("acct", "ahead", 5.0, now=t0 + 3600)  # a host an hour ahead pulled
    assert ledger.try_acquire_pull("acct", "b", 5.0, now=t0) is True  # not held off for the hour
    assert ledger.try_acquire_pull("acct", "c", 5.0, now=t0 - 4.0) is False  # within one interval: honoured
    assert ledger.try_acquire_pull("acct", "c", 5.0, now=t0 + 5.0) is True
    assert ledger.pull_due("acct", 5.0) is True  # the real clock is years past t0


@pytest.mark.parametrize("ahead_first", [True, False], ids=["ahead-then-behind", "behind-then-ahead"])
def test_skewed_host_clocks_never_stall_the_lease(backend: tuple[str, str], url: str,
                                                  ahead_first: bool) -> None:
    # A host whose clock is an hour ahead took the lease, then left; two hosts, one on time and
    # one an hour behind, keep polling. Nobody may wait more than one interval for the next pull.
    interval, duration = 0.3, 2.4
    led = SmsCnLedger(url)
    first = 3600.0 if ahead_first else -3600.0
    real_now = time.time()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(time, "time", lambda: real_now + first)
        assert led.try_acquire_pull("acct", "skewed-host", interval)
    led.dispose()
    arg_sets = [(url, "acct", "on-time", 0.0, interval, duration),
                (url, "acct", "behind" if ahead_first else "ahead", -first, interval, duration)]
    results = run_workers(skewed_lease_worker, arg_sets)
    grants = sorted(g for r in results for g in r[1])
    reals = [g[0] for g in grants]
    start = min(reals) if reals else float("nan")
    stalls = [b - a for a, b in itertools.pairwise(reals)]
    print(f"\n[{backend[0]}] {len(grants)} grants in {duration}s at interval {interval}s; "
          f"largest gap {max(stalls, default=float('nan')):.3f}s")
    slack = 0.5  # polling every 10 ms, two processes on a busy machine (load average 20+ seen)
    assert grants, "nobody was granted the lease: stalled by the skewed pull time"
    assert start - real_now < 60.0
    assert max(stalls) <= interval + slack, stalls
    assert len(grants) >= duration / (interval + slack) - 1
    # The database's clock rations the pulls, whatever the hosts' clocks say.
    slots = sorted(g[1] for g in grants)
    assert all(b - a >= interval - 1e-6 for a, b in itertools.pairwise(slots))
    assert abs(slots[-1] - time.time()) < 10.0


def test_rows_are_stamped_by_the_database_clock(backend: tuple[str, str], url: str, ledger: SmsCnLedger,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    real = time.time()
    monkeypatch.setattr(time, "time", lambda: real + 3600.0)  # this host's clock an hour ahead
    ledger.store_reports("acct", [report(1)])
    ledger.record_intents("acct", "k", [("m1", MOBILE), ("m2", MOBILE)])
    ledger.store_sent_records("acct", [SentRecord(MOBILE, "2025-01-01 10:00:00")])
    assert ledger.try_acquire_pull("acct", "h", 5.0)
    stamps = [float(v) for row in query(url, "SELECT stored_at FROM smscn_reports UNION ALL "
                                             "SELECT created_at FROM smscn_send_intents UNION ALL "
                                             "SELECT updated_at FROM smscn_send_intents UNION ALL "
                                             "SELECT stored_at FROM smscn_sent_records UNION ALL "
                                             "SELECT last_pull_at FROM smscn_pull_lease") for v in row]
    assert len(stamps) == 7
    # The database's clock (SQLite reads the OS clock itself, untouched by this process's skew).
    assert all(abs(v - real) < 60.0 for v in stamps), (real, stamps)


def test_mysql_clock_is_right_in_the_repeated_autumn_hour(mysql_database: str) -> None:
    """A server (or session) in a zone with daylight saving: ``UNIX_TIMESTAMP(NOW(6))`` reads the
    local wall clock, and 02:30 on the night summer time ends happens twice; one of them came out
    an hour off. The ledger's sessions run in UTC, whatever the server's zone."""
    from sqlalchemy.engine import make_url

    from airflow_provider_smscn.ledger.engine import db_now

    url = mysql_database
    zoned = make_url(url).update_query_dict(  # as if it were the server's default zone
        {"init_command": "SET time_zone='Europe/Berlin'"}).render_as_string(hide_password=False)
    with SmsCnLedger(url)._entry().engine.connect() as probe:
        has_zones = probe.exec_driver_sql(
            "SELECT CONVERT_TZ('2026-01-01 00:00:00', 'UTC', 'Europe/Berlin')").scalar() is not None
    ledger = SmsCnLedger(zoned if has_zones else url)
    try:
        with ledger._entry().engine.connect() as conn:
            assert conn.exec_driver_sql("SELECT @@session.time_zone").scalar() == "+00:00"
            # 2026-10-25 00:30 and 01:30 UTC: both 02:30 in Berlin (CEST, then CET).
            for moment in (1792888200, 1792891800):
                conn.exec_driver_sql(f"SET timestamp = {moment}")
                assert db_now(conn) == moment
    finally:
        ledger.dispose()


# --------------------------------------------------------------------------------------------
# Send intents
# --------------------------------------------------------------------------------------------

def test_intents_insert_if_absent_keeps_earlier_state(ledger: SmsCnLedger) -> None:
    ledger.record_intents("acct", "key-1", [("m1", MOBILE), ("m2", "13800000002")])
    first = ledger.get_intents("acct", ["m1", "m2", "absent"])
    assert set(first) == {"m1", "m2"}
    assert first["m1"].state == "pending" and first["m1"].code is None
    assert first["m1"].mobile == MOBILE and first["m1"].idem_key == "key-1"
    ledger.mark_intents("acct", ["m1"], "accepted", 100)

    # The retry records the same ids again (plus a new one): the earlier rows are kept as they are.
    ledger.record_intents("acct", "key-2", [("m1", "13700000000"), ("m2", MOBILE), ("m3", MOBILE)])
    again = ledger.get_intents("acct", ["m1", "m2", "m3"])
    assert again["m1"] == SendIntent("acct", "m1", MOBILE, "key-1", "accepted", 100,
                                     first["m1"].created_at, again["m1"].updated_at)
    assert again["m2"] == first["m2"]
    assert again["m3"].state == "pending" and again["m3"].idem_key == "key-2"
    assert ledger.get_intents("other", ["m1"]) == {}
    ledger.record_intents("acct", "key-3", [])
    with pytest.raises(ValueError):
        ledger.record_intents("acct", "", [("m9", MOBILE)])


def test_mark_and_get_intents(ledger: SmsCnLedger) -> None:
    ids = [f"mid-{i}" for i in range(1200)]
    ledger.record_intents("acct", "k", [(m, MOBILE) for m in ids])
    created = ledger.get_intents("acct", ids[:1])[ids[0]]
    time.sleep(0.01)
    ledger.mark_intents("acct", ids[:700], "unknown")
    ledger.mark_intents("acct", ids[700:], "rejected", 4030)
    ledger.mark_intents("acct", ["not-recorded"], "accepted", 100)  # ignored
    got = ledger.get_intents("acct", [*ids, "not-recorded"])
    assert len(got) == 1200
    assert {(i.state, i.code) for i in (got[m] for m in ids[:700])} == {("unknown", None)}
    assert {(i.state, i.code) for i in (got[m] for m in ids[700:])} == {("rejected", 4030)}
    assert got[ids[0]].created_at == created.created_at < got[ids[0]].updated_at
    ledger.mark_intents("acct", ids[:1], "pending")
    assert ledger.get_intents("acct", ids[:1])[ids[0]].state == "pending"
    with pytest.raises(ValueError):
        ledger.mark_intents("acct", ids, "sent")
    assert ledger.get_intents("acct", ids[:1])[ids[0]].state == "pending"


def test_send_intent_repr_masks_number() -> None:
    intent = SendIntent("acct", "m1", MOBILE, "k", "pending", None, 1.0, 2.0)
    text = repr(intent)
    assert MOBILE not in text and "139****5678" in text and "m1" in text
    assert MOBILE not in str(intent)


def test_claim_returns_exactly_what_this_call_claimed(ledger: SmsCnLedger) -> None:
    ledger.record_intents("acct", "run", [("sent", MOBILE), ("refused", MOBILE), ("lost", MOBILE)])
    ledger.mark_intents("acct", ["sent"], "accepted", 100)
    ledger.mark_intents("acct", ["refused"], "rejected", 4030)
    ledger.mark_intents("acct", ["lost"], "unknown")
    items = [("new", MOBILE), ("sent", MOBILE), ("refused", MOBILE), ("lost", MOBILE), ("new", MOBILE)]
    assert ledger.claim_intents("acct", "run", items, "try-2") == {"new", "refused"}
    got = ledger.get_intents("acct", ["new", "sent", "refused", "lost"])
    assert {m: (i.state, i.code, i.claimed_by) for m, i in got.items()} == {
        "new": ("pending", None, "try-2"), "refused": ("pending", None, "try-2"),
        "sent": ("accepted", 100, None), "lost": ("unknown", None, None)}
    # Claimed ids are pending now: nobody claims them again, not even the same claimant.
    assert ledger.claim_intents("acct", "run", items, "try-2") == set()
    assert ledger.claim_intents("acct", "run", items, "try-3") == set()
    assert ledger.claim_intents("acct", "run", [], "try-3") == set()
    with pytest.raises(ValueError, match="claimant"):
        ledger.claim_intents("acct", "run", items, "")


def test_mark_with_claimant_leaves_other_claims_alone(ledger: SmsCnLedger) -> None:
    # A zombie (try-1) claimed, was refused, its retry (try-2) claimed again and got through;
    # the zombie's late outcome must not overwrite the retry's.
    assert ledger.claim_intents("acct", "run", [("m1", MOBILE), ("m2", MOBILE)], "try-1") == {"m1", "m2"}
    ledger.mark_intents("acct", ["m1", "m2"], "rejected", 4030, claimant="try-1")
    assert ledger.claim_intents("acct", "run", [("m1", MOBILE)], "try-2") == {"m1"}
    ledger.mark_intents("acct", ["m1"], "accepted", 100, claimant="try-2")
    ledger.mark_intents("acct", ["m1", "m2"], "unknown", claimant="try-1")
    got = ledger.get_intents("acct", ["m1", "m2"])
    assert (got["m1"].state, got["m1"].code, got["m1"].claimed_by) == ("accepted", 100, "try-2")
    assert (got["m2"].state, got["m2"].claimed_by) == ("unknown", "try-1")
    ledger.mark_intents("acct", ["m1"], "superseded")  # without a claimant: as before, any row
    assert ledger.get_intents("acct", ["m1"])["m1"].state == "superseded"


def test_supersede_only_ids_still_uncertain(ledger: SmsCnLedger) -> None:
    # The retry gave up on m1..m3; m2's 100 arrived meanwhile, m3 was refused: only m1 and m4
    # (pending / unknown) may be superseded, and only those are returned (to be called again).
    ledger.claim_intents("acct", "run", [(f"m{i}", MOBILE) for i in range(1, 5)], "try-1")
    ledger.mark_intents("acct", ["m2"], "accepted", 100)
    ledger.mark_intents("acct", ["m3"], "rejected", 4030)
    ledger.mark_intents("acct", ["m4"], "unknown")
    assert ledger.supersede_intents("acct", ["m1", "m2", "m3", "m4", "absent"]) == {"m1", "m4"}
    got = ledger.get_intents("acct", ["m1", "m2", "m3", "m4"])
    assert [got[m].state for m in ("m1", "m2", "m3", "m4")] == ["superseded", "accepted", "rejected",
                                                                 "superseded"]
    assert ledger.supersede_intents("acct", ["m1"]) == set()  # once only


def _beijing(offset: float) -> str:
    from datetime import datetime, timedelta

    from airflow_provider_smscn.client.signing import BEIJING

    return (datetime.now(BEIJING) + timedelta(seconds=offset)).strftime("%Y-%m-%d %H:%M:%S")


def test_a_sent_record_proves_one_uncertain_intent_that_no_other_accounts_for(ledger: SmsCnLedger) -> None:
    # Two runs crashed with MOBILE claimed; one record of MOBILE came: it is one call, and either
    # run may have made it, so neither is proven. A second record: now each is.
    for run in ("r1", "r2"):
        assert ledger.claim_intents("acct", run, [(run, MOBILE)], run) == {run}
    ledger.store_sent_records("acct", [SentRecord(mobile=MOBILE, sendtime=_beijing(5), status=1)])
    assert ledger.prove_by_sent_records("acct", ["r1", "r2"], 2.0) == set()
    assert ledger.prove_by_sent_records("acct", ["r1"], 2.0) == set()
    ledger.store_sent_records("acct", [SentRecord(mobile=MOBILE, sendtime=_beijing(6), status=1),
                                       SentRecord(mobile=MOBILE, sendtime=_beijing(7), status=0)])
    assert ledger.prove_by_sent_records("acct", ["r1"], 2.0) == {"r1"}
    assert ledger.prove_by_sent_records("acct", ["r2"], 2.0) == {"r2"}
    assert {i.state for i in ledger.get_intents("acct", ["r1", "r2"]).values()} == {"accepted"}


def test_a_sent_record_of_an_accepted_call_proves_nothing_else(ledger: SmsCnLedger) -> None:
    # r1 crashed with MOBILE claimed; then another task called MOBILE (accepted, 100): its record
    # is its own call. A record sent before r1's intent was written is no proof either.
    ledger.store_sent_records("acct", [SentRecord(mobile=MOBILE, sendtime=_beijing(-600), status=1)])
    assert ledger.claim_intents("acct", "r1", [("r1", MOBILE)], "r1") == {"r1"}
    assert ledger.claim_intents("acct", "other", [("o1", MOBILE)], "o1") == {"o1"}
    ledger.store_sent_records("acct", [SentRecord(mobile=MOBILE, sendtime=_beijing(0), status=1)])
    ledger.mark_intents("acct", ["o1"], "accepted", 100, claimant="o1")
    assert ledger.prove_by_sent_records("acct", ["r1"], 2.0) == set()
    assert ledger.get_intents("acct", ["r1"])["r1"].state == "pending"
    ledger.store_sent_records("other", [SentRecord(mobile=MOBILE, sendtime=_beijing(1), status=1)])
    assert ledger.prove_by_sent_records("acct", ["r1"], 2.0) == set()  # another account's call


def test_concurrent_claims_give_each_id_to_exactly_one_process(backend: tuple[str, str], url: str,
                                                                  ledger: SmsCnLedger) -> None:
    # 6 processes claim the same 600 ids at once, chunk by chunk, half of them walking the list
    # backwards; 100 ids were refused earlier (claimable again), 50 accepted (never claimable).
    ids = [f"{i:020d}" for i in range(600)]
    ledger.record_intents("acct", "run-0", [(m, MOBILE) for m in ids[:150]])
    ledger.mark_intents("acct", ids[:100], "rejected", 4030)
    ledger.mark_intents("acct", ids[100:150], "accepted", 100)
    arg_sets = [(url, "acct", f"exec-{k}", ids if k % 2 else ids[::-1], 25) for k in range(6)]
    results = run_workers(claim_worker, arg_sets, timeout=180)
    claimed = [m for r in results for m in r[1]]
    print(f"\n[{backend[0]}] claims per process: {sorted(len(r[1]) for r in results)}")
    assert len(claimed) == len(set(claimed)) == 550  # every claimable id, each by exactly one process
    assert set(claimed) == set(ids[:100]) | set(ids[150:])
    if backend[0] != "sqlite":  # SQLite serialises every writer: there one process tends to take all
        assert sum(1 for r in results if r[1]) >= 2, "the processes did not really race"
    owner = {m: r[0] for r in results for m in r[1]}
    got = ledger.get_intents("acct", ids)
    assert all(got[m].claimed_by == owner[m] and got[m].state == "accepted" for m in owner)
    assert {got[m].claimed_by for m in ids[100:150]} == {None}


# --------------------------------------------------------------------------------------------
# Sent records
# --------------------------------------------------------------------------------------------

def test_get_sent_records_of_numbers(ledger: SmsCnLedger) -> None:
    records = [SentRecord(mobile=MOBILE, sendtime="2025-01-01 10:00:00", content="code 1", status=1),
               SentRecord(mobile="13800000002", sendtime="2025-01-01 10:00:01", status=0),
               SentRecord(mobile=MOBILE, sendtime="2025-01-01 10:05:00", status=1)]
    ledger.store_sent_records("acct", records)
    ledger.store_sent_records("other", records)
    got = ledger.get_sent_records("acct", [MOBILE, "13700000000"])
    assert [(r.mobile, r.sendtime, r.status, r.content) for r in got] == [
        (MOBILE, "2025-01-01 10:00:00", 1, ""), (MOBILE, "2025-01-01 10:05:00", 1, "")]
    assert len(ledger.get_sent_records("acct", [MOBILE, "13800000002"])) == 3
    assert ledger.get_sent_records("acct", []) == []
    assert MOBILE not in repr(got)


def test_sent_records_content_kept_out_by_default(backend: tuple[str, str], ledger: SmsCnLedger) -> None:
    name, url = backend
    secret = "Your code is 739184"
    records = [SentRecord(mobile=MOBILE, sendtime="2025-01-01 10:00:00", content=secret, status=1),
               SentRecord(mobile=MOBILE, sendtime="2025-01-01 10:00:00", content=secret, status=1),
               SentRecord(mobile="13800000002", sendtime="2025-01-01 10:00:01", content=secret, status=0)]
    assert ledger.store_sent_records("acct", records) == 3  # identical sends are two records
    assert ledger.store_sent_records("acct", []) == 0
    assert ledger.count_sent_records("acct") == 3
    assert ledger.count_sent_records("other") == 0
    rows = query(url, "SELECT account, mobile, sendtime, status, content FROM smscn_sent_records ORDER BY id")
    assert rows == [("acct", MOBILE, "2025-01-01 10:00:00", 1, None),
                    ("acct", MOBILE, "2025-01-01 10:00:00", 1, None),
                    ("acct", "13800000002", "2025-01-01 10:00:01", 0, None)]
    if name == "sqlite":
        ledger.dispose()
        db = Path(url.removeprefix("sqlite:///"))
        raw = b"".join(p.read_bytes() for p in db.parent.iterdir() if p.name.startswith(db.name))
        assert b"739184" not in raw
        assert MOBILE.encode() in raw  # the check above looks at the right bytes

    assert ledger.store_sent_records("other", records[:1], keep_content=True) == 1
    assert ledger.count_sent_records("other") == 1
    assert query(url, "SELECT content FROM smscn_sent_records WHERE account = 'other'") == [(secret,)]


# --------------------------------------------------------------------------------------------
# Housekeeping
# --------------------------------------------------------------------------------------------

DAY = 86400.0


def fill(ledger: SmsCnLedger, tag: str) -> None:
    ledger.store_reports("acct", [DeliveryReport(MOBILE, f"r-{tag}", 100)])
    ledger.record_intents("acct", "k", [(f"i-{tag}", MOBILE)])
    ledger.store_sent_records("acct", [SentRecord(MOBILE, f"2025-01-01 10:00:00 {tag}")])


def age(url: str, tag: str, seconds: float) -> None:
    """Make the rows of ``fill(tag)`` look ``seconds`` older, as if written that long ago."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            p = {"s": seconds, "r": f"r-{tag}", "i": f"i-{tag}", "t": f"% {tag}"}
            conn.execute(text("UPDATE smscn_reports SET stored_at = stored_at - :s WHERE mobileid = :r"), p)
            conn.execute(text("UPDATE smscn_send_intents SET updated_at = updated_at - :s, "
                              "created_at = created_at - :s WHERE mobileid = :i"), p)
            conn.execute(text("UPDATE smscn_sent_records SET stored_at = stored_at - :s "
                              "WHERE sendtime LIKE :t"), p)
    finally:
        engine.dispose()


def test_prune(ledger: SmsCnLedger, url: str) -> None:
    assert ledger.try_acquire_pull("acct", "h", 1.0, now=1.0)
    fill(ledger, "old")
    fill(ledger, "new")
    age(url, "old", 3 * DAY)
    assert ledger.prune(7 * DAY) == {"smscn_reports": 0, "smscn_send_intents": 0, "smscn_sent_records": 0,
                                         "smscn_balance_readings": 0, "smscn_event_cursors": 0}
    deleted = ledger.prune(2 * DAY)
    assert deleted == {"smscn_reports": 1, "smscn_send_intents": 1, "smscn_sent_records": 1,
                       "smscn_balance_readings": 0, "smscn_event_cursors": 0}
    assert set(ledger.get_reports("acct", ["r-old", "r-new"])) == {"r-new"}
    assert set(ledger.get_intents("acct", ["i-old", "i-new"])) == {"i-new"}
    assert ledger.count_sent_records("acct") == 1
    assert ledger.last_pull_time("acct") == 1.0  # leases are never pruned


def test_prune_keeps_recently_updated_intents(ledger: SmsCnLedger, url: str) -> None:
    ledger.record_intents("acct", "k", [("i-a", MOBILE), ("i-b", MOBILE)])
    age(url, "a", 3 * DAY)
    age(url, "b", 3 * DAY)
    ledger.mark_intents("acct", ["i-a"], "unknown")  # still being worked on: kept
    assert ledger.prune(2 * DAY)["smscn_send_intents"] == 1
    assert set(ledger.get_intents("acct", ["i-a", "i-b"])) == {"i-a"}


@pytest.mark.parametrize("days", [0, 0.5, -1, "0", float("nan"), "soon", None])
def test_retention_below_one_day_is_refused(ledger: SmsCnLedger, days: object) -> None:
    fill(ledger, "x")
    seconds = days * DAY if isinstance(days, (int, float)) else 0.0
    with pytest.raises(ValueError, match=r"\[smscn\] retention_days must be at least 1 day"):
        ledger.prune(seconds)
    with pytest.raises(ValueError, match=r"\[smscn\] retention_days must be at least 1 day"):
        ledger.maybe_prune(seconds, every_seconds=0)
    assert set(ledger.get_intents("acct", ["i-x"])) == {"i-x"}  # nothing was pruned
    from airflow_provider_smscn.ledger.retention import check_retention_days

    with pytest.raises(ValueError, match=r"\[smscn\] retention_days"):
        check_retention_days(days)
    assert check_retention_days(1) == 1.0 and check_retention_days("30") == 30.0


def test_pending_and_unknown_intents_outlive_a_clock_far_ahead(backend: tuple[str, str], url: str,
                                                             ledger: SmsCnLedger,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    # Intents the send just wrote, a report nobody has read yet: with retention_days=1, neither
    # may go because this host's clock is 10 days ahead, nor because a caller passes such a time.
    ledger.record_intents("acct", "k", [("i-pending", MOBILE), ("i-unknown", MOBILE)])
    ledger.mark_intents("acct", ["i-unknown"], "unknown")
    ledger.store_reports("acct", [DeliveryReport(MOBILE, "r-unread", 100)])
    real = time.time()
    monkeypatch.setattr(time, "time", lambda: real + 10 * DAY)
    ledger.maybe_prune(1 * DAY, every_seconds=0)
    assert ledger.prune(1 * DAY) == {"smscn_reports": 0, "smscn_send_intents": 0, "smscn_sent_records": 0,
                                         "smscn_balance_readings": 0, "smscn_event_cursors": 0}
    assert ledger.prune(1 * DAY, now=real + 10 * DAY)["smscn_send_intents"] == 0  # never ahead of the rows
    assert set(ledger.get_intents("acct", ["i-pending", "i-unknown"])) == {"i-pending", "i-unknown"}
    assert set(ledger.get_reports("acct", ["r-unread"])) == {"r-unread"}


def test_maybe_prune_runs_at_most_once_per_period(ledger: SmsCnLedger, url: str) -> None:
    fill(ledger, "1")
    fill(ledger, "keep")
    age(url, "1", 2 * DAY)
    ledger.maybe_prune(DAY, every_seconds=3600)  # first call anywhere: prunes
    assert ledger.count_sent_records("acct") == 1
    fill(ledger, "2")
    age(url, "2", 2 * DAY)
    ledger.maybe_prune(DAY, every_seconds=3600)  # too soon for this process: no database work
    assert ledger.count_sent_records("acct") == 2
    # A fresh process (as Airflow starts for every task) is held back by the prune lease row.
    code = ("import sys; from airflow_provider_smscn.ledger import SmsCnLedger; "
            "led = SmsCnLedger(sys.argv[1]); led.maybe_prune(86400, every_seconds=3600); "
            "print(led.count_sent_records('acct'))")
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=60,
                         check=True, cwd=REPO)
    assert out.stdout.strip() == "2"
    assert set(ledger.get_reports("acct", ["r-2"])) == {"r-2"}
    ledger.maybe_prune(DAY, every_seconds=0)
    assert ledger.count_sent_records("acct") == 1
    assert ledger.get_reports("acct", ["r-2"]) == {}
    with pytest.raises(ValueError, match="reserved"):
        ledger.try_acquire_pull("__smscn_prune__", "h", 1.0)


def test_fallback_without_on_conflict(ledger: SmsCnLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    # Dialects without ON CONFLICT DO NOTHING insert row by row in savepoints; same results.
    from airflow_provider_smscn.ledger import store as store_module

    monkeypatch.setattr(store_module, "_UPSERT_DIALECTS", frozenset())
    assert ledger.store_reports("acct", [report(1), report(2)], pull_id="p-1") == 2
    assert ledger.store_reports("acct", [report(1), report(2), report(3)], pull_id="p-1") == 1
    assert set(ledger.get_reports("acct", ["mid-000001", "mid-000002", "mid-000003"])) == {
        "mid-000001", "mid-000002", "mid-000003"}
    ledger.record_intents("acct", "k", [("m1", MOBILE)])
    ledger.mark_intents("acct", ["m1"], "rejected", 4030)
    ledger.record_intents("acct", "k2", [("m1", MOBILE), ("m2", MOBILE)])
    got = ledger.get_intents("acct", ["m1", "m2"])
    assert (got["m1"].state, got["m1"].idem_key, got["m2"].state) == ("rejected", "k", "pending")
    assert ledger.try_acquire_pull("acct", "a", 5.0, now=100.0) is True
    assert ledger.try_acquire_pull("acct", "b", 5.0, now=101.0) is False
    assert ledger.try_acquire_pull("acct", "b", 5.0, now=105.0) is True


# Which report of an id is the latest; reports stored without a pull id

_MID = "1390000888800001"


def test_a_later_delivered_report_without_retime_wins_over_an_earlier_failure(ledger: SmsCnLedger) -> None:
    """The first pull says 134 (failed) at a readable time; a later pull says 100 (delivered) with
    an empty retime (the vendor's field missing, as reports of other systems may have it). Nothing
    says the 100 came earlier, yet ranking by the raw string puts "" below every time, so the
    sensor keeps failing a delivered call. An unreadable retime should fall back to pull order."""
    ledger.store_reports("acct", [DeliveryReport(mobile=MOBILE, mobileid=_MID, resultcode=134,
                                                 status="UNDELIV", retime="2026-11-29 10:00:00")],
                         pull_id="pull-1")
    ledger.store_reports("acct", [DeliveryReport(mobile=MOBILE, mobileid=_MID, resultcode=100,
                                                 status="DELIVRD", retime="")], pull_id="pull-2")
    assert ledger.get_reports("acct", [_MID])[_MID].resultcode == 100


def test_a_malformed_retime_does_not_outrank_every_readable_one(ledger: SmsCnLedger) -> None:
    """``2026/11/29 09:00:00`` (an hour earlier, other separators) sorts after ``2026-11-29 ...``
    as a string ('/' > '-'): an earlier failure would beat a later delivery for good."""
    ledger.store_reports("acct", [
        DeliveryReport(mobile=MOBILE, mobileid=_MID, resultcode=134, status="UNDELIV",
                       retime="2026/11/29 09:00:00"),
        DeliveryReport(mobile=MOBILE, mobileid=_MID, resultcode=100, status="DELIVRD",
                       retime="2026-11-29 10:00:00")], pull_id="pull-1")
    assert ledger.get_reports("acct", [_MID])[_MID].resultcode == 100


def test_without_pull_id_two_reports_without_id_in_one_pull_are_two_rows(ledger: SmsCnLedger) -> None:
    """Two calls of other systems (empty ``mobileids``) to one number, delivered in the same second,
    come in one pull. They are two reports; stored without a ``pull_id`` (the public API allows it)
    the content key makes them one row and the second is dropped."""
    twin = DeliveryReport(mobile=MOBILE, mobileid="", resultcode=100, status="DELIVRD",
                          retime="2026-11-29 10:00:00")
    assert ledger.store_reports("acct", [twin, twin]) == 2


def test_mysql_refuses_a_value_too_long_instead_of_storing_it_cut_short(mysql_database: str) -> None:
    """Review 9: ``INSERT IGNORE`` turned every error into a warning, so a 300-character id was
    stored cut to 255 (and two such ids became one). Only a duplicate key may be skipped."""
    from sqlalchemy.exc import DataError

    ledger = SmsCnLedger(mysql_database)
    try:
        too_long = "m" * 300
        with pytest.raises(DataError):
            ledger.record_intents("acct", "key", [(too_long, "13900000000")])
        with pytest.raises(DataError):
            ledger.claim_intents("acct", "key", [(too_long, "13900000000")], "run-1")
        assert ledger.get_intents("acct", [too_long[:255]]) == {}
        # duplicates are still skipped, and counted as not inserted
        ledger.record_intents("acct", "key", [("m1", "13900000000")])
        ledger.record_intents("acct", "key", [("m1", "13900000000"), ("m2", "13900000001")])
        assert ledger.claim_intents("acct", "key", [("m1", "13900000000"), ("m3", "13900000002")],
                                    "run-1") == {"m3"}
        assert ledger.claim_intents("acct", "key", [("m3", "13900000002")], "run-2") == set()
        assert ledger.store_reports("acct", [DeliveryReport("13900000000", "m1", 100)], "pull-1") == 1
        assert ledger.store_reports("acct", [DeliveryReport("13900000000", "m1", 100)], "pull-1") == 0
    finally:
        ledger.dispose()
