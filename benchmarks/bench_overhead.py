"""Benchmark 4: the hook's per-call overhead against a bare ``requests.Session.post`` (balance call).

Why it matters: the hook validates, signs, retries and parses on every call; that must cost
little next to the request itself. Measured against a sandbox with no latency, so that overhead
shows, running in its own process so its request handling does not compete with the timed
client for this process's GIL. Calls are interleaved (A B B A ...), each timed on its own, and
the medians compared.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from typing import Any

from benchmarks.common import PYTHON, BenchResult, Row, Setup, fmt_num, median

TARGET_RATIO = 1.10
CONN_ID = "smscn_overhead"


def _start_sandbox_process() -> tuple[subprocess.Popen[str], str]:
    """``smscn-sandbox`` on a free loopback port, no latency, no rate limit; returns (process, URL)."""
    proc = subprocess.Popen(
        [PYTHON, "-m", "airflow_provider_smscn.sandbox", "--host", "127.0.0.1", "--port", "0",
         "--rate-limit", "0", "--balance", "1000000"],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    url = proc.stdout.readline().strip()
    if not url.startswith("http://127.0.0.1:"):
        proc.kill()
        raise RuntimeError(f"the sandbox process did not start (said {url!r})")
    return proc, url


def _bare_caller(conn: dict[str, Any], url: str) -> Any:
    """The baseline: a prepared form (signed once) posted on a keep-alive session, body read."""
    import requests

    from airflow_provider_smscn.client.signing import beijing_timestamp, make_tokenkey

    stamp = beijing_timestamp()
    form = {"uid": conn["login"], "timestamp": stamp, "ac": "number", "format": "json",
            "tokenkey": make_tokenkey(conn["login"], conn["extra"]["secret_key"], stamp)}
    session = requests.Session()

    def call() -> bytes:
        return session.post(url, data=form, timeout=10).content

    return call, session


def run(setup: Setup) -> BenchResult:
    """Warm both up, then time ``rounds`` interleaved pairs; compare the medians."""
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    rounds = 400 if setup.quick else 4000
    proc, url = _start_sandbox_process()
    try:
        conn = json.loads(setup.sandbox.connection_json())  # the sandbox's example account
        conn["host"] = url
        os.environ[f"AIRFLOW_CONN_{CONN_ID.upper()}"] = json.dumps(conn)
        hook = SmsCnHook(smscn_conn_id=CONN_ID)
        bare, session = _bare_caller(conn, url)
        calls = {"hook": hook.get_balance, "bare": bare}
        for _ in range(50):
            for fn in calls.values():
                fn()
        times: dict[str, list[float]] = {"hook": [], "bare": []}
        order = ("hook", "bare")
        for i in range(rounds):
            for name in order if i % 2 == 0 else order[::-1]:
                start = time.perf_counter_ns()
                calls[name]()
                times[name].append((time.perf_counter_ns() - start) / 1000)
        hook.close()
        session.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    hook_us, bare_us = median(times["hook"]), median(times["bare"])
    ratio = hook_us / bare_us
    print(f"  hook {hook_us:.0f} µs vs bare {bare_us:.0f} µs median over {rounds} pairs: {ratio:.3f}×",
          flush=True)
    rows = [
        Row("4 overhead", "balance call, median (µs)", fmt_num(hook_us), fmt_num(bare_us), f"{ratio:.3f}×",
            f"≤ {TARGET_RATIO:.2f}×", ratio <= TARGET_RATIO),
        Row("4 overhead", "added per call (µs, median difference)", fmt_num(hook_us - bare_us), "", "", "",
            None),
    ]
    p90 = sorted(times["hook"])[int(0.9 * rounds)], sorted(times["bare"])[int(0.9 * rounds)]
    paragraph = (
        f"`SmsCnHook.get_balance()` (validate, sign with a cached `tokenkey`, POST through tenacity's retry "
        f"loop, decode and parse the JSON reply, map `stat`) against `requests.Session.post` of a form "
        "signed "
        f"once, both on keep-alive sessions to a sandbox process on 127.0.0.1 with no latency. {rounds} "
        f"interleaved pairs (the order flips every round): median {hook_us:.0f} µs against {bare_us:.0f} µs, "
        f"{ratio:.3f}×, {hook_us - bare_us:.0f} µs added per call (p90 {p90[0]:.0f} against "
        f"{p90[1]:.0f} µs). "
        f"Against the {setup.latency_ms:g} ms latency used elsewhere in this run that is "
        f"{(hook_us - bare_us) / (setup.latency_ms * 10):.2f} % of a call."
    )
    shortfalls = []
    if ratio > TARGET_RATIO:
        shortfalls.append(
            f"Hook overhead: {ratio:.3f}× a bare post ({hook_us - bare_us:.0f} µs a call) against ≤ "
            f"{TARGET_RATIO:.2f}×, measured on loopback with no latency, where a round trip is only "
            f"{bare_us:.0f} µs.")
    chart = {"hook_us": hook_us, "bare_us": bare_us, "ratio": ratio, "target": TARGET_RATIO}
    return BenchResult("overhead", "Per-call overhead of the hook", rows, paragraph, chart, shortfalls)
