"""Tests of the ledger on SQLite and on PostgreSQL (never skipped: a cluster is started if needed).

PostgreSQL: ``SMSCN_TEST_PG_URL`` if set (the user needs CREATE on the database), else the cluster
of ``.ci/postgres.sh``. Every test gets a fresh schema (``search_path`` in the URL), so the
ledger creates its tables from nothing each time, in whichever process gets there first.
"""

from __future__ import annotations

import itertools
import math
import multiprocessing
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from ledger_helpers import (
    ROOT,
    claim_worker,
    drop_pg_schema,
    fork_child_store,
    lease_worker,
    new_pg_schema,
    query,
    report_for,
    run_workers,
    store_worker,
)

from airflow_provider_smscn.client.models import DeliveryReport, SentRecord
from airflow_provider_smscn.ledger import SendIntent, SmsCnLedger
from airflow_provider_smscn.ledger import store as store_module

if TYPE_CHECKING:
    from collections.abc import Iterator

MOBILE = "13912345678"


@pytest.fixture(params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """(backend name, URL of an empty ledger database)."""
    if request.param == "sqlite":
        # A directory that does not exist yet: the ledger must create it.
        yield "sqlite", f"sqlite:///{tmp_path / 'nested' / 'dir' / 'ledger.db'}"
        return
    server = request.getfixturevalue("pg_url")
    schema, url = new_pg_schema(server)
    try:
        yield "postgresql", url
    finally:
        SmsCnLedger(url).dispose()
        drop_pg_schema(server, schema)


@pytest.fixture
def url(backend: tuple[str, str]) -> str:
    return backend[1]


@pytest.fixture
def ledger(url: str) -> Iterator[SmsCnLedger]:
    led = SmsCnLedger(url)
    yield led
    led.dispose()


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
    else:
        schema = url.split("search_path%3D")[-1] if "%3D" in url else url.split("search_path=")[-1]
        rows = query(url, "SELECT table_name FROM information_schema.tables "
                          "WHERE table_schema = :s AND table_name LIKE 'smscn%%'", {"s": schema})
        assert query(url, "SELECT current_schema()") == [(schema,)]
    assert sorted(r[0] for r in rows) == [
        "smscn_pull_lease", "smscn_reports", "smscn_send_intents", "smscn_sent_records"]


def test_url_for_display_hides_password() -> None:
    led = SmsCnLedger("postgresql+psycopg2://u:s3cret-pw@db.example:5432/x")
    assert "s3cret-pw" not in led.url_for_display
    assert "s3cret-pw" not in repr(led)
    assert led.url_for_display.startswith("postgresql+psycopg2://u:")
    with pytest.raises(ValueError):
        SmsCnLedger("")


def test_import_is_cheap() -> None:
    code = ("import sys, airflow_provider_smscn.ledger as m; m.SmsCnLedger('sqlite:////nonexistent/x.db'); "
            "print(sorted(k for k in sys.modules if k.split('.')[0] in ('sqlalchemy', 'airflow')))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True,
                         cwd=ROOT)
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
    assert ledger.store_reports("acct", first) == 3
    assert ledger.store_reports("acct", first) == 0  # without a pull id: the same report is one row
    # A different report for a stored id is a row of its own; duplicates in a batch count once.
    later = DeliveryReport(mobile=MOBILE, mobileid="mid-000002", resultcode=4012, status="X",
                           retime="2025-01-02 00:00:00")
    assert ledger.store_reports("acct", [later, report(4), report(4)]) == 2
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


def test_report_fields_round_trip(ledger: SmsCnLedger) -> None:
    odd = DeliveryReport(mobile="8613900001111", mobileid="x" * 200, resultcode=4012, status="",
                         retime="2025-06-01 12:00:00")
    assert ledger.store_reports("acct", [odd]) == 1
    got = ledger.get_reports("acct", [odd.mobileid])[odd.mobileid]
    assert got == odd and not got.delivered


def test_thousands_of_ids(ledger: SmsCnLedger) -> None:
    reports = [report(i) for i in range(4000)]
    assert ledger.store_reports("acct", reports) == 4000
    wanted = [f"mid-{i:06d}" for i in range(0, 7000)]  # 3000 absent ones too
    got = ledger.get_reports("acct", wanted)
    assert len(got) == 4000
    assert got == {r.mobileid: r for r in reports}
    assert ledger.store_reports("acct", reports[::-1]) == 0


def test_concurrent_store_from_20_processes(ledger: SmsCnLedger, url: str) -> None:
    # Worker k stores reports k*40 .. k*40+199 in batches of 50: each id is offered by up to 5
    # processes at once. Together they must store each of the 960 ids exactly once.
    span, step, workers = 200, 40, 20
    arg_sets = [(url, "acct", f"w{k}", list(range(k * step, k * step + span))[::(1 if k % 2 else -1)], 50)
                for k in range(workers)]
    results = run_workers(store_worker, arg_sets)
    expected = {i for k in range(workers) for i in range(k * step, k * step + span)}
    assert sum(r[1] for r in results) == len(expected) == 960
    got = ledger.get_reports("acct", [report_for(i)[1] for i in expected])
    assert got == {report_for(i)[1]: report(i) for i in expected}
    assert query(url, "SELECT count(*), count(DISTINCT mobileid) FROM smscn_reports") == [(960, 960)]


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
    # The default clock is time.time().
    before = time.time()
    assert ledger.try_acquire_pull("clock", "a", 60.0) is True
    assert ledger.try_acquire_pull("clock", "a", 60.0) is False
    last = ledger.last_pull_time("clock")
    assert last is not None and before <= last <= time.time()
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
    wins = sorted(w for r in results for w in r[1])
    attempts = sum(r[2] for r in results)
    bound = math.ceil(duration / interval) + 1
    gaps = [b - a for a, b in itertools.pairwise(wins)]
    print(f"\n[{backend[0]}] lease: {len(wins)} acquisitions (bound {bound}) in {attempts} attempts "
          f"by {workers} processes; smallest gap {min(gaps, default=float('nan')):.4f}s")
    assert attempts > 10 * workers  # the processes really competed
    # Slots are granted by the ledger's clock inside the transaction: a call begun just before the
    # end may be granted a little after it, so the bound is over the span the slots really cover.
    assert len(wins) <= math.floor((wins[-1] - wins[0]) / interval + 1e-9) + 1
    assert wins[-1] - wins[0] <= duration + 1.0
    assert all(gap >= interval - 1e-6 for gap in gaps), gaps
    # Not starved either: with everyone polling, the lease is taken nearly every interval.
    assert len(wins) >= bound // 2
    holders = {r[0] for r in results if r[1]}
    assert len(holders) >= 1
    led = SmsCnLedger(url)
    assert led.last_pull_time("acct") == pytest.approx(wins[-1], abs=1e-6)
    led.dispose()


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

def fill(ledger: SmsCnLedger, tag: str) -> None:
    ledger.store_reports("acct", [DeliveryReport(MOBILE, f"r-{tag}", 100)])
    ledger.record_intents("acct", "k", [(f"i-{tag}", MOBILE)])
    ledger.store_sent_records("acct", [SentRecord(MOBILE, "2025-01-01 10:00:00")])


def test_prune(ledger: SmsCnLedger) -> None:
    assert ledger.try_acquire_pull("acct", "h", 1.0, now=1.0)
    fill(ledger, "old")
    time.sleep(0.05)
    boundary = time.time()
    time.sleep(0.05)
    fill(ledger, "new")
    # Nothing is older than a day yet.
    assert ledger.prune(86400) == {"smscn_reports": 0, "smscn_send_intents": 0, "smscn_sent_records": 0}
    deleted = ledger.prune(3600, now=boundary + 3600)
    assert deleted == {"smscn_reports": 1, "smscn_send_intents": 1, "smscn_sent_records": 1}
    assert set(ledger.get_reports("acct", ["r-old", "r-new"])) == {"r-new"}
    assert set(ledger.get_intents("acct", ["i-old", "i-new"])) == {"i-new"}
    assert ledger.count_sent_records("acct") == 1
    assert ledger.last_pull_time("acct") == 1.0  # leases are never pruned
    with pytest.raises(ValueError):
        ledger.prune(-1)


def test_prune_keeps_recently_updated_intents(ledger: SmsCnLedger) -> None:
    ledger.record_intents("acct", "k", [("a", MOBILE), ("b", MOBILE)])
    time.sleep(0.05)
    boundary = time.time()
    time.sleep(0.05)
    ledger.mark_intents("acct", ["a"], "unknown")  # still being worked on: kept
    assert ledger.prune(10, now=boundary + 10)["smscn_send_intents"] == 1
    assert set(ledger.get_intents("acct", ["a", "b"])) == {"a"}


def test_maybe_prune_runs_at_most_once_per_period(ledger: SmsCnLedger, url: str) -> None:
    fill(ledger, "1")
    time.sleep(0.02)
    ledger.maybe_prune(0.001, every_seconds=3600)  # first call anywhere: prunes
    assert ledger.count_sent_records("acct") == 0
    fill(ledger, "2")
    time.sleep(0.02)
    ledger.maybe_prune(0.001, every_seconds=3600)  # too soon for this process: no database work
    assert ledger.count_sent_records("acct") == 1
    # A fresh process (as Airflow starts for every task) is held back by the prune lease row.
    code = ("import sys; from airflow_provider_smscn.ledger import SmsCnLedger; "
            "led = SmsCnLedger(sys.argv[1]); led.maybe_prune(0.001, every_seconds=3600); "
            "print(led.count_sent_records('acct'))")
    out = subprocess.run([sys.executable, "-c", code, url], capture_output=True, text=True, timeout=60,
                         check=True, cwd=ROOT)
    assert out.stdout.strip() == "1"
    assert set(ledger.get_reports("acct", ["r-2"])) == {"r-2"}
    ledger.maybe_prune(0.001, every_seconds=0)
    assert ledger.count_sent_records("acct") == 0
    assert ledger.get_reports("acct", ["r-2"]) == {}
    with pytest.raises(ValueError, match="reserved"):
        ledger.try_acquire_pull("__smscn_prune__", "h", 1.0)


def test_fallback_without_on_conflict(ledger: SmsCnLedger, monkeypatch: pytest.MonkeyPatch) -> None:
    # Dialects without ON CONFLICT DO NOTHING insert row by row in savepoints; same results.
    monkeypatch.setattr(store_module, "_UPSERT_DIALECTS", frozenset())
    assert ledger.store_reports("acct", [report(1), report(2)]) == 2
    assert ledger.store_reports("acct", [report(2), report(3)]) == 1
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
