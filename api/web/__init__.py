"""The web application: server-rendered pages for people, over the same policy as the JSON API.

`install(app)` adds the pages under `/web`, the anonymous report form under `/report`, the
static assets (htmx served by the app itself: no CDN) and creates the web tables.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from api.context import Services
from api.web import (
    audit_routes,
    auth_routes,
    dashboard_routes,
    new_case_routes,
    public_routes,
    work_routes,
)
from api.web.ratelimit import SlidingWindow
from api.web.store import create_tables

STATIC = Path(__file__).parent / "static"
SIGN_IN_PATH = "/web/sign-in"


def install(app: FastAPI, services: Services) -> None:
    """Add the web pages to the API app and create the web tables if missing.

    On a node serving reads from a hot standby (`create_tables` off) the tables come from the
    primary; signing in there fails with a 503, as every write does.
    """
    settings = services.settings
    if settings.create_tables:
        create_tables(services.db)
    app.state.public_report_limiter = SlidingWindow(
        settings.public_report_limit, timedelta(seconds=settings.public_report_window_seconds)
    )
    routers = (auth_routes, new_case_routes, work_routes, dashboard_routes, audit_routes)
    for module in (*routers, public_routes):
        app.include_router(module.router)
    app.mount("/web/static", StaticFiles(directory=STATIC), name="web-static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse(SIGN_IN_PATH, status_code=303)
