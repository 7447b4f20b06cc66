"""Authorization as domain policy: who may append what, who sees which cases, events and fields.

Everything here is pure and table-driven. Relations between an agency and a case come from the
case's own stream (lead, referral receiver within scope, current shelter, report recipient,
guardian, opener, author), so a per-agency view is safe by construction: the API, the read
models and the exports all ask this module and nothing else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import cache
from typing import Any, get_args, get_origin

from referral_core.case import Case
from referral_core.case_events import CATALOG
from referral_core.errors import PermissionDeniedError
from referral_core.sensitivity import Sensitive, Sensitivity
from referral_core.vocab import AgencyKind, ReferralScope, Role, ServiceType

K = AgencyKind

# -- what each event is about --------------------------------------------------------------------


class Category(StrEnum):
    """What an event is about; audiences are granted categories."""

    CONTACT = "contact"
    IDENTIFICATION = "identification"
    GUARDIANSHIP = "guardianship"
    CONSENT = "consent"
    REPORT = "report"
    CONFERENCE = "conference"
    REFERRAL = "referral"
    PLACEMENT = "placement"
    MISSING = "missing"
    RETURN = "return"
    FAMILY = "family"
    BEST_INTERESTS = "best_interests"
    PLAN = "plan"
    SERVICES = "services"
    PSYCHOSOCIAL = "psychosocial"
    MEDICAL = "medical"
    LEGAL = "legal"
    INVESTIGATION = "investigation"
    EXPLOITATION = "exploitation"
    CASE = "case"


C = Category

EVENT_CATEGORY: dict[str, Category] = {
    "ContactReceived": C.CONTACT,
    "ChildIdentified": C.IDENTIFICATION,
    "AgeAssessed": C.IDENTIFICATION,
    "IdentificationDecisionMade": C.IDENTIFICATION,
    "GuardianAppointed": C.GUARDIANSHIP,
    "ConsentRecorded": C.CONSENT,
    "ConsentWithdrawn": C.CONSENT,
    "ReportedToLawEnforcement": C.REPORT,
    "ReportAcknowledged": C.REPORT,
    "CaseConferenceHeld": C.CONFERENCE,
    "ReferralSent": C.REFERRAL,
    "ReferralAccepted": C.REFERRAL,
    "ReferralDeclined": C.REFERRAL,
    "ReferralCompleted": C.REFERRAL,
    "ReferralRevoked": C.REFERRAL,
    "ChildSheltered": C.PLACEMENT,
    "PlacementEnded": C.PLACEMENT,
    "ChildMissingFromCare": C.MISSING,
    "ChildLocated": C.MISSING,
    "ReturnRiskAssessed": C.RETURN,
    "ChildReturned": C.RETURN,
    "FamilyTraced": C.FAMILY,
    "HomeAssessed": C.FAMILY,
    "BestInterestsDetermined": C.BEST_INTERESTS,
    "ReintegrationPlanAgreed": C.PLAN,
    "PlanReviewed": C.PLAN,
    "ServiceDelivered": C.SERVICES,
    "InterviewConducted": C.INVESTIGATION,
    "LegalProceedingRecorded": C.LEGAL,
    "ExploitationEpisodeRecorded": C.EXPLOITATION,
    "CaseClosed": C.CASE,
    "CaseErased": C.CASE,
    "CaseReopened": C.CASE,
    "EntryCorrected": C.CASE,
    "EntryVoided": C.CASE,
}

SERVICE_CATEGORY: dict[str, Category] = {
    ServiceType.MEDICAL: C.MEDICAL,
    ServiceType.PSYCHOLOGICAL: C.PSYCHOSOCIAL,
    ServiceType.LEGAL: C.LEGAL,
    ServiceType.COMPENSATION_CLAIM: C.LEGAL,
}


def category_of(event_type: str, payload: Mapping[str, Any]) -> Category:
    """The category of one event; a service's category depends on the service."""
    if event_type == "ServiceDelivered":
        return SERVICE_CATEGORY.get(payload.get("service_type", ""), C.SERVICES)
    return EVENT_CATEGORY[event_type]


# -- relations between an agency and a case ------------------------------------------------------


