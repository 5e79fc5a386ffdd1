"""Benchmark 7: 10,000 deferred delivery triggers in one process: the watcher vs a look per trigger.

Why it matters: a triggerer holds every deferred sensor's trigger. In 0.1.0 each trigger read the
ledger on its own at every poll (about 0.8 ms of CPU a read): 10,000 of them at a 5 s poll need
more than a core just to ask. Now one watcher per process and connection reads only what is new
in the ledger once per poll interval and settles every trigger whose reports are in.

Measured side by side in one run, each way in a fresh child process (Airflow, the provider and the
shared hook warmed up first), 10,000 triggers waiting on one account at a 5 s poll, the sandbox
serving from the parent: CPU of the child while all wait (process CPU time over wall time), RSS
growth from before the triggers were created, and the time from the vendor releasing the last
report to the last trigger firing. "A look per trigger" is 0.1.0's trigger loop, kept here
(``LegacyDeliveryTrigger``) over today's ``collect_reports`` with one pull per interval.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
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

POLL = 5.0
CPU_TARGET = 0.05
RSS_TARGET_MB = 100.0
FIRE_TARGET_S = 2 * POLL


# ------------------------------------------------------------------------------------ children

class LegacyDeliveryTrigger:
    """0.1.0's trigger loop: every trigger looks at the ledger itself each poll, one pull per interval."""

    def __init__(self, mobileids: list[str], poll_interval: float, pull_interval: float) -> None:
        self.mobileids, self.poll_interval, self.pull_interval = mobileids, poll_interval, pull_interval

    async def run(self) -> Any:
        from airflow_provider_smscn.delivery import collect_reports, new_holder
        from airflow_provider_smscn.triggers.smscn import shared_hook

        holder = new_holder()
        hook, _ = shared_hook("smscn_default")
        source = dataclasses.replace(hook.delivery_source(self.pull_interval), max_extra_pulls=0)
        while True:
            found = await asyncio.to_thread(collect_reports, source, self.mobileids, holder=holder)
            if len(found) >= len(self.mobileids):
                yield found
                return
            await asyncio.sleep(self.poll_interval)


def _child(mode: str, spec_file: str) -> dict[str, Any]:
    from airflow_provider_smscn.delivery import new_holder
    from airflow_provider_smscn.delivery.watcher import watcher_for
    from airflow_provider_smscn.triggers import smscn as trigger_module
    from airflow_provider_smscn.triggers.smscn import SmsCnDeliveryTrigger, shared_hook

    spec = json.loads(Path(spec_file).read_text())
    warm_id, ids, release_at = spec["warm"], spec["ids"], spec["release_at"]
    hook, _ = shared_hook("smscn_default")
    hook.collect_reports([warm_id], new_holder(), POLL)  # ledger engine, tables, HTTP session
    polls = [0]
    real_collect = None
    if mode == "legacy":
        from airflow_provider_smscn.delivery import pulling

        real_collect = pulling.collect_reports

        def counted(*args: Any, **kwargs: Any) -> Any:
            polls[0] += 1
            assert real_collect is not None
            return real_collect(*args, **kwargs)

        import airflow_provider_smscn.delivery as delivery

        delivery.collect_reports = counted  # type: ignore[assignment]

    async def drive(trigger: Any, fired: list[float]) -> None:
        async for _event in trigger.run():
            fired.append(time.time())
            return

    async def main() -> dict[str, Any]:
        fired: list[float] = []
        watcher = watcher_for("smscn_default", lambda: trigger_module._source_opener("smscn_default"))
        gc.collect()
        rss0 = rss_mb()
        t_start = time.time()
        if mode == "ours":
            ledger_id = hook.ledger.ledger_id()  # as a deferring sensor hands it over: the check is measured
            triggers: list[Any] = [SmsCnDeliveryTrigger([mid], poll_interval=POLL, pull_interval=POLL,
                                                        ledger_id=ledger_id) for mid in ids]
        else:
            triggers = [LegacyDeliveryTrigger([mid], POLL, POLL) for mid in ids]
        tasks = [asyncio.create_task(drive(t, fired)) for t in triggers]

        def started() -> bool:
            if mode == "ours":
                return watcher.waiting >= len(ids) and watcher.cycles >= 2
            return polls[0] >= len(ids)

        while not started():
            await asyncio.sleep(0.05)
        started_s = time.time() - t_start
        await asyncio.sleep(1.0)  # settle: the last ones go back to sleep
        gc.collect()
        rss_waiting = rss_mb()
        cpu0, wall0 = time.process_time(), time.time()
        window_end = release_at - 0.5
        await asyncio.sleep(max(0.0, window_end - time.time()))
        cpu, wall = time.process_time() - cpu0, time.time() - wall0
        deadline = release_at + spec["fire_limit"]
        while len(fired) < len(tasks) and time.time() < deadline:
            await asyncio.sleep(0.05)
        result = {
            "n": len(ids), "started_s": started_s, "rss_delta": rss_waiting - rss0, "rss": rss_waiting,
            "cpu_share": cpu / max(wall, 1e-9), "window_s": wall, "fired": len(fired),
            "fire_s": (max(fired) - release_at) if len(fired) == len(tasks) else None,
            "waited_s": time.time() - release_at, "looks": watcher.cycles if mode == "ours" else polls[0],
        }
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        return result

    return asyncio.run(main())


