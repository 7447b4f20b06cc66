"""Typed, validated payloads of every case event: one pydantic model per event type.

Each model forbids unknown fields, bounds every string and list, and carries one example that the
API shows in its OpenAPI document. Fields holding personal data carry `Sensitive` markers.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal
from uuid import UUID

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from referral_core.sensitivity import (
    IDENTIFYING,
    IDENTIFYING_PSYCHOSOCIAL,
    INVESTIGATION,
    PERPETRATOR,
)
from referral_core.vocab import (
    AgeAssessmentMethod,
    CallerType,
    ClosureReason,
    ConsentGiver,
    ConsentPurpose,
    ContactChannel,
    ContactTopic,
    EpisodePhase,
    ExploitationType,
    FamilySafety,
    FamilyTracingOutcome,
    IdentificationMethod,
    LegalStage,
    MeansOfControl,
    PlacementEndReason,
    PlacementType,
    RecruiterRelation,
    ReferralScope,
    ReturnRisk,
    Role,
    ServiceOutcome,
    ServiceType,
    Sex,
    TraffickingStatus,
    Urgency,
)

# No NUL and no other C0 control but tab and line breaks: stores and terminals differ on them.
NO_CONTROL_CHARACTERS = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
ShortText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=200, pattern=NO_CONTROL_CHARACTERS
    ),
]
LongText = Annotated[
    str,
    StringConstraints(
        strip_whitespace=True, min_length=1, max_length=4000, pattern=NO_CONTROL_CHARACTERS
    ),
]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]
AgeYears = Annotated[int, Field(ge=0, le=25)]
# A calendar day or moment in a case: nothing before 1900 or after 2199 is a real one, and
# deadline arithmetic near the ends of Python's date range (0001, 9999) would overflow.
Day = Annotated[date, Field(ge=date(1900, 1, 1), le=date(2199, 12, 31))]
Moment = Annotated[
    AwareDatetime,
    Field(ge=datetime(1900, 1, 1, tzinfo=UTC), le=datetime(2199, 12, 31, tzinfo=UTC)),
]
Note = Annotated[LongText | None, IDENTIFYING]
PersonName = Annotated[ShortText | None, IDENTIFYING]

# Bounds on list lengths: enough for real cases, small enough that no request can balloon.
FEW = 20
MANY = 50


class Payload(BaseModel):
    """Base of every payload: strict shape, frozen once validated."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


def example_of(model: type[Payload]) -> dict[str, Any]:
    """The example payload a model documents (a copy), or an empty dict."""
    extra = model.model_config.get("json_schema_extra")
    if isinstance(extra, dict):
        examples = extra.get("examples")
        if isinstance(examples, list) and examples and isinstance(examples[0], dict):
            return dict(examples[0])
    return {}


def _example(example: dict[str, Any]) -> ConfigDict:
    return ConfigDict(
        extra="forbid",
        frozen=True,
        str_strip_whitespace=True,
        json_schema_extra={"examples": [example]},
    )


AGENCY_A = "6f1c2f0e-0d53-5d8f-9a53-3f0f6b1b2a01"
AGENCY_B = "6f1c2f0e-0d53-5d8f-9a53-3f0f6b1b2a02"
EVENT_X = "0b5e8a4e-6b0a-4f5e-8d59-1f3c2a7d9e10"


class ContactReceived(Payload):
    model_config = _example(
        {
            "channel": "phone",
            "anonymous": True,
            "caller_type": "relative",
            "topics": ["missing_child_abroad"],
            "imminent_danger": False,
            "child_age_years": 15,
            "child_sex": "female",
            "country_of_concern": "PL",
            "summary": "Aunt worried: niece left for a job abroad and stopped answering.",
        }
    )

    channel: ContactChannel
    anonymous: bool
    caller_type: CallerType
    topics: Annotated[list[ContactTopic], Field(min_length=1, max_length=FEW)]
    imminent_danger: bool = False
    child_age_years: AgeYears | None = None
    child_sex: Sex = Sex.UNKNOWN
    country_of_concern: CountryCode | None = None
    caller_name: PersonName = None
    caller_contact: PersonName = None
    summary: Note = None

    @model_validator(mode="after")
    def _anonymous_callers_leave_no_name(self) -> ContactReceived:
        if self.anonymous and (self.caller_name or self.caller_contact):
            raise ValueError("an anonymous contact records no caller name or contact")
        return self


