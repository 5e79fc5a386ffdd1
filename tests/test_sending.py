"""Retry-safe sending without Airflow: the shipped sandbox (id dedup OFF, as the document has it,
so a double call shows as two calls), a real SQLite ledger, and a clock that never sleeps."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_smscn.client import RetryPolicy, SmsCnClient
from airflow_provider_smscn.client.errors import SmsCnSendOutcomeUnknownError, SmsCnValidationError
from airflow_provider_smscn.client.validation import deterministic_mobileid
from airflow_provider_smscn.ledger import SmsCnLedger
from airflow_provider_smscn.sandbox import Sandbox
from airflow_provider_smscn.sending import (
    ClientApi,
    SmsCnUnprovenSendError,
    prepare_job,
    send_voice_codes,
)
from tests.support.tls_server import BreakingTLSServer

A, B, C = "13900005551", "13900005552", "13900005553"
RUN = "dag|send|manual__2026-11-29"


class FakeClock:
    """``clock`` and ``sleep`` of a send: sleeping moves the clock, nothing really waits."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


@pytest.fixture
def box():
    with Sandbox(report_delay=3600, seed=5) as sandbox:  # no report comes in time: records must prove
        yield sandbox


@pytest.fixture
def ledger(tmp_path):
    return SmsCnLedger(f"sqlite:///{tmp_path}/ledger.db")


def api_for(url: str, ledger: SmsCnLedger, **client_kwargs) -> ClientApi:
    client_kwargs.setdefault("retry", RetryPolicy(max_attempts=1))
    client = SmsCnClient("test", password="123123", base_url=url, **client_kwargs)
    return ClientApi(client, ledger, pull_interval=0)


def send(api: ClientApi, mobiles, clock: FakeClock | None = None, **job_kwargs):
    clock = clock or FakeClock()
    job = prepare_job(RUN, mobiles, "700001", {"code": "4711"}, **job_kwargs)
    return send_voice_codes(api, job, limit=1000, sleep=clock.sleep, clock=clock)


def called(box: Sandbox) -> list[str]:
    return [c["mobile"] for c in box.calls()]


# ------------------------------------------------------------------ case 8: one id per number and run


def test_a_cleared_mapped_send_with_reordered_input_calls_nobody_again(box, ledger):
    api = api_for(box.url, ledger)
    first = [send(api, [A]), send(api, [B])]  # map index 0 and 1
    again = [send(api, [B]), send(api, [A])]  # cleared, the upstream now hands them out reversed
    assert called(box) == [A, B]
    assert again == [first[1], first[0]]  # each number keeps its id, whatever its map index


def test_a_number_twice_in_a_run_is_called_once_and_every_place_gets_its_id(box, ledger):
    api = api_for(box.url, ledger)
    ids = send(api, [A, B, f" {A}"])
    assert called(box) == [A, B]
    assert ids[0] == ids[2] != ids[1]
    assert send(api, [C, A]) == [send(api, [C])[0], ids[0]]  # another map index of the same run
    assert called(box) == [A, B, C]
    assert all(A not in i and B not in i for i in ids)  # ids never embed the number


def test_own_ids_need_each_number_once(ledger):
    with pytest.raises(SmsCnValidationError, match="repeats"):
        prepare_job(RUN, [A, A], "700001", {"code": "1"}, ["1", "2"])


# ------------------------------------------------------------------ case 9: prove, or fail loudly


def test_a_crash_between_intent_and_request_fails_the_retry_naming_the_numbers(box, ledger):
    api = api_for(box.url, ledger)
    ids = send(api, [A])  # A is called and accepted
    from airflow_provider_smscn.client.validation import deterministic_mobileid

    lost = deterministic_mobileid(f"{RUN}|{B}")
    assert ledger.claim_intents(api.account_key, RUN, [(lost, B)], "crashed-attempt") == {lost}
    clock = FakeClock()
    with pytest.raises(SmsCnUnprovenSendError) as info:
        send(api, [A, B], clock=clock, proof_timeout=30, proof_poll=5)
    message = str(info.value)
    assert "139****5552" in message and B not in message and "resend_uncertain=True" in message
    assert not info.value.retriable
    assert called(box) == [A]  # B was neither called again nor proven
    assert clock.sleeps == [5.0] * 6  # polled for proof for the whole proof_timeout, then gave up
    assert box.stats()["requests"]["query"] >= 7  # each look read the vendor's sent records
    assert ledger.get_intents(api.account_key, ids)[ids[0]].state == "accepted"

    ids_after = send(api, [A, B], resend_uncertain=True, proof_timeout=0)
    assert called(box) == [A, B]  # asked for: B is called, under a new id
    assert ids_after[0] == ids[0] and ids_after[1] != lost
    states = {i.mobileid: i.state for i in ledger.get_intents(api.account_key, [lost, *ids_after]).values()}
    assert states == {lost: "superseded", ids_after[0]: "accepted", ids_after[1]: "accepted"}


