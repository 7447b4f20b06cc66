"""The directory of agencies, users and access tokens, kept as an event-sourced history.

Agencies are data, not code: a country registers its own. Because the directory is a stream,
"who could act for whom, and when" is answered by replaying it to that moment.
Token secrets never enter it: only a hash of each token, its owner and its expiry.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Any
from uuid import UUID, uuid5

from eventsourcing.domain import Aggregate, event

from referral_core.errors import (
    DirectoryEntryNotFoundError,
    InconsistentStateError,
    InvalidCommandError,
)
from referral_core.vocab import AgencyKind, Role

DIRECTORY_NAMESPACE = UUID("5d0a3c1e-7f7b-4c1a-9a57-2f0a3f8a9b10")
DIRECTORY_ID = uuid5(DIRECTORY_NAMESPACE, "directory")
MAX_NAME = 200
MAX_TEXT = 2000
MIN_BREAK_GLASS_REASON = 20
COUNTRY_CODE = re.compile(r"[A-Z]{2}", re.ASCII)


def agency_id_for(slug: str) -> UUID:
    """A stable agency id from a short slug, so configuration files can name agencies."""
    return uuid5(DIRECTORY_NAMESPACE, f"agency:{slug}")


def _name(value: str) -> str:
    value = value.strip()
    if not 0 < len(value) <= MAX_NAME or any(not c.isprintable() for c in value):
        raise InvalidCommandError("names have 1 to 200 printable characters")
    return value


def _long_text(value: str) -> str:
    value = value.strip()
    if not 0 < len(value) <= MAX_TEXT:
        raise InvalidCommandError("text has 1 to 2000 characters")
    return value


class Directory(Aggregate):
    """All agencies, their users and users' tokens."""

    TOPIC = "referral.directory:Directory"

    class Created(Aggregate.Created):
        """Unused base: the directory is created by its `Started` event."""

        TOPIC = "referral.directory:Directory.Created"

    @event("Started", topic="referral.directory:Started")
    def __init__(self) -> None:
        self.agencies: dict[str, dict[str, Any]] = {}
        self.users: dict[str, dict[str, Any]] = {}
        self.tokens: dict[str, dict[str, Any]] = {}
        self.token_index: dict[str, str] = {}
        self.break_glass: dict[str, dict[str, Any]] = {}

    @classmethod
    def start(cls) -> Directory:
        started = cls.__dict__["Started"]
        return cls._create(started, id=DIRECTORY_ID)

    # -- commands --------------------------------------------------------------------------------

    def register_agency(
        self,
        agency_id: UUID,
        kind: AgencyKind,
        country: str,
        name: str,
        actor: dict[str, str],
    ) -> None:
        if str(agency_id) in self.agencies:
            raise InconsistentStateError("that agency is already registered")
        if COUNTRY_CODE.fullmatch(country) is None:
            raise InvalidCommandError("country is an ISO 3166-1 alpha-2 code")
        self._agency_registered(str(agency_id), kind.value, country, _name(name), actor)

    def add_user(
        self,
        user_id: UUID,
        agency_id: UUID,
        role: Role,
        display_name: str,
        actor: dict[str, str],
    ) -> None:
        self.agency(str(agency_id))
        if str(user_id) in self.users:
            raise InconsistentStateError("that user already exists")
        self._user_added(str(user_id), str(agency_id), role.value, _name(display_name), actor)

    def change_role(self, user_id: UUID, role: Role, actor: dict[str, str]) -> None:
        user = self.user(str(user_id))
        if not user["active"]:
            raise InconsistentStateError("a deactivated user's role is not changed")
        if user["role"] == role.value:
            raise InconsistentStateError("the user already has that role")
        self._role_changed(str(user_id), role.value, actor)

    def deactivate_user(self, user_id: UUID, reason: str, actor: dict[str, str]) -> None:
        user = self.user(str(user_id))
        if not user["active"]:
            raise InconsistentStateError("the user is already deactivated")
        self._user_deactivated(str(user_id), _name(reason), actor)

    def issue_token(
        self,
        token_id: UUID,
        user_id: UUID,
        token_hash: str,
        expires_at: datetime,
        actor: dict[str, str],
    ) -> None:
        user = self.user(str(user_id))
        if not user["active"]:
            raise InconsistentStateError("tokens are not issued to deactivated users")
        if token_hash in self.token_index:
            raise InconsistentStateError("token hash collision")
        self._token_issued(str(token_id), str(user_id), token_hash, expires_at.isoformat(), actor)

    def revoke_token(self, token_id: UUID, reason: str, actor: dict[str, str]) -> None:
        token = self.tokens.get(str(token_id))
        if token is None:
            raise DirectoryEntryNotFoundError("no such token")
        if token["revoked"]:
            raise InconsistentStateError("the token is already revoked")
        self._token_revoked(str(token_id), _name(reason), actor)

    def open_break_glass(
        self,
        grant_id: UUID,
        case_id: UUID,
        reason: str,
        expires_at: datetime,
        actor: dict[str, str],
    ) -> None:
        """Record an emergency read of a case outside the actor's scope, for later review.

        The actor is an active user of the directory: a removed user breaks no glass.
        """
        if len(reason.strip()) < MIN_BREAK_GLASS_REASON:
            raise InvalidCommandError(
                "break-glass needs a written reason of 20 characters or more"
            )
        if not self.user(str(actor["user_id"]))["active"]:
            raise InconsistentStateError("a deactivated user does not break the glass")
        self._break_glass_opened(
            str(grant_id), str(case_id), _long_text(reason), expires_at.isoformat(), actor
        )

    def review_break_glass(
        self, grant_id: UUID, outcome: str, note: str, actor: dict[str, str]
    ) -> None:
        grant = self.break_glass.get(str(grant_id))
        if grant is None:
            raise DirectoryEntryNotFoundError("no such break-glass access")
        if grant["reviewed"]:
            raise InconsistentStateError("that access is already reviewed")
        if grant["user_id"] == actor["user_id"]:
            raise InconsistentStateError("nobody reviews their own break-glass access")
        if outcome not in ("justified", "unjustified"):
            raise InvalidCommandError("outcome is justified or unjustified")
        self._break_glass_reviewed(str(grant_id), outcome, _long_text(note), actor)

    # -- queries ---------------------------------------------------------------------------------

    def active_break_glass(self, user_id: str, case_id: str, now: datetime) -> datetime | None:
        """When the user's break-glass access to the case ends, if one is open now.

        A grant reviewed as unjustified ends at its review.
        """
        latest: datetime | None = None
        for grant in self.break_glass.values():
            if grant["outcome"] == "unjustified":
                continue
            if grant["user_id"] == user_id and grant["case_id"] == case_id:
                until = datetime.fromisoformat(grant["expires_at"])
                if until > now and (latest is None or until > latest):
                    latest = until
        return latest

    def agency(self, agency_id: str) -> dict[str, Any]:
        try:
            return self.agencies[agency_id]
        except KeyError:
            raise DirectoryEntryNotFoundError("no such agency") from None

    def user(self, user_id: str) -> dict[str, Any]:
        try:
            return self.users[user_id]
        except KeyError:
            raise DirectoryEntryNotFoundError("no such user") from None

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        token_id = self.token_index.get(token_hash)
        return None if token_id is None else self.tokens[token_id]

    # -- events ----------------------------------------------------------------------------------

    @event("AgencyRegistered", topic="referral.directory:AgencyRegistered")
    def _agency_registered(
        self, agency_id: str, kind: str, country: str, name: str, actor: dict[str, str]
    ) -> None:
        self.agencies[agency_id] = {
            "agency_id": agency_id,
            "kind": kind,
            "country": country,
            "name": name,
        }

    @event("UserAdded", topic="referral.directory:UserAdded")
    def _user_added(
        self, user_id: str, agency_id: str, role: str, display_name: str, actor: dict[str, str]
    ) -> None:
        self.users[user_id] = {
            "user_id": user_id,
            "agency_id": agency_id,
            "role": role,
            "display_name": display_name,
            "active": True,
        }

    @event("UserRoleChanged", topic="referral.directory:UserRoleChanged")
    def _role_changed(self, user_id: str, role: str, actor: dict[str, str]) -> None:
        self.users[user_id]["role"] = role

    @event("UserDeactivated", topic="referral.directory:UserDeactivated")
    def _user_deactivated(self, user_id: str, reason: str, actor: dict[str, str]) -> None:
        self.users[user_id]["active"] = False
        for token in self.tokens.values():
            if token["user_id"] == user_id:
                token["revoked"] = True

    @event("TokenIssued", topic="referral.directory:TokenIssued")
    def _token_issued(
        self,
        token_id: str,
        user_id: str,
        token_hash: str,
        expires_at: str,
        actor: dict[str, str],
    ) -> None:
        self.tokens[token_id] = {
            "token_id": token_id,
            "user_id": user_id,
            "expires_at": expires_at,
            "revoked": False,
        }
        self.token_index[token_hash] = token_id

    @event("BreakGlassOpened", topic="referral.directory:BreakGlassOpened")
    def _break_glass_opened(
        self, grant_id: str, case_id: str, reason: str, expires_at: str, actor: dict[str, str]
    ) -> None:
        self.break_glass[grant_id] = {
            "grant_id": grant_id,
            "case_id": case_id,
            "user_id": actor["user_id"],
            "agency_id": actor["agency_id"],
            "reason": reason,
            "expires_at": expires_at,
            "reviewed": False,
            "outcome": None,
        }

    @event("BreakGlassReviewed", topic="referral.directory:BreakGlassReviewed")
    def _break_glass_reviewed(
        self, grant_id: str, outcome: str, note: str, actor: dict[str, str]
    ) -> None:
        self.break_glass[grant_id].update(
            reviewed=True, outcome=outcome, reviewed_by=actor["user_id"], note=note
        )

    @event("TokenRevoked", topic="referral.directory:TokenRevoked")
    def _token_revoked(self, token_id: str, reason: str, actor: dict[str, str]) -> None:
        self.tokens[token_id]["revoked"] = True
