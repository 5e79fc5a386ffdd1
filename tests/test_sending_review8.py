"""Review 8: cases where a send still ends green without its number called, or calls it twice.

The shipped sandbox (id dedup off, as the vendor document has it), a real SQLite ledger, a clock
that never sleeps. Each test states the behaviour a user relies on; they fail on today's code.
"""

from __future__ import annotations

import pytest

from airflow_provider_smscn.client.validation import deterministic_mobileid
from airflow_provider_smscn.sending import SmsCnUnprovenSendError, prepare_job, send_voice_codes
from tests.test_sending import RUN, FakeClock, api_for, box, called, ledger, send  # noqa: F401  (fixtures)

B = "13900005552"
OTHER_TASK = "dag|other_task|manual__2026-11-29"


def test_another_tasks_call_of_the_same_number_is_no_proof_of_this_runs_call(box, ledger):  # noqa: F811
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


def test_one_sent_record_proves_at_most_one_uncertain_intent(box, ledger):  # noqa: F811
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


def test_resend_uncertain_does_not_supersede_an_id_proven_meanwhile(box, ledger):  # noqa: F811
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


def test_a_send_recorded_by_0_1_0_is_not_called_again_after_the_upgrade(box, tmp_path):  # noqa: F811
    """0.1.0 keyed ids on ``dag|task|run|map_index``; the new scheme drops the map index. The
    migration keeps the 0.1.0 intents, but a retry or clear after the upgrade (the same run)
    computes other ids, finds nothing, and calls the number again. Required: a run that 0.1.0
    started is recognised (its rows looked up by idem key and number), so nobody is called twice."""
    from sqlalchemy import create_engine

    from airflow_provider_smscn.ledger import SmsCnLedger
    from tests.ledger.ledger_v0_1_0 import metadata_0_1_0

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


def test_a_trailing_slash_edited_into_the_connection_does_not_make_the_retry_call_again(box, ledger):  # noqa: F811
    """The account key (which scopes intents, leases and reports in the ledger) is ``uid@host`` +
    the URL's path as typed, so ``.../voice/`` and ``.../voice`` are two accounts for one vendor
    account. A user who fixes the Connection's host between an attempt and its retry (or two
    Connections of one account spelled differently) gets a retry that finds no intents and calls
    everyone again (and waiters that never see reports pulled under the other spelling)."""
    first = api_for(box.url.rstrip("/") + "/", ledger)
    retry = api_for(box.url.rstrip("/"), ledger)
    ids = send(first, [B])
    assert send(retry, [B]) == ids
    assert called(box) == [B]