def test_a_lost_reply_the_vendor_took_is_proven_by_its_sent_record(box, ledger):
    api = api_for(box.url, ledger, timeout=0.5)
    box.inject_fault("delay_after", ms=1500, action="sendcode", count=1)  # accepted, reply lost
    with pytest.raises(SmsCnSendOutcomeUnknownError):
        send(api, [A, B])
    clock = FakeClock()
    ids = send(api, [A, B], clock=clock)  # the retry: no report for an hour, but sent records
    assert called(box) == [A, B]
    assert clock.sleeps == []
    assert {i.state for i in ledger.get_intents(api.account_key, ids).values()} == {"accepted"}


def test_a_request_that_never_arrived_is_not_proven_by_an_older_call(box, ledger):
    api = api_for(box.url, ledger, timeout=0.5)
    box.inject_fault("drop", action="sendcode", count=1)  # dropped before the vendor saw it
    with pytest.raises(SmsCnSendOutcomeUnknownError):
        send(api, [A])
    assert called(box) == []
    with pytest.raises(SmsCnUnprovenSendError):
        send(api, [A], proof_timeout=10, proof_poll=5)
    assert called(box) == []


# ------------------------------------------------------------------ 124 and TLS


def test_a_124_reply_leaves_the_ids_unknown_not_rejected(box, ledger):
    """124 placed no call, but says an earlier request with these ids may have: not safe to resend."""
    box.inject_fault("stat", code=124, action="sendcode", count=1)
    api = api_for(box.url, ledger)
    with pytest.raises(SmsCnSendOutcomeUnknownError, match="124"):
        send(api, [A])
    from airflow_provider_smscn.client.validation import deterministic_mobileid

    mid = deterministic_mobileid(f"{RUN}|{A}")
    intent = ledger.get_intents(api.account_key, [mid])[mid]
    assert (intent.state, intent.code) == ("unknown", 124)
    assert called(box) == []


def test_a_tls_break_after_the_request_is_never_sent_again(tmp_path, ledger, caplog):
    caplog.set_level(logging.WARNING)
    with BreakingTLSServer(tmp_path) as server:
        api = api_for(server.url, ledger, verify=str(server.ca_file), timeout=5)
        with pytest.raises(SmsCnSendOutcomeUnknownError):
            send(api, [A, B])
        with pytest.raises(SmsCnUnprovenSendError):  # the retry: looks for proof, sends nothing
            send(api, [A, B], proof_timeout=5, proof_poll=5)
        sendcodes = [b for b in server.bodies if b"ac=sendcode" in b]
    assert len(sendcodes) == 1
    assert "will look again" in caplog.text  # the broken server gave no proof either way


# ------------------------------------------------------------------ review 8: proof is this run's call

OTHER_TASK = "dag|other_task|manual__2026-11-29"


def test_another_tasks_call_of_the_same_number_is_no_proof_of_this_runs_call(box, ledger):
    """Run RUN crashed after claiming B and before its request (B never called by RUN). Then an
    unrelated task of the same account calls B (its own code). RUN's retry must not end green:
    nobody proved that RUN's code reached B. Today the other task's sent record of B, made after
    RUN's intent was written, counts as proof, and the retry returns as if B had been called."""
    api = api_for(box.url, ledger)
    lost = deterministic_mobileid(f"{RUN}|{B}")
    assert ledger.claim_intents(api.account_key, RUN, [(lost, B)], "crashed-attempt") == {lost}

    other = prepare_job(OTHER_TASK, [B], "700001", {"code": "9999"})
    send_voice_codes(api, other, limit=1000)  # the other task's own call of B
    assert called(box) == [B]

    clock = FakeClock()
    job = prepare_job(RUN, [B], "700001", {"code": "4711"}, proof_timeout=30, proof_poll=5)
    with pytest.raises(SmsCnUnprovenSendError):
        send_voice_codes(api, job, limit=1000, sleep=clock.sleep, clock=clock)
    assert called(box) == [B]  # RUN's code never went out


def test_one_sent_record_proves_at_most_one_uncertain_intent(box, ledger):
    """Two runs both crashed between claim and request for B; one call of B happened later (a
    third task). One sent record is one call: it cannot prove both runs' intents."""
    api = api_for(box.url, ledger)
    runs = ["dag|send|run_1", "dag|send|run_2"]
    for run in runs:
        mid = deterministic_mobileid(f"{run}|{B}")
        assert ledger.claim_intents(api.account_key, run, [(mid, B)], "crashed") == {mid}
    send_voice_codes(api, prepare_job(OTHER_TASK, [B], "700001", {"code": "1"}), limit=1000)
    assert called(box) == [B]

    green = 0
    for run in runs:
        clock = FakeClock()
        job = prepare_job(run, [B], "700001", {"code": "4711"}, proof_timeout=10, proof_poll=5)
        try:
            send_voice_codes(api, job, limit=1000, sleep=clock.sleep, clock=clock)
            green += 1
        except SmsCnUnprovenSendError:
            pass
    assert green <= 1, f"{green} runs ended green on the proof of one single call"


