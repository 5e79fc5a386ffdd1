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


ack_mode = pytest.mark.skipif(_compat.shared_stream_producer_base() is None,
                              reason="shared streams in ack mode came with Airflow 3.3")


async def _cursor_position(trigger) -> int:
    hook = SmsCnHook()
    source = hook.delivery_source()
    return source.ledger.event_cursor(trigger._watch(source).key).position


async def _until(check, limit: float = 30.0) -> None:
    end = asyncio.get_running_loop().time() + limit
    while not await check():
        assert asyncio.get_running_loop().time() < end, "not reached in time"
        await real_sleep(0.01)


@airflow3_only
@ack_mode
async def test_on_airflow_3_3_batches_are_moved_past_once_airflow_confirmed_their_events(smscn_sandbox):
    """The triggerer's own SharedStreamManager drives the watcher: no confirmation, no move."""
    from airflow.triggers.shared_stream import SharedStreamManager

    smscn_sandbox.state.report_delay = 0
    smscn_sandbox.set_account(uid="test", outcome_by_mobile={"13900000133": 133, "13900000134": 134})
    trigger = SmsCnDeliveryEventTrigger(poll_interval=0.05, pull_interval=0, start="earliest", name="ack",
                                        max_batch=1)
    key = trigger.shared_stream_key()
    assert key is not None
    ids = SmsCnHook().send_voice_code(["13900000133", "13900000134"], "700001", {"code": "1"}).mobileids
    manager = SharedStreamManager(ack_timeout=60)
    stream = trigger.filter_shared_stream(manager.subscribe(trigger_id=1, trigger=trigger, key=key))
    try:
        seqs, got = [], []
        for _ in ids:  # the second batch comes before the first is confirmed (no 2 s per batch)
            event = await asyncio.wait_for(stream.__anext__(), 30)
            seqs.append(manager.bind_pending_event(trigger_id=1, key=key))  # as the runner does
            got += [r["mobileid"] for r in event.payload["reports"]]
        assert got == ids and None not in seqs
        following = asyncio.ensure_future(stream.__anext__())  # the filter moves on: the window closes
        await real_sleep(0.5)
        assert await _cursor_position(trigger) == 0  # Airflow has not said it stored the events
        manager.confirm_persisted(seqs[:1])
        await _until(lambda: _moved(trigger))
        first = await _cursor_position(trigger)
        await real_sleep(0.3)
        assert await _cursor_position(trigger) == first  # only the first: the second is unconfirmed
        manager.confirm_persisted(seqs[1:])
        await _until(lambda: _moved(trigger, beyond=first))
        following.cancel()
    finally:
        await manager.unsubscribe(1, key)


async def _moved(trigger, beyond: int = 0) -> bool:
    return await _cursor_position(trigger) > beyond


@airflow3_only
@ack_mode
async def test_on_airflow_3_3_a_triggerer_stopping_before_the_confirmation_loses_nothing(smscn_sandbox):
    """SIGTERM leaves the runner's loop without a last sync: the batch is sent again, same id."""
    from airflow.triggers.shared_stream import SharedStreamManager

    smscn_sandbox.state.report_delay = 0
    smscn_sandbox.set_account(uid="test", outcome_by_mobile={"13900000133": 133})
    trigger = SmsCnDeliveryEventTrigger(poll_interval=0.05, pull_interval=0, start="earliest", name="stop")
    key = trigger.shared_stream_key()
    ids = SmsCnHook().send_voice_code(["13900000133"], "700001", {"code": "1"}).mobileids
    payloads = []
    for trigger_id in (1, 2):  # the first triggerer stops before any sync; the second one takes over
        manager = SharedStreamManager(ack_timeout=60)
        shared = manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
        stream = trigger.filter_shared_stream(shared)
        payloads.append((await asyncio.wait_for(stream.__anext__(), 30)).payload)
        await manager.stop_all()
    assert payloads[0]["batch"] == payloads[1]["batch"]
    assert [r["mobileid"] for p in payloads for r in p["reports"]] == ids * 2
    assert await _cursor_position(trigger) == 0  # still not confirmed by anyone


