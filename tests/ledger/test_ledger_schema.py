"""The ledger's schema revision: new ledgers, ledgers written by 0.1.0 upgraded in place, packaging."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.client.models import DeliveryReport
from airflow_provider_smscn.ledger import SmsCnLedger
from tests.support.databases import ensure_sqlite_parent, query
from tests.support.ledger_v0_1_0 import (
    N_INTENTS,
    N_REPORTS,
    N_SENT,
    legacy_intent,
    legacy_report,
    write_ledger_0_1_0,
)
from tests.support.ledger_workers import first_use_worker, run_workers
from tests.support.paths import REPO

if TYPE_CHECKING:
    from pathlib import Path


def schema_differences(url: str) -> list[Any]:
    """What Alembic's autogenerate finds between the database and the ledger's models ([] = none)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext
    from sqlalchemy import create_engine

    from airflow_provider_smscn.ledger.schema import VERSION_TABLE, metadata

    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            diffs = compare_metadata(context, metadata())
    finally:
        engine.dispose()
    # Tables that are not the ledger's models: its version table, SQLite's AUTOINCREMENT bookkeeping
    # (listed by SQLAlchemy 1.4's inspector).
    others = (VERSION_TABLE, "sqlite_sequence")
    return [d for d in diffs if not (d[0] == "remove_table" and d[1].name in others)]


def test_new_ledger_is_at_the_head_revision_and_matches_the_models(backend: tuple[str, str],
                                                                   ledger: SmsCnLedger) -> None:
    from airflow_provider_smscn.ledger.migrate import MIGRATIONS_DIR
    from airflow_provider_smscn.ledger.schema import HEAD_REVISION

    assert ledger.get_reports("acct", ["x"]) == {}
    assert query(backend[1], "SELECT version_num FROM smscn_alembic_version") == [(HEAD_REVISION,)]
    assert schema_differences(backend[1]) == []
    # the sms.cn page's counts: none yet, and the change counter they are checked against
    assert query(backend[1], "SELECT bucket, generation, counts FROM smscn_page_counts") == [(-1, 0, None)]
    # the ledger's own id, written once with the schema
    ids = query(backend[1], "SELECT value FROM smscn_ledger_meta WHERE name = 'ledger_id'")
    assert ids == [(ledger.ledger_id(),)] and len(ledger.ledger_id()) == 32
    from alembic.script import ScriptDirectory

    assert ScriptDirectory(MIGRATIONS_DIR).get_current_head() == HEAD_REVISION


def test_ledger_of_0_1_0_upgraded_in_place_by_8_processes_at_once(backend: tuple[str, str]) -> None:
    url = backend[1]
    write_ledger_0_1_0(url)
    assert query(url, "SELECT count(*) FROM smscn_reports") == [(N_REPORTS,)]

    results = run_workers(first_use_worker, [(url, f"w{k}") for k in range(8)], timeout=240)
    # Every process saw every old report, and could use the new behaviour at once.
    assert [r[1][0] for r in results] == [N_REPORTS] * 8
    assert sorted(m for r in results for m in r[1][1]) == sorted(f"new-w{k}" for k in range(8))

    from airflow_provider_smscn.ledger.schema import HEAD_REVISION

    assert query(url, "SELECT version_num FROM smscn_alembic_version") == [(HEAD_REVISION,)]
    assert schema_differences(url) == []
    led = SmsCnLedger(url)
    try:
        # Every row kept, field for field.
        old_ids = [legacy_report(i)["mobileid"] for i in range(N_REPORTS)]
        got = led.get_reports("acct", old_ids)
        expected = {r["mobileid"]: DeliveryReport(r["mobile"], r["mobileid"], r["resultcode"], r["status"],
                                                  r["retime"]) for r in map(legacy_report, range(N_REPORTS))}
        expected["old-00001"] = got["old-00001"]  # the workers stored later reports for this one
        assert got == expected
        assert got["old-00001"].retime.startswith("2025-01-02")  # the latest of 9 reports for the id
        rows, _ = led.get_reports_after("acct", 0, limit=N_REPORTS)
        assert [r.mobileid for _, r in rows] == old_ids  # ids follow the order they were stored in
        intents = led.get_intents("acct", [legacy_intent(i)["mobileid"] for i in range(N_INTENTS)])
        assert len(intents) == N_INTENTS
        for i in range(N_INTENTS):
            row, kept = legacy_intent(i), intents[legacy_intent(i)["mobileid"]]
            assert (kept.state, kept.code, kept.mobile, kept.idem_key, kept.created_at, kept.updated_at,
                    kept.claimed_by) == (row["state"], row["code"], row["mobile"], row["idem_key"],
                                         row["created_at"], row["updated_at"], None)
        assert led.count_sent_records("acct") == N_SENT
        assert led.last_pull_time("acct") == 1_750_000_000.0
        # A rejected intent of 0.1.0 can be claimed by a retry; others stay as they were.
        rejected, accepted = legacy_intent(2)["mobileid"], legacy_intent(1)["mobileid"]
        items = [(rejected, "13800000002"), (accepted, "13800000001")]
        assert led.claim_intents("acct", "k", items, "retry") == {rejected}
    finally:
        led.dispose()


