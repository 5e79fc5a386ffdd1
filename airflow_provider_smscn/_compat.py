"""Airflow 3.x names first, the 2.11 paths as fallback: the one place that knows both.

``airflow.triggers.base`` has the same path on both lines, so the trigger module imports it
directly (and only the trigger module pays for it).
"""

from __future__ import annotations

try:  # Airflow 3.x: the task SDK
    from airflow.sdk import (
        DAG,
        BaseHook,
        BaseNotifier,
        BaseOperator,
        BaseSensorOperator,
        Context,
        Param,
        PokeReturnValue,
        conf,
    )
    from airflow.sdk.exceptions import AirflowException, AirflowFailException, AirflowSkipException
    from airflow.sdk.log import mask_secret

    AIRFLOW_V_3 = True
except ImportError:  # Airflow 2.11
    from airflow import DAG  # type: ignore
    from airflow.configuration import conf  # type: ignore
    from airflow.exceptions import (  # type: ignore
        AirflowException,
        AirflowFailException,
        AirflowSkipException,
    )
    from airflow.hooks.base import BaseHook  # type: ignore
    from airflow.models import BaseOperator  # type: ignore
    from airflow.models.param import Param  # type: ignore
    from airflow.notifications.basenotifier import BaseNotifier  # type: ignore
    from airflow.sensors.base import BaseSensorOperator, PokeReturnValue  # type: ignore
    from airflow.utils.context import Context  # type: ignore
    from airflow.utils.log.secrets_masker import mask_secret  # type: ignore

    AIRFLOW_V_3 = False

__all__ = [
    "AIRFLOW_V_3",
    "DAG",
    "AirflowException",
    "AirflowFailException",
    "AirflowSkipException",
    "BaseHook",
    "BaseNotifier",
    "BaseOperator",
    "BaseSensorOperator",
    "Context",
    "Param",
    "PokeReturnValue",
    "conf",
    "get_stats",
    "mask_secret",
    "plugin_base",
]


def event_trigger_base() -> type:
    """``BaseEventTrigger`` (Airflow 3.0+), or on 2.x a stand-in whose ``run`` explains the need.

    On 2.x the event triggers still import and construct (a DAG file using them parses), and
    running one fails with a message saying Airflow 3 is needed (2.x has no asset watchers).
    """
    try:
        from airflow.triggers.base import BaseEventTrigger
    except ImportError:  # Airflow 2.11
        from airflow.triggers.base import BaseTrigger

        async def _needs_airflow_3(self):  # type: ignore[no-untyped-def]
            raise AirflowException(
                f"{type(self).__name__} needs Airflow 3.0 or later (asset watchers, event-driven "
                f"DAGs); this is Airflow 2.x")
            yield  # pragma: no cover

        class BaseEventTrigger(BaseTrigger):  # type: ignore[no-redef]
            def __init_subclass__(cls, **kwargs):  # type: ignore[no-untyped-def]
                super().__init_subclass__(**kwargs)
                cls.run = _needs_airflow_3  # type: ignore[method-assign]  # every subclass's run explains instead of running

    return BaseEventTrigger


def shared_stream_producer_base() -> type | None:
    """``SharedStreamProducer`` (Airflow 3.3+: shared streams in ack mode), else None.

    With it, an event trigger learns that Airflow stored its event before it moves past it.
    """
    try:
        from airflow.triggers.shared_stream import SharedStreamProducer
    except ImportError:  # Airflow before 3.3
        return None
    return SharedStreamProducer


def plugin_base() -> type:
    """``AirflowPlugin``: the task SDK's on 3.x (no core import in task processes), else 2.11's."""
    try:
        from airflow.sdk.plugins_manager import AirflowPlugin
    except ImportError:  # Airflow 2.11
        from airflow.plugins_manager import AirflowPlugin  # type: ignore
    return AirflowPlugin  # type: ignore[no-any-return]


def get_stats() -> object:
    """Airflow's metrics facade (``incr``, ``gauge``, ``timing``): 3.3's module, else ``Stats``."""
    try:
        from airflow.sdk.observability import stats

        return stats
    except ImportError:  # Airflow before 3.3
        from airflow.stats import Stats  # type: ignore

        return Stats


def __getattr__(name: str) -> object:
    """``task`` on demand: the decorator machinery costs ~15 ms, and only DAG files want it."""
    if name == "task":
        try:
            from airflow.sdk import task
        except ImportError:  # Airflow 2.11
            from airflow.decorators import task  # type: ignore
        return task
    raise AttributeError(name)
