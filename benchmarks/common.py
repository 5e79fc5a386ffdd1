"""Shared set-up of the benchmarks: environment before Airflow loads, the sandbox, result rows.

Airflow reads its configuration when it is first imported, so :func:`prepare_environment` must run
before anything imports ``airflow``; the benchmark modules import Airflow inside their functions.
Every request goes to a sandbox on 127.0.0.1: nothing here can reach the real vendor.
"""

from __future__ import annotations

import itertools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from airflow_provider_smscn.sandbox import Sandbox

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable
TEMPLATE_ID = "700001"  # the sandbox's example template: 您的验证码是：{$code}。
VARIABLES = {"code": "123456"}
HTTP_CONN_ID = "smscn_http"  # the plain HTTP connection the do-it-yourself sensors use


@dataclass
class Row:
    """One line of the results table; ``met`` is None when the metric has no target."""

    bench: str
    metric: str
    ours: str
    baseline: str
    ratio: str
    target: str
    met: bool | None


@dataclass
class BenchResult:
    """What one benchmark hands to the report: its rows, a paragraph of this run, chart data."""

    key: str
    title: str
    rows: list[Row]
    paragraph: str
    chart: dict[str, Any] = field(default_factory=dict)
    shortfalls: list[str] = field(default_factory=list)
    seconds: float = 0.0
    #: When it was measured (UTC text); sections kept from an earlier run by ``--only`` say so.
    measured: str = ""


@dataclass
class Setup:
    """The run-wide settings every benchmark reads (and the report prints)."""

    quick: bool
    latency_ms: float
    report_delay: float
    pull_interval: float
    home: Path
    sandbox: Sandbox
    extra: dict[str, Any] = field(default_factory=dict)


def prepare_environment(*, quick: bool, latency_ms: float, report_delay: float,
                        pull_interval: float) -> Setup:
    """Start the sandbox and point a throwaway Airflow at it, before Airflow is imported."""
    if "airflow" in sys.modules:
        raise RuntimeError("prepare_environment() must run before anything imports airflow")
    from airflow_provider_smscn.sandbox import Sandbox

    home = Path(tempfile.mkdtemp(prefix="smscn-bench-"))
    sandbox = Sandbox(report_delay=report_delay, latency_ms=latency_ms, seed=5).start()
    configure_sandbox(sandbox, latency_ms=latency_ms)
    os.environ.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__UNIT_TEST_MODE": "True",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "WARNING",
        "AIRFLOW__SMSCN__LEDGER_URL": f"sqlite:///{home}/ledger.db",
        "AIRFLOW__SMSCN__PULL_INTERVAL": str(pull_interval),
        "AIRFLOW_CONN_SMSCN_DEFAULT": sandbox.connection_json(),
        # The do-it-yourself way: Airflow's generic HTTP connection to the same sandbox.
        f"AIRFLOW_CONN_{HTTP_CONN_ID.upper()}": json.dumps(
            {"conn_type": "http", "host": sandbox.host, "port": sandbox.port, "schema": "http"}),
    })
    # HttpSensor still imports a helper from a deprecated path; the warning is not ours to fix.
    warnings.filterwarnings("ignore", message=".*determine_kwargs.*")
    return Setup(quick=quick, latency_ms=latency_ms, report_delay=report_delay,
                 pull_interval=pull_interval, home=home, sandbox=sandbox)


def configure_sandbox(sandbox: Sandbox, *, latency_ms: float, **account: Any) -> None:
    """Start a scenario from a clean vendor: no reports, no calls, only the latency asked for.

    The rate limit is lifted and the balance made large so neither side of a comparison is
    slowed or refused by limits the other never meets.
    """
    sandbox.reset()
    sandbox.clear_faults()
    if latency_ms:
        sandbox.inject_fault("latency", ms=latency_ms)
    sandbox.set_account(**{"rate_limit_per_second": 100_000, "balance": 10**9, **account})


_ID_BASE = int(time.time())
_ID_COUNTER = itertools.count()


def new_mobileids(count: int) -> list[str]:
    """Message ids never used before in this run (digits only, as the vendor wants)."""
    batch = next(_ID_COUNTER)
    return [f"{_ID_BASE}{batch:04d}{i:07d}" for i in range(count)]


