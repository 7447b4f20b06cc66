"""Web sessions and CSRF tokens.

The session cookie holds 256 random bits; the table keeps only their SHA-256, the user, a CSRF
token and the times of sign-in and last use. A session unused for `session_idle_minutes`, or
older than `session_max_hours`, is ended when next presented. The cookie is HttpOnly,
SameSite=Strict and, unless `cookie_secure` is off, Secure with the `__Host-` prefix.

CSRF: every form post carries a token. Signed-in forms carry the session's token; the
anonymous forms (sign-in, public report) carry a random token also set in a SameSite=Strict
cookie (double submit). Both are compared in constant time.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from api.settings import Settings
from api.web.store import Database
from projections.work_common import stored_time

SECURE_COOKIE = "__Host-referral-session"
PLAIN_COOKIE = "referral-session"
FORM_COOKIE = "referral-form"
LANG_COOKIE = "referral-lang"
CSRF_FIELD = "csrf_token"


@dataclass(frozen=True)
class Session:
    session_hash: str
    user_id: str
    csrf: str
    created_at: datetime
    last_seen: datetime


def cookie_name(settings: Settings) -> str:
    return SECURE_COOKIE if settings.cookie_secure else PLAIN_COOKIE


def _hash(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()


def start_session(db: Database, user_id: str, now: datetime, settings: Settings) -> str:
    """A new session for the user; returns the cookie value (shown to nobody else).

    Sessions that have ended (idle or too old) but were never presented again are purged here.
    """
    value = secrets.token_urlsafe(32)
    idle = stored_time(now - timedelta(minutes=settings.session_idle_minutes))
    old = stored_time(now - timedelta(hours=settings.session_max_hours))
    with db.transaction() as tx:
        tx.execute("DELETE FROM web_sessions WHERE last_seen < ? OR created_at < ?", (idle, old))
        tx.execute(
            "INSERT INTO web_sessions (session_hash, user_id, csrf, created_at, last_seen) "
            "VALUES (?, ?, ?, ?, ?)",
            (_hash(value), user_id, secrets.token_urlsafe(32), stored_time(now), stored_time(now)),
        )
    return value


def end_session(db: Database, cookie: str) -> None:
    with db.transaction() as tx:
        tx.execute("DELETE FROM web_sessions WHERE session_hash = ?", (_hash(cookie),))


def resolve_session(
    db: Database, cookie: str | None, now: datetime, settings: Settings
) -> tuple[Session | None, str | None]:
    """The live session of a cookie, touched now; or None and why it ended (idle, expired)."""
    if not cookie or len(cookie) > 100:  # noqa: PLR2004
        return None, None
    key = _hash(cookie)
    with db.transaction() as tx:
        row = tx.fetchone(
            "SELECT user_id, csrf, created_at, last_seen FROM web_sessions WHERE session_hash = ?",
            (key,),
        )
        if row is None:
            return None, None
        created = datetime.fromisoformat(row[2])
        last_seen = datetime.fromisoformat(row[3])
        ended = None
        if now - last_seen > timedelta(minutes=settings.session_idle_minutes):
            ended = "idle_timeout"
        elif now - created > timedelta(hours=settings.session_max_hours):
            ended = "expired"
        if ended is not None:
            tx.execute("DELETE FROM web_sessions WHERE session_hash = ?", (key,))
            return None, ended
        tx.execute(
            "UPDATE web_sessions SET last_seen = ? WHERE session_hash = ?",
            (stored_time(now), key),
        )
    return Session(key, str(row[0]), str(row[1]), created, now), None


def tokens_match(expected: str | None, given: str | None) -> bool:
    if not expected or not given:
        return False
    return secrets.compare_digest(expected.encode(), given.encode())


def new_form_token() -> str:
    return secrets.token_urlsafe(24)
