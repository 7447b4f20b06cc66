"""Integrity and erasure: auditors verify the log; data protection officers erase a case.

Erasure is for the `data_protection_officer` role of a ministry or coordinator agency
(`policy.check_erase`): the national level answers for the register, needs no relation to the
case, and no agency working the case erases its own record.
"""

from __future__ import annotations

from typing import Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Depends, Request

from api import problems
from api.confirmed_route import ConfirmedRoute
from api.context import PrincipalDep, ServicesDep
from api.erasure import erase_case
from api.keys import verifying_key
from api.schemas import ErasureOut, ErasureRequest
from projections.verification import verify_log
from referral_core.envelope import Actor
from referral_core.errors import PermissionDeniedError
from referral_core.policy import check_erase
from referral_core.vocab import AgencyKind

router = APIRouter(
    route_class=ConfirmedRoute,
    tags=["integrity"],
    responses=problems.responses(*problems.COMMON, 404, 409, 415),
    dependencies=[Depends(problems.require_json)],
)
VERIFY_WAIT_SECONDS = 2.0


@router.get("/audit/verify", summary="Recompute the log's chains, leaves and signed tree heads")
def verify(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    if principal.agency_kind is not AgencyKind.AUDITOR:
        raise PermissionDeniedError("auditors only")
    services.runner.nudge.set()
    services.runner.wait_for(services.app.recorder.max_notification_id() or 0, VERIFY_WAIT_SECONDS)
    report = verify_log(
        services.app,
        services.db,
        public_key=verifying_key(services.settings),
        checkpoint_every=services.settings.checkpoint_every,
    )
    return report.as_dict()


@router.post(
    "/cases/{case_id}/erase",
    response_model=ErasureOut,
    summary="Erase a case's identifying data by destroying its key (data protection officers)",
)
def erase(
    case_id: UUID,
    body: ErasureRequest,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> ErasureOut:
    check_erase(principal)
    outcome = erase_case(
        services.app,
        services.db,
        case_id,
        reason=body.reason,
        legal_basis=body.legal_basis,
        actor=Actor(principal.user_id, principal.agency_id, principal.role),
        correlation_id=str(getattr(request.state, "request_id", "") or uuid4()),
        runner=services.runner,
        wait_seconds=services.settings.read_wait_seconds,
    )
    return ErasureOut(
        case_id=outcome.case_id,
        version=outcome.version,
        position=outcome.position,
        already_erased=outcome.already_erased,
    )
