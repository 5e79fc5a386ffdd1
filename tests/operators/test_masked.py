"""The masked field holder, without Airflow: what every view shows, and what execute gets."""

from __future__ import annotations

import copy
import json

from airflow_provider_smscn.operators.masked import NUMBERS, SECRET, Masked, MaskedField, unmasked


class Op:
    mobiles = MaskedField(NUMBERS)
    variables = MaskedField(SECRET)


class FakeXComArg:
    def iter_references(self):  # the ResolveMixin protocol Airflow looks for
        return iter(())


def test_every_assignment_is_held_masked_and_execute_gets_the_real_value():
    op = Op()
    op.mobiles = "13900008888, 13900008889"
    op.variables = {"code": "271828"}
    assert isinstance(op.mobiles, Masked) and isinstance(op.variables, Masked)
    assert unmasked(op.mobiles) == "13900008888, 13900008889"
    assert unmasked(op.variables) == {"code": "271828"}
    views = [str(op.mobiles), repr(op.mobiles), json.dumps(op.mobiles.serialize()),
             str(op.variables), repr(op.variables), json.dumps(op.variables.serialize())]
    text = " ".join(views)
    assert "8888" in text and "13900008888" not in text and "271828" not in text
    assert op.variables.serialize() == {"code": "***"}


def test_lists_templates_and_rendering_in_place():
    op = Op()
    op.mobiles = ["13900008888", "{{ params.n }}"]
    assert op.mobiles.serialize() == ["139****8888", "{{ params.n }}"]  # template text stays readable
    run = copy.copy(op)  # Airflow's prepare_for_execution: a shallow copy of the DAG's operator
    held = run.mobiles
    held.value = ["13900007777"]  # what Airflow's nested rendering does (setattr on template_fields)
    run.mobiles = held  # and then setattr on the operator: kept, not wrapped twice
    assert unmasked(run.mobiles) == ["13900007777"] and str(run.mobiles) == '["139****7777"]'
    assert unmasked(op.mobiles) == ["13900008888", "{{ params.n }}"]  # the DAG's template is intact
    assert copy.deepcopy(run.mobiles).value == ["13900007777"]


def test_an_xcomarg_stays_bare_until_rendered_and_empty_values_are_falsy():
    op = Op()
    arg = FakeXComArg()
    op.mobiles = arg
    assert op.mobiles is arg  # Airflow must see it to set the dependency and resolve it
    op.mobiles = ["13900008888"]
    assert isinstance(op.mobiles, Masked)
    op.variables = None
    assert not op.variables and op.variables.serialize() is None
