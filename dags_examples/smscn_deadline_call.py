"""Phone the on-call engineer when a DAG run is late: a deadline alert whose callback is a voice call.

The callback runs in the triggerer (``AsyncCallback``), after the run has been queued longer
than the interval. It places one call through the provider's notifier and reads no delivery
report: every report still reaches the ledger, and every waiter, through the shared pull.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, AsyncCallback, DeadlineAlert, DeadlineReference, task

from airflow_provider_smscn.notifications.smscn import SmsCnVoiceNotifier

with DAG(
    dag_id="smscn_deadline_call",
    schedule=None,
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    tags=["smscn", "example"],
    doc_md=__doc__,
    # [START deadline_alert]
    deadline=DeadlineAlert(
        reference=DeadlineReference.DAGRUN_QUEUED_AT,
        interval=timedelta(seconds=20),
        callback=AsyncCallback(SmsCnVoiceNotifier, kwargs={
            "mobiles": "13900007777", "template_id": "700001", "variables": {"code": "2468"},
        }),
    ),
    # [END deadline_alert]
) as dag:

    @task
    def slow_work() -> None:
        """Stands in for work that overran (longer than the 20 s deadline)."""
        import time

        time.sleep(40)

    slow_work()
