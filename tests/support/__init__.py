"""What the tests share, imported one way everywhere: ``from tests.support.<module> import ...``.

Fixtures stay in the ``conftest.py`` files (the database fixtures every suite uses are in
``tests/conftest.py``); the code they and the tests call lives here, one module per subject:

- ``paths``: where the repository is.
- ``vendor_replies``, ``recording_server``, ``tls_server``: the client tests' vendor replies, the
  HTTP server that records the bytes the client sends, a TLS server that breaks connections.
- ``sandbox_calls``: raw HTTP calls to the sandbox, as the vendor document writes them.
- ``databases``: the PostgreSQL/MariaDB test servers, a fresh schema or database, raw reads,
  databases made to fail (a held SQLite lock, a PostgreSQL failover).
- ``ledger_workers``, ``ledger_v0_1_0``: racing ledger processes; a ledger written by 0.1.0.
- ``report_sources``: the waiting tests' real client, ledger and spool on the sandbox.
- ``event_workers``, ``send_workers``: a watcher instance, a send task's execution, in a process.
- ``airflow_dags``: running DAGs for real on Airflow 3.x and 2.11.
- ``secret_scan``, ``leak_checks``: the leak-check account and the scans for what must not leak.
- ``local_services``, ``ui_stack``, ``deploy_stack``, ``deploy_host``: the stacks of real
  processes behind the UI and deployment tests and the watcher benchmark.

Modules imported by the Airflow-free suites (tests/client, tests/sandbox) and by spawned worker
processes import neither Airflow nor pytest at import time.
"""
