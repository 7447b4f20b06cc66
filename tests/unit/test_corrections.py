"""Corrections and voids: how they are validated, and how the case state follows them.

A void or a correction of an entry that changes state folds the case again from the effective
(validated, corrected, non-voided) entries, so every effect of the entry is undone or redone.
"""

from __future__ import annotations

import json
from typing import Any
from uuid import uuid4

import pytest

from referral_core.case import (
    FOLD_READS_SENSITIVE,
    REDACTED,
    Case,
    CaseEvent,
    redact,
    sensitive_fields,
)
from referral_core.case_events import CATALOG
from referral_core.errors import (
    InconsistentStateError,
    InvalidPayloadError,
    MinorityPresumptionError,
    MissingLegalBasisError,
    ReferralNotPendingError,
    UnreportedTraffickingError,
)
from referral_core.vocab import CaseStage
from tests.support.builders import NGO, OTHER, POLICE, SHELTER, example
from tests.unit.test_rules import Story, contact_case, state_of

CANARY = "CANARY-Mali-Synthetic"
"""Planted in refused corrections: it must never come back in an error."""


def last_event(story: Story) -> CaseEvent:
    event = story.current.pending_events[-1]
    assert isinstance(event, CaseEvent)
    return event


def kept(story: Story, event_id: str) -> dict[str, Any]:
    """The effective payload the case keeps for an entry."""
    payload = story.current.effective_payload(event_id)
    assert payload is not None
    return payload


def refolded(case: Case) -> dict[str, Any]:
    """The state of the case folded again from its entries, asserted unchanged."""
    before = state_of(case)
    case._refold()
    after = state_of(case)
    assert after == before, "folding the entries again changed the state"
    return after


# -- corrected values are validated whole and stored normalised ---------------------------------


def test_corrected_values_are_stored_validated_and_normalised() -> None:
    story = Story()
    story.record(
        "EntryCorrected",
        target_event_id=story.opening_id,
        corrected_values={"age_years": "14", "place": "  Chiang Mai  "},
    )
    assert last_event(story).payload["corrected_values"] == {
        "age_years": 14,
        "place": "Chiang Mai",
    }
    assert story.current.child["age_years"] == 14
    assert kept(story, story.opening_id)["place"] == "Chiang Mai"


def test_corrected_values_of_an_entry_the_case_does_not_keep_are_normalised() -> None:
    story = Story()
    service = story.record("ServiceDelivered")
    story.record(
        "EntryCorrected",
        target_event_id=service,
        corrected_values={"delivered_on": "2026-11-27", "provider_agency_id": SHELTER.upper()},
    )
    assert last_event(story).payload["corrected_values"] == {
        "delivered_on": "2026-11-27",
        "provider_agency_id": SHELTER,
    }


def test_retry_of_a_correction_is_recognised_by_its_normalised_values() -> None:
    story = Story()
    env = story.envelope()
    values = {"age_years": "14"}
    first = story.decide(
        "EntryCorrected", env=env, target_event_id=story.opening_id, corrected_values=values
    )
    retry = story.decide(
        "EntryCorrected", env=env, target_event_id=story.opening_id, corrected_values=values
    )
    assert retry.duplicate is True
    assert retry.version == first.version == 2


def test_correction_cannot_give_an_anonymous_contact_a_caller_name() -> None:
    story = contact_case()
    story.refuse(
        InvalidPayloadError,
        "EntryCorrected",
        target_event_id=story.opening_id,
        corrected_values={"caller_name": "Ana Ficticia"},
    )
    story.record(
        "EntryCorrected",
        target_event_id=story.opening_id,
        corrected_values={"anonymous": False, "caller_name": "Ana Ficticia"},
    )
    assert last_event(story).payload["corrected_values"]["caller_name"] == "Ana Ficticia"


def test_correction_making_a_named_contact_anonymous_must_drop_the_name() -> None:
    """The case keeps no caller name, but it keeps that there is one."""
    story = Story("ContactReceived", anonymous=False, caller_name="Ana Ficticia")
    story.refuse(
        InvalidPayloadError,
        "EntryCorrected",
        target_event_id=story.opening_id,
        corrected_values={"anonymous": True},
    )
    story.record(
        "EntryCorrected",
        target_event_id=story.opening_id,
        corrected_values={"anonymous": True, "caller_name": None},
    )
    assert kept(story, story.opening_id)["caller_name"] is None


