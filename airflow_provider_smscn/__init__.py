"""Apache Airflow provider for the sms.cn voice verification code API.

Kept cheap to import: DAG files import the provider at every parse.
"""

from __future__ import annotations

from airflow_provider_smscn.client.errors import SmsCnApiError, SmsCnError

__version__ = "0.1.0"
__all__ = ["SmsCnApiError", "SmsCnError", "__version__"]
