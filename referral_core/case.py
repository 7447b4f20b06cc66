"""The Case aggregate: one child, one event stream, and the state every rule and audience reads.

State is kept in plain JSON types (str, int, bool, list, dict) so snapshots need no custom codec.
Events only evolve state here; whether an event may be recorded is decided in `commands`.

A case is copied (`Case.clone`) on every read from the process's cache, so copying must stay
cheap however long the case: the records of `entries` and `effective` (one per event) are never
changed in place; a change replaces the record, and a copy shares the records it did not change.

Derived state is recomputable. Besides what rules and audiences read, the case keeps, per entry
of a type that changes state, its *effective* payload: the validated payload with any corrections
applied. Appending applies one event (O(1)). An `EntryVoided` or `EntryCorrected` of such an entry
rebuilds the derived state by folding the effective, non-voided entries again in their order
(`Case._refold`), with the same evolvers. The stored events never change; only this fold does.

The effective payloads hold no free text about the child: every field tagged `Sensitive` is
replaced by `REDACTED`, except the birth date, which the fold needs for the child's age. A
redacted value keeps its presence (None stays None), which is all payload validators look at.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime
from functools import cache
from typing import Any, ClassVar, NamedTuple, cast, get_args, get_origin
from uuid import UUID

from eventsourcing.domain import Aggregate

from referral_core import payloads
from referral_core.envelope import Actor
from referral_core.sensitivity import Sensitive
from referral_core.vocab import CaseStage, ClosureReason, TraffickingStatus

CASE_TOPIC = "referral.case:Case"
AGE_OF_MAJORITY = 18
REDACTED = "[not kept in case state]"
"""Stands in for a sensitive text field in an effective payload; valid wherever text is."""

FOLD_READS_SENSITIVE = frozenset({"birth_date"})
"""Sensitive fields the fold reads, so effective payloads keep them."""

CHILD_KEYS = ("sex", "age_years", "age_is_estimate", "nationality", "birth_date")
"""The child's facts a correction of an identification or age assessment restates."""

CHILD_FACT_TYPES = frozenset({"ChildIdentified", "AgeAssessed"})


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


class Fact(NamedTuple):
    """What an evolver reads of an entry: a recorded event, or an entry folded again."""

    event_id: str
    event_type: str
    agency_id: str
    version: int
    occurred_at: str
    """ISO 8601, as the event states it."""
    payload: Mapping[str, Any]
    """The effective payload: validated, corrected, and without sensitive text."""


