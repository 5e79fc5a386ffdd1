"""Apache Airflow provider for the sms.cn voice verification code API.

Kept cheap to import: DAG files import the provider at every parse.
"""

from __future__ import annotations

from airflow_provider_smscn.client.errors import SmsCnApiError, SmsCnError

__version__ = "0.2.0"
#: The Connection every hook, operator, sensor, notifier and trigger uses unless told otherwise,
#: and the one the sandbox's connection helpers name. Here, not in hooks/mixins.py (which
#: re-exports it), because the sandbox must not import Airflow.
DEFAULT_CONN_ID = "smscn_default"
__all__ = ["DEFAULT_CONN_ID", "SmsCnApiError", "SmsCnError", "__version__"]
