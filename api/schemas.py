"""Request and response bodies of the HTTP API, with an OpenAPI example for every event type."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from fastapi.openapi.models import Example
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, JsonValue, field_validator

from referral_core.case_events import CATALOG
from referral_core.payloads import NO_CONTROL_CHARACTERS, example_of

EVENT_TYPES: list[JsonValue] = [*sorted(CATALOG)]


class EventSubmission(BaseModel):
    """One event to record. The actor comes from the caller's token, never from the body."""

    model_config = ConfigDict(extra="forbid")

    type: str = Field(
        max_length=64,
        description="An event type, e.g. ChildIdentified",
        json_schema_extra={"enum": EVENT_TYPES},
    )
    payload: dict[str, Any] = Field(description="The event type's payload")
    occurred_at: AwareDatetime = Field(description="When it happened in the world")
    event_id: UUID | None = Field(
        default=None, description="The client's id for this event; a retry with it is safe"
    )
    legal_basis: str | None = Field(
        default=None, min_length=1, max_length=500, pattern=NO_CONTROL_CHARACTERS
    )
    consent_ref: UUID | None = Field(
        default=None, description="The event id of the ConsentRecorded this disclosure rests on"
    )

    @field_validator("occurred_at", mode="before")
    @classmethod
    def _a_timestamp_is_text(cls, value: Any) -> Any:
        # Not a number of seconds: pydantic would read one as a Unix time.
        if not isinstance(value, str):
            raise ValueError("occurred_at is an ISO 8601 date-time string")  # noqa: TRY004
        return value


class AppendAccepted(BaseModel):
    case_id: UUID
    version: int
    event_id: str
    position: int | None = Field(description="The event's position in the global log")
    duplicate: bool = Field(description="True when this was a retry of an earlier request")


class Actor(BaseModel):
    user_id: str
    agency_id: str
    role: str


class EventOut(BaseModel):
    event_id: str
    case_id: UUID
    version: int
    type: str
    schema_version: int
    occurred_at: datetime
    recorded_at: datetime
    actor: Actor
    legal_basis: str | None
    consent_ref: str | None
    correlation_id: str
    payload: dict[str, Any]
    redacted: list[str] = Field(description="Payload fields withheld from this reader")
    erased: bool = Field(
        default=False, description="The case was erased: its identifying fields read as null"
    )
    verified: bool | None = Field(
        default=None,
        description="Auditors: the event's chain link and Merkle leaf verified (false: broken; "
        "null: not checkable yet, or not an auditor)",
    )


class History(BaseModel):
    case_id: UUID
    version: int
    as_of: str | None
    events: list[EventOut]


class CaseListItem(BaseModel):
    case_id: str
    stage: str
    lead_agency_id: str
    closed: bool
    version: int
    relations: list[str]
    updated_at: str
    position: int


class CaseList(BaseModel):
    items: list[CaseListItem]
    next_cursor: str | None


class BreakGlassRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=20, max_length=2000)


class ErasureRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    reason: str = Field(min_length=1, max_length=200, description="Why the case is erased")
    legal_basis: str = Field(min_length=1, max_length=200, description="The law that requires it")


class ErasureOut(BaseModel):
    case_id: UUID
    version: int = Field(description="The case's version after the CaseErased event")
    position: int | None = Field(description="The CaseErased event's position in the log")
    already_erased: bool = Field(description="True when an earlier erasure is completed again")


class BreakGlassReview(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: str = Field(pattern="^(justified|unjustified)$")
    note: str = Field(min_length=1, max_length=2000)


def event_examples() -> dict[str, Example]:
    """One request example per event type, from the payload models' own examples."""
    occurred = (datetime(2026, 11, 29, 9, 30, tzinfo=UTC) - timedelta(hours=1)).isoformat()
    examples: dict[str, Example] = {}
    for name, spec in CATALOG.items():
        payload = example_of(spec.payload_model)
        value: dict[str, Any] = {"type": name, "occurred_at": occurred, "payload": payload}
        if spec.name == "ReferralSent":
            value["legal_basis"] = "Child Protection Act s.20: referral for services"
        examples[name] = Example(summary=spec.description, value=value)
    return examples


def payload_schemas() -> dict[str, Any]:
    """The JSON Schema of every event type's payload, published in the OpenAPI components."""
    return {
        f"{name}Payload": spec.payload_model.model_json_schema(
            ref_template="#/components/schemas/{model}"
        )
        for name, spec in CATALOG.items()
    }
