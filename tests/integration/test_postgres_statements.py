"""The PostgreSQL recorder's statements: rendered once (`adapters.integrity.recorders.rendered`)
they read and write exactly what eventsourcing's own, rendered per execute, do; an append is one
statement (the `…_append` function) when every link of the chain is remembered, the pipelined
transaction otherwise, and both store, chain, notify and refuse alike."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from uuid import UUID, uuid4

import psycopg
import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

from adapters.integrity.chain import ZERO_HASH, event_hash, split_header
from adapters.integrity.recorders import ChainedPostgresRecorder
from adapters.store import ProtectedApplication, build_application


@pytest.fixture
def recorder(postgres_schema_url: str) -> Iterator[ChainedPostgresRecorder]:
    app = build_application(postgres_schema_url)
    try:
        assert isinstance(app.recorder, ChainedPostgresRecorder)
        yield app.recorder
    finally:
        app.close()


def fresh_recorder(url: str) -> tuple[ProtectedApplication, ChainedPostgresRecorder]:
    """Another process's recorder on the same store: it remembers no link of any chain."""
    app = build_application(url)
    assert isinstance(app.recorder, ChainedPostgresRecorder)
    return app, app.recorder


def assert_chained(recorder: ChainedPostgresRecorder, stream: UUID) -> list[int]:
    """Every stored event of `stream` links to the hash of the one before it; its versions."""
    previous = ZERO_HASH
    versions: list[int] = []
    for stored in recorder.select_events(stream):
        link, _body = split_header(stored.state)
        assert link == previous, f"version {stored.originator_version} is not linked"
        previous = event_hash(stream, stored.originator_version, stored.topic, stored.state)
        versions.append(stored.originator_version)
    return versions


def events(stream: UUID, *versions: int) -> list[StoredEvent]:
    return [StoredEvent(stream, v, "test:Event", f"state {v}".encode()) for v in versions]


def test_each_select_shape_returns_what_eventsourcing_would(postgres_schema_url: str) -> None:
    app = build_application(postgres_schema_url)
    try:
        recorder = app.recorder
        assert isinstance(recorder, ChainedPostgresRecorder)
        stream = uuid4()
        recorder.insert_events(
            [StoredEvent(stream, v, "test:Event", f"state {v}".encode()) for v in range(1, 8)]
        )
        shapes = itertools.product((None, 2), (None, 6), (False, True), (None, 3))
        for gt, lte, desc, limit in shapes:
            ours = recorder.select_events(stream, gt=gt, lte=lte, desc=desc, limit=limit)
            theirs = PostgresApplicationRecorder.select_events(
                recorder, stream, gt=gt, lte=lte, desc=desc, limit=limit
            )
            assert ours == theirs, (gt, lte, desc, limit)
            assert ours, "every shape selects something from versions 1 to 7"
        versions = [e.originator_version for e in recorder.select_events(stream, gt=2, lte=6)]
        assert versions == [3, 4, 5, 6]
        newest = recorder.select_events(stream, desc=True, limit=1)
        assert [e.originator_version for e in newest] == [7]
        assert recorder.max_notification_id() == 7
    finally:
        app.close()


def test_statements_name_the_configured_schema(postgres_schema_url: str) -> None:
    app = build_application(postgres_schema_url)
    try:
        recorder = app.recorder
        assert isinstance(recorder, ChainedPostgresRecorder)
        schema = postgres_schema_url.rsplit("schema=", 1)[1]
        texts = [
            recorder.insert_events_statement.as_string(None),
            recorder.notify_statement.as_string(None),
            *(s.as_string(None) for s in recorder.lock_table_statements),  # type: ignore[union-attr]
        ]
        assert all(f'"{schema}"' in t for t in texts[:1] + texts[3:]), texts
        assert texts[1].startswith("NOTIFY ")
    finally:
        app.close()


