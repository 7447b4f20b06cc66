"""The audit page: verification of the log, reads of identifying data, break-glass accesses to
review, and web sign-ins. Auditors only; every datum comes from the API's audit functions.
"""

from __future__ import annotations

from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.responses import RedirectResponse
from pydantic import ValidationError

from api.context import ServicesDep
from api.routers import audit as audit_routes
from api.routers import integrity as integrity_routes
from api.schemas import BreakGlassReview
from api.web.context import TranslatorDep, UserDep, require_csrf
from api.web.credentials import recent_signins
from api.web.render import WebRoute, page
from api.web.sessions import CSRF_FIELD
from api.web.work_routes import agency_names
from referral_core.errors import PermissionDeniedError
from referral_core.vocab import AgencyKind

router = APIRouter(route_class=WebRoute, include_in_schema=False)


@router.get("/web/audit")
def audit_page(  # noqa: PLR0917
    request: Request,
    services: ServicesDep,
    user: UserDep,
    t: TranslatorDep,
    case_id: Annotated[str, Query(max_length=64)] = "",
    user_id: Annotated[str, Query(max_length=64)] = "",
    error: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    if user.kind is not AgencyKind.AUDITOR:
        raise PermissionDeniedError("auditors only")
    report = integrity_routes.verify(services=services, principal=user.principal)
    try:
        case_filter = UUID(case_id) if case_id.strip() else None
    except ValueError:
        case_filter = None
    newest = services.app.recorder.max_notification_id() or 0
    services.runner.wait_for(newest, audit_routes.CATCH_UP_SECONDS)
    reads = audit_routes.access_records(
        services=services,
        principal=user.principal,
        case_id=case_filter,
        user_id=user_id.strip() or None,
        limit=100,
    )["items"]
    grants = audit_routes.break_glass_list(services=services, principal=user.principal)["items"]
    directory = services.directory.current()
    people = {u: row["display_name"] for u, row in directory.users.items()}
    return page(
        request,
        "audit.html",
        t,
        user,
        title=t.gettext("Audit"),
        report=report,
        reads=reads,
        grants=grants,
        signins=recent_signins(services.db, 100),
        people=people,
        names=agency_names(services),
        case_id=case_id,
        user_id=user_id,
        error=error,
    )


@router.post("/web/audit/break-glass/{grant_id}/review")
def review_page(  # noqa: PLR0917
    grant_id: UUID,
    services: ServicesDep,
    user: UserDep,
    outcome: Annotated[str, Form(max_length=20)] = "",
    note: Annotated[str, Form(max_length=2000)] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=64)] = "",
) -> Response:
    require_csrf(user, csrf_token)
    try:
        body = BreakGlassReview(outcome=outcome, note=note)
    except ValidationError:
        return RedirectResponse("/web/audit?error=review", status_code=303)
    audit_routes.review_break_glass(
        grant_id=grant_id, body=body, services=services, principal=user.principal
    )
    return RedirectResponse("/web/audit", status_code=303)