class ChildIdentified(Payload):
    model_config = _example(
        {
            "place": "Bangkok",
            "country": "TH",
            "method": "proactive",
            "indicators": ["no identity documents", "controlled movement"],
            "trafficking_status": "possible",
            "exploitation_types": ["sexual_exploitation"],
            "sex": "female",
            "age_years": 15,
            "age_is_estimate": True,
            "minority_presumed": True,
            "nationality": "LA",
            "given_name": "Mali",
            "family_name": "Synthetic",
        }
    )

    place: ShortText
    country: CountryCode
    method: IdentificationMethod
    indicators: Annotated[list[ShortText], Field(max_length=MANY)] = []
    trafficking_status: Literal[TraffickingStatus.POSSIBLE] = TraffickingStatus.POSSIBLE
    exploitation_types: Annotated[list[ExploitationType], Field(max_length=FEW)] = []
    sex: Sex = Sex.UNKNOWN
    age_years: AgeYears | None = None
    age_is_estimate: bool = True
    minority_presumed: bool = True
    nationality: CountryCode | None = None
    given_name: PersonName = None
    family_name: PersonName = None
    birth_date: Annotated[Day | None, IDENTIFYING] = None
    address: Note = None
    photo_ref: PersonName = None
    notes: Note = None


class AgeAssessed(Payload):
    model_config = _example(
        {
            "method": "multidisciplinary",
            "age_years": 16,
            "is_minor": True,
            "presumption_applies": True,
        }
    )

    method: AgeAssessmentMethod
    age_years: AgeYears | None = None
    birth_date: Annotated[Day | None, IDENTIFYING] = None
    is_minor: bool
    presumption_applies: bool
    notes: Note = None

    @model_validator(mode="after")
    def _presumption_follows_result(self) -> AgeAssessed:
        if self.is_minor and not self.presumption_applies:
            raise ValueError("an assessment that finds a minor cannot lift the presumption")
        return self


class GuardianAppointed(Payload):
    model_config = _example(
        {
            "guardian_agency_id": AGENCY_B,
            "mandate": "legal representation until majority",
            "guardian_name": "Ana Ficticia",
        }
    )

    guardian_agency_id: UUID
    mandate: ShortText
    guardian_name: PersonName = None
    until: Day | None = None


class ConsentRecorded(Payload):
    model_config = _example(
        {
            "purpose": "sharing",
            "given_by": "guardian",
            "scope": ["identification", "services"],
            "shared_with_agency_ids": [AGENCY_B],
        }
    )

    purpose: ConsentPurpose
    given_by: ConsentGiver
    scope: Annotated[list[ReferralScope], Field(min_length=1, max_length=FEW)]
    shared_with_agency_ids: Annotated[list[UUID], Field(max_length=MANY)] = []
    valid_until: Day | None = None
    notes: Note = None


class ConsentWithdrawn(Payload):
    model_config = _example({"consent_event_id": EVENT_X, "reason": "child asked to stop"})

    consent_event_id: UUID
    reason: ShortText | None = None


class ReportedToLawEnforcement(Payload):
    model_config = _example(
        {
            "receiving_unit_agency_id": AGENCY_B,
            "statutory_basis": "Child Protection Act s.12 mandatory report",
            "fields_shared": ["age_years", "sex", "exploitation_types", "place"],
            "urgency": "urgent",
        }
    )

    receiving_unit_agency_id: UUID
    statutory_basis: ShortText
    fields_shared: Annotated[list[ShortText], Field(min_length=1, max_length=MANY)]
    urgency: Urgency = Urgency.ROUTINE
    summary: Note = None


class ReportAcknowledged(Payload):
    model_config = _example({"report_event_id": EVENT_X, "police_reference": "TH-ATU-2026-0042"})

    report_event_id: UUID
    police_reference: Annotated[ShortText, INVESTIGATION]


class IdentificationDecisionMade(Payload):
    model_config = _example(
        {
            "decision": "actual",
            "deciding_body": "Provincial multidisciplinary team",
            "reasons": "Recruitment by deception, controlled movement, sexual exploitation.",
            "exploitation_types": ["sexual_exploitation"],
        }
    )

    decision: TraffickingStatus
    deciding_body: ShortText
    reasons: Annotated[LongText, IDENTIFYING]
    exploitation_types: Annotated[list[ExploitationType], Field(max_length=FEW)] = []


class ConferenceParticipant(Payload):
    agency_id: UUID
    role: Role


