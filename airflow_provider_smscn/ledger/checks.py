"""Is this ledger shared by every process that may run a task or a trigger? The rules, Airflow-free.

Why it exists: sms.cn hands each delivery report out once. A waiter that pulls stores every report
it got in the ledger, and the others find theirs there. If two hosts each use a ledger of their own
(the default SQLite file under each host's ``AIRFLOW_HOME``), a report pulled on host B is gone
for host A forever, and a retry on host B does not see host A's send intents, so it calls the
same numbers again. Nothing would fail loudly: so the first ledger use fails instead, at once.

The rules (:func:`check_ledger`):

* A SQLite ledger lives in one file on one host. It is shared only when every executor of the
  deployment runs its tasks on the host of the scheduler (``LocalExecutor``, and 2.x's
  ``SequentialExecutor`` / ``DebugExecutor``), or when the operator says so with
  ``[smscn] ledger_single_host = True`` (one host for workers and triggerers, knowingly).
  Any other executor (Celery, Kubernetes, CeleryKubernetes, LocalKubernetes, Edge, ECS, a
  custom class, several executors of which one is not local) runs tasks on other hosts.
* An in-memory SQLite ledger is one per process: never shared, whatever the executor.
* A server database (PostgreSQL, MySQL, ...) is shared. A loopback host under a remote executor
  is allowed with a warning: a sidecar proxy (Cloud SQL proxy, pgbouncer) per pod is common, but
  so is the mistake of a database on each host.

Airflow's own metadata database is not a fallback: Airflow 3 forbids tasks and triggers to
connect to it (they talk to the execution API), and workers often do not hold its credentials.

``python -m airflow_provider_smscn.ledger.checks`` prints the verdict for this machine's Airflow
configuration (exit 0: shared, 1: not shared, 2: the ledger cannot be reached with ``--connect``).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from airflow_provider_smscn.client.errors import SmsCnError

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

__all__ = [
    "LOCAL_EXECUTORS",
    "LedgerNotSharedError",
    "LedgerVerdict",
    "check_ledger",
    "default_ledger_url",
    "display_url",
    "executor_names",
    "ledger_location",
    "ledger_mismatch",
    "main",
]

SETTING = "[smscn] ledger_url"
ENV_VAR = "AIRFLOW__SMSCN__LEDGER_URL"
SINGLE_HOST_SETTING = "[smscn] ledger_single_host"
SINGLE_HOST_ENV_VAR = "AIRFLOW__SMSCN__LEDGER_SINGLE_HOST"
EXAMPLE_URL = "postgresql+psycopg2://USER:PASSWORD@DB-HOST:5432/smscn"

#: Executors that run every task on the scheduler's host (short names and class paths).
LOCAL_EXECUTORS = frozenset({
    "LocalExecutor",
    "SequentialExecutor",
    "DebugExecutor",
    "airflow.executors.local_executor.LocalExecutor",
    "airflow.executors.sequential_executor.SequentialExecutor",
    "airflow.executors.debug_executor.DebugExecutor",
})
_LOOPBACK_HOSTS = ("localhost", "127.", "::1", "[::1]")


class LedgerNotSharedError(SmsCnError):
    """The ledger in use is not shared by every process of the deployment: retrying cannot help."""

    retriable = False


def default_ledger_url(airflow_home: str | None) -> str:
    """The default ledger: ``smscn_ledger.db`` under AIRFLOW_HOME (``~/airflow`` when unset)."""
    home = airflow_home or os.path.expanduser("~/airflow")
    return f"sqlite:///{os.path.abspath(os.path.join(home, 'smscn_ledger.db'))}"


#: What a KubernetesExecutor task pod runs under, whatever ``[core] executor`` says inside it.
KUBERNETES_POD_EXECUTOR = "KubernetesExecutor"


def executor_names(setting: str | None, *, kubernetes_executor_pod: bool = False) -> list[str]:
    """The executors named by ``[core] executor``, aliases and team prefixes removed.

    Forms: ``CeleryExecutor``, ``LocalExecutor,CeleryExecutor``, ``alias:my.module.Executor`` (as
    Airflow's executor loader reads it, the class is the part after the colon, whatever the alias
    looks like) and team lists ``LocalExecutor;team_a=CeleryExecutor``. Empty means Airflow's
    default, the local one.

    :param kubernetes_executor_pod: this process runs in a KubernetesExecutor task pod (Airflow
        marks those with ``AIRFLOW_IS_K8S_EXECUTOR_POD``). Pod templates often set
        ``[core] executor = LocalExecutor`` inside the pod, yet every task runs in a pod of its own.
    """
    names: list[str] = []
    for group in (setting or "").split(";"):
        _, _, executors = group.rpartition("=")
        for entry in executors.split(","):
            _, _, name = entry.rpartition(":")
            name = name.strip()
            if name and name not in names:
                names.append(name)
    names = names or ["LocalExecutor"]
    if kubernetes_executor_pod and KUBERNETES_POD_EXECUTOR not in names:
        names.append(KUBERNETES_POD_EXECUTOR)
    return names


@dataclass(frozen=True)
class LedgerVerdict:
    """Whether the ledger is shared, and the words that explain it to an operator."""

    shared: bool
    url: str
    executors: tuple[str, ...]
    reason: str
    warnings: tuple[str, ...] = field(default=())

    def message(self) -> str:
        """What a task log (or the check command) says."""
        head = "the smscn ledger is shared" if self.shared else "the smscn ledger is NOT shared"
        text = f"{head}: {self.reason}"
        return "\n".join([text, *(f"warning: {w}" for w in self.warnings)])


def _sqlite_path(url: str) -> str | None:
    """The file of a SQLite URL, ``":memory:"`` for an in-memory one, None for another backend."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0].lower() != "sqlite":
        return None
    try:  # SQLAlchemy's parse: a passphrase (sqlite+pysqlcipher://:pass@/file) stays out of the path
        from sqlalchemy.engine import make_url

        path = make_url(url).database or ""
    except Exception:
        path = rest.rpartition("@")[2]
        path = (path[1:] if path.startswith("/") else path).split("?")[0]  # sqlite:///rel, sqlite:////abs
    if path in ("", ":memory:") or path.startswith("file::memory:") or "mode=memory" in url:
        return ":memory:"
    return path.removeprefix("file:")


