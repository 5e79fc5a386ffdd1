"""Get phoned when a critical task fails: SmsCnVoiceNotifier as ``on_failure_callback``.

``critical_job`` fails on purpose when the ``simulate_failure`` param is true (the default, so the
demo shows the call); ``report`` runs either way (trigger rule ``all_done``), so the run itself
ends green and the call is the only trace of the failure.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_smscn.notifications.smscn import SmsCnVoiceNotifier

with DAG(
    dag_id="smscn_failure_alert",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    tags=["smscn", "example"],
    doc_md=__doc__,
    params={"simulate_failure": Param(True, type="boolean")},
) as dag:

    # [START notifier]
    @task(
        on_failure_callback=SmsCnVoiceNotifier(
            mobiles=["13900002222"],
            template_id="700001",
            # The voice template speaks this code; an alert template of your own might take
            # {"task": "{{ ti.task_id }}", "dag": "{{ dag.dag_id }}"} instead.
            variables={"code": "{{ '%06d' % (ti.try_number or 1) }}"},
        )
    )
    def critical_job(params: dict | None = None) -> str:
        if (params or {}).get("simulate_failure", True):
            raise RuntimeError("simulated failure of the critical job")
        return "ok"
    # [END notifier]

    @task(trigger_rule="all_done")
    def report() -> str:
        return "checked"

    critical_job() >> report()