def test_correction_cannot_end_an_episode_before_it_starts() -> None:
    story = Story()
    episode = story.record(
        "ExploitationEpisodeRecorded", start_date="2026-01-01", end_date="2026-02-01"
    )
    error = story.refuse(
        InvalidPayloadError,
        "EntryCorrected",
        target_event_id=episode,
        corrected_values={"end_date": "2025-01-01"},
    )
    assert error.message == "the corrected ExploitationEpisodeRecorded entry is invalid"
    assert isinstance(error, InvalidPayloadError)
    assert [e["type"] for e in error.errors] == ["value_error"]


def test_correction_naming_unknown_fields_counts_them_without_naming_them() -> None:
    story = contact_case()
    error = story.refuse(
        InvalidPayloadError,
        "EntryCorrected",
        target_event_id=story.opening_id,
        corrected_values={CANARY: 1, "summary": "fine", f"{CANARY}-2": 2},
    )
    assert isinstance(error, InvalidPayloadError)
    assert error.message == "corrected_values names 2 field(s) ContactReceived does not have"
    assert error.errors == [
        {
            "loc": ["corrected_values"],
            "msg": "2 field(s) unknown to ContactReceived",
            "type": "extra_forbidden",
        }
    ]
    assert CANARY not in repr(error.errors)
    assert error.__cause__ is None


@pytest.mark.parametrize(
    "values",
    [
        {"place": f"{CANARY} " * 20},
        {"sex": CANARY},
        {"birth_date": CANARY},
        {"given_name": CANARY, "age_years": 40},
    ],
    ids=["too-long", "not-a-sex", "not-a-date", "two-fields"],
)
def test_invalid_correction_neither_echoes_nor_chains_the_value(values: dict[str, Any]) -> None:
    story = Story()
    error = story.refuse(
        InvalidPayloadError,
        "EntryCorrected",
        target_event_id=story.opening_id,
        corrected_values=values,
    )
    assert isinstance(error, InvalidPayloadError)
    assert error.__cause__ is None
    assert error.__context__ is None or error.__suppress_context__
    assert CANARY not in error.message
    assert CANARY not in repr(error.errors)
    invalid = [f for f in values if f != "given_name"]
    assert [e["loc"] for e in error.errors] == [["corrected_values", f] for f in invalid]
    assert error.message == f"corrected value for {invalid[0]} is invalid"


def test_invalid_nested_correction_does_not_echo_a_made_up_key() -> None:
    story = Story()
    conference = story.record("CaseConferenceHeld")
    participants = [{"agency_id": NGO, "role": "supervisor", CANARY: 1}]
    error = story.refuse(
        InvalidPayloadError,
        "EntryCorrected",
        target_event_id=conference,
        corrected_values={"participants": participants},
    )
    assert isinstance(error, InvalidPayloadError)
    assert error.errors == [
        {
            "loc": ["corrected_values", "participants", 0],
            "msg": "Extra inputs are not permitted",
            "type": "extra_forbidden",
        }
    ]


# -- fields that route access are not corrected -------------------------------------------------


def _routed_entries(story: Story) -> dict[str, str]:
    """One entry of each type with routing fields, recorded by NGO."""
    consent = story.consent(scope=["services"])
    return {
        "ReferralSent": story.refer(SHELTER, scope=["services"]),
        "ConsentRecorded": consent,
        "ReportedToLawEnforcement": story.report(),
        "ChildSheltered": story.record("ChildSheltered", shelter_agency_id=SHELTER),
        "GuardianAppointed": story.record("GuardianAppointed", guardian_agency_id=SHELTER),
        "ConsentWithdrawn": story.record("ConsentWithdrawn", consent_event_id=consent),
    }


