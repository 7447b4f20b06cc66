"""The domain rules of DESIGN.md: whether a well-formed event may be recorded on a case.

Each rule raises a named error from `referral_core.errors`. Who may append which event type at all
is authorization policy (`policy`); these rules are about the case's own history.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import date, datetime
from functools import cache
from typing import Any

from pydantic import BaseModel, ValidationError, create_model

from referral_core import payloads as p
from referral_core.case import (
    AGE_OF_MAJORITY,
    Case,
    age_on,
    states_certain_adult,
    states_minor,
)
from referral_core.case_events import CATALOG, EventSpec
from referral_core.envelope import Envelope
from referral_core.errors import (
    CaseClosedError,
    CaseErasedError,
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

Rule = Callable[[Case, Any, Envelope], None]
_RULES: dict[str, list[Rule]] = {}


def rule(*names: str) -> Callable[[Rule], Rule]:
    def register(func: Rule) -> Rule:
        for name in names:
            _RULES.setdefault(name, []).append(func)
        return func

    return register


def check_opening(spec: EventSpec, payload: Any, envelope: Envelope) -> None:
    """Rules that hold for the first event of a case."""
    if envelope.consent_ref is not None:
        raise UnknownTargetEventError("consent_ref names no consent of this case")
    if isinstance(payload, p.ChildIdentified):
        _minority_presumed_while_age_uncertain(payload, envelope.occurred_at)


def check(case: Case, spec: EventSpec, payload: Any, envelope: Envelope) -> None:
    """Every rule for appending `payload` of type `spec` to an existing `case`.

    Erasure is the one exception to "nothing but CaseReopened on a closed case": it is a legal
    obligation that usually falls after closure. After it, nothing at all may be recorded.
    """
    if case.erased:
        raise CaseErasedError("the case's data was erased: nothing more may be recorded")
    if case.closed and spec.name not in ("CaseReopened", "CaseErased"):
        raise CaseClosedError("the case is closed: only CaseReopened may be recorded")
    _consent_ref_names_a_consent(case, envelope)
    for check_rule in _RULES.get(spec.name, ()):
        check_rule(case, payload, envelope)
    if spec.discloses:
        _disclosure_basis(case, spec.name, payload, envelope)


# -- consent and the basis of a disclosure ------------------------------------------------------


def _consent_ref_names_a_consent(case: Case, envelope: Envelope) -> None:
    """Any event may cite a consent; the one it cites must be a consent of this case."""
    if envelope.consent_ref is not None and str(envelope.consent_ref) not in case.consents:
        raise UnknownTargetEventError("consent_ref names no consent of this case")


def _disclosure_basis(
    case: Case, event_type: str, payload: Any, envelope: Envelope
) -> dict[str, Any] | None:
    """The consent an event that discloses data relies on, or None if it has a legal basis.

    A report to law enforcement has its statutory basis as legal basis. Otherwise the event
    needs a `legal_basis`, or a `consent_ref` naming a consent of this case that is still
    active (not withdrawn, not voided) and not expired on the day the event occurred.
    """
    if envelope.legal_basis or getattr(payload, "statutory_basis", None):
        return None
    if envelope.consent_ref is None:
        raise MissingLegalBasisError(
            f"{event_type} discloses the child's data: it needs a legal_basis or a consent_ref"
        )
    consent = case.consents.get(str(envelope.consent_ref))
    if consent is None:
        raise UnknownTargetEventError("consent_ref names no consent of this case")
    if not consent["active"]:
        raise MissingLegalBasisError("consent_ref names no active consent of this case")
    valid_until = consent["valid_until"]
    if valid_until is not None and date.fromisoformat(valid_until) < envelope.occurred_at.date():
        raise MissingLegalBasisError("that consent has expired")
    return consent


# -- the presumption of minority ----------------------------------------------------------------


def _minority_presumed_while_age_uncertain(
    payload: p.ChildIdentified, occurred_at: datetime
) -> None:
    """Without the presumption, an identification states a certain adult age.

    Certain means a birth date giving 18 or more on the day of the identification, or, without
    a birth date, an `age_years` of 18 or more that is not an estimate.
    """
    if payload.minority_presumed:
        return
    values = payload.model_dump(include={"age_years", "age_is_estimate", "birth_date"})
    if states_minor(values, occurred_at):
        raise MinorityPresumptionError("a child under 18 is a minor")
    if not states_certain_adult(values, occurred_at):
        raise MinorityPresumptionError(
            "minority is presumed while the age is uncertain; only an age assessment lifts it"
        )


@rule("ChildIdentified")
def _identified_keeps_presumption(
    case: Case, payload: p.ChildIdentified, envelope: Envelope
) -> None:
    _minority_presumed_while_age_uncertain(payload, envelope.occurred_at)
    if case.child["minority_presumed"] and not payload.minority_presumed:
        raise MinorityPresumptionError("only an age assessment lifts the presumption of minority")


def _assessment_agrees_with_itself(values: Mapping[str, Any], occurred_at: date | str) -> None:
    """An age assessment's finding of minority agrees with the age and birth date it found.

    The age is taken at the day of the assessment; a finding of an adult states the age found.
    """
    is_minor = bool(values["is_minor"])
    age = values.get("age_years")
    birth = values.get("birth_date")
    if not is_minor and age is None and birth is None:
        raise MinorityPresumptionError("an assessment that finds an adult states the age found")
    if age is not None and (age < AGE_OF_MAJORITY) != is_minor:
        raise MinorityPresumptionError("the age found and the finding of minority disagree")
    if birth is not None and (age_on(birth, occurred_at) < AGE_OF_MAJORITY) != is_minor:
        raise MinorityPresumptionError("the birth date found and the finding of minority disagree")


@rule("AgeAssessed")
def _assessment_is_consistent(case: Case, payload: p.AgeAssessed, envelope: Envelope) -> None:
    _assessment_agrees_with_itself(payload.model_dump(), envelope.occurred_at.date())


# -- the rest of the history --------------------------------------------------------------------


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
    consent = _disclosure_basis(case, "ReferralSent", payload, envelope)
    if consent is None:
        return
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
def _missing_from_a_placement(case: Case, _p: p.ChildMissingFromCare, _e: Envelope) -> None:
    if case.placement is None:
        raise InconsistentStateError("the child has no current placement to go missing from")
    if case.missing:
        raise InconsistentStateError("the child is already recorded as missing")


@rule("ChildLocated")
def _was_missing(case: Case, _p: p.ChildLocated, _e: Envelope) -> None:
    if not case.missing:
        raise InconsistentStateError("the child is not recorded as missing")


@rule("PlanReviewed")
def _plan_exists(case: Case, _p: p.PlanReviewed, _e: Envelope) -> None:
    if not case.plan_agreed:
        raise InconsistentStateError("there is no reintegration plan to review")


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


ROUTING_FIELDS: dict[str, frozenset[str]] = {
    "ReferralSent": frozenset({"to_agency_id", "scope", "transfers_lead"}),
    "ConsentRecorded": frozenset({"purpose", "scope", "shared_with_agency_ids"}),
    "ReportedToLawEnforcement": frozenset({"receiving_unit_agency_id"}),
    "ChildSheltered": frozenset({"shelter_agency_id"}),
    "GuardianAppointed": frozenset({"guardian_agency_id"}),
}
"""Fields that decide who may see the case: never corrected.

