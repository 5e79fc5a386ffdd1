"""Benchmark 1: N deliveries waited on at once, on one account: ours (deferred triggers) vs DIY sensors.

Why it matters: the vendor hands each delivery report out once, to whoever pulls ``ac=status``.
Ours: N :class:`SmsCnDeliveryTrigger` run in one event loop as the triggerer runs them, hold no
worker slot, and wait through the process's one watcher: one ledger look per interval for all,
one pull per interval per account through the lease (more at once while pulls come back full).
DIY: one ``HttpSensor`` per send,
each pulling for itself with a ``response_check`` that looks for its own message id; each is a
worker slot while it pokes, and a report pulled by another sensor is gone for good.
"""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from benchmarks.common import (
    HTTP_CONN_ID,
    BenchResult,
    CpuMeter,
    Row,
    Setup,
    auth_fields,
    configure_sandbox,
    fmt_num,
    fmt_ratio,
    per_interval,
    send_calls,
)

# Threads that stand in for the DIY worker slots (each HttpSensor is one slot in Airflow). They
# only bound how fast one round of N pokes runs here; the pulls counted do not depend on them.
DIY_THREADS = 32
DIY_MAX_ROUNDS = 6


def _send(n: int) -> list[str]:
    """Place N calls in 1000-number requests with known ids: both ways then wait on the same thing."""
    from airflow_provider_smscn.triggers.smscn import shared_hook

    hook, _ = shared_hook("smscn_default")
    ids, _ = send_calls(hook, n)
    return ids


def run_ours(setup: Setup, n: int, timeout: float) -> dict[str, Any]:
    """N triggers in one asyncio loop, each waiting on its own message id, until all fired."""
    from airflow_provider_smscn.delivery.watcher import watcher_for
    from airflow_provider_smscn.triggers import smscn as trigger_module
    from airflow_provider_smscn.triggers.smscn import SmsCnDeliveryTrigger, shared_hook

    sandbox, interval = setup.sandbox, setup.pull_interval
    configure_sandbox(sandbox, latency_ms=setup.latency_ms, report_delay=setup.report_delay)
    ids = _send(n)
    pulls_before = len(sandbox.stats()["status_pulls"])
    triggers = [SmsCnDeliveryTrigger([mid], poll_interval=interval, pull_interval=interval) for mid in ids]
    busy_threads = 0

    async def first_event(trigger: SmsCnDeliveryTrigger) -> Any:
        async for event in trigger.run():
            return event
        return None

    async def sample_threads(stop: asyncio.Event) -> None:
        # asyncio.to_thread workers are named "asyncio_<n>": how many the triggers kept busy.
        nonlocal busy_threads
        while not stop.is_set():
            names = [t.name for t in threading.enumerate()]
            busy_threads = max(busy_threads, sum(name.startswith("asyncio_") for name in names))
            await asyncio.sleep(0.05)

    meters: dict[str, CpuMeter] = {}

    async def main() -> list[Any]:
        stop = asyncio.Event()
        sampler = asyncio.create_task(sample_threads(stop))
        watcher = watcher_for("smscn_default", lambda: trigger_module._source_opener("smscn_default"))
        with CpuMeter(watcher, "_look_with_refresh") as looks, \
                CpuMeter(hook.ledger, "try_acquire_pull") as lease:
            meters.update(looks=looks, lease=lease)
            tasks = [asyncio.create_task(first_event(t)) for t in triggers]
            _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        stop.set()
        await sampler
        return [t.result() if t in _done else None for t in tasks]

    hook, _ = shared_hook("smscn_default")
    cpu0, start = time.process_time(), time.time()
    events = asyncio.run(main())
    end, cpu = time.time(), time.process_time() - cpu0
    looks, lease = meters["looks"], meters["lease"]
    pulls = sandbox.stats()["status_pulls"][pulls_before:]
    delivered = sum(
        1 for mid, ev in zip(ids, events, strict=True)
        if ev is not None and ev.payload.get("status") == "success" and mid in ev.payload["reports"]
    )
    return {
        "n": n, "pulls": len(pulls), "delivered": delivered, "lost": n - delivered,
        "seconds": end - start, "slots": 0, "threads": busy_threads, "cpu": cpu,
        "polls": looks.calls["_look_with_refresh"],
        "poll_cpu_us": looks.cpu["_look_with_refresh"] / max(1, looks.calls["_look_with_refresh"]) * 1e6,
        "lease_tries": lease.calls["try_acquire_pull"],
        "lease_cpu_us": lease.cpu["try_acquire_pull"] / max(1, lease.calls["try_acquire_pull"]) * 1e6,
        **{f"pull_{k}": v for k, v in per_interval(pulls, start, end, interval).items()},
        **{f"turn_{k}": v for k, v in per_interval(_turns(pulls, interval), start, end, interval).items()},
    }


