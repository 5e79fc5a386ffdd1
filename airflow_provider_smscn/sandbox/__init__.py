"""A local emulator of the sms.cn voice API, for tests, demos and load runs without phoning anyone.

``Sandbox`` runs the emulated vendor in a background thread of this process::

    with Sandbox(report_delay=0) as sandbox:
        sandbox.url                      # http://127.0.0.1:PORT/voice/
        sandbox.inject_fault("http_status", status=503, action="sendcode", count=1)
        sandbox.calls()                  # every call placed

``smscn-sandbox`` (``python -m airflow_provider_smscn.sandbox``) runs it as a process, and the
pytest plugin offers it as the ``smscn_sandbox`` fixture. The sandbox's modules import only the
standard library and each other, never Airflow or the provider's client (loading this package
still runs ``airflow_provider_smscn/__init__.py``, which loads the client's errors and no
Airflow); this module imports the server only when a sandbox is built, so the pytest plugin stays
cheap to load.
"""

from __future__ import annotations

import json
import threading
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping

    from airflow_provider_smscn.sandbox.accounts import AccountConfig
    from airflow_provider_smscn.sandbox.server import SandboxHTTPServer, SandboxState

__all__ = ["Sandbox"]

_AUTH_MODES = ("secret", "password", "api_password")


#: The connection id the sandbox's helpers fill in: the provider's ``DEFAULT_CONN_ID``, written
#: here again on purpose because the sandbox imports nothing from the provider (it is written from
#: the document); tests/sandbox/test_sandbox_plugin.py holds the two equal.
SANDBOX_CONN_ID = "smscn_default"