ROUTING_CORRECTIONS: list[tuple[str, dict[str, Any]]] = [
    ("ReferralSent", {"to_agency_id": OTHER}),
    ("ReferralSent", {"scope": ["services", "medical"]}),
    ("ReferralSent", {"transfers_lead": True}),
    ("ConsentRecorded", {"purpose": "tracing"}),
    ("ConsentRecorded", {"scope": ["services", "medical"]}),
    ("ConsentRecorded", {"shared_with_agency_ids": [OTHER]}),
    ("ReportedToLawEnforcement", {"receiving_unit_agency_id": OTHER}),
    ("ChildSheltered", {"shelter_agency_id": OTHER}),
    ("GuardianAppointed", {"guardian_agency_id": OTHER}),
    ("ConsentWithdrawn", {"consent_event_id": str(uuid4())}),
]


@pytest.mark.parametrize(
    ("target_type", "values"),
    ROUTING_CORRECTIONS,
    ids=[f"{t}.{next(iter(v))}" for t, v in ROUTING_CORRECTIONS],
)
def test_correction_of_a_field_that_routes_access_is_refused(
    target_type: str, values: dict[str, Any]
) -> None:
    story = Story()
    target = _routed_entries(story)[target_type]
    error = story.refuse(
        InconsistentStateError, "EntryCorrected", target_event_id=target, corrected_values=values
    )
    assert "void the entry and record a new one" in error.message


@pytest.mark.parametrize("target_field", ["referral_event_id", "report_event_id"])
def test_correction_of_the_entry_an_answer_names_is_refused(target_field: str) -> None:
    story = Story()
    if target_field == "referral_event_id":
        referral = story.refer(SHELTER)
        answer = story.record("ReferralDeclined", who=SHELTER, referral_event_id=referral)
        who = SHELTER
    else:
        report = story.report()
        answer = story.record("ReportAcknowledged", who=POLICE, report_event_id=report)
        who = POLICE
    story.refuse(
        InconsistentStateError,
        "EntryCorrected",
        who=who,
        target_event_id=answer,
        corrected_values={target_field: str(uuid4())},
    )


def test_correction_of_other_referral_fields_applies_to_the_referral() -> None:
    story = Story()
    referral = story.refer(SHELTER, service="psychological")
    story.record(
        "EntryCorrected",
        target_event_id=referral,
        corrected_values={"service": "medical", "respond_by": "2026-12-10T09:00:00+00:00"},
    )
    record = story.current.referrals[referral]
    assert record["service"] == "medical"
    assert record["respond_by"] == "2026-12-10T09:00:00Z"
    assert record["to_agency_id"] == SHELTER


def test_correction_of_a_consents_expiry_applies_to_later_disclosures() -> None:
    story = Story()
    consent = story.consent(scope=["services"])
    story.record(
        "EntryCorrected", target_event_id=consent, corrected_values={"valid_until": "2020-01-01"}
    )
    assert story.current.consents[consent]["valid_until"] == "2020-01-01"
    error = story.refuse(
        MissingLegalBasisError,
        "ReferralSent",
        consent_ref=consent,
        to_agency_id=SHELTER,
        scope=["services"],
    )
    assert error.message == "that consent has expired"


# -- the presumption of minority under corrections ----------------------------------------------


def test_correction_to_a_child_age_presumes_minority_again() -> None:
    """After an assessment lifted the presumption, a corrected age under 18 restores it."""
    story = Story()
    story.record("AgeAssessed", is_minor=False, presumption_applies=False, age_years=19)
    assert story.current.child["minority_presumed"] is False
    story.record(
        "EntryCorrected", target_event_id=story.opening_id, corrected_values={"age_years": 12}
    )
    assert story.current.child["age_years"] == 12
    assert story.current.child["minority_presumed"] is True
    refolded(story.current)


def test_correction_to_a_child_birth_date_presumes_minority_again() -> None:
    story = Story(age_years=19, age_is_estimate=False, minority_presumed=False)
    assert story.current.child["minority_presumed"] is False
    story.record(
        "EntryCorrected",
        target_event_id=story.opening_id,
        corrected_values={"age_years": None, "birth_date": "2012-04-01"},
    )
    assert story.current.child["birth_date"] == "2012-04-01"
    assert story.current.child["minority_presumed"] is True
    refolded(story.current)