def _turns(pulls: list[float], interval: float) -> list[float]:
    """When each pull turn began: a drain's back-to-back pulls are one turn; turns are an interval apart."""
    ordered = sorted(pulls)
    return [t for i, t in enumerate(ordered) if i == 0 or t - ordered[i - 1] > interval / 2]


def _diy_sensor(mobileid: str, auth: dict[str, str], interval: float) -> Any:
    """What a user writes without the provider: a poking HttpSensor on ``ac=status`` per send."""
    from airflow.providers.http.sensors.http import HttpSensor

    def my_report_is_in(response: Any) -> bool:
        return any(v.get("mobileids") == mobileid for v in response.json().get("values") or [])

    return HttpSensor(
        task_id=f"wait_{mobileid}", http_conn_id=HTTP_CONN_ID, endpoint="voice/", method="POST",
        request_params={**auth, "ac": "status", "format": "json"}, response_check=my_report_is_in,
        poke_interval=interval, mode="poke",
    )


def run_diy(setup: Setup, n: int) -> dict[str, Any]:
    """N HttpSensors poking once per interval, until all found their report or none is left to find."""
    sandbox, interval = setup.sandbox, setup.pull_interval
    configure_sandbox(sandbox, latency_ms=setup.latency_ms, report_delay=setup.report_delay)
    ids = _send(n)
    sent_at = time.time()
    auth = auth_fields(sandbox)
    sensors = [_diy_sensor(mid, auth, interval) for mid in ids]
    pulls_before = len(sandbox.stats()["status_pulls"])
    waiting = list(range(n))
    delivered = rounds = 0
    round_pulls: list[int] = []

    def poke(i: int) -> bool:
        return bool(sensors[i].poke({}))

    start = next_round = time.time()
    with ThreadPoolExecutor(min(n, DIY_THREADS)) as pool:
        while waiting and rounds < DIY_MAX_ROUNDS:
            time.sleep(max(0.0, next_round - time.time()))
            next_round += interval
            rounds += 1
            results = list(pool.map(poke, waiting))
            round_pulls.append(len(waiting))
            delivered += sum(results)
            waiting = [i for i, ok in zip(waiting, results, strict=True) if not ok]
            if time.time() > sent_at + setup.report_delay and sandbox.stats()["reports_pending"] == 0:
                break  # every report has been handed out: the sensors still waiting never get theirs
    end = time.time()
    pulls = sandbox.stats()["status_pulls"][pulls_before:]
    return {
        "n": n, "pulls": len(pulls), "delivered": delivered, "lost": len(waiting), "rounds": rounds,
        "round_pulls_max": max(round_pulls, default=0),
        "round_pulls_mean": sum(round_pulls) / max(1, len(round_pulls)),
        "seconds": end - start, "slots": n,
        **{f"pull_{k}": v for k, v in per_interval(pulls, start, end, interval).items()},
    }


