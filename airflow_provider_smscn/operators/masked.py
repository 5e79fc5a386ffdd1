"""Templated fields that never show a phone number or a one-time code, whichever way Airflow renders.

Why not an override of ``render_template_fields``: Airflow does not call it for mapped operators
(``.partial().expand()``), which build a fresh operator and render it through other methods. What
every path does (Airflow 2.11 and 3.x, plain and mapped) is read the field with ``getattr``, render
inside any object that has ``template_fields``, write the result back with ``setattr``, and, to
store or show it, serialize the value: its ``serialize()`` on 3.x, ``str()`` on 2.11 (a value that
is not JSON). So the field holds a :class:`Masked`: Airflow renders its ``value`` (in a fresh copy
each read hands out), every
view of it is masked, and only the operator's ``execute`` reads the real value. A
:class:`MaskedField` descriptor wraps whatever is assigned to the attribute (in ``__init__``, by
Airflow's ``setattr``, or by user code), so no path can put a bare value back.

Airflow-free: nothing here imports Airflow.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from airflow_provider_smscn.client.redact import mask_mobile

__all__ = ["Masked", "MaskedField", "masked_view", "unmasked"]

NUMBERS, SECRET = "numbers", "secret"
# A run of digits long enough to be a phone number (a template's text stays readable).
_NUMBER_RUN = re.compile(r"\d{7,}")


def masked_view(value: Any, kind: str) -> Any:
    """JSON data as the UI may show it: numbers ``139****8888``, one-time values ``***``."""
    if value is None:
        return None
    if kind == NUMBERS:
        if isinstance(value, str):
            return _NUMBER_RUN.sub(lambda m: mask_mobile(m.group()), value)
        if isinstance(value, (list, tuple, set)):
            return [masked_view(v, kind) for v in value]
        return masked_view(str(value), kind)
    if isinstance(value, dict):
        return {str(key): "***" for key in value}
    return "***" if value else value


class Masked:
    """A field value Airflow renders in place (``template_fields``) but only ever shows masked."""

    template_fields = ("value",)

    def __init__(self, value: Any, kind: str) -> None:
        self.value = value
        self.kind = kind

    def serialize(self) -> Any:
        """What Airflow 3 stores as the rendered field (and in the serialized DAG)."""
        return masked_view(self.value, self.kind)

    def __str__(self) -> str:  # what Airflow 2.11 stores, and what a log line shows
        view = self.serialize()
        return view if isinstance(view, str) else json.dumps(view, ensure_ascii=False)

    def __repr__(self) -> str:
        return repr(self.serialize())

    def __bool__(self) -> bool:
        return bool(self.value)


def unmasked(value: Any) -> Any:
    """The real value behind a field (for ``execute`` only)."""
    return value.value if isinstance(value, Masked) else value


def _references(value: Any) -> bool:
    """Whether Airflow must still resolve something in ``value`` (an XComArg): left bare, so
    Airflow sees the dependency; it is wrapped when the rendered result is written back."""
    if hasattr(value, "iter_references"):
        return True
    if isinstance(value, (list, tuple, set)):
        return any(_references(v) for v in value)
    if isinstance(value, dict):
        return any(_references(v) for v in value.values())
    return False


class MaskedField:
    """Class attribute of an operator: every value assigned to the field is held in a :class:`Masked`."""

    def __init__(self, kind: str) -> None:
        if kind not in (NUMBERS, SECRET):
            raise ValueError(f"kind must be {NUMBERS!r} or {SECRET!r}")
        self.kind = kind
        self.name = ""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        """A fresh holder per read: Airflow renders inside what it reads, and its copy of the
        operator for execution is shallow (``copy.copy``), so rendering in place would otherwise
        overwrite the DAG's own template (a second run would not render it again)."""
        if obj is None:
            return self
        try:
            held = obj.__dict__[self.name]
        except KeyError:
            raise AttributeError(self.name) from None
        return copy.copy(held) if isinstance(held, Masked) else held

    def __set__(self, obj: Any, value: Any) -> None:
        if not isinstance(value, Masked) and not _references(value):
            value = Masked(value, self.kind)
        obj.__dict__[self.name] = value
