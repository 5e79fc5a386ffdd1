"""Sending voice codes so that no retry, clear or second execution phones anyone twice.

Airflow-free on purpose (the operator is a thin page over :func:`send_voice_codes`): a plain
Python caller, or a test, drives it with an :class:`SmsCnClient` and a ledger (:class:`ClientApi`).

The rules, each with the failure it answers:

* **One id per number, run and task.** Message ids are ``deterministic_mobileid(idem_key|number)``
  with ``idem_key = dag|task|run`` (no map index): clearing a mapped task whose input was
  reordered finds the same ids, and a number that shows up twice in a run (in two map indexes,
  or twice in one list) is one id: called once, and every occurrence returns that id.
* **Send only what this execution claimed.** Before each request the ids are claimed in the
  ledger (:meth:`SmsCnLedger.claim_intents`: inserted as ``pending``, or moved from ``rejected``
  back to ``pending``, with conditional writes). Of two executions of one task instance at once (a
  zombie and its retry), exactly one claims an id, and only it sends it; outcomes are recorded
  only on rows this execution claimed.
* **Prove or fail, never guess.** An id that an earlier attempt (or another execution) may have
  sent (``pending`` / ``unknown``) is not sent again. It is proven by the vendor's 100 seen by the
  other execution (intent ``accepted``), a delivery report, or a sent record (``ac=query``) of
  its number made after the intent was written; the proofs are polled for ``proof_timeout``
  seconds. Without proof by then the send fails without retries
  (:class:`SmsCnUnprovenSendError`), naming the numbers masked, or, with ``resend_uncertain``,
  calls them again under a new id.
* **A 124 reply proves nothing.** The vendor's document does not say that ids are deduplicated
  (124 is "重复提交过多", too many repeated submissions; docs/api-decisions.md #14): the request
  placed no call, but an earlier one with the same ids may have. Its ids become ``unknown``, like
  a lost reply.
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from airflow_provider_smscn.client.errors import (
    SmsCnApiError,
    SmsCnError,
    SmsCnSendOutcomeUnknownError,
    SmsCnValidationError,
)
from airflow_provider_smscn.client.redact import mask_mobile, mask_mobiles

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from airflow_provider_smscn.client import DeliveryReport, SmsCnClient
    from airflow_provider_smscn.client.models import SentRecord
    from airflow_provider_smscn.ledger import SendIntent, SmsCnLedger

__all__ = [
    "DEFAULT_PROOF_TIMEOUT",
    "ClientApi",
    "SendApi",
    "SendJob",
    "SmsCnUnprovenSendError",
    "prepare_job",
    "send_voice_codes",
]

log = logging.getLogger(__name__)

#: Seconds a send waits for proof of numbers an earlier attempt may have called.
DEFAULT_PROOF_TIMEOUT = 60.0
#: Seconds between two looks for proof.
DEFAULT_PROOF_POLL = 5.0
#: Intent states whose request may have reached the vendor.
MAY_HAVE_BEEN_SENT = frozenset({"pending", "unknown"})
#: A sent record proves an intent if made no earlier than this before the intent was written
#: (``sendtime`` has whole seconds, the vendor's clock is not ours). Small on purpose: a record
#: of an older call of the same number must not pass for proof.
RECORD_SLACK_SECONDS = 2.0
#: ``ac=query`` calls (50 records each) per look for proof.
_DRAIN_PAGES = 20
_REPEATED_SUBMISSION = 124


class SmsCnUnprovenSendError(SmsCnError):
    """Numbers an earlier attempt may or may not have called, and no proof came: not retriable,
    a retry would find the same nothing. ``mobiles`` holds the numbers (the message masks them)."""

    retriable = False

    def __init__(self, mobiles: Sequence[str], waited: float) -> None:
        self.mobiles = list(mobiles)
        super().__init__(
            f"{len(self.mobiles)} number(s) {mask_mobiles(self.mobiles)} may have been called by an "
            f"earlier attempt of this run, which left no answer, and no proof (a 100, a delivery "
            f"report or a sent record) came within {waited:.0f} s. They were not called again, so "
            "they may have had no call at all. Set resend_uncertain=True to call them (a number "
            "the earlier attempt did reach is then called twice).")


class SendApi(Protocol):
    """What sending needs: the hook offers it, :class:`ClientApi` too (without Airflow)."""

    @property
    def ledger(self) -> SmsCnLedger: ...

    @property
    def account_key(self) -> str: ...

    def send_voice_code(self, mobiles: Sequence[str], template_id: str, variables: Mapping[str, Any],
                        mobileids: Sequence[str]) -> Any: ...

    def collect_reports(self, mobileids: Sequence[str], holder: str) -> Mapping[str, DeliveryReport]: ...

    def query_sent_records(self) -> list[SentRecord]:
        """One page of ``ac=query`` records, stored in the ledger before they are returned."""
        ...


class ClientApi:
    """:class:`SendApi` over a client and a ledger, for sending without Airflow."""

    def __init__(self, client: SmsCnClient, ledger: SmsCnLedger, pull_interval: float = 5.0,
                 spool_dir: str | None = None) -> None:
        self.client = client
        self.ledger = ledger
        self.account_key = client.account_key
        self.pull_interval = pull_interval
        self.spool_dir = spool_dir

    def send_voice_code(self, mobiles: Sequence[str], template_id: str, variables: Mapping[str, Any],
                        mobileids: Sequence[str]) -> Any:
        return self.client.send_voice_code(mobiles, template_id, variables, mobileids=mobileids)

    def collect_reports(self, mobileids: Sequence[str], holder: str) -> Mapping[str, DeliveryReport]:
        from airflow_provider_smscn.delivery import ReportSource, Spool, collect_reports, default_spool_dir

        source = ReportSource(
            ledger=self.ledger, account=self.account_key, pull=self.client.pull_delivery_reports,
            pull_interval=self.pull_interval,
            spool=Spool(self.spool_dir or default_spool_dir(), self.ledger.url_for_display))
        return collect_reports(source, mobileids, holder=holder)

    def query_sent_records(self) -> list[SentRecord]:
        records = self.client.query_sent_records()
        if records:
            self.ledger.store_sent_records(self.account_key, records)
        return records


@dataclass(frozen=True)
class SendJob:
    """One send, validated: ``mobiles`` in the caller's order (a number may repeat)."""

    idem_key: str
    mobiles: list[str]
    template_id: str
    variables: dict[str, Any] = field(repr=False)
    given_ids: dict[str, str] | None = None
    chunk_size: int | None = None
    resend_uncertain: bool = False
    proof_timeout: float = DEFAULT_PROOF_TIMEOUT
    proof_poll: float = DEFAULT_PROOF_POLL
    #: Idem keys 0.1.0 used for this task (``idem_key|map_index``): its rows are this run's too.
    legacy_idem_keys: tuple[str, ...] = ()

    def __repr__(self) -> str:
        given = None if self.given_ids is None else {mask_mobile(k): v for k, v in self.given_ids.items()}
        return (f"SendJob(idem_key={self.idem_key!r}, mobiles={mask_mobiles(self.mobiles)}, "
                f"template_id={self.template_id!r}, given_ids={given!r}, chunk_size={self.chunk_size!r}, "
                f"resend_uncertain={self.resend_uncertain!r}, proof_timeout={self.proof_timeout!r}, "
                f"proof_poll={self.proof_poll!r})")


