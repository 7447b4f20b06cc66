"""Case work pages: inbox, case list, case page with its forms, shelter roster.

Every page calls the JSON API's own route functions (`api.routers.cases`, `api.routers.inbox`)
with the signed-in user's principal, so the visibility rules, the read recording and the
append path (expected version, idempotency, domain rules) are exactly the API's.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import ValidationError
from starlette.datastructures import FormData

from api.context import Services, ServicesDep
from api.routers import cases as case_routes
from api.routers import inbox as inbox_routes
from api.schemas import EventSubmission
from api.web.context import TranslatorDep, UserDep, WebUser, require_csrf
from api.web.forms import (
    FormState,
    FormValueError,
    field_errors,
    fields_of,
    payload_from_form,
    values_from_form,
)
from api.web.i18n import Translator
from api.web.render import WebRoute, page
from api.web.sessions import CSRF_FIELD
from referral_core.case_events import CATALOG
from referral_core.errors import (
    InvalidPayloadError,
    NotFoundError,
    PermissionDeniedError,
    ReferralError,
    VersionConflictError,
)
from referral_core.policy import check_append, may_append_kind
from referral_core.vocab import AgencyKind, CaseStage

router = APIRouter(route_class=WebRoute, include_in_schema=False)
LIST_LIMIT = 100
OPENING_TYPES = ("ContactReceived", "ChildIdentified")


def agency_names(services: Services) -> dict[str, str]:
    return {a: row["name"] for a, row in services.directory.current().agencies.items()}


def _by_urgency(items: list[Any]) -> list[Any]:
    far = datetime.max.replace(tzinfo=UTC)
    return sorted(items, key=lambda i: (not i.overdue, i.due_at or far))


@router.get("/web/inbox")
def inbox_page(
    request: Request, services: ServicesDep, user: UserDep, t: TranslatorDep
) -> Response:
    inbox = inbox_routes.read_inbox(services, user.principal, 50)
    return page(
        request,
        "inbox.html",
        t,
        user,
        title=t.gettext("Inbox"),
        inbox=inbox,
        reports=_by_urgency(inbox.reports_to_acknowledge),
        referrals=_by_urgency(inbox.referrals_to_answer),
        deadlines=_by_urgency(inbox.deadlines),
        names=agency_names(services),
    )


@router.get("/web/cases")
def case_list_page(  # noqa: PLR0917
    request: Request,
    services: ServicesDep,
    user: UserDep,
    t: TranslatorDep,
    q: Annotated[str, Query(max_length=64)] = "",
    stage: Annotated[str, Query(max_length=32)] = "",
    lead: Annotated[str, Query(max_length=64)] = "",
) -> Response:
    chosen_stage = CaseStage(stage) if stage in set(CaseStage) else None
    lead_id = None
    try:
        lead_id = UUID(lead) if lead else None
    except ValueError:
        lead_id = None
    found = case_routes.get_cases(
        services=services,
        principal=user.principal,
        stage=chosen_stage,
        agency=lead_id,
        updated_since=None,
        cursor=None,
        limit=LIST_LIMIT,
    )
    needle = q.strip().lower()
    items = [i for i in found.items if needle in i.case_id] if needle else found.items
    names = agency_names(services)
    leads = sorted({i.lead_agency_id for i in found.items} | ({lead} if lead_id else set()))
    return page(
        request,
        "cases.html",
        t,
        user,
        title=t.gettext("Cases"),
        items=items,
        q=q,
        stage=stage,
        lead=lead,
        stages=[s.value for s in CaseStage],
        leads=[(a, names.get(a, a)) for a in leads],
        names=names,
        can_open=any(may_append_kind(user.principal, e) for e in OPENING_TYPES),
    )


def appendable_types(services: Services, user: WebUser, case_id: UUID) -> list[str]:
    """The event types this user may append to this case now (policy decides, not the page)."""
    try:
        _case, access = case_routes.load_visible_case(
            services, user.principal, case_id, for_append=True
        )
    except NotFoundError:
        return []
    allowed = []
    for event_type in CATALOG:
        if not may_append_kind(user.principal, event_type):
            continue
        try:
            check_append(user.principal, event_type, access)
        except PermissionDeniedError:
            continue
        allowed.append(event_type)
    return allowed


def render_case(
    request: Request,
    services: Services,
    user: WebUser,
    t: Translator,
    case_id: UUID,
    *,
    form_type: str | None = None,
    state: FormState | None = None,
    status: int = 200,
    seen_version: int | None = None,
    notice: str | None = None,
) -> HTMLResponse:
    summary = case_routes.get_case(
        case_id=case_id, response=Response(), services=services, principal=user.principal
    )
    history = case_routes.get_history(
        case_id=case_id,
        request=request,
        response=Response(),
        services=services,
        principal=user.principal,
        as_of=None,
        x_purpose=None,
    )
    allowed = appendable_types(services, user, case_id)
    if form_type not in allowed:
        form_type = None
    mine = user.principal.agency_id
    pending = [
        r
        for r in summary.get("referrals", [])
        if r["to_agency_id"] == mine and r["status"] == "pending"
    ]
    reports = [
        r
        for r in summary.get("reports", [])
        if r["unit_agency_id"] == mine and r["acknowledged_at"] is None
    ]
    return page(
        request,
        "case.html",
        t,
        user,
        status=status,
        title=t.gettext("Case {case}", case=str(case_id)[:8]),
        case=summary,
        events=list(reversed(history.events)),
        allowed=allowed,
        form_type=form_type,
        fields=fields_of(form_type) if form_type else (),
        state=state or FormState(),
        names=agency_names(services),
        pending_referrals=pending if "ReferralAccepted" in allowed else [],
        open_reports=reports if "ReportAcknowledged" in allowed else [],
        seen_version=seen_version,
        notice=notice,
        idem=uuid4().hex,
        now_local=services.app.clock().astimezone(UTC).strftime("%Y-%m-%dT%H:%M"),
    )


@router.get("/web/cases/{case_id}")
def case_page(  # noqa: PLR0917
    case_id: UUID,
    request: Request,
    services: ServicesDep,
    user: UserDep,
    t: TranslatorDep,
    form: Annotated[str | None, Query(max_length=64)] = None,
    saved: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    notice = None
    if saved in CATALOG:
        notice = t.gettext("Saved: {what}.", what=t.term(saved))
    return render_case(request, services, user, t, case_id, form_type=form, notice=notice)


def submission_from_form(
    event_type: str, form: FormData, t: Translator, now: datetime
) -> EventSubmission | FormState:
    """The API submission a form post describes, or the form state to show again."""
    values = values_from_form(event_type, form)
    try:
        payload = payload_from_form(event_type, form)
        return EventSubmission.model_validate(
            {
                "type": event_type,
                "payload": payload,
                "occurred_at": _occurred_at(str(form.get("occurred_at") or ""), now).isoformat(),
                "legal_basis": str(form.get("legal_basis") or "").strip() or None,
                "consent_ref": str(form.get("consent_ref") or "").strip() or None,
            }
        )
    except FormValueError as exc:
        return FormState(values, exc.errors, t.gettext("Some fields need attention."))
    except (ValueError, ValidationError):
        return FormState(values, {}, t.gettext("The date, legal basis or consent is not valid."))


def _occurred_at(raw: str, now: datetime) -> datetime:
    if not raw:
        return now
    moment = datetime.fromisoformat(raw)
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@router.post("/web/cases/{case_id}/events")
async def append_page(
    case_id: UUID,
    request: Request,
    services: ServicesDep,
    user: UserDep,
    t: TranslatorDep,
) -> Response:
    form = await request.form()
    require_csrf(user, str(form.get(CSRF_FIELD) or ""))
    event_type = str(form.get("type") or "")
    if event_type not in CATALOG:
        return render_case(
            request, services, user, t, case_id, status=422,
            state=FormState(message=t.gettext("Choose what to record.")),
        )  # fmt: skip
    values = values_from_form(event_type, form)
    try:
        expected = int(str(form.get("expected_version") or ""))
    except ValueError:
        expected = -1
    submission = submission_from_form(event_type, form, t, services.app.clock())
    if isinstance(submission, FormState):
        return render_case(
            request, services, user, t, case_id, form_type=event_type, state=submission,
            status=422,
        )  # fmt: skip
    idem = str(form.get("idem") or "")[:64] or None
    try:
        accepted = case_routes.append_event(
            case_id=case_id,
            submission=submission,
            request=request,
            response=Response(),
            services=services,
            principal=user.principal,
            if_match=f'"{expected}"',
            idempotency_key=idem,
        )
    except VersionConflictError as exc:
        message = t.gettext(
            "Not saved: someone recorded something on this case after you opened it. You "
            "were looking at version {seen}; the case is now at version {now}. The new "
            "entries are marked below. Check them, then submit your entry again if it "
            "still applies.",
            seen=expected,
            now=exc.actual if exc.actual is not None else "?",
        )
        return render_case(
            request, services, user, t, case_id, form_type=event_type, status=409,
            state=FormState(values, {}, message), seen_version=expected,
        )  # fmt: skip
    except InvalidPayloadError as exc:
        state = FormState(
            values, field_errors(exc.errors), t.gettext("Some fields need attention.")
        )
        return render_case(
            request, services, user, t, case_id, form_type=event_type, state=state, status=422
        )
    except (NotFoundError, PermissionDeniedError):
        raise
    except ReferralError as exc:
        state = FormState(values, {}, t.gettext("Not saved: {reason}", reason=exc.message))
        return render_case(
            request, services, user, t, case_id, form_type=event_type, state=state, status=409
        )
    if accepted.position is not None:
        services.runner.wait_for(accepted.position, services.settings.read_wait_seconds)
    return RedirectResponse(f"/web/cases/{case_id}?saved={event_type}", status_code=303)


@router.get("/web/roster")
def roster_page(
    request: Request, services: ServicesDep, user: UserDep, t: TranslatorDep
) -> Response:
    if user.kind is not AgencyKind.SHELTER:
        raise PermissionDeniedError("the roster is a shelter's page")
    roster = inbox_routes.read_roster(
        UUID(user.principal.agency_id), services, user.principal, 500
    )
    return page(request, "roster.html", t, user, title=t.gettext("Roster"), roster=roster)