Access rights derive from them, and an agency that once had access has seen what it saw; to
change one, void the entry and record a new one.
"""
TARGET_FIELDS = frozenset(
    {"report_event_id", "referral_event_id", "consent_event_id", "target_event_id"}
)
"""Fields naming the entry an answer is about: never corrected either, for the same reason."""


@rule("EntryCorrected")
def _correct_target(case: Case, payload: p.EntryCorrected, envelope: Envelope) -> None:
    """A correction names an entry of this case and gives valid values for its fields.

    The values are merged into the entry's effective payload, and the whole result must be a
    valid payload of the entry's type (its validators included), and for an age assessment a
    consistent one. Fields that route access are not corrected (see `ROUTING_FIELDS`). A
    correction does not lift the presumption of minority; one that states an age under 18
    presumes it again (see `case._corrected`).
    """
    target = _target(case, payload.target_event_id, envelope)
    values = normalised_corrections(case, payload)
    routing = ROUTING_FIELDS.get(target["type"], frozenset()) | TARGET_FIELDS
    if routing & set(values):
        raise InconsistentStateError(
            "that field decides who may see the case or which entry this one answers:"
            " void the entry and record a new one"
        )
    if values.get("minority_presumed") is False and case.child["minority_presumed"]:
        raise MinorityPresumptionError("only an age assessment lifts the presumption")
    target_id = str(payload.target_event_id)
    occurred_at = case.occurred_at_of(target_id)
    if target["type"] == "AgeAssessed" and occurred_at is not None:
        merged = {**(case.effective_payload(target_id) or {}), **values}
        _assessment_agrees_with_itself(merged, occurred_at)


@cache
def field_model(model: type[p.Payload], name: str) -> type[BaseModel]:
    """A model of one field of a payload model: its type, constraints and the model's config."""
    info = model.model_fields[name]
    fields: dict[str, Any] = {name: (info.annotation, info)}
    return create_model(f"{model.__name__}Field", __config__=model.model_config, **fields)


