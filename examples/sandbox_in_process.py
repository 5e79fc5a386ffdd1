"""The sandbox in your own process: start it, break it on purpose, look at what it was asked.

Shown in docs/sandbox.md; run by the tests (tests/docs/test_doc_examples.py). No Airflow needed.
"""

from __future__ import annotations

# [START sandbox]
from contextlib import suppress

from airflow_provider_smscn.client import SmsCnClient, SmsCnSendOutcomeUnknownError
from airflow_provider_smscn.sandbox import Sandbox


def calls_after_one_failure() -> int:
    with Sandbox(report_delay=0, seed=1) as sandbox:  # started, in a background thread
        print(sandbox.url)  # http://127.0.0.1:PORT/voice/
        sandbox.inject_fault("http_status", status=503, action="sendcode", count=1)
        with SmsCnClient("test", password="123123", base_url=sandbox.url) as client:
            with suppress(SmsCnSendOutcomeUnknownError):  # a 503 on a send: it may have been placed
                client.send_voice_code(["13900000001"], "700001", {"code": "1234"})
            client.send_voice_code(["13900000002", "13900000003"], "700001", {"code": "1234"})
        return len(sandbox.calls())  # 2: the 503 came before the first request was processed
# [END sandbox]


if __name__ == "__main__":
    print(calls_after_one_failure())
