"""Each agency's inbox and each shelter's roster, from the work read models.

Every row read here is keyed by the caller's own agency, so a caller only ever gets its
agency's rows. Whether something is overdue is not stored: it is decided here, against the
application's clock (`services.app.clock()`), so breaches appear and clear as time and events
move. Nothing returned is identifying, so these reads are not recorded as accesses. Auditors
have no work of their own: their inbox is empty.

`GET /shelters/{agency_id}/roster` answers the shelter agency itself (any role) and auditors;
any other agency gets 403, not 404: agency ids, shelters' included, are listed by
`GET /agencies` to every user, so refusing openly hides nothing.
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Annotated
from uuid import UUID

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel

from api import problems
from api.confirmed_route import ConfirmedRoute
from api.context import PrincipalDep, Services, ServicesDep
from api.routers.cases import json_response, scratch_response
from api.waiting import NOT_ASKED, Waited, WaitedDep
from projections.work_common import parsed_time, stored_time
from projections.work_inboxes import (
    ReferralRow,
    ReportRow,
    referrals_accepted,
    referrals_to_answer,
    reports_to_acknowledge,
)
from projections.work_roster import RosterRow, roster_of
from projections.work_summary import (
    DeadlineRow,
    SummaryRow,
    count_overdue,
    deadlines_of,
    open_cases,
)
from referral_core.deadlines import DeadlineKind, is_due
from referral_core.errors import PermissionDeniedError
from referral_core.policy import Principal
from referral_core.vocab import AgencyKind

router = APIRouter(
    route_class=ConfirmedRoute, tags=["work"], responses=problems.responses(*problems.COMMON, 504)
)


class Due(BaseModel):
    kind: DeadlineKind
    due_at: datetime
    overdue: bool


class DeadlineItem(BaseModel):
    case_id: str
    kind: DeadlineKind
    owed_by_agency_id: str
    """The agency that must act; the lead is shown every deadline of its cases."""
    subject_event_id: str | None
    due_at: datetime
    overdue: bool


class ReportItem(BaseModel):
    report_event_id: str
    case_id: str
    reported_at: datetime
    urgency: str
    due_at: datetime | None
    """None once nothing is owed (the reports listed here are all still owed)."""
    overdue: bool


class ReferralItem(BaseModel):
    referral_event_id: str
    case_id: str
    from_agency_id: str
    service: str
    status: str
    respond_by: datetime | None
    sent_at: datetime
    answered_at: datetime | None
    due_at: datetime | None
    overdue: bool


class Placement(BaseModel):
    shelter_agency_id: str
    facility: str


class CaseItem(BaseModel):
    case_id: str
    relations: list[str]
    stage: str
    lead_agency_id: str
    placement: Placement | None
    open_referrals: int
    next_deadline: Due | None
    version: int
    position: int
    updated_at: datetime


class Inbox(BaseModel):
    agency_id: str
    as_of: datetime
    """The clock reading every `overdue` was decided against."""
    position: int
    """The log position the read models had reached."""
    overdue: int
    """How many of the agency's deadlines are overdue (all of them, not only those listed)."""
    reports_to_acknowledge: list[ReportItem]
    referrals_to_answer: list[ReferralItem]
    referrals_accepted: list[ReferralItem]
    deadlines: list[DeadlineItem]
    cases: list[CaseItem]


class RosterItem(BaseModel):
    case_id: str
    placement_event_id: str
    since: date
    placement_type: str
    facility: str
    services_delivered: int
    next_plan_review: date | None
    next_deadline: Due | None
    age_band: str
    sex: str
    missing: bool


class Roster(BaseModel):
    shelter_agency_id: str
    as_of: datetime
    position: int
    children: list[RosterItem]


# -- rows to items ------------------------------------------------------------------------------


def _due(kind: str | None, due_at: str | None, now: datetime) -> Due | None:
    moment = parsed_time(due_at)
    if kind is None or moment is None:
        return None
    return Due(kind=DeadlineKind(kind), due_at=moment, overdue=is_due(moment, now))


def _deadline_item(row: DeadlineRow, now: datetime) -> DeadlineItem:
    due_at = datetime.fromisoformat(row.due_at)
    return DeadlineItem(
        case_id=row.case_id,
        kind=DeadlineKind(row.kind),
        owed_by_agency_id=row.owed_by_agency_id,
        subject_event_id=row.subject_event_id,
        due_at=due_at,
        overdue=is_due(due_at, now),
    )


def _report_item(row: ReportRow, now: datetime) -> ReportItem:
    due_at = parsed_time(row.due_at)
    return ReportItem(
        report_event_id=row.report_event_id,
        case_id=row.case_id,
        reported_at=datetime.fromisoformat(row.reported_at),
        urgency=row.urgency,
        due_at=due_at,
        overdue=is_due(due_at, now),
    )


