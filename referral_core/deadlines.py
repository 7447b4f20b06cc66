"""Deadlines: what an agency owes a child's case, and by when, derived from the case state alone.

DESIGN.md ("Clocks"): the things people forget are deadlines. Each one is derived here from a
`Case` (the fold of its stream) and a country's `CountryRules`; nothing here reads a clock.
Whether a deadline is breached is asked with an injected `now` (`is_breached`), so read models
can store `due_at` and every reader decides overdue at its own time.

The deadlines, and the fact that discharges each:

- report to law enforcement: an identified case with trafficking indicators and no active
  report is owed a report by its lead, due `report_after_identification` after identification
  (also when the indicators were recorded later: the case state keeps no time at which they
  first appeared); discharged by `ReportedToLawEnforcement`, or by a decision that the child is
  not a victim (as for closing a case, `rules`);
- report acknowledgement: each unacknowledged report is owed an acknowledgement by the police
  unit that received it, due after a duration that depends on the report's urgency;
  discharged by `ReportAcknowledged`;
- referral answer: each pending referral is owed an answer by its receiver, due at its
  `respond_by` or `referral_answer` after it was sent; discharged by any answer (or revocation);
- plan review and best-interests review: owed by the lead at the end of the review date the
  events state (UTC); discharged by `PlanReviewed` (which may set the next date);
- majority: with a known birth date, the lead must seek the consent to continue as an adult
  `majority_warning` before the 18th birthday; discharged by an active consent with purpose
  `continuation_as_adult`. The due date is moved back to the first day of its month, so that a
  stored due date discloses the birth month, never the birth date (see `majority_due_at`).

A closed case owes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    RootModel,
    StringConstraints,
    ValidationError,
)

from referral_core.case import AGE_OF_MAJORITY, Case
from referral_core.vocab import ConsentPurpose, TraffickingStatus, Urgency


class DeadlineKind(StrEnum):
    REPORT_TO_LAW_ENFORCEMENT = "report_to_law_enforcement"
    REPORT_ACKNOWLEDGEMENT = "report_acknowledgement"
    REFERRAL_ANSWER = "referral_answer"
    PLAN_REVIEW = "plan_review"
    BEST_INTERESTS_REVIEW = "best_interests_review"
    MAJORITY = "majority"


@dataclass(frozen=True)
class CountryRules:
    """The durations a country sets for its deadlines; every field has a default."""

    report_after_identification: timedelta = timedelta(hours=24)
    acknowledgement_after_report: timedelta = timedelta(hours=48)
    acknowledgement_after_urgent_report: timedelta = timedelta(hours=4)
    acknowledgement_after_immediate_report: timedelta = timedelta(hours=1)
    referral_answer: timedelta = timedelta(hours=72)
    """When a `ReferralSent` gives no `respond_by`."""
    majority_warning: timedelta = timedelta(days=30)
    """How long before the 18th birthday the lead seeks the consent to continue as an adult."""

    def acknowledgement_after(self, urgency: str) -> timedelta:
        if urgency == Urgency.IMMEDIATE:
            return self.acknowledgement_after_immediate_report
        if urgency == Urgency.URGENT:
            return self.acknowledgement_after_urgent_report
        return self.acknowledgement_after_report


DEFAULT_RULES = CountryRules()

RULES_BY_COUNTRY: Mapping[str, CountryRules] = MappingProxyType(
    {
        "CR": CountryRules(report_after_identification=timedelta(hours=48)),
        "TH": CountryRules(),
        "UA": CountryRules(),
    }
)
"""Illustrative defaults for the demo's countries, not any country's law: a country configures
its own durations in a rules file (`load_country_rules`). Costa Rica shows an override."""


def rules_for(
    country: str | None, table: Mapping[str, CountryRules] = RULES_BY_COUNTRY
) -> CountryRules:
    """The rules of a case's country; a country not in the table has the defaults."""
    if country is None:
        return DEFAULT_RULES
    return table.get(country, DEFAULT_RULES)


@dataclass(frozen=True)
class Deadline:
    """One open deadline of a case: what is owed, by whom, by when, about which entry."""

    kind: DeadlineKind
    due_at: datetime
    """Aware, in UTC."""
    agency_id: str
    """The agency that must act."""
    subject_event_id: str | None
    """The entry the deadline is about (the report, the referral, the plan...), if any."""
    case_id: str