def prepare_job(idem_key: str, mobiles: Any, template_id: Any, variables: Any, mobileids: Any = None, *,
                chunk_size: int | None = None, resend_uncertain: bool = False,
                proof_timeout: float = DEFAULT_PROOF_TIMEOUT,
                proof_poll: float = DEFAULT_PROOF_POLL, map_index: int = -1) -> SendJob:
    """Check everything before anything is sent; raises :class:`SmsCnValidationError`.

    A number listed twice is one call (the same id for both); with your own ``mobileids``
    each number must be listed once (its id is yours, a second id would be a second call).
    ``map_index`` (the task's, -1 if unmapped) finds the rows 0.1.0 wrote for this run, whose
    ids still held it: a retry after the upgrade does not call their numbers again.
    """
    from airflow_provider_smscn.client.validation import (
        normalize_mobileids,
        normalize_mobiles,
        normalize_variables,
        validate_template_id,
    )

    if not idem_key:
        raise SmsCnValidationError("idem_key must be a non-empty string")
    if mobileids is not None:
        numbers = normalize_mobiles(mobiles, limit=sys.maxsize)
        ids = normalize_mobileids(mobileids, len(numbers)) or []
        given: dict[str, str] | None = dict(zip(numbers, ids, strict=True))
    elif isinstance(mobiles, (str, list, tuple)):
        items = mobiles.split(",") if isinstance(mobiles, str) else list(mobiles)
        keys = [i.strip() if isinstance(i, str) else None for i in items]
        first: dict[str, int] = {}
        kept = [n for n, key in enumerate(keys) if key is None or first.setdefault(key, n) == n]
        valid = dict(zip(kept, normalize_mobiles([items[n] for n in kept] or items, limit=sys.maxsize),
                         strict=True))
        numbers = [valid[n if key is None else first[key]] for n, key in enumerate(keys)]
        given = None
    else:  # anything else: normalize_mobiles accepts it (an iterable) or says what is wrong
        numbers = list(dict.fromkeys(normalize_mobiles(mobiles, limit=sys.maxsize)))
        given = None
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)
                                   or chunk_size < 1):
        raise SmsCnValidationError(f"chunk_size must be an int of at least 1, got {chunk_size!r}")
    if not 0 <= float(proof_timeout) <= 86400:
        raise SmsCnValidationError(f"proof_timeout must be 0 to 86400 seconds, got {proof_timeout!r}")
    if not 0 < float(proof_poll) <= 3600:
        raise SmsCnValidationError(f"proof_poll must be over 0 and at most 3600 seconds, got {proof_poll!r}")
    return SendJob(idem_key=idem_key, mobiles=numbers, template_id=validate_template_id(template_id),
                   variables=normalize_variables(variables), given_ids=given, chunk_size=chunk_size,
                   resend_uncertain=bool(resend_uncertain), proof_timeout=float(proof_timeout),
                   proof_poll=float(proof_poll),
                   legacy_idem_keys=tuple(_legacy_keys(idem_key, map_index)))