@airflow3_only
@ack_mode
async def test_on_airflow_3_3_a_watcher_cancelled_as_it_fires_loses_no_report(smscn_sandbox, monkeypatch):
    """Airflow 3.3's runner awaits a log call between taking an event and queueing it; a trigger
    cancelled there (moved to another triggerer) counts as acknowledged by Airflow's shared stream.
    Airflow's real ``TriggerRunner.run_trigger``; only that log call is held open to hit the gap."""
    from airflow.jobs.triggerer_job_runner import _USER_ACTION_CANCEL_MSG, TriggerRunner

    monkeypatch.setenv("AIRFLOW_DISABLE_GREENBACK_PORTAL", "true")
    smscn_sandbox.state.report_delay = 0
    smscn_sandbox.set_account(uid="test", outcome_by_mobile={"13900000133": 133})
    ids = SmsCnHook().send_voice_code(["13900000133"], "700001", {"code": "1"}).mobileids
    trigger = SmsCnDeliveryEventTrigger(poll_interval=0.05, pull_interval=0, start="earliest", name="gap")
    runner = TriggerRunner()
    real_log, in_log, never = runner.log, asyncio.Event(), asyncio.Event()

    class HeldLog:
        def __getattr__(self, name):
            return getattr(real_log, name)

        async def ainfo(self, event, *args, **kwargs):
            if event == "Trigger fired event":
                in_log.set()
                await never.wait()
            return await real_log.ainfo(event, *args, **kwargs)

    runner.log = HeldLog()
    runner.triggers = {1: {"name": "ID 1", "events": 0, "is_watcher": True}}
    task = asyncio.ensure_future(runner.run_trigger(1, trigger))
    await asyncio.wait_for(in_log.wait(), 30)
    task.cancel(_USER_ACTION_CANCEL_MSG)
    with pytest.raises(asyncio.CancelledError):
        await task
    assert list(runner.events) == []  # the event never reached Airflow
    await real_sleep(0.5)
    assert await _cursor_position(trigger) == 0  # so the watcher has not moved past it ...
    payloads = await _events(SmsCnDeliveryEventTrigger(**trigger.serialize()[1]), lambda evs: len(evs) >= 1)
    assert [[r["mobileid"] for r in p["reports"]] for p in payloads] == [ids]  # ... and sends it again


@pytest.mark.parametrize(("setting", "expiry"), [(None, 30.0), ("12", 12.0), ("1", 6.0)])
def test_claims_expire_when_airflow_gives_a_silent_triggerer_up(monkeypatch, setting, expiry):
    from airflow_provider_smscn.triggers.events import claim_expiry

    if setting is None:
        monkeypatch.delenv("AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD", setting)
    assert claim_expiry() == expiry


@airflow3_only
@ack_mode
async def test_on_airflow_3_3_a_low_balance_is_told_until_airflow_stored_it(smscn_sandbox):
    """The first triggerer stops before Airflow confirmed the crossing; the next one sends it again
    (same crossing id, no new balance request), and once confirmed the state is ``below``."""
    from airflow.triggers.shared_stream import SharedStreamManager

    trigger = SmsCnBalanceEventTrigger(threshold=10**9, check_interval=1, name="ack")
    key = trigger.shared_stream_key()
    assert key is not None
    payloads = []
    for trigger_id in (1, 2):
        manager = SharedStreamManager(ack_timeout=60)
        shared = manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key)
        stream = trigger.filter_shared_stream(shared)
        payloads.append((await asyncio.wait_for(stream.__anext__(), 30)).payload)
        if trigger_id == 1:
            await manager.stop_all()
            requests = smscn_sandbox.stats()["requests"]["number"]
            continue
        seq = manager.bind_pending_event(trigger_id=trigger_id, key=key)
        following = asyncio.ensure_future(stream.__anext__())
        manager.confirm_persisted([seq])
        await _until(lambda: _balance_state(trigger, "below"))
        following.cancel()
        await manager.stop_all()
    assert payloads[0] == payloads[1] and payloads[0]["crossing"]
    assert smscn_sandbox.stats()["requests"]["number"] == requests


async def _balance_state(trigger, state: str) -> bool:
    hook = SmsCnHook()
    return hook.ledger.event_cursor(trigger._watch(hook).key).state == state


async def _subscriber(manager, trigger, trigger_id, key, got, seqs):
    """A subscriber as Airflow's runner drives one: take an event, bind it, queue it."""
    stream = trigger.filter_shared_stream(manager.subscribe(trigger_id=trigger_id, trigger=trigger, key=key))
    async for event in stream:
        seqs.append(manager.bind_pending_event(trigger_id=trigger_id, key=key))
        got.append(event.payload)


async def _supervisor(manager, seqs):
    """Airflow's supervisor: confirms every queued event stored, a tenth of a second later."""
    while True:
        await real_sleep(0.1)
        done, seqs[:] = list(seqs), []
        manager.confirm_persisted([s for s in done if s is not None])


