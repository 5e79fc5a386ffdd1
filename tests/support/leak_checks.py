"""Helpers of the reliability and security suites: the leak-check account on the sandbox, hooks with
fast retries, and reading what DAG runs stored (the Airflow 3.x / 2.11 differences live in
``tests/support/airflow_dags.py``).
"""

from __future__ import annotations

import json
import re
import traceback
from typing import TYPE_CHECKING, Any

from tests.support.airflow_dags import xcom_model
from tests.support.secret_scan import LEAK_ACCOUNT, SecretScan, full_numbers

if TYPE_CHECKING:
    from collections.abc import Iterable

    from airflow_provider_smscn.hooks.smscn import SmsCnHook
    from airflow_provider_smscn.sandbox import Sandbox

ACTIONS = ("sendcode", "number", "status", "query")
#: Distinct numbers used only by these suites (so a full-number scan cannot match by accident).
NUMBERS = ["13912340001", "13912340002"]
#: The one-time code the fault suite sends; it must never show in an error or a log line.
CODE = "730519"
TEMPLATE = "700001"


def leak_account(**overrides: Any) -> dict[str, Any]:
    """The distinctive leak-check account, without the sandbox's per-second rate limit (tests burst)."""
    return {**LEAK_ACCOUNT, "rate_limit_per_second": None, **overrides}


class SleepRecorder:
    """A RetryPolicy ``sleep`` that records the back-off waits instead of sleeping."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


def fast_hook(*, attempts: int = 4, timeout: float = 2.0) -> tuple[SmsCnHook, SleepRecorder]:
    """A hook on ``smscn_default`` whose retry policy records its waits instead of sleeping."""
    from airflow_provider_smscn.client import RetryPolicy
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    sleeper = SleepRecorder()
    policy = RetryPolicy(max_attempts=attempts, initial_wait=0.5, max_wait=8.0, sleep=sleeper)
    return SmsCnHook(timeout=timeout, retry=policy), sleeper


def run_action(hook: SmsCnHook, action: str) -> Any:
    """Call ``action`` through the hook (and so through the client)."""
    if action == "sendcode":
        return hook.send_voice_code(NUMBERS, TEMPLATE, {"code": CODE})
    if action == "number":
        return hook.get_balance()
    if action == "status":
        return hook.pull_delivery_reports()
    if action == "query":
        return hook.query_sent_records()
    raise AssertionError(f"unknown action {action}")


def requests_seen(box: Sandbox, action: str) -> int:
    """Requests of ``action`` the sandbox counted at arrival (whatever their outcome)."""
    return int(box.stats()["requests"].get(action, 0))


def exception_text(err: BaseException) -> str:
    """Everything a log or the UI could show of an exception and of every exception chained to it
    (even a suppressed context): message, repr, attributes. Not the traceback's source lines: they
    quote the test's own code, not data."""
    parts: list[str] = []
    seen: set[int] = set()
    current: BaseException | None = err
    pending = [err]
    while pending:
        current = pending.pop()
        if id(current) in seen:
            continue
        seen.add(id(current))
        parts += traceback.format_exception_only(type(current), current)
        parts += [repr(current), str(current)]
        parts += [repr(v) for v in vars(current).values()]
        pending += [e for e in (current.__cause__, current.__context__) if e is not None]
    return "\n".join(parts)


def assert_clean(text: str, scan: SecretScan, *, numbers: Iterable[str] = NUMBERS,
                 codes: Iterable[str] = (CODE,)) -> None:
    """No credential, no full phone number and no one-time code in ``text``."""
    assert scan.leaks(text) == [], f"secrets leaked: {scan.leaks(text)}"
    assert full_numbers(text, list(numbers)) == [], "a full phone number leaked"
    pattern = code_pattern(set(codes))
    assert not (pattern and pattern.search(text)), "the one-time code leaked"


def code_pattern(codes: set[str]) -> re.Pattern[str] | None:
    """Finds the codes as tokens of their own: not inside a longer run of digits (message ids), of
    hex (UUIDs) or after a dot (the microseconds of a timestamp)."""
    if not codes:
        return None
    return re.compile("|".join(rf"(?<![0-9A-Za-z.\-]){re.escape(c)}(?![0-9A-Za-z])" for c in sorted(codes)))


# ------------------------------------------------------------------ Airflow 3.x / 2.11 differences


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", errors="replace")
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def stored_xcom_values(session: Any, dag_ids: Iterable[str],
                       run_ids: Iterable[str]) -> list[tuple[str, str, str]]:
    """(dag_id, task_id, key and value as stored) of every XCom row of these runs."""
    model = xcom_model()
    rows = (session.query(model)
            .filter(model.dag_id.in_(list(dag_ids)), model.run_id.in_(list(run_ids))).all())
    return [(row.dag_id, row.task_id, f"{row.key}={_as_text(row.value)}") for row in rows]


def stored_rendered_fields(session: Any, dag_ids: Iterable[str],
                           run_ids: Iterable[str]) -> list[tuple[str, str, str]]:
    """(dag_id, task_id, rendered fields as JSON text) of every RTIF row of these runs."""
    from airflow.models.renderedtifields import RenderedTaskInstanceFields as Rtif

    rows = (session.query(Rtif)
            .filter(Rtif.dag_id.in_(list(dag_ids)), Rtif.run_id.in_(list(run_ids))).all())
    return [(r.dag_id, r.task_id, _as_text(r.rendered_fields) + _as_text(getattr(r, "k8s_pod_yaml", None)))
            for r in rows]
