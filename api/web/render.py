"""Rendering pages: the Jinja2 environment, the page chrome, and errors shown as pages.

`WebRoute` is the route class of every web router: a missing session becomes a redirect to
sign-in, and domain or HTTP problems become an HTML page with the same status the JSON API
would give (a case out of sight is 404, exactly like one that does not exist).
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from jinja2 import Environment, FileSystemLoader, select_autoescape

from api.problems import Problem
from api.web.context import SignInRequiredError, WebUser, translator
from api.web.i18n import LANGUAGES, N_, Translator
from referral_core.errors import NotFoundError, PermissionDeniedError, ReferralError
from referral_core.vocab import AgencyKind

TEMPLATES = Path(__file__).parent / "templates"
ENV = Environment(
    loader=FileSystemLoader(TEMPLATES),
    autoescape=select_autoescape(["html"]),
    trim_blocks=True,
    lstrip_blocks=True,
)
SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

K = AgencyKind
CASE_KINDS = frozenset(K) - {K.MINISTRY, K.COORDINATOR, K.AUDITOR}
STATS_KINDS = frozenset({K.MINISTRY, K.COORDINATOR, K.AUDITOR, K.HOTLINE})


def navigation(user: WebUser | None) -> list[tuple[str, str]]:
    """(path, English label) of the pages this user's agency has."""
    if user is None:
        return []
    kind = user.kind
    items = [("/web/inbox", N_("Inbox")), ("/web/cases", N_("Cases"))]
    if kind is K.SHELTER:
        items.append(("/web/roster", N_("Roster")))
    if kind in STATS_KINDS:
        items.append(("/web/dashboard", N_("Dashboard")))
    if kind is K.AUDITOR:
        items.append(("/web/audit", N_("Audit")))
    return items


def page(
    request: Request,
    template: str,
    t: Translator,
    user: WebUser | None = None,
    *,
    status: int = 200,
    title: str = "",
    **context: Any,
) -> HTMLResponse:
    body = ENV.get_template(template).render(
        request=request,
        path=request.url.path,
        here=quote(str(request.url.path) + (f"?{request.url.query}" if request.url.query else "")),
        t=t,
        _=t.gettext,
        lang=t.lang,
        languages=LANGUAGES,
        user=user,
        nav=navigation(user),
        csrf=user.session.csrf if user else context.pop("form_token", ""),
        title=title,
        **context,
    )
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def error_page(request: Request, status: int, message: str) -> HTMLResponse:
    t = translator(request)
    return page(request, "error.html", t, status=status, title=t.gettext(message), message=message)


class WebRoute(APIRoute):
    """Routes whose failures are pages, not problem documents."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def guarded(request: Request) -> Response:
            try:
                response: Response = await handler(request)
            except SignInRequiredError as exc:
                target = "/web/sign-in"
                if exc.reason:
                    target += f"?ended={quote(exc.reason)}"
                return RedirectResponse(target, status_code=303)
            except NotFoundError:
                return error_page(request, 404, N_("Not found"))
            except PermissionDeniedError:
                return error_page(request, 403, N_("Your agency may not use this page"))
            except Problem as exc:
                return error_page(request, exc.status, exc.title)
            except ReferralError as exc:
                return error_page(request, 409, exc.message)
            return response

        return guarded
