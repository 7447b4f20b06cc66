"""Cases: open, list, read, append, read the history. Every route asks `policy` first.

A case the caller may not see answers 404 exactly like one that does not exist.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any
from uuid import UUID, uuid4, uuid5

from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from pydantic import BaseModel, TypeAdapter

from api import problems
from api.confirmed_route import ConfirmedRoute
from api.context import PrincipalDep, Services, ServicesDep, request_directory
from api.erasure import is_erased
from api.problems import Problem
from api.schemas import Actor as ActorOut
from api.schemas import (
    AppendAccepted,
    BreakGlassRequest,
    CaseList,
    CaseListItem,
    EventOut,
    EventSubmission,
    History,
    event_examples,
)
from api.waiting import NOT_ASKED, Waited, WaitedDep
from projections.case_index import ALL_AGENCIES, list_cases
from projections.verification import verify_case
from referral_core.access import AccessRecord
from referral_core.application import AppendResult
from referral_core.case import Case
from referral_core.case_events import CATALOG
from referral_core.case_view import VisibleEvent, summary, visible_history
from referral_core.directory import Directory
from referral_core.envelope import Actor, Envelope
from referral_core.errors import CaseNotFoundError, PermissionDeniedError, VersionConflictError
from referral_core.policy import Access, Principal, Relation, access_of, check_append
from referral_core.vocab import AgencyKind, CaseStage, Role


async def require_json(request: Request) -> None:
    """`problems.require_json`, on the event loop: it does no I/O, so no worker thread."""
    problems.require_json(request)


router = APIRouter(
    route_class=ConfirmedRoute,
    tags=["cases"],
    responses=problems.responses(*problems.COMMON, 404, 409, 412, 415, 428, 504),
    dependencies=[Depends(require_json)],
)
IDEMPOTENCY_NAMESPACE = UUID("3f6d8a0e-2b4c-4e1a-9c7d-5b8e0f1a2c3d")
ETAG = re.compile(r'^\s*(?:W/)?"?(\d{1,10})"?\s*$')
MAX_PURPOSE = 200
# Log positions are 64-bit in both stores; a larger one can only be a mistake.
CONTROL = re.compile(r"[\x00-\x1f\x7f]")
OPENING_TYPES = frozenset({"ChildIdentified", "ContactReceived"})
JSON = "application/json"
CASE_SUMMARY: TypeAdapter[dict[str, Any]] = TypeAdapter(dict[str, Any])


def scratch_response() -> Response:
    """A response for a route function to set headers on, as FastAPI's injected one is."""
    response = Response()
    del response.headers["content-length"]
    return response


def json_response(
    body: BaseModel | dict[str, Any], scratch: Response, status_code: int = 200
) -> Response:
    """The response FastAPI would render for `body` (with `scratch`'s headers), rendered here.

    Returned a model, FastAPI validates it again before rendering it, in one more worker-thread
    hop per request; the routes below render it in their own thread instead, and keep
    `response_model` for the OpenAPI document.
    """
    content = (
        body.model_dump_json().encode()
        if isinstance(body, BaseModel)
        else CASE_SUMMARY.dump_json(body)
    )
    response = Response(content, status_code=status_code, media_type=JSON)
    response.headers.raw.extend(scratch.headers.raw)
    return response


def _known(submission: EventSubmission) -> None:
    if submission.type not in CATALOG:
        raise Problem(422, "unknown-event-type", "No event type has that name")


def _request_id(request: Request) -> str:
    return str(getattr(request.state, "request_id", "") or uuid4())


def _event_id(submission: EventSubmission, principal: Principal, key: str | None) -> UUID:
    if key is None:
        return submission.event_id or uuid4()
    if not 0 < len(key) <= MAX_PURPOSE:
        raise Problem(422, "invalid-idempotency-key", "Idempotency-Key has 1 to 200 characters")
    derived = uuid5(IDEMPOTENCY_NAMESPACE, f"{principal.user_id}:{key}")
    if submission.event_id is not None and submission.event_id != derived:
        try:
            if UUID(key) == submission.event_id:
                return submission.event_id
        except ValueError:
            pass
        raise Problem(
            422, "idempotency-key-mismatch", "Idempotency-Key and event_id name different events"
        )
    return derived


def _envelope(
    submission: EventSubmission, principal: Principal, event_id: UUID, request: Request
) -> Envelope:
    return Envelope(
        event_id=event_id,
        actor=Actor(principal.user_id, principal.agency_id, principal.role),
        occurred_at=submission.occurred_at,
        correlation_id=_request_id(request),
        legal_basis=submission.legal_basis,
        consent_ref=submission.consent_ref,
    )


