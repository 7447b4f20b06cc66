"""An HTTP harness: the real app over TestClient, with agencies, users and tokens of each kind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

from fastapi.testclient import TestClient

from adapters.auth import issue_token
from api.app import build_services, create_app
from api.context import Services
from api.settings import Settings
from referral_core.directory import Directory, agency_id_for
from referral_core.vocab import AgencyKind, Role
from tests.support.builders import NOW, MovableClock

SYSTEM = {"user_id": "test-setup", "agency_id": "system", "role": "admin"}

# name -> (kind, country)
AGENCIES: dict[str, tuple[AgencyKind, str]] = {
    "hotline": (AgencyKind.HOTLINE, "UA"),
    "ngo": (AgencyKind.NGO, "UA"),
    "ngo2": (AgencyKind.NGO, "UA"),
    "social": (AgencyKind.SOCIAL_SERVICES, "UA"),
    "shelter": (AgencyKind.SHELTER, "UA"),
    "police": (AgencyKind.LAW_ENFORCEMENT, "UA"),
    "police2": (AgencyKind.LAW_ENFORCEMENT, "UA"),
    "prosecutor": (AgencyKind.PROSECUTOR, "UA"),
    "court": (AgencyKind.COURT, "UA"),
    "legal_aid": (AgencyKind.LEGAL_AID, "UA"),
    "protection": (AgencyKind.CHILD_PROTECTION, "UA"),
    "ministry": (AgencyKind.MINISTRY, "UA"),
    "coordinator": (AgencyKind.COORDINATOR, "UA"),
    "guardian": (AgencyKind.GUARDIAN, "UA"),
    "auditor": (AgencyKind.AUDITOR, "UA"),
}


def agency(name: str) -> str:
    return str(agency_id_for(f"http-{name}"))


@dataclass
class Harness:
    client: TestClient
    services: Services
    clock: MovableClock
    tokens: dict[tuple[str, str], str] = field(default_factory=dict)
    users: dict[tuple[str, str], str] = field(default_factory=dict)

    def latest(self) -> int:
        """The newest position in the log, for read-your-writes waits."""
        return self.services.app.recorder.max_notification_id() or 0

    def headers(self, name: str, role: str = "caseworker", **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[(name, role)]}", **extra}

    def open_case(
        self, name: str = "ngo", event_type: str = "ChildIdentified", **payload: Any
    ) -> tuple[str, int]:
        from tests.support.builders import example

        body = {
            "type": event_type,
            "occurred_at": (NOW - timedelta(hours=1)).isoformat(),
            "payload": example(event_type, **payload),
        }
        response = self.client.post("/cases", json=body, headers=self.headers(name))
        assert response.status_code == 201, response.text
        return response.json()["case_id"], response.json()["version"]

    def append(
        self,
        case_id: str,
        *,
        version: int,
        event_type: str,
        payload: dict[str, Any],
        name: str = "ngo",
        role: str = "caseworker",
        **envelope: Any,
    ) -> Any:
        body = {
            "type": event_type,
            "occurred_at": (NOW - timedelta(minutes=30)).isoformat(),
            "payload": payload,
            **envelope,
        }
        return self.client.post(
            f"/cases/{case_id}/events",
            json=body,
            headers=self.headers(name, role, **{"If-Match": f'"{version}"'}),
        )


def _register(d: Directory, *, agency_id: UUID, kind: AgencyKind, country: str, name: str) -> None:
    d.register_agency(agency_id, kind, country, f"Test {name}", SYSTEM)


def _add_user(d: Directory, *, user: UUID, agency_id: UUID, role: Role, name: str) -> None:
    d.add_user(user, agency_id, role, f"{name} {role.value}", SYSTEM)


def seed(services: Services) -> tuple[dict[tuple[str, str], str], dict[tuple[str, str], str]]:
    app = services.app
    tokens: dict[tuple[str, str], str] = {}
    users: dict[tuple[str, str], str] = {}
    for name, (kind, country) in AGENCIES.items():
        agency_uuid = UUID(agency(name))
        app.change_directory(
            partial(_register, agency_id=agency_uuid, kind=kind, country=country, name=name)
        )
        for role in (Role.CASEWORKER, Role.SUPERVISOR):
            user = uuid4()
            app.change_directory(
                partial(_add_user, user=user, agency_id=agency_uuid, role=role, name=name)
            )
            _tid, token = issue_token(app, user, ttl=timedelta(days=1), actor=SYSTEM)
            tokens[(name, role.value)] = token
            users[(name, role.value)] = str(user)
    return tokens, users


@contextmanager
def harness(database_url: str, tmp_path: Path, **settings: Any) -> Iterator[Harness]:
    clock = MovableClock()
    config = Settings(database_url=database_url, data_dir=tmp_path, **settings)
    services = build_services(config, clock=clock)
    tokens, users = seed(services)
    app = create_app(config, services=services, clock=clock)
    with TestClient(app, raise_server_exceptions=False) as client:
        yield Harness(client, services, clock, tokens, users)
    services.db.close()
    services.app.close()
