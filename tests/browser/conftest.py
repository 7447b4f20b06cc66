"""A live server and one headless Chromium for the browser tests.

One uvicorn serves the real app (SQLite, plain http on loopback, so the session cookie is not
Secure here) in a thread of the test process, sharing a clock the tests move. Chromium is
Debian's `/usr/bin/chromium`, driven by Playwright from PyPI; `make chromium` installs it.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any
from uuid import UUID

import httpx
import pyotp
import pytest
import uvicorn
from axe_playwright_python.sync_playwright import Axe  # type: ignore[import-untyped]
from playwright.sync_api import Browser, Page, expect, sync_playwright

from adapters.auth import issue_token
from api.app import build_services, create_app
from api.context import Services
from api.keys import master_keys
from api.settings import Settings
from api.web.credentials import set_credentials
from tests.support.api import seed
from tests.support.builders import NOW, MovableClock, example

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / os.environ.get("REFERRAL_SCREENSHOT_DIR", "var/screenshots")
"""Where the tests save screenshots: `var/` (ignored by git) unless `make screenshots` asks
for `docs/screenshots/`, the ones the README shows."""
PASSWORD = "a long demo passphrase"
USERS = ("ngo", "ngo2", "police", "shelter", "ministry", "auditor", "hotline")
expect.set_options(timeout=15_000)  # the suite shares two cores with everything else


@dataclass
class LiveServer:
    url: str
    services: Services
    clock: MovableClock
    tokens: dict[tuple[str, str], str]
    secrets: dict[str, str] = field(default_factory=dict)
    api: httpx.Client = field(init=False)

    def __post_init__(self) -> None:
        self.api = httpx.Client(base_url=self.url, timeout=20)

    def headers(self, name: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[(name, 'caseworker')]}", **extra}

    def open_case(self, name: str, event_type: str = "ChildIdentified", **payload: Any) -> str:
        body = {
            "type": event_type,
            "occurred_at": (self.clock() - timedelta(minutes=30)).isoformat(),
            "payload": example(event_type, **payload),
        }
        response = self.api.post("/cases", json=body, headers=self.headers(name))
        assert response.status_code == 201, response.text
        return str(response.json()["case_id"])

    def append(self, name: str, case_id: str, event_type: str, **fields: Any) -> int:
        version = self.api.get(f"/cases/{case_id}", headers=self.headers(name)).json()["version"]
        legal_basis = fields.pop("legal_basis", None)
        body: dict[str, Any] = {
            "type": event_type,
            "occurred_at": (self.clock() - timedelta(minutes=5)).isoformat(),
            "payload": example(event_type, **fields),
        }
        if legal_basis:
            body["legal_basis"] = legal_basis
        response = self.api.post(
            f"/cases/{case_id}/events",
            json=body,
            headers=self.headers(name, **{"If-Match": f'"{version}"'}),
        )
        assert response.status_code == 201, response.text
        self.settle()
        return int(response.json()["version"])

    def settle(self) -> None:
        """Wait until the read models have every event recorded so far."""
        latest = self.services.app.recorder.max_notification_id() or 0
        assert self.services.runner.wait_for(latest, 10)

    def code(self, name: str) -> str:
        """A one-time code for a user, on a clock step no earlier sign-in used."""
        self.clock.advance(timedelta(seconds=31))
        return pyotp.TOTP(self.secrets[name]).at(self.clock())


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    data = tmp_path_factory.mktemp("browser")
    settings = Settings(
        database_url=f"sqlite:///{data / 'referral.sqlite'}",
        data_dir=data,
        cookie_secure=False,
    )
    clock = MovableClock(NOW)
    services = build_services(settings, clock=clock)
    tokens, users = seed(services)
    for name in USERS:  # tokens that outlive the clock moves of the deadline test
        _token_id, tokens[(name, "caseworker")] = issue_token(
            services.app,
            UUID(users[(name, "caseworker")]),
            ttl=timedelta(days=365),
            actor={"user_id": "browser-tests", "agency_id": "system", "role": "admin"},
        )
    server = LiveServer("", services, clock, tokens)
    app = create_app(settings, services=services, clock=clock)
    for name in USERS:
        server.secrets[name] = set_credentials(
            services.db,
            master_keys(settings),
            user_id=users[(name, "caseworker")],
            username=name,
            password=PASSWORD,
            now=clock(),
        )
    port = _free_port()
    config = uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
    uv = uvicorn.Server(config)
    thread = threading.Thread(target=uv.run, name="live-server", daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not uv.started:
        assert time.monotonic() < deadline, "the live server did not start"
        time.sleep(0.05)
    server.url = f"http://127.0.0.1:{port}"
    server.api = httpx.Client(base_url=server.url, timeout=20)
    yield server
    uv.should_exit = True
    thread.join(timeout=10)
    server.api.close()
    services.db.close()
    services.app.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Per module: Playwright's sync API runs an event loop in this thread until it stops, and
    tests after the browser modules call `anyio.run` on it."""
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, live: LiveServer) -> Iterator[Page]:
    context = browser.new_context(
        base_url=live.url, viewport={"width": 1280, "height": 860}, locale="en-GB"
    )
    context.set_default_timeout(15_000)
    yield context.new_page()
    context.close()


@pytest.fixture(scope="session")
def axe() -> Axe:
    return Axe()