class Relation(StrEnum):
    LEAD = "lead"
    OPENER = "opener"
    REFERRAL_PENDING = "referral_pending"
    """Sent a referral it has not answered yet: sees its scope, may only answer."""
    REFERRAL_RECEIVER = "referral_receiver"
    """Accepted a referral: sees and acts within its scope."""
    SHELTER = "shelter"
    REPORT_RECIPIENT = "report_recipient"
    GUARDIAN = "guardian"
    AUDITOR = "auditor"
    BREAK_GLASS = "break_glass"


R = Relation


@dataclass(frozen=True)
class Principal:
    """Who is asking: a user of an agency of some kind, in a role."""

    user_id: str
    agency_id: str
    agency_kind: AgencyKind
    role: Role


@dataclass(frozen=True)
class Access:
    """What one agency may see of one case: its relations and, for referrals, their scope."""

    relations: frozenset[Relation]
    referral_scope: frozenset[str] = field(default_factory=frozenset)
    fields_shared_with_police: frozenset[str] = field(default_factory=frozenset)

    @property
    def visible(self) -> bool:
        return bool(self.relations)


NO_ACCESS = Access(frozenset())


def access_of(
    principal: Principal,
    case: Case,
    *,
    break_glass_until: datetime | None = None,
    now: datetime | None = None,
) -> Access:
    """Derive the principal's agency's relations to the case from the case's own state."""
    if principal.agency_kind is K.AUDITOR:
        return Access(frozenset({R.AUDITOR}))
    agency = principal.agency_id
    relations: set[Relation] = set()
    scope: set[str] = set()
    police_fields: set[str] = set()
    if case.lead_agency_id == agency:
        relations.add(R.LEAD)
    if case.opened_by_agency_id == agency:
        relations.add(R.OPENER)
    for referral in case.referrals.values():
        if referral["to_agency_id"] == agency and referral["status"] in ("pending", "accepted"):
            accepted = referral["status"] == "accepted"
            relations.add(R.REFERRAL_RECEIVER if accepted else R.REFERRAL_PENDING)
            scope.update(referral["scope"])
    if case.placement is not None and case.placement["shelter_agency_id"] == agency:
        relations.add(R.SHELTER)
    for report in case.reports.values():
        if report["unit_agency_id"] == agency and not report["voided"]:
            relations.add(R.REPORT_RECIPIENT)
    if relations & {R.REPORT_RECIPIENT}:
        police_fields.update(_police_fields(case, agency))
    if case.guardian_agency_id == agency:
        relations.add(R.GUARDIAN)
    if (
        break_glass_until is not None
        and now is not None
        and now < break_glass_until
        and principal.role is Role.SUPERVISOR
    ):
        relations.add(R.BREAK_GLASS)
    return Access(frozenset(relations), frozenset(scope), frozenset(police_fields))


def _police_fields(case: Case, agency: str) -> set[str]:
    fields: set[str] = set()
    for report in case.reports.values():
        if report["unit_agency_id"] == agency and not report["voided"]:
            fields.update(report["fields_shared"])
    return fields


# -- which categories each relation sees ---------------------------------------------------------

ALL = frozenset(Category)

RELATION_CATEGORIES: dict[Relation, frozenset[Category]] = {
    R.LEAD: ALL,
    R.AUDITOR: ALL,
    R.BREAK_GLASS: ALL,
    R.OPENER: frozenset({C.CONTACT, C.IDENTIFICATION, C.REPORT, C.CASE}),
    R.SHELTER: frozenset(
        {
            C.IDENTIFICATION,
            C.CONSENT,
            C.GUARDIANSHIP,
            C.PLACEMENT,
            C.MISSING,
            C.SERVICES,
            C.MEDICAL,
            C.PLAN,
            C.CASE,
        }
    ),
    R.REPORT_RECIPIENT: frozenset(
        {
            C.IDENTIFICATION,
            C.REPORT,
            C.EXPLOITATION,
            C.MISSING,
            C.INVESTIGATION,
            C.LEGAL,
            C.CASE,
        }
    ),
    R.GUARDIAN: ALL - {C.INVESTIGATION},
    R.REFERRAL_RECEIVER: frozenset({C.CASE}),
    R.REFERRAL_PENDING: frozenset({C.CASE}),
}
RECEIVERS = frozenset({R.REFERRAL_RECEIVER, R.REFERRAL_PENDING})

