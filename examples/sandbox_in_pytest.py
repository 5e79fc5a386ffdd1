"""Your own tests against the sandbox: the ``smscn_sandbox`` fixture and its marker.

Shown in docs/sandbox.md and README.md. The tests collect these very functions
(tests/docs/test_doc_examples.py), so they run as a user's test module runs them. Put the same
code in a ``test_*.py`` file of yours: the fixture comes with the provider (``pytest11``).
"""

from __future__ import annotations

# [START pytest]
import pytest

from airflow_provider_smscn.client import SmsCnSendOutcomeUnknownError
from airflow_provider_smscn.hooks.smscn import SmsCnHook


def call_the_team(numbers: list[str]) -> list[str]:
    """The code under test: what your task does (here, a voice code to each number)."""
    return SmsCnHook(timeout=1).send_voice_code(numbers, "700001", {"code": "1234"}).mobileids


@pytest.mark.smscn_sandbox(report_delay=0, seed=1, auth="password", reply_format="xml")
def test_my_task(smscn_sandbox):
    ids = call_the_team(["13900000001", "13900000002", "13900000003"])
    assert len(smscn_sandbox.calls()) == 3
    assert [call["mobileid"] for call in smscn_sandbox.calls()] == ids
    assert smscn_sandbox.stats()["requests"]["sendcode"] == 1


def test_vendor_times_out(smscn_sandbox):
    smscn_sandbox.inject_fault("delay_after", ms=3000, action="sendcode", count=1)
    with pytest.raises(SmsCnSendOutcomeUnknownError):  # the call was placed, the reply never came
        call_the_team(["13900000001"])
    assert len(smscn_sandbox.calls()) == 1
# [END pytest]
