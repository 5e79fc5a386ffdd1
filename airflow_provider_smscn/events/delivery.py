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
stops first leaves the claim to expire (at once at a graceful stop); the next look sends the same
rows under the same batch id. Nothing is lost; what is left is a copy (stored, but the watcher
stopped before the confirmation came): :func:`take_batches` is the consumer's half, giving each
batch to one DAG run. The producer is :class:`~airflow_provider_smscn.events.stream.AckedEvents`.

Airflow 3.0-3.2 (:func:`next_batch`): the claim moves the cursor, then the trigger yields; an
event yielded but not yet synced by Airflow's runner (about a second) is lost if the triggerer
stops in that window. A cancelled trigger gives a claim made meanwhile back (:func:`give_back`).
"""

from __future__ import annotations

import hashlib
import itertools
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.client.codes import RESULT_CODES
from airflow_provider_smscn.client.errors import SmsCnValidationError
from airflow_provider_smscn.delivery.pulling import ledger_errors, pull_if_due, replay_spool
from airflow_provider_smscn.delivery.reports import report_payload
from airflow_provider_smscn.events.stream import CLAIM_EXPIRY
from airflow_provider_smscn.ledger.events import in_flight

if TYPE_CHECKING:
    from collections.abc import Iterable, Iterator, Sequence

    from airflow_provider_smscn.client.models import DeliveryReport
    from airflow_provider_smscn.delivery.pulling import ReportSource
    from airflow_provider_smscn.ledger import SmsCnLedger
    from airflow_provider_smscn.ledger.events import EventCursor

log = logging.getLogger(__name__)

#: Reports per event at most (a backlog becomes several events, emitted back to back).
MAX_BATCH = 100
#: Rows a look reads at most (ack mode), to find up to ``max_batch`` matching reports among them.
SCAN = 1000
#: Batches a watcher has on their way into Airflow at once (Airflow confirms an event about two
#: seconds after it was yielded: one in flight would cap a watcher at one batch per two seconds).
MAX_IN_FLIGHT = 20
#: Where a new watcher starts: only reports stored from now on, or everything the ledger keeps.
STARTS = ("latest", "earliest")
#: A consumer run looks this far before its first triggering event for events no run was started
#: for: Airflow stamps an asset event with the clock of the host that stored it.
CLOCK_SKEW = timedelta(seconds=60)
#: Asset events a consumer run reads at most when it looks for them (its own, a few left by
#: Airflow's run queue, and the first of the next run, where it stops).
READ_LIMIT = 1000


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


def next_batch(source: ReportSource, watch: DeliveryWatch, holder: str, expiry: float = CLAIM_EXPIRY
               ) -> tuple[dict[str, Any] | None, bool]:
    """Take a pull turn if due, then claim the next batch; returns (event payload or None, more waiting).

    The payload is None when nothing new matched, or when another instance claimed the batch.
    ``more`` is true when a full batch was read: call again at once.
    """
    ledger, account = source.ledger, source.account
    with ledger_errors("watching delivery reports"):
        cursor = _cursor_after_pull(source, watch, holder)
        ends = in_flight(cursor)
        if ends:  # batches in flight of an ack-mode watcher: once it stopped, send them, one per look
            [(again, claim)] = _sent_again(source, watch, cursor, holder, ends[:1])
            if cursor.holder != holder and not ledger.take_over_event_claim(watch.key, cursor, holder,
                                                                              expiry):
                return None, False
            if not ledger.settle_event_batch(watch.key, claim.after, claim.upto, holder, stored=True):
                return None, True
            return again, True
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


_SERIALS = itertools.count(1)


@dataclass(frozen=True)
class BatchClaim:
    """A batch in flight (ack mode): rows ``(after, upto]`` of a watcher's cursor, held by ``holder``.

    ``serial`` tells hand-outs apart: a batch sent again is another claim than its first copy,
    whose outcome Airflow may still report.
    """

    watch_key: str
    after: int
    upto: int
    holder: str
    serial: int = field(default_factory=lambda: next(_SERIALS))



def claim_batch(source: ReportSource, watch: DeliveryWatch, holder: str, expiry: float = CLAIM_EXPIRY,
                tracked: Sequence[BatchClaim] = ()
                ) -> tuple[list[tuple[dict[str, Any], BatchClaim]], bool, bool]:
    """Ack mode: take a pull turn if due, then claim the next batch WITHOUT moving past it.

    Returns (batches to send, more, sent again). Usually one batch, after those ``holder`` has
    in flight (``tracked``); the cursor moves past a batch only when Airflow confirmed its event
    stored (:func:`settle_batch`), and until then other instances leave it alone. Batches in flight
    that nobody is known to hold are taken over and returned, each with the same rows and batch
    id, to send again (``sent again``: they are every batch in flight, replacing ``tracked``):
    another holder's once it has not refreshed them for ``expiry`` seconds (it died or froze, or
    left them expired at a graceful stop), this holder's own at once when they are not what it
    tracks (a look that claimed and then failed). Every read comes before the one write that
    claims, so a failure never leaves a claim behind that nobody sends.
    """
    ledger, account = source.ledger, source.account
    with ledger_errors("watching delivery reports"):
        cursor = _cursor_after_pull(source, watch, holder)
        ends = in_flight(cursor)
        ours = cursor.holder == holder
        if ends and not (ours and cursor.updated_at > 0 and ends == [c.upto for c in tracked]):
            again = _sent_again(source, watch, cursor, holder, ends)
            if not ledger.take_over_event_claim(watch.key, cursor, holder, None if ours else expiry):
                return [], False, False
            log.warning("smscn: delivery batches %s of %s are sent again: their events were not "
                        "confirmed stored before their watcher stopped (a consumer taking batches by "
                        "id sees each once)", ",".join(p["batch"] for p, _ in again), watch.key)
            return again, True, True
        start = ends[-1] if ends else cursor.position
        # up to ``limit`` matching reports, and the rows that do not match between them: a batch's
        # range skips them, so a watcher of a few codes does not wait a confirmation per other row
        rows, upto = ledger.get_reports_after(account, start, limit=max(watch.limit, SCAN))
        if not rows:
            return [], False, False
        matched = [(row_id, report) for row_id, report in rows if watch.matches(report)][:watch.limit]
        full = len(matched) >= watch.limit or len(rows) >= max(watch.limit, SCAN)
        if len(matched) >= watch.limit:
            upto = matched[-1][0]
        if not matched:  # nothing for the asset: move on now, or once the batches in flight are settled
            if ends:
                return [], False, False
            return [], ledger.advance_event_cursor(watch.key, cursor.position, upto, holder) and full, False
        payload = _payload(source, watch, start, upto, matched)
        if not ledger.claim_event_batch(watch.key, cursor, upto, holder, expiry):
            return [], not ends, False  # a race for a free cursor: look again; ours expired: next poll
        return [(payload, BatchClaim(watch.key, start, upto, holder))], full, False


def _sent_again(source: ReportSource, watch: DeliveryWatch, cursor: EventCursor, holder: str,
                ends: list[int]) -> list[tuple[dict[str, Any], BatchClaim]]:
    """The batches in flight ``(position, e1], (e1, e2], ...``: the same rows, under the same batch ids."""
    batches = []
    for after, upto in zip([cursor.position, *ends[:-1]], ends, strict=True):
        rows, _ = source.ledger.get_reports_after(source.account, after, limit=upto - after, upto=upto)
        matched = [(row_id, report) for row_id, report in rows if watch.matches(report)]
        claim = BatchClaim(watch.key, after, upto, holder)
        batches.append((_payload(source, watch, after, upto, matched), claim))
    return batches


def settle_batch(source: ReportSource, claim: BatchClaim, stored: bool) -> bool:
    """Airflow stored the event of ``claim`` (the first batch in flight): move past it. Not stored
    (or not known): leave every batch in flight expired, to be sent again under the same ids."""
    with ledger_errors("settling a delivery batch"):
        done = source.ledger.settle_event_batch(claim.watch_key, claim.after, claim.upto, claim.holder,
                                                stored)
    if not done:
        log.warning("smscn: delivery batch %s-%s of %s was no longer this watcher's to settle (taken "
                    "over after a freeze or a ledger outage longer than a claim lasts, or moved past): "
                    "its event may reach the asset twice, under one batch id", claim.after + 1,
                    claim.upto, claim.watch_key)
    return done


def abandon_claims(source: ReportSource, watch: DeliveryWatch, holder: str) -> bool:
    """Leave every batch ``holder`` still has in flight expired: the next look sends them again."""
    with ledger_errors("leaving delivery batches"):
        return source.ledger.expire_event_claim(watch.key, holder)


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
    cursor = ledger.event_cursor(watch.key)
    ends = in_flight(cursor)
    if ends and cursor.position >= ends[0]:  # moved past batches in flight (a watcher of an older
        ledger.forget_passed_batches(watch.key, cursor)  # version, without ack mode): forget them
        cursor = ledger.event_cursor(watch.key)
    return cursor


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


def take_batches(ledger: SmsCnLedger, events: Any, consumer: str, taker: str,
                 inlet_events: Any = None) -> list[dict[str, Any]]:
    """The delivery payloads among ``events`` whose batch ``taker`` takes first for ``consumer``.

    ``events``: a DAG run's ``triggering_asset_events`` (asset -> events), or a list of asset
    events, or of their payloads. A batch can reach an asset twice (a watcher that died before
    Airflow confirmed its event sent it again); the first run to take it gets it, again in its
    own retries (same ``taker``), and no other run does. Other payloads (not a delivery batch)
    are skipped. With ``inlet_events`` (the task's; ``taker`` the run id), also the batches the run's
    stretch of the asset holds that no run was started for (:func:`stored_since`).
    """
    found = list(_flat(events))
    if inlet_events is not None:
        found += stored_since(ledger, events, inlet_events, consumer, taker)
    taken, seen = [], set()
    for payload in _payloads(found):
        key = (str(payload["watch"]), str(payload["batch"]))
        if key in seen:  # both copies of a batch started this one run: it gets the batch once
            continue
        seen.add(key)
        with ledger_errors("taking a delivery batch"):
            first = ledger.take_event_batch(consumer, str(payload["watch"]), str(payload["batch"]), taker)
        if first:
            taken.append(payload)
        else:
            log.info("smscn: delivery batch %s of %s was taken before by another run of %s: skipped",
                     payload["batch"], payload["watch"], consumer)
    return taken


def stored_since(ledger: SmsCnLedger, triggering: Any, inlet_events: Any, consumer: str,
                 taker: str) -> list[Any]:
    """The events of each delivery asset in ``taker``'s stretch that no run was started for.

    Airflow 3 (3.0.6 to 3.3.2 at least) gives a run the events up to its queue row's first one; an
    event stored between that row and the run's creation starts no run until another event comes
    (apache/airflow#56050). Its transaction is done before the run exists, so the run's task finds
    it among the asset's events (``inlet_events``, an inlet of the task) with no run of its DAG. The
    walk starts at the run's first triggering event (less :data:`CLOCK_SKEW`: hosts stamp events
    by their own clocks) and takes events no run of the DAG was started for (yet) up to the first
    event of a later run of the DAG: what follows is that run's. Events the ledger says this run
    took stay its own when Airflow later gives them to another run (a retry, or a second task of
    the run, gets them again). A read that fails leaves the others to the next run, as Airflow would.
    """
    if not isinstance(triggering, Mapping):
        raise SmsCnValidationError(
            "inlet_events needs the run's triggering_asset_events (asset -> events), not a list")
    later: list[Any] = []
    for asset, group in triggering.items():
        ours = {key for key in map(_event_key, group) if key is not None}
        if not ours or getattr(asset, "uri", None) is None:  # no batch, or an alias of the asset
            continue
        name = getattr(asset, "name", asset)
        since = min(e.timestamp for e in group)
        try:
            read = _read_since(inlet_events, asset, since - CLOCK_SKEW)
        except KeyError:
            raise SmsCnValidationError(
                f"asset {name!r} is not an inlet of this task: declare it (inlets=[asset]) to take "
                "the events Airflow leaves for the next run") from None
        except Exception as err:  # the run keeps its own batches; the others wait for the next run
            log.warning("smscn: the events of asset %s could not be read (%s): batches no run was "
                        "started for wait for the next one", name, err)
            continue
        keys = [_event_key(e) for e in read]
        dags = {run.dag_id for e, key in zip(read, keys, strict=True) if key in ours
                for run in e.created_dagruns or () if run.run_id == taker}
        if len(dags) != 1:
            why = (f"more than {READ_LIMIT} events from its first one on" if len(read) >= READ_LIMIT
                   else "taker must be the run id")
            log.warning("smscn: run %s not found among asset %s's events (%s): batches no run was "
                        "started for wait for the next run", taker, name, why)
            continue
        dag_id = dags.pop()
        runs = [{run.run_id for run in e.created_dagruns or () if run.dag_id == dag_id} for e in read]
        others = [key[1:] for key, r in zip(keys, runs, strict=True) if key is not None and taker not in r]
        with ledger_errors("reading who took delivery batches"):
            mine = {k for k, who in ledger.event_batch_takers(consumer, others).items() if who == taker}
        ended = False
        for event, key, event_runs in zip(read, keys, runs, strict=True):
            if taker in event_runs:
                continue  # one of the run's own
            ended = ended or (bool(event_runs) and event.timestamp > since)  # a later run's from here
            if (not event_runs and not ended) or (key is not None and key[1:] in mine):
                later.append(event)
    return later


def _read_since(inlet_events: Any, asset: Any, since: datetime) -> list[Any]:
    """The asset's events from ``since`` on, oldest first, at most :data:`READ_LIMIT`."""
    stored = inlet_events[asset]  # Airflow 3.0 reads here (the whole history), 3.1+ when iterated
    if hasattr(stored, "after"):  # Airflow 3.1+: filtered by the API server
        read = list(stored.after(since).limit(READ_LIMIT))
    else:
        read = [e for e in stored if e.timestamp >= since]
    return sorted(read, key=lambda e: e.timestamp)[:READ_LIMIT]


def _event_key(event: Any) -> tuple[Any, str, str] | None:
    payload = next(_payloads([event]), None)
    return None if payload is None else (event.timestamp, str(payload["watch"]), str(payload["batch"]))


def _flat(events: Any) -> list[Any]:
    if isinstance(events, Mapping):
        return [event for group in events.values() for event in group]
    return list(events or ())


def _payloads(events: Iterable[Any]) -> Iterator[dict[str, Any]]:
    for event in events:
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
