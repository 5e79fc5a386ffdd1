"""Review 8: a waiter's answer for an id is its latest report; an unreadable retime must not decide."""

from __future__ import annotations

from airflow_provider_smscn.client.models import DeliveryReport
from airflow_provider_smscn.ledger import SmsCnLedger

MID, MOBILE = "1390000888800001", "13900008888"


def test_a_later_delivered_report_without_retime_wins_over_an_earlier_failure(tmp_path):
    """The first pull says 134 (failed) at a readable time; a later pull says 100 (delivered) with
    an empty retime (the vendor's field missing, as reports of other systems may have it). Nothing
    says the 100 came earlier, yet ranking by the raw string puts "" below every time, so the
    sensor keeps failing a delivered call. An unreadable retime should fall back to pull order."""
    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    ledger.store_reports("acct", [DeliveryReport(mobile=MOBILE, mobileid=MID, resultcode=134,
                                                 status="UNDELIV", retime="2026-11-29 10:00:00")],
                         pull_id="pull-1")
    ledger.store_reports("acct", [DeliveryReport(mobile=MOBILE, mobileid=MID, resultcode=100,
                                                 status="DELIVRD", retime="")], pull_id="pull-2")
    assert ledger.get_reports("acct", [MID])[MID].resultcode == 100


def test_a_malformed_retime_does_not_outrank_every_readable_one(tmp_path):
    """``2026/11/29 09:00:00`` (an hour earlier, other separators) sorts after ``2026-11-29 ...``
    as a string ('/' > '-'): an earlier failure would beat a later delivery for good."""
    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    ledger.store_reports("acct", [
        DeliveryReport(mobile=MOBILE, mobileid=MID, resultcode=134, status="UNDELIV",
                       retime="2026/11/29 09:00:00"),
        DeliveryReport(mobile=MOBILE, mobileid=MID, resultcode=100, status="DELIVRD",
                       retime="2026-11-29 10:00:00")], pull_id="pull-1")
    assert ledger.get_reports("acct", [MID])[MID].resultcode == 100


def test_without_pull_id_two_reports_without_id_in_one_pull_are_two_rows(tmp_path):
    """Two calls of other systems (empty ``mobileids``) to one number, delivered in the same second,
    come in one pull. They are two reports; stored without a ``pull_id`` (the public API allows it)
    the content key makes them one row and the second is dropped."""
    ledger = SmsCnLedger(f"sqlite:///{tmp_path}/l.db")
    twin = DeliveryReport(mobile=MOBILE, mobileid="", resultcode=100, status="DELIVRD",
                          retime="2026-11-29 10:00:00")
    assert ledger.store_reports("acct", [twin, twin]) == 2
