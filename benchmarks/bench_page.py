"""Benchmark: the sms.cn page's data on a ledger of 1,000,000 reports (SQLite and PostgreSQL).

Standalone (``python benchmarks/bench_page.py [--rows N] [--backends sqlite,postgresql]``): fills
a fresh ledger per backend with N accepted send intents and N delivery reports spread over the
last 7 days (two accounts, one report in ten undelivered), 2,000 balance readings, and times
:func:`airflow_provider_smscn.plugins.data.page_data`:

* ``first count``: the first load ever on the ledger (no stored counts yet, e.g. right after the
  upgrade that adds ``smscn_page_counts``): counts every frozen 5-minute bucket of the 30-day
  window and stores the counts in the ledger (the api-server does this in the background when the
  page app starts);
* ``cold``: the first load of a fresh process (a new Python process: an api-server restart, or
  another api-server host), which reads the stored counts. Median of 3 processes;
* ``warm``: a page load afterwards, per window, with 100 calls and reports added just before it
  (the live minutes are always read from the tables). Median of 7 loads.

Prints the figures and each statement's plan, and writes ``docs/benchmarks-page.md``.
PostgreSQL: ``SMSCN_TEST_PG_URL`` or the server of ``.ci/postgres.sh`` (a fresh schema, dropped after).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
TARGET_MS = 200.0
SPAN = 7 * 86400
ACCOUNTS = ("bench@127.0.0.1:8765/voice/", "other@127.0.0.1:8765/voice/")


def pg_url() -> tuple[str, str, str]:
    """A URL on a fresh schema of the benchmark PostgreSQL, the server URL, and the schema."""
    from sqlalchemy import create_engine
    from sqlalchemy.engine import make_url

    server = os.environ.get("SMSCN_TEST_PG_URL", "").strip()
    if not server:
        out = subprocess.run(["bash", str(REPO / ".ci" / "postgres.sh")], capture_output=True, text=True,
                             check=True, timeout=900)
        server = out.stdout.strip().splitlines()[-1]
    schema = f"smscn_bench_{uuid.uuid4().hex[:8]}"
    engine = create_engine(server)
    with engine.begin() as conn:
        conn.exec_driver_sql(f'CREATE SCHEMA "{schema}"')
    engine.dispose()
    url = make_url(server).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False), server, schema


def fill(ledger: Any, rows: int) -> float:
    """N intents + N reports (+ readings) generated inside the database; returns seconds taken."""
    started = time.perf_counter()
    ledger.record_balance(ACCOUNTS[0], 1)  # creates the schema
    engine = ledger._entry().engine
    now = time.time()
    with engine.begin() as conn:
        pg = conn.dialect.name == "postgresql"
        series = ("generate_series(1, :n) AS s(i)" if pg else
                  "(WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < :n) "
                  "SELECT i FROM c) s")
        num = "lpad(i::text, 8, '0')" if pg else "printf('%08d', i)"
        t = f"(:now - 100 - (i * {SPAN}.0 / :n))"  # reports come up to 90 s later: before now
        acc = f"CASE WHEN i % 2 = 0 THEN '{ACCOUNTS[0]}' ELSE '{ACCOUNTS[1]}' END"
        text = "i::text" if pg else "CAST(i AS TEXT)"
        params = {"n": rows, "now": now}
        conn.exec_driver_sql("DELETE FROM smscn_balance_readings")
        conn.execute(_sql(
            f"INSERT INTO smscn_send_intents (account, mobileid, idem_key, mobile, state, code, created_at, "
            f"updated_at, claimed_by) SELECT {acc}, 'm' || {text}, 'bench_dag|send|run_' || "
            f"{'(i / 1000)::text' if pg else 'CAST(i / 1000 AS TEXT)'}, '139' || {num}, 'accepted', 100, "
            f"{t}, {t}, 'bench' FROM {series}"), params)
        conn.execute(_sql(
            "INSERT INTO smscn_reports (account, row_key, mobileid, mobile, resultcode, status, retime, "
            "stored_at) "
            f"SELECT {acc}, 'p:' || {text}, 'm' || {text}, '139' || {num}, "
            f"CASE WHEN i % 10 = 0 THEN 130 ELSE 100 END, 'DELIVRD', '2026-01-01 00:00:00', "
            f"{t} + (i % 90) FROM {series}"), params)
        conn.execute(_sql(
            "INSERT INTO smscn_balance_readings (account, balance, threshold, source, dag_id, task_id, "
            "read_at) "
            f"SELECT {acc}, 1000000 - i * 300, 5000, 'check', 'bench_alert', 'check_balance', "
            f"(:now - (i * {SPAN}.0 / 2000)) FROM {series.replace(':n', '2000')}"), {"now": now})
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    return time.perf_counter() - started


def _sql(text: str) -> Any:
    from sqlalchemy import text as sql_text

    return sql_text(text)


def add_live(ledger: Any, batch: int) -> None:
    """100 calls placed and reported just now, the way the operator and a waiter write them."""
    from airflow_provider_smscn.client.models import DeliveryReport

    ids = [f"live{batch}_{i}" for i in range(100)]
    items = [(m, f"1380000{i:04d}") for i, m in enumerate(ids)]
    ledger.claim_intents(ACCOUNTS[0], f"live_dag|send|run{batch}", items, claimant="bench")
    ledger.mark_intents(ACCOUNTS[0], ids, "accepted", code=100, claimant="bench")
    ledger.store_reports(ACCOUNTS[0], [DeliveryReport(mobile=m, mobileid=i, resultcode=100)
                                       for i, m in items], pull_id=f"live{batch}")


def plans(ledger: Any) -> list[str]:
    """The plan of every statement one page load runs."""
    from airflow_provider_smscn.plugins import data
    from tests.support.databases import ledger_selects

    with ledger_selects(ledger) as seen:
        data.page_data(ledger, "24h")
    engine = ledger._entry().engine
    out = []
    with engine.connect() as conn:
        pg = conn.dialect.name == "postgresql"
        for statement, parameters in seen:
            prefix = "EXPLAIN " if pg else "EXPLAIN QUERY PLAN "
            rows = conn.exec_driver_sql(prefix + statement, parameters).fetchall()
            out.append(" | ".join(str(r[-1] if not pg else r[0]).strip() for r in rows))
    return out


COLD_SCRIPT = """
import sys, time
sys.path.insert(0, sys.argv[2])
# what an api-server has imported before the page's first load (Airflow uses SQLAlchemy and the driver)
import sqlalchemy, sqlalchemy.dialects.postgresql, sqlalchemy.dialects.sqlite, sqlite3, psycopg2
from airflow_provider_smscn.ledger import SmsCnLedger
from airflow_provider_smscn.plugins import data
t0 = time.perf_counter()
page = data.page_data(SmsCnLedger(sys.argv[1]), "30d")
ms = (time.perf_counter() - t0) * 1000
print(ms, sum(t["delivered"] + t["undelivered"] for t in page["totals"].values()))
"""


def cold_load(url: str) -> tuple[float, int]:
    """The first page load of a new process (imports done before the clock starts; the engine, its
    first connection and the schema check are timed)."""
    out = subprocess.run([sys.executable, "-c", COLD_SCRIPT, url, str(REPO)], capture_output=True, text=True,
                         check=True, timeout=600)
    ms, reports = out.stdout.split()
    return float(ms), int(reports)


def run_backend(name: str, url: str, rows: int) -> list[tuple[str, str, float, str]]:
    from airflow_provider_smscn.ledger import SmsCnLedger
    from airflow_provider_smscn.plugins import data

    ledger = SmsCnLedger(url)
    filled = fill(ledger, rows)
    print(f"[{name}] filled {rows:,} intents + {rows:,} reports in {filled:.1f} s", flush=True)
    data.forget_caches()
    started = time.perf_counter()
    first = data.page_data(ledger, "30d")
    counted = (time.perf_counter() - started) * 1000
    reports = sum(t["delivered"] + t["undelivered"] for t in first["totals"].values())
    assert reports == rows, (reports, rows)
    out = [(name, "first count (30d, no stored counts yet: counts every bucket and stores them)", counted,
            "once per ledger")]
    print(f"[{name}] first count 30d: {counted:.0f} ms ({reports:,} reports counted)", flush=True)
    colds = []
    for _ in range(3):
        ms, seen = cold_load(url)
        assert seen == rows, (seen, rows)
        colds.append(ms)
    cold = statistics.median(colds)
    out.append((name, "cold: first load of a fresh process (30d, stored counts)", cold,
                "yes" if cold < TARGET_MS else "NO"))
    print(f"[{name}] cold 30d (fresh process): median {cold:.1f} ms, max {max(colds):.1f} ms", flush=True)
    batch = 0
    for window in ("1h", "24h", "7d", "30d"):
        times = []
        for _ in range(7):
            batch += 1
            add_live(ledger, batch)
            t0 = time.perf_counter()
            page = data.page_data(ledger, window)
            times.append((time.perf_counter() - t0) * 1000)
        median = statistics.median(times)
        shown = sum(t["delivered"] + t["undelivered"] for t in page["totals"].values())
        ok = "yes" if median < TARGET_MS else "NO"
        out.append((name, f"warm page load, window {window} ({shown:,} reports in it)", median, ok))
        print(f"[{name}] warm {window}: median {median:.1f} ms, max {max(times):.1f} ms "
              f"({shown:,} reports in the window)", flush=True)
    for plan in plans(ledger):
        print(f"[{name}] plan: {plan}")
    ledger.dispose()
    return out


def write_doc(results: list[tuple[str, str, float, str]], rows: int) -> None:
    lines = [
        "# Benchmark: the sms.cn page on a large ledger",
        "",
        f"`python benchmarks/bench_page.py --rows {rows}`: {rows:,} accepted send intents and {rows:,} "
        "delivery reports over 7 days (two accounts, one report in ten undelivered), 2,000 balance "
        "readings. Target: page data under 200 ms. `first count` is the first load ever on the ledger: "
        "it counts every frozen 5-minute bucket of 30 days and stores the counts in the ledger "
        "(`smscn_page_counts`; the page app starts it in the background, once per ledger, e.g. after "
        "the upgrade that adds the table). `cold` is the first load of a fresh api-server process "
        "(a new Python process, median of 3), which reads the stored counts; `warm` loads add 100 new "
        "calls and reports first (median of 7). Every statement is index-backed (plans printed by the "
        "script; `tests/plugins/test_page_data.py` checks SQLite's).",
        "",
        "| backend | measurement | ms | under 200 ms |",
        "|---|---|---:|---|",
    ]
    lines += [f"| {b} | {m} | {v:.1f} | {ok} |" for b, m, v, ok in results]
    (REPO / "docs" / "benchmarks-page.md").write_text("\n".join(lines) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgresql")
    parser.add_argument("--no-doc", action="store_true", help="do not write docs/benchmarks-page.md")
    args = parser.parse_args()
    results: list[tuple[str, str, float, str]] = []
    for backend in args.backends.split(","):
        if backend == "sqlite":
            with tempfile.TemporaryDirectory(prefix="smscn-bench-page-") as tmp:
                results += run_backend("SQLite", f"sqlite:///{tmp}/ledger.db", args.rows)
        elif backend == "postgresql":
            url, server, schema = pg_url()
            try:
                results += run_backend("PostgreSQL", url, args.rows)
            finally:
                from sqlalchemy import create_engine

                engine = create_engine(server)
                with engine.begin() as conn:
                    conn.exec_driver_sql(f'DROP SCHEMA "{schema}" CASCADE')
                engine.dispose()
        else:
            raise SystemExit(f"unknown backend {backend!r}")
    if not args.no_doc:
        write_doc(results, args.rows)
    return 0 if all(ok != "NO" for *_, ok in results) else 1


if __name__ == "__main__":
    sys.exit(main())
