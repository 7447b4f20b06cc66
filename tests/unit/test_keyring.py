"""Master keys, case keys, sealed fields and the mapper, on a SQLite store in a temp dir."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID, uuid4

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from adapters.crypto import fields
from adapters.crypto.keyring import KEY_CACHE_SECONDS, CaseKeyError, Keyring
from adapters.crypto.master import MasterKeyError, MasterKeys, generate_master_key_entry
from adapters.integrity.chain import HEADER_SIZE
from adapters.store import ConfigurationError, ProtectedApplication, build_application
from tests.support.builders import MovableClock, envelope, example

NAME = "Oksana-Canary-7f3e"


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'keys.sqlite'}"


@pytest.fixture
def keys() -> MasterKeys:
    return MasterKeys.parse(generate_master_key_entry("m1"))


@pytest.fixture
def app(url: str, keys: MasterKeys) -> Iterator[ProtectedApplication]:
    application = build_application(url, clock=MovableClock(), master_keys=keys)
    yield application
    application.close()


def open_case(app: ProtectedApplication, **payload: object) -> UUID:
    result = app.open_case(
        event_type="ChildIdentified",
        payload=example("ChildIdentified", given_name=NAME, notes=f"{NAME} was met", **payload),
        envelope=envelope(),
    )
    return result.case_id


def raw_states(app: ProtectedApplication) -> list[bytes]:
    return [n.state for n in app.recorder.select_notifications(start=1, limit=1000)]


# -- master keys -------------------------------------------------------------------------------


def test_master_keys_parse_first_is_current() -> None:
    first, second = generate_master_key_entry("new"), generate_master_key_entry("old")
    keys = MasterKeys.parse(f"{first},\n{second}")
    assert keys.current_id == "new"
    assert set(keys.keys) == {"new", "old"}
    assert "new" in repr(keys)
    assert first.split(":")[1] not in repr(keys)


@pytest.mark.parametrize(
    "text",
    ["", "nocolon", "bad id:AAAA", "k:not base64!", "k:" + base64.b64encode(b"short").decode()],
)
def test_malformed_master_keys_are_refused_without_echoing_them(text: str) -> None:
    with pytest.raises(MasterKeyError) as error:
        MasterKeys.parse(text)
    assert "\n" not in str(error.value)
    if ":" in text:
        assert text.split(":")[1] not in str(error.value)


def test_the_application_refuses_to_start_without_a_master_key(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("REFERRAL_MASTER_KEYS", raising=False)
    monkeypatch.delenv("REFERRAL_MASTER_KEY_FILE", raising=False)
    with pytest.raises(ConfigurationError, match="REFERRAL_MASTER_KEYS"):
        build_application(url)


# -- sealing -----------------------------------------------------------------------------------


def test_identifying_fields_are_sealed_at_rest_and_open_on_read(app: ProtectedApplication) -> None:
    case_id = open_case(app)
    (state,) = raw_states(app)
    assert NAME.encode() not in state
    stored = json.loads(state[HEADER_SIZE:])
    assert fields.is_sealed(stored["payload"]["given_name"])
    assert stored["payload"]["country"] == "TH"  # statistics keep their fields
    assert stored["payload"]["age_years"] == 15
    (event,) = app.history(case_id)
    assert event.payload["given_name"] == NAME
    assert not getattr(event, "erased", False)


def test_a_correction_seals_only_its_identifying_values(app: ProtectedApplication) -> None:
    case_id = open_case(app)
    target = app.history(case_id)[0].event_id
    app.append(
        case_id,
        expected_version=1,
        event_type="EntryCorrected",
        payload={
            "target_event_id": target,
            "reason": "name and age entered wrongly",
            "corrected_values": {"given_name": f"{NAME}-2", "age_years": 14},
        },
        envelope=envelope(),
    )
    stored = json.loads(raw_states(app)[1][HEADER_SIZE:])
    corrected = stored["payload"]["corrected_values"]
    assert fields.is_sealed(corrected["given_name"])
    assert corrected["age_years"] == 14
    app.shred_case(case_id)
    erased = app.history(case_id)[1]
    assert erased.payload["corrected_values"] == {"given_name": None, "age_years": 14}
    assert app.get_case(case_id).child["age_years"] == 14


def test_a_sealed_value_does_not_open_anywhere_else() -> None:
    aead = AESGCM(AESGCM.generate_key(bit_length=256))
    here = fields.Place("c1", "c1", 1, "ChildIdentified")
    sealed = fields.seal(aead, NAME, here, "given_name")
    assert fields.open_sealed(aead, sealed, here, "given_name") == NAME
    elsewhere = [
        (fields.Place("c2", "c2", 1, "ChildIdentified"), "given_name"),
        (fields.Place("c1", "c1", 2, "ChildIdentified"), "given_name"),
        (fields.Place("c1", "c1", 1, "AgeAssessed"), "given_name"),
        (here, "family_name"),
    ]
    for place, path in elsewhere:
        with pytest.raises(fields.SealedFieldError) as error:
            fields.open_sealed(aead, sealed, place, path)
        assert NAME not in str(error.value)


def test_access_purposes_are_sealed_under_the_case_key(app: ProtectedApplication) -> None:
    from referral_core.access import AccessRecord

    case_id = open_case(app)
    record = AccessRecord(
        user_id="u",
        agency_id="a",
        role="caseworker",
        case_id=str(case_id),
        what="history",
        purpose=f"checking on {NAME}",
        break_glass=False,
        correlation_id="c",
    )
    app.save(record)
    assert NAME.encode() not in raw_states(app)[-1]
    assert app.repository.get(record.id).purpose == f"checking on {NAME}"
    app.shred_case(case_id)
    assert app.repository.get(record.id).purpose is None


def test_case_snapshots_are_sealed_and_deleted_on_shredding(app: ProtectedApplication) -> None:
    case_id = open_case(app, birth_date="2011-04-05")
    app.take_snapshot(case_id)
    assert app.snapshots is not None
    (snapshot,) = app.snapshots.recorder.select_events(case_id)
    assert b"2011-04-05" not in snapshot.state
    assert snapshot.state.startswith(b"RFS2")
    assert app.get_case(case_id).child["birth_date"] == "2011-04-05"
    app.shred_case(case_id)
    assert app.snapshots.recorder.select_events(case_id) == []
    case = app.get_case(case_id)
    assert case.child["birth_date"] is None
    assert case.version == 1


def test_after_shredding_the_case_loads_with_nulls_and_the_marker(
    app: ProtectedApplication,
) -> None:
    case_id = open_case(app)
    app.shred_case(case_id)
    (event,) = app.history(case_id)
    assert event.payload["given_name"] is None
    assert event.payload["notes"] is None
    assert event.payload["country"] == "TH"
    assert event.erased is True  # type: ignore[attr-defined]
    assert app.keyring.is_destroyed(case_id)


# -- the keyring -------------------------------------------------------------------------------


def test_a_destroyed_key_is_never_created_again(app: ProtectedApplication) -> None:
    case_id = uuid4()
    assert app.keyring.for_writing(case_id) is not None
    app.keyring.destroy(case_id)
    assert app.keyring.for_writing(case_id) is None
    fresh = Keyring(app.keyring.master_keys)
    fresh.bind(app.keyring.store)
    assert fresh.for_writing(case_id) is None
    never_had_one = uuid4()
    app.keyring.destroy(never_had_one)
    assert fresh.for_writing(never_had_one) is None


def test_racing_processes_agree_on_one_key(app: ProtectedApplication) -> None:
    case_id = uuid4()
    rings = [Keyring(app.keyring.master_keys) for _ in range(8)]
    for ring in rings:
        ring.bind(app.keyring.store)
    found: list[bytes] = []
    barrier = threading.Barrier(len(rings))

    def create(ring: Keyring) -> None:
        barrier.wait()
        aead = ring.for_writing(case_id)
        assert aead is not None
        found.append(aead.encrypt(b"\x00" * 12, b"probe", None))

    threads = [threading.Thread(target=create, args=(ring,)) for ring in rings]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(set(found)) == 1


def test_the_cache_keeps_keys_at_most_ten_seconds(app: ProtectedApplication) -> None:
    clock = [0.0]
    ring = Keyring(app.keyring.master_keys, monotonic=lambda: clock[0])
    ring.bind(app.keyring.store)
    case_id = uuid4()
    assert ring.for_writing(case_id) is not None
    app.keyring.destroy(case_id)  # elsewhere
    assert ring.for_reading(case_id)[1] is not None  # still cached here
    clock[0] += KEY_CACHE_SECONDS + 0.01
    assert ring.for_reading(case_id) == (True, None)
    with pytest.raises(ValueError, match="at most"):
        Keyring(app.keyring.master_keys, cache_seconds=60)


def test_a_preload_reads_again_the_keys_whose_cache_time_is_half_over(
    app: ProtectedApplication,
) -> None:
    clock = [0.0]
    ring = Keyring(app.keyring.master_keys, monotonic=lambda: clock[0])
    ring.bind(app.keyring.store)
    fresh, ageing = uuid4(), uuid4()
    assert ring.for_writing(ageing) is not None
    clock[0] += KEY_CACHE_SECONDS * 0.6
    assert ring.for_writing(fresh) is not None
    app.keyring.destroy(fresh)  # elsewhere: only a read of the store would see either
    app.keyring.destroy(ageing)
    ring.preload([fresh, ageing])
    assert ring.for_reading(fresh)[1] is not None  # a fresh entry is kept
    assert ring.for_reading(ageing) == (True, None)  # read again: destroyed meanwhile


def test_rotation_rewraps_every_key_and_retires_the_old_master(
    url: str, keys: MasterKeys, tmp_path: Path
) -> None:
    app = build_application(url, clock=MovableClock(), master_keys=keys)
    cases = [open_case(app) for _ in range(3)]
    before = raw_states(app)
    app.close()
    new = MasterKeys.parse(f"{generate_master_key_entry('m2')},{_entry(keys)}")
    rotating = build_application(url, clock=MovableClock(), master_keys=new)
    assert rotating.keyring.rotate() == 3
    assert rotating.keyring.rotate() == 0
    rotating.close()
    only_new = MasterKeys.parse(generate_master_key_entry("m2").split(":")[0] + ":" + _b64(new))
    app = build_application(url, clock=MovableClock(), master_keys=only_new)
    assert raw_states(app) == before
    assert [app.history(c)[0].payload["given_name"] for c in cases] == [NAME] * 3
    app.close()
    stale = build_application(url, clock=MovableClock(), master_keys=keys)
    with pytest.raises(CaseKeyError, match="m2"):
        stale.history(cases[0])
    stale.close()


def _entry(keys: MasterKeys) -> str:
    return f"{keys.current_id}:{base64.b64encode(keys.current).decode()}"


def _b64(keys: MasterKeys) -> str:
    return base64.b64encode(keys.current).decode()


# -- keys from the settings ----------------------------------------------------------------------


def test_postgres_refuses_to_serve_without_a_master_key(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from api.cli import main

    monkeypatch.delenv("REFERRAL_MASTER_KEYS", raising=False)
    monkeypatch.delenv("REFERRAL_MASTER_KEY_FILE", raising=False)
    monkeypatch.setenv("REFERRAL_DATABASE_URL", "postgresql://u:secret@db.invalid:5432/x")
    assert main(["serve"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "REFERRAL_MASTER_KEYS" in err
    assert "secret" not in err


def test_sqlite_gets_development_keys_once_owner_only(tmp_path: Path) -> None:
    from api.keys import master_keys, tree_head_signer
    from api.settings import Settings

    settings = Settings(data_dir=tmp_path, master_keys="", signing_key="")
    first, signer = master_keys(settings), tree_head_signer(settings)
    assert signer is not None
    again = tree_head_signer(settings)
    assert master_keys(settings).keys == first.keys
    assert again is not None
    assert again.key_id == signer.key_id
    files = sorted((tmp_path / "keys").iterdir())
    assert [f.name for f in files] == ["master-keys", "signing-key.pem"]
    assert {f.stat().st_mode & 0o777 for f in files} == {0o600}
    assert (tmp_path / "keys").stat().st_mode & 0o777 == 0o700


def test_loading_leaves_sealed_what_the_fold_never_reads(app: ProtectedApplication) -> None:
    """The repository's mapper opens only what the fold reads; the state is the same as
    folding the fully opened history, before and after an erasure."""
    from datetime import timedelta

    from referral_core import synthetic
    from tests.support.builders import NOW

    synthetic.seed_directory(app)
    synthetic.generate_cases(app, cases=8, seed=21, now=NOW - timedelta(minutes=1))
    cases = sorted(
        {
            UUID(str(n.originator_id))
            for n in app.recorder.select_notifications(start=1, limit=10_000)
            if n.topic.startswith("referral.case:")
        }
    )
    app.shred_case(cases[0])

    def state(case: object) -> dict[str, object]:
        return {k: v for k, v in vars(case).items() if not k.startswith("_")}

    for case_id in cases:
        folded = None
        for event in app.history(case_id):
            folded = event.mutate(folded)
        assert state(app.get_case(case_id)) == state(folded), case_id
