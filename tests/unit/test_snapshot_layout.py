"""The packed layout of case snapshots: exact round trips, misfits refused, old layout read."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast
from uuid import UUID

import pytest
from eventsourcing.domain import Snapshot
from eventsourcing.persistence import MapperDeserialisationError, StoredEvent
from eventsourcing.utils import get_topic
from hypothesis import given
from hypothesis import strategies as st

from adapters.crypto import fields
from adapters.crypto.keyring import CaseKeyError
from adapters.crypto.mapper import (
    ROW_SNAPSHOT_PATH,
    SEALED_ROW_SNAPSHOT,
    SEALED_SNAPSHOT,
    CaseKeyMapper,
    _snapshot_place,
)
from adapters.crypto.master import MasterKeys, generate_master_key_entry
from adapters.crypto.snapshot_layout import SnapshotLayoutError, pack, unpack
from adapters.store import ProtectedApplication, build_application
from referral_core.application import replay
from referral_core.case import Case
from tests.support.builders import MovableClock, envelope, example

entry = st.fixed_dictionaries(
    {
        "version": st.integers(min_value=1, max_value=10**6),
        "type": st.sampled_from(["ChildIdentified", "ServiceDelivered", "EntryVoided", "X"]),
        "agency_id": st.sampled_from(["a", "b", "c"]) | st.uuids().map(str),
        "voided": st.booleans(),
    }
)


@given(st.dictionaries(st.uuids().map(str), entry, max_size=40))
def test_pack_and_unpack_are_exact_inverses_keeping_order(
    entries: dict[str, dict[str, Any]],
) -> None:
    restored = unpack(pack(entries))
    assert restored == entries
    assert list(restored) == list(entries)


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: c["ids"].pop(),  # one column shorter than the others
        lambda c: c["type_of"].__setitem__(0, 99),  # a reference to no type
        lambda c: c.pop("agencies"),  # a column missing
    ],
)
def test_packed_entries_that_do_not_fit_are_refused(damage: Any) -> None:
    columns = pack(
        {
            "e1": {"version": 1, "type": "ChildIdentified", "agency_id": "a", "voided": False},
            "e2": {"version": 2, "type": "ServiceDelivered", "agency_id": "b", "voided": True},
        }
    )
    damage(columns)
    with pytest.raises(SnapshotLayoutError):
        unpack(columns)


@pytest.fixture
def app(tmp_path: Path) -> Iterator[ProtectedApplication]:
    keys = MasterKeys.parse(generate_master_key_entry("m1"))
    application = build_application(
        f"sqlite:///{tmp_path / 'snap.sqlite'}", clock=MovableClock(), master_keys=keys
    )
    yield application
    application.close()


def case_with_events(app: ProtectedApplication, services: int) -> UUID:
    case_id = app.open_case(
        event_type="ChildIdentified", payload=example("ChildIdentified"), envelope=envelope()
    ).case_id
    for version in range(1, services + 1):
        app.append(
            case_id,
            event_type="ServiceDelivered",
            payload=example("ServiceDelivered"),
            envelope=envelope(),
            expected_version=version,
        )
    return case_id


def stored_snapshot(app: ProtectedApplication, case_id: UUID) -> StoredEvent:
    assert app.snapshots is not None
    (stored,) = app.snapshots.recorder.select_events(case_id, desc=True, limit=1)
    return stored


def replayed(app: ProtectedApplication, case_id: UUID) -> Case:
    return cast("Case", replay(None, app.events.get(case_id)))


def test_a_snapshot_is_stored_packed_and_loads_the_same_case_as_a_replay(
    app: ProtectedApplication,
) -> None:
    case_id = case_with_events(app, 6)
    app.take_snapshot(case_id)
    stored = stored_snapshot(app, case_id)
    assert stored.state.startswith(SEALED_SNAPSHOT)
    assert app.snapshots is not None
    loaded = cast("Snapshot", app.snapshots.mapper.to_domain_event(stored))
    assert loaded.state["entries"] == replayed(app, case_id).entries
    assert vars(app.repository.get(case_id)) == vars(replayed(app, case_id))


def seal_in_row_layout(mapper: CaseKeyMapper, case: Case) -> StoredEvent:
    """A snapshot as the first layout stored it: the transcoded snapshot, entries as rows."""
    snapshot = Snapshot.take(case)
    state = dict(vars(snapshot))
    case_id, version = state.pop("originator_id"), state.pop("originator_version")
    aead = mapper.keyring.for_writing(case_id)
    assert aead is not None
    nonce = fields.nonces.take()
    ad = _snapshot_place(case_id, version).ad(ROW_SNAPSHOT_PATH)
    sealed = aead.encrypt(nonce, mapper.transcoder.encode(state), ad)
    topic = get_topic(type(snapshot))
    return StoredEvent(case_id, version, topic, SEALED_ROW_SNAPSHOT + nonce + sealed)


def test_a_snapshot_of_the_first_layout_still_loads(app: ProtectedApplication) -> None:
    case_id = case_with_events(app, 4)
    assert app.snapshots is not None
    mapper = cast("CaseKeyMapper", app.snapshots.mapper)
    app.snapshots.recorder.insert_events([seal_in_row_layout(mapper, replayed(app, case_id))])
    app.case_cache.forget(case_id)
    assert vars(app.repository.get(case_id)) == vars(replayed(app, case_id))


def test_a_snapshot_relabelled_as_the_other_layout_does_not_open(
    app: ProtectedApplication,
) -> None:
    case_id = case_with_events(app, 2)
    app.take_snapshot(case_id)
    stored = stored_snapshot(app, case_id)
    relabelled = StoredEvent(
        stored.originator_id,
        stored.originator_version,
        stored.topic,
        SEALED_ROW_SNAPSHOT + stored.state[len(SEALED_SNAPSHOT) :],
    )
    assert app.snapshots is not None
    with pytest.raises((CaseKeyError, MapperDeserialisationError)):
        app.snapshots.mapper.to_domain_event(relabelled)
