"""Auditors: who read what and why, and the break-glass accesses waiting for review."""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Request

from api import problems
from api.confirmed_route import ConfirmedRoute
from api.context import PrincipalDep, ServicesDep
from api.schemas import BreakGlassReview
from api.waiting import until_reached
from projections.access_log import list_access
from referral_core.errors import PermissionDeniedError
from referral_core.policy import Principal
from referral_core.vocab import AgencyKind

router = APIRouter(
    route_class=ConfirmedRoute,
    prefix="/audit",
    tags=["audit"],
    responses=problems.responses(*problems.COMMON, 404, 415),
    dependencies=[Depends(problems.require_json)],
)


CATCH_UP_SECONDS = 2.0  # how long the access list waits for the reads just recorded


def _auditor(principal: Principal) -> None:
    if principal.agency_kind is not AgencyKind.AUDITOR:
        raise PermissionDeniedError("auditors only")


async def caught_up_auditor(request: Request, principal: PrincipalDep) -> Principal:
    """The auditor, once the read models have the log as it stands (at most a short wait).

    The list should show the reads recorded until now; if the read models are further behind
    than the wait, it shows what they have (its items say when each read happened).
    """
    _auditor(principal)
    await until_reached(request, None, CATCH_UP_SECONDS)
    return principal


@router.get("/access", summary="Reads of identifying data, by case and by user")
def access_records(
    services: ServicesDep,
    principal: Annotated[Principal, Depends(caught_up_auditor)],
    case_id: UUID | None = None,
    user_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> dict[str, Any]:
    _auditor(principal)
    with services.db.reading() as tx:
        items = list_access(
            tx, case_id=str(case_id) if case_id else None, user_id=user_id, limit=limit
        )
    return {"items": items}


@router.get("/break-glass", summary="Break-glass accesses, unreviewed first")
def break_glass_list(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    _auditor(principal)
    grants = sorted(
        services.directory.current().break_glass.values(),
        key=lambda g: (g["reviewed"], g["expires_at"]),
    )
    return {"items": grants}


@router.post("/break-glass/{grant_id}/review", summary="Review a break-glass access")
def review_break_glass(
    grant_id: UUID, body: BreakGlassReview, services: ServicesDep, principal: PrincipalDep
) -> dict[str, Any]:
    _auditor(principal)
    actor = {
        "user_id": principal.user_id,
        "agency_id": principal.agency_id,
        "role": principal.role.value,
    }
    services.app.change_directory(
        lambda d: d.review_break_glass(grant_id, body.outcome, body.note, actor)
    )
    grant: dict[str, Any] = services.directory.current().break_glass[str(grant_id)]
    return grant
