"""The Airflow plugin behind the sms.cn page, registered by the ``airflow.plugins`` entry point.

Airflow 3.1+: a FastAPI app at ``/smscn`` and a top-level entry "sms.cn" in the UI's navigation
that shows the page inside the UI. Airflow 2.11 has neither: the plugin is then empty, and
importing this module does not fail.
"""

from __future__ import annotations

from airflow_provider_smscn._compat import AIRFLOW_V_3, plugin_base
from airflow_provider_smscn.plugins.app import URL_PREFIX, LazyApp

PAGE_ROUTE = "smscn"


class SmsCnPlugin(plugin_base()):  # type: ignore[misc]
    """The sms.cn page: calls, deliveries, balance history, recent calls and waiters."""

    name = "smscn"
    if AIRFLOW_V_3:
        fastapi_apps = [{"app": LazyApp(), "url_prefix": URL_PREFIX, "name": "sms.cn page"}]
        external_views = [{
            "name": "sms.cn",
            "href": f"{URL_PREFIX}/",
            "url_route": PAGE_ROUTE,
            "destination": "nav",
            "nav_top_level": True,
            "icon": f"{URL_PREFIX}/static/icon.svg",
        }]