def _expected_version(if_match: str | None) -> int:
    if if_match is None:
        raise Problem(
            428,
            "precondition-required",
            "If-Match is required",
            "send If-Match with the case version (its ETag) you are appending to",
        )
    match = ETAG.match(if_match)
    if match is None:
        raise Problem(412, "version-conflict", "If-Match is not a case version")
    return int(match.group(1))


def _etag(version: int) -> str:
    return f'"{version}"'


def _accepted(result: AppendResult, response: Response, location: str) -> AppendAccepted:
    response.headers["Location"] = location
    response.headers["ETag"] = _etag(result.version)
    if result.duplicate:
        response.headers["Idempotent-Replayed"] = "true"
    return AppendAccepted(
        case_id=result.case_id,
        version=result.version,
        event_id=result.event_id,
        position=result.position,
        duplicate=result.duplicate,
    )


def load_visible_case(
    services: Services,
    principal: Principal,
    case_id: UUID,
    *,
    for_append: bool = False,
    directory: Directory | None = None,
    to_append_at: int | None = None,
) -> tuple[Case, Access]:
    """The case and the caller's access to it; 404 when it is missing or out of sight.

    `directory`: the directory as read for this request (`request_directory`), for its
    break-glass grants; read afresh when not given. `to_append_at`: the If-Match of an append
    (`ReferralApplication.get_case`).
    """
    case = services.app.get_case(case_id, to_append_at=to_append_at)
    if directory is None:
        directory = services.directory.current()
    now = services.app.clock()
    until = directory.active_break_glass(principal.user_id, str(case_id), now)
    access = access_of(principal, case, break_glass_until=until, now=now)
    relations = access.relations - {Relation.BREAK_GLASS} if for_append else access.relations
    if not relations:
        raise CaseNotFoundError("no such case")
    return case, access


def record_read(
    services: Services,
    principal: Principal,
    access: Access,
    case_id: UUID,
    what: str,
    purpose: str | None,
    request: Request,
) -> None:
    """Record a read of identifying data (always for auditors and break-glass)."""
    if purpose is not None and (len(purpose) > MAX_PURPOSE or CONTROL.search(purpose)):
        raise Problem(
            422, "invalid-purpose", "X-Purpose has at most 200 characters, none of them control"
        )
    services.app.save(
        AccessRecord(
            user_id=principal.user_id,
            agency_id=principal.agency_id,
            role=principal.role.value,
            case_id=str(case_id),
            what=what,
            purpose=purpose,
            break_glass=Relation.BREAK_GLASS in access.relations,
            correlation_id=_request_id(request),
        )
    )


def _require_purpose_for_break_glass(access: Access, purpose: str | None) -> None:
    glass_only = access.relations == frozenset({Relation.BREAK_GLASS})
    if glass_only and not purpose:
        raise Problem(428, "purpose-required", "X-Purpose is required for a break-glass read")


SUBMISSION = Annotated[EventSubmission, Body(openapi_examples=event_examples())]


