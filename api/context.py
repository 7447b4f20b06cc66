"""What a request handler needs, built once per app: the application, read models, resolver."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Annotated

import structlog
from fastapi import Depends, Request

from adapters.auth import AuthenticationError, DirectoryView, PrincipalResolver
from api.metrics import Metrics
from api.settings import Settings
from api.table_cache import TableCache
from projections.db import PostgresDatabase, SqliteDatabase
from projections.runner import ProjectionRunner
from referral_core.application import ReferralApplication
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


def get_principal(request: Request) -> Principal:
    """Authenticate the bearer token; every route but health checks depends on this."""
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise AuthenticationError("missing bearer token")
    principal = get_services(request).resolver.resolve(token.strip())
    request.state.principal = principal
    structlog.contextvars.bind_contextvars(
        principal_id=principal.user_id, agency_id=principal.agency_id
    )
    return principal


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
