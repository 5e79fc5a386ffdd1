"""Under load: concurrent senders and pullers, thousands of reports, none lost or duplicated."""

from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import requests

from airflow_provider_smscn.sandbox import Sandbox
from airflow_provider_smscn.sandbox.accounts import example_account
from tests.support.sandbox_calls import DOC_PWD, jcall

THREADS = 16
SENDS_PER_THREAD = 40
NUMBERS_PER_SEND = 5
DEADLINE_SECONDS = 60


def test_every_report_is_pulled_exactly_once() -> None:
    account = example_account(rate_limit_per_second=None, outcomes={"100": 8, "130": 1, "131": 1})
    with Sandbox(accounts=[account], report_delay=0.02, seed=99) as box:
        url = box.url
        deadline = time.monotonic() + DEADLINE_SECONDS
        start = threading.Barrier(THREADS)

        def worker(index: int) -> tuple[list[str], list[str]]:
            sent: list[str] = []
            pulled: list[str] = []
            with requests.Session() as session:
                start.wait(timeout=10)
                for n in range(SENDS_PER_THREAD):
                    base = 13000000000 + index * 100000 + n * NUMBERS_PER_SEND
                    mobiles = [str(base + k) for k in range(NUMBERS_PER_SEND)]
                    ids = [f"{index + 1}{n:04d}{k:02d}" for k in range(NUMBERS_PER_SEND)]
                    form = {
                        "ac": "sendcode",
                        "uid": "test",
                        "pwd": DOC_PWD,
                        "mobile": ",".join(mobiles),
                        "mobileids": ",".join(ids),
                        "template": "700001",
                        "content": '{"code":"1234"}',
                    }
                    assert session.post(url, data=form, timeout=10).json()["stat"] == "100"
                    sent.extend(ids)
                    status = {"ac": "status", "uid": "test", "pwd": DOC_PWD}
                    reply = session.get(url, params=status, timeout=10).json()
                    assert reply["stat"] == "100"
                    pulled.extend(v["mobileids"] for v in reply["values"])
                    assert time.monotonic() < deadline
            return sent, pulled

        with ThreadPoolExecutor(THREADS) as pool:
            results = list(pool.map(worker, range(THREADS)))
        sent = [i for s, _ in results for i in s]
        pulled = [i for _, p in results for i in p]
        # drain what is left once the last reports are ready
        time.sleep(0.05)
        drain_until = min(deadline, time.monotonic() + 10)
        while time.monotonic() < drain_until:
            values = jcall(url, "status")["values"]
            if not values:
                break
            pulled.extend(v["mobileids"] for v in values)

        total = THREADS * SENDS_PER_THREAD * NUMBERS_PER_SEND
        assert len(sent) == len(set(sent)) == total
        duplicates = [i for i, n in collections.Counter(pulled).items() if n > 1]
        assert duplicates == []
        assert sorted(pulled) == sorted(sent)
        assert sorted(c["mobileid"] for c in box.calls()) == sorted(sent)
        stats = box.stats()
        assert stats["reports_pulled"] == total
        assert stats["reports_pending"] == 0
        assert stats["requests"]["sendcode"] == THREADS * SENDS_PER_THREAD
        assert box.account()["balance"] == 100000 - total


def test_concurrent_repeats_of_one_message_id_place_one_call() -> None:
    with Sandbox(accounts=[example_account(rate_limit_per_second=None, dedup_mobileids=True)],
                 report_delay=0) as box:
        form = {
            "ac": "sendcode",
            "uid": "test",
            "pwd": DOC_PWD,
            "mobile": "13900008888",
            "mobileids": "777000777",
            "template": "700001",
            "content": '{"code":"1"}',
        }
        start = threading.Barrier(THREADS)

        def attempt(_: int) -> str:
            start.wait(timeout=10)
            stat: str = requests.post(box.url, data=form, timeout=10).json()["stat"]
            return stat

        with ThreadPoolExecutor(THREADS) as pool:
            stats = collections.Counter(pool.map(attempt, range(THREADS)))
        assert stats == {"100": 1, "124": THREADS - 1}
        assert len(box.calls()) == 1
        assert box.account()["balance"] == 99999


def test_balance_is_never_overspent_under_concurrency() -> None:
    with Sandbox(accounts=[example_account(rate_limit_per_second=None, balance=25)], report_delay=0) as box:
        start = threading.Barrier(THREADS)

        def attempt(index: int) -> str:
            form = {
                "ac": "sendcode",
                "uid": "test",
                "pwd": DOC_PWD,
                "mobile": ",".join(str(13900000000 + index * 10 + k) for k in range(3)),
                "template": "700001",
                "content": '{"code":"1"}',
            }
            start.wait(timeout=10)
            stat: str = requests.post(box.url, data=form, timeout=10).json()["stat"]
            return stat

        with ThreadPoolExecutor(THREADS) as pool:
            stats = collections.Counter(pool.map(attempt, range(THREADS)))
        assert stats == {"100": 8, "102": THREADS - 8}  # 8 sends of 3 fit in 25
        assert box.account()["balance"] == 1
        assert len(box.calls()) == 24
