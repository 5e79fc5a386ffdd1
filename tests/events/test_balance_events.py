"""Balance events, Airflow-free: one request per interval across watchers, one event per crossing."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

from airflow_provider_smscn.client.errors import SmsCnValidationError
from airflow_provider_smscn.events.balance import (
    BalanceWatch,
    check_balance,
    claim_crossing,
    refresh_crossing,
    settle_crossing,
)
from airflow_provider_smscn.ledger import SmsCnLedger

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


@pytest.fixture(params=["sqlite", "postgresql", "mysql"])
def ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SmsCnLedger]:
    urls = {"sqlite": lambda: f"sqlite:///{tmp_path}/l.db",
            "postgresql": lambda: request.getfixturevalue("pg_database").url,
            "mysql": lambda: request.getfixturevalue("mysql_database")}
    url = urls[request.param]()
    led = SmsCnLedger(url)
    yield led
    led.dispose()


class Balances:
    """The account's balance over time, counting the requests."""

    def __init__(self, value: int) -> None:
        self.value, self.requests = value, 0

    def __call__(self) -> int:
        self.requests += 1
        return self.value


def test_one_event_per_crossing_and_again_after_a_top_up(ledger: SmsCnLedger) -> None:
    watch = BalanceWatch("acct", threshold=1000, interval=60)
    balance = Balances(5000)
    events = []
    for step, value in enumerate([5000, 800, 700, 600, 1000, 900, 900, 2000, 10]):
        balance.value = value
        payload = check_balance(ledger, watch, "w1", balance, now=1_000_000 + 60 * step)
        events.append(payload and payload["balance"])
    assert events == [None, 800, None, None, None, 900, None, None, 10]


def test_two_watchers_make_one_request_per_interval_and_one_event(ledger: SmsCnLedger) -> None:
    watch = BalanceWatch("acct", threshold=1000, interval=60)
    balance = Balances(300)
    payloads = []
    for second in range(0, 180, 10):  # both watchers look every 10 s for three intervals
        for holder in ("triggerer-1", "triggerer-2"):
            payloads.append(check_balance(ledger, watch, holder, balance, now=2_000_000 + second))
    assert balance.requests == 3
    assert [p["balance"] for p in payloads if p] == [300]


def test_a_watcher_started_while_the_balance_is_low_fires_once(ledger: SmsCnLedger) -> None:
    watch = BalanceWatch("acct", threshold=1000, interval=60, name="late")
    first = check_balance(ledger, watch, "w1", Balances(10), now=3_000_000)
    assert first is not None and first.pop("crossing")
    assert first == {"watch": watch.key, "name": "late", "balance": 10, "threshold": 1000}
    assert check_balance(ledger, watch, "w2", Balances(10), now=3_000_100) is None  # a restart: no repeat


@pytest.mark.parametrize(("threshold", "interval", "match"), [
    (0, 60, "threshold"), ("100", 60, "threshold"), (True, 60, "threshold"), (100, 0.5, "check_interval")])
def test_bad_settings_are_refused_by_name(threshold: object, interval: float, match: str) -> None:
    with pytest.raises(SmsCnValidationError, match=match):
        BalanceWatch("acct", threshold=threshold, interval=interval)  # type: ignore[arg-type]


HOUR = 3600.0


def test_ack_mode_a_crossing_is_below_only_once_airflow_stored_its_event(ledger: SmsCnLedger) -> None:
    watch = BalanceWatch("acct", threshold=1000, interval=60)
    balance = Balances(300)
    [(payload, claim)] = claim_crossing(ledger, watch, "w1", balance, HOUR, now=4_000_000)[0]
    assert (payload["balance"], payload["crossing"]) == (300, claim.crossing)
    nothing = ([], False, False)
    assert claim_crossing(ledger, watch, "w2", balance, HOUR, now=4_000_100) == nothing  # in flight
    assert claim_crossing(ledger, watch, "w1", balance, HOUR, now=4_000_200,
                          tracked=[claim]) == nothing  # its own, on its way
    assert refresh_crossing(ledger, claim)
    assert settle_crossing(ledger, claim, stored=True)
    assert ledger.event_cursor(watch.key).state == "below"
    assert claim_crossing(ledger, watch, "w2", balance, HOUR, now=4_000_300) == nothing  # still low
    balance.value = 5000
    claim_crossing(ledger, watch, "w2", balance, HOUR, now=4_000_400)  # topped up: above again
    balance.value = 20
    [(again, _)] = claim_crossing(ledger, watch, "w2", balance, HOUR, now=4_000_500)[0]
    assert again["balance"] == 20 and again["crossing"] != payload["crossing"]  # a new crossing


def test_ack_mode_a_crossing_whose_watcher_stopped_is_sent_again_under_its_id(ledger: SmsCnLedger) -> None:
    watch = BalanceWatch("acct", threshold=1000, interval=60)
    balance = Balances(300)
    [(payload, claim)] = claim_crossing(ledger, watch, "w1", balance, HOUR, now=5_000_000)[0]
    assert settle_crossing(ledger, claim, stored=False)  # the triggerer stops before the confirmation
    requests = balance.requests
    [(again, taken)] = claim_crossing(ledger, watch, "w2", balance, HOUR, now=5_000_010)[0]
    assert again == payload and balance.requests == requests  # the same crossing, no new request
    assert not settle_crossing(ledger, claim, stored=True)  # the old holder lost it
    assert settle_crossing(ledger, taken, stored=True)
    assert ledger.event_cursor(watch.key).state == "below"


def test_a_watcher_without_ack_mode_sends_an_expired_crossing_once(ledger: SmsCnLedger) -> None:
    watch = BalanceWatch("acct", threshold=1000, interval=60)
    [(payload, claim)] = claim_crossing(ledger, watch, "w1", Balances(300), HOUR, now=6_000_000)[0]
    assert settle_crossing(ledger, claim, stored=False)
    assert check_balance(ledger, watch, "old", Balances(300), now=6_000_010) == payload
    assert check_balance(ledger, watch, "old", Balances(300), now=6_000_100) is None
    assert ledger.event_cursor(watch.key).state == "below"
