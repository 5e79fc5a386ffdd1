"""pytest plugin: the sandbox as a fixture, with an Airflow connection already pointing at it.

Registered through the ``pytest11`` entry point, so it loads in every pytest run of an environment
that has the provider installed: it imports nothing heavy (no Airflow, no server) until a test
asks for a fixture.

``smscn_sandbox`` (function scope): a started :class:`~airflow_provider_smscn.sandbox.Sandbox`,
with ``AIRFLOW_CONN_SMSCN_DEFAULT`` set (through ``monkeypatch``) to its ``connection_json()``::

    def test_my_dag(smscn_sandbox):
        run_my_dag()                       # its SmsCnHook finds smscn_default
        assert len(smscn_sandbox.calls()) == 1

Options through a marker: ``@pytest.mark.smscn_sandbox(report_delay=0, seed=1, accounts=[...],
conn_id="smscn_default", auth="secret", reply_format="json")``; the connection keywords go to
``connection_json``, the rest to ``Sandbox``.

``smscn_sandbox_session`` (session scope): one sandbox for the whole run, with
``AIRFLOW_CONN_SMSCN_DEFAULT`` set for the rest of the session once a test asked for it. Its state
carries over between tests: call ``reset()`` where that matters.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

    from airflow_provider_smscn.sandbox import Sandbox

_CONNECTION_KEYS = ("conn_id", "auth", "reply_format")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "smscn_sandbox(**options): options of the smscn_sandbox fixture (Sandbox keywords, "
        "plus conn_id, auth, reply_format for its Airflow connection)",
    )


def _split_options(options: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    connection = {k: options.pop(k) for k in _CONNECTION_KEYS if k in options}
    return options, connection


@pytest.fixture
def smscn_sandbox(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Iterator[Sandbox]:
    """A started sms.cn sandbox, and ``AIRFLOW_CONN_SMSCN_DEFAULT`` pointing at it."""
    from airflow_provider_smscn.sandbox import Sandbox

    marker = request.node.get_closest_marker("smscn_sandbox")
    options, connection = _split_options(dict(marker.kwargs) if marker else {})
    with Sandbox(**options) as sandbox:
        for name, value in sandbox.connection_env(**connection).items():
            monkeypatch.setenv(name, value)
        yield sandbox


@pytest.fixture(scope="session")
def smscn_sandbox_session() -> Iterator[Sandbox]:
    """One sandbox for the session (state shared across tests), with its connection set."""
    from airflow_provider_smscn.sandbox import Sandbox

    with pytest.MonkeyPatch.context() as patch, Sandbox() as sandbox:
        for name, value in sandbox.connection_env().items():
            patch.setenv(name, value)
        yield sandbox