def run(setup: Setup) -> BenchResult:
    """Each N, ours then DIY on a freshly reset sandbox; rows for pulls, lost reports, slots."""
    sizes = [10, 100] if setup.quick else [10, 100, 1000]
    results: dict[int, tuple[dict[str, Any], dict[str, Any]]] = {}
    for n in sizes:
        # Ours needs ceil(n / 100) pulls (100 reports a pull): allow that many intervals, twice over.
        ours = run_ours(setup, n, timeout=setup.report_delay + 2 * (n / 100 + 3) * setup.pull_interval)
        diy = run_diy(setup, n)
        results[n] = (ours, diy)
        print(f"  N={n}: ours {ours['pulls']} pulls in {ours['seconds']:.1f} s, "
              f"max {ours['pull_max']}/interval, {ours['delivered']} delivered, {ours['lost']} lost | "
              f"DIY {diy['pulls']} pulls, "
              f"max {diy['round_pulls_max']}/interval, {diy['delivered']} delivered, {diy['lost']} lost",
              flush=True)

    rows: list[Row] = []
    for n, (ours, diy) in results.items():
        b = f"1 wait N={n}"
        rows.append(Row(b, "ac=status pull turns per interval (max)", fmt_num(ours["turn_max"]),
                        fmt_num(diy["round_pulls_max"]),
                        fmt_ratio(diy["round_pulls_max"] / max(ours["turn_max"], 1)),
                        "≤ 1" if n == max(sizes) else "", ours["turn_max"] <= 1 if n == max(sizes) else None))
        rows.append(Row(b, "ac=status pulls in all", fmt_num(ours["pulls"]), fmt_num(diy["pulls"]), "", "",
                        None))
        rows.append(Row(b, "reports delivered / lost", f"{ours['delivered']} / {ours['lost']}",
                        f"{diy['delivered']} / {diy['lost']}", "", "0 lost", ours["lost"] == 0))
        rows.append(Row(b, "worker slots held while waiting", "0", fmt_num(diy["slots"]), "",
                        "0", True))
        rows.append(Row(b, "ledger looks for all triggers / CPU per look (µs)",
                        f"{ours['polls']:,} / {ours['poll_cpu_us']:.0f}", "", "", "", None))
        rows.append(Row(b, "time until all reports in (s)", fmt_num(ours["seconds"], 1),
                        f"never ({diy['lost']} lost)" if diy["lost"] else fmt_num(diy["seconds"], 1),
                        "", "", None))

    big, (ours, diy) = max(sizes), results[max(sizes)]
    paragraph = (
        f"{big} calls were placed on one account, then waited on at once. Ours: {big} "
        f"`SmsCnDeliveryTrigger`s in one asyncio loop (as the triggerer runs them) made {ours['pulls']} "
        f"`ac=status` pulls in {ours['seconds']:.1f} s, in turns of back-to-back pulls (a pull that came "
        f"back full is followed at once) — at most {ours['turn_max']} turn per {setup.pull_interval:g} s "
        f"interval, turns {ours['turn_min_gap']:.2f} s apart at the closest — and every trigger got its "
        "report "
        f"({ours['lost']} lost). The sandbox hands out at most 100 reports a pull (its default, kept); "
        "a pull "
        f"that comes back full is followed at once by another (the lease renewed), so {big} reports take "
        f"{-(-big // 100)} pull(s) or more in one turn. The triggers held no worker "
        f"slot; in this process they kept at most {ours['threads']} `asyncio.to_thread` workers busy and "
        "used "
        f"{ours['cpu']:.1f} s of CPU over the {ours['seconds']:.1f} s (sandbox included). The {big} "
        f"triggers waited through the process's one watcher: {ours['polls']:,} ledger looks in all, "
        f"{ours['poll_cpu_us']:.0f} µs each (thread CPU time, pulls and their stores included); "
        f"{ours['lease_tries']:,} tries of the pull lease — a write transaction — at "
        f"{ours['lease_cpu_us']:.0f} µs a try, of which {ours['pulls']} led to pulls. "
        f"DIY: {big} `HttpSensor`s poking `ac=status` every {setup.pull_interval:g} s made "
        f"{diy['round_pulls_max']} pulls in the first interval and {diy['pulls']} in all; "
        f"{diy['delivered']} sensor(s) found their own report, {diy['lost']} reports were consumed by "
        f"another sensor's pull and dropped — those sensors would poke until their timeout. Each DIY "
        f"sensor holds a worker slot while it waits ({diy['slots']} slots); {DIY_THREADS} threads stood in "
        "for them here, so one round of pokes took longer than it would on real workers (the pull count "
        "per round does not depend on that). `HttpSensor` cannot defer when it has a `response_check`, and "
        "`mode='reschedule'` would free the slots between pokes but pull and lose exactly as much."
    )
    chart = {
        "sizes": sizes,
        "ours_pulls": [results[n][0]["turn_max"] for n in sizes],
        "diy_pulls": [results[n][1]["round_pulls_max"] for n in sizes],
        "ours_lost": [results[n][0]["lost"] for n in sizes],
        "diy_lost": [results[n][1]["lost"] for n in sizes],
    }
    shortfalls = []
    if ours["turn_max"] > 1:
        shortfalls.append(
            f"Waiting N={big}: the vendor saw {ours['turn_max']} pull turns within one "
            f"{setup.pull_interval:g} s "
            f"slot (closest gap {ours['turn_min_gap']:.2f} s). The lease spaces pulls ≥ one interval apart "
            "on the caller's clock when it is granted; a pull that waits for a busy `to_thread` worker "
            "reaches the vendor later than granted, and the next one may then arrive less than an "
            "interval after it.")
    if ours["lost"]:
        shortfalls.append(f"Waiting N={big}: {ours['lost']} triggers had not fired within the time limit.")
    return BenchResult("waiting", "Waiting on N deliveries at once", rows, paragraph, chart, shortfalls)
