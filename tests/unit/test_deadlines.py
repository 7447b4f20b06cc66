"""Deadlines derived from case state: each kind appears, is owed by the right agency, falls due
at the right time, and disappears when the fact that discharges it is recorded. No database."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import uuid4

import pytest

from referral_core.case import Case
from referral_core.commands import record_event
from referral_core.deadlines import (
    DEFAULT_RULES,
    RULES_BY_COUNTRY,
    CountryRules,
    Deadline,
    DeadlineKind,
    deadlines_for,
    eighteenth_birthday,
    is_breached,
    load_country_rules,
    majority_due_at,
    rules_for,
)
from tests.support.builders import NGO, NOW, POLICE, SHELTER, actor, envelope, example

K = DeadlineKind
STATUTE = "Child Protection Act s.20"
IDENTIFIED_AT = NOW - timedelta(hours=10)
NO_INDICATORS: dict[str, Any] = {"indicators": [], "exploitation_types": []}


class Story:
    """A case recorded event by event through `record_event`, each at a chosen time."""

    def __init__(self, opening: str = "ChildIdentified", **overrides: Any) -> None:
        self.case_id = uuid4()
        self.case: Case | None = None
        self.opening_id = self.record(opening, at=IDENTIFIED_AT, **overrides)

    def record(
        self,
        event_type: str,
        *,
        who: str = NGO,
        at: datetime | None = None,
        legal_basis: str | None = None,
        **overrides: Any,
    ) -> str:
        decision = record_event(
            self.case,
            case_id=self.case_id,
            event_type=event_type,
            payload=example(event_type, **overrides),
            envelope=envelope(actor(who), occurred_at=at, legal_basis=legal_basis),
            now=NOW,
        )
        self.case = decision.case
        return decision.event_id

    @property
    def current(self) -> Case:
        assert self.case is not None
        return self.case

    def deadlines(self, rules: CountryRules = DEFAULT_RULES) -> list[Deadline]:
        return deadlines_for(self.current, rules)

    def only(self, kind: DeadlineKind, rules: CountryRules = DEFAULT_RULES) -> Deadline:
        found = [d for d in self.deadlines(rules) if d.kind is kind]
        assert len(found) == 1, found
        return found[0]

    def kinds(self) -> list[DeadlineKind]:
        return [d.kind for d in self.deadlines()]

    def report(self, urgency: str = "routine", at: datetime | None = None) -> str:
        return self.record(
            "ReportedToLawEnforcement", receiving_unit_agency_id=POLICE, urgency=urgency, at=at
        )

    def refer(self, **overrides: Any) -> str:
        return self.record("ReferralSent", legal_basis=STATUTE, to_agency_id=SHELTER, **overrides)


def expected(
    kind: DeadlineKind, due_at: datetime, agency_id: str, subject: str | None, story: Story
) -> Deadline:
    return Deadline(kind, due_at, agency_id, subject, str(story.case_id))


# -- report to law enforcement ------------------------------------------------------------------


def test_identified_trafficking_case_owes_a_report_within_24_hours() -> None:
    story = Story()
    assert story.deadlines() == [
        expected(
            K.REPORT_TO_LAW_ENFORCEMENT,
            IDENTIFIED_AT + timedelta(hours=24),
            NGO,
            story.opening_id,
            story,
        )
    ]


def test_no_report_is_owed_without_indicators_or_identification() -> None:
    assert Story(**NO_INDICATORS).deadlines() == []
    assert Story("ContactReceived").deadlines() == []


def test_an_indicator_recorded_later_makes_the_report_owed() -> None:
    story = Story(**NO_INDICATORS)
    story.record("ExploitationEpisodeRecorded")
    assert story.kinds() == [K.REPORT_TO_LAW_ENFORCEMENT]


def test_a_decision_that_the_child_is_not_a_victim_discharges_it() -> None:
    story = Story()
    story.record("IdentificationDecisionMade", decision="not_a_victim", exploitation_types=[])
    assert story.deadlines() == []


def test_the_report_discharges_it_and_voiding_the_report_brings_it_back() -> None:
    story = Story()
    report_id = story.report()
    assert K.REPORT_TO_LAW_ENFORCEMENT not in story.kinds()
    story.record("EntryVoided", target_event_id=report_id, reason="wrong unit")
    assert story.kinds() == [K.REPORT_TO_LAW_ENFORCEMENT]


# -- acknowledgement ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("urgency", "within"),
    [
        ("routine", timedelta(hours=48)),
        ("urgent", timedelta(hours=4)),
        ("immediate", timedelta(hours=1)),
    ],
)
def test_each_report_is_owed_an_acknowledgement_by_its_unit(
    urgency: str, within: timedelta
) -> None:
    story = Story()
    reported_at = NOW - timedelta(hours=2)
    report_id = story.report(urgency, at=reported_at)
    assert story.deadlines() == [
        expected(K.REPORT_ACKNOWLEDGEMENT, reported_at + within, POLICE, report_id, story)
    ]


def test_acknowledging_the_report_discharges_it() -> None:
    story = Story()
    report_id = story.report()
    story.record("ReportAcknowledged", who=POLICE, report_event_id=report_id)
    assert story.deadlines() == []


# -- referral answers ---------------------------------------------------------------------------


def test_a_pending_referral_is_owed_an_answer_by_its_receiver() -> None:
    story = Story(**NO_INDICATORS)
    sent_at = NOW - timedelta(hours=3)
    referral_id = story.refer(respond_by=None, at=sent_at)
    assert story.deadlines() == [
        expected(K.REFERRAL_ANSWER, sent_at + timedelta(hours=72), SHELTER, referral_id, story)
    ]


def test_respond_by_sets_the_answer_due_time_and_a_correction_moves_it() -> None:
    story = Story(**NO_INDICATORS)
    referral_id = story.refer(respond_by="2026-12-03T12:00:00Z")
    assert story.only(K.REFERRAL_ANSWER).due_at == datetime(2026, 12, 3, 12, tzinfo=UTC)
    story.record(
        "EntryCorrected",
        target_event_id=referral_id,
        reason="date typed wrongly",
        corrected_values={"respond_by": "2026-12-05T09:00:00+02:00"},
    )
    assert story.only(K.REFERRAL_ANSWER).due_at == datetime(2026, 12, 5, 7, tzinfo=UTC)


@pytest.mark.parametrize(
    ("answer", "who"),
    [("ReferralAccepted", SHELTER), ("ReferralDeclined", SHELTER), ("ReferralRevoked", NGO)],
)
def test_any_answer_discharges_the_referral(answer: str, who: str) -> None:
    story = Story(**NO_INDICATORS)
    referral_id = story.refer()
    story.record(answer, who=who, referral_event_id=referral_id)
    assert story.deadlines() == []


# -- reviews ------------------------------------------------------------------------------------


def test_the_plan_review_falls_due_when_its_day_ends_and_a_review_moves_it() -> None:
    story = Story(**NO_INDICATORS)
    plan_id = story.record("ReintegrationPlanAgreed", review_date="2027-02-01")
    assert story.deadlines() == [
        expected(K.PLAN_REVIEW, datetime(2027, 2, 2, tzinfo=UTC), NGO, plan_id, story)
    ]
    review_id = story.record("PlanReviewed", next_review_date="2027-05-01")
    assert story.deadlines() == [
        expected(K.PLAN_REVIEW, datetime(2027, 5, 2, tzinfo=UTC), NGO, review_id, story)
    ]
    story.record("PlanReviewed", next_review_date=None)
    assert story.deadlines() == []


def test_the_best_interests_review_is_owed_by_the_lead() -> None:
    story = Story(**NO_INDICATORS)
    determined = story.record("BestInterestsDetermined", review_date="2027-03-01")
    assert story.deadlines() == [
        expected(K.BEST_INTERESTS_REVIEW, datetime(2027, 3, 2, tzinfo=UTC), NGO, determined, story)
    ]


# -- majority -----------------------------------------------------------------------------------


def test_majority_is_due_in_the_month_of_the_30_day_warning() -> None:
    # 18 on 2027-01-15; 30 days before is 2026-12-16; due on the first of that month.
    story = Story(**NO_INDICATORS, birth_date="2009-01-15", age_years=17)
    assert story.deadlines() == [
        expected(K.MAJORITY, datetime(2026, 12, 1, tzinfo=UTC), NGO, None, story)
    ]


def test_majority_is_never_later_than_the_warning_and_hides_the_day() -> None:
    rules = CountryRules()
    dues = set()
    for day in range(1, 31):
        born = date(2009, 3, day)
        due = majority_due_at(born, rules)
        assert due.date() <= eighteenth_birthday(born) - rules.majority_warning
        assert (due.day, due.hour, due.minute, due.tzinfo) == (1, 0, 0, UTC)
        dues.add(due)
    # thirty birthdays share two due dates: the birth day cannot be read back from one
    assert dues == {datetime(2027, 1, 1, tzinfo=UTC), datetime(2027, 2, 1, tzinfo=UTC)}


def test_a_leap_day_child_comes_of_age_on_28_february() -> None:
    assert eighteenth_birthday(date(2008, 2, 29)) == date(2026, 2, 28)
    assert eighteenth_birthday("2009-01-15") == date(2027, 1, 15)


def test_without_a_birth_date_there_is_no_majority_deadline() -> None:
    assert Story(**NO_INDICATORS, age_years=17).deadlines() == []


def test_consent_to_continue_as_an_adult_discharges_majority() -> None:
    story = Story(**NO_INDICATORS, birth_date="2009-01-15", age_years=17)
    consent = story.record(
        "ConsentRecorded", purpose="continuation_as_adult", given_by="child", scope=["services"]
    )
    assert story.deadlines() == []
    story.record("ConsentWithdrawn", consent_event_id=consent)
    assert story.kinds() == [K.MAJORITY]


# -- closed cases, ordering ---------------------------------------------------------------------


def test_a_closed_case_owes_nothing_until_reopened() -> None:
    story = Story(birth_date="2009-01-15", age_years=17)
    story.report()
    story.refer()
    story.record("ReintegrationPlanAgreed", review_date="2027-02-01")
    assert len(story.deadlines()) == 4
    story.record("CaseClosed")
    assert story.deadlines() == []
    story.record("CaseReopened")
    assert len(story.deadlines()) == 4


def test_deadlines_come_soonest_first() -> None:
    story = Story(birth_date="2009-01-15", age_years=17)
    story.refer(respond_by="2026-11-30T08:00:00Z")
    story.record("ReintegrationPlanAgreed", review_date="2027-02-01")
    due = [d.due_at for d in story.deadlines()]
    assert due == sorted(due)
    assert story.kinds() == [
        K.REPORT_TO_LAW_ENFORCEMENT,
        K.REFERRAL_ANSWER,
        K.MAJORITY,
        K.PLAN_REVIEW,
    ]


# -- breaches -----------------------------------------------------------------------------------


def test_a_deadline_is_breached_once_the_clock_reaches_it() -> None:
    deadline = Story().only(K.REPORT_TO_LAW_ENFORCEMENT)
    assert not is_breached(deadline, deadline.due_at - timedelta(seconds=1))
    assert is_breached(deadline, deadline.due_at)
    assert is_breached(deadline, deadline.due_at + timedelta(days=3))


# -- country rules ------------------------------------------------------------------------------


def test_country_rules_change_the_due_times() -> None:
    costa_rica = Story(country="CR")
    ukraine = Story(country="UA")
    cr = costa_rica.only(K.REPORT_TO_LAW_ENFORCEMENT, rules_for("CR"))
    ua = ukraine.only(K.REPORT_TO_LAW_ENFORCEMENT, rules_for("UA"))
    assert cr.due_at == IDENTIFIED_AT + timedelta(hours=48)
    assert ua.due_at == IDENTIFIED_AT + timedelta(hours=24)
    strict = CountryRules(report_after_identification=timedelta(hours=6))
    assert ukraine.only(K.REPORT_TO_LAW_ENFORCEMENT, strict).due_at == IDENTIFIED_AT + timedelta(
        hours=6
    )


def test_unknown_or_missing_countries_get_the_defaults() -> None:
    assert rules_for(None) == DEFAULT_RULES
    assert rules_for("FR") == DEFAULT_RULES
    assert set(RULES_BY_COUNTRY) == {"CR", "TH", "UA"}


def test_a_rules_file_sets_durations_and_keeps_defaults(tmp_path: Path) -> None:
    path = tmp_path / "rules.json"
    path.write_text(
        '{"CR": {"report_after_identification": "PT48H", "referral_answer": "P5D"}, "TH": {}}'
    )
    rules = load_country_rules(path)
    assert set(rules) == {"CR", "TH"}
    assert rules["CR"].report_after_identification == timedelta(hours=48)
    assert rules["CR"].referral_answer == timedelta(days=5)
    assert rules["CR"].majority_warning == DEFAULT_RULES.majority_warning
    assert rules["TH"] == DEFAULT_RULES
    assert rules_for("UA", rules) == DEFAULT_RULES


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ("not json", "Invalid JSON"),
        ("[]", "object"),
        ('{"cr": {}}', "cr"),
        ('{"CR": {"report_within": "PT1H"}}', "CR.report_within"),
        ('{"CR": {"referral_answer": 3600}}', "ISO 8601"),
        ('{"CR": {"referral_answer": "PT0S"}}', "positive"),
        ('{"CR": {"referral_answer": "soon"}}', "CR.referral_answer"),
    ],
)
def test_a_bad_rules_file_is_a_one_line_error_naming_it(
    tmp_path: Path, content: str, problem: str
) -> None:
    path = tmp_path / "bad-rules.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=re.escape(str(path))) as caught:
        load_country_rules(path)
    message = str(caught.value)
    assert problem in message
    assert "\n" not in message


def test_a_missing_rules_file_is_a_one_line_error_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "absent.json"
    with pytest.raises(ValueError, match=re.escape(f"{path}: cannot be read")):
        load_country_rules(path)