def _errors(exc: ValidationError) -> list[dict[str, object]]:
    """Where and why corrected values are invalid, as `validate_payload` says it, except that
    a key the submitter made up (an extra key in a nested object) is left out of `loc`."""
    found: list[dict[str, object]] = []
    for err in exc.errors(include_input=False, include_url=False, include_context=False):
        loc = list(err["loc"])
        if err["type"] == "extra_forbidden":
            loc = loc[:-1]
        found.append({"loc": ["corrected_values", *loc], "msg": err["msg"], "type": err["type"]})
    return found


def normalised_corrections(
    case: Case, payload: p.EntryCorrected, *, whole: bool = True
) -> dict[str, Any]:
    """The corrected values, validated and in their stored (JSON) form.

    Each value is validated with its field's type, constraints and model configuration. Then,
    if `whole` and the case keeps the entry's effective payload, the merged payload is validated
    whole with the entry type's model (its validators included), and the values returned are
    that model's JSON form of the corrected keys, which is the same as each field's own. Errors
    name fields of the entry's type only: unknown fields are counted, never named, and no
    submitted value is repeated.
    """
    target_id = str(payload.target_event_id)
    target = case.entry(target_id)
    if target is None:
        raise UnknownTargetEventError("target_event_id names no event of this case")
    target_type = target["type"]
    model = CATALOG[target_type].payload_model
    values = payload.corrected_values
    unknown = sum(1 for key in values if key not in model.model_fields)
    if unknown:
        raise InvalidPayloadError(
            f"corrected_values names {unknown} field(s) {target_type} does not have",
            [
                {
                    "loc": ["corrected_values"],
                    "msg": f"{unknown} field(s) unknown to {target_type}",
                    "type": "extra_forbidden",
                }
            ],
        )
    normalised: dict[str, Any] = {}
    errors: list[dict[str, object]] = []
    first_invalid: str | None = None
    for name, value in values.items():
        try:
            valid = field_model(model, name).model_validate({name: value})
        except ValidationError as exc:
            errors.extend(_errors(exc))
            first_invalid = first_invalid or name
            continue
        normalised[name] = valid.model_dump(mode="json")[name]
    if first_invalid is not None:
        raise InvalidPayloadError(f"corrected value for {first_invalid} is invalid", errors)
    base = case.effective_payload(target_id) if whole else None
    if base is None:
        return normalised
    try:
        merged = model.model_validate({**base, **values})
    except ValidationError as exc:
        raise InvalidPayloadError(
            f"the corrected {target_type} entry is invalid", _errors(exc)
        ) from None
    dumped = merged.model_dump(mode="json")
    return {name: dumped[name] for name in values}
