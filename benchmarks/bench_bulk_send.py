"""Benchmark 2: calling 10,000 numbers: the send operator (1000 a request) vs one request per number.

Why it matters: the vendor accepts up to 1000 numbers in one ``ac=sendcode``; with 20 ms of
network latency, a request per number pays that latency 10,000 times. Ours runs the real
``SmsCnSendVoiceCodeOperator.execute`` (send intents written to the ledger before each chunk,
outcomes after), so its figure includes what makes it retry-safe.
"""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from benchmarks.common import (
    TEMPLATE_ID,
    VARIABLES,
    BenchResult,
    CpuMeter,
    Row,
    Setup,
    auth_fields,
    configure_sandbox,
    fmt_num,
    fmt_ratio,
    mobiles,
)


def run_ours(setup: Setup, numbers: list[str]) -> dict[str, Any]:
    """The operator executed with a stand-in task instance (all it reads from the context)."""
    from airflow_provider_smscn.operators.smscn import SmsCnSendVoiceCodeOperator

    sandbox = setup.sandbox
    configure_sandbox(sandbox, latency_ms=setup.latency_ms)
    ti = SimpleNamespace(dag_id="bench_bulk", task_id="send", run_id=f"bench-{time.time_ns()}", map_index=-1)
    operator = SmsCnSendVoiceCodeOperator(task_id="send", mobiles=numbers, template_id=TEMPLATE_ID,
                                          variables=VARIABLES)
    ledger_calls = ("get_intents", "claim_intents", "mark_intents")
    start = time.perf_counter()
    # The ledger is built on first use, inside execute: meter it from the hook's cached instance.
    with CpuMeter(operator.hook.ledger, *ledger_calls) as ledger:
        ids = operator.execute({"ti": ti})  # type: ignore[arg-type]
    seconds = time.perf_counter() - start
    stats = sandbox.stats()
    assert len(ids) == len(numbers) and stats["calls_placed"] == len(numbers), "not every number was called"
    return {"requests": stats["requests"]["sendcode"], "seconds": seconds, "calls": stats["calls_placed"],
            "ledger_s": sum(ledger.cpu.values()), "record_s": ledger.cpu["claim_intents"]}


def run_diy(setup: Setup, numbers: list[str]) -> dict[str, Any]:
    """A bare ``requests`` loop: one ``ac=sendcode`` per number, on one keep-alive session."""
    import json

    import requests

    sandbox = setup.sandbox
    configure_sandbox(sandbox, latency_ms=setup.latency_ms)
    form = {**auth_fields(sandbox), "ac": "sendcode", "template": TEMPLATE_ID, "format": "json",
            "content": json.dumps(VARIABLES)}
    refused = 0
    start = time.perf_counter()
    with requests.Session() as session:
        for number in numbers:
            reply = session.post(sandbox.url, data={**form, "mobile": number}, timeout=10)
            refused += reply.json().get("stat") != "100"
    seconds = time.perf_counter() - start
    stats = sandbox.stats()
    return {"requests": stats["requests"]["sendcode"], "seconds": seconds, "calls": stats["calls_placed"],
            "refused": refused}


def insert_side_test(setup: Setup, count: int) -> dict[str, float]:
    """Time the ledger's way of inserting ``count`` intent rows against one executemany.

    Same table (the ledger's own definition), same rows (100 of them stored beforehand, to be
    skipped), a scratch SQLite file, one transaction each: the difference is SQLAlchemy compiling
    a new multi-VALUES statement per 100-row chunk.
    Supports the fix proposed in the shortfalls with a figure of this run.
    """
    from sqlalchemy import create_engine
    from sqlalchemy.dialects.sqlite import insert

    from airflow_provider_smscn.ledger.schema import table as ledger_table

    table = ledger_table("smscn_send_intents")  # the ledger's table definition, not a copy
    now = time.time()
    rows = [{"account": "bench", "mobileid": f"{i:020d}", "idem_key": "bench", "mobile": number,
             "state": "pending", "code": None, "created_at": now, "updated_at": now}
            for i, number in enumerate(mobiles(count))]
    engine = create_engine(f"sqlite:///{setup.home}/insert-side-test.db")
    result: dict[str, float] = {}
    for way in ("chunks", "executemany"):
        table.metadata.drop_all(engine, tables=[table])
        table.metadata.create_all(engine, tables=[table])
        with engine.begin() as conn:  # rows already there must be skipped, and not counted
            conn.execute(table.insert(), rows[:100])
        start = time.perf_counter()
        with engine.begin() as conn:
            if way == "chunks":
                inserted = sum(max(conn.execute(insert(table).values(rows[i:i + 100])
                                                .on_conflict_do_nothing()).rowcount, 0)
                               for i in range(0, count, 100))
            else:
                inserted = conn.execute(insert(table).on_conflict_do_nothing(), rows).rowcount
        result[way] = time.perf_counter() - start
        result[f"{way}_rows"] = inserted
    engine.dispose()
    return result


