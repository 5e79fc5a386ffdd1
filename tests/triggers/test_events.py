"""The asset-watcher triggers: plain serialized kwargs, bad input refused at parse, run() yields
events and keeps watching; on Airflow 2.x they import and construct, and running one explains.

``asyncio.sleep`` is replaced: sleeps are counted, never slept.
"""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_smscn import _compat
from airflow_provider_smscn.client.errors import SmsCnValidationError
from airflow_provider_smscn.hooks.smscn import SmsCnHook
from airflow_provider_smscn.triggers.smscn import (
    SmsCnBalanceEventTrigger,
    SmsCnDeliveryEventTrigger,
    forget_hook,
)
from tests.support.fake_sleep import real_sleep

airflow3_only = pytest.mark.airflow3_only


@pytest.fixture(autouse=True)
def _own_ledger(tmp_path, monkeypatch):
    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", f"sqlite:///{tmp_path}/ledger.db")
    forget_hook("smscn_default")
    yield
    forget_hook("smscn_default")


async def _events(trigger, until, limit: float = 60):
    """Drive run() until ``until(events, sleeps)`` holds; the generator must still be running then."""
    events: list = []
    gen = trigger.run()
    task = asyncio.ensure_future(_collect(gen, events))
    try:
        for _ in range(60_000):
            if until(events):
                break
            assert not task.done(), task.exception() if not task.cancelled() else "cancelled"
            await real_sleep(0.001)
        else:
            raise AssertionError(f"not reached; events so far: {events}")
    finally:
        task.cancel()
    return [e.payload for e in events]


async def _collect(gen, events):
    async for event in gen:
        events.append(event)


def test_both_serialize_to_their_class_path_and_plain_kwargs():
    delivery = SmsCnDeliveryEventTrigger(result_codes=[133, 131], name="n", poll_interval=2)
    path, kwargs = delivery.serialize()
    assert path == "airflow_provider_smscn.triggers.events.SmsCnDeliveryEventTrigger"
    assert kwargs == {"smscn_conn_id": "smscn_default", "result_codes": [131, 133], "name": "n",
                      "poll_interval": 2.0, "pull_interval": None, "max_batch": 100, "start": "latest"}
    assert SmsCnDeliveryEventTrigger(**kwargs).serialize() == (path, kwargs)
    balance = SmsCnBalanceEventTrigger(threshold=500, check_interval=60)
    path, kwargs = balance.serialize()
    assert path == "airflow_provider_smscn.triggers.events.SmsCnBalanceEventTrigger"
    assert kwargs == {"threshold": 500, "smscn_conn_id": "smscn_default", "check_interval": 60.0, "name": ""}


def test_bad_input_is_refused_when_the_dag_is_parsed():
    with pytest.raises(SmsCnValidationError, match="999"):
        SmsCnDeliveryEventTrigger(result_codes=[999])
    with pytest.raises(SmsCnValidationError, match="start"):
        SmsCnDeliveryEventTrigger(start="yesterday")
    with pytest.raises(SmsCnValidationError, match="threshold"):
        SmsCnBalanceEventTrigger(threshold=-5)


async def test_on_airflow_2_they_construct_and_running_one_says_airflow_3_is_needed():
    trigger = SmsCnDeliveryEventTrigger()  # a DAG file that builds one still parses
    balance = SmsCnBalanceEventTrigger(threshold=10)
    if _compat.AIRFLOW_V_3:
        from airflow.triggers.base import BaseEventTrigger

        assert isinstance(trigger, BaseEventTrigger) and isinstance(balance, BaseEventTrigger)
        return
    for t in (trigger, balance):
        with pytest.raises(_compat.AirflowException, match=r"needs Airflow 3\.0 or later"):
            await t.run().__anext__()


@airflow3_only
async def test_delivery_watcher_yields_undelivered_batches_and_keeps_watching(smscn_sandbox, sleeps):
    smscn_sandbox.state.report_delay = 0
    smscn_sandbox.set_account(uid="test", outcome_by_mobile={"13900000131": 131})
    trigger = SmsCnDeliveryEventTrigger(poll_interval=0.5, pull_interval=0, start="earliest")
    hook = SmsCnHook()
    first = hook.send_voice_code(["13900000131", "13900008888"], "700001", {"code": "1"}).mobileids
    payloads = await _events(trigger, lambda events: len(events) >= 1 and len(sleeps.seen) >= 3)
    assert [[r["mobileid"] for r in p["reports"]] for p in payloads] == [[first[0]]]
    assert payloads[0]["reports"][0]["mobile"] == "139****0131"
    assert set(sleeps.seen) == {0.5}  # it sleeps between looks, never spins
    # a new run (a restarted triggerer) repeats nothing, and reports what came since
    second = hook.send_voice_code(["13900000131"], "700001", {"code": "1"}).mobileids
    payloads = await _events(SmsCnDeliveryEventTrigger(**trigger.serialize()[1]),
                             lambda events: len(events) >= 1 and len(sleeps.seen) >= 8)
    assert [[r["mobileid"] for r in p["reports"]] for p in payloads] == [second]


@airflow3_only
async def test_a_failing_check_is_logged_and_the_watcher_goes_on(smscn_sandbox, sleeps, caplog):
    smscn_sandbox.inject_fault("stat", code=101)
    trigger = SmsCnBalanceEventTrigger(threshold=10**9, check_interval=1)
    payloads = await _events(trigger, lambda events: len(sleeps.seen) >= 3)
    assert payloads == []
    assert "checking the balance failed" in caplog.text
    smscn_sandbox.clear_faults()
    payloads = await _events(trigger, lambda events: len(events) >= 1)
    assert payloads[0]["threshold"] == 10**9 and payloads[0]["balance"] < 10**9


@airflow3_only
async def test_a_claim_made_as_the_trigger_is_cancelled_is_given_back_and_emitted_by_the_next(
        smscn_sandbox, sleeps, monkeypatch):
    """Airflow cancels a watcher it moved to another triggerer: a batch claimed meanwhile is not lost."""
    import threading

    from airflow_provider_smscn.events import delivery

    smscn_sandbox.state.report_delay = 0
    smscn_sandbox.set_account(uid="test", outcome_by_mobile={"13900000133": 133})
    real, entered, go = delivery.next_batch, threading.Event(), threading.Event()

    def slow_next_batch(*args, **kwargs):
        entered.set()
        go.wait(30)
        return real(*args, **kwargs)

    monkeypatch.setattr(delivery, "next_batch", slow_next_batch)
    trigger = SmsCnDeliveryEventTrigger(poll_interval=0.5, pull_interval=0, start="earliest")
    ids = SmsCnHook().send_voice_code(["13900000133"], "700001", {"code": "1"}).mobileids
    events: list = []
    task = asyncio.ensure_future(_collect(trigger.run(), events))
    for _ in range(10_000):
        if entered.is_set():
            break
        await real_sleep(0.001)
    threading.Timer(0.3, go.set).start()  # the claim commits after the cancel arrived
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert events == []
    monkeypatch.setattr(delivery, "next_batch", real)
    payloads = await _events(SmsCnDeliveryEventTrigger(**trigger.serialize()[1]), lambda evs: len(evs) >= 1)
    assert [[r["mobileid"] for r in p["reports"]] for p in payloads] == [ids]
