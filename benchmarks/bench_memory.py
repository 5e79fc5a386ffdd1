"""Benchmark 5: memory of 1000 deferred delivery triggers in one process.

Why it matters: a triggerer holds every deferred task's trigger; a thousand waiting sends must
not need a bigger machine. Measured in fresh child processes (so nothing an earlier benchmark
loaded or cached is counted): Airflow, the provider, the shared hook, the ledger engine and the
event loop's worker threads are warmed up first, then N triggers are started and measured once
all of them have polled and sleep. One child reads the resident set (RSS), another the Python
heap with ``tracemalloc`` (which slows and inflates the process, so never both in one).

The DIY way has no trigger: each waiting ``HttpSensor`` is a worker slot, i.e. a task process.
Its figure is N times the RSS of one standalone process that imported ``airflow.sdk`` and the
HTTP sensor and poked once: an order of magnitude, not an exact figure (forked task processes
share pages with their parent; the real task runner also has a supervisor process).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import (
    BenchResult,
    Row,
    Setup,
    configure_sandbox,
    fmt_num,
    fmt_ratio,
    rss_mb,
    run_child,
    send_calls,
)

TARGET_MB = 50.0
POLL_SECONDS = 30.0  # longer than the measurement: the watcher looks once for all, then sleeps


# ------------------------------------------------------------------------------------ children

def _child_triggers(mode: str, ids_file: str) -> dict[str, Any]:
    """Warm up, take the baseline, start one trigger per id, measure once all sleep."""
    import tracemalloc

    from airflow_provider_smscn.delivery import new_holder
    from airflow_provider_smscn.delivery.watcher import watcher_for
    from airflow_provider_smscn.triggers import smscn as trigger_module
    from airflow_provider_smscn.triggers.smscn import SmsCnDeliveryTrigger, shared_hook

    warm_ids, *ids = json.loads(Path(ids_file).read_text())
    hook, _ = shared_hook("smscn_default")
    hook.collect_reports(warm_ids[:1], new_holder(), POLL_SECONDS)  # ledger engine, tables, HTTP session

    async def drive(trigger: SmsCnDeliveryTrigger) -> None:
        async for _event in trigger.run():
            return

    async def main() -> dict[str, Any]:
        # The process's watcher: every trigger registers with it; it looks at the ledger for all.
        watcher = watcher_for("smscn_default", lambda: trigger_module._source_opener("smscn_default"))

        async def all_looked_at(count: int) -> None:
            # Registered, and a look of the watcher began after the last one registered.
            while watcher.waiting < count:
                await asyncio.sleep(0.05)
            cycles = watcher.cycles
            while watcher.cycles < cycles + 1:
                await asyncio.sleep(0.05)

        # A triggerer's loop already runs and its to_thread workers exist: warm them with a few triggers.
        warm = [asyncio.create_task(drive(SmsCnDeliveryTrigger([i], poll_interval=POLL_SECONDS)))
                for i in warm_ids]
        await all_looked_at(len(warm))
        for task in warm:
            task.cancel()
        await asyncio.gather(*warm, return_exceptions=True)
        gc.collect()
        if mode == "tracemalloc":
            tracemalloc.start()
        rss0 = rss_mb()
        start = time.perf_counter()
        triggers = [SmsCnDeliveryTrigger([mid], poll_interval=POLL_SECONDS) for mid in ids]
        tasks = [asyncio.create_task(drive(t)) for t in triggers]
        await all_looked_at(len(tasks))
        started = time.perf_counter() - start
        await asyncio.sleep(0.5)  # let the last look return from its thread and the watcher sleep
        fired = sum(t.done() for t in tasks)
        gc.collect()
        result = {"rss_delta": rss_mb() - rss0, "rss": rss_mb(), "started_s": started, "fired": fired,
                  "n": len(tasks)}
        if mode == "tracemalloc":
            current, peak = tracemalloc.get_traced_memory()
            result.update(traced=current / 2**20, traced_peak=peak / 2**20)
            tracemalloc.stop()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return result

    return asyncio.run(main())


def _child_slot() -> dict[str, Any]:
    """One DIY waiting sensor's process: airflow.sdk, the HTTP sensor, one poke."""
    import warnings

    warnings.filterwarnings("ignore", message=".*determine_kwargs.*")
    import airflow.sdk  # noqa: F401
    from airflow.providers.http.sensors.http import HttpSensor

    sensor = HttpSensor(task_id="wait", http_conn_id="smscn_http", endpoint="voice/", method="POST",
                        request_params={"ac": "status", "format": "json"},
                        response_check=lambda response: False)
    sensor.poke({})
    gc.collect()
    return {"rss": rss_mb()}


