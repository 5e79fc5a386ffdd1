"""Metrics reach a real StatsD listener on loopback from a real ``airflow dags test`` run.

The DAG run happens in a subprocess so ``[metrics] statsd_on`` and the listener's port are set
before Airflow is imported (Airflow reads them once). The listener is a UDP socket on 127.0.0.1
owned by the test; it counts what Airflow's own StatsD logger sent, prefix ``airflow.`` included.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
import time
from collections import defaultdict
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from airflow_provider_smscn import metrics

if TYPE_CHECKING:
    from airflow_provider_smscn.sandbox import Sandbox

BIN = Path(sys.executable).parent
MOBILES = ["13900001111", "13900002222"]
REFUSED_MOBILE = "13900003333"

DAG_FILE = textwrap.dedent(
    """
    import pendulum
    from airflow_provider_smscn._compat import DAG

    from airflow_provider_smscn.operators.smscn import (
        SmsCnBalanceCheckOperator,
        SmsCnSendVoiceCodeOperator,
    )
    from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor

    with DAG(dag_id="smscn_metrics", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
             catchup=False):
        balance = SmsCnBalanceCheckOperator(task_id="balance", min_balance=10)
        refused = SmsCnSendVoiceCodeOperator(task_id="refused", mobiles=[%(refused)r],
                                             template_id="700001", variables={"code": "1234"})
        send = SmsCnSendVoiceCodeOperator(task_id="send", mobiles=%(mobiles)r, template_id="700001",
                                          variables={"code": "1234"}, trigger_rule="all_done")
        wait = SmsCnDeliverySensor(task_id="wait", mobileids=send.output, mode="poke",
                                   poke_interval=1, pull_interval=1, timeout=120)
        balance >> refused >> send >> wait
    """
)


def _packets(sock: socket.socket) -> list[str]:
    lines: list[str] = []
    while True:
        try:
            data = sock.recv(65535)
        except BlockingIOError:
            return lines
        lines.extend(line for line in data.decode().splitlines() if line)


def _by_name(lines: list[str]) -> dict[str, list[tuple[float, str]]]:
    """``name:value|type`` lines (StatsD's wire format) grouped by name."""
    seen: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for line in lines:
        name, _, rest = line.partition(":")
        value, _, kind = rest.partition("|")
        seen[name].append((float(value), kind.split("|")[0]))
    return seen


@pytest.mark.smscn_sandbox(report_delay=0.5)
def test_dag_run_sends_smscn_metrics_to_statsd(smscn_sandbox: Sandbox, tmp_path: Path) -> None:
    """Balance gauge, placed and refused calls, pulls, reports by code and pull lag, as StatsD packets."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.setblocking(False)
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "smscn_metrics.py").write_text(DAG_FILE % {"refused": REFUSED_MOBILE, "mobiles": MOBILES})
    # the vendor refuses the first send with 102 (insufficient balance): the "refused" task
    smscn_sandbox.inject_fault("stat", code=102, action="sendcode", count=1)
    balance_before = float(smscn_sandbox.account()["balance"])
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__")}
    env.update({
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__METRICS__STATSD_ON": "True",
        "AIRFLOW__METRICS__STATSD_HOST": "127.0.0.1",
        "AIRFLOW__METRICS__STATSD_PORT": str(listener.getsockname()[1]),
        "AIRFLOW__METRICS__STATSD_PREFIX": "airflow",
        "AIRFLOW__SMSCN__LEDGER_URL": f"sqlite:///{home}/ledger.db",
        "AIRFLOW__SMSCN__PULL_INTERVAL": "1",
        **smscn_sandbox.connection_env(),
    })
    try:
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True,
                       timeout=300)
        _packets(listener)  # whatever the migration emitted is not the run's
        started = time.monotonic()
        run = subprocess.run([str(BIN / "airflow"), "dags", "test", "smscn_metrics"], env=env,
                             capture_output=True, text=True, timeout=300)
        time.sleep(0.2)  # UDP on loopback: the last datagrams are in the socket buffer already
        seen = _by_name(_packets(listener))
    finally:
        listener.close()
    log = run.stdout[-3000:] + run.stderr[-3000:]
    assert time.monotonic() - started < 300
    # the run itself: balance and send succeeded, the refused send failed (so did the run)
    for name, values in {
        "airflow.smscn.balance": [(balance_before, "g")],
        "airflow.smscn.calls_refused.102": [(1.0, "c")],
        "airflow.smscn.calls_placed": [(float(len(MOBILES)), "c")],
    }.items():
        assert seen.get(name) == values, f"{name}: {seen.get(name)}\n{sorted(seen)}\n{log}"
    assert sum(v for v, _ in seen["airflow.smscn.reports.100"]) == len(MOBILES), log
    assert seen["airflow.smscn.status_pulls"] and {k for _, k in seen["airflow.smscn.status_pulls"]} == {"c"}
    lags = seen["airflow.smscn.pull_lag"]
    assert len(lags) == len(MOBILES) and {k for _, k in lags} == {"ms"}, lags
    assert all(0 < v < 120_000 for v, _ in lags), lags  # report delay 0.5 s, one pull per second
    # no number ever in a metric name
    assert not any(m in name for name in seen for m in [*MOBILES, REFUSED_MOBILE])


def test_metric_names_are_valid_and_documented() -> None:
    """Every name fits Airflow's stat-name rule, sits under ``smscn.``, and docs/metrics.md has the table."""
    import re

    for metric in metrics.ALL:
        concrete = metrics._name(metric, 130 if "<" in metric.name else None)
        assert re.fullmatch(r"smscn\.[a-z_]+(\.[0-9]+)?", concrete), concrete
    docs = (Path(__file__).resolve().parents[1] / "docs" / "metrics.md").read_text()
    assert metrics.markdown_table() in docs, "regenerate: python -m airflow_provider_smscn.metrics"


def test_emitting_never_raises(monkeypatch: pytest.MonkeyPatch) -> None:
    """A broken metrics backend does not fail the send or wait that emits."""
    from airflow_provider_smscn import _compat

    class Broken:
        def __getattr__(self, name: str) -> object:
            raise RuntimeError("statsd down")

    monkeypatch.setattr(_compat, "get_stats", lambda: Broken())
    metrics.calls_placed(3, "uid@host/voice/")
    metrics.balance(10)
    json.dumps(metrics.markdown_table())