def _referral_item(row: ReferralRow, now: datetime) -> ReferralItem:
    due_at = parsed_time(row.due_at)
    return ReferralItem(
        referral_event_id=row.referral_event_id,
        case_id=row.case_id,
        from_agency_id=row.from_agency_id,
        service=row.service,
        status=row.status,
        respond_by=parsed_time(row.respond_by),
        sent_at=datetime.fromisoformat(row.sent_at),
        answered_at=parsed_time(row.answered_at),
        due_at=due_at,
        overdue=is_due(due_at, now),
    )


def _case_item(row: SummaryRow, now: datetime) -> CaseItem:
    placement = None
    if row.shelter_agency_id is not None and row.facility is not None:
        placement = Placement(shelter_agency_id=row.shelter_agency_id, facility=row.facility)
    return CaseItem(
        case_id=row.case_id,
        relations=row.relations,
        stage=row.stage,
        lead_agency_id=row.lead_agency_id,
        placement=placement,
        open_referrals=row.open_referrals,
        next_deadline=_due(row.next_deadline_kind, row.next_deadline_at, now),
        version=row.version,
        position=row.position,
        updated_at=datetime.fromisoformat(row.updated_at),
    )


def _roster_item(row: RosterRow, now: datetime) -> RosterItem:
    return RosterItem(
        case_id=row.case_id,
        placement_event_id=row.placement_event_id,
        since=date.fromisoformat(row.since),
        placement_type=row.placement_type,
        facility=row.facility,
        services_delivered=row.services_delivered,
        next_plan_review=None
        if row.next_plan_review is None
        else date.fromisoformat(row.next_plan_review),
        next_deadline=_due(row.next_deadline_kind, row.next_deadline_at, now),
        age_band=row.age_band,
        sex=row.sex,
        missing=row.missing,
    )


# -- routes -------------------------------------------------------------------------------------


@router.get(
    "/inbox",
    response_model=Inbox,
    summary="The caller's agency's work: reports, referrals, deadlines (overdue first), cases",
)
def get_inbox(
    services: ServicesDep,
    principal: PrincipalDep,
    waited: WaitedDep,
    limit: Annotated[int, Query(ge=1, le=200, description="Most items per list")] = 50,
) -> Response:
    return json_response(read_inbox(services, principal, limit, waited), scratch_response())


def read_inbox(
    services: Services, principal: Principal, limit: int, waited: Waited = NOT_ASKED
) -> Inbox:
    """The caller's agency's inbox (the web application shows the same)."""
    waited.require()
    now = services.app.clock()
    agency_id = principal.agency_id
    with services.db.reading() as tx:
        position = min(services.runner.positions_in(tx).values(), default=0)
        reports = reports_to_acknowledge(tx, agency_id, limit)
        to_answer = referrals_to_answer(tx, agency_id, limit)
        accepted = referrals_accepted(tx, agency_id, limit)
        deadlines = deadlines_of(tx, agency_id, limit)
        cases = open_cases(tx, agency_id, limit)
        overdue = count_overdue(tx, agency_id, stored_time(now))
    return Inbox(
        agency_id=agency_id,
        as_of=now,
        position=position,
        overdue=overdue,
        reports_to_acknowledge=[_report_item(r, now) for r in reports],
        referrals_to_answer=[_referral_item(r, now) for r in to_answer],
        referrals_accepted=[_referral_item(r, now) for r in accepted],
        deadlines=[_deadline_item(d, now) for d in deadlines],
        cases=[_case_item(c, now) for c in cases],
    )


def _check_reads_roster(principal: Principal, shelter_agency_id: UUID) -> None:
    if principal.agency_kind is AgencyKind.AUDITOR:
        return
    if principal.agency_id != str(shelter_agency_id):
        raise PermissionDeniedError("only the shelter itself or an auditor reads its roster")


@router.get(
    "/shelters/{agency_id}/roster",
    response_model=Roster,
    summary="The children placed with a shelter now (the shelter itself and auditors)",
    responses={403: {"description": "The caller is neither that shelter nor an auditor"}},
)
def get_roster(
    agency_id: UUID,
    services: ServicesDep,
    principal: PrincipalDep,
    waited: WaitedDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 500,
) -> Response:
    return json_response(
        read_roster(agency_id, services, principal, limit, waited), scratch_response()
    )


def read_roster(
    agency_id: UUID,
    services: Services,
    principal: Principal,
    limit: int,
    waited: Waited = NOT_ASKED,
) -> Roster:
    """A shelter's roster, for the shelter itself and auditors (the web application too)."""
    _check_reads_roster(principal, agency_id)
    waited.require()
    now = services.app.clock()
    with services.db.reading() as tx:
        position = min(services.runner.positions_in(tx).values(), default=0)
        rows = roster_of(tx, str(agency_id), limit)
    return Roster(
        shelter_agency_id=str(agency_id),
        as_of=now,
        position=position,
        children=[_roster_item(r, now) for r in rows],
    )