Evolver = Callable[["Case", Fact], None]


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
    plan_agreed: bool
    plan_review_date: str | None
    best_interests_review_date: str | None
    closure_reason: str | None
    entries: dict[str, dict[str, Any]]
    effective: dict[str, dict[str, Any]]
    contacts: int
    erased: bool

    _EVOLVERS: ClassVar[dict[str, Evolver]] = {}
    _VOIDED_TRACES: ClassVar[dict[str, Evolver]] = {}

    def init_state(self) -> None:
        self.entries = {}
        self.effective = {}
        self.erased = False
        self._reset_derived_state()

    def _reset_derived_state(self) -> None:
        """Everything the fold derives from the entries, as before the first entry."""
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
        self.plan_agreed = False
        self.plan_review_date = None
        self.best_interests_review_date = None
        self.closure_reason = None
        self.contacts = 0

    # -- queries used by rules and audiences ---------------------------------------------------

    @property
    def case_id(self) -> UUID:
        return self.id

    def entry(self, event_id: str) -> dict[str, Any] | None:
        return self.entries.get(event_id)

    def clone(self) -> Case:
        """A private copy: its state shares nothing mutable with this case's.

        The state is plain JSON types (see the module docstring), so a walk over dicts and
        lists copies it several times faster than `copy.deepcopy`.
        """
        twin = object.__new__(type(self))
        twin.__dict__.update(
            {
                key: dict(value) if key in _RECORDS else _copy_plain(value)
                for key, value in self.__dict__.items()
            }
        )
        return twin

    def __deepcopy__(self, memo: dict[int, Any]) -> Case:
        return self.clone()

    def pending_case_events(self) -> list[CaseEvent]:
        """Events recorded on this object and not yet saved."""
        return [e for e in self._pending_events if isinstance(e, CaseEvent)]

    def effective_payload(self, event_id: str) -> dict[str, Any] | None:
        """The entry's payload as corrected, sensitive text redacted; None if not kept."""
        record = self.effective.get(event_id)
        return None if record is None else dict(record["payload"])

    def occurred_at_of(self, event_id: str) -> str | None:
        record = self.effective.get(event_id)
        return None if record is None else str(record["occurred_at"])

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
        event_type = type(event).__name__
        event_id, version = event.event_id, event.originator_version
        agency_id = event.actor["agency_id"]
        self.entries[event_id] = {
            "version": version,
            "type": event_type,
            "agency_id": agency_id,
            "voided": False,
        }
        payload: Mapping[str, Any] = event.payload
        if event_type == "EntryVoided":
            self._void(str(payload["target_event_id"]))
            return
        occurred_at = event.occurred_at.isoformat()
        if event_type == "EntryCorrected":
            self._correct(Fact(event_id, event_type, agency_id, version, occurred_at, payload))
            return
        if event_type in self._EVOLVERS:
            # Keep the effective payload of an entry that changes state; the fold reads only it.
            payload = redact(event_type, payload)
            self.effective[event_id] = {"occurred_at": occurred_at, "payload": payload}
        self._apply(Fact(event_id, event_type, agency_id, version, occurred_at, payload))
        self.stage = self._derive_stage()

    def _apply(self, fact: Fact) -> None:
        evolver = self._EVOLVERS.get(fact.event_type)
        if evolver is not None:
            evolver(self, fact)
        if not self.lead_agency_id:
            self.lead_agency_id = fact.agency_id
            self.opened_by_agency_id = fact.agency_id

    def _void(self, target_id: str) -> None:
        self.entries[target_id] = {**self.entries[target_id], "voided": True}
        if target_id in self.effective:
            self._refold()

    def _correct(self, fact: Fact) -> None:
        target_id = str(fact.payload["target_event_id"])
        kept = self.effective.get(target_id)
        if kept is None:
            return  # the target changes no state: nothing to fold again
        target_type = self.entries[target_id]["type"]
        values: Mapping[str, Any] = fact.payload["corrected_values"]
        self.effective[target_id] = {
            **kept,
            "payload": {**kept["payload"], **redact(target_type, values)},
        }
        if target_type in CHILD_FACT_TYPES:
            self.effective[fact.event_id] = {
                "occurred_at": fact.occurred_at,
                "payload": {
                    "target_event_id": target_id,
                    "corrected_values": {k: values[k] for k in CHILD_KEYS if k in values},
                },
            }
        self._refold()

    def _refold(self) -> None:
        """Derive the state again from the effective payloads of the entries, in order."""
        self._reset_derived_state()
        for event_id, entry in self.entries.items():
            record = self.effective.get(event_id)
            if record is None:
                if not self.lead_agency_id:
                    self.lead_agency_id = self.opened_by_agency_id = entry["agency_id"]
                continue
            fact = Fact(
                event_id=event_id,
                event_type=entry["type"],
                agency_id=entry["agency_id"],
                version=entry["version"],
                occurred_at=record["occurred_at"],
                payload=record["payload"],
            )
            if entry["voided"]:
                trace = self._VOIDED_TRACES.get(fact.event_type)
                if trace is not None:
                    trace(self, fact)
                continue
            self._apply(fact)
        self.stage = self._derive_stage()

    def _derive_stage(self) -> str:
        if self.closed:
            return CaseStage.CLOSED.value
        if (
            self.plan_agreed
            or self.plan_review_date is not None
            or self.best_interests_review_date is not None
        ):
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


def evolves(name: str) -> Callable[[Evolver], Evolver]:
    """Register the state change one event type makes."""

    def register(func: Evolver) -> Evolver:
        Case._EVOLVERS[name] = func
        return func

    return register


def leaves_trace_when_voided(name: str) -> Callable[[Evolver], Evolver]:
    """Register what a voided entry of this type still shows (e.g. a referral marked voided)."""

    def register(func: Evolver) -> Evolver:
        Case._VOIDED_TRACES[name] = func
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


# -- effective payloads -------------------------------------------------------------------------


@cache
def sensitive_fields(event_type: str) -> frozenset[str]:
    """The fields of an event type's payload that carry a `Sensitive` marker."""
    model = getattr(payloads, event_type, None)
    if model is None:
        return frozenset()
    found: set[str] = set()
    for name, info in model.model_fields.items():
        if any(isinstance(m, Sensitive) for m in (*info.metadata, *_metadata(info.annotation))):
            found.add(name)
    return frozenset(found)


