"""Send a voice verification code to a list of numbers, then wait until every call is delivered.

The code is drawn per run; it never shows in the UI's rendered fields (they show ``***``), and the
numbers show masked. The sensor defers to the triggerer, holding no worker slot while it waits.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG

from airflow_provider_smscn.operators.smscn import SmsCnSendVoiceCodeOperator
from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor

with DAG(
    dag_id="smscn_send_and_wait",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    tags=["smscn", "example"],
    doc_md=__doc__,
) as dag:
    # [START send]
    send = SmsCnSendVoiceCodeOperator(
        task_id="send_voice_code",
        mobiles=["13900008888", "13900008889", "13900008890"],
        template_id="700001",
        variables={"code": "{{ (100000 + macros.random() * 900000) | int }}"},
        retries=2,
        retry_delay=timedelta(seconds=5),
    )
    # [END send]
    # [START wait]
    SmsCnDeliverySensor(
        task_id="wait_for_delivery",
        mobileids=send.output,
        deferrable=True,
        poke_interval=1,
        pull_interval=1,
        timeout=600,
    )
    # [END wait]
