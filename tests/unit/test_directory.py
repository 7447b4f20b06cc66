"""The directory of agencies, users and tokens, alone and kept by the application on POPO."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any
from uuid import UUID, uuid4

import pytest

from referral_core.application import ReferralApplication
from referral_core.directory import DIRECTORY_ID, Directory, agency_id_for
from referral_core.errors import (
    ConflictError,
    DirectoryEntryNotFoundError,
    InconsistentStateError,
    InvalidCommandError,
    ReferralError,
)
from referral_core.vocab import AgencyKind, Role
from tests.support.builders import NOW

ADMIN = {"user_id": "admin-1", "agency_id": "ministry", "role": "admin"}
LA_STRADA = agency_id_for("la-strada-ua")
POLICE_UNIT = agency_id_for("police-unit-ua")
EXPIRES = NOW + timedelta(days=30)


def refused(error: type[ReferralError], directory: Directory, command: Any) -> None:
    """Assert that exactly `error` is raised and that nothing was recorded."""
    version = directory.version
    pending = len(directory.pending_events)
    with pytest.raises(error) as caught:
        command()
    assert type(caught.value) is error, f"{type(caught.value).__name__}: {caught.value}"
    assert directory.version == version
    assert len(directory.pending_events) == pending


@pytest.fixture
def directory() -> Directory:
    d = Directory.start()
    d.register_agency(LA_STRADA, AgencyKind.NGO, "UA", "La Strada Ukraine", ADMIN)
    return d


def _user(directory: Directory, role: Role = Role.CASEWORKER) -> UUID:
    user_id = uuid4()
    directory.add_user(user_id, LA_STRADA, role, "Olena Synthetic", ADMIN)
    return user_id


# -- starting and agencies -----------------------------------------------------------------------


def test_start_creates_the_empty_directory() -> None:
    d = Directory.start()
    assert d.id == DIRECTORY_ID
    assert d.version == 1
    assert d.agencies == {}
    assert d.users == {}
    assert d.tokens == {}
    [started] = d.pending_events
    assert type(started).__name__ == "Started"


def test_agency_ids_are_stable() -> None:
    assert agency_id_for("la-strada-ua") == LA_STRADA
    assert agency_id_for("la-strada-md") != LA_STRADA


def test_register_agency(directory: Directory) -> None:
    assert directory.agency(str(LA_STRADA)) == {
        "agency_id": str(LA_STRADA),
        "kind": "ngo",
        "country": "UA",
        "name": "La Strada Ukraine",
    }
    assert directory.version == 2


@pytest.mark.parametrize(
    "country", ["ua", "Ua", "UKR", "U", "", "U1", "12", "ÄÖ", "ÅB", "U\uff21", "UA\n", " UA"]
)
def test_agency_with_a_bad_country_code_is_refused(directory: Directory, country: str) -> None:
    refused(
        InvalidCommandError,
        directory,
        lambda: directory.register_agency(
            POLICE_UNIT, AgencyKind.LAW_ENFORCEMENT, country, "Police", ADMIN
        ),
    )
    assert str(POLICE_UNIT) not in directory.agencies


def test_agency_is_registered_once(directory: Directory) -> None:
    refused(
        InconsistentStateError,
        directory,
        lambda: directory.register_agency(LA_STRADA, AgencyKind.NGO, "UA", "Again", ADMIN),
    )
    assert directory.agency(str(LA_STRADA))["name"] == "La Strada Ukraine"


@pytest.mark.parametrize(
    "name",
    [
        "x" * 201,
        "",
        "   ",
        "Police\nUnit",
        "Police\tUnit",
        "Police\x00Unit",
        "\x1b[31mred",
        "Police\x7fUnit",
        "Police\x85Unit",
        "Police\u202eUnit",
    ],
    ids=["201-chars", "empty", "blank", "newline", "tab", "nul", "escape", "del", "nel", "rlo"],
)
def test_agency_with_a_bad_name_is_refused(directory: Directory, name: str) -> None:
    refused(
        InvalidCommandError,
        directory,
        lambda: directory.register_agency(
            POLICE_UNIT, AgencyKind.LAW_ENFORCEMENT, "UA", name, ADMIN
        ),
    )


def test_agency_name_is_trimmed_and_may_have_200_characters(directory: Directory) -> None:
    directory.register_agency(POLICE_UNIT, AgencyKind.LAW_ENFORCEMENT, "UA", "  Unit 7  ", ADMIN)
    assert directory.agency(str(POLICE_UNIT))["name"] == "Unit 7"
    other = agency_id_for("long-name")
    directory.register_agency(other, AgencyKind.SHELTER, "TH", "n" * 200, ADMIN)
    assert directory.agency(str(other))["name"] == "n" * 200


def test_unknown_agency_is_not_found(directory: Directory) -> None:
    with pytest.raises(DirectoryEntryNotFoundError):
        directory.agency(str(POLICE_UNIT))


# -- users ---------------------------------------------------------------------------------------


def test_add_user(directory: Directory) -> None:
    user_id = _user(directory)
    assert directory.user(str(user_id)) == {
        "user_id": str(user_id),
        "agency_id": str(LA_STRADA),
        "role": "caseworker",
        "display_name": "Olena Synthetic",
        "active": True,
    }


def test_user_of_an_unknown_agency_is_refused(directory: Directory) -> None:
    user_id = uuid4()
    refused(
        DirectoryEntryNotFoundError,
        directory,
        lambda: directory.add_user(user_id, POLICE_UNIT, Role.CASEWORKER, "Taras", ADMIN),
    )
    assert str(user_id) not in directory.users


def test_user_is_added_once(directory: Directory) -> None:
    user_id = _user(directory)
    refused(
        InconsistentStateError,
        directory,
        lambda: directory.add_user(user_id, LA_STRADA, Role.ADMIN, "Other", ADMIN),
    )
    assert directory.user(str(user_id))["role"] == "caseworker"


@pytest.mark.parametrize("name", ["", "n" * 201, "line\nbreak"])
def test_user_with_a_bad_display_name_is_refused(directory: Directory, name: str) -> None:
    refused(
        InvalidCommandError,
        directory,
        lambda: directory.add_user(uuid4(), LA_STRADA, Role.CASEWORKER, name, ADMIN),
    )


def test_change_role(directory: Directory) -> None:
    user_id = _user(directory)
    directory.change_role(user_id, Role.SUPERVISOR, ADMIN)
    assert directory.user(str(user_id))["role"] == "supervisor"
    refused(
        InconsistentStateError,
        directory,
        lambda: directory.change_role(user_id, Role.SUPERVISOR, ADMIN),
    )


def test_role_of_a_deactivated_user_is_not_changed(directory: Directory) -> None:
    user_id = _user(directory)
    directory.deactivate_user(user_id, "left the agency", ADMIN)
    refused(
        InconsistentStateError,
        directory,
        lambda: directory.change_role(user_id, Role.ADMIN, ADMIN),
    )
    assert directory.user(str(user_id))["role"] == "caseworker"


def test_role_of_an_unknown_user_is_not_changed(directory: Directory) -> None:
    refused(
        DirectoryEntryNotFoundError,
        directory,
        lambda: directory.change_role(uuid4(), Role.ADMIN, ADMIN),
    )


def test_deactivation_revokes_only_that_users_tokens(directory: Directory) -> None:
    leaving = _user(directory)
    staying = _user(directory)
    first, second, kept = uuid4(), uuid4(), uuid4()
    directory.issue_token(first, leaving, "hash-1", EXPIRES, ADMIN)
    directory.issue_token(second, leaving, "hash-2", EXPIRES, ADMIN)
    directory.issue_token(kept, staying, "hash-3", EXPIRES, ADMIN)

    directory.deactivate_user(leaving, "left the agency", ADMIN)

    assert directory.user(str(leaving))["active"] is False
    assert directory.user(str(staying))["active"] is True
    assert directory.tokens[str(first)]["revoked"] is True
    assert directory.tokens[str(second)]["revoked"] is True
    assert directory.tokens[str(kept)]["revoked"] is False


def test_user_is_deactivated_once(directory: Directory) -> None:
    user_id = _user(directory)
    directory.deactivate_user(user_id, "left", ADMIN)
    refused(
        InconsistentStateError,
        directory,
        lambda: directory.deactivate_user(user_id, "left", ADMIN),
    )


def test_deactivation_needs_a_printable_reason(directory: Directory) -> None:
    user_id = _user(directory)
    refused(
        InvalidCommandError,
        directory,
        lambda: directory.deactivate_user(user_id, "\n", ADMIN),
    )
    assert directory.user(str(user_id))["active"] is True


def test_unknown_user_is_not_deactivated(directory: Directory) -> None:
    refused(
        DirectoryEntryNotFoundError,
        directory,
        lambda: directory.deactivate_user(uuid4(), "left", ADMIN),
    )


# -- tokens --------------------------------------------------------------------------------------


def test_issue_token_and_find_it_by_hash(directory: Directory) -> None:
    user_id = _user(directory)
    token_id = uuid4()
    directory.issue_token(token_id, user_id, "sha256:abc", EXPIRES, ADMIN)
    assert directory.token_by_hash("sha256:abc") == {
        "token_id": str(token_id),
        "user_id": str(user_id),
        "expires_at": EXPIRES.isoformat(),
        "revoked": False,
    }
    assert directory.token_by_hash("sha256:abd") is None


def test_token_record_holds_no_secret(directory: Directory) -> None:
    user_id = _user(directory)
    token_id = uuid4()
    directory.issue_token(token_id, user_id, "sha256:abc", EXPIRES, ADMIN)
    assert "sha256:abc" not in str(directory.tokens)


def test_token_hash_collision_is_refused(directory: Directory) -> None:
    user_id = _user(directory)
    directory.issue_token(uuid4(), user_id, "sha256:abc", EXPIRES, ADMIN)
    refused(
        InconsistentStateError,
        directory,
        lambda: directory.issue_token(uuid4(), user_id, "sha256:abc", EXPIRES, ADMIN),
    )


def test_no_token_for_a_deactivated_or_unknown_user(directory: Directory) -> None:
    user_id = _user(directory)
    directory.deactivate_user(user_id, "left", ADMIN)
    refused(
        InconsistentStateError,
        directory,
        lambda: directory.issue_token(uuid4(), user_id, "h", EXPIRES, ADMIN),
    )
    refused(
        DirectoryEntryNotFoundError,
        directory,
        lambda: directory.issue_token(uuid4(), uuid4(), "h", EXPIRES, ADMIN),
    )


def test_revoke_token(directory: Directory) -> None:
    user_id = _user(directory)
    token_id = uuid4()
    directory.issue_token(token_id, user_id, "h", EXPIRES, ADMIN)
    directory.revoke_token(token_id, "lost laptop", ADMIN)
    token = directory.token_by_hash("h")
    assert token is not None
    assert token["revoked"] is True
    refused(
        InconsistentStateError,
        directory,
        lambda: directory.revoke_token(token_id, "again", ADMIN),
    )
    refused(
        DirectoryEntryNotFoundError,
        directory,
        lambda: directory.revoke_token(uuid4(), "lost", ADMIN),
    )


def test_directory_events_carry_the_actor(directory: Directory) -> None:
    _user(directory)
    for event in directory.pending_events[1:]:
        assert vars(event)["actor"] == ADMIN


# -- kept by the application ---------------------------------------------------------------------


@pytest.fixture
def app() -> Iterator[ReferralApplication]:
    application = ReferralApplication(env={"PERSISTENCE_MODULE": "eventsourcing.popo"})
    yield application
    application.close()


def test_directory_of_a_new_application_is_empty_and_unsaved(app: ReferralApplication) -> None:
    d = app.directory()
    assert d.version == 1
    assert d.agencies == {}
    assert app.directory(version=1).agencies == {}
    assert list(app.events.get(DIRECTORY_ID)) == []


def test_change_directory_persists(app: ReferralApplication) -> None:
    def register(d: Directory) -> str:
        d.register_agency(LA_STRADA, AgencyKind.NGO, "UA", "La Strada", ADMIN)
        return "registered"

    assert app.change_directory(register) == "registered"
    stored = app.directory()
    assert stored.version == 2
    assert stored.agency(str(LA_STRADA))["name"] == "La Strada"
    assert [type(e).__name__ for e in app.events.get(DIRECTORY_ID)] == [
        "Started",
        "AgencyRegistered",
    ]


def test_refused_change_persists_nothing(app: ReferralApplication) -> None:
    app.change_directory(lambda d: d.register_agency(LA_STRADA, AgencyKind.NGO, "UA", "A", ADMIN))

    def register_twice(d: Directory) -> None:
        d.register_agency(POLICE_UNIT, AgencyKind.LAW_ENFORCEMENT, "UA", "Unit", ADMIN)
        d.register_agency(LA_STRADA, AgencyKind.NGO, "UA", "Again", ADMIN)

    with pytest.raises(InconsistentStateError):
        app.change_directory(register_twice)
    stored = app.directory()
    assert stored.version == 2
    assert str(POLICE_UNIT) not in stored.agencies


def test_change_directory_retries_after_a_concurrent_writer(app: ReferralApplication) -> None:
    app.change_directory(lambda d: d.register_agency(LA_STRADA, AgencyKind.NGO, "UA", "A", ADMIN))
    attempts: list[int] = []

    def racing(d: Directory) -> int:
        attempts.append(d.version)
        if len(attempts) == 1:
            app.change_directory(
                lambda other: other.register_agency(
                    POLICE_UNIT, AgencyKind.LAW_ENFORCEMENT, "UA", "Unit", ADMIN
                )
            )
        d.register_agency(agency_id_for("shelter"), AgencyKind.SHELTER, "UA", "Shelter", ADMIN)
        return len(attempts)

    assert app.change_directory(racing) == 2
    assert attempts == [2, 3]
    stored = app.directory()
    assert stored.version == 4
    assert set(stored.agencies) == {
        str(LA_STRADA),
        str(POLICE_UNIT),
        str(agency_id_for("shelter")),
    }


def test_change_directory_gives_up_when_always_beaten(app: ReferralApplication) -> None:
    counter = iter(range(100))

    def always_beaten(d: Directory) -> None:
        app.change_directory(
            lambda other: other.register_agency(
                agency_id_for(f"rival-{next(counter)}"), AgencyKind.NGO, "UA", "Rival", ADMIN
            )
        )
        d.register_agency(agency_id_for("loser"), AgencyKind.NGO, "UA", "Loser", ADMIN)

    with pytest.raises(ConflictError) as caught:
        app.change_directory(always_beaten)
    assert type(caught.value) is ConflictError
    assert str(agency_id_for("loser")) not in app.directory().agencies


def test_directory_as_of_a_version_answers_who_could_act_when(app: ReferralApplication) -> None:
    user_id = uuid4()
    token_id = uuid4()
    app.change_directory(
        lambda d: d.register_agency(LA_STRADA, AgencyKind.NGO, "UA", "La Strada", ADMIN)
    )  # version 2
    app.change_directory(
        lambda d: d.add_user(user_id, LA_STRADA, Role.CASEWORKER, "Olena", ADMIN)
    )  # version 3
    app.change_directory(
        lambda d: d.issue_token(token_id, user_id, "h-olena", EXPIRES, ADMIN)
    )  # version 4
    app.change_directory(lambda d: d.change_role(user_id, Role.SUPERVISOR, ADMIN))  # version 5
    app.change_directory(lambda d: d.deactivate_user(user_id, "left", ADMIN))  # version 6

    assert app.directory(version=1).agencies == {}
    at_2 = app.directory(version=2)
    assert list(at_2.agencies) == [str(LA_STRADA)]
    with pytest.raises(DirectoryEntryNotFoundError):
        at_2.user(str(user_id))
    at_3 = app.directory(version=3)
    assert at_3.user(str(user_id))["role"] == "caseworker"
    assert at_3.user(str(user_id))["agency_id"] == str(LA_STRADA)
    assert at_3.token_by_hash("h-olena") is None
    at_4 = app.directory(version=4)
    token = at_4.token_by_hash("h-olena")
    assert token is not None
    assert token["revoked"] is False
    at_5 = app.directory(version=5)
    assert at_5.user(str(user_id))["role"] == "supervisor"
    assert at_5.user(str(user_id))["active"] is True
    at_6 = app.directory(version=6)
    assert at_6.user(str(user_id))["active"] is False
    revoked = at_6.token_by_hash("h-olena")
    assert revoked is not None
    assert revoked["revoked"] is True
    assert app.directory().version == 6
    assert app.directory(version=4).version == 4


# -- break-glass access --------------------------------------------------------------------------

REASON = "Child missing tonight; shelter record needed for police"
CASE_ID = uuid4()
NURSE_ID = uuid4()
REVIEWER_ID = uuid4()
NURSE = {"user_id": str(NURSE_ID), "agency_id": str(LA_STRADA), "role": "caseworker"}
REVIEWER = {"user_id": str(REVIEWER_ID), "agency_id": str(LA_STRADA), "role": "supervisor"}


@pytest.fixture
def staffed() -> Directory:
    """A directory where the nurse and the reviewer are active users of La Strada."""
    d = Directory.start()
    d.register_agency(LA_STRADA, AgencyKind.NGO, "UA", "La Strada Ukraine", ADMIN)
    d.add_user(NURSE_ID, LA_STRADA, Role.CASEWORKER, "Nurse Synthetic", ADMIN)
    d.add_user(REVIEWER_ID, LA_STRADA, Role.SUPERVISOR, "Reviewer Synthetic", ADMIN)
    return d


def test_break_glass_needs_a_written_reason(staffed: Directory) -> None:
    d = staffed
    version = d.version
    refused(
        InvalidCommandError,
        d,
        lambda: d.open_break_glass(uuid4(), CASE_ID, "  " + "r" * 19 + "  ", EXPIRES, NURSE),
    )
    refused(
        InvalidCommandError,
        d,
        lambda: d.open_break_glass(uuid4(), CASE_ID, "r" * 2001, EXPIRES, NURSE),
    )
    d.open_break_glass(uuid4(), CASE_ID, "r" * 20, EXPIRES, NURSE)
    assert d.version == version + 1


def test_break_glass_needs_an_active_user_of_the_directory(staffed: Directory) -> None:
    d = staffed
    stranger = {**NURSE, "user_id": str(uuid4())}
    refused(
        DirectoryEntryNotFoundError,
        d,
        lambda: d.open_break_glass(uuid4(), CASE_ID, REASON, EXPIRES, stranger),
    )
    d.deactivate_user(NURSE_ID, "left the agency", ADMIN)
    refused(
        InconsistentStateError,
        d,
        lambda: d.open_break_glass(uuid4(), CASE_ID, REASON, EXPIRES, NURSE),
    )
    assert d.break_glass == {}
    assert d.active_break_glass(str(NURSE_ID), str(CASE_ID), NOW) is None


def test_break_glass_is_active_until_it_expires(staffed: Directory) -> None:
    d = staffed
    nurse = str(NURSE_ID)
    grant = uuid4()
    d.open_break_glass(grant, CASE_ID, REASON, NOW + timedelta(hours=1), NURSE)
    assert d.break_glass[str(grant)]["reason"] == REASON
    assert d.break_glass[str(grant)]["agency_id"] == str(LA_STRADA)
    assert d.active_break_glass(nurse, str(CASE_ID), NOW) == NOW + timedelta(hours=1)
    assert d.active_break_glass(nurse, str(CASE_ID), NOW + timedelta(hours=1)) is None
    assert d.active_break_glass(str(REVIEWER_ID), str(CASE_ID), NOW) is None
    assert d.active_break_glass(nurse, str(uuid4()), NOW) is None


def test_latest_break_glass_expiry_wins(staffed: Directory) -> None:
    d = staffed
    d.open_break_glass(uuid4(), CASE_ID, REASON, NOW + timedelta(hours=3), NURSE)
    d.open_break_glass(uuid4(), CASE_ID, REASON, NOW + timedelta(hours=1), NURSE)
    assert d.active_break_glass(str(NURSE_ID), str(CASE_ID), NOW) == NOW + timedelta(hours=3)


def test_break_glass_review(staffed: Directory) -> None:
    d = staffed
    grant = uuid4()
    d.open_break_glass(grant, CASE_ID, REASON, EXPIRES, NURSE)
    refused(
        DirectoryEntryNotFoundError,
        d,
        lambda: d.review_break_glass(uuid4(), "justified", "ok", REVIEWER),
    )
    refused(
        InconsistentStateError,
        d,
        lambda: d.review_break_glass(grant, "justified", "all fine", NURSE),
    )
    refused(
        InvalidCommandError,
        d,
        lambda: d.review_break_glass(grant, "fine", "all fine", REVIEWER),
    )
    refused(
        InvalidCommandError,
        d,
        lambda: d.review_break_glass(grant, "justified", "   ", REVIEWER),
    )
    d.review_break_glass(grant, "unjustified", "no emergency", REVIEWER)
    record = d.break_glass[str(grant)]
    assert record["reviewed"] is True
    assert record["outcome"] == "unjustified"
    assert record["reviewed_by"] == str(REVIEWER_ID)
    refused(
        InconsistentStateError,
        d,
        lambda: d.review_break_glass(grant, "justified", "again", REVIEWER),
    )


def test_break_glass_reviewed_unjustified_ends_at_once(staffed: Directory) -> None:
    d = staffed
    nurse, case = str(NURSE_ID), str(CASE_ID)
    grant = uuid4()
    d.open_break_glass(grant, CASE_ID, REASON, NOW + timedelta(hours=1), NURSE)
    assert d.active_break_glass(nurse, case, NOW) == NOW + timedelta(hours=1)
    d.review_break_glass(grant, "unjustified", "no emergency", REVIEWER)
    assert d.active_break_glass(nurse, case, NOW) is None


def test_break_glass_reviewed_justified_runs_until_it_expires(staffed: Directory) -> None:
    d = staffed
    nurse, case = str(NURSE_ID), str(CASE_ID)
    grant = uuid4()
    d.open_break_glass(grant, CASE_ID, REASON, NOW + timedelta(hours=1), NURSE)
    d.review_break_glass(grant, "justified", "child was missing", REVIEWER)
    assert d.active_break_glass(nurse, case, NOW) == NOW + timedelta(hours=1)