def is_breached(deadline: Deadline, now: datetime) -> bool:
    """Whether the deadline has passed at `now` (an aware time): due at or before it."""
    return is_due(deadline.due_at, now)


def is_due(due_at: datetime | None, now: datetime) -> bool:
    """Whether a due time (None: nothing due) has come at `now`; both aware."""
    return due_at is not None and due_at <= now


def deadlines_for(case: Case, rules: CountryRules) -> list[Deadline]:
    """The case's open deadlines, soonest first; none once the case is closed."""
    if case.closed:
        return []
    found = [
        *_report_due(case, rules),
        *_acknowledgements_due(case, rules),
        *_answers_due(case, rules),
        *_reviews_due(case),
        *_majority_due(case, rules),
    ]
    return sorted(found, key=lambda d: (d.due_at, d.kind.value, d.subject_event_id or ""))


# -- each kind ----------------------------------------------------------------------------------


def _report_due(case: Case, rules: CountryRules) -> Iterator[Deadline]:
    if case.identified_at is None or not case.trafficking_indicated:
        return
    if case.has_active_report() or case.identification_decision == TraffickingStatus.NOT_A_VICTIM:
        return
    yield Deadline(
        DeadlineKind.REPORT_TO_LAW_ENFORCEMENT,
        moment(case.identified_at) + rules.report_after_identification,
        case.lead_agency_id,
        _first_entry(case, ("ChildIdentified",)),
        str(case.id),
    )


def _acknowledgements_due(case: Case, rules: CountryRules) -> Iterator[Deadline]:
    for report in case.reports.values():
        if report["voided"] or report["acknowledged_at"] is not None:
            continue
        yield Deadline(
            DeadlineKind.REPORT_ACKNOWLEDGEMENT,
            moment(report["reported_at"]) + rules.acknowledgement_after(report["urgency"]),
            str(report["unit_agency_id"]),
            str(report["event_id"]),
            str(case.id),
        )


def _answers_due(case: Case, rules: CountryRules) -> Iterator[Deadline]:
    for referral in case.referrals.values():
        if referral["status"] != "pending":
            continue
        yield Deadline(
            DeadlineKind.REFERRAL_ANSWER,
            referral_answer_due_at(referral, rules),
            str(referral["to_agency_id"]),
            str(referral["event_id"]),
            str(case.id),
        )


def referral_answer_due_at(referral: Mapping[str, Any], rules: CountryRules) -> datetime:
    """A referral's `respond_by`, or `referral_answer` after it was sent."""
    if referral["respond_by"] is not None:
        return moment(referral["respond_by"])
    return moment(referral["sent_at"]) + rules.referral_answer


def _reviews_due(case: Case) -> Iterator[Deadline]:
    if case.plan_review_date is not None:
        yield Deadline(
            DeadlineKind.PLAN_REVIEW,
            end_of_day(case.plan_review_date),
            case.lead_agency_id,
            _last_entry(case, ("ReintegrationPlanAgreed", "PlanReviewed")),
            str(case.id),
        )
    if case.best_interests_review_date is not None:
        yield Deadline(
            DeadlineKind.BEST_INTERESTS_REVIEW,
            end_of_day(case.best_interests_review_date),
            case.lead_agency_id,
            _last_entry(case, ("BestInterestsDetermined",)),
            str(case.id),
        )


def _majority_due(case: Case, rules: CountryRules) -> Iterator[Deadline]:
    birth_date = case.child.get("birth_date")
    if birth_date is None or _consents_to_continue_as_adult(case):
        return
    yield Deadline(
        DeadlineKind.MAJORITY,
        majority_due_at(birth_date, rules),
        case.lead_agency_id,
        None,
        str(case.id),
    )


def majority_due_at(birth_date: date | str, rules: CountryRules) -> datetime:
    """The first day (00:00 UTC) of the month in which the majority warning falls.

    Never later than `majority_warning` before the 18th birthday, and coarse on purpose: read
    models store due dates, and a due date a fixed time before a birthday would disclose it.
    """
    warn_on = eighteenth_birthday(birth_date) - rules.majority_warning
    return datetime.combine(warn_on.replace(day=1), time(), tzinfo=UTC)


