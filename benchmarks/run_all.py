"""Run every benchmark in one process, print the table, write docs/benchmarks.md and .png.

Usage: ``.venv/bin/python benchmarks/run_all.py [--quick] [--only NAME ...]``. A full run produces
the whole page, so every comparison in it was measured side by side under the same conditions.
``--only`` reruns some benchmarks and keeps the other sections as the last run left them (from
``docs/benchmarks.json``, written next to the page); the page says which sections came from when.
The run is bounded: each benchmark limits its own rounds and subprocesses, and an alarm ends a
run that overstays.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import signal
import sys
import time
import traceback
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the `benchmarks` package importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.common import REPO, BenchResult, Row, prepare_environment

MODULES = ("bench_waiting", "bench_bulk_send", "bench_import", "bench_overhead", "bench_memory",
           "bench_drain", "bench_scale")


def _overstayed(signum: int, frame: object) -> None:
    raise TimeoutError("the benchmark run exceeded its time limit")


def _failed(name: str, exc: Exception) -> BenchResult:
    """A benchmark that raised: say so in the table and the shortfalls instead of hiding it."""
    what = "timed out" if isinstance(exc, TimeoutError) else "failed"
    text = f"{name} {what}: {type(exc).__name__}: {exc}"
    from benchmarks.report import key_of

    return BenchResult(key_of(name), f"{name} ({what})", [Row(name, what, "", "", "", "", False)], text,
                       shortfalls=[text])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller sizes, fewer repetitions (< 2 min)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="sandbox latency per request")
    parser.add_argument("--out-dir", type=Path, default=REPO / "docs", help="where the .md and .png go")
    parser.add_argument("--only", nargs="+", choices=MODULES, help="run some benchmarks only")
    args = parser.parse_args(argv)

    started = time.monotonic()
    signal.signal(signal.SIGALRM, _overstayed)
    signal.alarm(420 if args.quick else 1500)
    setup = prepare_environment(quick=args.quick, latency_ms=args.latency_ms, report_delay=0.5,
                                pull_interval=1.0)
    setup.extra["only"] = list(args.only or [])
    from benchmarks import report

    info = report.machine()  # the load average before the run loads the machine itself
    results: list[BenchResult] = []
    try:
        for name in args.only or MODULES:
            module = importlib.import_module(f"benchmarks.{name}")
            print(f"== {name}: {(module.__doc__ or '').splitlines()[0]}", flush=True)
            t0 = time.monotonic()
            try:
                result = module.run(setup)
            except Exception as exc:  # one broken benchmark must not hide the others' figures
                traceback.print_exc()
                result = _failed(name, exc)
            result.seconds = time.monotonic() - t0
            results.append(result)
            if result.title.endswith("(timed out)"):
                break
    finally:
        signal.alarm(0)
        setup.sandbox.stop()

    total = time.monotonic() - started
    args.out_dir.mkdir(parents=True, exist_ok=True)
    saved = args.out_dir / "benchmarks.json"
    if args.only:  # keep the sections not rerun, in the page's order (fresh ones have measured == "")
        rerun = {r.key for r in results}
        kept = [r for r in report.load_results(saved) if r.key not in rerun]
        order = [report.key_of(name) for name in MODULES]
        results = sorted([*kept, *results],
                         key=lambda r: order.index(r.key) if r.key in order else len(order))
    stamp = report.now_text()
    report.save_results(saved, [dataclasses.replace(r, measured=r.measured or stamp) for r in results])
    print()
    report.print_table(results)
    chart = args.out_dir / "benchmarks.png"
    drawn = report.write_chart(chart, results)
    report.write_markdown(args.out_dir / "benchmarks.md", results, setup, info, total,
                          chart.name if drawn else None)
    missed = [r for res in results for r in res.rows if r.met is False]
    print(f"\nwrote {args.out_dir / 'benchmarks.md'} and {chart.name} in {total:.0f} s; "
          f"{len(missed)} target(s) missed", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
