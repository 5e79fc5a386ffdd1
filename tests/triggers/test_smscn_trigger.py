"""SmsCnDeliveryTrigger: plain-kwargs serialization, one event then return, errors as events."""

from __future__ import annotations

import asyncio

import pytest

from airflow_provider_smscn.hooks.smscn import SmsCnHook
from airflow_provider_smscn.triggers.smscn import SmsCnDeliveryTrigger, forget_hook


@pytest.fixture(autouse=True)
def _fresh_hook_cache():
    forget_hook("smscn_default")
    yield
    forget_hook("smscn_default")


def test_serializes_to_its_class_path_and_plain_kwargs():
    trigger = SmsCnDeliveryTrigger(mobileids=["1", "2"], smscn_conn_id="c", poll_interval=2, pull_interval=3)
    assert trigger.serialize() == (
        "airflow_provider_smscn.triggers.smscn.SmsCnDeliveryTrigger",
        {"mobileids": ["1", "2"], "smscn_conn_id": "c", "poll_interval": 2.0, "pull_interval": 3},
    )
    path, kwargs = trigger.serialize()
    assert SmsCnDeliveryTrigger(**kwargs).serialize() == (path, kwargs)


async def test_fires_once_with_every_report_and_returns(smscn_sandbox):
    smscn_sandbox.state.report_delay = 0.2
    ids = SmsCnHook().send_voice_code(["13900008888", "13900008889"], "700001", {"code": "1"}).mobileids
    trigger = SmsCnDeliveryTrigger(mobileids=ids, poll_interval=0.1, pull_interval=0.1)
    events = [event async for event in trigger.run()]  # the generator must end after its event
    assert len(events) == 1
    payload = events[0].payload
    assert payload["status"] == "success"
    assert set(payload["reports"]) == set(ids)
    assert {r["mobile"] for r in payload["reports"].values()} == {"139****8888", "139****8889"}


async def test_sleeps_between_polls_instead_of_spinning(smscn_sandbox):
    smscn_sandbox.state.report_delay = 3600
    trigger = SmsCnDeliveryTrigger(mobileids=["12345678901234567890"], poll_interval=0.2, pull_interval=0.2)
    task = asyncio.ensure_future(trigger.run().__anext__())
    await asyncio.sleep(1.1)
    task.cancel()
    pulls = smscn_sandbox.stats()["requests"]["status"]
    assert 2 <= pulls <= 7  # about one pull per 0.2 s, not a tight loop


async def test_an_error_retrying_cannot_help_ends_in_an_error_event(smscn_sandbox):
    smscn_sandbox.inject_fault("stat", code=101)
    trigger = SmsCnDeliveryTrigger(mobileids=["12345678901234567890"], poll_interval=0.1, pull_interval=0)
    events = [event async for event in trigger.run()]
    assert [e.payload["status"] for e in events] == ["error"]
    assert "101" in events[0].payload["message"]