@router.post(
    "/cases",
    name="open_case",
    status_code=201,
    response_model=AppendAccepted,
    summary="Open a case with ChildIdentified or ContactReceived",
    responses={201: {"headers": {"Location": {}, "ETag": {}}}},
)
def open_case_route(
    submission: SUBMISSION,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> Response:
    scratch = scratch_response()
    accepted = open_case(submission, request, scratch, services, principal, idempotency_key)
    return json_response(accepted, scratch, 201)


def open_case(
    submission: EventSubmission,
    request: Request,
    response: Response,
    services: Services,
    principal: Principal,
    idempotency_key: str | None = None,
) -> AppendAccepted:
    if submission.type not in OPENING_TYPES:  # an unknown type included
        raise Problem(422, "case-opening", "A case opens with ChildIdentified or ContactReceived")
    check_append(principal, submission.type, None)
    event_id = _event_id(submission, principal, idempotency_key)
    result = services.app.open_case(
        event_type=submission.type,
        payload=submission.payload,
        envelope=_envelope(submission, principal, event_id, request),
    )
    services.runner.nudge.set()
    if not result.duplicate:
        services.metrics.appends.labels(submission.type).inc()
    return _accepted(result, response, f"/cases/{result.case_id}")


@router.get(
    "/cases",
    name="get_cases",
    response_model=CaseList,
    summary="The cases the caller may see",
)
def get_cases_route(
    services: ServicesDep,
    principal: PrincipalDep,
    waited: WaitedDep,
    stage: CaseStage | None = None,
    agency: Annotated[UUID | None, Query(description="Lead agency")] = None,
    updated_since: datetime | None = None,
    cursor: Annotated[str | None, Query(max_length=18, pattern=r"^\d{1,18}$")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Response:
    found = get_cases(services, principal, stage, agency, updated_since, cursor, limit, waited)
    return json_response(found, scratch_response())


def get_cases(
    services: Services,
    principal: Principal,
    stage: CaseStage | None = None,
    agency: UUID | None = None,
    updated_since: datetime | None = None,
    cursor: str | None = None,
    limit: int = 50,
    waited: Waited = NOT_ASKED,
) -> CaseList:
    waited.require()
    since = None
    if updated_since is not None:
        if updated_since.tzinfo is None:
            updated_since = updated_since.replace(tzinfo=UTC)
        since = updated_since.astimezone(UTC).isoformat()
    agency_key = ALL_AGENCIES if principal.agency_kind is AgencyKind.AUDITOR else None
    with services.db.reading() as tx:
        rows = list_cases(
            tx,
            agency_id=agency_key or principal.agency_id,
            stage=stage.value if stage else None,
            lead_agency_id=str(agency) if agency else None,
            updated_since=since,
            before_position=int(cursor) if cursor else None,
            limit=limit,
        )
    items = [CaseListItem(**vars(row)) for row in rows]
    next_cursor = str(rows[-1].position) if len(rows) == limit else None
    return CaseList(items=items, next_cursor=next_cursor)


@router.get(
    "/cases/{case_id}",
    name="get_case",
    response_model=dict[str, Any],
    summary="The case as the caller may see it",
)
def get_case_route(
    case_id: UUID,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    scratch = scratch_response()
    directory = request_directory(request, services)
    body = get_case(case_id, scratch, services, principal, directory=directory)
    return json_response(body, scratch)


def get_case(
    case_id: UUID,
    response: Response,
    services: Services,
    principal: Principal,
    *,
    directory: Directory | None = None,
) -> dict[str, Any]:
    case, access = load_visible_case(services, principal, case_id, directory=directory)
    response.headers["ETag"] = _etag(case.version)
    return {**summary(principal, access, case), "erased": case_is_erased(services, case)}


def case_is_erased(services: Services, case: Case) -> bool:
    """Erased: a CaseErased event, or the case key destroyed (an erasure being completed)."""
    keyring = getattr(services.app, "keyring", None)
    return is_erased(case) or (keyring is not None and keyring.is_destroyed(case.id))


def header_parameter(name: str, description: str) -> dict[str, Any]:
    """An optional request header, documented in OpenAPI as FastAPI documents `Header()`."""
    return {
        "name": name.lower(),
        "in": "header",
        "required": False,
        "description": description,
        "schema": {"anyOf": [{"type": "string"}, {"type": "null"}], "title": name},
    }


@router.post(
    "/cases/{case_id}/events",
    name="append_event",
    status_code=201,
    response_model=AppendAccepted,
    summary="Append one event (If-Match with the case version is required)",
    responses={
        412: {"description": "The case has moved on since that version"},
        428: {"description": "If-Match is missing"},
    },
    # The two headers are read from the request in the body: as parameters, FastAPI's
    # per-parameter work cost about 3% of an append's CPU (py-spy, bench http).
    openapi_extra={
        "parameters": [
            header_parameter("If-Match", "The case version the event follows (required)"),
            header_parameter("Idempotency-Key", "Makes a retry of this append safe"),
        ]
    },
)
def append_event_route(
    case_id: UUID,
    submission: SUBMISSION,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
) -> Response:
    scratch = scratch_response()
    headers = request.headers
    accepted = append_event(
        case_id,
        submission,
        request,
        scratch,
        services,
        principal,
        headers.get("if-match"),
        headers.get("idempotency-key"),
        directory=request_directory(request, services),
    )
    return json_response(accepted, scratch, 201)


def append_event(
    case_id: UUID,
    submission: EventSubmission,
    request: Request,
    response: Response,
    services: Services,
    principal: Principal,
    if_match: str | None = None,
    idempotency_key: str | None = None,
    *,
    directory: Directory | None = None,
) -> AppendAccepted:
    _known(submission)
    expected = _expected_version(if_match)
    case, access = load_visible_case(
        services, principal, case_id, for_append=True, directory=directory, to_append_at=expected
    )
    check_append(principal, submission.type, access)
    event_id = _event_id(submission, principal, idempotency_key)
    try:
        result = services.app.append(
            case_id,
            expected_version=expected,
            event_type=submission.type,
            payload=submission.payload,
            envelope=_envelope(submission, principal, event_id, request),
            case=case,
        )
    except VersionConflictError:
        # The case moved on (maybe in another process, after the copy decided above): one
        # that has meanwhile gone out of the caller's sight answers 404, not 412.
        load_visible_case(services, principal, case_id, for_append=True, directory=directory)
        raise
    services.runner.nudge.set()
    if not result.duplicate:
        services.metrics.appends.labels(submission.type).inc()
    return _accepted(result, response, f"/cases/{case_id}/events?as_of={result.version}")


def _parse_as_of(as_of: str | None) -> tuple[int | None, datetime | None]:
    if as_of is None:
        return None, None
    if as_of.isdigit():
        return int(as_of), None
    try:
        moment = datetime.fromisoformat(as_of)
    except ValueError:
        raise Problem(422, "invalid-as-of", "as_of is a version number or an ISO time") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return None, moment


def _event_out(
    case_id: UUID, seen: VisibleEvent, verified: dict[int, bool | None] | None = None
) -> EventOut:
    event = seen.event
    return EventOut(
        event_id=event.event_id,
        case_id=case_id,
        version=event.originator_version,
        type=event.event_type,
        schema_version=getattr(type(event), "class_version", 1),
        occurred_at=event.occurred_at,
        recorded_at=event.timestamp,
        actor=ActorOut(**event.actor),
        legal_basis=event.legal_basis,
        consent_ref=event.consent_ref,
        correlation_id=event.correlation_id,
        payload=seen.view.payload,
        redacted=list(seen.view.redacted),
        erased=bool(getattr(event, "erased", False)),
        verified=None if verified is None else verified.get(event.originator_version),
    )


@router.get(
    "/cases/{case_id}/events",
    name="get_history",
    response_model=History,
    summary="The history the caller may see; ?as_of= a version or a time",
)
def get_history_route(
    case_id: UUID,
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    as_of: Annotated[str | None, Query(max_length=40)] = None,
    x_purpose: Annotated[str | None, Header()] = None,
) -> Response:
    scratch = scratch_response()
    directory = request_directory(request, services)
    history = get_history(
        case_id, request, scratch, services, principal, as_of, x_purpose, directory=directory
    )
    return json_response(history, scratch)


def get_history(
    case_id: UUID,
    request: Request,
    response: Response,
    services: Services,
    principal: Principal,
    as_of: str | None = None,
    x_purpose: str | None = None,
    *,
    directory: Directory | None = None,
) -> History:
    case, access = load_visible_case(services, principal, case_id, directory=directory)
    _require_purpose_for_break_glass(access, x_purpose)
    version, moment = _parse_as_of(as_of)
    if version is not None and not 1 <= version <= case.version:
        raise Problem(422, "invalid-as-of", "as_of is beyond the case's versions")
    if moment is not None:
        version = services.app.case_as_of(case_id, at=moment).version
    events = services.app.history(case_id, lte=version)
    seen = visible_history(principal, access, case, events)
    auditor = principal.agency_kind is AgencyKind.AUDITOR
    if auditor or any(s.view.identifying for s in seen):
        record_read(services, principal, access, case_id, "history", x_purpose, request)
    verified = verify_case(services.app, services.db, case_id) if auditor else None
    response.headers["ETag"] = _etag(case.version)
    return History(
        case_id=case_id,
        version=version or case.version,
        as_of=as_of,
        events=[_event_out(case_id, s, verified) for s in seen],
    )


@router.post(
    "/cases/{case_id}/break-glass",
    status_code=201,
    summary="Open a case outside your scope for a limited time (supervisors; reviewed later)",
)
def break_glass(
    case_id: UUID,
    body: BreakGlassRequest,
    services: ServicesDep,
    principal: PrincipalDep,
) -> dict[str, Any]:
    if principal.role is not Role.SUPERVISOR or principal.agency_kind is AgencyKind.AUDITOR:
        raise PermissionDeniedError("break-glass is for supervisors of case-working agencies")
    services.app.get_case(case_id)
    grant_id = uuid4()
    until = services.app.clock() + timedelta(minutes=services.settings.break_glass_minutes)
    actor = {
        "user_id": principal.user_id,
        "agency_id": principal.agency_id,
        "role": principal.role.value,
    }
    services.app.change_directory(
        lambda d: d.open_break_glass(grant_id, case_id, body.reason, until, actor)
    )
    return {"grant_id": str(grant_id), "case_id": str(case_id), "expires_at": until.isoformat()}
