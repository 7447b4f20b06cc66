"""The envelope every case event carries besides its payload: who, when, why, and on what basis."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from uuid import UUID

from referral_core.errors import InvalidEnvelopeError
from referral_core.vocab import Role

MAX_CLOCK_SKEW = timedelta(minutes=5)
EARLIEST_OCCURRENCE = datetime.fromisoformat("1990-01-01T00:00:00+00:00")
MAX_CORRELATION_ID = 128
MAX_LEGAL_BASIS = 500


@dataclass(frozen=True)
class Actor:
    """A user acting for an agency in a role."""

    user_id: str
    agency_id: str
    role: Role

    def as_dict(self) -> dict[str, str]:
        return {"user_id": self.user_id, "agency_id": self.agency_id, "role": self.role.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Actor:
        return cls(str(data["user_id"]), str(data["agency_id"]), Role(data["role"]))


@dataclass(frozen=True)
class Envelope:
    """What the caller states about an event besides its payload."""

    event_id: UUID
    actor: Actor
    occurred_at: datetime
    correlation_id: str
    legal_basis: str | None = None
    consent_ref: UUID | None = None

    def check(self, now: datetime) -> None:
        """Refuse envelopes that cannot be true: times out of range, unbounded strings."""
        if self.occurred_at.tzinfo is None:
            raise InvalidEnvelopeError("occurred_at needs a time zone")
        if self.occurred_at > now + MAX_CLOCK_SKEW:
            raise InvalidEnvelopeError("occurred_at is in the future")
        if self.occurred_at < EARLIEST_OCCURRENCE:
            raise InvalidEnvelopeError("occurred_at is before 1990")
        if not self.correlation_id or len(self.correlation_id) > MAX_CORRELATION_ID:
            raise InvalidEnvelopeError("correlation_id must have 1 to 128 characters")
        if self.legal_basis is not None and not 0 < len(self.legal_basis) <= MAX_LEGAL_BASIS:
            raise InvalidEnvelopeError("legal_basis must have 1 to 500 characters")