# ------------------------------------------------------------------------------------ parent

def run(setup: Setup) -> BenchResult:
    """Send N calls whose reports will not come during the run, then measure the children."""
    from airflow_provider_smscn.triggers.smscn import shared_hook

    n = 1000
    sandbox = setup.sandbox
    configure_sandbox(sandbox, latency_ms=setup.latency_ms, report_delay=3600)
    hook, _ = shared_hook("smscn_default")
    ids, _ = send_calls(hook, n + 8)
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=setup.home, delete=False) as handle:
        json.dump([ids[:8], *ids[8:]], handle)  # 8 ids to warm the loop up, then the N measured
    rss = run_child("bench_memory", "rss", handle.name, timeout=180)
    traced = run_child("bench_memory", "tracemalloc", handle.name, timeout=180)
    slot = run_child("bench_memory", "slot", timeout=180)
    print(f"  {n} triggers: RSS +{rss['rss_delta']:.1f} MiB, Python heap +{traced['traced']:.1f} MiB; "
          f"one DIY sensor process {slot['rss']:.0f} MiB", flush=True)

    diy_mb = n * slot["rss"]
    rows = [
        Row("5 memory", f"{n} waiting triggers, RSS growth (MiB)", fmt_num(rss["rss_delta"], 1),
            f"~{fmt_num(diy_mb / 1024)} GiB ({n} task processes)",
            f"~{fmt_ratio(diy_mb / max(rss['rss_delta'], 0.1))}", f"≤ {TARGET_MB:g} MiB",
            rss["rss_delta"] <= TARGET_MB),
        Row("5 memory", "same, Python heap (tracemalloc, MiB)", fmt_num(traced["traced"], 1), "", "",
            f"≤ {TARGET_MB:g} MiB", traced["traced"] <= TARGET_MB),
        Row("5 memory", "per waiting trigger (KiB, tracemalloc)", fmt_num(traced["traced"] * 1024 / n, 1),
            f"{fmt_num(slot['rss'])} MiB a process", "", "", None),
    ]
    paragraph = (
        f"A fresh process with Airflow, the provider, the shared hook (HTTP session, ledger engine) and a "
        f"warm event loop, then {n} `SmsCnDeliveryTrigger`s started in that loop, each waiting on its own "
        f"message id (reports scheduled an hour away, so none fires). All {n} were registered with the "
        f"process's watcher and looked for in the ledger {rss['started_s']:.1f} s after being started, then "
        f"waited ({rss['fired']} had fired). "
        f"Resident memory grew by {rss['rss_delta']:.1f} MiB ({rss['rss']:.0f} MiB in all); `tracemalloc` "
        f"(another child) counts {traced['traced']:.1f} MiB of Python memory allocated since the "
        f"triggers were started and still held while they wait (peak {traced['traced_peak']:.1f} MiB "
        f"while they were registered and looked for), "
        f"{traced['traced'] * 1024 / n:.1f} KiB a trigger. The DIY way keeps {n} sensors poking, one "
        f"task process each: a standalone process that imported `airflow.sdk` and the HTTP sensor and "
        f"poked once holds {slot['rss']:.0f} MiB, about {diy_mb / 1024:.0f} GiB for {n} (task processes "
        f"forked from a warm worker share some pages, so read it as an order of magnitude)."
    )
    shortfalls = []
    if rss["rss_delta"] > TARGET_MB or traced["traced"] > TARGET_MB:
        shortfalls.append(f"Memory of {n} triggers: {rss['rss_delta']:.1f} MiB RSS / {traced['traced']:.1f} "
                          f"MiB heap, over the {TARGET_MB:g} MiB target.")
    chart = {"rss": rss["rss_delta"], "traced": traced["traced"], "target": TARGET_MB, "diy": diy_mb, "n": n}
    return BenchResult("memory", f"Memory of {n} waiting triggers", rows, paragraph, chart, shortfalls)


def _child_main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs="+", required=True)
    args = parser.parse_args()
    mode, *rest = args.child
    result = _child_slot() if mode == "slot" else _child_triggers(mode, rest[0])
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    _child_main()