def _metadata(annotation: Any) -> Iterable[Any]:
    found: list[Any] = list(getattr(annotation, "__metadata__", ()))
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found.extend(_metadata(arg))
    return found


def _copy_plain(value: Any) -> Any:
    """Copy the containers of a JSON-like value; scalars and immutable values are shared."""
    kind = type(value)
    if kind in _SHARED_TYPES:
        return value
    if kind is dict:
        return {
            key: item if type(item) in _SHARED_TYPES else _copy_plain(item)
            for key, item in value.items()
        }
    if kind is list:
        return [item if type(item) in _SHARED_TYPES else _copy_plain(item) for item in value]
    if isinstance(value, Aggregate.Event):
        return value  # immutable: events are frozen dataclasses
    return copy.deepcopy(value)


_RECORDS = frozenset({"entries", "effective"})
"""Dicts of per-event records, replaced and never changed in place: a copy shares the records."""

_SHARED_TYPES = frozenset({str, int, float, bool, type(None), UUID, datetime, date})


def redact(event_type: str, values: Mapping[str, Any]) -> dict[str, Any]:
    """`values` with each sensitive text the fold does not read replaced by `REDACTED`."""
    hidden = hidden_fields(event_type)
    return {
        key: REDACTED if key in hidden and value is not None else _copy_plain(value)
        for key, value in values.items()
    }


@cache
def hidden_fields(event_type: str) -> frozenset[str]:
    """The sensitive fields of an event type that effective payloads do not keep."""
    return sensitive_fields(event_type) - FOLD_READS_SENSITIVE


# -- the child's age ----------------------------------------------------------------------------


def age_on(birth_date: date | str, when: date | datetime | str) -> int:
    """Completed years between a birth date and a day (or the day of a moment)."""
    born = date.fromisoformat(birth_date) if isinstance(birth_date, str) else birth_date
    if isinstance(when, str):
        when = datetime.fromisoformat(when)
    day = when.date() if isinstance(when, datetime) else when
    return day.year - born.year - ((day.month, day.day) < (born.month, born.day))


def states_minor(values: Mapping[str, Any], when: date | datetime | str) -> bool:
    """Whether `values` state an age under 18: `age_years`, or a birth date at `when`."""
    age = values.get("age_years")
    if age is not None and age < AGE_OF_MAJORITY:
        return True
    birth = values.get("birth_date")
    return birth is not None and age_on(birth, when) < AGE_OF_MAJORITY


def states_certain_adult(values: Mapping[str, Any], when: date | datetime | str) -> bool:
    """Whether an identification states an adult age with certainty.

    A birth date counts when it gives 18 or more at `when`; without one, an `age_years` of 18 or
    more counts when it is not an estimate. A stated age under 18 never counts.
    """
    if states_minor(values, when):
        return False
    if values.get("birth_date") is not None:
        return True
    age = values.get("age_years")
    return age is not None and not values.get("age_is_estimate", True)


# -- evolvers -----------------------------------------------------------------------------------


@evolves("ContactReceived")
def _contact(case: Case, fact: Fact) -> None:
    case.contacts += 1
    p = fact.payload
    if case.child["age_years"] is None and p.get("child_age_years") is not None:
        case.child["age_years"] = p["child_age_years"]
    if case.child["sex"] == "unknown":
        case.child["sex"] = p.get("child_sex", "unknown")


@evolves("ChildIdentified")
def _identified(case: Case, fact: Fact) -> None:
    """Restate the child's facts; the presumption of minority stays unless the rules allow.

    Minority stays presumed once presumed, except that an opening identification stating a
    certain adult age without the presumption opens the case unpresumed. An identification
    stating an age under 18 always presumes minority (the safe side).
    """
    p = fact.payload
    if case.identified_at is None:
        case.identified_at = fact.occurred_at
    case.country = p["country"]
    presumed = case.child["minority_presumed"] or p["minority_presumed"]
    if fact.version == 1 and not p["minority_presumed"]:
        presumed = not states_certain_adult(p, fact.occurred_at)
    if states_minor(p, fact.occurred_at):
        presumed = True
    case.child.update(
        sex=p["sex"],
        age_years=p["age_years"],
        age_is_estimate=p["age_is_estimate"],
        nationality=p["nationality"],
        birth_date=p["birth_date"],
        minority_presumed=presumed,
    )
    if p["indicators"] or p["exploitation_types"]:
        case.trafficking_indicated = True
    _merge_exploitation_types(case, p["exploitation_types"])