def test_correction_of_an_unrelated_field_keeps_a_lifted_presumption() -> None:
    story = Story()
    story.record("AgeAssessed", is_minor=False, presumption_applies=False, age_years=19)
    story.record(
        "EntryCorrected", target_event_id=story.opening_id, corrected_values={"place": "Krabi"}
    )
    assert story.current.child["minority_presumed"] is False
    assert story.current.child["age_years"] == 19


def test_correction_of_an_assessment_must_keep_it_consistent() -> None:
    story = Story()
    assessment = story.record(
        "AgeAssessed", is_minor=False, presumption_applies=False, age_years=19
    )
    story.refuse(
        MinorityPresumptionError,
        "EntryCorrected",
        target_event_id=assessment,
        corrected_values={"age_years": 12},
    )
    story.record(
        "EntryCorrected",
        target_event_id=assessment,
        corrected_values={"age_years": 12, "is_minor": True, "presumption_applies": True},
    )
    assert story.current.child["minority_presumed"] is True
    assert story.current.child["age_years"] == 12


# -- voids undo every effect of the entry -------------------------------------------------------


def test_voided_not_a_victim_decision_no_longer_clears_closure() -> None:
    story = Story()
    decision = story.record("IdentificationDecisionMade", decision="not_a_victim")
    assert story.current.identification_decision == "not_a_victim"
    story.record("EntryVoided", target_event_id=decision)
    assert story.current.identification_decision is None
    story.refuse(UnreportedTraffickingError, "CaseClosed")


def test_voided_decision_gives_way_to_the_previous_one() -> None:
    story = Story()
    story.record("IdentificationDecisionMade", decision="actual")
    later = story.record("IdentificationDecisionMade", decision="not_a_victim")
    story.record("EntryVoided", target_event_id=later)
    assert story.current.identification_decision == "actual"


def test_voided_victim_decision_no_longer_marks_a_contact_case_for_reporting() -> None:
    story = contact_case()
    decision = story.record(
        "IdentificationDecisionMade", decision="actual", exploitation_types=["forced_labour"]
    )
    assert story.current.trafficking_indicated is True
    story.record("EntryVoided", target_event_id=decision)
    assert story.current.trafficking_indicated is False
    assert story.current.exploitation_types == []
    story.record("CaseClosed", reason="lost_contact")
    assert story.current.closed is True


def test_correction_clearing_the_indicators_clears_the_reporting_duty() -> None:
    story = Story()
    story.refuse(UnreportedTraffickingError, "CaseClosed")
    story.record(
        "EntryCorrected",
        target_event_id=story.opening_id,
        corrected_values={"indicators": [], "exploitation_types": []},
    )
    assert story.current.trafficking_indicated is False
    story.record("CaseClosed")


def test_voided_plan_is_not_reviewed_and_the_stage_steps_back() -> None:
    story = Story()
    plan = story.record("ReintegrationPlanAgreed")
    story.record("PlanReviewed", next_review_date=None)
    story.record("EntryVoided", target_event_id=plan)
    assert story.current.plan_agreed is False
    assert story.current.plan_review_date is None
    assert story.current.stage == CaseStage.IDENTIFIED
    story.refuse(InconsistentStateError, "PlanReviewed")


def test_voided_review_restores_the_previous_review_date() -> None:
    story = Story()
    story.record("ReintegrationPlanAgreed", review_date="2027-02-01")
    review = story.record("PlanReviewed", next_review_date="2027-05-01")
    story.record("EntryVoided", target_event_id=review)
    assert story.current.plan_review_date == "2027-02-01"


def test_voided_acceptance_restores_the_pending_referral_and_the_lead() -> None:
    story = Story()
    referral = story.refer(SHELTER, transfers_lead=True)
    acceptance = story.record("ReferralAccepted", who=SHELTER, referral_event_id=referral)
    assert story.current.lead_agency_id == SHELTER
    story.record("EntryVoided", who=SHELTER, target_event_id=acceptance)
    assert story.current.referrals[referral]["status"] == "pending"
    assert story.current.referrals[referral]["answered_at"] is None
    assert story.current.lead_agency_id == NGO
    story.record("ReferralDeclined", who=SHELTER, referral_event_id=referral)
    assert story.current.referrals[referral]["status"] == "declined"


