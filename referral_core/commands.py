"""Deciding a command: validate a proposed event, apply the rules, record it or recognise a retry.

`record_event` is the only way new case events come into being. It is pure: it takes the current
case (or None for a new one) and the current time, and returns what happened.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from pydantic import ValidationError

from referral_core import rules
from referral_core.case import Case, CaseEvent, event_fingerprint
from referral_core.case_events import CATALOG, EventSpec
from referral_core.envelope import Envelope
from referral_core.errors import (
    CaseOpeningError,
    IdempotencyConflictError,
    InvalidPayloadError,
    ReferralError,
    UnknownEventTypeError,
    VersionConflictError,
)
from referral_core.fingerprint import fingerprint


@dataclass(frozen=True)
class Decision:
    """The outcome of a command: the case after it, and whether this was a retry."""

    case: Case
    version: int
    event_id: str
    duplicate: bool


def spec_for(event_type: str) -> EventSpec:
    try:
        return CATALOG[event_type]
    except KeyError:
        raise UnknownEventTypeError(f"unknown event type: {event_type[:64]!r}") from None


def validate_payload(spec: EventSpec, payload: Mapping[str, Any]) -> Any:
    """Validate a payload; errors say where and why, never echoing the submitted values."""
    try:
        return spec.payload_model.model_validate(payload)
    except ValidationError as exc:
        errors: list[dict[str, object]] = [
            {"loc": list(err["loc"]), "msg": err["msg"], "type": err["type"]}
            for err in exc.errors(include_input=False, include_url=False, include_context=False)
        ]
        raise InvalidPayloadError(f"{spec.name} payload is invalid", errors) from None


RecordedLookup = Callable[[int], CaseEvent | None]


def _recorded_event(case: Case, version: int, recorded: RecordedLookup | None) -> CaseEvent | None:
    for pending in case.pending_case_events():
        if pending.originator_version == version:
            return pending
    return None if recorded is None else recorded(version)


def record_event(
    case: Case | None,
    *,
    case_id: UUID,
    event_type: str,
    payload: Mapping[str, Any],
    envelope: Envelope,
    now: datetime,
    expected_version: int | None = None,
    recorded: RecordedLookup | None = None,
) -> Decision:
    """Decide whether `event_type` may be recorded on `case` and, if so, record it.

    A retry (same event id, same content) returns the first result and records nothing;
    the same event id with other content is an `IdempotencyConflictError`. Otherwise a stale
    `expected_version` is a `VersionConflictError`, never a silent overwrite. To tell a retry
    from a reuse, the first event is looked up by version with `recorded` (the store), or among
    the case's events not yet saved.
    """
    spec = spec_for(event_type)
    validated = validate_payload(spec, payload)
    stored_payload: dict[str, Any] = validated.model_dump(mode="json")
    legal_basis = envelope.legal_basis
    if spec.name == "ReportedToLawEnforcement" and not legal_basis:
        legal_basis = validated.statutory_basis
    event_id = str(envelope.event_id)
    if case is not None and spec.name == "EntryCorrected":
        # Corrected values are stored validated and normalised, so a retry is recognised by
        # its normalised content; if they do not validate, the rules below say why.
        with contextlib.suppress(ReferralError):
            stored_payload["corrected_values"] = rules.normalised_corrections(
                case, validated, whole=False
            )

    if case is not None:
        previous = case.entry(event_id)
        if previous is not None:
            digest = fingerprint(
                spec.name,
                payload=stored_payload,
                occurred_at=envelope.occurred_at,
                legal_basis=legal_basis,
                consent_ref=envelope.consent_ref,
                actor=envelope.actor,
            )
            first = _recorded_event(case, previous["version"], recorded)
            if first is None or event_fingerprint(first) != digest:
                raise IdempotencyConflictError(
                    "this event id was already used for different content"
                )
            return Decision(case, previous["version"], event_id, duplicate=True)

    if case is not None and expected_version is not None and case.version != expected_version:
        raise VersionConflictError(
            f"the case is at version {case.version}, not {expected_version}",
            expected=expected_version,
            actual=case.version,
        )
    envelope.check(now)
    fields: dict[str, Any] = {
        "event_id": event_id,
        "actor": envelope.actor.as_dict(),
        "occurred_at": envelope.occurred_at,
        "correlation_id": envelope.correlation_id,
        "legal_basis": legal_basis,
        "consent_ref": str(envelope.consent_ref) if envelope.consent_ref else None,
        "payload": stored_payload,
        "timestamp": now,
    }
    if case is None:
        if not spec.opens_case:
            raise CaseOpeningError("a case opens with ChildIdentified or ContactReceived")
        rules.check_opening(spec, validated, envelope)
        event: CaseEvent = spec.event_class(originator_id=case_id, originator_version=1, **fields)
        case = event.mutate(None)
        assert case is not None  # noqa: S101 -- mutate(None) always builds a case
        case._pending_events.append(event)
        return Decision(case, 1, event_id, duplicate=False)

    rules.check(case, spec, validated, envelope)
    if spec.name == "EntryCorrected":
        stored_payload["corrected_values"] = rules.normalised_corrections(case, validated)
    case.trigger_event(spec.event_class, **fields)
    return Decision(case, case.version, event_id, duplicate=False)
