"""The ``smscn_default`` connection on a sandbox, with extra fields (timeout, retries, encoding …)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import pytest

    from airflow_provider_smscn.sandbox import Sandbox


def connection_json(box: Sandbox, auth: str = "secret", reply_format: str = "json", **extra: Any) -> str:
    """The sandbox's connection JSON with extra fields (timeout, retries, encoding …) merged in."""
    data = json.loads(box.connection_json(auth=auth, reply_format=reply_format))
    data["extra"].update(extra)
    return json.dumps(data, ensure_ascii=False)


def use_connection(monkeypatch: pytest.MonkeyPatch, box: Sandbox, auth: str = "secret",
                   reply_format: str = "json", **extra: Any) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_SMSCN_DEFAULT", connection_json(box, auth, reply_format, **extra))
