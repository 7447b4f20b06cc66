"""Who is asking, for a page: the session's user as a policy `Principal`, and the page chrome.

A page asks `signed_in(request)`; without a live session it raises `SignInRequiredError`,
which the web routes turn into a redirect to the sign-in page. The principal is built from
the directory at each request, so a deactivated user or a changed role counts at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from api.context import Services, get_services
from api.problems import Problem
from api.web.i18n import N_, Translator, negotiate
from api.web.sessions import LANG_COOKIE, Session, cookie_name, resolve_session, tokens_match
from referral_core.policy import Principal
from referral_core.vocab import AgencyKind, Role


class SignInRequiredError(Exception):
    """No live session: the page redirects to the sign-in page."""

    def __init__(self, reason: str | None = None) -> None:
        super().__init__(reason or "sign in")
        self.reason = reason


@dataclass(frozen=True)
class WebUser:
    principal: Principal
    session: Session
    display_name: str
    agency_name: str

    @property
    def kind(self) -> AgencyKind:
        return self.principal.agency_kind


def translator(request: Request) -> Translator:
    lang = negotiate(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))
    return Translator(lang)


def signed_in(request: Request) -> WebUser:
    services: Services = get_services(request)
    cookie = request.cookies.get(cookie_name(services.settings))
    now = services.app.clock()
    session, ended = resolve_session(services.db, cookie, now, services.settings)
    if session is None:
        raise SignInRequiredError(ended)
    directory = services.directory.current()
    user = directory.users.get(session.user_id)
    if user is None or not user["active"]:
        raise SignInRequiredError("inactive")
    agency = directory.agencies[user["agency_id"]]
    principal = Principal(
        user_id=user["user_id"],
        agency_id=user["agency_id"],
        agency_kind=AgencyKind(agency["kind"]),
        role=Role(user["role"]),
    )
    request.state.principal = principal
    return WebUser(principal, session, user["display_name"], agency["name"])


def require_csrf(user: WebUser, given: str | None) -> None:
    """Refuse a signed-in form post whose token is not the session's."""
    if not tokens_match(user.session.csrf, given):
        raise Problem(403, "csrf", N_("The form expired. Please reload the page and try again."))


UserDep = Annotated[WebUser, Depends(signed_in)]
TranslatorDep = Annotated[Translator, Depends(translator)]
