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
    display_url,
    executor_names,
    ledger_mismatch,
    require_shared,
)
from tests.support.paths import REPO

DEFAULT = default_ledger_url("/opt/airflow")
#: docs/deployment.md shows this file: the least-privilege roles.
ROLES_SQL = REPO / "examples" / "ledger_roles.sql"
REMOTE = ["CeleryExecutor", "KubernetesExecutor", "CeleryKubernetesExecutor", "LocalKubernetesExecutor",
          "airflow.providers.edge3.executors.EdgeExecutor", "my_company.executors.BatchExecutor"]


@pytest.mark.parametrize(("setting", "names"), [
    ("", ["LocalExecutor"]),
    ("LocalExecutor", ["LocalExecutor"]),
    ("CeleryExecutor", ["CeleryExecutor"]),
    (" LocalExecutor , CeleryExecutor ", ["LocalExecutor", "CeleryExecutor"]),
    ("LocalExecutor,fast:my.module.MyExecutor", ["LocalExecutor", "my.module.MyExecutor"]),
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


@pytest.mark.postgres
def test_the_documented_least_privilege_roles_work(pg_url, tmp_path):
    """docs/deployment.md: the owner creates the tables with the check command, a role with row
    privileges only then runs every kind of ledger statement; before that, it cannot start one."""
    import uuid

    import psycopg2
    from sqlalchemy.engine import make_url

    from airflow_provider_smscn.client.models import DeliveryReport, SentRecord
    from airflow_provider_smscn.ledger import SmsCnLedger

    # The grants as docs/deployment.md shows them (it includes examples/ledger_roles.sql)
    documented_grants = [line.rstrip(";") for line in ROLES_SQL.read_text(encoding="utf-8").splitlines()
                         if line.startswith("GRANT ")]
    assert len(documented_grants) == 3
    server = make_url(pg_url)
    tag = uuid.uuid4().hex[:8]
    app, db, fresh_db = f"smscn_app_{tag}", f"smscn_priv_{tag}", f"smscn_fresh_{tag}"

    def superuser(database: str = "postgres"):  # .ci/postgres.sh trusts its local socket
        conn = psycopg2.connect(host=f"/tmp/smscn-pg-{server.port}", port=server.port, user="postgres",
                                dbname=database)
        conn.autocommit = True
        return conn

    admin = superuser()
    with admin.cursor() as cur:
        cur.execute(f"CREATE ROLE {app} LOGIN PASSWORD 'app-pw-{tag}'")
        for name in (db, fresh_db):
            cur.execute(f"CREATE DATABASE {name} OWNER {server.username}")
    owner_url = server.set(database=db).render_as_string(hide_password=False)
    app_url = server.set(username=app, password=f"app-pw-{tag}", database=db).render_as_string(
        hide_password=False)
    app_fresh_url = server.set(username=app, password=f"app-pw-{tag}", database=fresh_db).render_as_string(
        hide_password=False)
    env = {"AIRFLOW_HOME": str(tmp_path), "AIRFLOW__CORE__EXECUTOR": "CeleryExecutor"}
    ledger = SmsCnLedger(app_url)
    try:
        refused = _check_command({**env, "AIRFLOW__SMSCN__LEDGER_URL": app_fresh_url}, "--connect")
        assert refused.returncode == 2 and "permission denied" in refused.stdout.lower(), refused.stdout

        created = _check_command({**env, "AIRFLOW__SMSCN__LEDGER_URL": owner_url}, "--connect")
        assert created.returncode == 0, created.stdout + created.stderr
        grants = superuser(db)
        with grants.cursor() as cur:
            for statement in documented_grants:  # the page's own statements, for this test's role
                cur.execute(statement.replace("smscn_app", app))
        grants.close()

        account = "uid@127.0.0.1/voice"
        report = DeliveryReport(mobile="13900001111", mobileid="1001", resultcode=100, status="DELIVRD",
                                retime="2026-11-29 12:00:00")
        assert ledger.store_reports(account, [report], pull_id="p1") == 1
        assert set(ledger.get_reports(account, ["1001"])) == {"1001"}
        assert ledger.try_acquire_pull(account, "h", 5.0)
        assert ledger.claim_intents(account, "run", [("1002", "13900001112")], claimant="c") == {"1002"}
        ledger.mark_intents(account, ["1002"], "accepted", code=100)
        ledger.store_sent_records(account, [SentRecord(mobile="13900001112", sendtime="2026-11-29 12:00:01",
                                                       status=100)])
        assert ledger.count_sent_records(account) == 1
        # DELETE on every table (PostgreSQL checks the privilege even when no row is old enough)
        assert set(ledger.prune(86400)) >= {"smscn_reports", "smscn_send_intents", "smscn_sent_records"}
    finally:
        ledger.dispose()
        SmsCnLedger(owner_url).dispose()
        with admin.cursor() as cur:
            for name in (db, fresh_db):
                cur.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
            cur.execute(f"DROP ROLE IF EXISTS {app}")
        admin.close()


# -- review 9: failing cases -------------------------------------------------------------------------

def test_the_class_after_the_colon_decides_not_an_alias_that_looks_local():
    # Airflow reads ``alias:class`` (executor_loader: the second part is the core name or module
    # path); an alias that happens to be a local executor's name must not hide a remote class.
    names = executor_names("LocalExecutor:my_company.executors.RemoteExecutor")
    assert names == ["my_company.executors.RemoteExecutor"]
    assert not check_ledger(DEFAULT, names, explicit=False).shared


def test_a_password_given_in_the_url_query_is_never_shown():
    # libpq (and SQLAlchemy's psycopg2 dialect) accept ``?password=`` as well as ``user:pw@``
    url = "postgresql+psycopg2://airflow@db.internal:5432/smscn?password=s3cret-pw"
    verdict = check_ledger(url, ["CeleryExecutor"])
    assert "db.internal" in verdict.message()
    assert "s3cret-pw" not in verdict.message() and "s3cret-pw" not in verdict.url


# -- a triggerer on another host than the deferring task (LocalExecutor with a remote triggerer) ----

def test_two_ledgers_are_told_apart_by_their_ids_not_their_paths(tmp_path):
    """Each host's default file sits at the same path; a symlinked AIRFLOW_HOME is one file under
    two paths. The ids decide: a new file is a new ledger, a second path to one file is not."""
    from airflow_provider_smscn.ledger import SmsCnLedger

    (tmp_path / "host_a").mkdir()
    (tmp_path / "host_b").mkdir()
    (tmp_path / "link_to_a").symlink_to(tmp_path / "host_a")
    a = SmsCnLedger(f"sqlite:///{tmp_path}/host_a/smscn_ledger.db").ledger_id()
    b = SmsCnLedger(f"sqlite:///{tmp_path}/host_b/smscn_ledger.db").ledger_id()
    a_via_link = SmsCnLedger(f"sqlite:///{tmp_path}/link_to_a/smscn_ledger.db").ledger_id()
    assert a != b and a == a_via_link
    assert ledger_mismatch(a, a_via_link, "sqlite:///...") is None
    text = ledger_mismatch(a, b, "sqlite:////opt/airflow/smscn_ledger.db")
    assert "AIRFLOW__SMSCN__LEDGER_URL" in text and "[smscn] ledger_url" in text
    assert "ledger_single_host" not in text  # one host vouched for would not make two files one


def test_a_sqlcipher_passphrase_never_reaches_the_verdict():
    url = "sqlite+pysqlcipher://:S3cretPass@//tmp/x.db"
    verdict = check_ledger(url, ["CeleryExecutor"], explicit=True)
    assert not verdict.shared and "/tmp/x.db" in verdict.message()
    assert "S3cretPass" not in verdict.message()
    assert "S3cretPass" not in display_url("postgresql://u@db/smscn?sslkey=/k&private_key=S3cretPass")
