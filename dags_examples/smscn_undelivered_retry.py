"""When voice calls go undelivered, call again or open a ticket: no polling DAG of your own.

The asset ``smscn_undelivered_calls`` is told by an asset watcher in the triggerer: one event per
batch of new undelivered reports (numbers masked, with the DAG, task and run that placed each call).
No report is lost when a triggerer dies or restarts; a batch it had not seen stored is sent again
under the same batch id, and ``take_event_batches`` gives each batch to one run only (and, given
``inlet_events``, takes the batches Airflow started no run for, which would wait for the next
report). Calls that failed for a passing reason (failed, powered off, no status) are placed again,
once: the retry's message id is derived from the failed call's id, so a second run for the same
report calls nobody twice. Empty or suspended numbers, and retries that failed again, become
tickets (a JSON line each).
"""

from __future__ import annotations

import json
import os

import pendulum
from airflow.sdk import DAG, Asset, AssetWatcher, task

from airflow_provider_smscn.triggers.smscn import SmsCnDeliveryEventTrigger

#: Result codes worth a second call: failed, powered off, no status.
RETRY_CODES = {130, 133, 134}

# [START delivery_watcher]
undelivered_calls = Asset(
    "smscn_undelivered_calls",
    watchers=[AssetWatcher(
        name="smscn_undelivered_watcher",
        trigger=SmsCnDeliveryEventTrigger(name="undelivered_retry", poll_interval=2, pull_interval=1),
    )],
)
# [END delivery_watcher]

with DAG(
    dag_id="smscn_undelivered_retry",
    schedule=[undelivered_calls],
    start_date=pendulum.datetime(2026, 1, 1, tz="Asia/Shanghai"),
    catchup=False,
    tags=["smscn", "example"],
    doc_md=__doc__,
) as dag:

    # [START take_event_batches]
    @task(inlets=[undelivered_calls])
    def split(triggering_asset_events=None, inlet_events=None, run_id=None) -> dict[str, list[dict]]:
        """Sort the event's reports into calls to place again and tickets (numbers stay masked)."""
        from airflow_provider_smscn.hooks.smscn import SmsCnHook

        retry, tickets = [], []
        # a batch sent twice (its triggerer died before Airflow confirmed it) goes to one run only;
        # inlet_events: also the batches Airflow started no run for (stored while this run was being
        # created, they would wait for the next report)
        batches = SmsCnHook().take_event_batches(triggering_asset_events, consumer=dag.dag_id, taker=run_id,
                                                 inlet_events=inlet_events)
        # [END take_event_batches]
        for batch in batches:
            for report in batch["reports"]:
                sender = report["sent_by"] or {}
                again = report["resultcode"] in RETRY_CODES and sender.get("dag_id") != dag.dag_id
                (retry if again else tickets).append(report)
        return {"retry": retry, "tickets": tickets}

    @task
    def call_again(plan: dict[str, list[dict]]) -> list[str]:
        """Place each call once more; the id comes from the failed call's, so reruns call nobody twice."""
        from airflow_provider_smscn.hooks.smscn import SmsCnHook
        from airflow_provider_smscn.sending import prepare_job, send_voice_codes

        hook = SmsCnHook()
        ids = [r["mobileid"] for r in plan["retry"]]
        kept = hook.ledger.get_reports(hook.account_key, ids)  # full numbers never leave the ledger
        placed: list[str] = []
        for mobileid in ids:
            job = prepare_job(f"{dag.dag_id}|call_again|retry-of-{mobileid}", [kept[mobileid].mobile],
                              "700001", {"code": "0000"})
            placed += send_voice_codes(hook, job, limit=hook.client.max_numbers_per_request)
        return placed

    @task
    def open_tickets(plan: dict[str, list[dict]]) -> int:
        """One JSON line per report that needs a person (a stand-in for your ticket system)."""
        path = os.path.join(os.environ.get("AIRFLOW_HOME", "."), "smscn_tickets.jsonl")
        with open(path, "a", encoding="utf-8") as out:
            for report in plan["tickets"]:
                out.write(json.dumps({k: report[k] for k in ("mobile", "mobileid", "resultcode", "meaning",
                                                             "sent_by")}) + "\n")
        return len(plan["tickets"])

    plan = split()
    call_again(plan)
    open_tickets(plan)