def _legacy_keys(idem_key: str, map_index: int) -> list[str]:
    """0.1.0's idem keys for this task: ``idem_key|map_index``, and ``|-1`` (unmapped)."""
    return list(dict.fromkeys([f"{idem_key}|-1", f"{idem_key}|{int(map_index)}"]))


@dataclass
class _Plan:
    """Per distinct number: its current id and intent; what to send; what needs proof."""

    ids: dict[str, str]
    to_send: list[tuple[str, str]]
    uncertain: dict[str, tuple[str, SendIntent]]  # id -> (number, intent)


def send_voice_codes(api: SendApi, job: SendJob, *, limit: int, claimant: str | None = None,
                     logger: Any = None, sleep: Callable[[float], None] = time.sleep,
                     clock: Callable[[], float] = time.monotonic) -> list[str]:
    """Send ``job`` retry-safely; returns the message ids, one per entry of ``job.mobiles``.

    ``limit`` is the most numbers a request may carry. Raises the client's errors after recording
    the outcome (``SmsCnSendOutcomeUnknownError`` for a request that may have gone out), or
    :class:`SmsCnUnprovenSendError`.
    """
    from airflow_provider_smscn.delivery import new_holder

    out = logger or log
    claimant = claimant or new_holder()
    size = min(job.chunk_size or limit, limit)
    numbers = list(dict.fromkeys(job.mobiles))
    deadline = clock() + job.proof_timeout
    sent = 0
    while True:
        plan = _plan(api, job, numbers)
        if plan.to_send:
            sent += _send_claimed(api, job, plan.to_send, size, claimant, out)
            continue  # read the ledger again: lost claims are someone else's now
        if not plan.uncertain:
            break
        proven = _prove(api, plan.uncertain, claimant, out)
        if len(proven) == len(plan.uncertain):
            continue
        unproven = [number for mid, (number, _) in sorted(plan.uncertain.items()) if mid not in proven]
        now = clock()
        if now < deadline:
            out.info("Waiting up to %.0f s for proof that %d number(s) %s were called by an earlier "
                     "attempt", deadline - now, len(unproven), mask_mobiles(unproven))
            sleep(min(job.proof_poll, deadline - now))
            continue
        if not job.resend_uncertain:
            raise SmsCnUnprovenSendError(unproven, job.proof_timeout)
        out.warning("No proof that %d number(s) %s were called: calling them again under new ids "
                    "(resend_uncertain=True)", len(unproven), mask_mobiles(unproven))
        superseded = api.ledger.supersede_intents(api.account_key,
                                                  [mid for mid in plan.uncertain if mid not in proven])
        if len(superseded) < len(unproven):  # proven meanwhile (their 100 came): not called again
            out.info("%d of them were proven called meanwhile: not again", len(unproven) - len(superseded))
    already = len(numbers) - sent
    if already:
        out.info("%d number(s) were already called in this run (by an earlier attempt, or another "
                 "execution of this task): not again", already)
    return [plan.ids[number] for number in job.mobiles]


