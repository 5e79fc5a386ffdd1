"""The sms.cn page's FastAPI app, mounted by the api-server at ``/smscn`` (Airflow 3 only).

Every route that shows data sits behind the api-server's own authentication and authorization
(``requires_access_view(WEBSITE)``: the JWT of the UI's ``_token`` cookie or a bearer token), and
recent calls, balance readings and waiters of DAGs the user may not read are left out. No route
changes a record: the only write is the page's own counts cache (``smscn_page_counts``, see
``plugins/data.py``). The static assets (page script, style, Chart.js) hold no data.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from collections.abc import Callable

    from fastapi import FastAPI

log = logging.getLogger(__name__)

STATIC = Path(__file__).resolve().parent / "static"
URL_PREFIX = "/smscn"
#: Task types that wait for delivery reports.
WAITER_OPERATORS = ("SmsCnDeliverySensor",)
WAITING_STATES = ("running", "deferred", "up_for_reschedule", "queued", "scheduled")


def _ledger() -> Any:
    from airflow_provider_smscn.hooks.smscn import ledger_url
    from airflow_provider_smscn.ledger import SmsCnLedger

    return SmsCnLedger(ledger_url())


def _dag_filter(user: Any) -> Callable[[str], bool]:
    """The viewer's readable DAGs (fails closed: an error of the auth manager is an error)."""
    from airflow.api_fastapi.app import get_auth_manager

    permitted = get_auth_manager().get_authorized_dag_ids(user=user, method="GET")
    return lambda dag_id: dag_id in permitted


def _waiters(allowed: Callable[[str], bool]) -> list[dict[str, Any]]:
    """Delivery sensors waiting right now, from Airflow's metadata DB (index ``ti_state``)."""
    from airflow.models.taskinstance import TaskInstance as TI
    from airflow.utils.session import create_session
    from sqlalchemy import select

    stmt = (select(TI.dag_id, TI.task_id, TI.run_id, TI.map_index, TI.state, TI.start_date, TI.try_number)
            .where(TI.state.in_(WAITING_STATES), TI.operator.in_(WAITER_OPERATORS))
            .order_by(TI.start_date).limit(200))
    with create_session() as session:
        rows = session.execute(stmt).all()
    return [{"dag_id": r.dag_id, "task_id": r.task_id, "run_id": r.run_id, "map_index": r.map_index,
             "state": str(r.state), "since": r.start_date.timestamp() if r.start_date else None,
             "try_number": r.try_number}
            for r in rows if allowed(r.dag_id)]


def create_app() -> FastAPI:
    """The app: ``/`` the page, ``/api/page`` its data, ``/static`` its assets."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import get_user, requires_access_view
    from fastapi import Depends, FastAPI, HTTPException, Query
    from fastapi.responses import HTMLResponse, JSONResponse
    from fastapi.staticfiles import StaticFiles

    from airflow_provider_smscn.plugins import data

    app = FastAPI(title="sms.cn", docs_url=None, redoc_url=None, openapi_url=None)
    guarded = [Depends(requires_access_view(AccessView.WEBSITE))]
    index = (STATIC / "index.html").read_text("utf-8")

    @app.get("/", dependencies=guarded, response_class=HTMLResponse)
    def page() -> HTMLResponse:
        return HTMLResponse(index, headers={"Cache-Control": "no-store"})

    @app.get("/api/page", dependencies=guarded)
    # (no annotations FastAPI must resolve: this module uses postponed annotations and local imports)
    def page_json(user: Any = Depends(get_user),  # noqa: B008 - FastAPI's dependency idiom
                  window: str = Query(data.DEFAULT_WINDOW)) -> JSONResponse:
        if window not in data.WINDOWS:
            raise HTTPException(400, f"window must be one of {', '.join(data.WINDOWS)}")
        allowed = _dag_filter(user)
        body = data.page_data(_ledger(), window, dag_allowed=allowed)
        body["waiters"] = _waiters(allowed)
        return JSONResponse(body, headers={"Cache-Control": "no-store"})

    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    threading.Thread(target=_warm, name="smscn-page-warm", daemon=True).start()
    return app


def _warm() -> None:
    """Read (or, on a ledger's first start, count and store) the longest window's frozen buckets."""
    from airflow_provider_smscn.plugins import data

    try:
        data.warm(_ledger())
    except Exception:  # a cold cache only costs the first page load its time
        log.warning("sms.cn page: warming the ledger counts failed", exc_info=True)


class LazyApp:
    """An ASGI app that builds :func:`create_app` on its first request.

    Airflow imports plugins in many processes; only the api-server serves this one, so FastAPI and
    the page are loaded there, on first use, and importing the plugin stays cheap elsewhere.
    """

    def __init__(self) -> None:
        self._app: FastAPI | None = None
        self._lock = threading.Lock()

    def app(self) -> FastAPI:
        with self._lock:
            if self._app is None:
                self._app = create_app()
            return self._app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.app()(scope, receive, send)
