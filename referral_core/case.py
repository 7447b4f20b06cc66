"""The Case aggregate: one child, one event stream, and the state every rule and audience reads.

State is kept in plain JSON types (str, int, bool, list, dict) so snapshots need no custom codec.
Events only evolve state here; whether an event may be recorded is decided in `commands`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, ClassVar, cast
from uuid import UUID

from eventsourcing.domain import Aggregate

from referral_core.envelope import Actor
from referral_core.vocab import CaseStage, ClosureReason, TraffickingStatus

CASE_TOPIC = "referral.case:Case"


class CaseEvent(Aggregate.Event):
    """Base of every case event: the envelope of DESIGN.md plus a validated payload.

    `timestamp` (inherited) is when the event was recorded; `occurred_at` when it happened.
    """

    TOPIC = "referral.case:CaseEvent"

    event_id: str
    actor: dict[str, str]
    occurred_at: datetime
    correlation_id: str
    legal_basis: str | None
    consent_ref: str | None
    payload: dict[str, Any]

    @property
    def event_type(self) -> str:
        return type(self).__name__

    @property
    def recorded_at(self) -> datetime:
        return self.timestamp

    @property
    def agency_id(self) -> str:
        return self.actor["agency_id"]

    def apply(self, aggregate: Any) -> None:
        cast("Case", aggregate).evolve(self)

    def mutate(self, aggregate: Any) -> Any:
        """Evolve the case; the first event of a stream creates it."""
        if aggregate is None:
            case = Case.__new__(Case)
            case.__base_init__(self.originator_id, self.originator_version, self.timestamp)
            case.init_state()
            self.apply(case)
            return case
        return super().mutate(aggregate)


class Case(Aggregate):
    """A child's case. Construct only through `commands.open_case` or the repository."""

    TOPIC = CASE_TOPIC

    class Created(Aggregate.Created):
        """Unused: a case is created by its first case event (see `CaseEvent.mutate`)."""

        TOPIC = "referral.case:Case.Created"

    opened_by_agency_id: str
    lead_agency_id: str
    closed: bool
    stage: str
    country: str | None
    child: dict[str, Any]
    trafficking_indicated: bool
    exploitation_types: list[str]
    identified_at: str | None
    identification_decision: str | None
    reports: dict[str, dict[str, Any]]
    referrals: dict[str, dict[str, Any]]
    consents: dict[str, dict[str, Any]]
    placement: dict[str, Any] | None
    missing: bool
    guardian_agency_id: str | None
    plan_review_date: str | None
    best_interests_review_date: str | None
    closure_reason: str | None
    entries: dict[str, dict[str, Any]]
    contacts: int
    erased: bool

    _EVOLVERS: ClassVar[dict[str, Callable[[Case, CaseEvent], None]]] = {}

    def init_state(self) -> None:
        self.opened_by_agency_id = ""
        self.lead_agency_id = ""
        self.closed = False
        self.stage = CaseStage.CONTACT.value
        self.country = None
        self.child = {
            "sex": "unknown",
            "age_years": None,
            "age_is_estimate": True,
            "nationality": None,
            "minority_presumed": True,
            "birth_date": None,
        }
        self.trafficking_indicated = False
        self.exploitation_types = []
        self.identified_at = None
        self.identification_decision = None
        self.reports = {}
        self.referrals = {}
        self.consents = {}
        self.placement = None
        self.missing = False
        self.guardian_agency_id = None
        self.plan_review_date = None
        self.best_interests_review_date = None
        self.closure_reason = None
        self.entries = {}
        self.contacts = 0
        self.erased = False

    # -- queries used by rules and audiences ---------------------------------------------------

    @property
    def case_id(self) -> UUID:
        return self.id

    def entry(self, event_id: str) -> dict[str, Any] | None:
        return self.entries.get(event_id)

    def has_active_report(self) -> bool:
        return any(not r["voided"] for r in self.reports.values())

    def accepted_referrals_to(self, agency_id: str) -> list[dict[str, Any]]:
        return [
            r
            for r in self.referrals.values()
            if r["to_agency_id"] == agency_id and r["status"] == "accepted"
        ]

    def open_referrals(self) -> list[dict[str, Any]]:
        return [r for r in self.referrals.values() if r["status"] in ("pending", "accepted")]

    # -- evolution -------------------------------------------------------------------------------

    def evolve(self, event: CaseEvent) -> None:
        self.entries[event.event_id] = {
            "version": event.originator_version,
            "type": event.event_type,
            "agency_id": event.agency_id,
            "fingerprint": event_fingerprint(event),
            "voided": False,
        }
        evolver = self._EVOLVERS.get(event.event_type)
        if evolver is not None:
            evolver(self, event)
        if not self.lead_agency_id:
            self.lead_agency_id = event.agency_id
            self.opened_by_agency_id = event.agency_id
        self.stage = self._derive_stage()

    def _derive_stage(self) -> str:
        if self.closed:
            return CaseStage.CLOSED.value
        if self.plan_review_date is not None or self.best_interests_review_date is not None:
            return CaseStage.REINTEGRATION.value
        if self.placement is not None or any(
            r["status"] in ("accepted", "completed") for r in self.referrals.values()
        ):
            return CaseStage.IN_CARE.value
        if self.has_active_report():
            return CaseStage.REPORTED.value
        if self.identified_at is not None:
            return CaseStage.IDENTIFIED.value
        return CaseStage.CONTACT.value


