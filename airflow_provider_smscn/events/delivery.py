"""The next batch of new delivery reports for a watching asset, claimed so only one watcher emits it.

How a batch reaches the asset exactly once:

1. **Pull under the same lease as every waiter** (``pulling.pull_if_due``): whoever wins the
   account's slot pulls and stores every report before anything else; the watcher never pulls for
   itself outside that lease, so no waiter's report is taken away from it.
2. **Read what is new after the watcher's cursor** (a row id kept in ``smscn_event_cursors``),
   at most ``limit`` rows, in row-id (commit) order.
3. **Claim it**: ``advance_event_cursor(key, read_position, new_position)`` is one conditional
   UPDATE. Of two instances (two triggerers, or an old one still running after a failover) that
   read the same position, exactly one moves the cursor and emits the batch; the other emits
   nothing and reads on from the new position next time. A restarted triggerer starts from the
   ledger's cursor, so nothing is emitted twice and nothing is skipped.

A trigger cancelled while its claim is in flight (Airflow cancels a trigger it moved to another
triggerer, and every trigger at a graceful shutdown) waits for the claim and gives the batch back
(:func:`give_back`: the cursor returns to where it was, if nobody moved on meanwhile).

What is left: an event yielded but never written into Airflow's database. Airflow's trigger
runner hands yielded events to its supervisor once per loop turn (about a second); a triggerer
killed (SIGKILL), or stopped (SIGTERM: Airflow 3.3's runner leaves its loop without a last sync),
in that turn drops them. Their claims stand, so those batches do not reach the asset; they stay in
the ledger (the cursor row names the last claimed batch and its holder). Closing it needs
Airflow's confirmation that an event was persisted (3.3's shared-stream ack mode); we chose
claim-then-yield over yield-then-claim, which would emit duplicates in the same window and on
every failover overlap.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.client.codes import RESULT_CODES
from airflow_provider_smscn.client.errors import SmsCnValidationError
from airflow_provider_smscn.delivery.pulling import ledger_errors, pull_if_due, replay_spool
from airflow_provider_smscn.delivery.reports import report_payload

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow_provider_smscn.client.models import DeliveryReport
    from airflow_provider_smscn.delivery.pulling import ReportSource

log = logging.getLogger(__name__)

#: Reports per event at most (a backlog becomes several events, emitted back to back).
MAX_BATCH = 100
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
        source.housekeep()
        # the cursor first: a new watcher's "latest" is the ledger's end BEFORE its own first pull,
        # or the reports that pull stores would count as old and never reach the asset
        start = ledger.report_cursor if watch.start == "latest" else (lambda _account: 0)
        cursor = ledger.event_cursor(watch.key, start=lambda: start(account))
        replay_spool(source)
        pull_if_due(source, holder)
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


def give_back(source: ReportSource, payload: dict[str, Any], holder: str) -> bool:
    """Return a claimed batch whose event never reached Airflow; True if the cursor went back."""
    first, last = (int(n) for n in str(payload["batch"]).split("-"))
    with ledger_errors("giving a batch back"):
        back = source.ledger.release_event_cursor(str(payload["watch"]), last, first - 1, holder)
    outcome = "given back: it is emitted again" if back else "could not be given back (the cursor moved on)"
    log.warning("smscn: delivery batch %s %s", payload["batch"], outcome)
    return back