def _id_for(job: SendJob, number: str, generation: int) -> str:
    from airflow_provider_smscn.client.validation import deterministic_mobileid

    if generation == 0 and job.given_ids is not None:
        return job.given_ids[number]
    suffix = f"|{generation}" if generation else ""
    return deterministic_mobileid(f"{job.idem_key}|{number}{suffix}")


def _plan(api: SendApi, job: SendJob, numbers: list[str]) -> _Plan:
    """Each number's latest id (following ``superseded`` ones) and what its intent says."""
    ledger, account = api.ledger, api.account_key
    ids: dict[str, str] = {}
    to_send: list[tuple[str, str]] = []
    uncertain: dict[str, tuple[str, SendIntent]] = {}
    fresh: dict[str, str] = {}  # numbers without any intent yet: their first id
    generation, pending = 0, list(numbers)
    while pending:
        wanted = {number: _id_for(job, number, generation) for number in pending}
        intents = ledger.get_intents(account, wanted.values())
        later = []
        for number, mid in wanted.items():
            intent = intents.get(mid)
            if intent is not None and intent.state == "superseded":
                later.append(number)
                continue
            ids[number] = mid
            if intent is None and generation == 0:
                fresh[number] = mid
            if intent is None or intent.state == "rejected":
                to_send.append((number, mid))
            elif intent.state in MAY_HAVE_BEEN_SENT:
                uncertain[mid] = (number, intent)
        pending, generation = later, generation + 1
    _adopt_legacy(api, job, fresh, ids, to_send, uncertain)
    order = {number: i for i, number in enumerate(numbers)}
    to_send.sort(key=lambda item: order[item[0]])
    return _Plan(ids=ids, to_send=to_send, uncertain=uncertain)


def _adopt_legacy(api: SendApi, job: SendJob, fresh: dict[str, str], ids: dict[str, str],
                  to_send: list[tuple[str, str]], uncertain: dict[str, tuple[str, SendIntent]]) -> None:
    """Numbers about to get their first id: an intent 0.1.0 recorded for this run is their id.

    0.1.0 derived ids from ``idem_key|map_index|number``; after the upgrade the same run computes
    other ids, and without this would call a number 0.1.0 had called. An ``accepted`` old intent
    means called (not again), an uncertain one needs proof like any other; ``rejected`` or
    ``superseded`` ones placed no call that this run still answers for.
    """
    from airflow_provider_smscn.client.validation import deterministic_mobileid

    if job.given_ids is not None or not job.legacy_idem_keys or not fresh:
        return
    best: dict[str, SendIntent] = {}
    rank = {"accepted": 0, "pending": 1, "unknown": 1}
    for intent in api.ledger.get_intents_by_keys(api.account_key, job.legacy_idem_keys, fresh):
        if (intent.state not in rank
                or intent.mobileid != deterministic_mobileid(f"{intent.idem_key}|{intent.mobile}")):
            continue
        current = best.get(intent.mobile)
        if current is None or rank[intent.state] < rank[current.state]:
            best[intent.mobile] = intent
    for number, intent in best.items():
        to_send.remove((number, fresh[number]))
        ids[number] = intent.mobileid
        if intent.state != "accepted":
            uncertain[intent.mobileid] = (number, intent)


