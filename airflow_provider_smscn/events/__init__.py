"""Reacting to what happens on an account: new delivery reports, a balance running low.

Airflow-free: the asset-watcher triggers (``triggers/events.py``) are thin pages over these
functions, which need only a :class:`~airflow_provider_smscn.delivery.ReportSource` (the ledger,
the pull, the spool) or a balance callable.

* :mod:`.delivery`: the next batch of new reports matching a filter, claimed in the ledger.
* :mod:`.balance`: one check per interval across all watchers; one event per crossing.
"""