SCOPE_CATEGORIES: dict[str, frozenset[Category]] = {
    ReferralScope.IDENTIFICATION: frozenset({C.IDENTIFICATION, C.GUARDIANSHIP, C.CONSENT}),
    ReferralScope.CONTACT_DETAILS: frozenset({C.CONTACT}),
    ReferralScope.PLACEMENT: frozenset({C.PLACEMENT, C.MISSING}),
    ReferralScope.SERVICES: frozenset({C.SERVICES}),
    ReferralScope.PSYCHOSOCIAL: frozenset({C.PSYCHOSOCIAL, C.BEST_INTERESTS}),
    ReferralScope.MEDICAL: frozenset({C.MEDICAL}),
    ReferralScope.LEGAL: frozenset({C.LEGAL, C.REPORT}),
    ReferralScope.EXPLOITATION: frozenset({C.EXPLOITATION}),
    ReferralScope.PLAN: frozenset({C.PLAN, C.CONFERENCE}),
    ReferralScope.FAMILY: frozenset({C.FAMILY, C.RETURN}),
}

# Field tags an agency kind never receives, whatever its relation (DESIGN.md, "Who uses it").
KIND_FORBIDDEN_TAGS: dict[AgencyKind, frozenset[Sensitivity]] = {
    K.LAW_ENFORCEMENT: frozenset({Sensitivity.PSYCHOSOCIAL, Sensitivity.MEDICAL}),
    K.GUARDIAN: frozenset({Sensitivity.PERPETRATOR, Sensitivity.INVESTIGATION}),
}
# Categories an agency kind never receives, whatever its relation.
KIND_FORBIDDEN_CATEGORIES: dict[AgencyKind, frozenset[Category]] = {
    K.LAW_ENFORCEMENT: frozenset({C.PSYCHOSOCIAL, C.MEDICAL, C.BEST_INTERESTS}),
    K.GUARDIAN: frozenset({C.INVESTIGATION}),
}


def visible_categories(principal: Principal, access: Access) -> frozenset[Category]:
    granted: set[Category] = set()
    for relation in access.relations:
        granted |= RELATION_CATEGORIES[relation]
    if access.relations & RECEIVERS:
        for scope in access.referral_scope:
            granted |= SCOPE_CATEGORIES.get(scope, frozenset())
    if principal.agency_kind in KIND_FORBIDDEN_CATEGORIES and not (access.relations & {R.AUDITOR}):
        granted -= KIND_FORBIDDEN_CATEGORIES[principal.agency_kind]
    return frozenset(granted)


# -- field tags of each payload ------------------------------------------------------------------


@cache
def field_tags(event_type: str) -> dict[str, frozenset[Sensitivity]]:
    """The sensitivity tags of each field of an event type's payload."""
    model = CATALOG[event_type].payload_model
    tags: dict[str, frozenset[Sensitivity]] = {}
    for name, info in model.model_fields.items():
        found: set[Sensitivity] = set()
        for meta in (*info.metadata, *_nested_metadata(info.annotation)):
            if isinstance(meta, Sensitive):
                found |= meta.tags
        if found:
            tags[name] = frozenset(found)
    return tags


def _nested_metadata(annotation: Any) -> Iterable[Any]:
    """Metadata inside Optional[Annotated[...]] and similar, which pydantic leaves in place."""
    if annotation is None:
        return ()
    found: list[Any] = list(getattr(annotation, "__metadata__", ()))
    if get_origin(annotation) is not None:
        for arg in get_args(annotation):
            found.extend(_nested_metadata(arg))
    return found


def identifying_fields(event_type: str) -> frozenset[str]:
    return frozenset(
        name for name, tags in field_tags(event_type).items() if Sensitivity.IDENTIFYING in tags
    )


# -- the view of one event -----------------------------------------------------------------------


@dataclass(frozen=True)
class EventView:
    """One event as a principal may see it: None when hidden, else the payload it may read."""

    payload: dict[str, Any]
    redacted: tuple[str, ...]
    identifying: bool


