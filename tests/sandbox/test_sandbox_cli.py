"""``python -m airflow_provider_smscn.sandbox`` / ``smscn-sandbox`` as a real process."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from typing import TYPE_CHECKING

import pytest
import requests

from tests.support.sandbox_calls import DOC_PWD, pwd_auth, token_auth

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

START_TIMEOUT = 20


class Running:
    """A sandbox process; its stdout's first line is the URL."""

    def __init__(self, *args: str, executable: list[str] | None = None) -> None:
        command = (executable or [sys.executable, "-m", "airflow_provider_smscn.sandbox"]) + list(args)
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8", env=env
        )
        lines: queue.Queue[str] = queue.Queue()
        assert self.process.stdout is not None
        stdout = self.process.stdout
        threading.Thread(target=lambda: lines.put(stdout.readline()), daemon=True).start()
        try:
            self.url = lines.get(timeout=START_TIMEOUT).strip()
        except queue.Empty:
            self.stop()
            pytest.fail("the sandbox printed no URL in time")
        if not self.url:
            _, err = self.stop()
            pytest.fail(f"the sandbox exited: {err}")

    def stop(self) -> tuple[int, str]:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            _, err = self.process.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            _, err = self.process.communicate(timeout=10)
        return self.process.returncode, err


@pytest.fixture
def running() -> Iterator[Running]:
    proc = Running("--port", "0")
    try:
        yield proc
    finally:
        proc.stop()


def test_prints_url_and_serves_the_document_account(running: Running) -> None:
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+/voice/", running.url)
    number = requests.get(
        running.url, params={"ac": "number", "uid": "test", "pwd": DOC_PWD}, timeout=5
    ).json()
    assert number == {"stat": "100", "message": "成功", "number": "100000"}
    sent = requests.post(
        running.url,
        data={
            **token_auth(),
            "ac": "sendcode",
            "mobile": "13900008888",
            "template": "700001",
            "content": '{"code":"1"}',
        },
        timeout=5,
    ).json()
    assert sent["stat"] == "100"
    control = running.url.replace("/voice/", "/_control/")
    assert requests.get(control + "health", timeout=5).json() == {"ok": True}
    assert len(requests.get(control + "calls", timeout=5).json()["calls"]) == 1
    code, err = running.stop()
    assert code == 0
    assert "13900008888" not in err and DOC_PWD not in err  # quiet: no request lines


def test_config_file_faults_and_verbose_masking(tmp_path: Path) -> None:
    config = {
        "accounts": [{"uid": "acme", "password": "pw", "balance": 2, "templates": {"1": "{$code}"}}],
        "report_delay": 0,
        "seed": 3,
        "faults": [{"kind": "stat", "code": 107, "action": "number", "count": 1}],
    }
    path = tmp_path / "sandbox.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    proc = Running("--port", "0", "--config", str(path), "--verbose", "--rate-limit", "0")
    try:
        auth = pwd_auth("acme", "pw")
        assert requests.get(proc.url, params={"ac": "number", **auth}, timeout=5).json()["stat"] == "107"
        assert requests.get(proc.url, params={"ac": "number", **auth}, timeout=5).json()["number"] == "2"
        form = {
            **auth,
            "ac": "sendcode",
            "mobile": "13912345678",
            "template": "1",
            "content": '{"code":"424242"}',
        }
        assert requests.post(proc.url, data=form, timeout=5).json()["stat"] == "100"
        report = requests.get(proc.url, params={"ac": "status", **auth}, timeout=5).json()
        assert report["values"][0]["mobile"] == "13912345678"
    finally:
        code, err = proc.stop()
    assert code == 0
    assert "139****5678" in err
    for secret in ("13912345678", "424242", auth["pwd"], "pw&"):
        assert secret not in err


def test_cli_options_shape_the_account_and_faults() -> None:
    proc = Running(
        "--port", "0", "--uid", "cli", "--password", "pw", "--balance", "1",
        "--template", "5=X{$code}", "--outcome-for", "13900000001=131",
        "--fault", "http_status:status=503,action=sendcode,count=1", "--report-delay", "0",
    )  # fmt: skip
    try:
        auth = pwd_auth("cli", "pw")
        form = {**auth, "ac": "sendcode", "mobile": "13900000001", "template": "5", "content": '{"code":"1"}'}
        assert requests.post(proc.url, data=form, timeout=5).status_code == 503
        assert requests.post(proc.url, data=form, timeout=5).json()["stat"] == "100"
        assert requests.post(proc.url, data=form, timeout=5).json()["stat"] == "102"
        report = requests.get(proc.url, params={"ac": "status", **auth}, timeout=5).json()
        assert report["values"][0]["resultcode"] == "131"
    finally:
        assert proc.stop()[0] == 0


def test_bad_config_exits_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{"accounts": [{"uid": "x", "balanse": 1}]}', encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "-m", "airflow_provider_smscn.sandbox", "--port", "0", "--config", str(path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    assert "balanse" in result.stderr
    assert result.stdout == ""


def test_console_script() -> None:
    script = shutil.which("smscn-sandbox", path=os.path.dirname(sys.executable))
    if script is None:
        pytest.skip("the smscn-sandbox console script is not installed next to this interpreter")
    proc = Running("--port", "0", executable=[script])
    try:
        assert requests.get(proc.url, params={"ac": "number", "uid": "test", "pwd": DOC_PWD}, timeout=5).ok
    finally:
        assert proc.stop()[0] == 0
