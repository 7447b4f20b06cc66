"""Every case event type: its class, explicit stored topic, schema version, and catalog entry.

Stored topics are explicit (`referral.case:Name`) so code can move without breaking old streams.
A payload change bumps `class_version` and adds an `upcast_vN_vM` static method on the class.
"""

from __future__ import annotations

from dataclasses import dataclass

from eventsourcing.utils import register_topic

from referral_core import payloads
from referral_core.case import CaseEvent


@dataclass(frozen=True)
class EventSpec:
    """What the domain knows about one event type."""

    name: str
    event_class: type[CaseEvent]
    payload_model: type[payloads.Payload]
    description: str
    opens_case: bool = False
    discloses: bool = False


CATALOG: dict[str, EventSpec] = {}


TOPIC_PREFIX = "referral.case:"
"""Every case event's stored topic starts with this; the event's name follows."""


def _event(
    name: str,
    description: str,
    *,
    opens_case: bool = False,
    discloses: bool = False,
) -> type[CaseEvent]:
    """Define one event class with an explicit topic, and enter it in the catalog."""
    topic = f"{TOPIC_PREFIX}{name}"
    cls = type(name, (CaseEvent,), {"TOPIC": topic, "class_version": 1, "__module__": __name__})
    register_topic(topic, cls)
    model = getattr(payloads, name)
    CATALOG[name] = EventSpec(name, cls, model, description, opens_case, discloses)
    return cls


ContactReceived = _event(
    "ContactReceived", "A hotline or first responder received a contact.", opens_case=True
)
ChildIdentified = _event(
    "ChildIdentified", "A first responder identified a possible child victim.", opens_case=True
)
AgeAssessed = _event("AgeAssessed", "The child's age was assessed.")
GuardianAppointed = _event("GuardianAppointed", "A guardian was appointed for the child.")
ConsentRecorded = _event("ConsentRecorded", "Consent was given for a purpose and scope.")
ConsentWithdrawn = _event("ConsentWithdrawn", "A consent was withdrawn.")
ReportedToLawEnforcement = _event(
    "ReportedToLawEnforcement", "A mandated reporter reported to a police unit.", discloses=True
)
ReportAcknowledged = _event("ReportAcknowledged", "The police unit acknowledged the report.")
IdentificationDecisionMade = _event(
    "IdentificationDecisionMade", "The competent authority decided the victim status."
)
CaseConferenceHeld = _event("CaseConferenceHeld", "A multi-disciplinary case conference met.")
ReferralSent = _event(
    "ReferralSent", "The case was referred to an agency for a service.", discloses=True
)
ReferralAccepted = _event("ReferralAccepted", "The receiving agency accepted a referral.")
ReferralDeclined = _event("ReferralDeclined", "The receiving agency declined a referral.")
ReferralCompleted = _event("ReferralCompleted", "The receiving agency completed a referral.")
ReferralRevoked = _event("ReferralRevoked", "The sending agency revoked a referral.")
ChildSheltered = _event("ChildSheltered", "The child was placed in a shelter or care.")
PlacementEnded = _event("PlacementEnded", "The child's current placement ended.")
ChildMissingFromCare = _event("ChildMissingFromCare", "The child went missing from care.")
ChildLocated = _event("ChildLocated", "The missing child was located.")
ReturnRiskAssessed = _event("ReturnRiskAssessed", "The risks of a return were assessed.")
ChildReturned = _event(
    "ChildReturned", "The child was returned to another country.", discloses=True
)
FamilyTraced = _event("FamilyTraced", "The child's family was traced.")
HomeAssessed = _event("HomeAssessed", "The family environment was assessed.")
BestInterestsDetermined = _event(
    "BestInterestsDetermined", "A best-interests determination was made."
)
ReintegrationPlanAgreed = _event("ReintegrationPlanAgreed", "A reintegration plan was agreed.")
PlanReviewed = _event("PlanReviewed", "The reintegration plan was reviewed.")
ServiceDelivered = _event("ServiceDelivered", "A service was delivered to the child.")
InterviewConducted = _event("InterviewConducted", "Law enforcement interviewed the child.")
LegalProceedingRecorded = _event(
    "LegalProceedingRecorded", "A stage of legal proceedings was recorded."
)
ExploitationEpisodeRecorded = _event(
    "ExploitationEpisodeRecorded", "An episode of recruitment, transit or exploitation."
)
CaseClosed = _event("CaseClosed", "The case was closed.")
CaseReopened = _event("CaseReopened", "A closed case was reopened.")
CaseErased = _event("CaseErased", "The case's identifying data was erased by destroying its key.")
EntryCorrected = _event("EntryCorrected", "An earlier entry was corrected.")
EntryVoided = _event("EntryVoided", "An earlier entry was voided.")