def test_resend_uncertain_does_not_supersede_an_id_proven_meanwhile(box, ledger):
    """A zombie claimed B and its request is in flight; the retry (resend_uncertain=True) finds no
    proof, and in the moment between its last look and its supersede the zombie's 100 arrives
    (intent ``accepted``). The supersede must be conditional on the intent still being uncertain:
    B was proven called, calling it again is the double call resend_uncertain only risks for
    numbers WITHOUT proof. Today ``mark_intents(.., "superseded")`` overwrites ``accepted``."""
    api = api_for(box.url, ledger)
    lost = deterministic_mobileid(f"{RUN}|{B}")
    assert ledger.claim_intents(api.account_key, RUN, [(lost, B)], "zombie") == {lost}

    reads = []

    def clock() -> float:
        reads.append(1)
        if len(reads) == 2:  # after the retry's last look for proof, before it decides
            api.send_voice_code([B], "700001", {"code": "4711"}, mobileids=[lost])
            ledger.mark_intents(api.account_key, [lost], "accepted", code=100, claimant="zombie")
        return 1000.0

    job = prepare_job(RUN, [B], "700001", {"code": "4711"}, resend_uncertain=True, proof_timeout=0)
    ids = send_voice_codes(api, job, limit=1000, sleep=lambda s: None, clock=clock)
    assert called(box) == [B], "B was called twice although its first call was accepted"
    assert ids == [lost]


def test_a_send_recorded_by_0_1_0_is_not_called_again_after_the_upgrade(box, tmp_path):
    """0.1.0 keyed ids on ``dag|task|run|map_index``; the new scheme drops the map index. The
    migration keeps the 0.1.0 intents, but a retry or clear after the upgrade (the same run)
    computes other ids, finds nothing, and calls the number again. Required: a run that 0.1.0
    started is recognised (its rows looked up by idem key and number), so nobody is called twice."""
    from sqlalchemy import create_engine

    from airflow_provider_smscn.ledger import SmsCnLedger
    from tests.support.ledger_v0_1_0 import metadata_0_1_0

    url = f"sqlite:///{tmp_path}/ledger.db"
    md = metadata_0_1_0()
    engine = create_engine(url)
    old_key = f"{RUN}|-1"  # 0.1.0's idem key of an unmapped task
    old_id = deterministic_mobileid(f"{old_key}|{B}")
    with engine.begin() as conn:
        md.create_all(conn)
    engine.dispose()

    old = api_for(box.url, SmsCnLedger(url))  # the call 0.1.0 placed, and the row it wrote
    old.client.send_voice_code([B], "700001", {"code": "4711"}, mobileids=[old_id])
    engine = create_engine(url)
    with engine.begin() as conn:
        conn.execute(md.tables["smscn_send_intents"].insert(), [{
            "account": old.account_key, "mobileid": old_id, "idem_key": old_key, "mobile": B,
            "state": "accepted", "code": 100, "created_at": 1_764_000_000.0, "updated_at": 1_764_000_001.0}])
    engine.dispose()
    assert called(box) == [B]

    api = api_for(box.url, SmsCnLedger(url))  # the upgraded provider: first use migrates in place
    clock = FakeClock()
    job = prepare_job(RUN, [B], "700001", {"code": "4711"}, proof_timeout=10, proof_poll=5)
    send_voice_codes(api, job, limit=1000, sleep=clock.sleep, clock=clock)
    assert called(box) == [B], "the upgrade made a retry call a number 0.1.0 had already called"


def test_a_send_jobs_repr_shows_no_phone_number():
    """SendIntent, DeliveryReport and SentRecord mask numbers in their repr; SendJob (numbers in
    ``mobiles`` and as keys of ``given_ids``) prints them whole into any log line or traceback
    that shows it."""
    job = prepare_job(RUN, [B], "700001", {"code": "4711"}, mobileids=["1"])
    assert B not in repr(job)


def test_a_trailing_slash_edited_into_the_connection_does_not_make_the_retry_call_again(box, ledger):
    """The account key (which scopes intents, leases and reports in the ledger) is ``uid@host`` +
    the URL's path as typed, so ``.../voice/`` and ``.../voice`` are two accounts for one vendor
    account. A user who fixes the Connection's host between an attempt and its retry (or two
    Connections of one account spelled differently) gets a retry that finds no intents and calls
    everyone again (and waiters that never see reports pulled under the other spelling)."""
    first = api_for(box.url.rstrip("/") + "/", ledger)
    retry = api_for(box.url.rstrip("/"), ledger)
    ids = send(first, ["13900005552"])
    assert send(retry, ["13900005552"]) == ids
    assert called(box) == ["13900005552"]