def test_an_insert_committed_with_its_batch_refuses_a_duplicate_and_keeps_going(
    postgres_schema_url: str,
) -> None:
    """The COMMIT goes in the INSERT's pipeline (`_insert_in_one_round_trip`): a duplicate
    (case, version) still raises IntegrityError, stores nothing of its batch, and leaves every
    pooled connection fit for the next append."""
    app = build_application(postgres_schema_url)
    try:
        recorder = app.recorder
        stream, other = uuid4(), uuid4()
        first = recorder.insert_events([StoredEvent(stream, 1, "test:Event", b"one")])
        assert first == [1]
        for _ in range(3):  # more than once: a connection left in a failed transaction would show
            with pytest.raises(IntegrityError):
                recorder.insert_events(
                    [
                        StoredEvent(other, 1, "test:Event", b"other"),
                        StoredEvent(stream, 1, "test:Event", b"again"),
                    ]
                )
        assert recorder.select_events(other) == []
        assert recorder.insert_events([StoredEvent(stream, 2, "test:Event", b"two")]) is not None
        assert [e.originator_version for e in recorder.select_events(stream)] == [1, 2]
        assert recorder.insert_events([]) is None
    finally:
        app.close()


def test_an_append_whose_links_are_remembered_is_one_statement_and_chains(
    recorder: ChainedPostgresRecorder, postgres_schema_url: str
) -> None:
    stream = uuid4()
    assert recorder.insert_events(events(stream, 1, 2)) == [1, 2]
    assert recorder.insert_events(events(stream, 3)) == [3]
    assert recorder.appended_in_one_statement == 2, "version 1 and a remembered version 2"
    # Another process remembers nothing: it reads the previous row under the table lock.
    other_app, other = fresh_recorder(postgres_schema_url)
    try:
        assert other.insert_events(events(stream, 4)) == [4]
        assert other.appended_in_one_statement == 0
        assert other.insert_events(events(stream, 5, 6)) == [5, 6]  # now it remembers 4
        assert other.appended_in_one_statement == 1
    finally:
        other_app.close()
    # The first process does not remember 6, only 3: version 7 after 6 takes the locked read.
    assert recorder.insert_events(events(stream, 7)) == [7]
    assert recorder.appended_in_one_statement == 2
    assert assert_chained(recorder, stream) == [1, 2, 3, 4, 5, 6, 7]
    assert recorder.max_notification_id() == 7


def test_either_way_an_append_notifies_the_listeners(
    recorder: ChainedPostgresRecorder, postgres_schema_url: str
) -> None:
    url = postgres_schema_url.split("?", 1)[0]
    stream = uuid4()
    with psycopg.connect(url, autocommit=True) as listener:
        listener.execute(f'LISTEN "{recorder.channel_name}"')
        recorder.insert_events(events(stream, 1))  # one statement
        other_app, other = fresh_recorder(postgres_schema_url)
        try:
            other.insert_events(events(stream, 2))  # the pipelined transaction
        finally:
            other_app.close()
        heard = list(listener.notifies(timeout=2, stop_after=2))
    assert [n.channel for n in heard] == [recorder.channel_name] * 2


def test_a_duplicate_in_one_statement_stores_nothing_of_its_batch(
    recorder: ChainedPostgresRecorder,
) -> None:
    stream, other = uuid4(), uuid4()
    recorder.insert_events(events(stream, 1, 2))
    for _ in range(3):
        with pytest.raises(IntegrityError):
            recorder.insert_events([*events(other, 1), *events(stream, 2)])  # 2 is remembered
    assert recorder.appended_in_one_statement == 1
    assert recorder.select_events(other) == []
    assert recorder.insert_events(events(other, 1)) is not None
    assert assert_chained(recorder, stream) == [1, 2]


def test_a_database_made_before_the_function_still_takes_appends(
    recorder: ChainedPostgresRecorder, postgres_schema_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    url, schema = postgres_schema_url.split("?schema=", 1)
    stream = uuid4()
    recorder.insert_events(events(stream, 1))
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP FUNCTION "{schema}"."{recorder.events_table_name}_append"')
    assert recorder.insert_events(events(stream, 2)) == [2]
    assert recorder.insert_events(events(stream, 3)) == [3]
    assert recorder.appended_in_one_statement == 1, "only the first, before the drop"
    assert assert_chained(recorder, stream) == [1, 2, 3]
    warned = [r for r in caplog.records if "append function is missing" in r.getMessage()]
    assert len(warned) == 1, "said once, not on every append"
