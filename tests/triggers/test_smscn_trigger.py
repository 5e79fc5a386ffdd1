"""SmsCnDeliveryTrigger: serialization kept, one event then return, errors as events, a changed
Connection picked up, a failing ledger waited out.

``asyncio.sleep`` and the hook cache's clock are replaced: sleeps are counted, never slept.
"""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_smscn.hooks.smscn import SmsCnHook
from airflow_provider_smscn.sandbox import Sandbox
from airflow_provider_smscn.triggers import smscn as trigger_module
from airflow_provider_smscn.triggers.smscn import HOOK_MAX_AGE, SmsCnDeliveryTrigger, forget_hook
from tests.support.fake_sleep import real_sleep
from tests.support.report_sources import ledger_locked_after_a_pull

ID = "12345678901234567890"


@pytest.fixture(autouse=True)
def _fresh_hook_cache():
    forget_hook("smscn_default")
    yield
    forget_hook("smscn_default")


async def _first_event(trigger, limit: float = 60):
    events = []

    async def drive():
        async for event in trigger.run():
            events.append(event)

    await asyncio.wait_for(drive(), limit)  # the generator must end after its one event
    assert len(events) == 1
    return events[0].payload


def test_serializes_to_its_class_path_and_plain_kwargs():
    trigger = SmsCnDeliveryTrigger(mobileids=["1", "2"], smscn_conn_id="c", poll_interval=2, pull_interval=3)
    assert trigger.serialize() == (
        "airflow_provider_smscn.triggers.smscn.SmsCnDeliveryTrigger",
        {"mobileids": ["1", "2"], "smscn_conn_id": "c", "poll_interval": 2.0, "pull_interval": 3},
    )
    path, kwargs = trigger.serialize()
    assert SmsCnDeliveryTrigger(**kwargs).serialize() == (path, kwargs)


def test_a_subclass_serializes_to_its_own_path():
    class MyTrigger(SmsCnDeliveryTrigger):
        pass

    path, _kwargs = MyTrigger(mobileids=["1"]).serialize()
    assert path == f"{__name__}.test_a_subclass_serializes_to_its_own_path.<locals>.MyTrigger"


async def test_fires_once_with_every_report_and_returns(smscn_sandbox, sleeps):
    smscn_sandbox.state.report_delay = 0
    ids = SmsCnHook().send_voice_code(["13900008888", "13900008889"], "700001", {"code": "1"}).mobileids
    payload = await _first_event(SmsCnDeliveryTrigger(mobileids=ids, poll_interval=0.1, pull_interval=0))
    assert payload["status"] == "success"
    assert set(payload["reports"]) == set(ids)
    assert {r["mobile"] for r in payload["reports"].values()} == {"139****8888", "139****8889"}


async def test_a_triggerer_with_another_ledger_than_its_task_fails_it_at_once(smscn_sandbox, sleeps,
                                                                              monkeypatch, tmp_path):
    """LocalExecutor with a triggerer on another host: the executor rules see a local executor on
    both sides, each with its own default SQLite file. The trigger compares the task's ledger id
    with its own instead of waiting for reports that land in the other file."""
    from airflow_provider_smscn.ledger import SmsCnLedger

    smscn_sandbox.state.report_delay = 0
    ids = SmsCnHook().send_voice_code(["13900008888"], "700001", {"code": "1"}).mobileids
    task_ledger = SmsCnLedger(f"sqlite:///{tmp_path}/worker.db").ledger_id()  # the deferring task's
    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", f"sqlite:///{tmp_path}/triggerer.db")
    kwargs = SmsCnDeliveryTrigger(mobileids=ids, pull_interval=0, ledger_id=task_ledger).serialize()[1]
    payload = await _first_event(SmsCnDeliveryTrigger(**kwargs))
    assert payload["status"] == "error"
    assert "triggerer.db" in payload["message"] and task_ledger[:12] in payload["message"]
    assert "AIRFLOW__SMSCN__LEDGER_URL" in payload["message"]
    assert smscn_sandbox.stats()["requests"]["status"] == 0  # nobody's report taken into the wrong file
    here = SmsCnLedger(f"sqlite:///{tmp_path}/triggerer.db").ledger_id()
    same = await _first_event(SmsCnDeliveryTrigger(mobileids=ids, pull_interval=0, ledger_id=here))
    assert same["status"] == "success" and list(same["reports"]) == ids


async def test_a_ledger_id_changed_since_this_process_read_it_is_read_again(smscn_sandbox, sleeps,
                                                                            monkeypatch, tmp_path):
    """A ledger reset (its id row written anew) after the triggerer cached the id: the task that
    deferred since carries the new id; the trigger reads again before failing anyone."""
    import sqlite3

    from airflow_provider_smscn.ledger import SmsCnLedger

    url = f"sqlite:///{tmp_path}/ledger.db"
    monkeypatch.setenv("AIRFLOW__SMSCN__LEDGER_URL", url)
    smscn_sandbox.state.report_delay = 0
    ids = SmsCnHook().send_voice_code(["13900008888"], "700001", {"code": "1"}).mobileids
    old = SmsCnLedger(url).ledger_id()  # cached by this process
    with sqlite3.connect(tmp_path / "ledger.db") as db:
        db.execute("UPDATE smscn_ledger_meta SET value = ? WHERE name = 'ledger_id'", ("f" * 32,))
    payload = await _first_event(SmsCnDeliveryTrigger(mobileids=ids, pull_interval=0, ledger_id="f" * 32))
    assert payload["status"] == "success" and old != "f" * 32
    stale = await _first_event(SmsCnDeliveryTrigger(mobileids=ids, pull_interval=0, ledger_id=old))
    assert stale["status"] == "error" and "AIRFLOW__SMSCN__LEDGER_URL" in stale["message"]