# ------------------------------------------------------------------------------------ parent

def _measure(setup: Setup, mode: str, n: int, hold_s: float, fire_limit: float) -> dict[str, Any]:
    """Send n calls whose reports the vendor releases ``hold_s`` later; the child waits on them."""
    from airflow_provider_smscn.triggers.smscn import shared_hook

    sandbox = setup.sandbox
    configure_sandbox(sandbox, latency_ms=setup.latency_ms, report_delay=hold_s)
    hook, _ = shared_hook("smscn_default")
    # the last request's reports are released hold_s after it is processed
    ids, last_start = send_calls(hook, n + 1)
    spec = {"warm": ids[0], "ids": ids[1:], "release_at": last_start + hold_s, "fire_limit": fire_limit}
    with tempfile.NamedTemporaryFile("w", suffix=".json", dir=setup.home, delete=False) as handle:
        json.dump(spec, handle)
    pulls_before = len(sandbox.stats()["status_pulls"])
    result = run_child("bench_scale", mode, handle.name, timeout=600)
    result["pulls"] = len(sandbox.stats()["status_pulls"]) - pulls_before
    return result


def run(setup: Setup) -> BenchResult:
    n = 2000 if setup.quick else 10_000
    hold = 30.0 if setup.quick else 60.0
    ours = _measure(setup, "ours", n, hold, fire_limit=6 * POLL)
    legacy = _measure(setup, "legacy", n, hold, fire_limit=6 * POLL)
    for name, r in (("watcher", ours), ("a look per trigger", legacy)):
        print(f"  {name}: CPU {r['cpu_share']:.1%} of a core over {r['window_s']:.0f} s, "
              f"RSS +{r['rss_delta']:.0f} "
              f"MiB, {r['fired']}/{r['n']} fired, last {r['fire_s']} s after release", flush=True)

    def fire(r: dict[str, Any]) -> str:
        if r["fire_s"] is not None:
            return fmt_num(r["fire_s"], 1)
        return f"> {r['waited_s']:.0f} ({r['fired']:,} of {r['n']:,} fired)"

    b = f"7 triggers {n:,}"
    ours_fire = ours["fire_s"] if ours["fire_s"] is not None else float("inf")
    leg_fire = legacy["fire_s"] if legacy["fire_s"] is not None else legacy["waited_s"]
    rows = [
        Row(b, f"CPU while waiting (% of one core, {POLL:g} s poll)", f"{ours['cpu_share']:.1%}",
            f"{legacy['cpu_share']:.1%}", fmt_ratio(legacy["cpu_share"] / max(ours["cpu_share"], 1e-4)),
            f"< {CPU_TARGET:.0%}", ours["cpu_share"] < CPU_TARGET),
        Row(b, "RSS growth while waiting (MiB)", fmt_num(ours["rss_delta"], 1),
            fmt_num(legacy["rss_delta"], 1),
            "", f"< {RSS_TARGET_MB:g} MiB", ours["rss_delta"] < RSS_TARGET_MB),
        Row(b, "last report released → last trigger fired (s)", fire(ours), fire(legacy),
            "" if legacy["fire_s"] is None else fmt_ratio(leg_fire / max(ours_fire, 1e-3)),
            f"< {FIRE_TARGET_S:g} s (2 polls)", ours_fire < FIRE_TARGET_S),
        Row(b, "ledger looks while waiting and firing", fmt_num(ours["looks"]), fmt_num(legacy["looks"]),
            "", "", None),
    ]
    paragraph = (
        f"{n:,} calls were placed on one account with reports held back {hold:g} s by the sandbox, then a "
        f"fresh process started {n:,} triggers (one message id each, poll and pull interval {POLL:g} s). "
        f"Watcher (ours): the {n:,} `SmsCnDeliveryTrigger`s were registered {ours['started_s']:.1f} s after "
        f"being created; while they waited the process used {ours['cpu_share']:.2%} of one core over "
        f"{ours['window_s']:.0f} s, and its RSS had grown {ours['rss_delta']:.1f} MiB ({ours['rss']:.0f} MiB "
        f"in all). When the vendor released the reports, the watcher's pull turn drained them "
        f"({ours['pulls']} pulls during the run) and the last trigger fired {fire(ours)} s after the last "
        f"report was released; {ours['looks']:,} ledger looks in all. A look per trigger (0.1.0's loop, "
        f"kept in `benchmarks/bench_scale.py`): {legacy['started_s']:.1f} s until every trigger had "
        f"looked once, {legacy['cpu_share']:.1%} of a core while waiting, "
        f"RSS +{legacy['rss_delta']:.1f} MiB, "
        f"{legacy['looks']:,} ledger looks, {legacy['fired']:,} of {legacy['n']:,} triggers fired within "
        f"{legacy['waited_s']:.0f} s of the release ({legacy['pulls']} pulls: one per interval, 100 reports "
        f"each, so the last would fire about {n / 100 * POLL:.0f} s after it)."
    )
    shortfalls = []
    if ours["cpu_share"] >= CPU_TARGET:
        shortfalls.append(f"{n:,} waiting triggers used {ours['cpu_share']:.1%} of a core, over the "
                          f"{CPU_TARGET:.0%} target.")
    if ours["rss_delta"] >= RSS_TARGET_MB:
        shortfalls.append(f"{n:,} waiting triggers grew RSS by {ours['rss_delta']:.0f} MiB, over the "
                          f"{RSS_TARGET_MB:g} MiB target.")
    if ours_fire >= FIRE_TARGET_S:
        shortfalls.append(f"The last of {n:,} triggers fired {fire(ours)} s after the last report was "
                          f"released, over the {FIRE_TARGET_S:g} s (two polls) target.")
    chart = {"n": n, "ours_cpu": ours["cpu_share"], "legacy_cpu": legacy["cpu_share"],
             "ours_rss": ours["rss_delta"], "legacy_rss": legacy["rss_delta"]}
    return BenchResult("scale", f"{n:,} deferred triggers in one process", rows, paragraph, chart, shortfalls)


def _child_main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=2, required=True)
    args = parser.parse_args()
    print("RESULT " + json.dumps(_child(*args.child)), flush=True)


if __name__ == "__main__":
    _child_main()
