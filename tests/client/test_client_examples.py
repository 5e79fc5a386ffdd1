"""examples/client_quickstart.py, shown in docs/client.md, run as a user runs it (no Airflow needed)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from airflow_provider_smscn.sandbox import Sandbox

SCRIPT = Path(__file__).resolve().parents[2] / "examples" / "client_quickstart.py"


def _run(url: str) -> str:
    proc = subprocess.run([sys.executable, str(SCRIPT), url], capture_output=True, text=True, timeout=60,
                          check=True)
    return proc.stdout


def test_quickstart_sends_one_code_and_pulls_reports():
    with Sandbox(report_delay=0, seed=1) as sandbox:
        out = _run(sandbox.url)
        calls = sandbox.calls()
    assert out.startswith("balance: 100000\n")
    assert [c["mobile"] for c in calls] == ["13900008888"]
    assert f"sent ['{calls[0]['mobileid']}']" in out


def test_quickstart_shows_a_refusal():
    with Sandbox(report_delay=0, seed=1) as sandbox:
        sandbox.set_account(balance=0)
        out = _run(sandbox.url)
        assert sandbox.calls() == []
    assert "102 insufficient balance - fix and resend" in out