def view_event(
    principal: Principal,
    access: Access,
    *,
    event_type: str,
    payload: Mapping[str, Any],
    author_agency_id: str,
    target_type: str | None = None,
    addressed_to: str | None = None,
) -> EventView | None:
    """Decide whether the principal sees this event and which of its fields.

    `target_type` is the type an EntryCorrected/EntryVoided refers to; `addressed_to` the agency
    a referral event concerns (the receiver sees the referral events addressed to it).
    """
    own = author_agency_id == principal.agency_id
    if not access.visible and not own:
        return None
    effective_type = target_type or event_type
    category = category_of(effective_type, payload)
    categories = visible_categories(principal, access)
    addressed = addressed_to is not None and addressed_to == principal.agency_id
    if not (own or addressed or category in categories):
        return None
    if event_type in ("EntryCorrected", "EntryVoided") and target_type is None:
        return None
    tags = field_tags(effective_type) if event_type != "EntryCorrected" else {}
    if event_type == "EntryCorrected":
        tags = {
            f"corrected_values.{k}": t for k, t in field_tags(effective_type).items()
        } | field_tags(event_type)
    forbidden = _forbidden_tags(principal, access, own)
    allowed_identification = _police_allowed(principal, access, category, own)
    visible_payload: dict[str, Any] = {}
    redacted: list[str] = []
    for name, value in payload.items():
        if name == "corrected_values" and isinstance(value, Mapping):
            kept = {}
            for key, inner in value.items():
                if _field_allowed(
                    tags.get(f"corrected_values.{key}", frozenset()),
                    forbidden,
                    key,
                    allowed_identification,
                ):
                    kept[key] = inner
                else:
                    redacted.append(f"corrected_values.{key}")
            visible_payload[name] = kept
            continue
        if _field_allowed(tags.get(name, frozenset()), forbidden, name, allowed_identification):
            visible_payload[name] = value
        else:
            redacted.append(name)
    identifying = any(
        Sensitivity.IDENTIFYING in tags.get(name, frozenset()) and visible_payload.get(name)
        for name in visible_payload
    ) or any(
        Sensitivity.IDENTIFYING in tags.get(f"corrected_values.{k}", frozenset())
        for k in visible_payload.get("corrected_values", {}) or {}
    )
    return EventView(visible_payload, tuple(redacted), identifying)


def _forbidden_tags(principal: Principal, access: Access, own: bool) -> frozenset[Sensitivity]:
    if own or R.AUDITOR in access.relations:
        return frozenset()
    forbidden = set(KIND_FORBIDDEN_TAGS.get(principal.agency_kind, frozenset()))
    full_view = access.relations & {R.LEAD, R.BREAK_GLASS, R.SHELTER, R.GUARDIAN}
    if not full_view and access.relations & RECEIVERS:
        if ReferralScope.IDENTIFICATION not in access.referral_scope:
            forbidden.add(Sensitivity.IDENTIFYING)
        if ReferralScope.PSYCHOSOCIAL not in access.referral_scope:
            forbidden.add(Sensitivity.PSYCHOSOCIAL)
    if not full_view and access.relations <= {R.OPENER, R.REPORT_RECIPIENT, *RECEIVERS}:
        forbidden.add(Sensitivity.PSYCHOSOCIAL)
    return frozenset(forbidden)


def _police_allowed(
    principal: Principal, access: Access, category: Category, own: bool
) -> frozenset[str] | None:
    """For a police unit whose only tie is a report: the identification fields the law shares."""
    if own or category is not C.IDENTIFICATION:
        return None
    if access.relations & {R.LEAD, R.AUDITOR, R.BREAK_GLASS, R.GUARDIAN, R.SHELTER, R.OPENER}:
        return None
    if access.relations & RECEIVERS:
        return None
    if R.REPORT_RECIPIENT in access.relations:
        return access.fields_shared_with_police
    return None


def _field_allowed(
    tags: frozenset[Sensitivity],
    forbidden: frozenset[Sensitivity],
    name: str,
    allowed_names: frozenset[str] | None,
) -> bool:
    if tags & forbidden:
        return False
    return allowed_names is None or name in allowed_names


# -- who may append which event type -------------------------------------------------------------