class Sandbox:
    """The emulated vendor, served from a background thread of this process.

    :param port: TCP port; 0 picks a free one (read it back from ``url``).
    :param host: address to listen on; keep the default, the sandbox has no business elsewhere.
    :param accounts: account definitions (dicts with the fields of ``POST /_control/accounts`` or
        ``AccountConfig``); default: the document's example account ``test``.
    :param report_delay: seconds from a send to its reports being pullable, for accounts that do
        not set their own.
    :param seed: seeds the RNG behind report outcomes and generated message ids.
    :param faults: faults active from the start, each ``{"kind": ..., params}``.
    :param latency_ms: shorthand for a ``latency`` fault on every request.
    :param verbose: log one masked line per request (logger ``airflow_provider_smscn.sandbox``).
    """

    def __init__(
        self,
        port: int = 0,
        host: str = "127.0.0.1",
        accounts: Iterable[Mapping[str, Any] | AccountConfig] | None = None,
        report_delay: float = 1.0,
        seed: int | None = None,
        *,
        faults: Iterable[Mapping[str, Any]] = (),
        latency_ms: float = 0,
        verbose: bool = False,
    ) -> None:
        from airflow_provider_smscn.sandbox.accounts import AccountConfig
        from airflow_provider_smscn.sandbox.server import SandboxState

        configs = None
        if accounts is not None:
            configs = [a if isinstance(a, AccountConfig) else AccountConfig.from_mapping(a) for a in accounts]
        fault_specs = list(faults)
        if latency_ms:
            fault_specs.insert(0, {"kind": "latency", "ms": latency_ms})
        self.host = host
        self.port = port
        self.state: SandboxState = SandboxState(
            configs, report_delay=report_delay, seed=seed, faults_at_start=fault_specs, verbose=verbose
        )
        self._server: SandboxHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # lifecycle

    def start(self, *, poll_interval: float = 0.01) -> Sandbox:
        """Bind and serve in a daemon thread; returns self so ``Sandbox().start()`` reads well.

        ``poll_interval`` bounds how long ``stop()`` waits for the serving loop to notice.
        """
        from airflow_provider_smscn.sandbox.server import SandboxHTTPServer

        if self._server is not None:
            raise RuntimeError("the sandbox is already running")
        self.state.stopping.clear()
        server = SandboxHTTPServer((self.host, self.port), self.state)
        self.port = server.server_port
        thread = threading.Thread(
            target=server.serve_forever,
            kwargs={"poll_interval": poll_interval},
            name="smscn-sandbox",
            daemon=True,
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        """Stop serving, wake requests held by delay faults, and cut open connections."""
        server, thread = self._server, self._thread
        if server is None:
            return
        self.state.stopping.set()
        server.shutdown()
        server.close_connections()
        server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._server = self._thread = None

    def __enter__(self) -> Sandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def base_url(self) -> str:
        """``http://host:port`` of the running server."""
        if self._server is None:
            raise RuntimeError("the sandbox is not running; call start() first")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    @property
    def url(self) -> str:
        """The API base URL, ending in ``/voice/``: what a connection's host should be."""
        return self.base_url + "/voice/"

    @property
    def control_url(self) -> str:
        """The control API's base URL, ending in ``/_control/``."""
        return self.base_url + "/_control/"

    # control, in process (the same operations as the HTTP control API)

    def inject_fault(self, kind: str, **params: Any) -> int:
        """Add a fault (see ``faults.py`` for kinds and parameters); returns its id."""
        return self.state.faults.add(kind, params).id

    def clear_faults(self) -> None:
        self.state.faults.clear()

    def stats(self) -> dict[str, Any]:
        return self.state.stats()

    def calls(self) -> list[dict[str, Any]]:
        return self.state.calls()

    def set_account(self, **fields: Any) -> dict[str, Any]:
        """Add an account or update fields of one (``uid`` defaults to the first configured one)."""
        fields.setdefault("uid", self.state.initial_accounts[0].uid)
        return self.state.set_account(fields)

    def account(self, uid: str | None = None) -> dict[str, Any]:
        """An account's state without secrets (default: the first configured account)."""
        uid = uid or self.state.initial_accounts[0].uid
        data = self.state.account(uid)
        if data is None:
            raise KeyError(uid)
        return data

    def reset(self) -> None:
        self.state.reset()

    def connection_json(
        self,
        conn_id: str = SANDBOX_CONN_ID,
        auth: str = "secret",
        reply_format: str = "json",
        *,
        uid: str | None = None,
    ) -> str:
        """An Airflow connection (JSON form) pointing at this sandbox, for ``AIRFLOW_CONN_<ID>``.

        ``auth="secret"``: login, password and the ``secret_key`` extra; ``"password"``: login and
        password only; ``"api_password"``: login and the ready ``api_password`` extra (md5 of
        password + uid), no password. ``conn_id`` is not part of Airflow's JSON form; it names the
        connection in :meth:`connection_env`.
        """
        from airflow_provider_smscn.sandbox.server import api_password

        if auth not in _AUTH_MODES:
            raise ValueError(f"auth must be one of {_AUTH_MODES}")
        if not conn_id:
            raise ValueError("conn_id must not be empty")
        config = self.state.account_config(uid or self.state.initial_accounts[0].uid)
        if config is None:
            raise KeyError(uid)
        connection: dict[str, Any] = {"conn_type": "smscn", "login": config.uid}
        extra: dict[str, Any] = {}
        if auth == "api_password":
            extra["api_password"] = api_password(config.password, config.uid)
        else:
            connection["password"] = config.password
        if auth == "secret":
            if not config.secret_key:
                raise ValueError(f"account {config.uid!r} has no secret key")
            extra["secret_key"] = config.secret_key
        if reply_format != "json":
            extra["format"] = reply_format
        connection["host"] = self.url
        connection["extra"] = extra
        return json.dumps(connection, ensure_ascii=False)

    def connection_env(self, conn_id: str = SANDBOX_CONN_ID, **kwargs: Any) -> dict[str, str]:
        """``{"AIRFLOW_CONN_<CONN_ID>": connection_json(...)}``, ready for ``os.environ.update``."""
        return {f"AIRFLOW_CONN_{conn_id.upper()}": self.connection_json(conn_id, **kwargs)}

    def __repr__(self) -> str:
        where = self.url if self.running else "stopped"
        return f"<Sandbox {where}>"
