"""Send a voice code from the Airflow UI: press Trigger, fill the form, optionally wait for delivery.

Everything the form asks for is validated before any call is placed: malformed numbers, an
empty template or variables that are not a JSON object stop the run with a clear error.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG, Param, task

from airflow_provider_smscn.operators.smscn import SmsCnSendVoiceCodeOperator
from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor

with DAG(
    dag_id="smscn_trigger_form",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    tags=["smscn", "example"],
    doc_md=__doc__,
    params={
        "mobiles": Param("13900008888", type="string", title="Numbers",
                         description="Comma-separated numbers to call."),
        "template_id": Param("700001", type="string", pattern="^[0-9]+$", title="Template id"),
        "variables": Param({"code": "123456"}, type="object", title="Template variables",
                           description='A JSON object, e.g. {"code": "123456"}.'),
        "wait": Param(True, type="boolean", title="Wait for delivery"),
    },
) as dag:
    # [START send]
    send = SmsCnSendVoiceCodeOperator(
        task_id="send_voice_code",
        mobiles="{{ params.mobiles }}",
        template_id="{{ params.template_id }}",
        variables="{{ params.variables | tojson }}",
    )
    # [END send]

    @task.short_circuit
    def wait_requested(params: dict | None = None) -> bool:
        """Skip the wait when the form said not to."""
        return bool((params or {}).get("wait", True))

    # [START wait]
    wait = SmsCnDeliverySensor(
        task_id="wait_for_delivery",
        mobileids=send.output,
        deferrable=True,
        poke_interval=1,
        pull_interval=1,
        timeout=600,
    )
    # [END wait]
    send >> wait_requested() >> wait
