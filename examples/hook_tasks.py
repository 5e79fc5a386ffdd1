"""The hook inside your own tasks: the balance, and a voice code placed from a ``@task``.

Shown in docs/hook.md; the tests run this DAG against the sandbox (tests/hooks/test_hook_examples.py).
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, task

from airflow_provider_smscn.client import RetryPolicy
from airflow_provider_smscn.hooks.smscn import SmsCnHook

with DAG(dag_id="smscn_hook_tasks", schedule=None, start_date=pendulum.datetime(2026, 1, 1),
         catchup=False, tags=["smscn", "example"]) as dag:
    # [START hook]
    @task
    def balance() -> int:
        # [START retry]
        hook = SmsCnHook(retry=RetryPolicy(max_attempts=6, max_wait=30))  # more patience than the default
        # [END retry]
        return hook.get_balance()

    @task
    def call_once(numbers: list[str]) -> list[str]:
        hook = SmsCnHook("smscn_default", timeout=5)
        try:
            return hook.send_voice_code(numbers, "700001", {"code": "352333"}).mobileids
        finally:
            hook.close()
    # [END hook]

    balance() >> call_once(["13900008888", "13900008889"])
