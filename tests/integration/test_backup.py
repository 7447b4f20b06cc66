"""Backup and restore: `referral export` and `referral import`, through the CLI, on both backends.

A store with cases, an erased case and signed tree heads is exported; the file is imported into
an empty store (SQLite, PostgreSQL, and SQLite into PostgreSQL); there every stored event is at
its position with the same bytes, `referral audit verify` passes, and the read models rebuilt
from the import equal the original's row for row. A non-empty store, a truncated file and a
tampered one are refused with one line, and leave the target store empty.
"""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from adapters.integrity.chain import event_hash
from adapters.integrity.log_reader import iter_events
from adapters.store import build_application
from api.cli import main
from api.erasure import erase_case
from projections.db import open_database
from projections.registry import all_projections
from projections.runner import rebuild
from referral_core import synthetic
from referral_core.envelope import Actor
from referral_core.vocab import Role
from tests.support import postgres
from tests.support.builders import NOW
from tests.support.readmodels import table_rows

Rows = dict[str, dict[str, list[tuple[Any, ...]]]]


@pytest.fixture(autouse=True)
def frequent_heads(monkeypatch: pytest.MonkeyPatch) -> None:
    """Several signed tree heads in a small log."""
    monkeypatch.setenv("REFERRAL_CHECKPOINT_EVERY", "40")


def _populate(url: str) -> None:
    """Cases, one erased, and read models with signed heads."""
    app = build_application(url)
    db = open_database(url)
    try:
        synthetic.seed_directory(app)
        synthetic.generate_cases(app, cases=12, seed=31, now=NOW - timedelta(minutes=5))
        rebuild(app, db, all_projections())
        case_id = next(iter(_cases(app)))
        erase_case(
            app,
            db,
            case_id,
            reason="court order",
            legal_basis="GDPR art. 17",
            actor=Actor("dpo", "system", Role.DATA_PROTECTION_OFFICER),
            correlation_id="test-erase",
        )
        rebuild(app, db, all_projections())
    finally:
        db.close()
        app.close()


def _cases(app: Any) -> list[uuid.UUID]:
    return sorted(
        {
            e.stream if isinstance(e.stream, uuid.UUID) else uuid.UUID(e.stream)
            for e in iter_events(app.recorder)
            if e.version > 1
        }
    )


def _state(
    url: str, *, read_models: bool = True
) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], Rows]:
    """The log (position, case, version, topic, bytes), the case keys, every read model's rows."""
    app = build_application(url)
    db = open_database(url)
    try:
        log = [
            (e.position, str(uuid.UUID(str(e.stream))), e.version, e.topic, bytes(e.state))
            for e in iter_events(app.recorder)
        ]
        with db.transaction() as tx:
            keys = sorted(
                (str(r[0]), None if r[1] is None else bytes(r[1]), r[2], r[3], r[4])
                for r in tx.fetchall(
                    "SELECT case_id, wrapped_key, master_key_id, created_at, destroyed_at "
                    "FROM case_keys"
                )
            )
        rows = {p.name: table_rows(db, p) for p in all_projections()} if read_models else {}
    finally:
        db.close()
        app.close()
    return log, keys, rows


def _cli(monkeypatch: pytest.MonkeyPatch, url: str, *argv: str) -> int:
    monkeypatch.setenv("REFERRAL_DATABASE_URL", url)
    return main(list(argv))


def _store(kind: str, name: str, tmp_path: Path, request: pytest.FixtureRequest) -> str:
    """An empty store: a SQLite file, or a fresh schema of the suite's PostgreSQL database."""
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / name}.sqlite"
    server = str(request.getfixturevalue("postgres_url"))
    schema = f"t_{uuid.uuid4().hex[:16]}"
    postgres.create_schema(server, schema)
    request.addfinalizer(lambda: postgres.drop_schema(server, schema))
    return f"{server}?schema={schema}"


