"""Liveness and readiness: the latter checks the event store and the read models answer."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from api import problems
from api.context import ServicesDep
from api.metrics import CONTENT_TYPE
from api.problems import Problem

# No bearer token: probes and scrapers call these.
OPEN: dict[str, Any] = {"security": []}
router = APIRouter(tags=["operations"])


@router.get("/healthz", summary="The process is alive", openapi_extra=OPEN)
async def healthz() -> dict[str, str]:
    """On the event loop, not in a request thread: a liveness probe is answered even while
    every request thread waits on a slow store (that is what /readyz reports)."""
    return {"status": "ok"}


@router.get(
    "/metrics",
    summary="Prometheus metrics",
    response_class=Response,
    openapi_extra=OPEN,
    responses={200: {"content": {CONTENT_TYPE: {"schema": {"type": "string"}}}}},
)
def metrics(services: ServicesDep) -> Response:
    return Response(services.metrics.render(), media_type=CONTENT_TYPE)


@router.get(
    "/readyz",
    summary="The event store and read models answer",
    openapi_extra=OPEN,
    responses=problems.responses(503),
)
def readyz(services: ServicesDep) -> dict[str, Any]:
    try:
        position = services.app.recorder.max_notification_id() or 0
        projections = services.runner.positions()
    except Exception as exc:
        raise Problem(
            503, "not-ready", "The store is not reachable", headers={"Retry-After": "5"}
        ) from exc
    return {"status": "ready", "log_position": position, "read_models": projections}
