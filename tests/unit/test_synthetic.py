"""The synthetic data generator: deterministic, valid under the domain rules, varied, fictional."""

from __future__ import annotations

import random
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from uuid import UUID

import pytest

from referral_core import synthetic
from referral_core.application import ReferralApplication
from referral_core.case_events import CATALOG
from referral_core.directory import agency_id_for
from referral_core.vocab import AgencyKind, CaseStage, Role

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)
SEED = 2026
CASES = 50


def seeded(seed: int) -> random.Random:
    return random.Random(seed)  # noqa: S311 -- test workloads, not secrets


def new_app(clock: Any = None) -> ReferralApplication:
    return ReferralApplication(
        env={"PERSISTENCE_MODULE": "eventsourcing.popo"}, clock=clock or (lambda: NOW)
    )


def histories(app: ReferralApplication, case_ids: tuple[UUID, ...]) -> list[list[tuple[Any, ...]]]:
    """Everything the store says of each case, except when it was recorded."""
    return [
        [
            (
                e.event_type,
                e.originator_version,
                e.event_id,
                e.payload,
                e.occurred_at,
                e.actor,
                e.legal_basis,
                e.consent_ref,
                e.correlation_id,
            )
            for e in app.history(case_id)
        ]
        for case_id in case_ids
    ]


class Run:
    def __init__(self) -> None:
        self.app = new_app()
        self.seeded = synthetic.seed_directory(self.app)
        self.summary = synthetic.generate_cases(self.app, cases=CASES, seed=SEED)
        self.events = [e for case_id in self.summary.case_ids for e in self.app.history(case_id)]


@pytest.fixture(scope="module")
def run() -> Run:
    return Run()


# -- agencies and the directory ------------------------------------------------------------------


def test_every_agency_kind_and_all_three_countries_have_demo_agencies() -> None:
    assert {a.kind for a in synthetic.DEMO_AGENCIES} == set(AgencyKind)
    assert {a.country for a in synthetic.DEMO_AGENCIES} == {"CR", "TH", "UA"}
    assert {c.code for c in synthetic.DEMO_COUNTRIES} == {"CR", "TH", "UA"}
    for country in ("CR", "TH", "UA"):
        kinds = {a.kind for a in synthetic.DEMO_AGENCIES if a.country == country}
        assert {AgencyKind.HOTLINE, AgencyKind.LAW_ENFORCEMENT, AgencyKind.SHELTER} <= kinds


def test_agency_and_user_ids_are_stable_and_distinct() -> None:
    hotline = synthetic.demo_agency("ua-hotline")
    assert hotline.agency_id == agency_id_for("ua-hotline")
    assert hotline.kind == AgencyKind.HOTLINE
    assert synthetic.demo_agency_by_id(str(hotline.agency_id)) is hotline
    assert hotline.user(Role.SUPERVISOR).user_id == synthetic.demo_user_id(
        "ua-hotline", Role.SUPERVISOR
    )
    agency_ids = [a.agency_id for a in synthetic.DEMO_AGENCIES]
    user_ids = [u.user_id for a in synthetic.DEMO_AGENCIES for u in a.users]
    assert len(set(agency_ids)) == len(agency_ids)
    assert len(set(user_ids)) == len(user_ids)
    for agency in synthetic.DEMO_AGENCIES:
        roles = {u.role for u in agency.users}
        assert {Role.CASEWORKER, Role.SUPERVISOR} <= roles
        if agency.kind == AgencyKind.MINISTRY:
            assert Role.ADMIN in roles
        assert "(demo)" in agency.name


def test_seed_directory_registers_everything_once() -> None:
    app = new_app()
    users = sum(len(a.users) for a in synthetic.DEMO_AGENCIES)
    assert synthetic.seed_directory(app) == len(synthetic.DEMO_AGENCIES) + users
    directory = app.directory()
    version = directory.version
    for agency in synthetic.DEMO_AGENCIES:
        entry = directory.agency(str(agency.agency_id))
        assert (entry["kind"], entry["country"], entry["name"]) == (
            agency.kind.value,
            agency.country,
            agency.name,
        )
        for user in agency.users:
            assert directory.user(str(user.user_id))["role"] == user.role.value
    assert synthetic.seed_directory(app) == 0
    assert app.directory().version == version


# -- determinism ---------------------------------------------------------------------------------


