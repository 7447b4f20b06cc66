"""The per-process case cache: never staler than the store, never changed by its readers.

Two applications on one store stand for two API processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from uuid import UUID

import pytest

from adapters.store import build_application
from referral_core.application import ReferralApplication
from referral_core.case import REDACTED, Case
from referral_core.errors import VersionConflictError
from tests.support.builders import NGO, MovableClock, actor, envelope, example


@pytest.fixture
def other(database_url: str, clock: MovableClock) -> Iterator[ReferralApplication]:
    """A second process on the same store."""
    application = build_application(database_url, clock=clock)
    yield application
    application.close()


def _open(app: ReferralApplication) -> UUID:
    return app.open_case(
        event_type="ChildIdentified",
        payload=example("ChildIdentified", birth_date="2011-03-04"),
        envelope=envelope(actor(NGO)),
    ).case_id


def _serve(app: ReferralApplication, case_id: UUID, version: int) -> int:
    return app.append(
        case_id,
        expected_version=version,
        event_type="ServiceDelivered",
        payload=example("ServiceDelivered", provider_agency_id=NGO),
        envelope=envelope(actor(NGO)),
    ).version


def _state(case: Case) -> dict[str, object]:
    return {k: v for k, v in case.__dict__.items() if k != "_pending_events"}


def test_a_cached_case_sees_what_another_process_appended(
    app: ReferralApplication, other: ReferralApplication
) -> None:
    case_id = _open(app)
    assert app.get_case(case_id).version == 1
    assert len(app.case_cache) == 1
    _serve(other, case_id, 1)
    _serve(other, case_id, 2)
    seen = app.get_case(case_id)
    assert seen.version == 3
    assert _state(seen) == _state(other.get_case(case_id))
    # and the stale version is refused, not overwritten
    with pytest.raises(VersionConflictError):
        _serve(app, case_id, 1)


def test_changing_a_read_case_does_not_reach_the_next_reader(app: ReferralApplication) -> None:
    case_id = _open(app)
    first = app.get_case(case_id)
    first.child["sex"] = "changed by a careless reader"
    first.entries.clear()
    second = app.get_case(case_id)
    assert second.child["sex"] != "changed by a careless reader"
    assert len(second.entries) == 1


def test_a_failed_append_leaves_the_cache_as_the_store_is(
    app: ReferralApplication, other: ReferralApplication
) -> None:
    case_id = _open(app)
    app.get_case(case_id)
    _serve(other, case_id, 1)  # the cache of `app` is now one behind
    with pytest.raises(VersionConflictError):
        _serve(app, case_id, 1)
    assert app.get_case(case_id).version == 2
    assert _serve(app, case_id, 2) == 3
    assert _state(app.get_case(case_id)) == _state(other.get_case(case_id))


def test_the_cache_matches_an_uncached_load_after_many_events(
    app: ReferralApplication, database_url: str, clock: MovableClock
) -> None:
    case_id = _open(app)
    version = 1
    for _ in range(60):  # beyond a snapshot
        version = _serve(app, case_id, version)
    cold = build_application(database_url, clock=clock)
    try:
        cold.case_cache.clear()
        assert _state(app.get_case(case_id)) == _state(cold.get_case(case_id))
    finally:
        cold.close()


def test_a_size_of_zero_keeps_nothing(
    database_url: str, clock: MovableClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFERRAL_CASE_CACHE_SIZE", "0")
    uncached = build_application(database_url, clock=clock)
    try:
        case_id = _open(uncached)
        assert uncached.get_case(case_id).version == 1
        assert len(uncached.case_cache) == 0
    finally:
        uncached.close()


def test_an_erasure_seen_by_another_process_leaves_no_birth_date_in_its_cache(
    app: ReferralApplication, other: ReferralApplication
) -> None:
    case_id = _open(app)
    cached = other.get_case(case_id)
    assert cached.child["birth_date"] == "2011-03-04"
    app.append(
        case_id,
        expected_version=1,
        event_type="CaseErased",
        payload=example("CaseErased"),
        envelope=envelope(actor(NGO)),
    )
    seen = other.get_case(case_id)
    assert seen.erased
    assert seen.child["birth_date"] is None
    kept = [v for record in seen.effective.values() for v in record["payload"].values()]
    assert "2011-03-04" not in kept
    assert REDACTED not in kept


def test_voiding_and_correcting_on_a_copy_leaves_the_cached_records_alone(
    app: ReferralApplication,
) -> None:
    case_id = _open(app)
    version = _serve(app, case_id, 1)
    before = app.get_case(case_id)
    served = next(k for k, e in before.entries.items() if e["type"] == "ServiceDelivered")
    opening = next(k for k, e in before.entries.items() if e["type"] == "ChildIdentified")
    version = app.append(
        case_id,
        expected_version=version,
        event_type="EntryVoided",
        payload=example("EntryVoided", target_event_id=served),
        envelope=envelope(actor(NGO)),
    ).version
    app.append(
        case_id,
        expected_version=version,
        event_type="EntryCorrected",
        payload=example(
            "EntryCorrected", target_event_id=opening, corrected_values={"age_years": 12}
        ),
        envelope=envelope(actor(NGO)),
    )
    assert before.entries[served]["voided"] is False
    assert before.effective[opening]["payload"]["age_years"] != 12
    after = app.get_case(case_id)
    assert after.entries[served]["voided"] is True
    assert after.effective[opening]["payload"]["age_years"] == 12


def test_the_api_setting_sizes_the_cache(database_url: str, clock: MovableClock) -> None:
    from api.app import build_services
    from api.settings import Settings

    services = build_services(Settings(database_url=database_url, case_cache_size=1), clock=clock)
    try:
        app = services.app
        first, second = _open(app), _open(app)
        app.get_case(first)
        app.get_case(second)
        assert len(app.case_cache) == 1
    finally:
        services.db.close()
        app.close()


def test_an_append_from_a_cached_copy_at_its_if_match_is_still_checked_by_the_store(
    app: ReferralApplication, other: ReferralApplication
) -> None:
    """`get_case(to_append_at=)` skips asking the store for newer events when the cache holds
    the case at the writer's If-Match; a writer in another process that got in between is
    still refused, as a conflict, and nothing is stored twice."""
    case_id = _open(app)
    assert _serve(app, case_id, 1) == 2  # cached here at version 2
    _serve(other, case_id, 2)  # another process appends version 3
    copy = app.get_case(case_id, to_append_at=2)
    assert copy.version == 2  # the copy the next append decides on: the store is not asked
    with pytest.raises(VersionConflictError):
        app.append(
            case_id,
            expected_version=2,
            event_type="ServiceDelivered",
            payload=example("ServiceDelivered", provider_agency_id=NGO),
            envelope=envelope(actor(NGO)),
            case=copy,
        )
    assert [e.originator_version for e in app.history(case_id)] == [1, 2, 3]
    # a writer that knows the newer version is not held back by the stale copy
    assert app.get_case(case_id, to_append_at=3).version == 3
    assert _serve(app, case_id, 3) == 4
    assert _state(app.get_case(case_id)) == _state(other.get_case(case_id))
