"""Authorization policy on its own: the permission matrix, relations, and field filters."""

from __future__ import annotations

from datetime import timedelta
from uuid import uuid4

import pytest

from referral_core.case import Case
from referral_core.case_events import CATALOG
from referral_core.commands import record_event
from referral_core.errors import PermissionDeniedError
from referral_core.policy import (
    Principal,
    Relation,
    access_of,
    check_append,
    check_erase,
    identifying_fields,
    may_append_kind,
    view_event,
)
from referral_core.sensitivity import Sensitivity
from referral_core.vocab import AgencyKind, Role
from tests.support.builders import NGO, NOW, OTHER, POLICE, SHELTER, actor, envelope, example

K = AgencyKind

# DESIGN.md's "appended by" column, written out per agency kind (caseworker role).
# Types that need a supervisor are listed separately below.
EXPECTED_KIND_MATRIX: dict[AgencyKind, set[str]] = {
    K.HOTLINE: {
        "ContactReceived",
        "ChildIdentified",
        "ConsentRecorded",
        "ConsentWithdrawn",
        "ReportedToLawEnforcement",
        "CaseConferenceHeld",
        "ReferralSent",
        "ReferralAccepted",
        "ReferralDeclined",
        "ReferralCompleted",
        "ReferralRevoked",
        "FamilyTraced",
        "ServiceDelivered",
        "ExploitationEpisodeRecorded",
        "EntryCorrected",
    },
    K.NGO: {
        "ContactReceived",
        "ChildIdentified",
        "ConsentRecorded",
        "ConsentWithdrawn",
        "ReportedToLawEnforcement",
        "CaseConferenceHeld",
        "ReferralSent",
        "ReferralAccepted",
        "ReferralDeclined",
        "ReferralCompleted",
        "ReferralRevoked",
        "ChildSheltered",
        "PlacementEnded",
        "ChildMissingFromCare",
        "ChildLocated",
        "ReturnRiskAssessed",
        "ChildReturned",
        "FamilyTraced",
        "HomeAssessed",
        "ServiceDelivered",
        "ExploitationEpisodeRecorded",
        "EntryCorrected",
    },
    K.SHELTER: {
        "ContactReceived",
        "ChildIdentified",
        "ConsentRecorded",
        "ConsentWithdrawn",
        "ReportedToLawEnforcement",
        "CaseConferenceHeld",
        "ReferralSent",
        "ReferralAccepted",
        "ReferralDeclined",
        "ReferralCompleted",
        "ReferralRevoked",
        "ChildSheltered",
        "PlacementEnded",
        "ChildMissingFromCare",
        "ChildLocated",
        "ServiceDelivered",
        "EntryCorrected",
    },
    K.LAW_ENFORCEMENT: {
        "ContactReceived",
        "ChildIdentified",
        "ReportAcknowledged",
        "ReferralAccepted",
        "ReferralDeclined",
        "ReferralCompleted",
        "ChildMissingFromCare",
        "ChildLocated",
        "InterviewConducted",
        "ExploitationEpisodeRecorded",
        "EntryCorrected",
    },
    K.PROSECUTOR: {
        "ReferralAccepted",
        "ReferralDeclined",
        "ReferralCompleted",
        "LegalProceedingRecorded",
        "EntryCorrected",
    },
    K.COURT: {
        "GuardianAppointed",
        "ReferralAccepted",
        "ReferralDeclined",
        "ReferralCompleted",
        "LegalProceedingRecorded",
        "EntryCorrected",
    },
    K.LEGAL_AID: {
        "ReferralAccepted",
        "ReferralDeclined",
        "ReferralCompleted",
        "ServiceDelivered",
        "LegalProceedingRecorded",
        "EntryCorrected",
    },
    K.GUARDIAN: {
        "ConsentRecorded",
        "ConsentWithdrawn",
        "ReportedToLawEnforcement",
        "ReferralAccepted",
        "ReferralDeclined",
        "ReferralCompleted",
        "EntryCorrected",
    },
    K.MINISTRY: {
        "IdentificationDecisionMade",
        "ReferralAccepted",
        "ReferralDeclined",
        "ReferralCompleted",
        "EntryCorrected",
    },
    K.COORDINATOR: {
        "IdentificationDecisionMade",
        "ReferralSent",
        "ReferralAccepted",
        "ReferralDeclined",
        "ReferralCompleted",
        "ReferralRevoked",
        "ReturnRiskAssessed",
        "ChildReturned",
        "EntryCorrected",
    },
    K.AUDITOR: set(),
}
CASE_MANAGER_TYPES = {
    "ContactReceived",
    "ChildIdentified",
    "ConsentRecorded",
    "ConsentWithdrawn",
    "ReportedToLawEnforcement",
    "CaseConferenceHeld",
    "ReferralSent",
    "ReferralAccepted",
    "ReferralDeclined",
    "ReferralCompleted",
    "ReferralRevoked",
    "ChildSheltered",
    "PlacementEnded",
    "ChildMissingFromCare",
    "ChildLocated",
    "ReturnRiskAssessed",
    "ChildReturned",
    "FamilyTraced",
    "HomeAssessed",
    "ServiceDelivered",
    "ExploitationEpisodeRecorded",
    "EntryCorrected",
}
EXPECTED_KIND_MATRIX[K.SOCIAL_SERVICES] = CASE_MANAGER_TYPES | {
    "AgeAssessed",
    "IdentificationDecisionMade",
}
EXPECTED_KIND_MATRIX[K.CHILD_PROTECTION] = CASE_MANAGER_TYPES | {
    "AgeAssessed",
    "GuardianAppointed",
    "IdentificationDecisionMade",
    "BestInterestsDetermined",
}
SUPERVISOR_ONLY = {
    "ReintegrationPlanAgreed",
    "PlanReviewed",
    "CaseClosed",
    "CaseReopened",
    "EntryVoided",
}
SUPERVISOR_KINDS: dict[str, set[AgencyKind]] = {
    "ReintegrationPlanAgreed": {K.NGO, K.SOCIAL_SERVICES, K.CHILD_PROTECTION},
    "PlanReviewed": {K.NGO, K.SOCIAL_SERVICES, K.CHILD_PROTECTION},
    "CaseClosed": {K.NGO, K.SOCIAL_SERVICES, K.CHILD_PROTECTION, K.HOTLINE, K.SHELTER},
    "CaseReopened": {K.NGO, K.SOCIAL_SERVICES, K.CHILD_PROTECTION, K.HOTLINE, K.SHELTER},
    "EntryVoided": set(AgencyKind) - {K.AUDITOR},
}