async def test_sleeps_a_poll_interval_between_looks_instead_of_spinning(smscn_sandbox, sleeps):
    smscn_sandbox.state.report_delay = 3600
    pulls_at: dict[int, int] = {}
    sleeps.on_sleep = lambda count: pulls_at.setdefault(count, smscn_sandbox.stats()["requests"]["status"])
    trigger = SmsCnDeliveryTrigger(mobileids=[ID], poll_interval=0.2, pull_interval=0)
    task = asyncio.ensure_future(trigger.run().__anext__())
    for _ in range(20_000):
        if len(sleeps.seen) >= 5:
            break
        await real_sleep(0.001)
    task.cancel()
    assert sleeps.seen[:5] == [0.2] * 5
    # One look before each sleep (here each look pulls: the lease allows one per 0 s), never more.
    assert [pulls_at[k] for k in range(1, 6)] == [1, 2, 3, 4, 5]


async def test_an_error_retrying_cannot_help_ends_in_an_error_event_after_one_fresh_read(
        smscn_sandbox, sleeps, monkeypatch):
    smscn_sandbox.inject_fault("stat", code=101)
    built = []
    real = SmsCnHook.delivery_source
    monkeypatch.setattr(SmsCnHook, "delivery_source",
                        lambda self, interval=None: built.append(id(self)) or real(self, interval))
    payload = await _first_event(SmsCnDeliveryTrigger(mobileids=[ID], poll_interval=0.1, pull_interval=0))
    assert payload["status"] == "error"
    assert "101" in payload["message"]
    assert len(set(built)) == 2  # the cached hook, then one built from the Connection read afresh


async def test_after_many_healthy_looks_a_rotated_secret_is_read_afresh_not_fatal(
        smscn_sandbox, sleeps, monkeypatch):
    """Case 7: today the trigger that built the shared hook ends at the first 101, whatever it held."""
    smscn_sandbox.state.report_delay = 0
    trigger = SmsCnDeliveryTrigger(mobileids=[ID], poll_interval=1.0, pull_interval=0)

    def rotate(count: int) -> None:
        if count == 100:  # after 100 healthy looks, the secret is rotated at the vendor and in Airflow
            smscn_sandbox.set_account(secret_key="rotated-secret-0123456789")
            monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", smscn_sandbox.connection_json())
            hook = SmsCnHook()
            hook.send_voice_code(["13900008888"], "700001", {"code": "1"}, mobileids=[ID])
            hook.close()

    sleeps.on_sleep = rotate
    payload = await _first_event(trigger)
    assert payload["status"] == "success", payload
    assert list(payload["reports"]) == [ID]
    assert len(sleeps.seen) >= 100


async def test_a_changed_connection_reaches_a_running_trigger_within_the_hook_max_age(
        smscn_sandbox, sleeps, monkeypatch):
    now = [1000.0]

    class Clock:  # the trigger module's clock: the hook's age moves only when the test says so
        @staticmethod
        def monotonic() -> float:
            return now[0]

    monkeypatch.setattr(trigger_module, "time", Clock)
    smscn_sandbox.state.report_delay = 3600
    with Sandbox(report_delay=3600) as moved:
        trigger = SmsCnDeliveryTrigger(mobileids=[ID], poll_interval=1.0, pull_interval=0)

        pulls_at: dict[int, tuple[int, int]] = {}

        def move(count: int) -> None:
            pulls_at[count] = (smscn_sandbox.stats()["requests"]["status"],
                               moved.stats()["requests"]["status"])
            if count == 3:  # the Connection now points at another server (a new URL, say)
                monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", moved.connection_json())
            if count == 6:
                now[0] += HOOK_MAX_AGE

        sleeps.on_sleep = move
        task = asyncio.ensure_future(_first_event(trigger))
        for _ in range(20_000):
            if len(sleeps.seen) >= 10:
                break
            await real_sleep(0.001)
        task.cancel()
    # Looks 1-6 used the hook built first, though the Connection changed before look 4; once the hook
    # was HOOK_MAX_AGE old, looks 7-10 read the Connection again and went to the new server.
    assert pulls_at[6] == (6, 0)
    assert pulls_at[10] == (6, 4)


async def test_a_locked_ledger_right_after_a_pull_keeps_the_trigger_waiting_and_loses_nothing(
        smscn_sandbox, sleeps, monkeypatch, tmp_path):
    """Case 6: today the OperationalError ends the trigger (the task fails) and the batch is gone."""
    _hook, ids, lock = ledger_locked_after_a_pull(monkeypatch, tmp_path, smscn_sandbox,
                                                  ["13900008888", "13900008889"])
    sleeps.on_sleep = lambda count: lock.release() if count == 3 else None
    try:
        payload = await _first_event(SmsCnDeliveryTrigger(mobileids=ids, poll_interval=1.0, pull_interval=0))
    finally:
        lock.close()
    assert payload["status"] == "success"
    assert set(payload["reports"]) == set(ids)
    assert smscn_sandbox.stats()["reports_pulled"] == 2  # pulled once, kept through the lock
    assert len(sleeps.seen) >= 3  # it waited the lock out
