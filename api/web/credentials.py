"""Web credentials: an argon2id password hash and a TOTP secret sealed under the master key.

Every web user signs in with a password and a one-time code (RFC 6238): every role that can
see identifying data needs one, and a code for all is simpler than telling roles apart. A code
is accepted once (its time step is remembered) within one step of the clock either side.
After `lockout_failures` consecutive failures the account is locked for `lockout_minutes`.
Every attempt is recorded in `web_signins` (when, who, outcome), never the password or code.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pyotp
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.crypto.master import MasterKeys
from api.web.store import Database
from projections.work_common import stored_time

HASHER = PasswordHasher()
MIN_PASSWORD = 12
MAX_PASSWORD = 256
TOTP_STEP = 30
NONCE = 12
# A hash of a random password, verified when the username is unknown so that a guess at a
# username costs as long as a guess at a password.
_DECOY = HASHER.hash(secrets.token_urlsafe(16))


class CredentialError(ValueError):
    """A password or username that cannot be set."""


@dataclass(frozen=True)
class SignInOutcome:
    user_id: str | None
    outcome: str
    """signed_in, unknown_user, bad_password, bad_code, locked"""

    @property
    def ok(self) -> bool:
        return self.outcome == "signed_in"


def _aad(user_id: str) -> bytes:
    return f"referral-web-totp:{user_id}".encode()


def seal_secret(keys: MasterKeys, user_id: str, secret: str) -> str:
    nonce = secrets.token_bytes(NONCE)
    sealed = AESGCM(keys.current).encrypt(nonce, secret.encode(), _aad(user_id))
    return f"{keys.current_id}:{base64.b64encode(nonce + sealed).decode()}"


def open_secret(keys: MasterKeys, user_id: str, sealed: str) -> str | None:
    key_id, _, body = sealed.partition(":")
    key = keys.keys.get(key_id)
    if key is None:
        return None
    raw = base64.b64decode(body)
    try:
        return AESGCM(key).decrypt(raw[:NONCE], raw[NONCE:], _aad(user_id)).decode()
    except InvalidTag:
        return None


def check_password(password: str) -> None:
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise CredentialError(f"a password has {MIN_PASSWORD} to {MAX_PASSWORD} characters")


def set_credentials(
    db: Database,
    keys: MasterKeys,
    *,
    user_id: str,
    username: str,
    password: str,
    now: datetime,
    totp_secret: str | None = None,
) -> str:
    """Set (or replace) a user's username, password and TOTP secret; return the secret."""
    username = username.strip().lower()
    if not 3 <= len(username) <= 64 or not all(c.isalnum() or c in "-_." for c in username):  # noqa: PLR2004
        raise CredentialError("a username has 3 to 64 letters, digits, '-', '_' or '.'")
    check_password(password)
    secret = totp_secret or pyotp.random_base32()
    row = (
        user_id,
        username,
        HASHER.hash(password),
        seal_secret(keys, user_id, secret),
        stored_time(now),
    )
    with db.transaction() as tx:
        taken = tx.fetchone(
            "SELECT user_id FROM web_credentials WHERE username = ? AND user_id <> ?",
            (username, user_id),
        )
        if taken is not None:
            raise CredentialError("that username belongs to another user")
        tx.execute("DELETE FROM web_credentials WHERE user_id = ?", (user_id,))
        tx.execute(
            "INSERT INTO web_credentials (user_id, username, password_hash, totp_sealed, "
            "updated_at) VALUES (?, ?, ?, ?, ?)",
            row,
        )
    return secret


def record_signin(
    db: Database, now: datetime, user_id: str | None, username: str | None, outcome: str
) -> None:
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO web_signins (at, user_id, username, outcome) VALUES (?, ?, ?, ?)",
            (stored_time(now), user_id, username, outcome),
        )


def recent_signins(db: Database, limit: int = 100) -> list[dict[str, Any]]:
    with db.transaction() as tx:
        rows = tx.fetchall(
            "SELECT at, user_id, username, outcome FROM web_signins ORDER BY at DESC LIMIT ?",
            (limit,),
        )
    return [
        {"at": datetime.fromisoformat(r[0]), "user_id": r[1], "username": r[2], "outcome": r[3]}
        for r in rows
    ]


def _code_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step the code belongs to (now or one step either side), or None."""
    if not (len(code) == 6 and code.isdigit()):  # noqa: PLR2004
        return None
    totp = pyotp.TOTP(secret, interval=TOTP_STEP)
    current = int(now.timestamp()) // TOTP_STEP
    for step in (current, current - 1, current + 1):
        if secrets.compare_digest(totp.at(step * TOTP_STEP), code):
            return step
    return None


def sign_in(
    db: Database,
    keys: MasterKeys,
    *,
    username: str,
    password: str,
    code: str,
    now: datetime,
    lockout_failures: int,
    lockout_minutes: int,
) -> SignInOutcome:
    """Check a sign-in, update the failure count and lock, record the attempt."""
    username = username.strip().lower()[:64]
    with db.transaction() as tx:
        row = tx.fetchone(
            "SELECT user_id, password_hash, totp_sealed, totp_last_step, failures, locked_until "
            "FROM web_credentials WHERE username = ?",
            (username,),
        )
    if row is None:
        _verify(_DECOY, password)
        result = SignInOutcome(None, "unknown_user")
        record_signin(db, now, None, None, result.outcome)
        return result
    user_id, password_hash, sealed, last_step, failures, locked_until = row
    if locked_until is not None and datetime.fromisoformat(locked_until) > now:
        result = SignInOutcome(user_id, "locked")
        record_signin(db, now, user_id, username, result.outcome)
        return result
    outcome = "signed_in"
    step: int | None = None
    if not _verify(password_hash, password):
        outcome = "bad_password"
    else:
        secret = open_secret(keys, user_id, sealed)
        step = None if secret is None else _code_step(secret, code.strip(), now)
        if step is None or step <= int(last_step):
            outcome = "bad_code"
    with db.transaction() as tx:
        if outcome == "signed_in":
            tx.execute(
                "UPDATE web_credentials SET failures = 0, locked_until = NULL, "
                "totp_last_step = ? WHERE user_id = ?",
                (step, user_id),
            )
        else:
            count = int(failures) + 1
            lock = None
            if count >= lockout_failures:
                lock = stored_time(now + timedelta(minutes=lockout_minutes))
                count = 0
            tx.execute(
                "UPDATE web_credentials SET failures = ?, locked_until = ? WHERE user_id = ?",
                (count, lock, user_id),
            )
            if lock is not None:
                outcome = f"{outcome}_locked"
    record_signin(db, now, user_id, username, outcome)
    return SignInOutcome(user_id, outcome)


def _verify(password_hash: str, password: str) -> bool:
    try:
        return HASHER.verify(password_hash, password[:MAX_PASSWORD])
    except (VerificationError, InvalidHashError):
        return False


def username_of(db: Database, user_id: str) -> str | None:
    with db.transaction() as tx:
        row = tx.fetchone("SELECT username FROM web_credentials WHERE user_id = ?", (user_id,))
    return None if row is None else str(row[0])
