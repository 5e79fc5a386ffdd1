"""Every balance reading is kept in the ledger (hook, balance check, connection Test) and comes back."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from airflow_provider_smscn.hooks.smscn import SmsCnHook
from airflow_provider_smscn.ledger import SmsCnLedger


@pytest.fixture
def ledger_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path}/ledger.db"
    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", url)
    return url


def test_hook_readings_are_kept_and_given_back(smscn_sandbox, ledger_url, monkeypatch):
    """get_balance and the connection Test each leave a reading; get_balance_history(since=) returns them."""
    before = time.time() - 1
    hook = SmsCnHook()
    assert hook.get_balance() == 100000
    monkeypatch.setenv("AIRFLOW_CTX_DAG_ID", "my_dag")
    monkeypatch.setenv("AIRFLOW_CTX_TASK_ID", "check")
    monkeypatch.setenv("AIRFLOW_CTX_DAG_RUN_ID", "manual__1")
    smscn_sandbox.set_account(uid="test", balance=900)
    assert hook.get_balance(threshold=1000, source="check") == 900
    monkeypatch.delenv("AIRFLOW_CTX_DAG_ID")
    assert SmsCnHook().test_connection()[0]

    history = hook.get_balance_history(since=dt.datetime.fromtimestamp(before, tz=dt.timezone.utc))
    assert [(r.balance, r.source, r.threshold) for r in history] == [
        (100000, "hook", None), (900, "check", 1000), (900, "test", None)]
    assert all(r.account == hook.account_key and r.read_at >= before for r in history)
    assert (history[1].dag_id, history[1].task_id, history[1].run_id) == ("my_dag", "check", "manual__1")
    assert hook.get_balance_history(since=time.time() + 60) == []
    assert hook.get_balance_history(since=history[1].read_at) == history[1:]


def test_a_broken_ledger_does_not_fail_the_balance_read(smscn_sandbox, monkeypatch, tmp_path):
    """The reading is housekeeping: an unwritable ledger is logged, the balance still returned."""
    import logging

    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", f"sqlite:///{blocker}/ledger.db")
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    # a logger of the test's own in place of the hook's: Airflow 3 (structlog) and 2.11 (a task
    # logger that does not propagate) route the hook's lines differently
    seen = logging.getLogger("tests.balance_history")
    seen.addHandler(Keep(level=logging.WARNING))
    monkeypatch.setattr(SmsCnHook, "log", property(lambda self: seen))
    assert SmsCnHook().get_balance() == 100000
    assert any("balance reading not kept" in line for line in lines), lines


def test_readings_are_pruned_with_the_rest(tmp_path):
    """prune() drops readings older than the retention, keeps newer ones."""
    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    ledger.record_balance("u@h/", 10)
    ledger.record_balance("u@h/", 9, source="check", threshold=5)
    newest = ledger.get_balance_history("u@h/")[-1].read_at
    assert ledger.prune(86400, now=newest + 2 * 86400)["smscn_balance_readings"] == 0  # never ahead of rows
    from sqlalchemy import update

    from airflow_provider_smscn.ledger.schema import table

    t = table("smscn_balance_readings")
    ledger._write(lambda c: c.execute(update(t).where(t.c.balance == 10).values(read_at=newest - 3 * 86400)))
    assert ledger.prune(86400)["smscn_balance_readings"] == 1
    assert [r.balance for r in ledger.get_balance_history()] == [9]
    with pytest.raises(ValueError, match="source"):
        ledger.record_balance("u@h/", 1, source="guess")
