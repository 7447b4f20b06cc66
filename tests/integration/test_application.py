"""The application service through the real store adapter: once on SQLite, once on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta
from uuid import UUID, uuid4

import pytest

from adapters.store import build_application
from referral_core.application import ReferralApplication, case_id_for_opening
from referral_core.case import CaseEvent
from referral_core.errors import (
    CaseNotFoundError,
    IdempotencyConflictError,
    MissingLegalBasisError,
    VersionConflictError,
)
from referral_core.vocab import AgencyKind, Role
from tests.support.builders import (
    NGO,
    NOW,
    POLICE,
    SHELTER,
    MovableClock,
    actor,
    envelope,
    example,
)


def _open(app: ReferralApplication) -> UUID:
    result = app.open_case(
        event_type="ChildIdentified",
        payload=example("ChildIdentified"),
        envelope=envelope(actor(NGO)),
    )
    return result.case_id


def test_open_append_and_read_back(app: ReferralApplication) -> None:
    opened = app.open_case(
        event_type="ChildIdentified",
        payload=example("ChildIdentified"),
        envelope=envelope(actor(NGO)),
    )
    assert opened.version == 1
    assert opened.position is not None
    appended = app.append(
        opened.case_id,
        expected_version=1,
        event_type="ReportedToLawEnforcement",
        payload=example("ReportedToLawEnforcement", receiving_unit_agency_id=POLICE),
        envelope=envelope(actor(NGO)),
    )
    assert appended.version == 2
    assert appended.position is not None
    assert appended.position > opened.position

    case = app.get_case(opened.case_id)
    assert case.version == 2
    assert case.lead_agency_id == NGO
    assert case.stage == "reported"
    history = app.history(opened.case_id)
    assert [e.event_type for e in history] == ["ChildIdentified", "ReportedToLawEnforcement"]
    assert history[1].legal_basis == example("ReportedToLawEnforcement")["statutory_basis"]
    assert history[0].payload["given_name"] == "Mali"


def test_stale_version_is_a_conflict_and_changes_nothing(app: ReferralApplication) -> None:
    case_id = _open(app)
    app.append(
        case_id,
        expected_version=1,
        event_type="ServiceDelivered",
        payload=example("ServiceDelivered", provider_agency_id=NGO),
        envelope=envelope(actor(NGO)),
    )
    with pytest.raises(VersionConflictError) as raised:
        app.append(
            case_id,
            expected_version=1,
            event_type="ServiceDelivered",
            payload=example("ServiceDelivered", provider_agency_id=NGO),
            envelope=envelope(actor(NGO)),
        )
    assert (raised.value.expected, raised.value.actual) == (1, 2)
    assert app.get_case(case_id).version == 2


def test_idempotent_resend_creates_no_duplicate(app: ReferralApplication) -> None:
    case_id = _open(app)
    same = envelope(actor(NGO))
    payload = example("ServiceDelivered", provider_agency_id=NGO)
    first = app.append(
        case_id,
        expected_version=1,
        event_type="ServiceDelivered",
        payload=payload,
        envelope=same,
    )
    again = app.append(
        case_id,
        expected_version=1,
        event_type="ServiceDelivered",
        payload=payload,
        envelope=same,
    )
    assert (first.version, first.duplicate) == (2, False)
    assert (again.version, again.duplicate) == (2, True)
    assert len(app.history(case_id)) == 2
    with pytest.raises(IdempotencyConflictError):
        app.append(
            case_id,
            expected_version=2,
            event_type="ServiceDelivered",
            payload={**payload, "outcome": "completed"},
            envelope=same,
        )
    assert len(app.history(case_id)) == 2


def test_retried_opening_returns_the_same_case(app: ReferralApplication) -> None:
    opening = envelope(actor(NGO))
    first = app.open_case(
        event_type="ContactReceived", payload=example("ContactReceived"), envelope=opening
    )
    again = app.open_case(
        event_type="ContactReceived", payload=example("ContactReceived"), envelope=opening
    )
    assert first.case_id == again.case_id == case_id_for_opening(opening.event_id)
    assert again.duplicate
    assert len(app.history(first.case_id)) == 1


def test_refused_event_changes_nothing(app: ReferralApplication) -> None:
    case_id = _open(app)
    with pytest.raises(MissingLegalBasisError):
        app.append(
            case_id,
            expected_version=1,
            event_type="ReferralSent",
            payload=example("ReferralSent", to_agency_id=SHELTER),
            envelope=envelope(actor(NGO)),
        )
    assert app.get_case(case_id).version == 1
    assert app.recorder.max_notification_id() == 1


def test_unknown_case_is_not_found(app: ReferralApplication) -> None:
    with pytest.raises(CaseNotFoundError):
        app.get_case(uuid4())
    with pytest.raises(CaseNotFoundError):
        app.history(uuid4())
    with pytest.raises(CaseNotFoundError):
        app.append(
            uuid4(),
            expected_version=1,
            event_type="ServiceDelivered",
            payload=example("ServiceDelivered"),
            envelope=envelope(),
        )


def test_as_of_version_and_time(app: ReferralApplication, clock: MovableClock) -> None:
    cid = _open(app)
    clock.now = NOW + timedelta(hours=1)
    app.append(
        cid,
        expected_version=1,
        event_type="ReportedToLawEnforcement",
        payload=example("ReportedToLawEnforcement", receiving_unit_agency_id=POLICE),
        envelope=envelope(actor(NGO), occurred_at=NOW + timedelta(minutes=50)),
    )
    clock.now = NOW + timedelta(hours=2)
    app.append(
        cid,
        expected_version=2,
        event_type="ChildSheltered",
        payload=example("ChildSheltered", shelter_agency_id=SHELTER),
        envelope=envelope(actor(NGO), occurred_at=NOW + timedelta(minutes=100)),
    )
    assert app.case_as_of(cid, version=1).stage == "identified"
    assert app.case_as_of(cid, version=2).stage == "reported"
    assert app.case_as_of(cid, version=3).placement is not None
    at_90_minutes = app.case_as_of(cid, at=NOW + timedelta(minutes=90))
    assert at_90_minutes.version == 2
    assert at_90_minutes.placement is None
    assert app.case_as_of(cid, at=NOW).version == 1
    with pytest.raises(CaseNotFoundError):
        app.case_as_of(cid, at=NOW - timedelta(days=1))


def test_snapshotted_case_equals_replayed_case(app: ReferralApplication) -> None:
    cid = _open(app)
    for version in range(1, 121):
        app.append(
            cid,
            expected_version=version,
            event_type="ServiceDelivered",
            payload=example("ServiceDelivered", provider_agency_id=NGO),
            envelope=envelope(actor(NGO)),
        )
    assert app.snapshots is not None
    snapshots = list(app.snapshots.get(cid))
    assert [s.originator_version for s in snapshots] == [50, 100]
    loaded = app.get_case(cid)
    replayed = None
    for event in app.history(cid):
        assert isinstance(event, CaseEvent)
        replayed = event.mutate(replayed)
    assert replayed is not None
    assert loaded.version == replayed.version == 121
    assert vars(loaded).keys() == vars(replayed).keys()
    for key in vars(loaded):
        if key not in ("_pending_events", "_modified_on"):
            assert getattr(loaded, key) == getattr(replayed, key), key


def test_directory_is_history(app: ReferralApplication) -> None:
    from referral_core.directory import agency_id_for

    police = agency_id_for("dir-police")
    system = {"user_id": "system", "agency_id": "system", "role": "admin"}
    app.change_directory(
        lambda d: d.register_agency(police, AgencyKind.LAW_ENFORCEMENT, "UA", "Unit 1", system)
    )
    user = uuid4()
    app.change_directory(lambda d: d.add_user(user, police, Role.CASEWORKER, "Officer A", system))
    app.change_directory(lambda d: d.change_role(user, Role.SUPERVISOR, system))
    now = app.directory()
    assert now.users[str(user)]["role"] == "supervisor"
    before = app.directory(version=now.version - 1)
    assert before.users[str(user)]["role"] == "caseworker"


def test_directory_survives_a_restart(database_url: str) -> None:
    from referral_core.directory import agency_id_for

    system = {"user_id": "system", "agency_id": "system", "role": "admin"}
    first = build_application(database_url)
    first.change_directory(
        lambda d: d.register_agency(
            agency_id_for("restart"), AgencyKind.SHELTER, "TH", "Home A", system
        )
    )
    first.close()
    second = build_application(database_url)
    assert second.directory().agency(str(agency_id_for("restart")))["kind"] == "shelter"
    second.close()