def test_voided_accepted_referral_returns_the_lead() -> None:
    story = Story()
    referral = story.refer(SHELTER, transfers_lead=True)
    story.record("ReferralAccepted", who=SHELTER, referral_event_id=referral)
    story.record("EntryVoided", target_event_id=referral)
    assert story.current.referrals[referral]["status"] == "voided"
    assert story.current.lead_agency_id == NGO
    assert story.current.stage == CaseStage.IDENTIFIED
    story.refuse(
        ReferralNotPendingError, "ReferralCompleted", who=SHELTER, referral_event_id=referral
    )


def test_voided_placement_end_restores_the_placement() -> None:
    story = Story()
    placement = story.record("ChildSheltered", shelter_agency_id=SHELTER)
    end = story.record("PlacementEnded")
    assert story.current.placement is None
    story.record("EntryVoided", target_event_id=end)
    assert story.current.placement is not None
    assert story.current.placement["event_id"] == placement
    assert story.current.stage == CaseStage.IN_CARE


def test_voided_missing_report_clears_missing() -> None:
    story = Story()
    story.record("ChildSheltered")
    missing = story.record("ChildMissingFromCare")
    story.record("EntryVoided", target_event_id=missing)
    assert story.current.missing is False
    story.refuse(InconsistentStateError, "ChildLocated")


def test_voided_located_report_makes_the_child_missing_again() -> None:
    story = Story()
    story.record("ChildSheltered")
    story.record("ChildMissingFromCare")
    located = story.record("ChildLocated")
    story.record("EntryVoided", target_event_id=located)
    assert story.current.missing is True


def test_voided_acknowledgement_leaves_the_report_unacknowledged() -> None:
    story = Story()
    report = story.report()
    ack = story.record("ReportAcknowledged", who=POLICE, report_event_id=report)
    story.record("EntryVoided", who=POLICE, target_event_id=ack)
    assert story.current.reports[report]["acknowledged_at"] is None
    story.record("ReportAcknowledged", who=POLICE, report_event_id=report)
    assert story.current.reports[report]["acknowledged_at"] is not None


def test_voided_withdrawal_makes_the_consent_active_again() -> None:
    story = Story()
    consent = story.consent(scope=["services"])
    withdrawal = story.record("ConsentWithdrawn", consent_event_id=consent)
    story.record("EntryVoided", target_event_id=withdrawal)
    assert story.current.consents[consent]["active"] is True
    story.record("ReferralSent", consent_ref=consent, to_agency_id=SHELTER, scope=["services"])


def test_voided_guardian_appointment_gives_way_to_the_previous_guardian() -> None:
    story = Story()
    story.record("GuardianAppointed", guardian_agency_id=SHELTER)
    later = story.record("GuardianAppointed", guardian_agency_id=OTHER)
    assert story.current.guardian_agency_id == OTHER
    story.record("EntryVoided", target_event_id=later)
    assert story.current.guardian_agency_id == SHELTER


def test_voided_best_interests_determination_steps_the_stage_back() -> None:
    story = Story()
    determination = story.record("BestInterestsDetermined")
    assert story.current.stage == CaseStage.REINTEGRATION
    story.record("EntryVoided", target_event_id=determination)
    assert story.current.best_interests_review_date is None
    assert story.current.stage == CaseStage.IDENTIFIED


def test_voided_age_assessment_restores_the_presumption() -> None:
    story = Story()
    assessment = story.record(
        "AgeAssessed", is_minor=False, presumption_applies=False, age_years=19
    )
    story.record("EntryVoided", target_event_id=assessment)
    assert story.current.child["minority_presumed"] is True
    assert story.current.child["age_years"] == 15


def test_voided_contact_is_no_longer_counted() -> None:
    story = Story()
    contact = story.record("ContactReceived")
    assert story.current.contacts == 1
    story.record("EntryVoided", target_event_id=contact)
    assert story.current.contacts == 0


def test_voided_later_identification_steps_a_contact_case_back() -> None:
    story = contact_case()
    identification = story.record("ChildIdentified")
    assert story.current.stage == CaseStage.IDENTIFIED
    story.record("EntryVoided", target_event_id=identification)
    assert story.current.identified_at is None
    assert story.current.trafficking_indicated is False
    assert story.current.country is None
    assert story.current.stage == CaseStage.CONTACT


