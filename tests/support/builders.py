"""Builders of actors, envelopes and example payloads, so tests say only what matters to them."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID, uuid4

from referral_core.case_events import CATALOG
from referral_core.directory import agency_id_for
from referral_core.envelope import Actor, Envelope
from referral_core.payloads import example_of
from referral_core.vocab import Role

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
HOTLINE = str(agency_id_for("test-hotline"))
NGO = str(agency_id_for("test-ngo"))
SHELTER = str(agency_id_for("test-shelter"))
POLICE = str(agency_id_for("test-police"))
OTHER = str(agency_id_for("test-other"))


def actor(agency_id: str = NGO, role: Role = Role.CASEWORKER, user: str | None = None) -> Actor:
    return Actor(user or f"user-of-{agency_id[:8]}", agency_id, role)


def envelope(
    who: Actor | None = None,
    *,
    event_id: UUID | None = None,
    occurred_at: datetime | None = None,
    legal_basis: str | None = None,
    consent_ref: UUID | str | None = None,
) -> Envelope:
    return Envelope(
        event_id=event_id or uuid4(),
        actor=who or actor(),
        occurred_at=occurred_at or NOW - timedelta(minutes=30),
        correlation_id="test-correlation",
        legal_basis=legal_basis,
        consent_ref=UUID(str(consent_ref)) if consent_ref else None,
    )


def example(event_type: str, **overrides: Any) -> dict[str, Any]:
    """The payload example the event type documents, with some fields replaced."""
    payload = example_of(CATALOG[event_type].payload_model)
    assert payload, f"{event_type} documents no example"
    payload.update(overrides)
    return payload


class MovableClock:
    """A clock the test sets and advances; starts at NOW."""

    def __init__(self, start: datetime = NOW) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, delta: timedelta) -> datetime:
        self.now += delta
        return self.now