def _merge_exploitation_types(case: Case, types: Iterable[str]) -> None:
    for t in types:
        if t not in case.exploitation_types:
            case.exploitation_types.append(t)


@evolves("AgeAssessed")
def _age_assessed(case: Case, fact: Fact) -> None:
    p = fact.payload
    case.child.update(
        age_years=p["age_years"] if p["age_years"] is not None else case.child["age_years"],
        age_is_estimate=p["age_years"] is None and p["birth_date"] is None,
        birth_date=p["birth_date"] or case.child["birth_date"],
        minority_presumed=p["presumption_applies"] or states_minor(p, fact.occurred_at),
    )


@evolves("GuardianAppointed")
def _guardian(case: Case, fact: Fact) -> None:
    case.guardian_agency_id = fact.payload["guardian_agency_id"]


@evolves("ConsentRecorded")
def _consent(case: Case, fact: Fact) -> None:
    p = fact.payload
    case.consents[fact.event_id] = {
        "purpose": p["purpose"],
        "scope": list(p["scope"]),
        "shared_with_agency_ids": list(p["shared_with_agency_ids"]),
        "valid_until": p["valid_until"],
        "active": True,
    }


@leaves_trace_when_voided("ConsentRecorded")
def _voided_consent(case: Case, fact: Fact) -> None:
    _consent(case, fact)
    case.consents[fact.event_id]["active"] = False


@evolves("ConsentWithdrawn")
def _consent_withdrawn(case: Case, fact: Fact) -> None:
    consent = case.consents.get(str(fact.payload["consent_event_id"]))
    if consent is not None:
        consent["active"] = False


@evolves("ReportedToLawEnforcement")
def _reported(case: Case, fact: Fact) -> None:
    p = fact.payload
    case.reports[fact.event_id] = {
        "event_id": fact.event_id,
        "unit_agency_id": p["receiving_unit_agency_id"],
        "reported_at": fact.occurred_at,
        "urgency": p["urgency"],
        "fields_shared": list(p["fields_shared"]),
        "acknowledged_at": None,
        "voided": False,
    }


@leaves_trace_when_voided("ReportedToLawEnforcement")
def _voided_report(case: Case, fact: Fact) -> None:
    _reported(case, fact)
    case.reports[fact.event_id]["voided"] = True


@evolves("ReportAcknowledged")
def _acknowledged(case: Case, fact: Fact) -> None:
    report = case.reports.get(str(fact.payload["report_event_id"]))
    if report is not None and not report["voided"]:
        report["acknowledged_at"] = fact.occurred_at


@evolves("IdentificationDecisionMade")
def _decision(case: Case, fact: Fact) -> None:
    p = fact.payload
    case.identification_decision = p["decision"]
    if p["decision"] != TraffickingStatus.NOT_A_VICTIM:
        case.trafficking_indicated = True
    _merge_exploitation_types(case, p["exploitation_types"])


@evolves("ReferralSent")
def _referral_sent(case: Case, fact: Fact) -> None:
    p = fact.payload
    case.referrals[fact.event_id] = {
        "event_id": fact.event_id,
        "from_agency_id": fact.agency_id,
        "to_agency_id": p["to_agency_id"],
        "service": p["service"],
        "scope": list(p["scope"]),
        "respond_by": p["respond_by"],
        "transfers_lead": p["transfers_lead"],
        "sent_at": fact.occurred_at,
        "status": "pending",
        "answered_at": None,
        "lead_before": None,
    }


@leaves_trace_when_voided("ReferralSent")
def _voided_referral(case: Case, fact: Fact) -> None:
    _referral_sent(case, fact)
    case.referrals[fact.event_id]["status"] = "voided"


REFERRAL_TRANSITIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "ReferralAccepted": (("pending",), "accepted"),
    "ReferralDeclined": (("pending",), "declined"),
    "ReferralCompleted": (("accepted",), "completed"),
    "ReferralRevoked": (("pending", "accepted"), "revoked"),
}
"""Each answer: the statuses it applies to, and the status it leaves."""


