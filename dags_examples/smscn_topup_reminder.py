"""When the sms.cn balance falls below a threshold, remind whoever tops it up: once per fall.

The asset ``smscn_low_balance`` is told by an asset watcher in the triggerer. The balance is
requested at most once per check interval however many triggerers run, and the asset hears of a
fall once; it hears again only after the balance was topped up and fell again.
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_smscn.triggers.smscn import SmsCnBalanceEventTrigger

# [START balance_watcher]
low_balance = Asset(
    "smscn_low_balance",
    watchers=[AssetWatcher(
        name="smscn_low_balance_watcher",
        trigger=SmsCnBalanceEventTrigger(threshold=1000, check_interval=5, name="topup_reminder"),
    )],
)
# [END balance_watcher]

with DAG(
    dag_id="smscn_topup_reminder",
    schedule=[low_balance],
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    tags=["smscn", "example"],
    doc_md=__doc__,
) as dag:

    @task
    def remind(triggering_asset_events=None) -> list[int]:
        """Write one reminder per fall (a stand-in for mail or chat); returns the balances seen."""
        seen = [event.extra["payload"]["balance"]
                for events in (triggering_asset_events or {}).values() for event in events]
        path = os.path.join(os.environ.get("AIRFLOW_HOME", "."), "smscn_topup_reminders.jsonl")
        with open(path, "a", encoding="utf-8") as out:
            for balance in seen:
                out.write(json.dumps({"balance": balance, "threshold": 1000}) + "\n")
        return seen

    remind()
