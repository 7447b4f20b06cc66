"""Sign-in, sign-out and the language switch.

The sign-in form asks for username, password and the authenticator's one-time code at once,
so a failure never says which of them was wrong. Every attempt is recorded (see
`credentials.sign_in`); a locked account says so without checking the password.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import RedirectResponse

from api.context import ServicesDep
from api.keys import master_keys
from api.web.context import TranslatorDep, UserDep, require_csrf
from api.web.credentials import record_signin, sign_in
from api.web.i18n import LANGUAGES, N_
from api.web.render import WebRoute, page
from api.web.sessions import (
    CSRF_FIELD,
    FORM_COOKIE,
    LANG_COOKIE,
    cookie_name,
    end_session,
    new_form_token,
    start_session,
    tokens_match,
)

router = APIRouter(route_class=WebRoute, include_in_schema=False)
LANG_COOKIE_DAYS = 365
FORM_COOKIE_PATHS = ("/web/sign-in", "/report")


def anonymous_form(
    request: Request, services: ServicesDep, path: str
) -> tuple[str, dict[str, str | bool]]:
    """The token of an anonymous form: the one already in the cookie, or a new one."""
    existing = request.cookies.get(FORM_COOKIE)
    token = existing if existing and len(existing) <= 64 else new_form_token()  # noqa: PLR2004
    cookie: dict[str, str | bool] = {
        "key": FORM_COOKIE,
        "value": token,
        "httponly": True,
        "samesite": "strict",
        "secure": services.settings.cookie_secure,
        "path": path,
    }
    return token, cookie


def anonymous_form_ok(request: Request, given: str | None) -> bool:
    return tokens_match(request.cookies.get(FORM_COOKIE), given)


@router.get("/web")
@router.get("/web/")
def web_home() -> RedirectResponse:
    return RedirectResponse("/web/inbox", status_code=303)


@router.get("/web/sign-in")
def sign_in_page(
    request: Request, services: ServicesDep, t: TranslatorDep, ended: str | None = None
) -> Response:
    token, cookie = anonymous_form(request, services, "/web/sign-in")
    notice = {
        "idle_timeout": N_("You were signed out after a period without activity."),
        "expired": N_("Your session ended. Please sign in again."),
        "signed_out": N_("You are signed out."),
    }.get(ended or "")
    response = page(
        request,
        "sign_in.html",
        t,
        title=t.gettext("Sign in"),
        form_token=token,
        notice=notice,
        error=None,
        username="",
    )
    response.set_cookie(**cookie)  # type: ignore[arg-type]
    return response


@router.post("/web/sign-in")
def sign_in_submit(  # noqa: PLR0917
    request: Request,
    services: ServicesDep,
    t: TranslatorDep,
    username: Annotated[str, Form(max_length=64)] = "",
    password: Annotated[str, Form(max_length=256)] = "",
    code: Annotated[str, Form(max_length=12)] = "",
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=64)] = "",
) -> Response:
    token, cookie = anonymous_form(request, services, "/web/sign-in")
    if not anonymous_form_ok(request, csrf_token):
        response = page(
            request,
            "sign_in.html",
            t,
            status=403,
            title=t.gettext("Sign in"),
            form_token=token,
            notice=None,
            error=N_("The form expired. Please try again."),
            username=username,
        )
        response.set_cookie(**cookie)  # type: ignore[arg-type]
        return response
    settings = services.settings
    now = services.app.clock()
    outcome = sign_in(
        services.db,
        master_keys(settings),
        username=username,
        password=password,
        code=code,
        now=now,
        lockout_failures=settings.lockout_failures,
        lockout_minutes=settings.lockout_minutes,
    )
    active = outcome.user_id is not None and services.directory.current().users.get(
        outcome.user_id, {}
    ).get("active", False)
    if not outcome.ok or not active or outcome.user_id is None:
        error = (
            N_("This account is locked after repeated failures. Try again later.")
            if outcome.outcome.endswith("locked")
            else N_("Those details did not match. Check the username, password and code.")
        )
        response = page(
            request,
            "sign_in.html",
            t,
            status=401,
            title=t.gettext("Sign in"),
            form_token=token,
            notice=None,
            error=error,
            username=username,
        )
        response.set_cookie(**cookie)  # type: ignore[arg-type]
        return response
    value = start_session(services.db, outcome.user_id, now, settings)
    redirect = RedirectResponse("/web/inbox", status_code=303)
    redirect.set_cookie(
        cookie_name(settings),
        value,
        httponly=True,
        samesite="strict",
        secure=settings.cookie_secure,
        path="/",
    )
    redirect.delete_cookie(FORM_COOKIE, path="/web/sign-in")
    return redirect


@router.post("/web/sign-out")
def sign_out(
    request: Request,
    services: ServicesDep,
    user: UserDep,
    csrf_token: Annotated[str, Form(alias=CSRF_FIELD, max_length=64)] = "",
) -> Response:
    require_csrf(user, csrf_token)
    name = cookie_name(services.settings)
    end_session(services.db, request.cookies.get(name, ""))
    record_signin(services.db, services.app.clock(), user.principal.user_id, None, "signed_out")
    response = RedirectResponse("/web/sign-in?ended=signed_out", status_code=303)
    response.delete_cookie(name, path="/", secure=services.settings.cookie_secure, httponly=True)
    return response


def _safe_next(target: str | None) -> str:
    if target and target.startswith(("/web", "/report")) and "//" not in target:
        return target
    return "/web/inbox"


@router.get("/web/lang/{code}")
def switch_language(code: str, services: ServicesDep, next: str | None = None) -> Response:  # noqa: A002
    response = RedirectResponse(_safe_next(next), status_code=303)
    if code in LANGUAGES:
        response.set_cookie(
            LANG_COOKIE,
            code,
            max_age=LANG_COOKIE_DAYS * 24 * 3600,
            httponly=True,
            samesite="lax",
            secure=services.settings.cookie_secure,
            path="/",
        )
    return response