def test_void_of_an_entry_without_state_changes_only_its_mark() -> None:
    story = Story()
    story.record("ChildSheltered", shelter_agency_id=SHELTER)
    service = story.record("ServiceDelivered")
    before = state_of(story.current)
    story.record("EntryVoided", target_event_id=service)
    after = state_of(story.current)
    assert after["entries"][service]["voided"] is True
    changed = {k for k in after if after[k] != before[k]}
    assert changed <= {"entries", "pending", "_version", "_modified_on"}


def test_state_after_voids_and_corrections_is_what_folding_again_gives() -> None:
    story = Story()
    referral = story.refer(SHELTER, transfers_lead=True)
    story.record("ReferralAccepted", who=SHELTER, referral_event_id=referral)
    story.record("ChildSheltered", who=SHELTER, shelter_agency_id=SHELTER)
    decision = story.record("IdentificationDecisionMade", decision="actual")
    story.record(
        "EntryCorrected", target_event_id=story.opening_id, corrected_values={"sex": "male"}
    )
    story.record("EntryVoided", target_event_id=decision)
    state = refolded(story.current)
    assert state["child"]["sex"] == "male"
    assert state["lead_agency_id"] == SHELTER
    assert state["identification_decision"] is None


# -- what the case keeps ------------------------------------------------------------------------


def test_case_state_keeps_no_identifying_text() -> None:
    story = Story(given_name="Mali", family_name="Synthetic", notes=CANARY, birth_date=None)
    story.record("ContactReceived", anonymous=False, caller_name="Ana Ficticia")
    story.record("IdentificationDecisionMade", reasons=f"Reasons about {CANARY}")
    story.record("ChildSheltered", address=f"{CANARY} street 1")
    story.record(
        "EntryCorrected", target_event_id=story.opening_id, corrected_values={"given_name": "Ana"}
    )
    text = json.dumps(state_of(story.current), default=str)
    for identifying in (CANARY, "Mali", "Synthetic", "Ana Ficticia", '"Ana"'):
        assert identifying not in text
    assert kept(story, story.opening_id)["given_name"] == REDACTED


def test_case_state_keeps_the_birth_date_the_age_is_derived_from() -> None:
    story = Story()
    story.record(
        "AgeAssessed",
        is_minor=True,
        presumption_applies=True,
        age_years=None,
        birth_date="2012-04-01",
    )
    assert story.current.child["birth_date"] == "2012-04-01"


def test_every_payload_validator_belongs_to_an_entry_the_case_keeps() -> None:
    """Corrections are validated whole only against kept entries: validators must be there."""
    with_validators = {
        name
        for name, spec in CATALOG.items()
        if spec.payload_model.__pydantic_decorators__.model_validators
    }
    assert with_validators == {"ContactReceived", "AgeAssessed", "ExploitationEpisodeRecorded"}
    assert with_validators <= set(Case._EVOLVERS)


@pytest.mark.parametrize("event_type", sorted(Case._EVOLVERS))
def test_redacted_effective_payload_is_still_valid(event_type: str) -> None:
    """Every sensitive field the case does not keep is text, and its stand-in is valid text,
    so a kept entry can be validated whole when it is corrected."""
    model = CATALOG[event_type].payload_model
    hidden = sensitive_fields(event_type) - FOLD_READS_SENSITIVE
    payload = example(event_type, **dict.fromkeys(hidden, "x"))
    if event_type == "ContactReceived":
        payload["anonymous"] = False
    stored = model.model_validate(payload).model_dump(mode="json")
    kept = redact(event_type, stored)
    assert {f: kept[f] for f in hidden} == dict.fromkeys(hidden, REDACTED)
    model.model_validate(kept)


def test_another_case_is_not_affected_by_a_refold() -> None:
    first, second = Story(), Story()
    before = state_of(second.current)
    decision = first.record("IdentificationDecisionMade", decision="actual")
    first.record("EntryVoided", target_event_id=decision)
    assert state_of(second.current) == before
    assert first.current.identification_decision is None
