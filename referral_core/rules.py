"""The domain rules of DESIGN.md: whether a well-formed event may be recorded on a case.

Each rule raises a named error from `referral_core.errors`. Who may append which event type at all
is authorization policy (`policy`); these rules are about the case's own history.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import cache
from typing import Annotated, Any

from pydantic import TypeAdapter

from referral_core import payloads as p
from referral_core.case import Case
from referral_core.case_events import CATALOG, EventSpec
from referral_core.envelope import Envelope
from referral_core.errors import (
    CaseClosedError,
    CaseNotClosedError,
    InconsistentStateError,
    InvalidPayloadError,
    MinorityPresumptionError,
    MissingLegalBasisError,
    NotAuthorAgencyError,
    NotReferralReceiverError,
    NotReferralSenderError,
    NotReportRecipientError,
    ReferralNotPendingError,
    UnknownTargetEventError,
    UnreportedTraffickingError,
)
from referral_core.vocab import ConsentPurpose, TraffickingStatus


@cache
def field_adapter(model: type[p.Payload], name: str) -> TypeAdapter[Any]:
    """A validator for one field of a payload model, with the field's own constraints."""
    field = model.model_fields[name]
    annotation: Any = field.annotation
    if field.metadata:
        annotation = Annotated[(annotation, *field.metadata)]
    return TypeAdapter(annotation)


AGE_OF_MAJORITY = 18

Rule = Callable[[Case, Any, Envelope], None]
_RULES: dict[str, list[Rule]] = {}


def rule(*names: str) -> Callable[[Rule], Rule]:
    def register(func: Rule) -> Rule:
        for name in names:
            _RULES.setdefault(name, []).append(func)
        return func

    return register


def check_opening(spec: EventSpec, payload: Any) -> None:
    """Rules that hold for the first event of a case."""
    if isinstance(payload, p.ChildIdentified):
        _minority_presumed_while_age_uncertain(payload)


def check(case: Case, spec: EventSpec, payload: Any, envelope: Envelope) -> None:
    """Every rule for appending `payload` of type `spec` to an existing `case`."""
    if case.closed and spec.name != "CaseReopened":
        raise CaseClosedError("the case is closed: only CaseReopened may be recorded")
    for check_rule in _RULES.get(spec.name, ()):
        check_rule(case, payload, envelope)


def _minority_presumed_while_age_uncertain(payload: p.ChildIdentified) -> None:
    age_uncertain = payload.birth_date is None and (
        payload.age_years is None or payload.age_is_estimate
    )
    if age_uncertain and not payload.minority_presumed:
        raise MinorityPresumptionError(
            "minority is presumed while the age is uncertain; only an age assessment lifts it"
        )
    if (
        payload.age_years is not None
        and payload.age_years < AGE_OF_MAJORITY
        and not payload.minority_presumed
    ):
        raise MinorityPresumptionError("a child under 18 is a minor")


@rule("ChildIdentified")
def _identified_keeps_presumption(case: Case, payload: p.ChildIdentified, _e: Envelope) -> None:
    _minority_presumed_while_age_uncertain(payload)
    if case.child["minority_presumed"] and not payload.minority_presumed:
        raise MinorityPresumptionError("only an age assessment lifts the presumption of minority")


@rule("ConsentWithdrawn")
def _withdraw_active_consent(case: Case, payload: p.ConsentWithdrawn, _e: Envelope) -> None:
    consent = case.consents.get(str(payload.consent_event_id))
    if consent is None:
        raise UnknownTargetEventError("consent_event_id names no consent of this case")
    if not consent["active"]:
        raise InconsistentStateError("that consent is no longer active")


@rule("ReportAcknowledged")
def _only_recipient_acknowledges(
    case: Case, payload: p.ReportAcknowledged, envelope: Envelope
) -> None:
    report = case.reports.get(str(payload.report_event_id))
    if report is None or report["voided"]:
        raise UnknownTargetEventError("report_event_id names no report of this case")
    if report["unit_agency_id"] != envelope.actor.agency_id:
        raise NotReportRecipientError("only the receiving police unit acknowledges a report")
    if report["acknowledged_at"] is not None:
        raise InconsistentStateError("the report is already acknowledged")


@rule("ReferralSent")
def _referral_needs_basis(case: Case, payload: p.ReferralSent, envelope: Envelope) -> None:
    if str(payload.to_agency_id) == envelope.actor.agency_id:
        raise InconsistentStateError("an agency does not refer a case to itself")
    if envelope.legal_basis:
        return
    if envelope.consent_ref is None:
        raise MissingLegalBasisError("a referral needs a consent_ref or a statutory legal_basis")
    consent = case.consents.get(str(envelope.consent_ref))
    if consent is None or not consent["active"]:
        raise MissingLegalBasisError("consent_ref names no active consent of this case")
    if consent["purpose"] not in (ConsentPurpose.SHARING, ConsentPurpose.SERVICES):
        raise MissingLegalBasisError("that consent does not cover sharing with another agency")
    allowed = consent["shared_with_agency_ids"]
    if allowed and str(payload.to_agency_id) not in allowed:
        raise MissingLegalBasisError("that consent does not name the receiving agency")
    if not {s.value for s in payload.scope} <= set(consent["scope"]):
        raise MissingLegalBasisError("the referral's scope exceeds the consent's scope")


