"""An operator of your own that waits for delivery reports in the triggerer (deferrable).

Shown in docs/trigger.md; run by the tests (tests/docs/test_doc_examples.py): the operator
defers, its trigger runs against the sandbox, the operator resumes with the reports. The ids
come from the retry-safe send operator (``mobileids=send.output``), never from a send of its own.
"""

from __future__ import annotations

from typing import Any

# [START operator]
from airflow.sdk import BaseOperator
from airflow.sdk.exceptions import AirflowFailException

from airflow_provider_smscn.triggers.smscn import SmsCnDeliveryTrigger


class WaitForCallsOperator(BaseOperator):
    template_fields = ("mobileids",)

    def __init__(self, *, mobileids: list[str], **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mobileids = mobileids

    def execute(self, context: Any) -> None:
        self.defer(trigger=SmsCnDeliveryTrigger(mobileids=list(self.mobileids), poll_interval=2),
                   method_name="done")

    def done(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        if event["status"] != "success":  # refused with the Connection read afresh
            raise AirflowFailException(event["message"])
        return event["reports"]  # {mobileid: report as a dict}, numbers masked
# [END operator]
