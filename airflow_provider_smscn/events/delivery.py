"""The next batch of new delivery reports for a watching asset: none lost, each taken once.

1. **Pull under the same lease as every waiter** (``pulling.pull_if_due``): whoever wins the
   account's slot pulls and stores every report before anything else; the watcher never pulls for
   itself outside that lease, so no waiter's report is taken away from it.
2. **Read what is new after the watcher's cursor** (a row id kept in ``smscn_event_cursors``),
   at most ``limit`` rows, in row-id (commit) order.
3. **Claim it** with one conditional UPDATE of the cursor row: of two instances (two triggerers,
   or an old one still running after a failover) that read the same row, exactly one wins.

Airflow 3.3+ (ack mode, :func:`claim_batch`): the claim marks the batch in flight and the cursor
moves past it only when Airflow confirmed its event stored (:func:`settle_batch`). A watcher that
stops first leaves the claim to expire (:data:`CLAIM_EXPIRY`; at once at a graceful stop); the
next look sends the same rows under the same batch id. Nothing is lost; what is left is a copy
(stored, but the watcher stopped before the confirmation came): :func:`take_batches` is the
consumer's half, giving each batch to one DAG run.

Airflow 3.0-3.2 (:func:`next_batch`): the claim moves the cursor, then the trigger yields; an
event yielded but not yet synced by Airflow's runner (about a second) is lost if the triggerer
stops in that window. A cancelled trigger gives a claim made meanwhile back (:func:`give_back`).
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.client.codes import RESULT_CODES
from airflow_provider_smscn.client.errors import SmsCnValidationError
from airflow_provider_smscn.delivery.pulling import ledger_errors, pull_if_due, replay_spool
from airflow_provider_smscn.delivery.reports import report_payload
from airflow_provider_smscn.ledger.events import SENDING

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator

    from airflow_provider_smscn.client.models import DeliveryReport
    from airflow_provider_smscn.delivery.pulling import ReportSource
    from airflow_provider_smscn.ledger import SmsCnLedger
    from airflow_provider_smscn.ledger.events import EventCursor

log = logging.getLogger(__name__)

#: Reports per event at most (a backlog becomes several events, emitted back to back).
MAX_BATCH = 100
#: Seconds an in-flight batch's claim lasts without its holder refreshing it (ack mode): after
#: that, its triggerer is taken for dead or frozen and another sends the batch again.
CLAIM_EXPIRY = 30.0
#: Seconds between two refreshes of a claim while Airflow stores its event.
CLAIM_REFRESH = CLAIM_EXPIRY / 3
#: Where a new watcher starts: only reports stored from now on, or everything the ledger keeps.
STARTS = ("latest", "earliest")


@dataclass(frozen=True)
class DeliveryWatch:
    """What one asset watches: an account's reports with these result codes, from its own cursor.

    :param result_codes: the codes to report; None = every undelivered code (all but 100).
    :param name: tells two watchers of the same account and codes apart (two cursors).
    """

    account: str
    result_codes: frozenset[int] | None = None
    name: str = ""
    limit: int = MAX_BATCH
    start: str = "latest"

    @property
    def key(self) -> str:
        """The cursor's key: a digest (account keys hold a URL and may be long)."""
        codes = "undelivered" if self.result_codes is None else ",".join(map(str, sorted(self.result_codes)))
        text = f"{self.account}\x1f{codes}\x1f{self.name}"
        return "delivery:" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:40]

    def matches(self, report: DeliveryReport) -> bool:
        if self.result_codes is None:
            return not report.delivered
        return int(report.resultcode) in self.result_codes


def check_result_codes(codes: Iterable[Any] | None) -> list[int] | None:
    """The codes as ints, each a documented delivery result code; a clear error otherwise."""
    if codes is None:
        return None
    if isinstance(codes, (str, bytes)):
        codes = [c for c in str(codes).split(",") if c.strip()]
    result: list[int] = []
    for code in codes:
        try:
            number = int(code)
        except (TypeError, ValueError):
            raise SmsCnValidationError(f"result_codes: {code!r} is not a result code") from None
        if number not in RESULT_CODES:
            raise SmsCnValidationError(f"result_codes: {number} is not a delivery result code "
                                       f"(known: {sorted(RESULT_CODES)})")
        result.append(number)
    if not result:
        raise SmsCnValidationError("result_codes must name at least one code (or be None: undelivered)")
    return sorted(set(result))


def check_start(start: str) -> str:
    if start not in STARTS:
        raise SmsCnValidationError(f"start must be one of {STARTS}, not {start!r}")
    return start