_SECRET_QUERY_WORDS = ("password", "passwd", "pwd", "secret", "token", "key", "cred", "auth")


def display_url(url: str) -> str:
    """The one rendering of a ledger URL for people: no password, neither ``user:pw@`` nor ``?password=``.

    libpq and the MySQL drivers also take the password as a query parameter, so every query
    parameter whose name looks like a credential is hidden as well.
    """
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        query = {key: ("***" if any(word in key.lower() for word in _SECRET_QUERY_WORDS) else value)
                 for key, value in parsed.query.items()}
        rendered: str = parsed.set(query=query).render_as_string(hide_password=True)
        return rendered.replace("%2A%2A%2A", "***")
    except Exception:  # an unparsable URL: show only its scheme
        return url.partition("://")[0] + "://..."


def _host(url: str) -> str:
    try:
        from sqlalchemy.engine import make_url

        return (make_url(url).host or "").lower()
    except Exception:
        return ""


def _fix(*, sqlite: bool) -> str:
    text = (f"Set {SETTING} (environment: {ENV_VAR}) to a database every worker and triggerer reaches, "
            f"e.g. {ENV_VAR}={EXAMPLE_URL}")
    if sqlite:
        text += (f"; or, if every worker and triggerer of this deployment really runs on this one host, "
                 f"set {SINGLE_HOST_SETTING} = True ({SINGLE_HOST_ENV_VAR}=True)")
    return text + "."


