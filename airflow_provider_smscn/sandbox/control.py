"""The control API under ``/_control/``: JSON over HTTP, so other processes can steer the sandbox.

Routes (all answer JSON; errors are ``{"error": "..."}`` with 400, 404 or 405):

=======  ==========================  ===========================================================
GET      /_control/health            ``{"ok": true}``
GET      /_control/stats             see below
GET      /_control/calls             ``{"calls": [...]}``: every accepted call, in order
GET      /_control/faults            ``{"faults": [...]}``: the active faults
POST     /_control/faults            ``{"kind": ..., params, "action"?, "count"?}`` -> ``{"id": n}``
DELETE   /_control/faults            clear all faults -> ``{"cleared": n}``
DELETE   /_control/faults/<id>       clear one fault
GET      /_control/accounts          ``{"accounts": [...]}``
POST     /_control/accounts          add or update an account -> its state
GET      /_control/accounts/<uid>    an account's state (no password, no secret key)
POST     /_control/reset             back to the start state -> ``{"ok": true}``
=======  ==========================  ===========================================================

``stats``: ``{"requests": {"sendcode": n, "status": n, "number": n, "query": n, "other": n},
"status_pulls": [unix time, ...], "reports_pulled": n, "reports_pending": n, "calls_placed": n,
"faults_applied": n}``. Every request reaching ``/voice/`` is counted at arrival, whatever its
outcome (refused, faulted); ``send`` counts as ``sendcode``, unknown actions as ``other`` (present
only once seen). ``status_pulls`` holds the arrival time of every ``ac=status`` request, so tests
can check how often a waiter polls.

``calls``: ``{"uid", "mobile", "mobileid", "template", "variables", "time", "resultcode"}`` per
call, ``resultcode`` being the outcome its report will carry.
"""

from __future__ import annotations

import json
import urllib.parse
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn.sandbox.accounts import AccountConfigError
from airflow_provider_smscn.sandbox.faults import FaultError

if TYPE_CHECKING:
    from airflow_provider_smscn.sandbox.server import SandboxState

Answer = tuple[int, dict[str, Any]]


def _error(status: int, text: str) -> Answer:
    return status, {"error": text}


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        data = json.loads(body.decode("utf-8") or "{}")
    except (UnicodeDecodeError, ValueError) as exc:
        raise ValueError(f"the body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError("the body must be a JSON object")
    return data


def handle(state: SandboxState, method: str, path: str, body: bytes) -> Answer:
    """Serve one control request; never raises for a bad request, answers 4xx instead."""
    parts = [urllib.parse.unquote(p) for p in path.strip("/").split("/")[1:] if p]
    try:
        return _route(state, method, parts, body)
    except (ValueError, AccountConfigError, FaultError) as exc:
        return _error(HTTPStatus.BAD_REQUEST, str(exc))


def _route(state: SandboxState, method: str, parts: list[str], body: bytes) -> Answer:
    if not parts:
        return _error(HTTPStatus.NOT_FOUND, "see /_control/health, stats, calls, faults, accounts, reset")
    head, rest = parts[0], parts[1:]
    routes = {
        ("GET", "health"): lambda: (HTTPStatus.OK, {"ok": True}),
        ("GET", "stats"): lambda: (HTTPStatus.OK, state.stats()),
        ("GET", "calls"): lambda: (HTTPStatus.OK, {"calls": state.calls()}),
        ("POST", "reset"): lambda: _reset(state),
    }
    if not rest and (method, head) in routes:
        return routes[(method, head)]()
    if head == "faults":
        return _faults(state, method, rest, body)
    if head == "accounts":
        return _accounts(state, method, rest, body)
    if not rest and any(h == head for _, h in routes):
        return _error(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on {head}")
    return _error(HTTPStatus.NOT_FOUND, f"no control route {'/'.join(parts)!r}")


def _reset(state: SandboxState) -> Answer:
    state.reset()
    return HTTPStatus.OK, {"ok": True}


def _faults(state: SandboxState, method: str, rest: list[str], body: bytes) -> Answer:
    if not rest:
        if method == "GET":
            return HTTPStatus.OK, {"faults": state.faults.public()}
        if method == "POST":
            spec = _json_object(body)
            kind = spec.pop("kind", None)
            if not isinstance(kind, str):
                raise ValueError("a fault needs a kind")
            return HTTPStatus.OK, {"id": state.faults.add(kind, spec).id}
        if method == "DELETE":
            count = len(state.faults.public())
            state.faults.clear()
            return HTTPStatus.OK, {"cleared": count}
        return _error(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on faults")
    if len(rest) == 1 and method == "DELETE":
        try:
            fault_id = int(rest[0])
        except ValueError:
            return _error(HTTPStatus.NOT_FOUND, "fault ids are integers")
        if state.faults.remove(fault_id):
            return HTTPStatus.OK, {"cleared": 1}
        return _error(HTTPStatus.NOT_FOUND, f"no fault {fault_id}")
    return _error(HTTPStatus.NOT_FOUND, "no such fault route")


def _accounts(state: SandboxState, method: str, rest: list[str], body: bytes) -> Answer:
    if not rest:
        if method == "GET":
            with state.lock:
                uids = list(state.accounts)
            return HTTPStatus.OK, {"accounts": [state.account(uid) for uid in uids]}
        if method == "POST":
            return HTTPStatus.OK, state.set_account(_json_object(body))
        return _error(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on accounts")
    if len(rest) == 1 and method == "GET":
        account = state.account(rest[0])
        if account is None:
            return _error(HTTPStatus.NOT_FOUND, f"no account {rest[0]!r}")
        return HTTPStatus.OK, account
    return _error(HTTPStatus.NOT_FOUND, "no such account route")