def evolves(name: str) -> Callable[[Callable[[Case, CaseEvent], None]], Callable[..., None]]:
    """Register the state change one event type makes."""

    def register(func: Callable[[Case, CaseEvent], None]) -> Callable[..., None]:
        Case._EVOLVERS[name] = func
        return func

    return register


def event_fingerprint(event: CaseEvent) -> str:
    """What makes a re-sent event the same event: type, payload, times, basis and actor."""
    from referral_core.fingerprint import fingerprint

    return fingerprint(
        event.event_type,
        payload=event.payload,
        occurred_at=event.occurred_at,
        legal_basis=event.legal_basis,
        consent_ref=event.consent_ref,
        actor=Actor.from_dict(event.actor),
    )


@evolves("ContactReceived")
def _contact(case: Case, event: CaseEvent) -> None:
    case.contacts += 1
    p = event.payload
    if case.child["age_years"] is None and p.get("child_age_years") is not None:
        case.child["age_years"] = p["child_age_years"]
    if case.child["sex"] == "unknown":
        case.child["sex"] = p.get("child_sex", "unknown")


@evolves("ChildIdentified")
def _identified(case: Case, event: CaseEvent) -> None:
    p = event.payload
    if case.identified_at is None:
        case.identified_at = event.occurred_at.isoformat()
    case.country = p["country"]
    case.child.update(
        sex=p["sex"],
        age_years=p["age_years"],
        age_is_estimate=p["age_is_estimate"],
        nationality=p["nationality"],
        birth_date=p["birth_date"],
        minority_presumed=case.child["minority_presumed"] or p["minority_presumed"],
    )
    if p["indicators"] or p["exploitation_types"]:
        case.trafficking_indicated = True
    _merge_exploitation_types(case, p["exploitation_types"])


def _merge_exploitation_types(case: Case, types: list[str]) -> None:
    for t in types:
        if t not in case.exploitation_types:
            case.exploitation_types.append(t)


@evolves("AgeAssessed")
def _age_assessed(case: Case, event: CaseEvent) -> None:
    p = event.payload
    case.child.update(
        age_years=p["age_years"] if p["age_years"] is not None else case.child["age_years"],
        age_is_estimate=p["age_years"] is None and p["birth_date"] is None,
        birth_date=p["birth_date"] or case.child["birth_date"],
        minority_presumed=p["presumption_applies"],
    )


@evolves("GuardianAppointed")
def _guardian(case: Case, event: CaseEvent) -> None:
    case.guardian_agency_id = event.payload["guardian_agency_id"]


@evolves("ConsentRecorded")
def _consent(case: Case, event: CaseEvent) -> None:
    p = event.payload
    case.consents[event.event_id] = {
        "purpose": p["purpose"],
        "scope": list(p["scope"]),
        "shared_with_agency_ids": list(p["shared_with_agency_ids"]),
        "valid_until": p["valid_until"],
        "active": True,
    }


@evolves("ConsentWithdrawn")
def _consent_withdrawn(case: Case, event: CaseEvent) -> None:
    case.consents[event.payload["consent_event_id"]]["active"] = False


@evolves("ReportedToLawEnforcement")
def _reported(case: Case, event: CaseEvent) -> None:
    p = event.payload
    case.reports[event.event_id] = {
        "event_id": event.event_id,
        "unit_agency_id": p["receiving_unit_agency_id"],
        "reported_at": event.occurred_at.isoformat(),
        "urgency": p["urgency"],
        "fields_shared": list(p["fields_shared"]),
        "acknowledged_at": None,
        "voided": False,
    }