def test_the_same_seed_records_identical_histories(run: Run) -> None:
    again = new_app()
    summary = synthetic.generate_cases(again, cases=CASES, seed=SEED)
    assert summary.case_ids == run.summary.case_ids
    assert histories(again, summary.case_ids) == histories(run.app, run.summary.case_ids)
    assert summary.by_stage == run.summary.by_stage


def test_another_seed_records_other_histories(run: Run) -> None:
    other = new_app()
    summary = synthetic.generate_cases(other, cases=CASES, seed=SEED + 1)
    assert set(summary.case_ids).isdisjoint(run.summary.case_ids)
    ours = [[(t, p) for t, _, _, p, *_ in h] for h in histories(run.app, run.summary.case_ids)]
    theirs = [[(t, p) for t, _, _, p, *_ in h] for h in histories(other, summary.case_ids)]
    assert ours != theirs


def test_a_case_does_not_depend_on_how_many_cases_are_planned() -> None:
    few = synthetic.plan_cases(cases=6, seed=SEED, now=NOW)
    many = synthetic.plan_cases(cases=12, seed=SEED, now=NOW)
    assert few == many[:6]


def test_the_append_path_records_the_same_histories_as_the_fast_path() -> None:
    fast, slow = new_app(), new_app()
    one = synthetic.generate_cases(fast, cases=8, seed=7)
    two = synthetic.generate_cases(slow, cases=8, seed=7, via_append=True)
    assert one == two
    assert histories(fast, one.case_ids) == histories(slow, two.case_ids)


def test_a_second_identical_run_records_nothing_new() -> None:
    app = new_app()
    first = synthetic.generate_cases(app, cases=6, seed=3)
    assert first.recorded == first.events > 0
    again = synthetic.generate_cases(app, cases=6, seed=3)
    assert again.recorded == 0
    assert sum(len(app.history(c)) for c in first.case_ids) == first.events


# -- what a run holds ----------------------------------------------------------------------------


def test_a_run_covers_every_event_type(run: Run) -> None:
    # Erasure destroys a key in the store as well; the demo never erases.
    case_work = set(CATALOG) - {"CaseErased"}
    assert set(run.summary.by_event_type) == case_work
    assert {e.event_type for e in run.events} == case_work
    assert run.summary.events == len(run.events) == sum(run.summary.by_event_type.values())


def test_a_run_mixes_stages_and_countries(run: Run) -> None:
    stages = run.summary.by_stage
    assert sum(stages.values()) == CASES
    assert len(stages) >= 3
    assert stages.get(CaseStage.CLOSED, 0) > 0
    assert stages.get(CaseStage.CONTACT, 0) > 0
    assert stages.get(CaseStage.IN_CARE, 0) + stages.get(CaseStage.REINTEGRATION, 0) > 0
    assert set(run.summary.by_country) == {"CR", "TH", "UA"}
    assert set(run.summary.open_cases) == {
        c for c in run.summary.case_ids if not run.app.get_case(c).closed
    }


def test_no_event_happens_after_now_and_time_moves_forward(run: Run) -> None:
    start = NOW - synthetic.DEFAULT_HISTORY
    for case_id in run.summary.case_ids:
        times = [e.occurred_at for e in run.app.history(case_id)]
        assert times == sorted(times)
        assert start <= times[0]
        assert times[-1] <= NOW


def test_names_come_from_the_invented_lists(run: Run) -> None:
    given, family = synthetic.INVENTED_GIVEN_NAMES, synthetic.INVENTED_FAMILY_NAMES
    children = [e.payload for e in run.events if e.event_type == "ChildIdentified"]
    assert children
    for child in children:
        assert child["given_name"] in given
        assert child["family_name"] in family
        assert child["notes"] == synthetic.FICTION_NOTE
    people = [
        e.payload[key]
        for e in run.events
        for key in ("caller_name", "guardian_name", "family_contact")
        if e.payload.get(key)
    ]
    assert people
    for person in people:
        first, last = person.split(" ")
        assert first in given
        assert last in family


