"""The shared base of operators, sensor and notifier: connection id default, one hook, error mapping."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import airflow_provider_smscn
from airflow_provider_smscn._compat import AirflowException, AirflowFailException
from airflow_provider_smscn.client.errors import SmsCnApiError, SmsCnTransportError, SmsCnValidationError
from airflow_provider_smscn.hooks.mixins import DEFAULT_CONN_ID, SmsCnHookMixin, to_airflow_error
from airflow_provider_smscn.hooks.smscn import SmsCnHook
from airflow_provider_smscn.notifications.smscn import SmsCnVoiceNotifier
from airflow_provider_smscn.operators.smscn import (
    SmsCnBalanceCheckOperator,
    SmsCnQuerySentRecordsOperator,
    SmsCnSendVoiceCodeOperator,
)
from airflow_provider_smscn.sensors.smscn import SmsCnDeliverySensor

TASKS = {
    SmsCnSendVoiceCodeOperator: {"mobiles": "13900001111", "template_id": "700001",
                                 "variables": {"code": "1"}},
    SmsCnBalanceCheckOperator: {},
    SmsCnQuerySentRecordsOperator: {},
    SmsCnDeliverySensor: {"mobileids": ["1"], "deferrable": False},
}


class Holder(SmsCnHookMixin):
    def __init__(self, smscn_conn_id: str = DEFAULT_CONN_ID) -> None:
        self.smscn_conn_id = smscn_conn_id


def test_the_default_connection_id_is_the_hooks():
    assert SmsCnHook.default_conn_name == DEFAULT_CONN_ID == "smscn_default"


def test_the_hook_is_built_once_per_instance_for_its_connection():
    first, second = Holder("sms_a"), Holder("sms_b")
    assert first.hook is first.hook
    assert first.hook is not second.hook
    assert (first.hook.smscn_conn_id, second.hook.smscn_conn_id) == ("sms_a", "sms_b")


@pytest.mark.parametrize(
    ("error", "airflow_type"),
    [
        (SmsCnApiError.from_code(107), AirflowException),  # rate limited: Airflow may retry
        (SmsCnApiError.from_code(103), AirflowException),
        (SmsCnTransportError("connection refused"), AirflowException),
        (SmsCnApiError.from_code(101), AirflowFailException),  # wrong credentials: retrying cannot help
        (SmsCnApiError.from_code(999), AirflowFailException),
        (SmsCnValidationError("bad number"), AirflowFailException),
    ],
)
def test_errors_map_by_retriable(error, airflow_type):
    mapped = to_airflow_error(error)
    assert type(mapped) is airflow_type
    assert str(mapped) == str(error)
    with pytest.raises(airflow_type) as raised, Holder().airflow_errors():
        raise error
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_the_notifier_uses_the_shared_base(smscn_sandbox):
    notifier = SmsCnVoiceNotifier(mobiles="13900001111", template_id="700001", variables={"code": "1"})
    assert isinstance(notifier, SmsCnHookMixin) and notifier.smscn_conn_id == DEFAULT_CONN_ID
    assert notifier.hook is notifier.hook
    notifier.notify({})
    notifier.notify({})
    assert [c["mobile"] for c in smscn_sandbox.calls()] == ["13900001111", "13900001111"]


@pytest.mark.parametrize("cls", list(TASKS), ids=lambda cls: cls.__name__)
def test_operators_and_sensor_use_the_shared_base(cls):
    assert issubclass(cls, SmsCnHookMixin)
    # no copy of the hook property of their own: the mixin's, found first
    assert inspect.getattr_static(cls, "hook") is SmsCnHookMixin.__dict__["hook"]
    assert inspect.signature(cls).parameters["smscn_conn_id"].default == DEFAULT_CONN_ID
    task = cls(task_id="t", **TASKS[cls])
    assert task.smscn_conn_id == DEFAULT_CONN_ID
    other = cls(task_id="u", smscn_conn_id="sms_b", **TASKS[cls])
    assert other.hook is other.hook and other.hook.smscn_conn_id == "sms_b"


def test_reset_hook_builds_the_next_one_afresh():
    task = SmsCnBalanceCheckOperator(task_id="t", smscn_conn_id="sms_b")
    first = task.hook
    task.reset_hook()
    second = task.hook
    assert second is not first and second.smscn_conn_id == "sms_b"
    assert task.hook is second  # kept again until the next reset


def test_operators_module_still_exports_the_mapping():
    from airflow_provider_smscn.operators import smscn as operators

    assert operators.to_airflow_error is to_airflow_error


def test_the_default_connection_id_is_written_once_in_the_package():
    root = Path(airflow_provider_smscn.__file__).parent
    places = [str(path.relative_to(root)) for path in sorted(root.rglob("*.py"))
              for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
              if isinstance(node, ast.Constant) and node.value == "smscn_default"]
    # DEFAULT_CONN_ID; everything else uses the name, but the sandbox, which imports nothing from
    # the provider by design (tests/sandbox checks that), and names the same default itself
    assert places == ["__init__.py", "sandbox/__init__.py"]
