"""Opening a case from the web: a contact received or a child identified.

The form is built from the payload model like every event form; the post goes through the
JSON API's own `open_case` (policy check, validation, idempotency key from the form).
"""

from __future__ import annotations

from typing import Annotated
from uuid import uuid4

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import RedirectResponse

from api.context import Services, ServicesDep
from api.routers import cases as case_routes
from api.web.context import TranslatorDep, UserDep, WebUser, require_csrf
from api.web.forms import FormState, field_errors, fields_of, values_from_form
from api.web.i18n import Translator
from api.web.render import WebRoute, page
from api.web.sessions import CSRF_FIELD
from api.web.work_routes import agency_names, submission_from_form
from referral_core.errors import InvalidPayloadError, PermissionDeniedError, ReferralError
from referral_core.policy import may_append_kind

router = APIRouter(route_class=WebRoute, include_in_schema=False)
OPENING = ("ContactReceived", "ChildIdentified")


def opening_types(user: WebUser) -> list[str]:
    return [t for t in OPENING if may_append_kind(user.principal, t)]


def _render(  # noqa: PLR0917
    request: Request,
    services: Services,
    user: WebUser,
    t: Translator,
    form_type: str | None,
    state: FormState | None = None,
    status: int = 200,
) -> Response:
    allowed = opening_types(user)
    if not allowed:
        raise PermissionDeniedError("this agency does not open cases")
    chosen = form_type if form_type in allowed else allowed[0]
    return page(
        request,
        "new_case.html",
        t,
        user,
        status=status,
        title=t.gettext("Open a case"),
        allowed=allowed,
        form_type=chosen,
        fields=fields_of(chosen),
        state=state or FormState(),
        names=agency_names(services),
        now_local=services.app.clock().strftime("%Y-%m-%dT%H:%M"),
        idem=uuid4().hex,
    )


@router.get("/web/cases/new")
def new_case_page(
    request: Request,
    services: ServicesDep,
    user: UserDep,
    t: TranslatorDep,
    form: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    return _render(request, services, user, t, form)


@router.post("/web/cases/new")
async def new_case_submit(
    request: Request, services: ServicesDep, user: UserDep, t: TranslatorDep
) -> Response:
    form = await request.form()
    require_csrf(user, str(form.get(CSRF_FIELD) or ""))
    event_type = str(form.get("type") or "")
    if event_type not in opening_types(user):
        raise PermissionDeniedError("this agency does not open cases with that event")
    submission = submission_from_form(event_type, form, t, services.app.clock())
    if isinstance(submission, FormState):
        return _render(request, services, user, t, event_type, submission, 422)
    values = values_from_form(event_type, form)
    try:
        accepted = case_routes.open_case(
            submission=submission,
            request=request,
            response=Response(),
            services=services,
            principal=user.principal,
            idempotency_key=str(form.get("idem") or "")[:64] or None,
        )
    except InvalidPayloadError as exc:
        state = FormState(
            values, field_errors(exc.errors), t.gettext("Some fields need attention.")
        )
        return _render(request, services, user, t, event_type, state, 422)
    except ReferralError as exc:
        if isinstance(exc, PermissionDeniedError):
            raise
        state = FormState(values, {}, t.gettext("Not saved: {reason}", reason=exc.message))
        return _render(request, services, user, t, event_type, state, 409)
    if accepted.position is not None:
        services.runner.wait_for(accepted.position, services.settings.read_wait_seconds)
    return RedirectResponse(f"/web/cases/{accepted.case_id}?saved={event_type}", status_code=303)
