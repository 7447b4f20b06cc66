"""The FastAPI app factory: settings in, a ready app out, with its read models running inside.

`create_app(settings)` wires the store, the read models, the token resolver, the routers, the
problem handlers and the request middleware. In the embedded mode (default) the projection
runner polls the log in a thread of this process; set REFERRAL_RUN_PROJECTIONS=false when
`referral projections run` workers do it instead.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import anyio.to_thread
import structlog
from eventsourcing import persistence as es_persistence
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from adapters.auth import DirectoryTokenResolver, DirectoryView, PrincipalResolver
from adapters.oidc import ChainResolver, OIDCResolver
from adapters.store import ConfigurationError, build_application
from api import keys, problems, web
from api.confirmed_route import ARRIVED
from api.context import Services
from api.logging import bound_logger, configure_logging, get_logger
from api.metrics import Metrics
from api.request_ids import RequestIds
from api.routers import audit, cases, directory, health, inbox, integrity, stats
from api.schemas import payload_schemas
from api.settings import Settings
from projections.db import open_database
from projections.registry import all_projections
from projections.runner import ProjectionRunner
from referral_core.application import ReferralApplication
from referral_core.clock import Clock, utc_now

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = get_logger("referral.api")

UNAVAILABLE: tuple[type[BaseException], ...] = (sqlite3.OperationalError,)
try:  # PostgreSQL's errors when the server is away.
    import psycopg
    import psycopg_pool

    UNAVAILABLE = (*UNAVAILABLE, psycopg.OperationalError, psycopg_pool.PoolTimeout)
except ImportError:  # pragma: no cover - psycopg is a dependency
    pass
# …and as eventsourcing wraps them (a connection that broke when the server went away).
UNAVAILABLE = (*UNAVAILABLE, es_persistence.OperationalError, es_persistence.InterfaceError)


NO_STORE = (b"cache-control", b"no-store")
"""On every response that sets no caching of its own: answers carry children's data, which no
browser or proxy on the way may keep."""


class RequestGuard:
    """Outermost middleware: request id, body size limit and JSON sanity (`problems.
    json_body_problem`), 503 for an absent store, `Cache-Control: no-store`, access log."""

    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: Metrics) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics
        self.request_ids = RequestIds()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        request_id = self.request_ids()
        scope.setdefault("state", {}).update(request_id=request_id, **{ARRIVED: started})
        structlog.contextvars.clear_contextvars()
        structlog.contextvars.bind_contextvars(request_id=request_id)
        status = {"code": 500, "sent": False}
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (
            not declared.isdigit() or int(declared) > self.max_body_bytes
        ):
            await self._reply(
                send,
                status,
                413,
                "too-large",
                "The request body is too large",
                request_id=request_id,
            )
            self._done(scope, status, started)
            return
        # The whole body is read here, streamed or not, so nothing past the limit is buffered
        # and a malformed JSON body is refused before any route sees it.
        body = await self._read_body(receive)
        refusal = (
            ("too-large", 413, "The request body is too large")
            if body is None
            else problems.json_body_problem(body, headers.get(b"content-type"))
        )
        if refusal is not None:
            code, http_status, title = refusal
            await self._reply(send, status, http_status, code, title, request_id=request_id)
            self._done(scope, status, started)
            return
        replayed = False

        async def limited_receive() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        async def tracking_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status["code"] = message["status"]
                status["sent"] = True
                headers = message.setdefault("headers", [])
                headers.append((b"x-request-id", request_id.encode()))
                if not any(name.lower() == b"cache-control" for name, _value in headers):
                    headers.append(NO_STORE)
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except UNAVAILABLE as exc:
            log.warning("store unavailable", error_type=type(exc).__name__)
            if not status["sent"]:
                await self._reply(
                    send,
                    status,
                    503,
                    "unavailable",
                    "The store is unavailable; retry shortly",
                    request_id=request_id,
                )
        except Exception as exc:  # noqa: BLE001 -- the last line of defence: a 500 problem
            log.error("unhandled error", error_type=type(exc).__name__)  # noqa: TRY400
            if not status["sent"]:
                await self._reply(
                    send, status, 500, "internal", "Internal error", request_id=request_id
                )
        self._done(scope, status, started)

    async def _read_body(self, receive: Receive) -> bytes | None:
        """The request body, or None once it grows past the limit (the rest is left unread)."""
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                return b"".join(chunks)
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > self.max_body_bytes:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                return b"".join(chunks)

    @staticmethod
    async def _reply(
        send: Send, status: dict[str, Any], code: int, problem: str, title: str, *, request_id: str
    ) -> None:
        """A problem answered by the guard itself, with the request id the log line has."""
        body = (
            f'{{"type":"{problems.TYPE_PREFIX}{problem}","title":"{title}","status":{code}}}'
        ).encode()
        extra = [(b"retry-after", b"5")] if code == 503 else []  # noqa: PLR2004
        await send(
            {
                "type": "http.response.start",
                "status": code,
                "headers": [
                    (b"content-type", problems.PROBLEM_JSON.encode()),
                    (b"content-length", str(len(body)).encode()),
                    NO_STORE,
                    (b"x-request-id", request_id.encode()),
                    *extra,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
        status["code"] = code
        status["sent"] = True

    def _done(self, scope: Scope, status: dict[str, Any], started: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        principal = scope.get("state", {}).get("principal")
        seconds = time.perf_counter() - started
        self.metrics.observe(str(scope.get("method")), route, int(status["code"]), seconds)
        bound_logger("referral.api").info(
            "request",
            principal_id=getattr(principal, "user_id", None),
            agency_id=getattr(principal, "agency_id", None),
            method=scope.get("method"),
            route=route,
            status=status["code"],
            latency_ms=round(seconds * 1000, 2),
        )


def build_services(
    settings: Settings,
    *,
    application: ReferralApplication | None = None,
    resolver: PrincipalResolver | None = None,
    clock: Clock = utc_now,
) -> Services:
    app = application or build_application(
        settings.database_url,
        clock=clock,
        pool_size=settings.pool_size,
        master_keys=keys.master_keys(settings),
        create_tables=settings.create_tables,
    )
    app.case_cache.resize(settings.case_cache_size)
    db = open_database(settings.database_url, pool_size=max(2, settings.pool_size // 2))
    runner = ProjectionRunner(
        app,
        db,
        keys.configured(all_projections(), settings),
        batch_size=settings.projection_batch_size,
        create_tables=settings.create_tables,
    )
    view = DirectoryView(app)
    return Services(
        settings=settings,
        app=app,
        db=db,
        runner=runner,
        resolver=resolver or _resolver(settings, app, view),
        directory=view,
        metrics=Metrics(runner),
    )


def _resolver(
    settings: Settings, app: ReferralApplication, view: DirectoryView
) -> PrincipalResolver:
    tokens = DirectoryTokenResolver(app, view)
    if not settings.oidc_issuer:
        return tokens
    if not settings.oidc_jwks_url:
        raise ConfigurationError("REFERRAL_OIDC_JWKS_URL is required with REFERRAL_OIDC_ISSUER")
    oidc = OIDCResolver(
        view,
        issuer=settings.oidc_issuer,
        audience=settings.oidc_audience,
        jwks_url=settings.oidc_jwks_url,
    )
    return ChainResolver(tokens, oidc)


def create_app(
    settings: Settings | None = None,
    *,
    services: Services | None = None,
    clock: Clock = utc_now,
) -> FastAPI:
    """Build the HTTP app. Pass `services` to share an application with tests or the CLI."""
    settings = settings or Settings()
    configure_logging(settings.log_level)
    built = services or build_services(settings, clock=clock)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # FastAPI runs plain `def` routes and dependencies on anyio's default thread pool,
        # which belongs to the event loop serving the app: it can only be sized from here.
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threads
        if settings.run_projections and built.worker is None:
            built.runner.catch_up()
            built.worker = threading.Thread(
                target=built.runner.run_forever,
                args=(built.stop,),
                name="projections",
                daemon=True,
            )
            built.worker.start()
        yield
        built.stop.set()
        built.runner.nudge.set()
        if built.worker is not None:
            built.worker.join(timeout=5)
            built.worker = None
        built.stop.clear()

    app = FastAPI(
        title="referral",
        version="0.1.0",
        summary="National referral mechanism for child victims of trafficking and exploitation",
        lifespan=lifespan,
    )
    app.state.services = built
    problems.install(app)
    for router in (
        health.router,
        directory.router,
        cases.router,
        inbox.router,
        stats.router,
        audit.router,
        integrity.router,
    ):
        app.include_router(router)
    web.install(app, built)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, routes=app.routes)
            schema.setdefault("components", {}).setdefault("schemas", {}).update(payload_schemas())
            schema["components"]["securitySchemes"] = {
                "bearer": {"type": "http", "scheme": "bearer"}
            }
            schema["security"] = [{"bearer": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(RequestGuard, max_body_bytes=settings.max_body_bytes, metrics=built.metrics)
    return app
