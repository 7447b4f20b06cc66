"""Tamper evidence, end to end: the attacker edits the tables as the database superuser would;
verification finds every attack and names the case and event it concerns.

Runs on PostgreSQL and SQLite. The log is a few synthetic cases, chained by the recorder and
hashed into Merkle leaves (and signed tree heads every 10 leaves) by the integrity read model.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from adapters.integrity.chain import HEADER_SIZE
from adapters.integrity.tree_head import SignedTreeHead, TreeHeadSigner
from adapters.integrity.verify import Report
from adapters.store import ProtectedApplication, build_application
from api.cli import main
from projections.db import PostgresDatabase, SqliteDatabase, open_database
from projections.integrity import IntegrityProjection, LogChangedError, signed_heads
from projections.runner import ProjectionRunner, rebuild
from projections.verification import current_head, verify_log
from referral_core import synthetic
from referral_core.envelope import Envelope
from tests.support import builders
from tests.support.api import Harness, harness
from tests.support.builders import NOW, MovableClock, example
from tests.support.runs import drain
from tests.support.tamper import RawLog, Row, flip_byte

EVERY = 10

Expected = set[tuple[str, str | None, int | None]]


@dataclass
class Store:
    app: ProtectedApplication
    db: SqliteDatabase | PostgresDatabase
    signer: TreeHeadSigner
    raw: RawLog
    runner: ProjectionRunner

    def verify(self, earlier: SignedTreeHead | None = None) -> Report:
        return verify_log(
            self.app,
            self.db,
            public_key=self.signer.public_key,
            checkpoint_every=EVERY,
            earlier=earlier,
        )

    def findings(self) -> Expected:
        report = self.verify()
        assert not report.ok, "the attack went unnoticed"
        return {(f.kind, f.case_id, f.version) for f in report.findings}

    def cases(self) -> dict[str, list[Row]]:
        found: dict[str, list[Row]] = {}
        for row in self.raw.rows():
            found.setdefault(row.case_id, []).append(row)
        return found

    def long_cases(self) -> list[list[Row]]:
        """Case streams of at least four events, longest first."""
        streams = [
            rows for rows in self.cases().values() if rows[0].topic.startswith("referral.case:")
        ]
        return sorted((r for r in streams if len(r) >= 4), key=len, reverse=True)


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    clock = MovableClock()
    app = build_application(database_url, clock=clock)
    synthetic.seed_directory(app)
    synthetic.generate_cases(app, cases=6, seed=5, now=NOW - timedelta(minutes=1))
    db = open_database(database_url)
    signer = TreeHeadSigner(Ed25519PrivateKey.generate())
    projection = IntegrityProjection()
    projection.configure(signer, every=EVERY, minutes=60 * 24 * 3650)
    runner = ProjectionRunner(app, db, [projection], batch_size=37)
    drain(runner)
    raw = RawLog(database_url)
    yield Store(app, db, signer, raw, runner)
    raw.close()
    db.close()
    app.close()


def test_an_untouched_log_verifies_with_signed_heads(store: Store) -> None:
    report = store.verify()
    assert report.ok, [f.line() for f in report.findings]
    last = store.raw.rows()[-1].position
    assert report.verified_position == last
    assert report.events == report.leaves == len(store.raw.rows())
    assert report.head is not None
    assert report.heads_checked >= report.leaves // EVERY
    assert report.summary() == (
        f"verified up to position {last}, "
        f"tree head {report.head.tree_size}:{report.head.root_hash.hex()}"
    )


# -- the attacks -------------------------------------------------------------------------------


def change_one_byte(store: Store) -> Expected:
    stream = store.long_cases()[0]
    target = stream[1]
    store.raw.set_state(target.position, flip_byte(target.state))
    return {("changed-event", target.case_id, 2), ("chain-broken", target.case_id, 3)}


def delete_an_event(store: Store) -> Expected:
    stream = store.long_cases()[0]
    store.raw.delete(stream[1].position)
    return {("missing-event", stream[1].case_id, 2)}


def delete_a_whole_case(store: Store) -> Expected:
    stream = store.long_cases()[1]
    store.raw.delete_case(stream[0].case_id)
    return {("missing-event", r.case_id, r.version) for r in stream}


def swap_two_payloads(store: Store) -> Expected:
    first, second = store.long_cases()[0][2], store.long_cases()[1][2]
    store.raw.set_state(first.position, second.state)
    store.raw.set_state(second.position, first.state)
    return {
        ("changed-event", first.case_id, first.version),
        ("changed-event", second.case_id, second.version),
    }


def reorder(store: Store) -> Expected:
    first, second = store.long_cases()[0][1], store.long_cases()[1][3]
    store.raw.swap_positions(first.position, second.position)
    return {
        ("moved-event", first.case_id, first.version),
        ("moved-event", second.case_id, second.version),
    }


def truncate_the_tail(store: Store) -> Expected:
    rows = store.raw.rows()
    store.raw.delete_after(rows[-4].position)
    return {("missing-event", r.case_id, r.version) for r in rows[-3:]}


def truncate_events_and_leaves(store: Store) -> Expected:
    with store.db.transaction() as tx:
        last_head = signed_heads(tx)[-1].tree_size
    cut = store.raw.rows()[last_head - 3].position
    store.raw.delete_after(cut)
    store.raw.delete_leaves_after(cut)
    return {("truncated", None, None)}


def rehashed_copy(store: Store) -> Expected:
    target = store.long_cases()[0][0]
    store.raw.rehash_from(target, flip_byte(target.state)[HEADER_SIZE:])
    return {("tree-head-mismatch", None, None)}


def rehashed_copy_without_heads(store: Store) -> Expected:
    rehashed_copy(store)
    store.raw.delete_heads()
    return {("missing-tree-head", None, None)}


ATTACKS: dict[str, Callable[[Store], Expected]] = {
    f.__name__: f
    for f in (
        change_one_byte,
        delete_an_event,
        delete_a_whole_case,
        swap_two_payloads,
        reorder,
        truncate_the_tail,
        truncate_events_and_leaves,
        rehashed_copy,
        rehashed_copy_without_heads,
    )
}


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_every_attack_is_detected_and_named(store: Store, attack: str) -> None:
    assert store.verify().ok
    expected = ATTACKS[attack](store)
    found = store.findings()
    assert expected <= found, (expected, found)


def test_a_rehashed_copy_passes_everything_but_the_signed_heads(store: Store) -> None:
    rehashed_copy(store)
    report = store.verify()
    assert {f.kind for f in report.findings} == {"tree-head-mismatch"}
    unsigned = verify_log(store.app, store.db, public_key=None, checkpoint_every=None)
    assert unsigned.ok  # without the signing key nothing could have told
    assert any("not checked" in note for note in unsigned.notes)


def test_a_changed_byte_in_any_event_is_found_and_named(store: Store) -> None:
    rows = store.raw.rows()
    for row in rows:
        store.raw.set_state(
            row.position, row.state[:-2] + bytes([row.state[-2] ^ 1]) + row.state[-1:]
        )
        report = store.verify()
        store.raw.set_state(row.position, row.state)
        found = {(f.kind, f.case_id, f.version, f.position) for f in report.findings}
        assert ("changed-event", row.case_id, row.version, row.position) in found, row
    assert store.verify().ok


def test_a_rebuild_refuses_to_sign_over_a_changed_log(store: Store) -> None:
    rehashed_copy(store)
    projection = IntegrityProjection()
    projection.configure(store.signer, every=EVERY)
    with pytest.raises(LogChangedError, match="signed tree head"):
        rebuild(store.app, store.db, [projection], swap=False, suffix="_check")


# -- exported heads: the log only grew ---------------------------------------------------------


def test_an_exported_head_proves_growth_and_catches_truncation(store: Store) -> None:
    exported = SignedTreeHead.from_json(
        current_head(store.db, store.signer, NOW).to_json()  # handed to a witness
    )
    assert exported.tree_size == len(store.raw.rows())
    synthetic.generate_cases(store.app, cases=2, seed=77, now=NOW - timedelta(seconds=30))
    drain(store.runner)
    report = store.verify(earlier=exported)
    assert report.ok, [f.line() for f in report.findings]
    assert report.events > exported.tree_size
    assert any("only grew" in note for note in report.notes)
    rows = store.raw.rows()
    store.raw.delete_after(rows[exported.tree_size - 2].position)
    store.raw.delete_leaves_after(rows[exported.tree_size - 2].position)
    store.raw.delete_heads()
    report = store.verify(earlier=exported)
    assert "truncated" in {f.kind for f in report.findings}


# -- the command line --------------------------------------------------------------------------


@pytest.fixture
def cli_env(database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("REFERRAL_DATABASE_URL", database_url)
    monkeypatch.setenv("REFERRAL_DATA_DIR", str(tmp_path))
    return database_url


def test_cli_verify_checkpoint_and_head(
    cli_env: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    app = build_application(cli_env, clock=MovableClock())
    synthetic.seed_directory(app)
    synthetic.generate_cases(app, cases=3, seed=9, now=NOW - timedelta(minutes=1))
    db = open_database(cli_env)
    runner = ProjectionRunner(app, db, [IntegrityProjection()])
    drain(runner)

    assert main(["audit", "verify"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("referral: verified up to position ")
    head_file = tmp_path / "head.json"
    assert main(["audit", "checkpoint", "--export", str(head_file)]) == 0
    capsys.readouterr()
    exported = SignedTreeHead.from_json(head_file.read_text())

    synthetic.generate_cases(app, cases=1, seed=10, now=NOW - timedelta(seconds=30))
    drain(runner)
    assert main(["audit", "verify", "--head", str(head_file)]) == 0
    assert "only grew" in capsys.readouterr().out

    raw = RawLog(cli_env)
    rows = raw.rows()
    raw.delete_after(rows[exported.tree_size - 2].position)
    raw.close()
    assert main(["audit", "verify", "--head", str(head_file)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("referral: BROKEN:")
    assert rows[-1].case_id in out
    assert main(["audit", "verify", "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert {f["case_id"] for f in report["findings"]} >= {rows[-1].case_id}
    assert main(["audit", "checkpoint", "--export", str(tmp_path / "no.json")]) == 1
    assert not (tmp_path / "no.json").exists()
    db.close()
    app.close()


# -- the API -----------------------------------------------------------------------------------


@pytest.fixture
def http(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(database_url, tmp_path, checkpoint_every=5) as h:
        yield h


def _history(http: Harness, case_id: str, who: str) -> list[dict[str, object]]:
    http.services.runner.wait_for(http.latest(), 10)
    response = http.client.get(f"/cases/{case_id}/events", headers=http.headers(who))
    assert response.status_code == 200, response.text
    events: list[dict[str, object]] = response.json()["events"]
    return events


def test_auditors_see_each_event_verified_and_the_log_verify(http: Harness) -> None:
    case_id, version = http.open_case("ngo")
    for i in range(3):
        response = http.append(
            case_id,
            version=version + i,
            event_type="ServiceDelivered",
            payload=example("ServiceDelivered", notes=f"session {i}"),
        )
        assert response.status_code == 201, response.text
    assert [e["verified"] for e in _history(http, case_id, "auditor")] == [True] * 4
    assert [e["verified"] for e in _history(http, case_id, "ngo")] == [None] * 4
    verify = http.client.get("/audit/verify", headers=http.headers("auditor"))
    assert verify.status_code == 200
    assert verify.json()["ok"] is True
    assert verify.json()["summary"].startswith("verified up to position")
    assert http.client.get("/audit/verify", headers=http.headers("ngo")).status_code == 403

    raw = RawLog(str(http.services.settings.database_url))
    second = raw.case_rows(case_id)[1]
    raw.set_state(second.position, flip_byte(second.state))
    raw.close()
    verified = [e["verified"] for e in _history(http, case_id, "auditor")]
    assert verified == [True, False, False, True]  # the changed event, and the link after it
    body = http.client.get("/audit/verify", headers=http.headers("auditor")).json()
    assert body["ok"] is False
    assert {"kind": "changed-event", "case_id": case_id, "version": 2} in [
        {k: f[k] for k in ("kind", "case_id", "version")} for f in body["findings"]
    ]


# -- racing writers ----------------------------------------------------------------------------


def test_racing_writers_keep_every_chain_intact(database_url: str) -> None:
    """Two applications (two processes' worth of connections) append to the same cases at
    once; every link is computed under the append lock, so the log verifies."""
    import threading

    from referral_core.errors import ReferralError

    clock = MovableClock()
    first = build_application(database_url, clock=clock)
    second = build_application(database_url, clock=clock)
    opened = [
        first.open_case(
            event_type="ChildIdentified",
            payload=example("ChildIdentified", given_name=f"Racer {i}"),
            envelope=_envelope(),
        ).case_id
        for i in range(2)
    ]
    errors: list[BaseException] = []

    def write(app: ProtectedApplication, turn: int) -> None:
        for i in range(15):
            try:
                app.append(
                    opened[(turn + i) % 2],
                    expected_version=None,
                    event_type="ServiceDelivered",
                    payload=example("ServiceDelivered", notes=f"session {turn}-{i}"),
                    envelope=_envelope(),
                )
            except ReferralError:
                pass  # a lost race is a conflict; the chain must hold either way
            except BaseException as exc:  # noqa: BLE001 -- reported below
                errors.append(exc)

    threads = [
        threading.Thread(target=write, args=(app, n))
        for n, app in enumerate((first, second, first, second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    db = open_database(database_url)
    signer = TreeHeadSigner(Ed25519PrivateKey.generate())
    projection = IntegrityProjection()
    projection.configure(signer, every=EVERY)
    drain(ProjectionRunner(first, db, [projection]))
    report = verify_log(first, db, public_key=signer.public_key, checkpoint_every=EVERY)
    assert report.ok, [f.line() for f in report.findings]
    assert sum(first.get_case(c).version for c in opened) > 20
    db.close()
    first.close()
    second.close()


def _envelope() -> Envelope:
    return builders.envelope()