def principal(kind: AgencyKind, role: Role = Role.CASEWORKER, agency: str = NGO) -> Principal:
    return Principal("user-1", agency, kind, role)


@pytest.mark.parametrize("kind", list(AgencyKind))
@pytest.mark.parametrize("event_type", sorted(CATALOG))
def test_permission_matrix(kind: AgencyKind, event_type: str) -> None:
    caseworker = principal(kind, Role.CASEWORKER)
    supervisor = principal(kind, Role.SUPERVISOR)
    if event_type in SUPERVISOR_ONLY:
        assert not may_append_kind(caseworker, event_type)
        assert may_append_kind(supervisor, event_type) is (kind in SUPERVISOR_KINDS[event_type])
    else:
        expected = event_type in EXPECTED_KIND_MATRIX[kind]
        assert may_append_kind(caseworker, event_type) is expected
        assert may_append_kind(supervisor, event_type) is expected


def _case() -> Case:
    decision = record_event(
        None,
        case_id=uuid4(),
        event_type="ChildIdentified",
        payload=example("ChildIdentified", birth_date="2011-02-03"),
        envelope=envelope(actor(NGO)),
        now=NOW,
    )
    return decision.case


def _append(case: Case, event_type: str, agency: str = NGO, **kw: object) -> Case:
    return record_event(
        case,
        case_id=case.case_id,
        event_type=event_type,
        payload=example(event_type, **kw),
        envelope=envelope(actor(agency), legal_basis="statute"),
        now=NOW,
    ).case


def test_relations_come_from_the_stream() -> None:
    case = _case()
    assert access_of(principal(K.NGO), case).relations == {Relation.LEAD, Relation.OPENER}
    police = principal(K.LAW_ENFORCEMENT, agency=POLICE)
    assert not access_of(police, case).visible
    case = _append(case, "ReportedToLawEnforcement", receiving_unit_agency_id=POLICE)
    assert access_of(police, case).relations == {Relation.REPORT_RECIPIENT}
    shelter = principal(K.SHELTER, agency=SHELTER)
    case = _append(case, "ChildSheltered", shelter_agency_id=SHELTER)
    assert Relation.SHELTER in access_of(shelter, case).relations
    case = _append(case, "PlacementEnded")
    assert not access_of(shelter, case).visible
    auditor = principal(K.AUDITOR, agency="any")
    assert access_of(auditor, case).relations == {Relation.AUDITOR}


def test_break_glass_is_time_boxed_and_for_supervisors() -> None:
    case = _case()
    other = OTHER
    supervisor = principal(K.NGO, Role.SUPERVISOR, agency=other)
    until = NOW + timedelta(minutes=30)
    assert access_of(supervisor, case, break_glass_until=until, now=NOW).relations == {
        Relation.BREAK_GLASS
    }
    assert not access_of(supervisor, case, break_glass_until=until, now=until).visible
    caseworker = principal(K.NGO, Role.CASEWORKER, agency=other)
    assert not access_of(caseworker, case, break_glass_until=until, now=NOW).visible
    with pytest.raises(PermissionDeniedError):
        check_append(
            supervisor,
            "ServiceDelivered",
            access_of(supervisor, case, break_glass_until=until, now=NOW),
        )


