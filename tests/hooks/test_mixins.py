"""The shared base of operators, sensor and notifier: connection id default, one hook, error mapping."""

from __future__ import annotations

import pytest

from airflow_provider_smscn._compat import AirflowException, AirflowFailException
from airflow_provider_smscn.client.errors import SmsCnApiError, SmsCnTransportError, SmsCnValidationError
from airflow_provider_smscn.hooks.mixins import DEFAULT_CONN_ID, SmsCnHookMixin, to_airflow_error
from airflow_provider_smscn.hooks.smscn import SmsCnHook
from airflow_provider_smscn.notifications.smscn import SmsCnVoiceNotifier


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
