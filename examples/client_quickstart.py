"""The client without Airflow: the balance, one voice code, its outcome, the delivery reports.

Against the local sandbox: ``smscn-sandbox --port 8765 &``, then
``python examples/client_quickstart.py http://127.0.0.1:8765/voice/``. Run by the tests
(tests/client/test_client_examples.py) and shown in docs/client.md.
"""

from __future__ import annotations

import sys

# [START client]
from airflow_provider_smscn.client import SmsCnApiError, SmsCnClient, SmsCnSendOutcomeUnknownError


def send_code(base_url: str = "https://api.sms.cn/voice/") -> list[str]:
    """Send one voice code; return the message ids to wait for."""
    with SmsCnClient("test", secret_key="64CQMlr579J0L46U9q1qR285Risfc04G", base_url=base_url) as client:
        print("balance:", client.get_balance())
        try:
            result = client.send_voice_code(["13900008888"], "700001", {"code": "352333"})
        except SmsCnSendOutcomeUnknownError as err:
            print("may have been sent; look for", err.mobileids)  # do NOT resend blindly
            return err.mobileids
        except SmsCnApiError as err:
            print(err.code, err.meaning, "- retry later" if err.retriable else "- fix and resend")
            return []
        reports = client.pull_delivery_reports()  # keep ALL of them: each is handed out once
        print(f"sent {result.mobileids}; {len(reports)} report(s) pulled")
        return result.mobileids
# [END client]


if __name__ == "__main__":
    send_code(*sys.argv[1:2])