def mobiles(count: int) -> list[str]:
    """``count`` distinct, valid mainland mobile numbers (the sandbox phones nobody)."""
    return [f"139{i:08d}" for i in range(count)]


def send_calls(hook: Any, count: int) -> tuple[list[str], float]:
    """Place ``count`` calls through ``hook`` in 1000-number requests (the vendor's limit) with
    known ids; returns the ids and the wall time just before the last request left."""
    ids, numbers = new_mobileids(count), mobiles(count)
    last_start = time.time()
    for i in range(0, count, 1000):
        last_start = time.time()
        hook.send_voice_code(numbers[i:i + 1000], TEMPLATE_ID, VARIABLES, mobileids=ids[i:i + 1000])
    return ids, last_start


def run_child(module: str, *args: str, timeout: float) -> dict[str, Any]:
    """Run ``python -m benchmarks.<module> --child ARGS`` in a fresh interpreter (nothing an earlier
    benchmark loaded or cached is counted); the JSON of its ``RESULT`` line."""
    out = subprocess.run([PYTHON, "-m", f"benchmarks.{module}", "--child", *args], cwd=REPO,
                         env=os.environ.copy(), capture_output=True, text=True, timeout=timeout)
    lines = [x for x in out.stdout.splitlines() if x.startswith("RESULT ")]
    if out.returncode != 0 or not lines:
        raise RuntimeError(f"{module} child {args} failed: {out.stderr[-2000:]}")
    return dict(json.loads(lines[-1][len("RESULT "):]))


def auth_fields(sandbox: Sandbox) -> dict[str, str]:
    """``uid`` and ``pwd`` (md5 of password + uid) for hand-written requests, as a DIY user would."""
    import hashlib

    conn = json.loads(sandbox.connection_json(auth="password"))
    pwd = hashlib.md5((conn["password"] + conn["login"]).encode(), usedforsecurity=False).hexdigest()
    return {"uid": conn["login"], "pwd": pwd}


def median(values: Iterable[float]) -> float:
    data = list(values)
    return statistics.median(data) if data else float("nan")


def per_interval(times: Sequence[float], start: float, end: float, interval: float) -> dict[str, float]:
    """Pulls per interval seen by the vendor: max in any fixed slot of the run, mean, closest gap."""
    slots = max(1, int((end - start) // interval) + 1)
    counts = [0] * slots
    for t in times:
        if start <= t <= end:
            counts[min(slots - 1, int((t - start) // interval))] += 1
    ordered = sorted(times)
    gaps = [b - a for a, b in itertools.pairwise(ordered)]
    elapsed = max(end - start, interval)
    return {
        "max": max(counts) if times else 0,
        "mean": len(times) / (elapsed / interval),
        "min_gap": min(gaps) if gaps else float("nan"),
        "slots": slots,
    }


def fmt_num(value: float, digits: int = 0) -> str:
    """A number for the table: thousands separated, fixed decimals."""
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


def fmt_ratio(value: float) -> str:
    if value != value or value in (float("inf"), float("-inf")):
        return "n/a"
    return f"{value:,.0f}×" if value >= 100 else f"{value:.2f}×" if value < 10 else f"{value:.1f}×"


def rss_mb() -> float:
    """Resident memory of this process in MiB (Linux ``/proc``)."""
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


class CpuMeter:
    """Counts calls of some methods of one object and the CPU time their threads spent in them.

    Instrumentation for the benchmarks only: the wrappers are set on the instance (the provider's
    code is untouched) and removed on exit. ``time.thread_time`` is per thread, so calls running
    in parallel worker threads are measured without each other's waiting.
    """

    def __init__(self, target: Any, *names: str) -> None:
        self.target, self.names = target, names
        self.calls = dict.fromkeys(names, 0)
        self.cpu = dict.fromkeys(names, 0.0)
        self._lock = threading.Lock()

    def __enter__(self) -> CpuMeter:
        for name in self.names:
            setattr(self.target, name, self._wrap(name, getattr(self.target, name)))
        return self

    def __exit__(self, *exc_info: object) -> None:
        for name in self.names:
            vars(self.target).pop(name, None)

    def _wrap(self, name: str, fn: Any) -> Any:
        def measured(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent = time.thread_time() - start
                with self._lock:
                    self.calls[name] += 1
                    self.cpu[name] += spent

        return measured