def test_append_needs_the_right_relation() -> None:
    case = _case()
    police = principal(K.LAW_ENFORCEMENT, agency=POLICE)
    with pytest.raises(PermissionDeniedError):
        check_append(police, "InterviewConducted", access_of(police, case))
    case = _append(case, "ReportedToLawEnforcement", receiving_unit_agency_id=POLICE)
    check_append(police, "InterviewConducted", access_of(police, case))
    with pytest.raises(PermissionDeniedError):
        check_append(police, "ReferralSent", access_of(police, case))
    shelter = principal(K.SHELTER, agency=SHELTER)
    case = _append(case, "ChildSheltered", shelter_agency_id=SHELTER)
    check_append(shelter, "ServiceDelivered", access_of(shelter, case))
    with pytest.raises(PermissionDeniedError):
        check_append(shelter, "CaseConferenceHeld", access_of(shelter, case))


def _view(p: Principal, case: Case, event_type: str, **payload: object) -> object:
    return view_event(
        p,
        access_of(p, case),
        event_type=event_type,
        payload=example(event_type, **payload),
        author_agency_id=NGO,
    )


def test_law_enforcement_never_receives_psychosocial_or_medical_content() -> None:
    case = _append(_case(), "ReportedToLawEnforcement", receiving_unit_agency_id=POLICE)
    police = principal(K.LAW_ENFORCEMENT, agency=POLICE)
    for service in ("psychological", "medical"):
        assert _view(police, case, "ServiceDelivered", service_type=service) is None
    assert _view(police, case, "BestInterestsDetermined") is None
    episode = _view(police, case, "ExploitationEpisodeRecorded", perpetrator_details="X")
    assert episode is not None


def test_law_enforcement_receives_only_the_fields_the_report_shares() -> None:
    case = _append(
        _case(),
        "ReportedToLawEnforcement",
        receiving_unit_agency_id=POLICE,
        fields_shared=["age_years", "sex"],
    )
    police = principal(K.LAW_ENFORCEMENT, agency=POLICE)
    seen = _view(police, case, "ChildIdentified", given_name="Canary")
    assert seen is not None
    assert set(seen.payload) == {"age_years", "sex"}  # type: ignore[attr-defined]
    assert "given_name" in seen.redacted  # type: ignore[attr-defined]


def test_guardian_never_receives_perpetrator_or_investigation_detail() -> None:
    guardian_agency = OTHER
    case = _append(_case(), "GuardianAppointed", guardian_agency_id=guardian_agency)
    guardian = principal(K.GUARDIAN, agency=guardian_agency)
    episode = _view(guardian, case, "ExploitationEpisodeRecorded", perpetrator_details="Boss")
    assert episode is not None
    assert "perpetrator_details" not in episode.payload  # type: ignore[attr-defined]
    assert _view(guardian, case, "InterviewConducted") is None
    ack = _view(guardian, case, "ReportAcknowledged")
    assert ack is not None
    assert "police_reference" not in ack.payload  # type: ignore[attr-defined]


def test_referral_receiver_sees_only_its_scope_and_loses_it_on_revocation() -> None:
    case = _case()
    other = OTHER
    decision = record_event(
        case,
        case_id=case.case_id,
        event_type="ReferralSent",
        payload=example("ReferralSent", to_agency_id=other, scope=["services"]),
        envelope=envelope(actor(NGO), legal_basis="statute"),
        now=NOW,
    )
    case = decision.case
    receiver = principal(K.NGO, agency=other)
    access = access_of(receiver, case)
    assert access.relations == {Relation.REFERRAL_PENDING}
    with pytest.raises(PermissionDeniedError):
        check_append(receiver, "ServiceDelivered", access)
    check_append(receiver, "ReferralAccepted", access)
    assert _view(receiver, case, "ServiceDelivered", service_type="education") is not None
    assert _view(receiver, case, "ServiceDelivered", service_type="medical") is None
    assert _view(receiver, case, "ExploitationEpisodeRecorded") is None
    identified = _view(receiver, case, "ChildIdentified")
    assert identified is None
    case = _append(case, "ReferralRevoked", referral_event_id=decision.event_id)
    assert not access_of(receiver, case).visible
    assert _view(receiver, case, "ServiceDelivered", service_type="education") is None


def test_identifying_fields_are_declared() -> None:
    assert {"given_name", "family_name", "birth_date", "address", "notes"} <= identifying_fields(
        "ChildIdentified"
    )
    assert identifying_fields("ChildReturned") == frozenset()
    for name in CATALOG:
        for field in identifying_fields(name):
            assert field in CATALOG[name].payload_model.model_fields
    assert Sensitivity.IDENTIFYING.value == "identifying"


@pytest.mark.parametrize("kind", list(AgencyKind))
@pytest.mark.parametrize("role", list(Role))
def test_only_a_national_data_protection_officer_erases(kind: AgencyKind, role: Role) -> None:
    who = principal(kind, role)
    allowed = kind in (K.MINISTRY, K.COORDINATOR) and role is Role.DATA_PROTECTION_OFFICER
    if allowed:
        check_erase(who)
    else:
        with pytest.raises(PermissionDeniedError):
            check_erase(who)
    assert not may_append_kind(who, "CaseErased"), (
        "erasure has its own route, never a plain append"
    )