@evolves("ReportAcknowledged")
def _acknowledged(case: Case, event: CaseEvent) -> None:
    case.reports[event.payload["report_event_id"]]["acknowledged_at"] = (
        event.occurred_at.isoformat()
    )


@evolves("IdentificationDecisionMade")
def _decision(case: Case, event: CaseEvent) -> None:
    p = event.payload
    case.identification_decision = p["decision"]
    if p["decision"] != TraffickingStatus.NOT_A_VICTIM:
        case.trafficking_indicated = True
    _merge_exploitation_types(case, p["exploitation_types"])


@evolves("ReferralSent")
def _referral_sent(case: Case, event: CaseEvent) -> None:
    p = event.payload
    case.referrals[event.event_id] = {
        "event_id": event.event_id,
        "from_agency_id": event.agency_id,
        "to_agency_id": p["to_agency_id"],
        "service": p["service"],
        "scope": list(p["scope"]),
        "respond_by": p["respond_by"],
        "transfers_lead": p["transfers_lead"],
        "sent_at": event.occurred_at.isoformat(),
        "status": "pending",
        "answered_at": None,
    }


def _answer(status: str) -> Callable[[Case, CaseEvent], None]:
    def answer(case: Case, event: CaseEvent) -> None:
        referral = case.referrals[event.payload["referral_event_id"]]
        referral["status"] = status
        referral["answered_at"] = event.occurred_at.isoformat()
        if status == "accepted" and referral["transfers_lead"]:
            case.lead_agency_id = referral["to_agency_id"]

    return answer


for _name, _status in (
    ("ReferralAccepted", "accepted"),
    ("ReferralDeclined", "declined"),
    ("ReferralCompleted", "completed"),
    ("ReferralRevoked", "revoked"),
):
    evolves(_name)(_answer(_status))


@evolves("ChildSheltered")
def _sheltered(case: Case, event: CaseEvent) -> None:
    p = event.payload
    case.placement = {
        "event_id": event.event_id,
        "shelter_agency_id": p["shelter_agency_id"],
        "facility": p["facility"],
        "placement_type": p["placement_type"],
        "start_date": p["start_date"],
    }


@evolves("PlacementEnded")
def _placement_ended(case: Case, _event: CaseEvent) -> None:
    case.placement = None


@evolves("ChildMissingFromCare")
def _missing(case: Case, _event: CaseEvent) -> None:
    case.missing = True


@evolves("ChildLocated")
def _located(case: Case, _event: CaseEvent) -> None:
    case.missing = False


@evolves("BestInterestsDetermined")
def _best_interests(case: Case, event: CaseEvent) -> None:
    case.best_interests_review_date = event.payload["review_date"]


@evolves("ReintegrationPlanAgreed")
def _plan(case: Case, event: CaseEvent) -> None:
    case.plan_review_date = event.payload["review_date"]


@evolves("PlanReviewed")
def _plan_reviewed(case: Case, event: CaseEvent) -> None:
    case.plan_review_date = event.payload["next_review_date"]


@evolves("ExploitationEpisodeRecorded")
def _episode(case: Case, event: CaseEvent) -> None:
    case.trafficking_indicated = True
    _merge_exploitation_types(case, event.payload["exploitation_types"])


@evolves("CaseClosed")
def _closed(case: Case, event: CaseEvent) -> None:
    case.closed = True
    case.closure_reason = ClosureReason(event.payload["reason"]).value


@evolves("CaseReopened")
def _reopened(case: Case, _event: CaseEvent) -> None:
    case.closed = False
    case.closure_reason = None


@evolves("EntryCorrected")
def _corrected(case: Case, event: CaseEvent) -> None:
    target = case.entries[event.payload["target_event_id"]]
    if target["type"] in ("ChildIdentified", "AgeAssessed"):
        values = event.payload["corrected_values"]
        for key in ("sex", "age_years", "age_is_estimate", "nationality", "birth_date"):
            if key in values:
                case.child[key] = values[key]
        _merge_exploitation_types(case, values.get("exploitation_types", []))


@evolves("EntryVoided")
def _voided(case: Case, event: CaseEvent) -> None:
    target_id = event.payload["target_event_id"]
    case.entries[target_id]["voided"] = True
    if target_id in case.referrals:
        case.referrals[target_id]["status"] = "voided"
    if target_id in case.reports:
        case.reports[target_id]["voided"] = True
    if target_id in case.consents:
        case.consents[target_id]["active"] = False
    if case.placement is not None and case.placement["event_id"] == target_id:
        case.placement = None