FIRST_RESPONDERS = frozenset(
    {K.HOTLINE, K.NGO, K.SOCIAL_SERVICES, K.SHELTER, K.LAW_ENFORCEMENT, K.CHILD_PROTECTION}
)
CASE_MANAGERS = frozenset({K.NGO, K.SOCIAL_SERVICES, K.CHILD_PROTECTION})
SERVICE_PROVIDERS = frozenset(
    {K.NGO, K.SOCIAL_SERVICES, K.SHELTER, K.CHILD_PROTECTION, K.LEGAL_AID, K.HOTLINE}
)
MANDATED_REPORTERS = frozenset(
    {K.HOTLINE, K.NGO, K.SOCIAL_SERVICES, K.SHELTER, K.CHILD_PROTECTION, K.GUARDIAN}
)
COMPETENT_AUTHORITIES = frozenset(
    {K.CHILD_PROTECTION, K.SOCIAL_SERVICES, K.MINISTRY, K.COORDINATOR}
)


@dataclass(frozen=True)
class AppendRule:
    """Which agency kinds may append an event type, in which relation, with which role."""

    kinds: frozenset[AgencyKind]
    relations: frozenset[Relation] | None = None
    """None: any relation to the case (the rule is then about kinds only)."""
    supervisor: bool = False


ANY_RELATION = None
LEAD_ONLY = frozenset({R.LEAD})
CARE = frozenset({R.LEAD, R.REFERRAL_RECEIVER, R.SHELTER, R.GUARDIAN})

APPEND_RULES: dict[str, AppendRule] = {
    "ContactReceived": AppendRule(FIRST_RESPONDERS),
    "ChildIdentified": AppendRule(FIRST_RESPONDERS),
    "AgeAssessed": AppendRule(frozenset({K.SOCIAL_SERVICES, K.CHILD_PROTECTION})),
    "GuardianAppointed": AppendRule(frozenset({K.CHILD_PROTECTION, K.COURT})),
    "ConsentRecorded": AppendRule(CASE_MANAGERS | {K.GUARDIAN, K.SHELTER, K.HOTLINE}, CARE),
    "ConsentWithdrawn": AppendRule(CASE_MANAGERS | {K.GUARDIAN, K.SHELTER, K.HOTLINE}, CARE),
    "ReportedToLawEnforcement": AppendRule(MANDATED_REPORTERS),
    "ReportAcknowledged": AppendRule(
        frozenset({K.LAW_ENFORCEMENT}), frozenset({R.REPORT_RECIPIENT})
    ),
    "IdentificationDecisionMade": AppendRule(COMPETENT_AUTHORITIES),
    "CaseConferenceHeld": AppendRule(CASE_MANAGERS | {K.HOTLINE, K.SHELTER}, LEAD_ONLY),
    "ReferralSent": AppendRule(CASE_MANAGERS | {K.HOTLINE, K.SHELTER, K.COORDINATOR}, LEAD_ONLY),
    "ReferralAccepted": AppendRule(frozenset(K) - {K.AUDITOR}, frozenset({R.REFERRAL_PENDING})),
    "ReferralDeclined": AppendRule(frozenset(K) - {K.AUDITOR}, frozenset({R.REFERRAL_PENDING})),
    "ReferralCompleted": AppendRule(frozenset(K) - {K.AUDITOR}, frozenset({R.REFERRAL_RECEIVER})),
    "ReferralRevoked": AppendRule(CASE_MANAGERS | {K.HOTLINE, K.SHELTER, K.COORDINATOR}),
    "ChildSheltered": AppendRule(frozenset({K.SHELTER}) | CASE_MANAGERS, CARE),
    "PlacementEnded": AppendRule(frozenset({K.SHELTER}) | CASE_MANAGERS, CARE),
    "ChildMissingFromCare": AppendRule(
        frozenset({K.SHELTER, K.LAW_ENFORCEMENT}) | CASE_MANAGERS,
        frozenset({R.LEAD, R.SHELTER, R.REPORT_RECIPIENT}),
    ),
    "ChildLocated": AppendRule(
        frozenset({K.SHELTER, K.LAW_ENFORCEMENT}) | CASE_MANAGERS,
        frozenset({R.LEAD, R.SHELTER, R.REPORT_RECIPIENT}),
    ),
    "ReturnRiskAssessed": AppendRule(
        CASE_MANAGERS | {K.COORDINATOR}, frozenset({R.LEAD, R.REFERRAL_RECEIVER})
    ),
    "ChildReturned": AppendRule(
        CASE_MANAGERS | {K.COORDINATOR}, frozenset({R.LEAD, R.REFERRAL_RECEIVER})
    ),
    "FamilyTraced": AppendRule(
        CASE_MANAGERS | {K.HOTLINE}, frozenset({R.LEAD, R.REFERRAL_RECEIVER})
    ),
    "HomeAssessed": AppendRule(CASE_MANAGERS, frozenset({R.LEAD, R.REFERRAL_RECEIVER})),
    "BestInterestsDetermined": AppendRule(frozenset({K.CHILD_PROTECTION})),
    "ReintegrationPlanAgreed": AppendRule(CASE_MANAGERS, LEAD_ONLY, supervisor=True),
    "PlanReviewed": AppendRule(CASE_MANAGERS, LEAD_ONLY, supervisor=True),
    "ServiceDelivered": AppendRule(
        SERVICE_PROVIDERS, frozenset({R.LEAD, R.REFERRAL_RECEIVER, R.SHELTER})
    ),
    "InterviewConducted": AppendRule(
        frozenset({K.LAW_ENFORCEMENT}), frozenset({R.REPORT_RECIPIENT, R.LEAD})
    ),
    "LegalProceedingRecorded": AppendRule(frozenset({K.PROSECUTOR, K.COURT, K.LEGAL_AID})),
    "ExploitationEpisodeRecorded": AppendRule(
        CASE_MANAGERS | {K.LAW_ENFORCEMENT, K.HOTLINE},
        frozenset({R.LEAD, R.REPORT_RECIPIENT}),
    ),
    "CaseClosed": AppendRule(CASE_MANAGERS | {K.HOTLINE, K.SHELTER}, LEAD_ONLY, supervisor=True),
    "CaseReopened": AppendRule(CASE_MANAGERS | {K.HOTLINE, K.SHELTER}, LEAD_ONLY, supervisor=True),
    "EntryCorrected": AppendRule(frozenset(K) - {K.AUDITOR}),
    "EntryVoided": AppendRule(frozenset(K) - {K.AUDITOR}, supervisor=True),
}

