"""Every case event type: its example, stored topic, envelope, and what its payload refuses."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from uuid import UUID, uuid4

import pytest
from eventsourcing.utils import resolve_topic

from referral_core.case import Case, CaseEvent
from referral_core.case_events import CATALOG
from referral_core.commands import Decision, record_event
from referral_core.envelope import Envelope
from referral_core.errors import (
    InvalidEnvelopeError,
    InvalidPayloadError,
    UnknownEventTypeError,
)
from referral_core.vocab import Role
from tests.support.builders import NGO, NOW, POLICE, SHELTER, actor, envelope, example

ALL_TYPES = sorted(CATALOG)
OPENING_TYPES = ["ChildIdentified", "ContactReceived"]
CANARY = "CANARY-Zq7w-Synthetic-Child-Name"
"""Planted in refused payloads: it must never come back in an error."""


class Story:
    """A case built through `record_event` alone, one command at a time."""

    def __init__(self, opening: str = "ChildIdentified", **overrides: Any) -> None:
        self.case_id = uuid4()
        self.case: Case | None = None
        self.record(opening, **overrides)

    def record(
        self,
        event_type: str,
        *,
        who: str = NGO,
        legal_basis: str | None = None,
        consent_ref: str | None = None,
        **overrides: Any,
    ) -> str:
        decision = record_event(
            self.case,
            case_id=self.case_id,
            event_type=event_type,
            payload=example(event_type, **overrides),
            envelope=envelope(actor(who), legal_basis=legal_basis, consent_ref=consent_ref),
            now=NOW,
        )
        self.case = decision.case
        return decision.event_id

    @property
    def current(self) -> Case:
        assert self.case is not None
        return self.case

    def last_event(self) -> CaseEvent:
        event = self.current.pending_events[-1]
        assert isinstance(event, CaseEvent)
        return event


@dataclass
class Ready:
    """A case on which `payload` of `event_type` may be recorded by agency `who`."""

    story: Story
    event_type: str
    payload: dict[str, Any]
    who: str = NGO
    legal_basis: str | None = None

    def record(
        self, env: Envelope | None = None, payload: dict[str, Any] | None = None
    ) -> Decision:
        return record_event(
            self.story.current,
            case_id=self.story.case_id,
            event_type=self.event_type,
            payload=self.payload if payload is None else payload,
            envelope=env or envelope(actor(self.who), legal_basis=self.legal_basis),
            now=NOW,
        )


Preparation = Callable[[Story], tuple[dict[str, Any], str]]
"""Brings a story to where one event type fits; returns its payload overrides and the actor."""


def _referral(story: Story) -> str:
    return story.record("ReferralSent", legal_basis="Statute s.20", to_agency_id=SHELTER)


def _consent_withdrawn(s: Story) -> tuple[dict[str, Any], str]:
    return {"consent_event_id": s.record("ConsentRecorded")}, NGO


def _report_acknowledged(s: Story) -> tuple[dict[str, Any], str]:
    report = s.record("ReportedToLawEnforcement", receiving_unit_agency_id=POLICE)
    return {"report_event_id": report}, POLICE


def _referral_answered(s: Story) -> tuple[dict[str, Any], str]:
    return {"referral_event_id": _referral(s)}, SHELTER


def _referral_completed(s: Story) -> tuple[dict[str, Any], str]:
    referral = _referral(s)
    s.record("ReferralAccepted", who=SHELTER, referral_event_id=referral)
    return {"referral_event_id": referral}, SHELTER


def _referral_revoked(s: Story) -> tuple[dict[str, Any], str]:
    return {"referral_event_id": _referral(s)}, NGO


def _after(*earlier: str) -> Preparation:
    """The examples of `earlier` event types first."""

    def prepare(s: Story) -> tuple[dict[str, Any], str]:
        for event_type in earlier:
            s.record(event_type)
        return {}, NGO

    return prepare


def _reported(s: Story) -> None:
    s.record("ReportedToLawEnforcement", receiving_unit_agency_id=POLICE)


def _case_closed(s: Story) -> tuple[dict[str, Any], str]:
    _reported(s)
    return {}, NGO


def _case_reopened(s: Story) -> tuple[dict[str, Any], str]:
    _reported(s)
    s.record("CaseClosed")
    return {}, NGO


def _entry_corrected(s: Story) -> tuple[dict[str, Any], str]:
    opening = next(iter(s.current.entries))
    return {"target_event_id": opening, "corrected_values": {"age_years": 14}}, NGO


def _entry_voided(s: Story) -> tuple[dict[str, Any], str]:
    return {"target_event_id": s.record("ServiceDelivered")}, NGO


PREPARE: dict[str, Preparation] = {
    "ConsentWithdrawn": _consent_withdrawn,
    "ReportedToLawEnforcement": lambda _s: ({"receiving_unit_agency_id": POLICE}, NGO),
    "ReportAcknowledged": _report_acknowledged,
    "ReferralSent": lambda _s: ({"to_agency_id": SHELTER}, NGO),
    "ReferralAccepted": _referral_answered,
    "ReferralDeclined": _referral_answered,
    "ReferralCompleted": _referral_completed,
    "ReferralRevoked": _referral_revoked,
    "PlacementEnded": _after("ChildSheltered"),
    "ChildMissingFromCare": _after("ChildSheltered"),
    "ChildLocated": _after("ChildSheltered", "ChildMissingFromCare"),
    "PlanReviewed": _after("ReintegrationPlanAgreed"),
    "CaseClosed": _case_closed,
    "CaseReopened": _case_reopened,
    "EntryCorrected": _entry_corrected,
    "EntryVoided": _entry_voided,
}


NEEDS_A_BASIS = frozenset(
    name
    for name, spec in CATALOG.items()
    if spec.discloses and "statutory_basis" not in spec.payload_model.model_fields
)
"""Event types that disclose data and carry no statutory basis of their own."""


def ready(event_type: str) -> Ready:
    """A case opened with the ChildIdentified example, brought to where `event_type` fits."""
    story = Story()
    overrides, who = PREPARE.get(event_type, _after())(story)
    legal_basis = "Statute s.20" if event_type in NEEDS_A_BASIS else None
    return Ready(story, event_type, example(event_type, **overrides), who, legal_basis)


# -- the catalog -------------------------------------------------------------------------------


def test_catalog_holds_the_design_events() -> None:
    assert len(CATALOG) == 35
    assert "CaseErased" in CATALOG
    assert set(PREPARE) <= set(CATALOG)
    assert [name for name, spec in CATALOG.items() if spec.opens_case] == [
        "ContactReceived",
        "ChildIdentified",
    ]
    assert {name for name, spec in CATALOG.items() if spec.discloses} == {
        "ReportedToLawEnforcement",
        "ReferralSent",
        "ChildReturned",
    }
    assert {"ReferralSent", "ChildReturned"} == NEEDS_A_BASIS


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_documented_example_validates(event_type: str) -> None:
    spec = CATALOG[event_type]
    assert spec.payload_model.__name__ == event_type
    schema = spec.payload_model.model_json_schema()
    assert schema["examples"] == [example(event_type)]
    validated = spec.payload_model.model_validate(example(event_type))
    assert spec.payload_model.model_validate(validated.model_dump(mode="json")) == validated


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_explicit_topic_is_registered_and_resolves(event_type: str) -> None:
    spec = CATALOG[event_type]
    topic = f"referral.case:{event_type}"
    assert spec.name == event_type
    assert spec.event_class.__name__ == event_type
    assert topic == spec.event_class.TOPIC
    assert resolve_topic(topic) is spec.event_class
    assert spec.event_class.class_version == 1
    assert issubclass(spec.event_class, CaseEvent)


def test_case_topic_is_explicit() -> None:
    assert resolve_topic("referral.case:Case") is Case


# -- recording each type ----------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_recording_carries_the_envelope(event_type: str) -> None:
    prepared = ready(event_type)
    case = prepared.story.current
    before = case.version
    pending_before = len(case.pending_events)
    env = Envelope(
        event_id=uuid4(),
        actor=actor(prepared.who, Role.SUPERVISOR, user="user-42"),
        occurred_at=NOW - timedelta(hours=2),
        correlation_id=f"req-{event_type}",
        legal_basis=f"basis for {event_type}",
    )

    decision = prepared.record(env)

    assert decision.duplicate is False
    assert decision.version == before + 1
    assert decision.event_id == str(env.event_id)
    assert decision.case is case
    assert case.version == before + 1
    assert len(case.pending_events) == pending_before + 1
    event = prepared.story.last_event()
    assert type(event) is CATALOG[event_type].event_class
    assert event.event_type == event_type
    assert event.event_id == str(env.event_id)
    assert event.actor == {"user_id": "user-42", "agency_id": prepared.who, "role": "supervisor"}
    assert event.agency_id == prepared.who
    assert event.occurred_at == NOW - timedelta(hours=2)
    assert event.recorded_at == NOW
    assert event.correlation_id == f"req-{event_type}"
    assert event.legal_basis == f"basis for {event_type}"
    assert event.consent_ref is None
    expected = CATALOG[event_type].payload_model.model_validate(prepared.payload)
    assert event.payload == expected.model_dump(mode="json")
    assert event.originator_version == before + 1
    assert event.originator_id == prepared.story.case_id
    entry = case.entries[str(env.event_id)]
    assert entry["version"] == before + 1
    assert entry["type"] == event_type
    assert entry["agency_id"] == prepared.who
    assert entry["voided"] is False


@pytest.mark.parametrize("event_type", OPENING_TYPES)
def test_opening_event_creates_the_case(event_type: str) -> None:
    case_id = uuid4()
    env = envelope(actor(NGO), legal_basis="Child Protection Act s.3")

    decision = record_event(
        None,
        case_id=case_id,
        event_type=event_type,
        payload=example(event_type),
        envelope=env,
        now=NOW,
    )

    case = decision.case
    assert decision.version == 1
    assert decision.duplicate is False
    assert case.id == case_id
    assert case.version == 1
    assert case.lead_agency_id == NGO
    assert case.opened_by_agency_id == NGO
    [event] = case.pending_events
    assert type(event) is CATALOG[event_type].event_class
    assert isinstance(event, CaseEvent)
    assert event.event_id == str(env.event_id)
    assert event.originator_version == 1
    assert event.originator_id == case_id
    assert event.recorded_at == NOW
    assert event.occurred_at == env.occurred_at
    assert event.correlation_id == "test-correlation"
    assert event.legal_basis == "Child Protection Act s.3"
    assert list(case.entries) == [str(env.event_id)]


def test_consent_ref_is_stored_as_text() -> None:
    story = Story()
    consent = story.record("ConsentRecorded", shared_with_agency_ids=[SHELTER])
    story.record("ReferralSent", consent_ref=consent, to_agency_id=SHELTER, scope=["services"])
    event = story.last_event()
    assert event.consent_ref == consent
    assert event.legal_basis is None


def test_report_takes_its_statutory_basis_as_legal_basis() -> None:
    story = Story()
    story.record("ReportedToLawEnforcement", receiving_unit_agency_id=POLICE)
    assert story.last_event().legal_basis == "Child Protection Act s.12 mandatory report"


def test_report_keeps_an_explicit_legal_basis() -> None:
    story = Story()
    story.record(
        "ReportedToLawEnforcement", legal_basis="Penal Code 41", receiving_unit_agency_id=POLICE
    )
    assert story.last_event().legal_basis == "Penal Code 41"


def test_payload_is_stored_validated_and_complete() -> None:
    story = Story()
    story.record("HomeAssessed", recommendation="  family support  ")
    assert story.last_event().payload == {
        "safety": "safe_with_support",
        "recommendation": "family support",
        "notes": None,
    }


def test_event_ids_are_stored_as_text() -> None:
    event_id = uuid4()
    decision = record_event(
        None,
        case_id=uuid4(),
        event_type="ContactReceived",
        payload=example("ContactReceived"),
        envelope=envelope(event_id=event_id),
        now=NOW,
    )
    [event] = decision.case.pending_events
    assert isinstance(event, CaseEvent)
    assert event.event_id == str(event_id)
    assert UUID(event.event_id) == event_id


# -- invalid payloads ---------------------------------------------------------------------------


def _refused_without_echo(
    prepared: Ready, payload: dict[str, Any], field: str, error_type: str | None = None
) -> InvalidPayloadError:
    case = prepared.story.current
    version = case.version
    with pytest.raises(InvalidPayloadError) as caught:
        prepared.record(payload=payload)
    error = caught.value
    assert type(error) is InvalidPayloadError
    assert error.errors, "the error says where the payload is wrong"
    locs = [e["loc"] for e in error.errors]
    assert any(isinstance(loc, list) and loc[:1] == [field] for loc in locs), locs
    if error_type is not None:
        assert any(e["type"] == error_type for e in error.errors), error.errors
    for e in error.errors:
        assert set(e) == {"loc", "msg", "type"}
    assert CANARY not in str(error.errors)
    assert CANARY not in error.message
    assert CANARY not in str(error)
    assert case.version == version
    return error


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_unknown_extra_field_is_refused(event_type: str) -> None:
    prepared = ready(event_type)
    payload = {**prepared.payload, "smuggled_field": CANARY}
    error = _refused_without_echo(prepared, payload, "smuggled_field", "extra_forbidden")
    assert error.message == f"{event_type} payload is invalid"


@pytest.mark.parametrize("event_type", ALL_TYPES)
def test_wrongly_typed_field_is_refused(event_type: str) -> None:
    prepared = ready(event_type)
    model = CATALOG[event_type].payload_model
    field = next(name for name, info in model.model_fields.items() if info.is_required())
    assert "dict" not in str(model.model_fields[field].annotation)
    payload = {**prepared.payload, field: {"nested": CANARY}}
    _refused_without_echo(prepared, payload, field)


def _short_text_field(event_type: str) -> tuple[str, bool] | None:
    """The first field limited to 200 characters, and whether it is a list of them."""
    schema = CATALOG[event_type].payload_model.model_json_schema()
    for name, prop in schema["properties"].items():
        for variant in [prop, *prop.get("anyOf", [])]:
            if variant.get("maxLength") == 200:
                return name, False
            if variant.get("items", {}).get("maxLength") == 200:
                return name, True
    return None


WITHOUT_SHORT_TEXT = {
    "AgeAssessed",
    "CaseClosed",
    "ConsentRecorded",
    "PlacementEnded",
    "ReferralAccepted",
    "ReferralSent",
    "ReturnRiskAssessed",
    "ServiceDelivered",
}
WITH_SHORT_TEXT = sorted(set(ALL_TYPES) - WITHOUT_SHORT_TEXT)


def test_short_text_fields_are_where_expected() -> None:
    assert {t for t in ALL_TYPES if _short_text_field(t) is None} == WITHOUT_SHORT_TEXT
    assert _short_text_field("ChildIdentified") == ("place", False)
    assert _short_text_field("ContactReceived") == ("caller_name", False)
    assert _short_text_field("CaseConferenceHeld") == ("decisions", True)


def _with_text(prepared: Ready, text: str) -> tuple[dict[str, Any], str, Any]:
    found = _short_text_field(prepared.event_type)
    assert found is not None
    field, is_list = found
    value: Any = [text] if is_list else text
    payload = {**prepared.payload, field: value}
    if field == "caller_name":
        payload["anonymous"] = False
    return payload, field, value


@pytest.mark.parametrize("event_type", WITH_SHORT_TEXT)
def test_over_long_short_text_is_refused(event_type: str) -> None:
    prepared = ready(event_type)
    too_long = "x" * (201 - len(CANARY)) + CANARY
    assert len(too_long) == 201
    payload, field, _ = _with_text(prepared, too_long)
    _refused_without_echo(prepared, payload, field, "string_too_long")


@pytest.mark.parametrize("event_type", WITH_SHORT_TEXT)
def test_short_text_of_200_characters_is_accepted(event_type: str) -> None:
    prepared = ready(event_type)
    payload, field, value = _with_text(prepared, "y" * 200)
    prepared.record(payload=payload)
    assert prepared.story.last_event().payload[field] == value


@pytest.mark.parametrize("event_type", ["ChildAdopted", "childidentified", "", "Case"])
def test_unknown_event_type_is_refused(event_type: str) -> None:
    with pytest.raises(UnknownEventTypeError) as caught:
        record_event(
            None,
            case_id=uuid4(),
            event_type=event_type,
            payload={},
            envelope=envelope(),
            now=NOW,
        )
    assert type(caught.value) is UnknownEventTypeError


def test_unknown_event_type_on_an_open_case_is_refused() -> None:
    story = Story()
    with pytest.raises(UnknownEventTypeError):
        record_event(
            story.current,
            case_id=story.case_id,
            event_type="CaseDeleted",
            payload={"reason": "x"},
            envelope=envelope(),
            now=NOW,
        )
    assert story.current.version == 1


def test_unknown_event_type_message_is_bounded() -> None:
    with pytest.raises(UnknownEventTypeError) as caught:
        record_event(
            None,
            case_id=uuid4(),
            event_type="X" * 5000,
            payload={},
            envelope=envelope(),
            now=NOW,
        )
    assert len(caught.value.message) < 120


# -- the envelope -------------------------------------------------------------------------------

PLUS_TWO = timezone(timedelta(hours=2))
BAD_ENVELOPES: dict[str, dict[str, Any]] = {
    "future": {"occurred_at": NOW + timedelta(minutes=5, seconds=1)},
    "far future": {"occurred_at": NOW + timedelta(days=365)},
    "before 1990": {"occurred_at": datetime(1989, 12, 31, 23, 59, 59, tzinfo=UTC)},
    "naive": {"occurred_at": NOW.replace(tzinfo=None) - timedelta(hours=1)},
    "empty correlation": {"correlation_id": ""},
    "129-char correlation": {"correlation_id": "c" * 129},
    "empty legal basis": {"legal_basis": ""},
    "501-char legal basis": {"legal_basis": "b" * 501},
}
GOOD_ENVELOPES: dict[str, dict[str, Any]] = {
    "skew at the limit": {"occurred_at": NOW + timedelta(minutes=5)},
    "1990 exactly": {"occurred_at": datetime(1990, 1, 1, tzinfo=UTC)},
    "other time zone": {"occurred_at": datetime(2026, 11, 29, 13, 0, tzinfo=PLUS_TWO)},
    "128-char correlation": {"correlation_id": "c" * 128},
    "500-char legal basis": {"legal_basis": "b" * 500},
}


@pytest.mark.parametrize("change", BAD_ENVELOPES.values(), ids=list(BAD_ENVELOPES))
@pytest.mark.parametrize("opening", [True, False], ids=["opening", "appended"])
def test_impossible_envelope_is_refused(change: dict[str, Any], opening: bool) -> None:
    story = Story()
    env = dataclasses.replace(envelope(actor(NGO)), **change)
    with pytest.raises(InvalidEnvelopeError) as caught:
        record_event(
            None if opening else story.current,
            case_id=uuid4() if opening else story.case_id,
            event_type="ContactReceived",
            payload=example("ContactReceived"),
            envelope=env,
            now=NOW,
        )
    assert type(caught.value) is InvalidEnvelopeError
    assert story.current.version == 1


@pytest.mark.parametrize("change", GOOD_ENVELOPES.values(), ids=list(GOOD_ENVELOPES))
def test_envelope_at_the_limits_is_accepted(change: dict[str, Any]) -> None:
    story = Story()
    env = dataclasses.replace(envelope(actor(NGO)), **change)
    decision = record_event(
        story.current,
        case_id=story.case_id,
        event_type="ContactReceived",
        payload=example("ContactReceived"),
        envelope=env,
        now=NOW,
    )
    assert decision.version == 2
    event = story.last_event()
    for name, value in change.items():
        assert getattr(event, name) == value


# -- validators of particular payloads ----------------------------------------------------------


@pytest.mark.parametrize("field", ["caller_name", "caller_contact"])
def test_anonymous_contact_with_caller_details_is_refused(field: str) -> None:
    payload = example("ContactReceived", anonymous=True, **{field: CANARY})
    with pytest.raises(InvalidPayloadError) as caught:
        record_event(
            None,
            case_id=uuid4(),
            event_type="ContactReceived",
            payload=payload,
            envelope=envelope(actor(NGO)),
            now=NOW,
        )
    assert [e["type"] for e in caught.value.errors] == ["value_error"]
    assert CANARY not in str(caught.value.errors)
    assert CANARY not in str(caught.value)


def test_named_contact_keeps_caller_details() -> None:
    story = Story("ContactReceived", anonymous=False, caller_name="Ana Ficticia")
    assert story.last_event().payload["caller_name"] == "Ana Ficticia"


def test_age_assessment_finding_a_minor_cannot_lift_the_presumption() -> None:
    story = Story()
    with pytest.raises(InvalidPayloadError) as caught:
        story.record("AgeAssessed", is_minor=True, presumption_applies=False)
    assert [e["type"] for e in caught.value.errors] == ["value_error"]
    assert story.current.version == 1


def test_inconclusive_adult_finding_may_keep_the_presumption() -> None:
    story = Story()
    story.record("AgeAssessed", is_minor=False, presumption_applies=True, age_years=18)
    assert story.current.child["minority_presumed"] is True


def test_episode_ending_before_it_starts_is_refused() -> None:
    story = Story()
    with pytest.raises(InvalidPayloadError) as caught:
        story.record("ExploitationEpisodeRecorded", start_date="2026-05-02", end_date="2026-05-01")
    assert [e["type"] for e in caught.value.errors] == ["value_error"]
    assert story.current.version == 1


def test_episode_of_one_day_is_accepted() -> None:
    story = Story()
    story.record("ExploitationEpisodeRecorded", start_date="2026-05-02", end_date="2026-05-02")
    assert story.last_event().payload["end_date"] == "2026-05-02"


COUNTRY_FIELDS = [
    ("ContactReceived", "country_of_concern"),
    ("ChildIdentified", "country"),
    ("ChildIdentified", "nationality"),
    ("ReturnRiskAssessed", "from_country"),
    ("ReturnRiskAssessed", "to_country"),
    ("ChildReturned", "from_country"),
    ("ChildReturned", "to_country"),
    ("ExploitationEpisodeRecorded", "country"),
]


@pytest.mark.parametrize(("event_type", "field"), COUNTRY_FIELDS)
@pytest.mark.parametrize("code", ["th", "Th", "THA", "T", "T1", "", "ÄÖ", "T H"])
def test_country_codes_are_two_upper_case_letters(event_type: str, field: str, code: str) -> None:
    story = Story()
    with pytest.raises(InvalidPayloadError) as caught:
        story.record(event_type, **{field: code})
    assert [e["loc"] for e in caught.value.errors] == [[field]]
    assert story.current.version == 1


@pytest.mark.parametrize(("event_type", "field"), COUNTRY_FIELDS)
def test_upper_case_country_code_is_accepted(event_type: str, field: str) -> None:
    story = Story()
    legal_basis = "Statute s.20" if event_type in NEEDS_A_BASIS else None
    story.record(event_type, legal_basis=legal_basis, **{field: "UA"})
    assert story.last_event().payload[field] == "UA"