class CaseConferenceHeld(Payload):
    model_config = _example(
        {
            "participants": [
                {"agency_id": AGENCY_A, "role": "supervisor"},
                {"agency_id": AGENCY_B, "role": "caseworker"},
            ],
            "decisions": ["refer for psychological support", "trace family"],
        }
    )

    participants: Annotated[list[ConferenceParticipant], Field(min_length=1, max_length=MANY)]
    decisions: Annotated[list[ShortText], Field(min_length=1, max_length=MANY)]
    next_conference_on: Day | None = None
    minutes: Note = None


class ReferralSent(Payload):
    model_config = _example(
        {
            "to_agency_id": AGENCY_B,
            "service": "psychological",
            "scope": ["identification", "services", "psychosocial"],
            "respond_by": "2026-12-03T12:00:00Z",
            "transfers_lead": False,
        }
    )

    to_agency_id: UUID
    service: ServiceType
    scope: Annotated[list[ReferralScope], Field(min_length=1, max_length=FEW)]
    respond_by: Moment | None = None
    transfers_lead: bool = False
    notes: Note = None


class ReferralAccepted(Payload):
    model_config = _example({"referral_event_id": EVENT_X})

    referral_event_id: UUID
    notes: Note = None


class ReferralDeclined(Payload):
    model_config = _example({"referral_event_id": EVENT_X, "reason": "no capacity this month"})

    referral_event_id: UUID
    reason: ShortText


class ReferralCompleted(Payload):
    model_config = _example({"referral_event_id": EVENT_X, "outcome": "12 sessions held"})

    referral_event_id: UUID
    outcome: ShortText


class ReferralRevoked(Payload):
    model_config = _example({"referral_event_id": EVENT_X, "reason": "consent withdrawn"})

    referral_event_id: UUID
    reason: ShortText


class ChildSheltered(Payload):
    model_config = _example(
        {
            "shelter_agency_id": AGENCY_B,
            "facility": "Girls' transit home, north wing",
            "placement_type": "short_term_shelter",
            "start_date": "2026-11-20",
        }
    )

    shelter_agency_id: UUID
    facility: ShortText
    placement_type: PlacementType
    start_date: Day
    expected_end_date: Day | None = None
    address: Note = None


class PlacementEnded(Payload):
    model_config = _example({"end_date": "2026-12-20", "reason": "moved"})

    end_date: Day
    reason: PlacementEndReason
    notes: Note = None


class ChildMissingFromCare(Payload):
    model_config = _example(
        {"last_seen_at": "2026-11-25T18:30:00Z", "police_reference": "UA-NP-2026-7781"}
    )

    last_seen_at: Moment
    last_seen_place: Note = None
    police_reference: Annotated[ShortText | None, INVESTIGATION] = None


class ChildLocated(Payload):
    model_config = _example({"located_at": "2026-11-27T09:00:00Z", "condition": "unharmed"})

    located_at: Moment
    place: Note = None
    police_reference: Annotated[ShortText | None, INVESTIGATION] = None
    condition: ShortText | None = None


class ReturnRiskAssessed(Payload):
    model_config = _example(
        {
            "from_country": "TH",
            "to_country": "LA",
            "risk": "medium",
            "recommendation": "return",
        }
    )

    from_country: CountryCode
    to_country: CountryCode
    risk: ReturnRisk
    recommendation: Literal["return", "do_not_return", "defer"]
    notes: Note = None


class ChildReturned(Payload):
    model_config = _example(
        {
            "from_country": "TH",
            "to_country": "LA",
            "receiving_agency_name": "Vientiane reception centre",
            "escort": "social worker",
            "met_by": "hotline staff at the airport",
            "return_date": "2026-12-10",
        }
    )

    from_country: CountryCode
    to_country: CountryCode
    receiving_agency_id: UUID | None = None
    receiving_agency_name: ShortText
    escort: ShortText | None = None
    met_by: ShortText | None = None
    return_date: Day


class FamilyTraced(Payload):
    model_config = _example({"outcome": "found", "relationship": "mother"})

    outcome: FamilyTracingOutcome
    relationship: ShortText | None = None
    family_contact: PersonName = None
    notes: Note = None


class HomeAssessed(Payload):
    model_config = _example({"safety": "safe_with_support", "recommendation": "family support"})

    safety: FamilySafety
    recommendation: ShortText
    notes: Note = None


class BestInterestsDetermined(Payload):
    model_config = _example(
        {
            "panel": ["child protection officer", "psychologist", "guardian"],
            "child_views": "Wants to finish school near her mother.",
            "option_chosen": "family reintegration with support",
            "review_date": "2027-03-01",
        }
    )

    panel: Annotated[list[ShortText], Field(min_length=1, max_length=FEW)]
    child_views: Annotated[LongText, IDENTIFYING_PSYCHOSOCIAL]
    option_chosen: ShortText
    review_date: Day