def _send_claimed(api: SendApi, job: SendJob, items: list[tuple[str, str]], size: int, claimant: str,
                  out: Any) -> int:
    """Claim and send chunk by chunk; returns how many numbers this execution called."""
    ledger, account = api.ledger, api.account_key
    called = 0
    chunks = [items[i:i + size] for i in range(0, len(items), size)]
    for index, chunk in enumerate(chunks, start=1):
        claimed = ledger.claim_intents(account, job.idem_key, [(mid, number) for number, mid in chunk],
                                       claimant)
        mine = [(number, mid) for number, mid in chunk if mid in claimed]
        if len(mine) < len(chunk):
            out.info("%d number(s) of chunk %d are being sent by another execution of this task",
                     len(chunk) - len(mine), index)
        if not mine:
            continue
        _send_one(api, job, mine, claimant)
        called += len(mine)
        out.info("Sent chunk %d/%d: %d number(s) called", index, len(chunks), len(mine))
    return called


def _send_one(api: SendApi, job: SendJob, chunk: list[tuple[str, str]], claimant: str) -> None:
    """One request of claimed ids, its outcome recorded on those rows before anything else."""
    ledger, account = api.ledger, api.account_key
    ids = [mid for _, mid in chunk]
    try:
        api.send_voice_code([number for number, _ in chunk], job.template_id, job.variables, mobileids=ids)
    except SmsCnSendOutcomeUnknownError:
        ledger.mark_intents(account, ids, "unknown", claimant=claimant)
        raise
    except SmsCnApiError as err:
        if err.code != _REPEATED_SUBMISSION:
            ledger.mark_intents(account, ids, "rejected", code=err.code, claimant=claimant)
            raise
        ledger.mark_intents(account, ids, "unknown", code=err.code, claimant=claimant)
        raise SmsCnSendOutcomeUnknownError(
            f"the vendor refused the request with 124 (repeated submission) for {len(ids)} number(s): "
            "this request placed no call, an earlier one with the same message ids may have",
            mobileids=ids) from None
    except SmsCnError as err:  # nothing left (validation, a connection never made)
        ledger.mark_intents(account, ids, "rejected", claimant=claimant)
        raise err from None
    ledger.mark_intents(account, ids, "accepted", code=100, claimant=claimant)


def _prove(api: SendApi, uncertain: Mapping[str, tuple[str, SendIntent]], holder: str,
           out: Any) -> set[str]:
    """The uncertain ids shown to have been called (marked ``accepted``): reports, then records.

    A vendor error while looking is no proof either way: logged, and the next look tries again.
    """
    ledger, account = api.ledger, api.account_key
    reported: set[str] = set()
    try:
        reported.update(api.collect_reports(sorted(uncertain), holder))
    except SmsCnError as err:
        out.warning("Looking for delivery reports failed (%s); will look again", err)
    if reported:
        ledger.mark_intents(account, reported, "accepted")
    proven = set(reported)
    rest = {mid: item for mid, item in uncertain.items() if mid not in proven}
    if rest:
        try:
            _drain_sent_records(api)
        except SmsCnError as err:
            out.warning("Reading the sent records (ac=query) failed (%s); will look again", err)
        proven.update(ledger.prove_by_sent_records(account, rest, RECORD_SLACK_SECONDS))
    return proven


def _drain_sent_records(api: SendApi) -> None:
    """Move the vendor's sent records into the ledger (each query stores its page)."""
    for _ in range(_DRAIN_PAGES):
        if not api.query_sent_records():
            return



