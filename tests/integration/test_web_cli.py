"""`referral users password`: web credentials from the command line, secrets shown once."""

from __future__ import annotations

import re
from pathlib import Path
from uuid import uuid4

import pyotp
import pytest

from adapters.store import build_application
from api.cli import main
from api.keys import master_keys
from api.settings import Settings
from api.web.credentials import sign_in
from projections.db import open_database
from referral_core.directory import agency_id_for
from referral_core.vocab import AgencyKind, Role

ACTOR = {"user_id": "test", "agency_id": "system", "role": "admin"}


def test_users_password_sets_a_username_password_and_totp_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"sqlite:///{tmp_path / 'referral.sqlite'}"
    monkeypatch.setenv("REFERRAL_DATABASE_URL", url)
    monkeypatch.setenv("REFERRAL_DATA_DIR", str(tmp_path))
    app = build_application(url)
    agency = agency_id_for("cli-ngo")
    user = uuid4()
    app.change_directory(lambda d: d.register_agency(agency, AgencyKind.NGO, "UA", "NGO", ACTOR))
    app.change_directory(lambda d: d.add_user(user, agency, Role.CASEWORKER, "Worker", ACTOR))
    app.close()

    monkeypatch.setenv("REFERRAL_NEW_PASSWORD", "short")
    assert main(["users", "password", str(user), "--username", "worker1"]) == 2
    assert "a password has 12" in capsys.readouterr().err

    monkeypatch.setenv("REFERRAL_NEW_PASSWORD", "a perfectly long password")
    assert main(["users", "password", str(user), "--username", "Worker1"]) == 0
    out = capsys.readouterr().out
    secret = re.search(r"TOTP secret ([A-Z2-7]+)", out).group(1)  # type: ignore[union-attr]
    assert "otpauth://totp/referral:worker1" in out

    settings = Settings()
    db = open_database(url)
    try:
        now = build_application(url).clock()
        outcome = sign_in(
            db,
            master_keys(settings),
            username="worker1",
            password="a perfectly long password",
            code=pyotp.TOTP(secret).at(now),
            now=now,
            lockout_failures=5,
            lockout_minutes=15,
        )
    finally:
        db.close()
    assert outcome.ok
    assert outcome.user_id == str(user)