SUPERVISING_ROLES = frozenset({Role.SUPERVISOR})


def may_append_kind(principal: Principal, event_type: str) -> bool:
    """The static half of the append check: agency kind and role, no case needed."""
    rule = APPEND_RULES.get(event_type)
    if rule is None or principal.agency_kind not in rule.kinds:
        return False
    return not rule.supervisor or principal.role in SUPERVISING_ROLES


def check_append(principal: Principal, event_type: str, access: Access | None) -> None:
    """Refuse an append the principal may not make; `access` is None when opening a case.

    Break-glass grants reading, never writing.
    """
    rule = APPEND_RULES.get(event_type)
    if rule is None:
        raise PermissionDeniedError(f"no agency may append {event_type[:64]}")
    if principal.agency_kind not in rule.kinds:
        raise PermissionDeniedError(
            f"a {principal.agency_kind.value} agency may not append {event_type}"
        )
    if rule.supervisor and principal.role not in SUPERVISING_ROLES:
        raise PermissionDeniedError(f"{event_type} needs a supervisor")
    if access is None:
        if not CATALOG[event_type].opens_case:
            raise PermissionDeniedError(f"{event_type} does not open a case")
        return
    relations = access.relations - {R.BREAK_GLASS, R.AUDITOR}
    if not relations:
        raise PermissionDeniedError("the agency has no part in this case")
    if rule.relations is not None and not relations & rule.relations:
        raise PermissionDeniedError(
            f"{event_type} needs the agency to be "
            + " or ".join(sorted(r.value.replace("_", " ") for r in rule.relations))
        )


ERASING_KINDS = frozenset({K.MINISTRY, K.COORDINATOR})


def check_erase(principal: Principal) -> None:
    """Erasure is for a data-protection officer of the ministry or coordinator, on any case.

    It needs no relation to the case: the officer acts on a legal request, not on case work.
    The erasure is itself an event of the case, so who erased what, when and why stays known.
    """
    if principal.agency_kind not in ERASING_KINDS:
        raise PermissionDeniedError("erasure is for the ministry or the national coordinator")
    if principal.role is not Role.DATA_PROTECTION_OFFICER:
        raise PermissionDeniedError("erasure needs the data-protection officer role")


def may_see_case(access: Access) -> bool:
    return access.visible