@pytest.mark.parametrize(
    ("source_kind", "target_kind"),
    [("sqlite", "sqlite"), ("postgres", "postgres"), ("sqlite", "postgres")],
)
def test_export_then_import_restores_the_log_and_the_read_models(
    source_kind: str,
    target_kind: str,
    *,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    database_url = _store(source_kind, "source", tmp_path, request)
    target = _store(target_kind, "target", tmp_path, request)
    _populate(database_url)
    before = _state(database_url)
    export = tmp_path / "export.jsonl"

    assert _cli(monkeypatch, database_url, "export", "--out", str(export)) == 0
    assert export.stat().st_mode & 0o077 == 0, "the export holds children's data: owner only"
    kinds = [json.loads(line)["kind"] for line in export.read_text().splitlines()]
    assert kinds[0] == "header"
    assert kinds[-1] == "end"
    assert kinds.count("event") == len(before[0])
    assert kinds.count("tree_head") >= 3
    assert kinds.count("export_head") == 1

    capsys.readouterr()
    assert _cli(monkeypatch, target, "import", str(export)) == 0
    out = capsys.readouterr().out
    assert f"imported {len(before[0])} events" in out
    assert "signature(s) verified" in out
    assert "not checked" not in out

    assert _cli(monkeypatch, target, "projections", "rebuild") == 0
    assert _cli(monkeypatch, target, "audit", "verify") == 0
    after = _state(target)
    assert after[0] == before[0], "every event at its position, byte for byte"
    assert after[1] == before[1], "the case keys, the erased one without its key"
    for name, rows in before[2].items():
        assert after[2][name] == rows, f"read model {name} differs from the original"

    # The restored store takes new events after the imported positions; an erased case stays so.
    app = build_application(target)
    try:
        last = before[0][-1][0]
        synthetic.generate_cases(app, cases=1, seed=32, now=NOW)
        assert (app.recorder.max_notification_id() or 0) > last
        erased = uuid.UUID(before[1][[k[1] for k in before[1]].index(None)][0])
        assert app.get_case(erased).erased
    finally:
        app.close()


def test_import_refuses_a_store_that_is_not_empty(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _populate(database_url)
    export = tmp_path / "export.jsonl"
    assert _cli(monkeypatch, database_url, "export", "--out", str(export)) == 0
    before = _state(database_url)
    capsys.readouterr()
    assert _cli(monkeypatch, database_url, "import", str(export)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["referral: error: the store is not empty: import only into an empty store"]
    assert _state(database_url)[:2] == before[:2]


def _rewrite(lines: list[dict[str, Any]]) -> str:
    """The records as an export file, with the end record's digest recomputed."""
    text = ""
    for record in lines[:-1]:
        text += json.dumps(record, separators=(",", ":"), sort_keys=True) + "\n"
    end = dict(lines[-1], sha256=hashlib.sha256(text.encode()).hexdigest())
    return text + json.dumps(end, separators=(",", ":"), sort_keys=True) + "\n"


def _records(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _reseal(record: dict[str, Any], state: bytes) -> None:
    """Give an event record new bytes and the hash that matches them (a deliberate rewrite)."""
    record["state"] = base64.b64encode(state).decode()
    record["hash"] = event_hash(
        uuid.UUID(record["originator_id"]), record["originator_version"], record["topic"], state
    ).hex()


def test_a_truncated_or_tampered_file_is_refused_and_changes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    source = f"sqlite:///{tmp_path / 'source.sqlite'}"
    _populate(source)
    export = tmp_path / "export.jsonl"
    assert _cli(monkeypatch, source, "export", "--out", str(export)) == 0
    text = export.read_text()
    records = _records(export)
    events = [i for i, r in enumerate(records) if r["kind"] == "event"]

    def flipped() -> str:
        changed = [dict(r) for r in records]
        state = bytearray(base64.b64decode(changed[events[5]]["state"]))
        state[-1] ^= 1
        changed[events[5]]["state"] = base64.b64encode(bytes(state)).decode()
        return _rewrite(changed)

    def rehashed_middle() -> str:
        # An event rewritten with a matching hash: the next event of its case no longer links.
        changed = [dict(r) for r in records]
        target = next(
            i
            for i in events
            if any(
                records[j]["originator_id"] == records[i]["originator_id"]
                and records[j]["originator_version"] == records[i]["originator_version"] + 1
                for j in events
            )
        )
        state = base64.b64decode(changed[target]["state"])
        _reseal(changed[target], state[:-1] + bytes([state[-1] ^ 1]))
        return _rewrite(changed)

    def rehashed_last() -> str:
        # The last event rewritten, hash and digest recomputed: only the signed heads catch it.
        changed = [dict(r) for r in records]
        state = base64.b64decode(changed[events[-1]]["state"])
        _reseal(changed[events[-1]], state[:-1] + bytes([state[-1] ^ 1]))
        return _rewrite(changed)

    def moved() -> str:
        changed = [dict(r) for r in records]
        changed[events[-1]]["position"] += 1
        changed[-1]["last_position"] += 1
        return _rewrite(changed)

    lines = text.splitlines(keepends=True)
    cases = {
        "without its end record": ("".join(lines[:-1]), "truncated: it has no end record"),
        "cut in the middle of a line": (text[: len(text) // 2], "truncated (an unfinished line)"),
        "without its last events": (
            "".join(lines[: events[-3]] + lines[events[-1] + 1 :]),
            "the end record's events does not match",
        ),
        "with a byte flipped": (flipped(), "bytes do not match its hash"),
        "with an event rewritten and rehashed": (rehashed_middle(), "the chain of case"),
        "with the last event rewritten and rehashed": (
            rehashed_last(),
            "do not match the signed tree head",
        ),
        "with an event moved to another position": (moved(), "signed tree head"),
    }
    target = f"sqlite:///{tmp_path / 'target.sqlite'}"
    for name, (content, message) in cases.items():
        bad = tmp_path / "bad.jsonl"
        bad.write_text(content)
        capsys.readouterr()
        assert _cli(monkeypatch, target, "import", str(bad)) == 2, name
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1, (name, err)
        assert message in err[0], (name, err)
        log, keys, _rows = _state(target, read_models=False)
        assert (log, keys) == ([], []), f"{name}: the refused import left rows behind"

    # The intact file still imports into that store afterwards.
    assert _cli(monkeypatch, target, "import", str(export)) == 0
