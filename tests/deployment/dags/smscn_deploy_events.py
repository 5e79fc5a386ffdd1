"""The undelivered reports of the deployment's calls, told to an asset; a consumer DAG takes each batch once.

The watcher (``SmsCnDeliveryEventTrigger``, ack mode on Airflow 3.3) reads few ledger rows per
look, so its triggerer dies with reports still flowing; a batch it had not seen stored is sent
again under its batch id. The consumer takes batches through ``take_event_batches`` and returns
the message ids it took (never a number): over all its runs, each undelivered report once.
"""

from __future__ import annotations

from datetime import timedelta

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_smscn.triggers.smscn import SmsCnDeliveryEventTrigger

ASSET = "smscn_deploy_undelivered"
WATCHER = "deploy_events"
#: Ledger rows per look (reports per event at most): the reports of one pull flow as several events,
#: one confirmed by Airflow before the next, so a kill lands mid-flow.
MAX_BATCH = 20

undelivered = Asset(
    ASSET,
    watchers=[AssetWatcher(
        name="smscn_deploy_watcher",
        trigger=SmsCnDeliveryEventTrigger(name=WATCHER, poll_interval=1, pull_interval=1, max_batch=MAX_BATCH,
                                           start="earliest"),
    )],
)

with DAG(
    dag_id="smscn_deploy_events",
    schedule=[undelivered],
    start_date=pendulum.datetime(2026, 1, 1, tz="UTC"),
    catchup=False,
    tags=["smscn", "deployment-test"],
) as dag:

    @task(retries=2, retry_delay=timedelta(seconds=3), inlets=[undelivered])
    def take(triggering_asset_events=None, inlet_events=None, run_id=None) -> list[str]:
        """The message ids of the batches this run takes first (a copy of a batch goes to one run)."""
        from airflow_provider_smscn.hooks.smscn import SmsCnHook

        batches = SmsCnHook().take_event_batches(triggering_asset_events, consumer=dag.dag_id, taker=run_id,
                                                 inlet_events=inlet_events)
        return [report["mobileid"] for batch in batches for report in batch["reports"]]

    take()