def check_ledger(url: str, executors: Iterable[str], *, explicit: bool = True,
                 single_host: bool = False) -> LedgerVerdict:
    """Decide whether ``url`` is one ledger for every process that may run a task or a trigger.

    :param url: the ledger's SQLAlchemy URL.
    :param executors: the executor names of ``[core] executor`` (see :func:`executor_names`).
    :param explicit: whether ``[smscn] ledger_url`` was set (False: the default SQLite file).
    :param single_host: ``[smscn] ledger_single_host``: the operator vouches for one host.
    """
    names = tuple(executors) or ("LocalExecutor",)
    remote = [n for n in names if n not in LOCAL_EXECUTORS]
    shown = display_url(url)
    which = f"{SETTING} = {shown}" if explicit else f"{SETTING} is not set, so the default {shown} is used"
    if remote:
        executor_text = (f"[core] executor names {', '.join(names)}; {', '.join(remote)} "
                         f"run{'s' if len(remote) == 1 else ''} tasks on other hosts than this one")
    else:
        executor_text = f"[core] executor = {', '.join(names)} runs every task on this host"

    path = _sqlite_path(url)
    if path == ":memory:":
        return LedgerVerdict(False, shown, names,
                             f"{which}: an in-memory SQLite database exists once per process, and every "
                             f"task and trigger runs in a process of its own. {_fix(sqlite=False)}")
    if path is not None:
        if not remote:
            return LedgerVerdict(True, shown, names,
                                 f"{which}, the file {path} on this host; {executor_text}.",
                                 ("a triggerer on another host would not see this file: run the "
                                  "triggerers on this host too, or use a server database",))
        if single_host:
            return LedgerVerdict(True, shown, names,
                                 f"{which}, the file {path}; {executor_text}, but {SINGLE_HOST_SETTING} "
                                 "= True says every worker and triggerer runs on this host.")
        return LedgerVerdict(False, shown, names,
                             f"{which}: the SQLite file {path} exists on each host separately, and "
                             f"{executor_text}. A delivery report pulled on one host would be lost to "
                             f"waiters on another, and a retry on another host could call the same "
                             f"numbers again. {_fix(sqlite=True)}")
    warnings: tuple[str, ...] = ()
    host = _host(url)
    if remote and (host.startswith(_LOOPBACK_HOSTS) or not host):
        warnings = (f"the ledger's host is {host or 'a local socket'}: every worker and triggerer "
                    "must reach the same database server at that address (a sidecar proxy does, a "
                    "database on each host does not)",)
    return LedgerVerdict(True, shown, names, f"{which}, a database server; {executor_text}.", warnings)


def ledger_location(url: str, hostname: str | None = None) -> str:
    """Which ledger ``url`` is, seen from this host: a SQLite file is one per host, a server one for all.

    A deferring sensor hands its location to its trigger: the executor rules above cannot see a
    triggerer on another host (``LocalExecutor`` with a remote triggerer), the comparison can.
    """
    path = _sqlite_path(url)
    if path is None:
        return display_url(url)
    if path == ":memory:":
        return f"sqlite:// (in memory, process {os.getpid()})"
    return f"sqlite:///{os.path.abspath(path)} on host {hostname or socket.gethostname()}"


def ledger_mismatch(deferred_from: str, here: str, *, single_host: bool = False) -> tuple[bool, str] | None:
    """Why a trigger's ledger is not its task's: ``(fatal, text)``, or None when they are one.

    Fatal when either side is a SQLite file and they differ (the task's reports and this
    triggerer's are then in two files); two server URLs that differ only warn (one server may have
    two names). ``single_host`` compares SQLite files by path alone (containers on one host name
    themselves differently).
    """
    if single_host:
        deferred_from, here = (loc.split(" on host ")[0] for loc in (deferred_from, here))
    if deferred_from == here:
        return None
    text = (f"this triggerer's smscn ledger is not the one the deferring task used: the task used "
            f"{deferred_from}, this triggerer uses {here}")
    if not (deferred_from.startswith("sqlite") or here.startswith("sqlite")):
        return False, f"{text}; if these are two names of one database server, nothing is wrong"
    return True, (f"{text}. A delivery report pulled on one side is lost to waiters on the other. "
                  f"{_fix(sqlite=True)}")


def require_shared(verdict: LedgerVerdict) -> None:
    """Raise :class:`LedgerNotSharedError` for a ledger that is not shared."""
    if not verdict.shared:
        raise LedgerNotSharedError(verdict.message())


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m airflow_provider_smscn.ledger.checks [--connect]``: is this deployment's ledger shared?"""
    import argparse

    parser = argparse.ArgumentParser(
        prog="python -m airflow_provider_smscn.ledger.checks",
        description="Tell whether the smscn ledger configured for this Airflow is shared by every "
        "worker and triggerer (exit 0: yes, 1: no, 2: --connect failed).")
    parser.add_argument("--connect", action="store_true",
                        help="also open the ledger: create its tables if missing and read them")
    args = parser.parse_args(argv)

    from airflow_provider_smscn.hooks.smscn import ledger_verdict

    verdict = ledger_verdict()
    print(verdict.message())
    if not verdict.shared:
        return 1
    if args.connect:
        from airflow_provider_smscn.hooks.smscn import ledger_url
        from airflow_provider_smscn.ledger import SmsCnLedger

        try:
            last = SmsCnLedger(ledger_url()).last_pull_time("__smscn_check__")
        except Exception as err:
            print(f"cannot use the ledger at {verdict.url}: {type(err).__name__}: {err}")
            return 2
        print(f"connected to {verdict.url}: tables present and readable (check row: {last})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