def _referral(case: Case, referral_event_id: Any) -> dict[str, Any]:
    referral = case.referrals.get(str(referral_event_id))
    if referral is None:
        raise UnknownTargetEventError("referral_event_id names no referral of this case")
    return referral


@rule("ReferralAccepted", "ReferralDeclined")
def _only_receiver_answers(case: Case, payload: Any, envelope: Envelope) -> None:
    referral = _referral(case, payload.referral_event_id)
    if referral["to_agency_id"] != envelope.actor.agency_id:
        raise NotReferralReceiverError("only the receiving agency answers a referral")
    if referral["status"] != "pending":
        raise ReferralNotPendingError(f"the referral is {referral['status']}, not pending")


@rule("ReferralCompleted")
def _only_receiver_completes(case: Case, payload: p.ReferralCompleted, envelope: Envelope) -> None:
    referral = _referral(case, payload.referral_event_id)
    if referral["to_agency_id"] != envelope.actor.agency_id:
        raise NotReferralReceiverError("only the receiving agency completes a referral")
    if referral["status"] != "accepted":
        raise ReferralNotPendingError(f"the referral is {referral['status']}, not accepted")


@rule("ReferralRevoked")
def _only_sender_revokes(case: Case, payload: p.ReferralRevoked, envelope: Envelope) -> None:
    referral = _referral(case, payload.referral_event_id)
    if referral["from_agency_id"] != envelope.actor.agency_id:
        raise NotReferralSenderError("only the sending agency revokes a referral")
    if referral["status"] not in ("pending", "accepted"):
        raise ReferralNotPendingError(f"the referral is {referral['status']}, not open")


@rule("ChildSheltered")
def _one_placement_at_a_time(case: Case, _p: p.ChildSheltered, _e: Envelope) -> None:
    if case.placement is not None:
        raise InconsistentStateError("end the current placement before a new one")


@rule("PlacementEnded")
def _placement_exists(case: Case, _p: p.PlacementEnded, _e: Envelope) -> None:
    if case.placement is None:
        raise InconsistentStateError("the child has no current placement")


@rule("ChildMissingFromCare")
def _not_already_missing(case: Case, _p: p.ChildMissingFromCare, _e: Envelope) -> None:
    if case.missing:
        raise InconsistentStateError("the child is already recorded as missing")


@rule("ChildLocated")
def _was_missing(case: Case, _p: p.ChildLocated, _e: Envelope) -> None:
    if not case.missing:
        raise InconsistentStateError("the child is not recorded as missing")


@rule("PlanReviewed")
def _plan_exists(case: Case, _p: p.PlanReviewed, _e: Envelope) -> None:
    if case.plan_review_date is None and not any(
        e["type"] == "ReintegrationPlanAgreed" and not e["voided"] for e in case.entries.values()
    ):
        raise InconsistentStateError("there is no reintegration plan to review")


@rule("AgeAssessed")
def _adult_result_needs_evidence(case: Case, payload: p.AgeAssessed, _e: Envelope) -> None:
    if not payload.is_minor and payload.age_years is None and payload.birth_date is None:
        raise MinorityPresumptionError("an assessment that finds an adult states the age found")


@rule("CaseClosed")
def _report_before_closure(case: Case, payload: p.CaseClosed, _e: Envelope) -> None:
    cleared = case.identification_decision == TraffickingStatus.NOT_A_VICTIM
    if case.trafficking_indicated and not cleared and not case.has_active_report():
        raise UnreportedTraffickingError(
            "a case with trafficking indicators closes only after a report to law enforcement"
        )


@rule("CaseReopened")
def _reopen_closed_only(case: Case, _p: p.CaseReopened, _e: Envelope) -> None:
    if not case.closed:
        raise CaseNotClosedError("only a closed case can be reopened")


def _target(case: Case, target_event_id: Any, envelope: Envelope) -> dict[str, Any]:
    target = case.entry(str(target_event_id))
    if target is None:
        raise UnknownTargetEventError("target_event_id names no event of this case")
    if target["type"] in ("EntryVoided", "EntryCorrected"):
        raise UnknownTargetEventError("correct or void the original entry, not a correction")
    if target["voided"]:
        raise InconsistentStateError("that entry is already voided")
    if target["agency_id"] != envelope.actor.agency_id:
        raise NotAuthorAgencyError("only the author's agency corrects or voids an entry")
    return target


@rule("EntryVoided")
def _void_target(case: Case, payload: p.EntryVoided, envelope: Envelope) -> None:
    target = _target(case, payload.target_event_id, envelope)
    if target["version"] == 1:
        raise InconsistentStateError("the opening entry can be corrected but not voided")


@rule("EntryCorrected")
def _correct_target(case: Case, payload: p.EntryCorrected, envelope: Envelope) -> None:
    target = _target(case, payload.target_event_id, envelope)
    model = CATALOG[target["type"]].payload_model
    unknown = set(payload.corrected_values) - set(model.model_fields)
    if unknown:
        raise InvalidPayloadError(
            f"corrected_values names fields {target['type']} does not have: "
            + ", ".join(sorted(unknown))
        )
    # Validate the corrected fields with the target type's own constraints.
    for name, value in payload.corrected_values.items():
        try:
            field_adapter(model, name).validate_python(value)
        except ValueError as exc:
            raise InvalidPayloadError(f"corrected value for {name} is invalid") from exc
        if name == "minority_presumed" and value is False and case.child["minority_presumed"]:
            raise MinorityPresumptionError("only an age assessment lifts the presumption")
