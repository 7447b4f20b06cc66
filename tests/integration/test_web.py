"""The web application over TestClient: sign-in with a code, sessions, CSRF, lock-out, idle
timeout, sign-out, the anonymous report form (rate limit, no IP kept), languages, and that
pages answer with the API's own policy. On SQLite and PostgreSQL."""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import pyotp
import pytest
from fastapi.testclient import TestClient

from api.keys import master_keys
from api.web.credentials import set_credentials
from api.web.i18n import LANGUAGES, catalogue
from tests.support.api import Harness, harness

PASSWORD = "correct horse battery staple"
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def web(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(database_url, tmp_path, public_report_limit=2) as h:
        yield h


def credentials(h: Harness, name: str, role: str = "caseworker") -> tuple[str, str]:
    """Give a harness user a web password and TOTP secret; return (username, secret)."""
    username = f"{name}-{role}"
    secret = set_credentials(
        h.services.db,
        master_keys(h.services.settings),
        user_id=h.users[(name, role)],
        username=username,
        password=PASSWORD,
        now=h.clock(),
    )
    return username, secret


def browser(h: Harness, **kwargs: Any) -> TestClient:
    """A second client (its own cookie jar) on the same app, over https so Secure cookies flow."""
    app = h.client.app
    return TestClient(app, base_url="https://testserver", raise_server_exceptions=False, **kwargs)


def form_token(client: TestClient, path: str) -> str:
    page = client.get(path)
    assert page.status_code == 200, page.text
    found = TOKEN.search(page.text)
    assert found is not None
    return found.group(1)


def sign_in(
    client: TestClient, h: Harness, username: str, secret: str, *, password: str = PASSWORD,
    code: str | None = None,
) -> Any:  # fmt: skip
    token = form_token(client, "/web/sign-in")
    totp = pyotp.TOTP(secret)
    return client.post(
        "/web/sign-in",
        data={
            "username": username,
            "password": password,
            "code": code if code is not None else totp.at(h.clock()),
            "csrf_token": token,
        },
        follow_redirects=False,
    )


def signins(h: Harness) -> list[tuple[Any, ...]]:
    with h.services.db.transaction() as tx:
        return tx.fetchall("SELECT user_id, username, outcome FROM web_signins ORDER BY at")


def test_sign_in_with_password_and_code_opens_a_strict_session(web: Harness) -> None:
    username, secret = credentials(web, "ngo")
    client = browser(web)
    assert client.get("/web/inbox", follow_redirects=False).headers["location"] == "/web/sign-in"
    response = sign_in(client, web, username, secret)
    assert response.status_code == 303
    assert response.headers["location"] == "/web/inbox"
    cookie = next(
        c for c in response.headers.get_list("set-cookie") if "referral-session" in c
    ).lower()
    assert cookie.startswith("__host-referral-session=")
    for flag in ("httponly", "secure", "samesite=strict", "path=/"):
        assert flag in cookie
    inbox = client.get("/web/inbox")
    assert inbox.status_code == 200
    assert "ngo caseworker" in inbox.text
    assert "Content-Security-Policy" in inbox.headers
    assert signins(web)[-1] == (web.users[("ngo", "caseworker")], username, "signed_in")
    with web.services.db.transaction() as tx:
        stored = " ".join(
            str(v) for row in tx.fetchall("SELECT * FROM web_credentials") for v in row
        )
    assert PASSWORD not in stored
    assert secret not in stored
    assert "$argon2id$" in stored


def test_a_code_is_accepted_once_and_a_wrong_one_never(web: Harness) -> None:
    username, secret = credentials(web, "ngo")
    code = pyotp.TOTP(secret).at(web.clock())
    assert sign_in(browser(web), web, username, secret, code=code).status_code == 303
    replay = sign_in(browser(web), web, username, secret, code=code)
    assert replay.status_code == 401
    wrong = sign_in(
        browser(web), web, username, secret, code="000000" if code != "000000" else "111111"
    )
    assert wrong.status_code == 401
    assert "did not match" in wrong.text
    assert [row[2] for row in signins(web)] == ["signed_in", "bad_code", "bad_code"]


def test_repeated_failures_lock_the_account_until_the_lock_ends(web: Harness) -> None:
    username, secret = credentials(web, "ngo")
    limit = web.services.settings.lockout_failures
    for _ in range(limit):
        assert (
            sign_in(browser(web), web, username, secret, password="wrong password!").status_code
            == 401
        )
    locked = sign_in(browser(web), web, username, secret)
    assert locked.status_code == 401
    assert "locked" in locked.text
    outcomes = [row[2] for row in signins(web)]
    assert outcomes[-2:] == ["bad_password_locked", "locked"]
    web.clock.advance(timedelta(minutes=web.services.settings.lockout_minutes, seconds=1))
    assert sign_in(browser(web), web, username, secret).status_code == 303
    unknown = sign_in(browser(web), web, "nobody-here", secret)
    assert unknown.status_code == 401
    assert signins(web)[-1] == (None, None, "unknown_user")


def test_form_posts_without_the_csrf_token_are_refused_and_change_nothing(web: Harness) -> None:
    username, secret = credentials(web, "ngo")
    client = browser(web)
    refused = client.post(
        "/web/sign-in",
        data={
            "username": username,
            "password": PASSWORD,
            "code": pyotp.TOTP(secret).at(web.clock()),
        },
    )
    assert refused.status_code == 403
    assert signins(web) == []
    assert sign_in(client, web, username, secret).status_code == 303
    case_id, version = web.open_case("ngo")
    body: dict[str, str] = {
        "type": "ServiceDelivered",
        "expected_version": str(version),
        "p.service_type": "education",
        "p.provider_agency_id": web.services.app.get_case(UUID(case_id)).lead_agency_id,
        "p.delivered_on": "2026-11-28",
        "p.outcome": "ongoing",
    }
    for token in (None, "forged-token"):
        data = body | ({"csrf_token": token} if token else {})
        response = client.post(f"/web/cases/{case_id}/events", data=data)
        assert response.status_code == 403
        assert "form expired" in response.text
    assert web.services.app.get_case(UUID(case_id)).version == version
    token = form_token(client, f"/web/cases/{case_id}")
    done = client.post(
        f"/web/cases/{case_id}/events", data=body | {"csrf_token": token}, follow_redirects=False
    )
    assert done.status_code == 303, done.text
    assert web.services.app.get_case(UUID(case_id)).version == version + 1


def test_an_idle_session_ends_and_sign_out_ends_it_at_once(web: Harness) -> None:
    username, secret = credentials(web, "ngo")
    client = browser(web)
    assert sign_in(client, web, username, secret).status_code == 303
    idle = timedelta(minutes=web.services.settings.session_idle_minutes)
    web.clock.advance(idle - timedelta(minutes=1))
    assert client.get("/web/inbox").status_code == 200  # activity keeps it alive
    web.clock.advance(idle - timedelta(minutes=1))
    assert client.get("/web/inbox").status_code == 200
    web.clock.advance(idle + timedelta(seconds=1))
    ended = client.get("/web/inbox", follow_redirects=False)
    assert ended.status_code == 303
    assert ended.headers["location"] == "/web/sign-in?ended=idle_timeout"
    assert "without activity" in client.get(ended.headers["location"]).text

    web.clock.advance(timedelta(seconds=31))
    assert sign_in(client, web, username, secret).status_code == 303
    token = form_token(client, "/web/inbox")
    out = client.post("/web/sign-out", data={"csrf_token": token}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/web/inbox", follow_redirects=False).status_code == 303
    with web.services.db.transaction() as tx:
        assert tx.fetchall("SELECT * FROM web_sessions") == []
    assert signins(web)[-1][2] == "signed_out"


def test_pages_apply_the_api_policy(web: Harness) -> None:
    ngo = browser(web)
    assert sign_in(ngo, web, *credentials(web, "ngo")).status_code == 303
    other = browser(web)
    assert sign_in(other, web, *credentials(web, "ngo2")).status_code == 303
    auditor = browser(web)
    assert sign_in(auditor, web, *credentials(web, "auditor")).status_code == 303
    case_id, _version = web.open_case("ngo")
    web.services.runner.wait_for(web.latest(), 5)
    assert ngo.get(f"/web/cases/{case_id}").status_code == 200
    assert case_id[:8] in ngo.get("/web/cases").text
    hidden = other.get(f"/web/cases/{case_id}")
    assert hidden.status_code == 404
    assert case_id[:8] not in other.get("/web/cases").text
    assert ngo.get("/web/dashboard").status_code == 403
    assert ngo.get("/web/audit").status_code == 403
    audit = auditor.get("/web/audit")
    assert audit.status_code == 200
    assert "ngo-caseworker" in audit.text  # the sign-ins are on the audit page
    assert "Verified" in audit.text
    auditor.get(f"/web/cases/{case_id}")
    reads = auditor.get(f"/web/audit?case_id={case_id}")
    assert "history" in reads.text


def test_the_public_report_form_is_anonymous_limited_and_lands_with_the_hotline(
    web: Harness,
) -> None:
    agent = "FingerprintBrowser/9.9 (unique-probe-7Q2)"
    client = browser(web, client=("203.0.113.77", 50123), headers={"User-Agent": agent})
    page = client.get("/report")
    assert page.status_code == 200
    assert "call 112" in page.text
    form = {
        "topic": "report_of_exploitation",
        "caller_type": "member_of_public",
        "child_age_years": "14",
        "child_sex": "female",
        "summary": "A girl of about 14 sells flowers at night near the station.",
        "csrf_token": TOKEN.search(page.text).group(1),  # type: ignore[union-attr]
    }
    assert client.post("/report", data=form | {"csrf_token": "forged"}).status_code == 403
    missing = client.post("/report", data=form | {"summary": ""})
    assert missing.status_code == 422
    assert "Tell us what you saw" in missing.text
    sent = client.post("/report", data=form)
    assert sent.status_code == 200, sent.text
    assert "report was sent" in sent.text
    web.services.runner.wait_for(web.latest(), 5)
    inbox = web.client.get("/inbox", headers=web.headers("hotline")).json()
    assert len(inbox["cases"]) == 1
    case_id = inbox["cases"][0]["case_id"]
    (event,) = web.services.app.history(UUID(case_id))
    assert event.event_type == "ContactReceived"
    assert event.payload["channel"] == "web_form"
    assert event.payload["anonymous"] is True
    assert (
        event.agency_id
        == web.services.directory.current().agencies[inbox["agency_id"]]["agency_id"]
    )
    recorded = repr(vars(event)) + repr(event.payload)
    assert "203.0.113.77" not in recorded
    assert "unique-probe-7Q2" not in recorded
    with web.services.db.transaction() as tx:
        for table in ("web_signins", "web_sessions", "web_credentials"):
            assert "203.0.113.77" not in repr(tx.fetchall(f"SELECT * FROM {table}"))  # noqa: S608
    # the limit (2 in this harness) counts every sender together
    assert client.post("/report", data=form).status_code == 200
    limited = client.post("/report", data=form)
    assert limited.status_code == 429
    assert "Too many reports" in limited.text
    assert "112" in limited.text
    web.clock.advance(timedelta(seconds=web.services.settings.public_report_window_seconds + 1))
    assert client.post("/report", data=form).status_code == 200


def test_the_language_switch_is_remembered(web: Harness) -> None:
    client = browser(web)
    assert '<html lang="en">' in client.get("/web/sign-in").text
    switched = client.get("/web/lang/uk?next=/report", follow_redirects=False)
    assert switched.headers["location"] == "/report"
    page = client.get("/report")
    assert '<html lang="uk">' in page.text
    assert catalogue("uk")["Report a suspected case"] in page.text
    assert (
        client.get("/web/lang/xx?next=https://evil.example/", follow_redirects=False).headers[
            "location"
        ]
        == "/web/inbox"
    )
    spanish = browser(web, headers={"Accept-Language": "es-CR,es;q=0.9"})
    assert '<html lang="es">' in spanish.get("/web/sign-in").text
    username, secret = credentials(web, "ngo")
    thai = browser(web, cookies={"referral-lang": "th"})
    assert sign_in(thai, web, username, secret).status_code == 303
    inbox = thai.get("/web/inbox").text
    assert catalogue("th")["Referrals to answer"] in inbox
    assert "พ.ย. 2026" in inbox  # the clock's date, in Thai


def test_every_message_of_the_templates_is_in_every_catalogue() -> None:
    from api.web.render import TEMPLATES

    used: set[str] = set()
    pattern = re.compile(r"""_\(\s*(["'])(.+?)\1""", re.S)
    for template in TEMPLATES.glob("*.html"):
        used.update(m.group(2) for m in pattern.finditer(template.read_text(encoding="utf-8")))
    for module in Path("api/web").glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            name = getattr(node.func, "attr", None) or getattr(node.func, "id", None)
            first = node.args[0]
            if name in ("gettext", "N_") and isinstance(first, ast.Constant):
                used.add(str(first.value))
    assert len(used) > 150
    for lang in LANGUAGES:
        messages = catalogue(lang)
        missing = sorted(m for m in used if m not in messages)
        assert not missing, (lang, missing[:10])
        for message in used:
            assert set(re.findall(r"{\w+}", message)) == set(
                re.findall(r"{\w+}", messages[message])
            )


def test_a_hotline_opens_a_case_from_the_web_and_validation_shows_in_place(web: Harness) -> None:
    client = browser(web)
    assert sign_in(client, web, *credentials(web, "hotline")).status_code == 303
    page = client.get("/web/cases/new")
    assert page.status_code == 200
    assert 'name="p.topics"' in page.text
    token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
    form = {
        "csrf_token": token,
        "type": "ContactReceived",
        "idem": "web-test-1",
        "p.channel": "phone",
        "p.anonymous": "on",
        "p.caller_type": "relative",
        "p.caller_name": "Should not be here",
    }
    refused = client.post("/web/cases/new", data=form)
    assert refused.status_code == 422
    assert 'id="f-topics-err">Give at least one.</p>' in refused.text  # next to its field
    named = client.post("/web/cases/new", data={**form, "p.topics": ["safe_migration"]})
    assert named.status_code == 422
    assert "anonymous contact records no caller name" in named.text  # about the whole entry
    opened = client.post(
        "/web/cases/new",
        data={**form, "p.caller_name": "", "p.topics": ["safe_migration"]},
        follow_redirects=False,
    )
    assert opened.status_code == 303, opened.text
    case_id = opened.headers["location"].split("/")[-1].split("?")[0]
    case = web.services.app.get_case(UUID(case_id))
    assert (
        case.lead_agency_id
        == web.services.directory.current().users[web.users[("hotline", "caseworker")]][
            "agency_id"
        ]
    )
    again = client.post(
        "/web/cases/new",
        data={**form, "p.caller_name": "", "p.topics": ["safe_migration"]},
        follow_redirects=False,
    )
    assert again.headers["location"] == opened.headers["location"]  # the same form twice: one case
    police = browser(web)
    assert sign_in(police, web, *credentials(web, "police")).status_code == 303
    assert police.get("/web/cases/new").status_code == 200  # a first responder
    ministry = browser(web)
    assert sign_in(ministry, web, *credentials(web, "ministry")).status_code == 303
    assert ministry.get("/web/cases/new").status_code == 403
