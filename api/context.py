"""What a request handler needs, built once per app: the application, read models, resolver."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

import anyio.to_thread
import structlog
from fastapi import Depends, Request

from adapters.auth import (
    TOKEN_PREFIX,
    AuthenticationError,
    DirectoryTokenResolver,
    DirectoryView,
    PrincipalResolver,
    well_formed_hash,
)
from adapters.oidc import ChainResolver
from api.confirmed_route import PENDING, Provisional, arrival, confirms
from api.metrics import Metrics
from api.settings import Settings
from api.table_cache import TableCache
from projections.db import PostgresDatabase, SqliteDatabase
from projections.runner import ProjectionRunner
from referral_core.application import ReferralApplication
from referral_core.directory import Directory
from referral_core.policy import Principal


@dataclass
class Services:
    settings: Settings
    app: ReferralApplication
    db: SqliteDatabase | PostgresDatabase
    runner: ProjectionRunner
    resolver: PrincipalResolver
    directory: DirectoryView
    metrics: Metrics
    tables: TableCache = field(default_factory=TableCache)
    stop: threading.Event = field(default_factory=threading.Event)
    worker: threading.Thread | None = None


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


async def services_dependency(request: Request) -> Services:
    """`get_services` as a route dependency. Async on purpose: it does no I/O, so FastAPI calls
    it on the event loop instead of handing it to a worker thread (a thread hop per request)."""
    return get_services(request)


def _directory_tokens(services: Services, token: str) -> DirectoryTokenResolver | None:
    """The resolver that checks this token against `services.directory`, if one does."""
    resolver = services.resolver
    if isinstance(resolver, ChainResolver) and token.startswith(TOKEN_PREFIX):
        resolver = resolver.directory
    if isinstance(resolver, DirectoryTokenResolver) and resolver.view is services.directory:
        return resolver
    return None


async def get_principal(request: Request) -> Principal:
    """Authenticate the bearer token; every route but health checks depends on this.

    A directory token is checked against the directory as the store has it now, so a
    revocation committed before the request is seen. On a `ConfirmedRoute` that check runs in
    the route's own worker thread, just before its body (`api.confirmed_route`): here the token
    is only resolved against the directory held in memory, without I/O. Elsewhere, or when
    the held directory does not know the token (one issued since, say), the directory is read
    here, in a worker thread. The directory checked against is kept in
    `request.state.directory` for the route, which needs no second read of it.
    """
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("missing bearer token")
    token = token.strip()
    services = get_services(request)
    tokens = _directory_tokens(services, token)
    held = services.directory.held
    if tokens is not None and held is not None and confirms(request):
        token_hash = well_formed_hash(token)
        try:
            principal = tokens.resolve_hashed(held, token_hash)
        except AuthenticationError:
            pass  # maybe issued, or reactivated, since: checked against the store below
        else:
            PENDING.set(Provisional(request, services.directory, tokens, token_hash, principal))
            return _authenticated(request, principal)
    return await anyio.to_thread.run_sync(_resolve_now, request, services, token, tokens)


def _resolve_now(
    request: Request, services: Services, token: str, tokens: DirectoryTokenResolver | None
) -> Principal:
    if tokens is None:
        return _authenticated(request, services.resolver.resolve(token))
    directory = services.directory.current(since=arrival(request))
    principal = tokens.resolve_in(directory, token)
    request.state.directory = directory
    return _authenticated(request, principal)


def _authenticated(request: Request, principal: Principal) -> Principal:
    request.state.principal = principal
    structlog.contextvars.bind_contextvars(
        principal_id=principal.user_id, agency_id=principal.agency_id
    )
    return principal


def request_directory(request: Request, services: Services) -> Directory:
    """The directory this request was authenticated against, or else the current one."""
    directory = getattr(request.state, "directory", None)
    if isinstance(directory, Directory):
        return directory
    return services.directory.current()


ServicesDep = Annotated[Services, Depends(services_dependency)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