def eighteenth_birthday(birth_date: date | str) -> date:
    """The day a child comes of age; one born on 29 February, on 28 February (the earlier)."""
    born = date.fromisoformat(birth_date) if isinstance(birth_date, str) else birth_date
    year = born.year + AGE_OF_MAJORITY
    try:
        return born.replace(year=year)
    except ValueError:
        return date(year, 2, 28)


def _consents_to_continue_as_adult(case: Case) -> bool:
    return any(
        c["active"] and c["purpose"] == ConsentPurpose.CONTINUATION_AS_ADULT
        for c in case.consents.values()
    )


# -- reading case state -------------------------------------------------------------------------


def moment(value: str | datetime) -> datetime:
    """An ISO 8601 time of the case state as an aware UTC datetime."""
    parsed = datetime.fromisoformat(value) if isinstance(value, str) else value
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC)


def end_of_day(day: str | date) -> datetime:
    """A date-only deadline falls due when its day ends (midnight UTC after it)."""
    parsed = date.fromisoformat(day) if isinstance(day, str) else day
    return datetime.combine(parsed + timedelta(days=1), time(), tzinfo=UTC)


def _live_entries(case: Case, types: Iterable[str]) -> list[str]:
    wanted = frozenset(types)
    return [
        event_id
        for event_id, entry in case.entries.items()
        if entry["type"] in wanted and not entry["voided"]
    ]


def _first_entry(case: Case, types: Iterable[str]) -> str | None:
    found = _live_entries(case, types)
    return found[0] if found else None


def _last_entry(case: Case, types: Iterable[str]) -> str | None:
    found = _live_entries(case, types)
    return found[-1] if found else None


# -- a country's own rules ----------------------------------------------------------------------


LONGEST_DURATION = timedelta(days=3660)


def _iso_duration_only(value: object) -> object:
    if not isinstance(value, str):
        # pydantic turns a ValueError (not a TypeError) into a validation error
        raise ValueError("a duration is an ISO 8601 string such as PT24H or P30D")  # noqa: TRY004
    return value


def _positive_and_bounded(value: timedelta) -> timedelta:
    if not timedelta(0) < value <= LONGEST_DURATION:
        raise ValueError("a duration is positive and at most ten years")
    return value


Duration = Annotated[
    timedelta, BeforeValidator(_iso_duration_only), AfterValidator(_positive_and_bounded)
]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class _RulesEntry(BaseModel):
    """One country's overrides; an absent field keeps the default."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    report_after_identification: Duration | None = None
    acknowledgement_after_report: Duration | None = None
    acknowledgement_after_urgent_report: Duration | None = None
    acknowledgement_after_immediate_report: Duration | None = None
    referral_answer: Duration | None = None
    majority_warning: Duration | None = None

    def rules(self) -> CountryRules:
        return CountryRules(**self.model_dump(exclude_none=True))


_RulesFile = RootModel[dict[CountryCode, _RulesEntry]]


def load_country_rules(path: str | Path) -> Mapping[str, CountryRules]:
    """Read a country-rules file: a JSON object from ISO country code to durations.

    For example `{"CR": {"report_after_identification": "PT48H"}, "UA": {"referral_answer":
    "P5D"}}`. Durations are ISO 8601; a field left out keeps its default, and a country left
    out has the defaults. The file replaces `RULES_BY_COUNTRY` as a whole. A file that cannot
    be read or is not valid is a one-line `ValueError` naming the file and the problem.
    """
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ValueError(f"country rules file {path}: cannot be read ({exc.strerror})") from None
    try:
        parsed = _RulesFile.model_validate_json(text)
    except ValidationError as exc:
        raise ValueError(f"country rules file {path}: {_first_problem(exc)}") from None
    return MappingProxyType({country: entry.rules() for country, entry in parsed.root.items()})


def _first_problem(exc: ValidationError) -> str:
    errors = exc.errors(include_input=False, include_url=False, include_context=False)
    first = errors[0]
    where = ".".join(str(part) for part in first["loc"])
    message = " ".join(str(first["msg"]).split()).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{where}: {message}{more}" if where else f"{message}{more}"


__all__ = [
    "DEFAULT_RULES",
    "RULES_BY_COUNTRY",
    "CountryRules",
    "Deadline",
    "DeadlineKind",
    "deadlines_for",
    "is_breached",
    "is_due",
    "load_country_rules",
    "rules_for",
]
