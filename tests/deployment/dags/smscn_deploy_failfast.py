"""Two sensors on message ids whose reports are already in the shared ledger (from the load run).

With ``[smscn] ledger_url`` set they succeed at their first look; with it unset under
CeleryExecutor both must fail at once, without retries, naming the setting.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

from airflow_provider_smscn._compat import DAG
from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor

with DAG(
    dag_id="smscn_deploy_failfast",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    params={"mobileids": ""},
    default_args={"retries": 3, "retry_delay": timedelta(seconds=3)},
    tags=["smscn", "deployment-test"],
) as dag:
    SmsCnDeliverySensor(task_id="wait_deferred", mobileids="{{ params.mobileids }}", deferrable=True,
                        poke_interval=2, timeout=120)
    SmsCnDeliverySensor(task_id="wait_reschedule", mobileids="{{ params.mobileids }}", mode="reschedule",
                        poke_interval=3, timeout=120)