def sender_of(idem_key: str) -> dict[str, str] | None:
    """``dag|task|run`` (the send intent's key, see sending.py) as a dict; None for other keys."""
    parts = idem_key.split("|", 2)
    if len(parts) != 3 or not all(parts):
        return None
    return {"dag_id": parts[0], "task_id": parts[1], "run_id": parts[2]}


def next_batch(source: ReportSource, watch: DeliveryWatch, holder: str) -> tuple[dict[str, Any] | None, bool]:
    """Take a pull turn if due, then claim the next batch; returns (event payload or None, more waiting).

    The payload is None when nothing new matched, or when another instance claimed the batch.
    ``more`` is true when a full batch was read: call again at once.
    """
    ledger, account = source.ledger, source.account
    with ledger_errors("watching delivery reports"):
        cursor = _cursor_after_pull(source, watch, holder)
        if cursor.state:  # a batch in flight by an ack-mode watcher of this cursor: it moves on, not us
            return None, False
        rows, new_position = ledger.get_reports_after(account, cursor.position, limit=watch.limit)
        if not rows:
            return None, False
        matched = [(row_id, report) for row_id, report in rows if watch.matches(report)]
        payload = _payload(source, watch, cursor.position, new_position, matched) if matched else None
        batch = f"{cursor.position + 1}-{new_position}"
        if not ledger.advance_event_cursor(watch.key, cursor.position, new_position, holder,
                                           last_batch=batch if matched else ""):
            log.info("smscn: delivery batch %s of %s went to another watcher", batch, watch.key)
            return None, True
    return payload, len(rows) >= watch.limit


@dataclass(frozen=True)
class BatchClaim:
    """A batch in flight (ack mode): rows ``(after, upto]`` of a watcher's cursor, held by ``holder``."""

    watch_key: str
    after: int
    upto: int
    holder: str


def claim_batch(source: ReportSource, watch: DeliveryWatch, holder: str, expiry: float = CLAIM_EXPIRY
                ) -> tuple[dict[str, Any] | None, BatchClaim | None, bool]:
    """Ack mode: take a pull turn if due, then claim the next batch WITHOUT moving past it.

    Returns (payload, claim, more). The cursor moves past the batch only when Airflow confirmed
    its event stored (:func:`settle_batch`); until then other instances leave it alone, unless
    the claim goes ``expiry`` seconds unrefreshed (its holder died or froze): then one of them
    takes it over and sends the same rows under the same batch id. (None, None, False): nothing
    new, or a batch in flight. ``more``: a full batch was read, or a race lost: look again at once.
    """
    ledger, account = source.ledger, source.account
    with ledger_errors("watching delivery reports"):
        cursor = _cursor_after_pull(source, watch, holder)
        if cursor.state.startswith(SENDING):
            upto = int(cursor.state[len(SENDING):])
            if not ledger.claim_event_batch(watch.key, cursor, upto, holder, expiry):
                return None, None, False  # in flight, its holder alive
            level = logging.INFO if cursor.holder == holder else logging.WARNING
            log.log(level, "smscn: delivery batch %s-%s of %s is sent again: its event was not confirmed "
                    "stored before its watcher stopped (a consumer that takes batches by id sees it once)",
                    cursor.position + 1, upto, watch.key)
            rows, _ = ledger.get_reports_after(account, cursor.position, limit=watch.limit)
            rows = [(row_id, report) for row_id, report in rows if row_id <= upto]
        else:
            rows, upto = ledger.get_reports_after(account, cursor.position, limit=watch.limit)
            if not rows:
                return None, None, False
            if not any(watch.matches(report) for _, report in rows):  # nothing for the asset: move on now
                moved = ledger.advance_event_cursor(watch.key, cursor.position, upto, holder)
                return None, None, not moved or len(rows) >= watch.limit
            if not ledger.claim_event_batch(watch.key, cursor, upto, holder, expiry):
                return None, None, True
        claim = BatchClaim(watch.key, cursor.position, upto, holder)
        matched = [(row_id, report) for row_id, report in rows if watch.matches(report)]
        if not matched:  # taken over, and the rows are gone meanwhile (pruned): nothing left to send
            ledger.settle_event_batch(watch.key, claim.after, claim.upto, holder, stored=True)
            return None, None, True
        return _payload(source, watch, cursor.position, upto, matched), claim, len(rows) >= watch.limit