class ReintegrationPlanAgreed(Payload):
    model_config = _example(
        {
            "goals": ["return to school", "weekly counselling"],
            "services": ["education", "psychological"],
            "responsible_agency_ids": [AGENCY_A, AGENCY_B],
            "review_date": "2027-02-01",
        }
    )

    goals: Annotated[list[ShortText], Field(min_length=1, max_length=MANY)]
    services: Annotated[list[ServiceType], Field(min_length=1, max_length=FEW)]
    responsible_agency_ids: Annotated[list[UUID], Field(min_length=1, max_length=FEW)]
    review_date: Day
    notes: Note = None


class PlanReviewed(Payload):
    model_config = _example({"progress": "attending school", "next_review_date": "2027-05-01"})

    progress: ShortText
    next_review_date: Day | None = None
    notes: Note = None


class ServiceDelivered(Payload):
    model_config = _example(
        {
            "service_type": "psychological",
            "provider_agency_id": AGENCY_B,
            "delivered_on": "2026-11-28",
            "outcome": "ongoing",
        }
    )

    service_type: ServiceType
    provider_agency_id: UUID
    delivered_on: Day
    outcome: ServiceOutcome
    notes: Annotated[LongText | None, IDENTIFYING_PSYCHOSOCIAL] = None


class InterviewConducted(Payload):
    model_config = _example(
        {
            "interview_date": "2026-11-22",
            "conducted_by": "Investigator, anti-trafficking unit",
            "through_social_worker": "Shelter social worker",
            "recording_reference": "REC-2026-113",
        }
    )

    interview_date: Day
    conducted_by: ShortText
    through_social_worker: ShortText
    recording_reference: Annotated[ShortText | None, INVESTIGATION] = None


class LegalProceedingRecorded(Payload):
    model_config = _example(
        {
            "stage": "trial",
            "court_reference": "CR-2027-0007",
            "protective_measures": ["testimony by video link", "closed hearing"],
        }
    )

    stage: LegalStage
    court_reference: Annotated[ShortText, INVESTIGATION]
    protective_measures: Annotated[list[ShortText], Field(max_length=FEW)] = []
    outcome: ShortText | None = None
    compensation_awarded_minor_units: Annotated[int | None, Field(ge=0)] = None
    currency: Annotated[str | None, StringConstraints(pattern=r"^[A-Z]{3}$")] = None


class ExploitationEpisodeRecorded(Payload):
    model_config = _example(
        {
            "phase": "recruitment",
            "place": "Village market",
            "country": "LA",
            "exploitation_types": ["sexual_exploitation"],
            "means_of_control": ["false_promises", "withholds_documents"],
            "recruiter_relation": "friend",
        }
    )

    phase: EpisodePhase
    place: ShortText
    country: CountryCode | None = None
    start_date: Day | None = None
    end_date: Day | None = None
    exploitation_types: Annotated[list[ExploitationType], Field(max_length=FEW)] = []
    means_of_control: Annotated[list[MeansOfControl], Field(max_length=FEW)] = []
    recruiter_relation: RecruiterRelation = RecruiterRelation.UNKNOWN
    perpetrator_details: Annotated[LongText | None, PERPETRATOR] = None

    @model_validator(mode="after")
    def _dates_in_order(self) -> ExploitationEpisodeRecorded:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        return self


class CaseClosed(Payload):
    model_config = _example({"reason": "reintegrated"})

    reason: ClosureReason
    notes: Note = None


class CaseReopened(Payload):
    model_config = _example({"reason": "child contacted the hotline again"})

    reason: ShortText


class CaseErased(Payload):
    model_config = _example(
        {"reason": "erasure request by the adult former client", "legal_basis": "GDPR art. 17"}
    )

    reason: ShortText
    legal_basis: ShortText


class EntryCorrected(Payload):
    model_config = _example(
        {
            "target_event_id": EVENT_X,
            "reason": "age entered wrongly",
            "corrected_values": {"age_years": 14},
        }
    )

    target_event_id: UUID
    reason: ShortText
    corrected_values: Annotated[dict[str, Any], Field(min_length=1, max_length=MANY)]


class EntryVoided(Payload):
    model_config = _example({"target_event_id": EVENT_X, "reason": "recorded on the wrong case"})

    target_event_id: UUID
    reason: ShortText
