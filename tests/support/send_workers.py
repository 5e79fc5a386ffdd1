"""Worker processes of the send-operator tests: each runs the operator's ``execute`` for one task
instance, the way a worker (or a zombie worker) does. Kept small so spawned processes import little."""

from __future__ import annotations

import os
import traceback
from types import SimpleNamespace
from typing import Any

DAG_ID, TASK_ID = "smscn_twice", "send"


def task_context(run_id: str, map_index: int = -1) -> dict[str, Any]:
    """The part of the task context the send operator reads."""
    return {"ti": SimpleNamespace(dag_id=DAG_ID, task_id=TASK_ID, run_id=run_id, map_index=map_index)}


def send_operator(mobiles: list[str], **kwargs: Any) -> Any:
    from airflow_provider_smscn.operators.smscn import SmsCnSendVoiceCodeOperator

    return SmsCnSendVoiceCodeOperator(task_id=TASK_ID, mobiles=mobiles, template_id="700001",
                                      variables={"code": "5150"}, **kwargs)


def execute_send(run_id: str, mobiles: list[str], start: Any, results: Any, **kwargs: Any) -> None:
    """One execution of the task instance; puts ("ok", ids) or ("error", text) on ``results``."""
    try:
        op = send_operator(mobiles, **kwargs)
        start.wait(60)  # both executions begin together
        results.put(("ok", op.execute(task_context(run_id))))
    except BaseException:  # report everything: the parent asserts on it
        results.put(("error", traceback.format_exc()))


def crash_before_request(run_id: str, mobiles: list[str]) -> None:
    """An execution that dies (no cleanup, no exception handling) once its intents are written,
    just before the request would leave."""
    from airflow_provider_smscn.hooks.smscn import SmsCnHook

    def die(*_args: Any, **_kwargs: Any) -> None:
        os._exit(17)

    SmsCnHook.send_voice_code = die  # type: ignore[method-assign]
    send_operator(mobiles).execute(task_context(run_id))
