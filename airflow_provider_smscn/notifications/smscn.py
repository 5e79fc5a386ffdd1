"""SmsCnVoiceNotifier: get phoned when a task or DAG fails, succeeds, or misses a deadline."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from airflow_provider_smscn._compat import BaseNotifier
from airflow_provider_smscn.hooks.mixins import DEFAULT_CONN_ID, SmsCnHookMixin

if TYPE_CHECKING:
    from collections.abc import Sequence

    from airflow_provider_smscn._compat import Context


class SmsCnVoiceNotifier(SmsCnHookMixin, BaseNotifier):
    """Place a voice call from a template, e.g. for ``on_failure_callback`` or a deadline alert.

    :param mobiles: numbers to call, a list or a comma string (templated).
    :param template_id: the voice template id (templated).
    :param variables: template variables (templated, e.g. ``{"task": "{{ ti.task_id }}"}``).
    :param smscn_conn_id: the sms.cn Connection.
    """

    template_fields: Sequence[str] = ("mobiles", "template_id", "variables", "smscn_conn_id")

    def __init__(self, *, mobiles: str | Sequence[str], template_id: str | int,
                 variables: dict[str, Any] | str, smscn_conn_id: str = DEFAULT_CONN_ID,
                 **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.mobiles = mobiles
        self.template_id = template_id
        self.variables = variables
        self.smscn_conn_id = smscn_conn_id

    def notify(self, context: Context) -> None:
        """Place the call (callbacks run this in the DAG processor or the task's process).

        A failed call raises the client's error as it is (its ``code`` and ``retriable`` kept for
        whoever logs the callback): a callback has no retries for Airflow's errors to steer.
        """
        self.hook.send_voice_code(self.mobiles, self.template_id, self.variables)

    async def async_notify(self, context: Context) -> None:
        """Place the call from the triggerer (deadline alerts) without blocking its event loop."""
        await asyncio.to_thread(self.notify, context)