def test_actors_are_demo_users_of_the_case_country(run: Run) -> None:
    by_id = {str(a.agency_id): a for a in synthetic.DEMO_AGENCIES}
    for case_id in run.summary.case_ids:
        countries = set()
        for e in run.app.history(case_id):
            agency = by_id[e.actor["agency_id"]]
            countries.add(agency.country)
            assert e.actor["user_id"] == str(
                synthetic.demo_user_id(agency.slug, Role(e.actor["role"]))
            )
            if e.event_type == "ReportAcknowledged":
                assert agency.kind == AgencyKind.LAW_ENFORCEMENT
            if e.event_type in ("ReintegrationPlanAgreed", "CaseClosed", "EntryCorrected"):
                assert e.actor["role"] == Role.SUPERVISOR
            if e.event_type == "ContactReceived":
                assert agency.kind == AgencyKind.HOTLINE
        assert len(countries) == 1


def test_some_deadlines_are_pending_or_missed(run: Run) -> None:
    open_cases = [run.app.get_case(c) for c in run.summary.open_cases]
    unacknowledged = [
        c
        for c in open_cases
        if any(r["acknowledged_at"] is None and not r["voided"] for r in c.reports.values())
    ]
    overdue_referrals = [
        r
        for c in open_cases
        for r in c.referrals.values()
        if r["status"] == "pending" and datetime.fromisoformat(r["respond_by"]) < NOW
    ]
    reviews = [date.fromisoformat(c.plan_review_date) for c in open_cases if c.plan_review_date]
    unreported = [c for c in open_cases if c.identified_at and not c.reports]
    assert unacknowledged
    assert overdue_referrals
    assert unreported
    assert any(d < NOW.date() for d in reviews)
    assert any(d >= NOW.date() for d in reviews)


def test_the_clock_can_follow_the_recording_times() -> None:
    class Clock:
        now = NOW - timedelta(days=600)

        def __call__(self) -> datetime:
            return self.now

        def advance(self, to: datetime) -> None:
            assert to >= self.now
            self.now = to

    clock = Clock()
    app = new_app(clock)
    summary = synthetic.generate_cases(
        app, cases=10, seed=11, now=NOW, clock_advance=clock.advance
    )
    events = [e for c in summary.case_ids for e in app.history(c)]
    assert len(events) == summary.events
    assert all(e.occurred_at <= e.recorded_at <= NOW for e in events)
    assert len({e.recorded_at for e in events}) > len(events) // 2


def test_plans_refuse_naive_or_empty_windows() -> None:
    with pytest.raises(ValueError, match="time zone"):
        synthetic.plan_case(0, seed=1, start=datetime(2026, 1, 1), now=NOW)  # noqa: DTZ001
    with pytest.raises(ValueError, match="before now"):
        synthetic.plan_case(0, seed=1, start=NOW, now=NOW)


def test_the_summary_describes_the_run(run: Run) -> None:
    text = run.summary.describe()
    assert f"{CASES} synthetic cases" in text
    assert f"{run.summary.events} events" in text
    assert "by stage" in text
    assert "UA" in text


# -- one more event, for benchmarks --------------------------------------------------------------


def test_repeatable_events_append_again_and_again() -> None:
    app = new_app()
    summary = synthetic.generate_cases(app, cases=12, seed=5)
    open_cases = list(summary.open_cases.items())
    assert open_cases
    rng = seeded(99)
    kinds: Counter[str] = Counter()
    for i in range(60):
        case_id, lead = open_cases[i % len(open_cases)]
        event_type, payload, envelope = synthetic.repeatable_event(rng, lead, NOW)
        version = app.get_case(case_id).version
        result = app.append(
            case_id,
            expected_version=version,
            event_type=event_type,
            payload=payload,
            envelope=envelope,
        )
        assert (result.version, result.duplicate) == (version + 1, False)
        assert envelope.actor.agency_id == lead
        kinds[event_type] += 1
    assert set(kinds) == {"ServiceDelivered", "CaseConferenceHeld"}


def test_repeatable_events_are_deterministic_and_work_for_any_agency() -> None:
    one = synthetic.repeatable_event(seeded(1), agency_id_for("ua-ngo"), NOW)
    two = synthetic.repeatable_event(seeded(1), agency_id_for("ua-ngo"), NOW)
    assert one == two
    stranger = str(agency_id_for("not-a-demo-agency"))
    event = synthetic.repeatable_event(seeded(2), stranger, NOW)
    assert event.envelope.actor.agency_id == stranger
    assert event.envelope.occurred_at <= NOW