def run(setup: Setup) -> BenchResult:
    """Ours, then the loop, over the same numbers against the same latency."""
    count = 1_000 if setup.quick else 10_000
    numbers = mobiles(count)
    ours = run_ours(setup, numbers)
    print(f"  ours: {ours['requests']} requests, {ours['seconds']:.2f} s", flush=True)
    diy = run_diy(setup, numbers)
    print(f"  DIY: {diy['requests']} requests, {diy['seconds']:.1f} s", flush=True)
    side = insert_side_test(setup, count)

    req_ratio = diy["requests"] / ours["requests"]
    time_ratio = diy["seconds"] / ours["seconds"]
    ledger_share = ours["ledger_s"] / ours["seconds"]
    b = f"2 send {count:,}"
    rows = [
        Row(b, "ac=sendcode requests", fmt_num(ours["requests"]), fmt_num(diy["requests"]),
            fmt_ratio(req_ratio), "≥ 20×", req_ratio >= 20),
        Row(b, "wall time (s)", fmt_num(ours["seconds"], 2), fmt_num(diy["seconds"], 1),
            fmt_ratio(time_ratio), "≥ 20×", time_ratio >= 20),
        Row(b, "numbers per second", fmt_num(count / ours["seconds"]), fmt_num(count / diy["seconds"]),
            fmt_ratio(time_ratio), "", None),
        Row(b, "of our time: ledger send intents (CPU s)", fmt_num(ours["ledger_s"], 2), "(no ledger)",
            f"{ledger_share:.0%} of ours", "", None),
    ]
    requests_word = "request" if ours["requests"] == 1 else "requests"
    paragraph = (
        f"{count:,} numbers, one template, {setup.latency_ms:g} ms of latency per request. Ours: "
        f"`SmsCnSendVoiceCodeOperator.execute` (a stand-in `ti` in the context) sent {ours['requests']} "
        f"{requests_word} of up to 1000 numbers in {ours['seconds']:.2f} s. That includes what makes it "
        f"retry-safe: {count:,} send intents written to the SQLite ledger before each request and their "
        f"outcome after, {ours['ledger_s']:.2f} s of CPU ({ledger_share:.0%} of the time; "
        f"{ours['record_s']:.2f} s in `claim_intents`). DIY: a bare `requests.Session.post` loop, one "
        f"request per number, sent {diy['requests']:,} requests in {diy['seconds']:.1f} s "
        f"({diy['seconds'] / diy['requests'] * 1000:.1f} ms each: the latency plus a round trip), with no "
        f"record of what was sent and no retry safety. {req_ratio:,.0f}× fewer requests, {time_ratio:,.0f}× "
        f"less time. The loop is sequential, like the operator's chunks; spread over k threads it would "
        f"take at best 1/k of its time and still send {diy['requests']:,} requests, against the vendor's "
        f"rate limit (50 a second by default in the sandbox, lifted for this run)."
    )
    shortfalls = []
    if time_ratio < 20:
        shortfalls.append(f"Sending {count:,}: wall time only {time_ratio:.1f}× better (target 20×).")
    if ledger_share > 0.4:
        shortfalls.append(
            f"Sending {count:,}: the ledger's send intents take {ledger_share:.0%} of the operator's time "
            f"({ours['record_s']:.2f} s of it in `claim_intents`). "
            "`SmsCnLedger._insert_absent` (`airflow_provider_smscn/ledger.py`, the loop over "
            "`_chunks(rows, _INSERT_CHUNK)`) builds a new 100-row multi-VALUES `INSERT` per chunk, which "
            "SQLAlchemy compiles afresh every time (8 bound columns x 100 rows). One executemany, "
            "`conn.execute(make(table).on_conflict_do_nothing(), rows)`, compiles once: inserting the "
            f"same {count:,} intent rows into the ledger's table took {side['chunks']:.2f} s the ledger's "
            "way "
            f"and {side['executemany']:.2f} s as one executemany in this run, and SQLite still reported the "
            f"exact count of inserted rows ({side['executemany_rows']:,.0f} against "
            f"{side['chunks_rows']:,.0f}, 100 of the {count:,} being there already). Reported, not "
            "applied (not a benchmark file); the executemany "
            "rowcount on PostgreSQL needs checking before relying on it there.")
    chart = {"ours_s": ours["seconds"], "diy_s": diy["seconds"], "ours_req": ours["requests"],
             "diy_req": diy["requests"], "count": count}
    return BenchResult("bulk", f"Calling {count:,} numbers", rows, paragraph, chart, shortfalls)