@airflow3_only
@ack_mode
async def test_on_airflow_3_3_a_look_failing_midway_does_not_silence_the_watcher(smscn_sandbox, monkeypatch):
    """A ledger blip in the middle of a look (here: reading the senders of a batch) is tried again
    at the next poll; every report still reaches the asset, later ones too, on one triggerer."""
    from airflow.triggers.shared_stream import SharedStreamManager

    from airflow_provider_smscn.client.errors import SmsCnError
    from airflow_provider_smscn.events import delivery

    real_payload, failed = delivery._payload, []

    def payload_once_failing(*args, **kwargs):
        if not failed:
            failed.append(True)
            raise SmsCnError("the smscn ledger failed while watching delivery reports: blip")
        return real_payload(*args, **kwargs)

    monkeypatch.setattr(delivery, "_payload", payload_once_failing)
    smscn_sandbox.state.report_delay = 0
    smscn_sandbox.set_account(uid="test", outcome_by_mobile={"13900000133": 133, "13900000134": 134,
                                                             "13900000135": 135})
    trigger = SmsCnDeliveryEventTrigger(poll_interval=0.05, pull_interval=0, start="earliest", name="blip",
                                        max_batch=1)
    key = trigger.shared_stream_key()
    hook = SmsCnHook()
    sent = hook.send_voice_code(["13900000133", "13900000134"], "700001", {"code": "1"}).mobileids
    manager = SharedStreamManager(ack_timeout=60)
    got, seqs = [], []
    tasks = [asyncio.ensure_future(_subscriber(manager, trigger, 1, key, got, seqs)),
             asyncio.ensure_future(_supervisor(manager, seqs))]
    try:
        await _until(lambda: _delivered(got, sent))
        later = hook.send_voice_code(["13900000135"], "700001", {"code": "1"}).mobileids
        await _until(lambda: _delivered(got, sent + later))
        assert failed
    finally:
        for task in tasks:
            task.cancel()
        await manager.stop_all()


@airflow3_only
@ack_mode
async def test_on_airflow_3_3_a_copy_confirmed_after_its_batch_was_sent_again_does_not_stop_the_watcher(
        smscn_sandbox):
    """Two asset watchers with one trigger's kwargs share a stream; one is cancelled between the
    runner taking an event and queueing it, so that batch is not stored and every batch in flight
    is sent again. The first copy of a later batch, confirmed meanwhile, must not be taken for the
    copy now in flight (they are different hand-outs): the watcher goes on."""
    from airflow.triggers.shared_stream import SharedStreamManager

    smscn_sandbox.state.report_delay = 0
    smscn_sandbox.set_account(uid="test", outcome_by_mobile={"13900000133": 133, "13900000134": 134,
                                                             "13900000135": 135})
    trigger = SmsCnDeliveryEventTrigger(poll_interval=0.05, pull_interval=0, start="earliest", name="two",
                                        max_batch=1)
    key = trigger.shared_stream_key()
    hook = SmsCnHook()
    manager = SharedStreamManager(ack_timeout=60)
    first = trigger.filter_shared_stream(manager.subscribe(trigger_id=1, trigger=trigger, key=key))
    second = trigger.filter_shared_stream(manager.subscribe(trigger_id=2, trigger=trigger, key=key))
    got, seqs = [], []

    async def take() -> None:
        event = await asyncio.wait_for(second.__anext__(), 30)
        seqs.append(manager.bind_pending_event(trigger_id=2, key=key))
        got.append(event.payload)

    sent = hook.send_voice_code(["13900000133"], "700001", {"code": "1"}).mobileids
    await asyncio.wait_for(first.__anext__(), 30)  # taken by the first, which is cancelled before queueing
    await take()
    await manager.unsubscribe(1, key)
    await first.aclose()
    sent += hook.send_voice_code(["13900000134"], "700001", {"code": "1"}).mobileids
    await take()  # the second batch, to the remaining subscriber alone
    manager.confirm_persisted(seqs[:1])  # the first batch: acknowledged twice, handed over once: not stored
    seqs[:1] = []
    tasks = [asyncio.ensure_future(_supervisor(manager, seqs)), asyncio.ensure_future(_forever(take))]
    try:
        await _until(lambda: _delivered(got, sent))
        sent += hook.send_voice_code(["13900000135"], "700001", {"code": "1"}).mobileids
        await _until(lambda: _delivered(got, sent))
        await _until(lambda: _moved(trigger, beyond=2))  # and the cursor moves on past them all
    finally:
        for task in tasks:
            task.cancel()
        await manager.stop_all()


async def _forever(step) -> None:
    while True:
        await step()


async def _delivered(got, ids) -> bool:
    return set(ids) <= {r["mobileid"] for p in got for r in p["reports"]}
