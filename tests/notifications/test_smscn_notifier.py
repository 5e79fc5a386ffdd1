"""SmsCnVoiceNotifier: a templated voice call from a callback, sync and async."""

from __future__ import annotations

from types import SimpleNamespace

from airflow_provider_smscn.notifications.smscn import SmsCnVoiceNotifier


def _context():
    ti = SimpleNamespace(task_id="load_orders", try_number=3)
    return {"ti": ti, "dag": None, "ds": "2026-11-26"}


def test_callback_renders_variables_and_places_the_call(smscn_sandbox):
    notifier = SmsCnVoiceNotifier(mobiles="13900002222", template_id="700001",
                                  variables={"code": "{{ ti.try_number }}{{ ds[:4] }}"})
    notifier(_context())
    [call] = smscn_sandbox.calls()
    assert call["mobile"] == "13900002222"
    assert call["variables"] == {"code": "32026"}


async def test_async_notify_places_the_call_without_blocking_the_loop(smscn_sandbox):
    notifier = SmsCnVoiceNotifier(mobiles=["13900002222", "13900003333"], template_id="700001",
                                  variables={"code": "4321"})
    await notifier.async_notify(_context())
    assert [c["mobile"] for c in smscn_sandbox.calls()] == ["13900002222", "13900003333"]