def settle_batch(source: ReportSource, claim: BatchClaim, stored: bool) -> bool:
    """Move past a claimed batch (``stored``: Airflow confirmed its event), or leave it to be sent again."""
    with ledger_errors("settling a delivery batch"):
        done = source.ledger.settle_event_batch(claim.watch_key, claim.after, claim.upto, claim.holder,
                                                stored)
    if not done:
        log.warning("smscn: delivery batch %s-%s of %s was taken over by another watcher before it was "
                    "settled (this one froze or lost the ledger longer than the claim lasts): its event "
                    "may reach the asset twice, under one batch id", claim.after + 1, claim.upto,
                    claim.watch_key)
    return done


def refresh_claim(source: ReportSource, claim: BatchClaim) -> bool:
    """Keep a claim alive while Airflow stores its event; False if another watcher took it over."""
    with ledger_errors("refreshing a delivery batch claim"):
        return source.ledger.refresh_event_claim(claim.watch_key, claim.holder)


def _cursor_after_pull(source: ReportSource, watch: DeliveryWatch, holder: str) -> EventCursor:
    """The watcher's cursor (created if new), after this host's spool is replayed and a pull turn taken."""
    ledger, account = source.ledger, source.account
    source.housekeep()
    # the cursor first: a new watcher's "latest" is the ledger's end BEFORE its own first pull,
    # or the reports that pull stores would count as old and never reach the asset
    start = ledger.report_cursor if watch.start == "latest" else (lambda _account: 0)
    ledger.event_cursor(watch.key, start=lambda: start(account))
    replay_spool(source)
    pull_if_due(source, holder)
    return ledger.event_cursor(watch.key)


def _payload(source: ReportSource, watch: DeliveryWatch, after: int, upto: int,
             matched: list[tuple[int, DeliveryReport]]) -> dict[str, Any]:
    """Plain data: numbers masked, each call's sender (dag/task/run) when the ledger has its intent."""
    intents = source.ledger.get_intents(source.account, [report.mobileid for _, report in matched])
    reports = []
    for row_id, report in matched:
        intent = intents.get(report.mobileid)
        item = report_payload(report)
        item["row"] = row_id
        item["sent_by"] = sender_of(intent.idem_key) if intent is not None else None
        reports.append(item)
    return {
        "watch": watch.key,
        "name": watch.name,
        "batch": f"{after + 1}-{upto}",
        "count": len(reports),
        "result_codes": None if watch.result_codes is None else sorted(watch.result_codes),
        "reports": reports,
    }


def take_batches(ledger: SmsCnLedger, events: Any, consumer: str, taker: str) -> list[dict[str, Any]]:
    """The delivery payloads among ``events`` whose batch ``taker`` takes first for ``consumer``.

    ``events``: a DAG run's ``triggering_asset_events`` (asset -> events), or a list of asset
    events, or of their payloads. A batch can reach an asset twice (a watcher that died before
    Airflow confirmed its event sent it again); the first run to take it gets it, again in its
    own retries (same ``taker``), and no other run does. Other payloads (not a delivery batch)
    are skipped.
    """
    taken = []
    for payload in _payloads(events):
        with ledger_errors("taking a delivery batch"):
            first = ledger.take_event_batch(consumer, str(payload["watch"]), str(payload["batch"]), taker)
        if first:
            taken.append(payload)
        else:
            log.info("smscn: delivery batch %s of %s was taken before by another run of %s: skipped",
                     payload["batch"], payload["watch"], consumer)
    return taken


def _payloads(events: Any) -> Iterator[dict[str, Any]]:
    if isinstance(events, Mapping):
        events = [event for group in events.values() for event in group]
    for event in events or ():
        extra = getattr(event, "extra", None)
        payload = event if extra is None else extra.get("payload")
        if isinstance(payload, Mapping) and "payload" in payload and "batch" not in payload:
            payload = payload["payload"]  # an asset event's extra given as a dict
        if isinstance(payload, Mapping) and "watch" in payload and "batch" in payload:
            yield dict(payload)


def give_back(source: ReportSource, payload: dict[str, Any], holder: str) -> bool:
    """Return a claimed batch whose event never reached Airflow; True if the cursor went back."""
    first, last = (int(n) for n in str(payload["batch"]).split("-"))
    with ledger_errors("giving a batch back"):
        back = source.ledger.release_event_cursor(str(payload["watch"]), last, first - 1, holder)
    outcome = "given back: it is emitted again" if back else "could not be given back (the cursor moved on)"
    log.warning("smscn: delivery batch %s %s", payload["batch"], outcome)
    return back
