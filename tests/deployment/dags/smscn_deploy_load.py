"""120 voice calls waited on by 24 sensors: 12 deferrable (triggerer) and 12 in reschedule mode (worker).

Four send tasks call 30 numbers each; every sensor waits on 5 of those message ids, taken from its
send task's XCom. Some calls end undelivered (the sandbox's outcome mix): the sensors accept that,
and the asset watcher of smscn_deploy_events.py tells them. All sensors share one account, so the
ledger's pull lease must keep ``ac=status`` at one pull per ``pull_interval`` while they run on two
Celery workers and two triggerers.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum

from airflow_provider_smscn._compat import DAG
from airflow_provider_smscn.operators.smscn import SmsCnSendVoiceCodeOperator
from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor

SENDS = 4
PER_SEND = 30
PER_SENSOR = 5
FIRST_NUMBER = 13700000000


def numbers(send: int) -> list[str]:
    """The 30 distinct numbers of one send task (no number shared with another task or DAG)."""
    return [str(FIRST_NUMBER + send * 100 + i) for i in range(PER_SEND)]


with DAG(
    dag_id="smscn_deploy_load",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    max_active_tasks=32,
    default_args={"retries": 3, "retry_delay": timedelta(seconds=3)},
    tags=["smscn", "deployment-test"],
) as dag:
    for s in range(SENDS):
        send = SmsCnSendVoiceCodeOperator(
            task_id=f"send_{s}", mobiles=numbers(s), template_id="700001", variables={"code": "123456"},
        )
        for k in range(PER_SEND // PER_SENSOR):
            part = f"[{k * PER_SENSOR}:{(k + 1) * PER_SENSOR}]"
            ids = f"{{{{ ti.xcom_pull(task_ids='send_{s}'){part} | join(',') }}}}"
            deferred = k % 2 == 0
            send >> SmsCnDeliverySensor(
                task_id=f"wait_{s}_{k}_{'deferred' if deferred else 'reschedule'}",
                mobileids=ids,
                accept_undelivered=True,  # the sandbox reports some calls undelivered (deploy_stack.OUTCOMES)
                deferrable=deferred,
                mode="poke" if deferred else "reschedule",
                # deferred: a look every 10 s, so some still wait while the watcher's events flow
                poke_interval=10 if deferred else 3,
                timeout=420,
            )
