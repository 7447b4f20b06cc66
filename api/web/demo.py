"""Web credentials for the demo users: a username, a fresh random password and a TOTP secret
each, so `make run` can print how to sign in. Synthetic users only; the passwords are new on
every `referral demo` and exist nowhere but the console and `demo-credentials.json`.
"""

from __future__ import annotations

import secrets
from datetime import datetime
from typing import Any

from adapters.crypto.master import MasterKeys
from api.web.credentials import set_credentials
from api.web.store import Database, create_tables
from referral_core.synthetic import DEMO_AGENCIES


def demo_username(agency_slug: str, role: str) -> str:
    return f"{agency_slug}-{role}".replace("_", "-")


def demo_web_credentials(
    db: Database, keys: MasterKeys, now: datetime
) -> dict[str, dict[str, Any]]:
    """Set web credentials for every demo user; by user id: username, password, TOTP secret."""
    create_tables(db)
    found: dict[str, dict[str, Any]] = {}
    for agency in DEMO_AGENCIES:
        for user in agency.users:
            username = demo_username(agency.slug, user.role.value)
            password = secrets.token_urlsafe(12)
            secret = set_credentials(
                db, keys, user_id=str(user.user_id), username=username, password=password, now=now
            )
            found[str(user.user_id)] = {
                "username": username,
                "password": password,
                "totp_secret": secret,
            }
    return found
