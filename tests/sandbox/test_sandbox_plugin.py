"""The pytest plugin: fixtures, marker options, cheap import."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

import airflow_provider_smscn.sandbox as sandbox_package
from tests.support.sandbox_calls import DOC_PWD, send

if TYPE_CHECKING:
    from airflow_provider_smscn.sandbox import Sandbox

pytest_plugins = ["pytester"]


def test_fixture_gives_a_running_sandbox_and_a_connection(smscn_sandbox: Sandbox) -> None:
    connection = json.loads(os.environ["AIRFLOW_CONN_SMSCN_DEFAULT"])
    assert connection["conn_type"] == "smscn"
    assert connection["host"] == smscn_sandbox.url
    assert connection["extra"] == {"secret_key": "64CQMlr579J0L46U9q1qR285Risfc04G"}
    assert send(smscn_sandbox.url)["stat"] == "100"
    assert len(smscn_sandbox.calls()) == 1


@pytest.mark.smscn_sandbox(report_delay=0, auth="api_password", reply_format="txt", conn_id="sms_alt")
def test_marker_options(smscn_sandbox: Sandbox) -> None:
    connection = json.loads(os.environ["AIRFLOW_CONN_SMS_ALT"])
    assert connection["extra"] == {"api_password": DOC_PWD, "format": "txt"}
    assert "password" not in connection
    assert send(smscn_sandbox.url)["stat"] == "100"
    assert (
        requests.get(
            smscn_sandbox.url, params={"ac": "status", "uid": "test", "pwd": DOC_PWD}, timeout=5
        ).json()["total"]
        == "1"
    )  # report_delay=0 reached the sandbox


def test_session_fixture(smscn_sandbox_session: Sandbox) -> None:
    assert os.environ["AIRFLOW_CONN_SMSCN_DEFAULT"] == smscn_sandbox_session.connection_json()
    assert requests.get(smscn_sandbox_session.control_url + "health", timeout=5).json() == {"ok": True}


def test_fixture_in_a_fresh_pytest_run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AIRFLOW_CONN_SMSCN_DEFAULT", raising=False)
    pytester.makepyfile(
        """
        import json, os, urllib.request

        def test_uses_it(smscn_sandbox):
            conn = json.loads(os.environ["AIRFLOW_CONN_SMSCN_DEFAULT"])
            with urllib.request.urlopen(conn["host"].replace("/voice/", "/_control/health"), timeout=5) as r:
                assert json.load(r) == {"ok": True}

        def test_env_is_restored_afterwards():
            assert "AIRFLOW_CONN_SMSCN_DEFAULT" not in os.environ
        """
    )
    result = pytester.runpytest("-p", "no:cacheprovider", "-p", "no:asyncio")
    result.assert_outcomes(passed=2)


#: Code run in a fresh interpreter; it prints the modules it loaded but must not have: none.
LOADS_NOTHING_HEAVY = {
    "plugin-import-is-cheap": (
        "import sys, airflow_provider_smscn.sandbox.pytest_plugin\n"
        "print([m for m in ('airflow', 'http.server', 'airflow_provider_smscn.sandbox.server')"
        " if m in sys.modules])"
    ),
    "sandbox-runs-without-airflow": (
        "import sys\n"
        "from airflow_provider_smscn.sandbox import Sandbox\n"
        "import airflow_provider_smscn.sandbox.__main__\n"
        "with Sandbox() as s: pass\n"
        "print([m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')])"
    ),
}


@pytest.mark.parametrize("case", list(LOADS_NOTHING_HEAVY))
def test_loads_nothing_it_does_not_need(case: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", LOADS_NOTHING_HEAVY[case]], capture_output=True, text=True, timeout=60,
        check=True,
    )
    assert result.stdout.strip() == "[]"


def test_sandbox_conn_id_is_the_providers_default() -> None:
    # The sandbox keeps its own copy of the literal (it imports nothing from the provider): the
    # Connection its helpers fill in must be the one the hooks read by default.
    from airflow_provider_smscn import DEFAULT_CONN_ID
    from airflow_provider_smscn.sandbox import SANDBOX_CONN_ID

    assert SANDBOX_CONN_ID == DEFAULT_CONN_ID


def test_sandbox_sources_import_only_the_standard_library_and_themselves() -> None:
    package = Path(sandbox_package.__file__).parent
    allowed_outside_stdlib = {"airflow_provider_smscn.sandbox", "pytest"}  # pytest: the plugin only
    for source in sorted(package.glob("*.py")):
        tree = ast.parse(source.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top in sys.stdlib_module_names:
                    continue
                assert any(name == a or name.startswith(a + ".") for a in allowed_outside_stdlib), (
                    source,
                    name,
                )
                if name == "pytest":
                    assert source.name == "pytest_plugin.py"
