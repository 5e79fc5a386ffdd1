"""Turn one run's results into the printed table, ``docs/benchmarks.md`` and ``docs/benchmarks.png``.

Everything written comes from the results of the run that calls it: no figure is typed in here,
so the document cannot drift from what was measured.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import os
import platform
import re
from typing import TYPE_CHECKING, Any

from benchmarks.common import BenchResult, Row

if TYPE_CHECKING:
    from pathlib import Path

    from benchmarks.common import Setup

HEADER = ("benchmark", "metric", "ours", "DIY / baseline", "ratio", "target", "met?")

# Caveats of the method itself, true whatever the figures: they belong next to the shortfalls.
METHOD_LIMITS = [
    "The DIY sensors of benchmark 1 run their pokes on a thread pool standing in for worker slots; on "
    "real workers a round of pokes would be faster, which changes when the reports are lost, not "
    "whether: whoever pulls first takes up to 100 reports, whoever they belong to.",
    "The sandbox runs inside the benchmark process for benchmarks 1, 2 and 6 (its request handling "
    "shares the GIL with the client; for benchmarks 5 and 7 it serves from the parent, outside the "
    "measured children), and in its own process for benchmark 4, where microseconds matter. Its "
    "latency is a sleep before each request is processed, not a real network.",
    "Our waiting figures come from triggers driven directly in one event loop, not from a running "
    "triggerer: the triggerer's own bookkeeping (trigger rows, heartbeats) is not included.",
    "The machine is shared (see the load average above); timings move by tens of percent from run to "
    "run, request and pull counts do not.",
]


#: Result key of each benchmark module (the chart and ``--only`` find sections by it).
KEYS = {"bench_waiting": "waiting", "bench_bulk_send": "bulk", "bench_import": "import",
        "bench_overhead": "overhead", "bench_memory": "memory", "bench_drain": "drain",
        "bench_scale": "scale"}
# The table's benchmark column starts with the section's number: how an old page maps to keys.
_NUMBERED = {"1": "waiting", "2": "bulk", "3": "import", "4": "overhead", "5": "memory", "6": "drain",
             "7": "scale"}


def key_of(module: str) -> str:
    return KEYS.get(module, module)


def now_text() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def save_results(path: Path, results: list[BenchResult]) -> None:
    """Every section of the page as data, so a later ``--only`` run can keep the others."""
    path.write_text(json.dumps([dataclasses.asdict(r) for r in results], indent=1, ensure_ascii=False) + "\n",
                    encoding="utf-8")


def load_results(path: Path) -> list[BenchResult]:
    """The sections of the last run: its JSON, else (an older page) the table and texts of its .md."""
    if path.exists():
        data = json.loads(path.read_text(encoding="utf-8"))
        return [BenchResult(**{**d, "rows": [Row(**row) for row in d["rows"]]}) for d in data]
    page = path.with_suffix(".md")
    return _parse_page(page.read_text(encoding="utf-8")) if page.exists() else []


def _parse_page(text: str) -> list[BenchResult]:
    generated = re.search(r"on (\d{4}-\d\d-\d\d \d\d:\d\d UTC)", text)
    when = generated.group(1) if generated else ""
    by_key: dict[str, BenchResult] = {}
    for line in text.splitlines():
        cells = [c.strip().replace("\\|", "|") for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]
        if len(cells) != len(HEADER) or cells[0] in ("benchmark", "---") or set(cells[0]) <= {"-"}:
            continue
        key = _NUMBERED.get(cells[0].split(" ", 1)[0])
        if key is None:
            continue
        met = {"yes": True, "**no**": False}.get(cells[6])
        result = by_key.setdefault(key, BenchResult(key, key, [], "", measured=when))
        result.rows.append(Row(cells[0], cells[1], cells[2], cells[3], cells[4],
                               "" if cells[5] == "—" else cells[5], met))
    for match in re.finditer(r"^### (\d+)\. (.+?) \((\d+) s\)\n\n(.+?)\n", text, flags=re.M):
        key = _NUMBERED.get(match.group(1))
        if key in by_key:
            by_key[key].title, by_key[key].seconds = match.group(2), float(match.group(3))
            by_key[key].paragraph = match.group(4)
    return list(by_key.values())


def _cell(row: Row) -> list[str]:
    met = "—" if row.met is None else ("yes" if row.met else "**no**")
    return [row.bench, row.metric, row.ours, row.baseline, row.ratio, row.target or "—", met]


def print_table(results: list[BenchResult]) -> None:
    """The table on stdout, columns padded, for whoever runs the script."""
    lines = [list(HEADER)] + [_cell(r) for res in results for r in res.rows]
    lines = [[c.replace("**", "") for c in line] for line in lines]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    for k, line in enumerate(lines):
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
        if k == 0:
            print("  ".join("-" * w for w in widths))


def machine() -> dict[str, str]:
    """What the figures were measured on."""
    model = ""
    try:
        with open("/proc/cpuinfo") as handle:
            model = next((x.split(":", 1)[1].strip() for x in handle if x.startswith("model name")), "")
    except OSError:
        pass
    from importlib.metadata import version

    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    return {"cores": str(os.cpu_count()), "cpu": model or platform.processor() or "unknown",
            "python": platform.python_version(), "airflow": version("apache-airflow"),
            "os": f"{platform.system()} {platform.release()}", "load": load}


def write_markdown(path: Path, results: list[BenchResult], setup: Setup, info: dict[str, str],
                   total_seconds: float, chart_name: str | None) -> None:
    """The document of this run: setup, table, chart, a paragraph per benchmark, the shortfalls."""
    when = now_text()
    mode = "`--quick`: smaller sizes, fewer repetitions" if setup.quick else "full run"
    if setup.extra.get("only"):
        mode += ", `--only " + " ".join(setup.extra["only"]) + "`"
    older = sorted({r.measured for r in results if r.measured})
    scope = ("Every figure below comes from that one run" if not older else
             "Sections marked with an earlier date were kept from that earlier run (`--only` reran the "
             "others); within a section every comparison was measured side by side in one run")
    out = [
        "# Benchmarks",
        "",
        f"Generated by `benchmarks/run_all.py` ({mode}) on {when}, in {total_seconds:.0f} s. {scope}; "
        "run the "
        "script again to refresh this page (do not edit it by hand).",
        "",
        "```bash",
        ".venv/bin/python benchmarks/run_all.py          # full run, writes docs/benchmarks.md and .png",
        ".venv/bin/python benchmarks/run_all.py --quick  # smaller and faster",
        ".venv/bin/python benchmarks/run_all.py --only bench_drain bench_scale  # rerun some, keep the rest",
        "```",
        "",
        "## Setup",
        "",
        f"- Machine: {info['cores']} cores ({info['cpu']}), {info['os']}, Python {info['python']}, "
        f"Airflow {info['airflow']}; load average at the start {info['load']} (a shared machine).",
        f"- Vendor: the project's sandbox on 127.0.0.1 with {setup.latency_ms:g} ms of latency added to "
        f"every request (benchmarks 1, 2, 5, 6, 7) and none for benchmark 4; reports pullable "
        f"{setup.report_delay:g} s after the send (benchmark 7: held back until the triggers wait); at "
        "most 100 reports a pull (the sandbox's default, left as is); rate limit lifted and balance raised "
        "so neither side is refused.",
        f"- Waiting: `pull_interval` = poll interval = poke interval = {setup.pull_interval:g} s "
        "(benchmark 7: 5 s, the default).",
        f"- Airflow: a throwaway `AIRFLOW_HOME`, unit-test mode, the ledger in SQLite at "
        f"`{setup.home}/ledger.db`, the connection `smscn_default` from `Sandbox.connection_json()`.",
        "",
        "## Results",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "|".join("---" for _ in HEADER) + "|",
    ]
    out += ["| " + " | ".join(c.replace("|", "\\|") for c in _cell(r)) + " |"
            for res in results for r in res.rows]
    out.append("")
    if chart_name:
        out += [f"![benchmark chart]({chart_name})", ""]
    out += ["## What each benchmark did, and what it showed", ""]
    for number, res in enumerate(results, start=1):
        stamp = f", measured {res.measured}" if res.measured else ""
        out += [f"### {number}. {res.title} ({res.seconds:.0f} s{stamp})", "", res.paragraph, ""]
    out += ["## Say honestly where we fall short, and why", ""]
    shortfalls = [s for res in results for s in res.shortfalls]
    if shortfalls:
        out += [f"- {s}" for s in shortfalls]
    else:
        out.append("- No target was missed in this run.")
    out += ["", "Limits of the method, whatever the figures:", ""]
    out += [f"- {s}" for s in METHOD_LIMITS]
    out.append("")
    path.write_text("\n".join(out), encoding="utf-8")


def write_chart(path: Path, results: list[BenchResult]) -> bool:
    """A few small panels, one per comparison; returns False when there was nothing to draw."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    data: dict[str, dict[str, Any]] = {r.key: r.chart for r in results if r.chart}
    if not data:
        return False
    fig, axes = plt.subplots(3, 3, figsize=(12, 9.5))
    ours_c, diy_c = "#2b7bba", "#d95f02"
    panels = iter(axes.flat)

    if "waiting" in data:
        w = data["waiting"]
        labels = [f"N={n}" for n in w["sizes"]]
        x = range(len(labels))
        ax = next(panels)
        bars = ax.bar([i - 0.2 for i in x], w["ours_pulls"], 0.4, label="ours (triggers)", color=ours_c)
        ax.bar_label(bars, fontsize=7)
        bars = ax.bar([i + 0.2 for i in x], w["diy_pulls"], 0.4, label="DIY (HttpSensor)", color=diy_c)
        ax.bar_label(bars, fontsize=7)
        ax.set_yscale("log")
        ax.set_ylim(top=max(w["diy_pulls"]) * 3)
        ax.set_xticks(list(x), labels)
        ax.set_title("ac=status pull turns per interval (max)", fontsize=9)
        ax.legend(fontsize=7)
        ax = next(panels)
        for shift, lost, label, color in ((-0.2, w["ours_lost"], "ours", ours_c),
                                          (0.2, w["diy_lost"], "DIY", diy_c)):
            ax.bar_label(ax.bar([i + shift for i in x], lost, 0.4, label=label, color=color), fontsize=7)
        ax.set_xticks(list(x), labels)
        ax.set_title("delivery reports lost", fontsize=9)
        ax.legend(fontsize=7)
    if "bulk" in data:
        b = data["bulk"]
        ax = next(panels)
        bars = ax.bar(["ours", "DIY"], [b["ours_s"], b["diy_s"]], color=[ours_c, diy_c])
        ax.set_yscale("log")
        for bar, req in zip(bars, (b["ours_req"], b["diy_req"]), strict=True):
            ax.annotate(f"{req:,} req", (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                        ha="center", va="bottom", fontsize=7)
        ax.set_title(f"calling {b['count']:,} numbers: wall time (s)", fontsize=9)
    if "import" in data:
        m = data["import"]
        ax = next(panels)
        ax.bar(["after\nairflow.sdk", "@task\npreloaded", "own modules\n(importtime)"],
               [m["ours_ms"], m["rest_ms"], m["own_ms"]], color=[ours_c, "#7fb2da", "#7fb2da"])
        ax.axhline(m["target_ms"], color="k", ls="--", lw=1, label=f"target {m['target_ms']:g} ms")
        ax.set_title("provider import time (ms)", fontsize=9)
        ax.legend(fontsize=7)
    if "overhead" in data:
        o = data["overhead"]
        ax = next(panels)
        ax.bar(["hook", "bare post"], [o["hook_us"], o["bare_us"]], color=[ours_c, "#999999"])
        ax.set_title(f"balance call, median µs ({o['ratio']:.3f}×)", fontsize=9)
    if "memory" in data:
        m = data["memory"]
        ax = next(panels)
        ax.bar(["RSS growth", "Python heap"], [m["rss"], m["traced"]], color=[ours_c, "#7fb2da"])
        ax.axhline(m["target"], color="k", ls="--", lw=1, label=f"target {m['target']:g} MiB")
        ax.set_title(f"{m['n']} waiting triggers (MiB)", fontsize=9)
        ax.text(0.5, 0.6, f"DIY: ~{m['diy'] / 1024:.0f} GiB\n({m['n']} task processes)",
                transform=ax.transAxes, ha="center", fontsize=7, color=diy_c)
        ax.legend(fontsize=7)
    if "drain" in data:
        d = data["drain"]
        ax = next(panels)
        bars = ax.bar(["drained\n(ours)", "1 pull per\ninterval", "floor"],
                      [d["ours_s"], d["base_s"], d["floor_s"]],
                      color=[ours_c, diy_c, "#999999"])
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.set_title(f"backlog of {d['n']:,} reports: seconds until all in", fontsize=9)
    if "scale" in data:
        c = data["scale"]
        ax = next(panels)
        bars = ax.bar(["watcher\n(ours)", "a look per\ntrigger"],
                      [100 * c["ours_cpu"], 100 * c["legacy_cpu"]],
                      color=[ours_c, diy_c])
        ax.bar_label(bars, fmt="%.1f", fontsize=7)
        ax.axhline(5, color="k", ls="--", lw=1, label="target 5 %")
        ax.set_title(f"{c['n']:,} waiting triggers: CPU, % of a core", fontsize=9)
        ax.legend(fontsize=7)
    for ax in panels:
        ax.axis("off")
    for ax in axes.flat:
        ax.tick_params(labelsize=7)
    fig.suptitle("airflow-provider-smscn benchmarks (one run; see docs/benchmarks.md)", fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
