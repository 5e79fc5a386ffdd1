"""The local spool: a batch is kept whole or not at all, per ledger, and replays once."""

from __future__ import annotations

import os
import stat

import pytest

from airflow_provider_smscn.client.models import DeliveryReport
from airflow_provider_smscn.delivery.spool import DEFAULT_SPOOL_SUBDIR, Spool, default_spool_dir

REPORTS = [DeliveryReport("13900008888", "111", 100, "DELIVRD", "2026-01-01 12:00:00"),
           DeliveryReport("13900008889", "112", 133, "MK:0004", "2026-01-01 12:00:01")]


def test_a_batch_comes_back_as_it_was_put_and_replays_once(tmp_path):
    spool = Spool(tmp_path, "sqlite:////x/ledger.db")
    path = spool.put("acct", "pull-1", REPORTS)
    assert spool.pending() == [path]
    stored: list[tuple[str, list[DeliveryReport], str]] = []
    assert spool.replay(lambda account, reports, pull_id: stored.append((account, reports, pull_id))) == 2
    assert stored == [("acct", REPORTS, "pull-1")]
    assert spool.pending() == []
    assert spool.replay(lambda *a: stored.append(a)) == 0  # nothing twice
    assert len(stored) == 1


def test_a_failing_store_keeps_the_batch_for_later(tmp_path):
    spool = Spool(tmp_path, "ledger")
    first = spool.put("acct", "p1", REPORTS[:1])
    spool.put("acct", "p2", REPORTS[1:])

    def locked(*_args):
        raise RuntimeError("database is locked")

    with pytest.raises(RuntimeError):
        spool.replay(locked)
    assert len(spool.pending()) == 2
    seen: list[str] = []
    assert spool.replay(lambda _a, _r, pull_id: seen.append(pull_id)) == 2
    assert seen == ["p1", "p2"]  # oldest first
    assert not first.exists()


def test_files_are_private_and_batches_of_other_ledgers_are_not_seen(tmp_path):
    ours, theirs = Spool(tmp_path, "ledger-a"), Spool(tmp_path, "ledger-b")
    path = ours.put("acct", "p1", REPORTS)
    assert theirs.pending() == []
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o700
    assert not [p for p in path.parent.iterdir() if p.name.startswith(".tmp-")]  # no temp file left


def test_an_unreadable_file_is_moved_aside_not_retried(tmp_path, caplog):
    spool = Spool(tmp_path, "ledger")
    good = spool.put("acct", "p1", REPORTS)
    bad = good.with_name("00000000000000000000-broken.json")
    bad.write_text("{not json")
    assert spool.replay(lambda *a: None) == 2
    assert bad.with_suffix(".bad").exists()
    assert spool.pending() == []
    assert "13900008888" not in caplog.text


def test_the_repr_counts_reports_and_names_no_number(tmp_path):
    spool = Spool(tmp_path, "ledger")
    batch = spool.load(spool.put("acct", "p1", REPORTS))
    assert "13900008888" not in repr(batch)
    assert "reports=2" in repr(batch)


def test_the_default_lives_under_airflow_home(monkeypatch, tmp_path):
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path))
    assert default_spool_dir() == tmp_path / DEFAULT_SPOOL_SUBDIR
