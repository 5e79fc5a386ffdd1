"""Generate the tables and code of the docs from the code, so the pages cannot drift.

Every block between ``<!-- BEGIN generated: KIND ARGS -->`` and ``<!-- END generated -->`` in
README.md and docs/*.md is rendered from the code:

=================================  ============================================================
``params MODULE.Class``            the ``__init__`` parameters: name, type and default from the
                                   signature, meaning from the class docstring's ``:param:``
                                   lines (a parameter without one, or a ``:param:`` naming no
                                   parameter, is an error)
``members MODULE.Class``           the public methods and properties defined on the class:
                                   signature, return type, first paragraph of the docstring
``cli MODULE.function``            the options of the argparse parser the function builds, a table
                                   per argument group (an option without ``help`` is an error)
``extras``                         the Connection extras (``client.options.OPTIONS``)
``config``                         the ``[smscn]`` settings (``get_provider_info()["config"]``)
``stat-codes``                     every ``stat`` code: meaning, exception, retriable, back-off
``result-codes``                   delivery report result codes
``error-classes``                  the exception family
``airflow-errors``                 what each error does in Airflow, measured by running the
                                   balance check and send operators, the delivery sensor (poke
                                   mode) and a deferrable sensor's trigger in an event loop
``delivery-event``                 the payload of a delivery event, made by ``events.delivery``
                                   from reports stored in a throwaway ledger
``ledger-check EXECUTOR [URL]``     what the ledger check says for that executor and ledger URL
                                   (without URL: the default SQLite file)
``example PATH [REGION]``          a file the tests run (``dags_examples/``, ``examples/``), whole
                                   or the lines between ``# [START REGION]`` and ``# [END
                                   REGION]`` (less the marker lines of regions inside it)
=================================  ============================================================

Usage, from the repository root in the Airflow 3 virtualenv (after any change of a signature, a
docstring, the code table, an extra or an example):

    python docs/gen_docs.py --write    # rewrite every generated block
    python docs/gen_docs.py --check    # exit 1, naming the stale pages, if any block is out of date
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import inspect
import os
import re
import sys
import textwrap
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any
from unittest import mock

if TYPE_CHECKING:
    from collections.abc import Iterator

REPO = Path(__file__).resolve().parents[1]
BEGIN = re.compile(r"<!-- BEGIN generated: (?P<spec>[^>]*?) -->\n.*?<!-- END generated -->", re.S)
PAGES = ("README.md", "docs/*.md")


class DocsError(Exception):
    """The code cannot be documented as it stands (e.g. a parameter without ``:param:``)."""


# ---------------------------------------------------------------------------------------- helpers


def _resolve(dotted: str) -> Any:
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def _rst(text: str) -> str:
    """Docstring reST to Markdown: ``x`` and :role:`~.x` to `x`; table pipes escaped."""
    text = re.sub(r":[a-z]+:`~?\.?([^`]+)`", lambda m: f"`{m.group(1).rsplit('.', 1)[-1]}`", text)
    text = text.replace("``", "`")
    return " ".join(text.split()).replace("|", "\\|")


def _code(text: str) -> str:
    return "`" + text.replace("|", "\\|") + "`"


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _first_paragraph(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return _rst(doc.split("\n\n")[0])


def _param_docs(cls: type) -> dict[str, str]:
    """``{name: meaning}`` from the ``:param name:`` fields of the class docstring."""
    docs: dict[str, str] = {}
    current: str | None = None
    for line in (inspect.getdoc(cls) or "").splitlines():
        field = re.match(r":(param|return|raises)\s*([A-Za-z_0-9]*):\s*(.*)", line.strip())
        if field:
            current = field.group(2) if field.group(1) == "param" else None
            if current:
                docs[current] = field.group(3)
        elif current and line.strip() and line.startswith((" ", "\t")):
            docs[current] += " " + line.strip()
        else:
            current = None
    return {name: _rst(text) for name, text in docs.items()}


def _default(value: Any) -> str:
    if isinstance(value, dataclasses.Field):  # a dataclass field's default_factory
        return _code(repr(value.default_factory()))  # type: ignore[misc]
    if value is inspect.Parameter.empty:
        return "required"
    if callable(value):
        return _code(f"{value.__module__}.{value.__qualname__}")
    return _code(repr(value))


def _airflow_base(cls: type) -> str:
    for base in cls.__mro__[1:]:
        if base.__module__.split(".")[0] == "airflow" and not base.__name__.startswith("_"):
            return f"`{base.__name__}` arguments"
    return "passed on"


# ------------------------------------------------------------------------------------------ kinds


def params(dotted: str) -> str:
    cls = _resolve(dotted)
    signature = inspect.signature(cls.__init__)
    docs = _param_docs(cls)
    names = [n for n, p in signature.parameters.items() if n != "self"
             and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
    missing = [n for n in names if n not in docs]
    extra = [n for n in docs if n not in names]
    if missing or extra:
        raise DocsError(f"{dotted}: parameters without ':param:' {missing}, "
                        f"':param:' of no parameter {extra}")
    factories = {f.name: f for f in dataclasses.fields(cls)
                 if f.default_factory is not dataclasses.MISSING} if dataclasses.is_dataclass(cls) else {}
    lines = ["| name | type | default | meaning |", "|---|---|---|---|"]
    for name, param in signature.parameters.items():
        if name == "self":
            continue
        if param.kind is param.VAR_KEYWORD:
            lines.append(f"| `**{name}` | | | {_airflow_base(cls)} |")
            continue
        annotation = "" if param.annotation is param.empty else _code(str(param.annotation))
        default = factories.get(name, param.default)
        lines.append(f"| `{name}` | {annotation} | {_default(default)} | {docs[name]} |")
    return "\n".join(lines)


def members(dotted: str) -> str:
    cls = _resolve(dotted)
    lines = ["| member | returns | what it does |", "|---|---|---|"]
    for name, attr in vars(cls).items():
        if name.startswith("_"):
            continue
        if isinstance(attr, (property, cached_property)):
            func: Any = attr.fget if isinstance(attr, property) else attr.func
            shown, kind = f"`{name}`", " (cached)" if isinstance(attr, cached_property) else ""
            shown += kind
        elif isinstance(attr, (classmethod, staticmethod)) or inspect.isfunction(attr):
            func = attr.__func__ if isinstance(attr, (classmethod, staticmethod)) else attr
            sig = inspect.signature(func)
            args = [p.replace(annotation=p.empty) for n, p in sig.parameters.items()
                    if n not in ("self", "cls")]
            shown = _code(f"{name}({', '.join(str(a) for a in args)})")
        else:
            continue
        if not inspect.getdoc(func):
            raise DocsError(f"{dotted}.{name} has no docstring")
        returns = inspect.signature(func).return_annotation
        returned = "" if returns is inspect.Signature.empty else _code(str(returns))
        lines.append(f"| {shown} | {returned} | {_first_paragraph(func)} |")
    return "\n".join(lines)


def cli(dotted: str) -> str:
    """The options of the parser ``dotted()`` returns, one table per argument group."""
    parser = _resolve(dotted)()
    out: list[str] = []
    for group in parser._action_groups:
        actions = [a for a in group._group_actions if a.option_strings and a.help != argparse.SUPPRESS
                   and not isinstance(a, argparse._HelpAction)]
        if not actions:
            continue
        out += [f"{group.title.capitalize()}:", "", "| option | default | meaning |", "|---|---|---|"]
        for action in actions:
            if not action.help:
                raise DocsError(f"{dotted}: {action.option_strings[0]} has no help")
            flag = max(action.option_strings, key=len)
            if action.nargs != 0:
                flag += f" {action.metavar or action.dest.upper()}"
            if action.nargs == 0:
                default = "off"
            else:
                default = "—" if action.default is None else _code(str(action.default))
            out.append(f"| {_code(flag)} | {default} | {_rst(action.help)} |")
        out.append("")
    return "\n".join(out).rstrip()


def extras() -> str:
    from airflow_provider_smscn.client.options import OPTIONS

    lines = ["| extra | form label | type | default | client keyword | meaning |",
             "|---|---|---|---|---|---|"]
    for option in OPTIONS:
        kind = "bool or CA bundle path" if option.kind is bool else option.kind.__name__
        choices = f" One of {', '.join(f'`{c}`' for c in option.choices)}." if option.choices else ""
        secret = " Secret: masked in the form and registered with the secret masker." if option.secret else ""
        default = "—" if option.default is None else _code(repr(option.default))
        keyword = f"`{option.argument}`" if option.argument else "(hook)"
        lines.append(f"| `{option.name}` | {option.label} | {kind} | {default} | {keyword} "
                     f"| {_rst(option.description)}{choices}{secret} |")
    return "\n".join(lines)


def config() -> str:
    from airflow_provider_smscn.get_provider_info import get_provider_info

    options = get_provider_info()["config"]["smscn"]["options"]
    lines = ["| option | environment variable | default | meaning |", "|---|---|---|---|"]
    for name, spec in options.items():
        default = _code(spec["default"]) if spec["default"] else "empty"
        variable = f"AIRFLOW__SMSCN__{name.upper()}"
        lines.append(f"| `{name}` | `{variable}` | {default} | {_rst(spec['description'])} |")
    return "\n".join(lines)


def stat_codes() -> str:
    from airflow_provider_smscn.client.codes import STAT_CODES
    from airflow_provider_smscn.client.errors import SmsCnApiError

    lines = ["| `stat` | meaning | in the vendor's document | exception | `retriable` "
             "| client retries it with back-off |", "|---|---|---|---|---|---|"]
    for code in sorted(STAT_CODES):
        info = STAT_CODES[code]
        if code == 100:
            lines.append(f"| {code} | {info.meaning} | yes | (none: the call succeeded) | | |")
            continue
        error = SmsCnApiError.from_code(code)
        lines.append(f"| {code} | {info.meaning} | {_yes(info.documented)} | `{type(error).__name__}` "
                     f"| {_yes(error.retriable)} | {_yes(info.backoff)} |")
    unknown = SmsCnApiError.from_code(999)
    lines.append(f"| any other | {unknown.meaning.replace('999', 'N')} | no | `{type(unknown).__name__}` "
                 f"| {_yes(unknown.retriable)} | no |")
    return "\n".join(lines)


def result_codes() -> str:
    from airflow_provider_smscn.client.codes import RESULT_CODES

    lines = ["| `resultcode` | meaning | `DeliveryReport.delivered` |", "|---|---|---|"]
    lines += [f"| {code} | {RESULT_CODES[code]} | {_yes(code == 100)} |" for code in sorted(RESULT_CODES)]
    lines.append("| any other | unknown result code N | no |")
    return "\n".join(lines)


def error_classes() -> str:
    from airflow_provider_smscn.client import errors
    from airflow_provider_smscn.client.codes import STAT_CODES

    classes = [obj for _, obj in inspect.getmembers(errors, inspect.isclass)
               if issubclass(obj, errors.SmsCnError) and obj.__module__ == errors.__name__]
    classes.sort(key=lambda c: ([b.__name__ for b in reversed(c.__mro__)], c.__name__))
    codes: dict[type, list[str]] = {}  # the class each code raises, from the code table itself
    for code in sorted(STAT_CODES):
        if code != 100:
            codes.setdefault(type(errors.SmsCnApiError.from_code(code)), []).append(str(code))
    codes.setdefault(errors.SmsCnUnknownCodeError, []).append("any other")
    lines = ["| exception | base | `stat` codes | `retriable` (class default) | raised when |",
             "|---|---|---|---|---|"]
    for cls in classes:
        base = ", ".join(f"`{b.__name__}`" for b in cls.__bases__)
        if cls is errors.SmsCnUnknownCodeError:
            retriable = "no"
        elif issubclass(cls, errors.SmsCnApiError):
            retriable = "per code (table above)"
        else:
            retriable = _yes(bool(cls.retriable))
        lines.append(f"| `{cls.__name__}` | {base} | {', '.join(codes.get(cls, ['—']))} | {retriable} "
                     f"| {_first_paragraph(cls)} |")
    return "\n".join(lines)


def delivery_event() -> str:
    """The payload of one ``SmsCnDeliveryEventTrigger`` event, made by the watcher's own code.

    Three reports land in a ledger (one delivered, two not; two of the calls sent by a DAG's send
    task), and the event code reads its next batch from there.
    """
    import json
    import tempfile

    from airflow_provider_smscn.client.models import DeliveryReport
    from airflow_provider_smscn.delivery import ReportSource, Spool
    from airflow_provider_smscn.events.delivery import DeliveryWatch, next_batch
    from airflow_provider_smscn.ledger import SmsCnLedger

    account = "test@api.sms.cn/voice"
    sent_by = "smscn_trigger_form|send_voice_code|manual__2026-01-05T08:00:00+00:00"
    reports = [DeliveryReport("13900000100", "58417664310780471880", 100, "DELIVRD", "2026-01-05 16:00:21"),
               DeliveryReport("13900000131", "58417664310780471881", 131, "MN:0001", "2026-01-05 16:00:23"),
               DeliveryReport("13900000133", "32000000000000000001", 133, "MN:0054", "2026-01-05 16:00:24")]
    with tempfile.TemporaryDirectory() as tmp:
        ledger = SmsCnLedger(f"sqlite:///{tmp}/ledger.db")
        ledger.record_intents(account, sent_by, [(r.mobileid, r.mobile) for r in reports[:2]])
        ledger.store_reports(account, reports)
        source = ReportSource(ledger=ledger, account=account, pull=list, pull_interval=5.0,
                              spool=Spool(tmp, "docs"))
        payload, _ = next_batch(source, DeliveryWatch(account, name="undelivered_retry", start="earliest"),
                                holder="docs")
        ledger.dispose()
    return f"```json\n{json.dumps(payload, indent=2, ensure_ascii=False)}\n```"


def ledger_check(executor: str, url: str | None = None) -> str:
    """What the ledger check says (task log, ``python -m ...ledger.checks``) for this set-up.

    Without ``url``: the default ledger of an ``AIRFLOW_HOME`` of ``/opt/airflow`` (the official
    image's), ``[smscn] ledger_url`` not set.
    """
    from airflow_provider_smscn.ledger.checks import check_ledger, default_ledger_url, executor_names

    verdict = check_ledger(url or default_ledger_url("/opt/airflow"), executor_names(executor),
                           explicit=url is not None)
    lines = [textwrap.fill(line, 100, break_long_words=False, break_on_hyphens=False)
             for line in verdict.message().splitlines()]
    return "```text\n" + "\n".join(lines) + "\n```"


class _FailingHook:
    """Stands in for SmsCnHook: every call raises ``error`` (the docs record what Airflow then does)."""

    def __init__(self, error: Exception) -> None:
        self.error = error
        self.failures = 0

    def __getattr__(self, name: str) -> Any:
        def fail(*args: Any, **kwargs: Any) -> Any:
            self.failures += 1
            raise self.error

        return fail


class _SendHook:
    """Stands in for SmsCnHook under the send operator: a real ledger, a send that raises ``error``.

    An error of the ledger's set-up (a ledger that is not shared) is raised where the hook raises
    it: on reading ``ledger``.
    """

    def __init__(self, error: Exception, ledger: Any) -> None:
        from airflow_provider_smscn.ledger.checks import LedgerNotSharedError

        self.error, self._ledger = error, ledger
        self.account_key = "docs"
        self.client = mock.Mock(max_numbers_per_request=1000)
        self._ledger_fails = isinstance(error, LedgerNotSharedError)

    @property
    def ledger(self) -> Any:
        if self._ledger_fails:
            raise self.error
        return self._ledger

    def send_voice_code(self, *args: Any, **kwargs: Any) -> Any:
        raise self.error


class _EmptyHook:
    """Stands in for SmsCnHook in the worker: no report is in yet, so a deferrable sensor defers.

    Its ledger has no id: the trigger skips the ledger comparison (as for a trigger deferred by
    0.1.0), so the table shows how the error itself is handled.
    """

    ledger = mock.Mock(ledger_id=lambda: None)

    def collect_reports(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        return {}


def _outcome(run: Any) -> str:
    from airflow_provider_smscn._compat import AirflowFailException

    try:
        result = run()
    except AirflowFailException as exc:
        return f"fails at once, no retries (`{type(exc).__name__}`)"
    except Exception as exc:
        return f"fails; Airflow retries it per `retries` (`{type(exc).__name__}`)"
    return "keeps waiting (a warning is logged)" if result is False else f"returns {result!r}"


#: Failed looks after which a trigger that has not fired counts as waiting on (no clock involved;
#: a refusal ends the wait after two: with the Connection as it was, then read afresh).
_LOOKS_WHILE_WAITING = 6


def _deferred_outcome(error: Exception) -> str:
    """Run the deferrable sensor: it defers, its trigger meets ``error`` in the triggerer."""
    import asyncio

    from airflow.sdk.exceptions import TaskDeferred  # the docs are generated on Airflow 3

    from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor
    from airflow_provider_smscn.triggers.smscn import forget_hook

    sensor: Any = SmsCnDeliverySensor(task_id="docs", mobileids=["1"], deferrable=True, poke_interval=0.001)
    sensor.hook = _EmptyHook()
    try:
        sensor.execute({})
    except TaskDeferred as deferred:
        trigger = deferred.trigger
    else:
        return "returns before deferring"
    hook = _FailingHook(error)

    async def first_event() -> Any:
        events = trigger.run()
        nxt = asyncio.ensure_future(events.__anext__())
        while not nxt.done() and hook.failures < _LOOKS_WHILE_WAITING:
            await asyncio.sleep(0.001)
        if not nxt.done():
            nxt.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await nxt
            await events.aclose()
            return None
        return nxt.result()

    with mock.patch("airflow_provider_smscn.hooks.smscn.SmsCnHook", lambda *args, **kwargs: hook):
        forget_hook(trigger.smscn_conn_id)
        try:
            event = asyncio.run(first_event())
        finally:
            forget_hook(trigger.smscn_conn_id)
    if event is None:
        return "keeps waiting in the triggerer (a warning is logged)"
    return _outcome(lambda: sensor.execute_complete({}, event.payload))


def _send_outcome(error: Exception, ledger: Any, n: int) -> str:
    """Run the send operator once (a fresh run id) with a send that raises ``error``."""
    from airflow_provider_smscn.operators.smscn import SmsCnSendVoiceCodeOperator

    operator: Any = SmsCnSendVoiceCodeOperator(task_id="docs", mobiles=["13900008888"], template_id="700001",
                                               variables={"code": "1234"}, proof_timeout=0)
    operator.hook = _SendHook(error, ledger)
    ti = mock.Mock(dag_id="docs", task_id="docs", run_id=f"docs_{n}", map_index=-1)
    return _outcome(lambda: operator.execute({"ti": ti}))


def airflow_errors() -> str:
    import tempfile

    from airflow_provider_smscn.client.codes import STAT_CODES
    from airflow_provider_smscn.client.errors import (
        SmsCnApiError,
        SmsCnResponseError,
        SmsCnSendOutcomeUnknownError,
        SmsCnTransportError,
    )
    from airflow_provider_smscn.hooks.smscn import SmsCnLedgerNotSharedFailure
    from airflow_provider_smscn.ledger import SmsCnLedger
    from airflow_provider_smscn.operators.smscn import SmsCnBalanceCheckOperator
    from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor

    cases: list[tuple[str, Any]] = [(str(code), SmsCnApiError.from_code(code))
                                          for code in sorted(STAT_CODES) if code != 100]
    cases += [("any other code", SmsCnApiError.from_code(999)),
              ("network error, HTTP 5xx (after the client's retries)", SmsCnTransportError("docs")),
              ("HTTP 3xx / 4xx (not 408, 429)", _not_retriable(SmsCnTransportError("docs"))),
              ("unreadable reply", SmsCnResponseError("docs")),
              ("a send's outcome unknown (timeout or reset after the request went out)",
               SmsCnSendOutcomeUnknownError("docs", mobileids=["1"])),
              ("the ledger is not shared (`ledger.checks`)", SmsCnLedgerNotSharedFailure("docs"))]
    lines = ["| error | exception | `retriable` | balance and records operators | send operator "
             "| sensor (poke, reschedule) | sensor, deferrable (met in the triggerer) |",
             "|---|---|---|---|---|---|---|"]
    with _quiet(), tempfile.TemporaryDirectory() as tmp:
        ledger = SmsCnLedger(f"sqlite:///{tmp}/ledger.db")
        for n, (label, error) in enumerate(cases):
            # Patched on the class too: after a refusal the sensor drops its hook to read the
            # Connection afresh, and that fresh hook must fail the same way (not miss a Connection).
            with mock.patch("airflow_provider_smscn.hooks.smscn.SmsCnHook",
                            lambda *args, error=error, **kwargs: _FailingHook(error)):
                operator: Any = SmsCnBalanceCheckOperator(task_id="docs")
                operator.hook = _FailingHook(error)
                sensor: Any = SmsCnDeliverySensor(task_id="docs", mobileids=["1"], deferrable=False)
                sensor.hook = _FailingHook(error)
                poked = _outcome(lambda s=sensor: s.poke({}))
                executed = _outcome(lambda op=operator: op.execute({}))
            lines.append(f"| {label} | `{type(error).__name__}` | {_yes(error.retriable)} "
                         f"| {executed} | {_send_outcome(error, ledger, n)} "
                         f"| {poked} | {_deferred_outcome(error)} |")
        ledger.dispose()
    return "\n".join(lines)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence the task logs of the measured runs (Airflow 3 logs through structlog to fd 1/2)."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    with open(os.devnull, "w") as devnull:
        os.dup2(devnull.fileno(), 1)
        os.dup2(devnull.fileno(), 2)
        try:
            yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            for fd in saved:
                os.close(fd)


def _not_retriable(error: Exception) -> Exception:
    error.retriable = False  # type: ignore[attr-defined]
    return error


#: The language of a shown file, by its suffix.
LANGUAGES = {".py": "python", ".json": "json", ".sh": "bash", ".sql": "sql"}
_MARKER = re.compile(r"^[ \t]*# \[(START|END) [^\]]+\]\n", re.M)


def example(path: str, region: str | None = None, *, page: Path = REPO / "docs" / "x.md") -> str:
    text = (REPO / path).read_text(encoding="utf-8")
    if region:
        name = re.escape(region)
        match = re.search(rf"^[ \t]*# \[START {name}\]\n(.*?)^[ \t]*# \[END {name}\]", text, re.S | re.M)
        if match is None:
            raise DocsError(f"{path} has no region {region!r}")
        text = textwrap.dedent(_MARKER.sub("", match.group(1)))  # regions inside it are not shown
    language = LANGUAGES.get(Path(path).suffix)
    if language is None:
        raise DocsError(f"{path}: no language for {Path(path).suffix!r} files (LANGUAGES)")
    source = f"{path}" + (f" ({region})" if region else "")
    link = os.path.relpath(REPO / path, page.parent)
    return f"From [`{source}`]({link}), which the tests run:\n\n```{language}\n{text.rstrip()}\n```"


KINDS: dict[str, Any] = {"params": params, "members": members, "extras": extras, "config": config,
         "stat-codes": stat_codes, "result-codes": result_codes, "error-classes": error_classes,
         "airflow-errors": airflow_errors, "delivery-event": delivery_event, "ledger-check": ledger_check,
         "example": example, "cli": cli}


# -------------------------------------------------------------------------------------- the pages


def render_block(spec: str, page: Path = REPO / "docs" / "x.md") -> str:
    kind, *args = spec.split()
    if kind not in KINDS:
        raise DocsError(f"unknown generated block kind {kind!r}")
    body = example(*args, page=page) if kind == "example" else KINDS[kind](*args)
    return f"<!-- BEGIN generated: {spec} -->\n{body}\n<!-- END generated -->"


def render_page(text: str, page: Path = REPO / "docs" / "x.md") -> str:
    return BEGIN.sub(lambda m: render_block(m.group("spec"), page), text)


def pages(root: Path = REPO) -> list[Path]:
    return sorted({p for pattern in PAGES for p in root.glob(pattern)})


def stale_pages(root: Path = REPO) -> list[Path]:
    """Pages whose generated blocks differ from what the code gives now."""
    return [page for page in pages(root)
            if render_page(text := page.read_text(encoding="utf-8"), page) != text]


def write(root: Path = REPO) -> list[Path]:
    changed = []
    for page in pages(root):
        text = page.read_text(encoding="utf-8")
        updated = render_page(text, page)
        if updated != text:
            page.write_text(updated, encoding="utf-8")
            changed.append(page)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    group = parser.add_mutually_exclusive_group(required=True)
    group.add_argument("--write", action="store_true", help="rewrite every generated block")
    group.add_argument("--check", action="store_true", help="fail if a generated block is stale")
    args = parser.parse_args(argv)
    try:
        if args.check:
            stale = stale_pages()
            for page in stale:
                print(f"{page.relative_to(REPO)} is out of date: run python docs/gen_docs.py --write",
                      file=sys.stderr)
            return 1 if stale else 0
        for page in write():
            print(f"updated {page.relative_to(REPO)}")
    except DocsError as err:
        print(f"docs/gen_docs.py: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    with contextlib.suppress(BrokenPipeError):
        sys.exit(main())
