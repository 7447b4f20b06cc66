"""Authentication: bearer tokens checked against the directory, behind one resolver interface.

Tokens are 256-bit random strings shown once; the directory keeps only their SHA-256 (a slow
password hash adds nothing to a secret of that entropy). Another resolver, e.g. OIDC with a
JWKS, can be plugged in by configuration: anything with `resolve(token) -> Principal`.
"""

from __future__ import annotations

import copy
import hashlib
import math
import secrets
import threading
import time
from datetime import datetime, timedelta
from typing import Protocol
from uuid import UUID, uuid4

from referral_core.application import ReferralApplication, replay
from referral_core.directory import DIRECTORY_ID, Directory
from referral_core.policy import Principal
from referral_core.vocab import AgencyKind, Role

TOKEN_PREFIX = "rfl_"  # noqa: S105 -- a public prefix, not a secret
MAX_TOKEN_LENGTH = 512


class AuthenticationError(Exception):
    """The credentials are missing, malformed, unknown, expired or revoked."""


class PrincipalResolver(Protocol):
    def resolve(self, token: str) -> Principal: ...


def new_token() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def well_formed_hash(token: str) -> str:
    """The hash a directory token is known by; AuthenticationError if it cannot be one."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > MAX_TOKEN_LENGTH:
        raise AuthenticationError("malformed token")
    return hash_token(token)


class DirectoryView:
    """The current directory, kept in memory and fast-forwarded from the log on each use.

    A call asks the store for the directory's events after the version held, so a change
    committed before the call (a token revoked, a user deactivated) is in what it returns. The
    round trip runs without a lock: concurrent requests do not queue behind one another's.
    What `current` returns is never changed afterwards (copy on write: newer events are
    applied to a copy, which then replaces it), so a caller may read it while others advance.

    A caller that only needs the changes committed before some moment (a request: those
    before it arrived) passes that moment as `since` (`time.perf_counter()`): a read of the
    store that began at or after it, by any thread, has seen them all, so the directory held
    since that read serves without another query. Under load most requests arrive before some
    other request's read begins, and skip the round trip.
    """

    def __init__(self, app: ReferralApplication) -> None:
        self.app = app
        self._lock = threading.Lock()  # only around applying events and swapping, no I/O
        self._directory: Directory | None = None
        self._read_began = -math.inf  # when the latest-begun completed read of the store began

    @property
    def held(self) -> Directory | None:
        """The directory as last read, without asking the store (None before the first read)."""
        return self._directory

    def current(self, since: float | None = None) -> Directory:
        # The time first: a read publishes its directory before its time (both under the
        # lock), so the directory found next is at least what that read returned.
        read_began = self._read_began
        held = self._directory
        if held is not None and since is not None and read_began >= since:
            return held
        began = time.perf_counter()
        if held is None:
            return self._read(began, self.app.directory())
        newer = list(self.app.events.get(DIRECTORY_ID, gt=held.version))
        if not newer:
            return self._read(began, held)
        with self._lock:
            latest = self._directory
            assert latest is not None  # noqa: S101 -- set before, never unset
            if latest.version >= newer[-1].originator_version:
                self._read_began = max(self._read_began, began)
                return latest  # another request applied these (and maybe more) already
            # `newer` holds every event after `held`, and `latest` is no older than `held`.
            unseen = [e for e in newer if e.originator_version > latest.version]
            advanced: Directory = replay(copy.deepcopy(latest), unseen)
            self._directory = advanced
            self._read_began = max(self._read_began, began)
            return advanced

    def _read(self, began: float, loaded: Directory) -> Directory:
        """Keep what a read begun at `began` returned, unless something newer is held."""
        with self._lock:
            if self._directory is None or self._directory.version < loaded.version:
                self._directory = loaded
            self._read_began = max(self._read_began, began)
            return self._directory


class DirectoryTokenResolver:
    """Resolve bearer tokens issued by `issue_token` against the directory.

    What a token resolves to in one directory (its principal and expiry) is remembered for
    as long as that same directory is the one asked about: a served directory never changes
    (`DirectoryView`), and a change to it is a new directory, which starts afresh. Only
    tokens that resolved are remembered; the expiry is checked on every call.
    """

    def __init__(self, app: ReferralApplication, view: DirectoryView | None = None) -> None:
        self.app = app
        self.view = view or DirectoryView(app)
        self._resolved: tuple[Directory | None, dict[str, tuple[Principal, datetime]]] = (
            None,
            {},
        )

    def resolve(self, token: str) -> Principal:
        token_hash = well_formed_hash(token)
        return self.resolve_hashed(self.view.current(), token_hash)

    def resolve_in(self, directory: Directory, token: str) -> Principal:
        """Resolve against a directory the caller has just read with `view.current()`."""
        return self.resolve_hashed(directory, well_formed_hash(token))

    def resolve_hashed(self, directory: Directory, token_hash: str) -> Principal:
        """`resolve_in` for a token already hashed by `well_formed_hash`."""
        held, resolved = self._resolved
        if held is not directory:
            resolved = {}
            self._resolved = (directory, resolved)  # one swap: readers see either pair whole
        found = resolved.get(token_hash)
        if found is None:
            found = self._look_up(directory, token_hash)
            resolved[token_hash] = found
        principal, expires_at = found
        if expires_at <= self.app.clock():
            raise AuthenticationError("expired token")
        return principal

    @staticmethod
    def _look_up(directory: Directory, token_hash: str) -> tuple[Principal, datetime]:
        record = directory.token_by_hash(token_hash)
        if record is None:
            raise AuthenticationError("unknown token")
        if record["revoked"]:
            raise AuthenticationError("revoked token")
        user = directory.users.get(record["user_id"])
        if user is None or not user["active"]:
            raise AuthenticationError("inactive user")
        agency = directory.agencies[user["agency_id"]]
        principal = Principal(
            user_id=user["user_id"],
            agency_id=user["agency_id"],
            agency_kind=AgencyKind(agency["kind"]),
            role=Role(user["role"]),
        )
        return principal, datetime.fromisoformat(record["expires_at"])


def issue_token(
    app: ReferralApplication,
    user_id: UUID,
    *,
    ttl: timedelta,
    actor: dict[str, str],
) -> tuple[UUID, str]:
    """Issue a token for a user; return its id and the secret, which is never stored."""
    token = new_token()
    token_id = uuid4()
    expires_at = app.clock() + ttl
    app.change_directory(
        lambda d: d.issue_token(token_id, user_id, hash_token(token), expires_at, actor)
    )
    return token_id, token
