"""The "is this ledger shared?" rules (Airflow-free) and the check command."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from airflow_provider_smscn.ledger.checks import (
    LedgerNotSharedError,
    check_ledger,
    default_ledger_url,
    executor_names,
    require_shared,
)

DEFAULT = default_ledger_url("/opt/airflow")
REMOTE = ["CeleryExecutor", "KubernetesExecutor", "CeleryKubernetesExecutor", "LocalKubernetesExecutor",
          "airflow.providers.edge3.executors.EdgeExecutor", "my_company.executors.BatchExecutor"]


@pytest.mark.parametrize(("setting", "names"), [
    ("", ["LocalExecutor"]),
    ("LocalExecutor", ["LocalExecutor"]),
    ("CeleryExecutor", ["CeleryExecutor"]),
    (" LocalExecutor , CeleryExecutor ", ["LocalExecutor", "CeleryExecutor"]),
    ("LocalExecutor,my.module.MyExecutor:fast", ["LocalExecutor", "my.module.MyExecutor"]),
    ("fast:my.module.MyExecutor", ["my.module.MyExecutor"]),
    ("Alias:LocalExecutor", ["LocalExecutor"]),
    ("LocalExecutor;team_a=CeleryExecutor,KubernetesExecutor", ["LocalExecutor", "CeleryExecutor",
                                                               "KubernetesExecutor"]),
])
def test_executor_setting_forms_are_read(setting, names):
    assert executor_names(setting) == names


def test_the_default_file_lives_under_airflow_home():
    assert DEFAULT == "sqlite:////opt/airflow/smscn_ledger.db"


@pytest.mark.parametrize("executor", REMOTE)
def test_the_default_sqlite_file_under_a_remote_executor_is_not_shared(executor):
    verdict = check_ledger(DEFAULT, [executor], explicit=False)
    assert not verdict.shared
    text = verdict.message()
    for words in ("[smscn] ledger_url", "AIRFLOW__SMSCN__LEDGER_URL", "is not set", executor,
                  "/opt/airflow/smscn_ledger.db", "postgresql", "ledger_single_host"):
        assert words in text, words
    with pytest.raises(LedgerNotSharedError) as err:
        require_shared(verdict)
    assert not err.value.retriable


@pytest.mark.parametrize("executors", [["LocalExecutor", "CeleryExecutor"],
                                       ["CeleryExecutor", "LocalExecutor"],
                                       ["LocalExecutor", "custom.Executor"]])
def test_several_executors_of_which_one_is_remote_are_not_local(executors):
    verdict = check_ledger(DEFAULT, executors, explicit=False)
    assert not verdict.shared
    assert next(n for n in executors if n != "LocalExecutor") in verdict.message()


@pytest.mark.parametrize("executors", [["LocalExecutor"], [], ["SequentialExecutor"],
                                       ["airflow.executors.local_executor.LocalExecutor"]])
def test_a_sqlite_file_under_a_local_executor_is_shared(executors):
    verdict = check_ledger(DEFAULT, executors, explicit=False)
    assert verdict.shared
    require_shared(verdict)  # does not raise


def test_an_explicit_sqlite_file_under_celery_fails_too_and_names_the_value():
    verdict = check_ledger("sqlite:////shared/nfs/ledger.db", ["CeleryExecutor"], explicit=True)
    assert not verdict.shared
    assert "[smscn] ledger_url = sqlite:////shared/nfs/ledger.db" in verdict.message()


def test_single_host_is_a_knowing_opt_in_for_a_sqlite_file():
    verdict = check_ledger(DEFAULT, ["CeleryExecutor"], explicit=False, single_host=True)
    assert verdict.shared
    assert "ledger_single_host" in verdict.message()


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:", "sqlite:///file::memory:?cache=shared"])
def test_an_in_memory_sqlite_ledger_is_never_shared(url):
    for executors, single in ((["LocalExecutor"], False), (["CeleryExecutor"], True)):
        verdict = check_ledger(url, executors, single_host=single)
        assert not verdict.shared
        assert "in-memory" in verdict.message()


def test_a_database_server_is_shared_and_its_password_never_shown():
    url = "postgresql+psycopg2://airflow:s3cret-pw@db.internal:5432/smscn"
    verdict = check_ledger(url, ["CeleryExecutor"])
    assert verdict.shared and not verdict.warnings
    assert "s3cret-pw" not in verdict.message() and "db.internal" in verdict.message()
    failing = check_ledger("sqlite:///:memory:", ["CeleryExecutor"])
    assert "s3cret-pw" not in failing.message()


@pytest.mark.parametrize("url", ["postgresql://u:p@127.0.0.1:5432/x", "mysql+pymysql://u:p@localhost/x",
                                 "postgresql://u:p@/x?host=/var/run/postgresql"])
def test_a_loopback_server_under_a_remote_executor_is_shared_with_a_warning(url):
    verdict = check_ledger(url, ["KubernetesExecutor"])
    assert verdict.shared
    assert verdict.warnings and "same database server" in verdict.warnings[0]
    assert not check_ledger(url, ["LocalExecutor"]).warnings


def _check_command(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW__SMSCN__")}
    return subprocess.run([sys.executable, "-m", "airflow_provider_smscn.ledger.checks", *args],
                          env={**base, **env}, capture_output=True, text=True, timeout=120)


def test_the_check_command_tells_an_operator_whether_the_ledger_is_shared(tmp_path):
    home = str(tmp_path)
    split = _check_command({"AIRFLOW_HOME": home, "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"})
    assert split.returncode == 1, split.stderr
    assert "NOT shared" in split.stdout and f"{home}/smscn_ledger.db" in split.stdout
    assert "AIRFLOW__SMSCN__LEDGER_URL" in split.stdout

    vouched = _check_command({"AIRFLOW_HOME": home, "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                              "AIRFLOW__SMSCN__LEDGER_SINGLE_HOST": "True"}, "--connect")
    assert vouched.returncode == 0, vouched.stdout + vouched.stderr
    assert "connected to" in vouched.stdout
    assert (tmp_path / "smscn_ledger.db").exists()  # --connect created the tables


def test_the_check_command_reports_a_ledger_it_cannot_reach(tmp_path):
    bad = _check_command({"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                          "AIRFLOW__SMSCN__LEDGER_URL": "postgresql+psycopg2://u:pw-123456@127.0.0.1:1/x"},
                         "--connect")
    assert bad.returncode == 2, bad.stdout + bad.stderr
    assert "cannot use the ledger" in bad.stdout and "pw-123456" not in bad.stdout + bad.stderr


@pytest.mark.postgres
def test_the_check_command_connects_to_a_shared_postgresql_ledger(tmp_path, pg_url):
    ok = _check_command({"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor",
                         "AIRFLOW__SMSCN__LEDGER_URL": pg_url}, "--connect")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "is shared" in ok.stdout and "connected to" in ok.stdout