def test_version_table_is_the_ledgers_own(backend: tuple[str, str]) -> None:
    # A ledger in a database Airflow (Alembic) also uses: Airflow's alembic_version is left alone.
    url = backend[1]
    from sqlalchemy import create_engine

    ensure_sqlite_parent(url)
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL)")
        conn.exec_driver_sql("INSERT INTO alembic_version VALUES ('29ce7909c52b')")
    engine.dispose()
    led = SmsCnLedger(url)
    assert led.store_reports("acct", [DeliveryReport("13900000000", "m", 100)]) == 1
    led.dispose()
    assert query(url, "SELECT version_num FROM alembic_version") == [("29ce7909c52b",)]


def test_upgraded_once_then_only_read(backend: tuple[str, str], ledger: SmsCnLedger) -> None:
    # A fresh process finds the schema current with one read and never imports Alembic.
    ledger.count_sent_records("acct")
    code = ("import sys; from airflow_provider_smscn.ledger import SmsCnLedger; "
            "led = SmsCnLedger(sys.argv[1]); led.count_sent_records('acct'); "
            "print('alembic' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, backend[1]], capture_output=True, text=True,
                         timeout=120, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


def test_migrations_ship_in_the_wheel(tmp_path: Path) -> None:
    subprocess.run([sys.executable, "-m", "build", "--wheel", "--outdir", str(tmp_path), str(REPO)],
                   capture_output=True, text=True, timeout=600, check=True)
    wheel = next(tmp_path.glob("*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    migrations = sorted(n for n in names if "/ledger/migrations/versions/" in n and n.endswith(".py"))
    assert migrations == ["airflow_provider_smscn/ledger/migrations/versions/0001_v0_1_0.py",
                          "airflow_provider_smscn/ledger/migrations/versions/0002_claims_reports.py",
                          "airflow_provider_smscn/ledger/migrations/versions/0003_event_cursors.py",
                          "airflow_provider_smscn/ledger/migrations/versions/0004_report_retime_ts.py",
                          "airflow_provider_smscn/ledger/migrations/versions/0005_balance_readings.py",
                          "airflow_provider_smscn/ledger/migrations/versions/0006_page_counts.py",
                          "airflow_provider_smscn/ledger/migrations/versions/0007_ledger_meta.py"]
    assert "airflow_provider_smscn/ledger/migrations/__init__.py" in names


def test_upgrade_merges_spellings_of_one_account_and_ranks_reports_by_time(backend: tuple[str, str]) -> None:
    """Keys stored by older versions (``.../voice/``, ``:443``, upper-case host) become the one
    key of the account; rows that meet are merged as the lease/intent/report rules say."""
    from sqlalchemy import create_engine

    from tests.support.ledger_v0_1_0 import metadata_0_1_0

    url = backend[1]
    ensure_sqlite_parent(url)
    slash, port, key = "u1@API.sms.cn:443/voice/", "u1@api.sms.cn/voice/", "u1@api.sms.cn/voice"
    engine = create_engine(url)
    try:
        md = metadata_0_1_0()
        with engine.begin() as conn:
            md.create_all(conn)
            t = md.tables

            def rep(account: str, mid: str, code: int, retime: str, at: float) -> dict[str, Any]:
                return {"account": account, "mobileid": mid, "mobile": "13900008888", "resultcode": code,
                        "status": "X", "retime": retime, "stored_at": at}

            conn.execute(t["smscn_reports"].insert(), [
                rep(slash, "m1", 134, "2026-11-29 10:00:00", 1.0), rep(key, "m1", 100, "", 2.0),
                rep(port, "m2", 100, "2026-11-29 09:00:00", 3.0),
                rep(key, "m2", 134, "2026-11-29 08:00:00", 4.0)])
            conn.execute(t["smscn_pull_lease"].insert(), [
                {"account": slash, "holder": "a", "next_pull_at": 0.0, "last_pull_at": 200.0},
                {"account": key, "holder": "b", "next_pull_at": 0.0, "last_pull_at": 100.0}])
            conn.execute(t["smscn_send_intents"].insert(), [
                {"account": acc, "mobileid": "i1", "idem_key": "k", "mobile": "13900008888", "state": state,
                 "code": None, "created_at": 1.0, "updated_at": at}
                for acc, state, at in ((port, "accepted", 50.0), (key, "pending", 10.0))])
            conn.execute(t["smscn_sent_records"].insert(), [
                {"account": slash, "mobile": "13900008888", "sendtime": "2026-11-29 10:00:00", "status": 1,
                 "content": None, "stored_at": 1.0}])
    finally:
        engine.dispose()

    led = SmsCnLedger(url)
    try:
        got = led.get_reports(key, ["m1", "m2"])
        # m1: the later-stored report without a time wins (storage order); m2: 09:00 beats 08:00.
        assert (got["m1"].resultcode, got["m2"].resultcode) == (100, 100)
        assert query(url, "SELECT DISTINCT account FROM smscn_reports") == [(key,)]
        assert query(url, "SELECT count(*) FROM smscn_reports") == [(4,)]  # no report dropped
        assert query(url, "SELECT account, holder, last_pull_at FROM smscn_pull_lease") == [(key, "a", 200.0)]
        assert led.get_intents(key, ["i1"])["i1"].state == "accepted"  # the later updated_at
        assert query(url, "SELECT count(*) FROM smscn_send_intents") == [(1,)]
        assert led.count_sent_records(key) == 1
        assert schema_differences(url) == []
    finally:
        led.dispose()
