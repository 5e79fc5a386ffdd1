"""Every hour: check the sms.cn balance, phone the on-call engineer when it runs low, keep the records.

The balance check fails with a low-balance error under ``min_balance``; its failure callback
places a voice call. The balance is the task's XCom, so dashboards can chart it. The sent records
(handed out once by the API) are drained into the ledger, without their content.
"""

from __future__ import annotations

import pendulum
from airflow.sdk import DAG

from airflow_provider_smscn.notifications.smscn import SmsCnVoiceNotifier
from airflow_provider_smscn.operators.smscn import SmsCnBalanceCheckOperator, SmsCnQuerySentRecordsOperator

with DAG(
    dag_id="smscn_balance_alert",
    schedule="@hourly",
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    tags=["smscn", "example"],
    doc_md=__doc__,
) as dag:
    # [START balance_check]
    SmsCnBalanceCheckOperator(
        task_id="check_balance",
        min_balance=1000,
        on_failure_callback=SmsCnVoiceNotifier(
            mobiles="13900001111",
            template_id="700001",
            variables={"code": "{{ '%04d' % (ti.try_number or 1) }}"},
        ),
    )
    # [END balance_check]
    # [START drain_records]
    SmsCnQuerySentRecordsOperator(task_id="drain_sent_records", max_pages=200)
    # [END drain_records]
