"""The anonymous public report form (as Paniamor's site offered in Costa Rica).

Anyone may report a suspected case without signing in. The report is recorded as a
`ContactReceived` (channel web form, anonymous) opening a case led by a hotline, so it appears
in that hotline's inbox: the hotline named by `REFERRAL_PUBLIC_REPORT_AGENCY`, or else the
hotline of the country the reporter picks (every hotline agency in the directory is offered).
No IP address, browser fingerprint, user agent or name is kept: the payload holds only what the
form asked, and the actor is the form itself on behalf of the hotline. Reports are limited per
process by `ratelimit.SlidingWindow`; the emergency number is on every page of the form.
"""

from __future__ import annotations

from typing import Annotated, Any
from uuid import UUID, uuid4

from fastapi import APIRouter, Form, Request, Response
from pydantic import ValidationError

from api.context import Services, ServicesDep
from api.web.auth_routes import anonymous_form, anonymous_form_ok
from api.web.context import TranslatorDep
from api.web.i18n import N_
from api.web.ratelimit import SlidingWindow
from api.web.render import WebRoute, page
from api.web.sessions import CSRF_FIELD
from referral_core.directory import agency_id_for
from referral_core.envelope import Actor, Envelope
from referral_core.errors import ReferralError
from referral_core.vocab import AgencyKind, CallerType, ContactTopic, Role, Sex

router = APIRouter(route_class=WebRoute, include_in_schema=False)
FORM_ACTOR = "public-report-form"
TOPICS = (
    ContactTopic.REPORT_OF_EXPLOITATION,
    ContactTopic.MISSING_CHILD_ABROAD,
    ContactTopic.ONLINE_ABUSE,
    ContactTopic.EMPLOYMENT_ABROAD,
    ContactTopic.OTHER,
)
CALLERS = (
    CallerType.MEMBER_OF_PUBLIC,
    CallerType.CHILD,
    CallerType.PARENT,
    CallerType.RELATIVE,
    CallerType.FRIEND,
    CallerType.PROFESSIONAL,
)


def limiter(request: Request) -> SlidingWindow:
    """The process's limiter (made by `api.web.install` from the settings)."""
    found: SlidingWindow = request.app.state.public_report_limiter
    return found


def hotlines(services: Services) -> dict[str, dict[str, Any]]:
    """The hotlines a report may go to, by country code."""
    agencies = services.directory.current().agencies
    configured = services.settings.public_report_agency.strip()
    if configured:
        try:
            wanted = str(UUID(configured))
        except ValueError:
            wanted = str(agency_id_for(configured))
        agency = agencies.get(wanted)
        return {} if agency is None else {agency["country"]: agency}
    found: dict[str, dict[str, Any]] = {}
    for agency in sorted(agencies.values(), key=lambda a: (a["country"], a["name"])):
        if agency["kind"] == AgencyKind.HOTLINE.value:
            found.setdefault(agency["country"], agency)
    return found


def _form(
    request: Request,
    services: Services,
    t: Any,
    *,
    status: int = 200,
    error: str | None = None,
    errors: dict[str, str] | None = None,
    values: dict[str, Any] | None = None,
    sent: bool = False,
) -> Response:
    token, cookie = anonymous_form(request, services, "/report")
    response = page(
        request,
        "report.html",
        t,
        status=status,
        title=t.gettext("Report a suspected case"),
        form_token=token,
        hotlines=hotlines(services),
        topics=[x.value for x in TOPICS],
        callers=[x.value for x in CALLERS],
        sexes=[x.value for x in Sex],
        emergency=services.settings.emergency_number,
        error=error,
        errors=errors or {},
        values=values or {},
        sent=sent,
    )
    response.set_cookie(**cookie)  # type: ignore[arg-type]
    return response


@router.get("/report")
def report_page(request: Request, services: ServicesDep, t: TranslatorDep) -> Response:
    return _form(request, services, t)


@router.post("/report")
def report_submit(  # noqa: PLR0917
    request: Request,
    services: ServicesDep,
    t: TranslatorDep,
    country: Annotated[str, Form(max_length=2)] = "",
    topic: Annotated[str, Form(max_length=40)] = "",
    caller_type: Annotated[str, Form(max_length=40)] = "",
    child_age_years: Annotated[str, Form(max_length=3)] = "",
    child_sex: Annotated[str, Form(max_length=40)] = "unknown",
    imminent_danger: Annotated[str, Form(max_length=3)] = "",
    summary: Annotated[str, Form(max_length=4000)] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=64)] = "",
) -> Response:
    values = {
        "country": country,
        "topic": topic,
        "caller_type": caller_type,
        "child_age_years": child_age_years,
        "child_sex": child_sex,
        "imminent_danger": imminent_danger == "on",
        "summary": summary,
    }
    if not anonymous_form_ok(request, csrf_token):
        return _form(
            request, services, t, status=403, values=values,
            error=N_("The form expired. Please try again."),
        )  # fmt: skip
    options = hotlines(services)
    hotline = options.get(country) or (next(iter(options.values())) if len(options) == 1 else None)
    errors: dict[str, str] = {}
    if hotline is None:
        errors["country"] = N_("Choose a country.")
    if topic not in {x.value for x in TOPICS}:
        errors["topic"] = N_("Choose what the report is about.")
    if caller_type not in {x.value for x in CALLERS}:
        errors["caller_type"] = N_("Choose who you are.")
    if child_age_years and not (child_age_years.isdigit() and int(child_age_years) <= 25):  # noqa: PLR2004
        errors["child_age_years"] = N_("Enter an age from 0 to 25, or leave it empty.")
    if not summary.strip():
        errors["summary"] = N_("Tell us what you saw or know.")
    if errors or hotline is None:
        return _form(
            request, services, t, status=422, errors=errors, values=values,
            error=N_("Some fields need attention."),
        )  # fmt: skip
    if not limiter(request).allow(services.app.clock()):
        response = _form(
            request, services, t, status=429, values=values,
            error=N_(
                "Too many reports are arriving right now. Please call the number above, "
                "or try again in a few minutes."
            ),
        )  # fmt: skip
        response.headers["Retry-After"] = str(services.settings.public_report_window_seconds)
        return response
    payload: dict[str, Any] = {
        "channel": "web_form",
        "anonymous": True,
        "caller_type": caller_type,
        "topics": [topic],
        "imminent_danger": values["imminent_danger"],
        "child_sex": child_sex if child_sex in {x.value for x in Sex} else "unknown",
        "country_of_concern": hotline["country"],
        "summary": summary.strip(),
    }
    if child_age_years:
        payload["child_age_years"] = int(child_age_years)
    envelope = Envelope(
        event_id=uuid4(),
        actor=Actor(FORM_ACTOR, hotline["agency_id"], Role.CASEWORKER),
        occurred_at=services.app.clock(),
        correlation_id=str(getattr(request.state, "request_id", "") or uuid4()),
    )
    try:
        services.app.open_case(event_type="ContactReceived", payload=payload, envelope=envelope)
    except (ReferralError, ValidationError):
        return _form(
            request, services, t, status=422, values=values,
            error=N_("Some fields need attention."),
        )  # fmt: skip
    services.runner.nudge.set()
    return _form(request, services, t, sent=True)