def _answer(case: Case, fact: Fact) -> None:
    """Move a referral on; an answer that no longer fits (its referral voided) changes nothing.

    Accepting a lead transfer makes the receiver lead; revoking it afterwards gives the lead back
    to the agency that led before the acceptance, if the receiver still leads.
    """
    referral = case.referrals.get(str(fact.payload["referral_event_id"]))
    if referral is None:
        return
    sources, status = REFERRAL_TRANSITIONS[fact.event_type]
    if referral["status"] not in sources:
        return
    was_accepted = referral["status"] == "accepted"
    referral["status"] = status
    referral["answered_at"] = fact.occurred_at
    if not referral["transfers_lead"]:
        return
    if status == "accepted":
        referral["lead_before"] = case.lead_agency_id
        case.lead_agency_id = referral["to_agency_id"]
    elif (
        status == "revoked"
        and was_accepted
        and case.lead_agency_id == referral["to_agency_id"]
        and referral["lead_before"]
    ):
        case.lead_agency_id = referral["lead_before"]


for _name in REFERRAL_TRANSITIONS:
    evolves(_name)(_answer)


@evolves("ChildSheltered")
def _sheltered(case: Case, fact: Fact) -> None:
    p = fact.payload
    case.placement = {
        "event_id": fact.event_id,
        "shelter_agency_id": p["shelter_agency_id"],
        "facility": p["facility"],
        "placement_type": p["placement_type"],
        "start_date": p["start_date"],
    }


@evolves("PlacementEnded")
def _placement_ended(case: Case, _fact: Fact) -> None:
    case.placement = None


@evolves("ChildMissingFromCare")
def _missing(case: Case, _fact: Fact) -> None:
    case.missing = True


@evolves("ChildLocated")
def _located(case: Case, _fact: Fact) -> None:
    case.missing = False


@evolves("BestInterestsDetermined")
def _best_interests(case: Case, fact: Fact) -> None:
    case.best_interests_review_date = fact.payload["review_date"]


@evolves("ReintegrationPlanAgreed")
def _plan(case: Case, fact: Fact) -> None:
    case.plan_agreed = True
    case.plan_review_date = fact.payload["review_date"]


@evolves("PlanReviewed")
def _plan_reviewed(case: Case, fact: Fact) -> None:
    """A review sets the next review date; without one the plan stands, with no review due."""
    if case.plan_agreed:
        case.plan_review_date = fact.payload["next_review_date"]


@evolves("ExploitationEpisodeRecorded")
def _episode(case: Case, fact: Fact) -> None:
    case.trafficking_indicated = True
    _merge_exploitation_types(case, fact.payload["exploitation_types"])


@evolves("CaseClosed")
def _closed(case: Case, fact: Fact) -> None:
    case.closed = True
    case.closure_reason = ClosureReason(fact.payload["reason"]).value


@evolves("CaseErased")
def _erased(case: Case, _fact: Fact) -> None:
    """The case's key is destroyed: every sealed value now reads None, in memory too.

    A case folded before the erasure (a cached one, fast-forwarded) then holds what a case
    loaded afterwards holds: no birth date, and None for every sensitive field.
    """
    case.erased = True
    case.child["birth_date"] = None
    for event_id, record in list(case.effective.items()):
        hidden = sensitive_fields(case.entries[event_id]["type"])
        case.effective[event_id] = {
            **record,
            "payload": {
                key: None if key in hidden else value for key, value in record["payload"].items()
            },
        }


@evolves("CaseReopened")
def _reopened(case: Case, _fact: Fact) -> None:
    case.closed = False
    case.closure_reason = None


@evolves("EntryCorrected")
def _corrected(case: Case, fact: Fact) -> None:
    """A corrected identification or age assessment restates the child's facts now.

    The correction already changed the target's effective payload (folded in its place); here
    its child facts also become the latest statement, and a corrected age under 18 presumes
    minority again, even after an assessment lifted it: a possible child is protected.
    """
    target_id = str(fact.payload["target_event_id"])
    target = case.entries.get(target_id)
    occurred_at = case.occurred_at_of(target_id)
    if target is None or target["voided"] or occurred_at is None:
        return
    values = fact.payload["corrected_values"]
    for key in CHILD_KEYS:
        if key in values:
            case.child[key] = values[key]
    if states_minor(values, occurred_at):
        case.child["minority_presumed"] = True
