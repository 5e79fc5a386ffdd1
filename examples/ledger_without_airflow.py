"""The ledger without Airflow: send, then collect the delivery reports through the ledger.

Every report a pull hands out (the vendor hands each out once) is stored before it is looked at,
so other waiters of the same account find theirs. Against the local sandbox:
``python examples/ledger_without_airflow.py http://127.0.0.1:8765/voice/ sqlite:////tmp/ledger.db``.
Shown in docs/ledger.md; run by the tests (tests/docs/test_doc_examples.py).
"""

from __future__ import annotations

import sys

# [START ledger]
import time

from airflow_provider_smscn.client import DeliveryReport, SmsCnClient
from airflow_provider_smscn.delivery import new_holder
from airflow_provider_smscn.ledger import SmsCnLedger
from airflow_provider_smscn.sending import ClientApi


def send_and_collect(base_url: str, ledger_url: str, pull_interval: float = 5.0) -> dict[str, DeliveryReport]:
    ledger = SmsCnLedger(ledger_url)  # e.g. sqlite:////var/lib/smscn/ledger.db
    with SmsCnClient("test", secret_key="64CQMlr579J0L46U9q1qR285Risfc04G", base_url=base_url) as client:
        api = ClientApi(client, ledger, pull_interval=pull_interval)  # one pull per interval per account
        result = client.send_voice_code(["13900008888"], "700001", {"code": "352333"})
        holder = new_holder()  # names this waiter in the ledger's pull lease
        found = dict(api.collect_reports(result.mobileids, holder))  # {} until the report is in
        while len(found) < len(result.mobileids):
            time.sleep(pull_interval)
            found = dict(api.collect_reports(result.mobileids, holder))
    return found
# [END ledger]


if __name__ == "__main__":
    for mobileid, report in send_and_collect(sys.argv[1], sys.argv[2]).items():
        print(mobileid, report.resultcode, report.delivered)
