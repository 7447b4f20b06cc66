"""The PostgreSQL recorder's statements rendered once (`adapters.integrity.recorders.rendered`)
read and write exactly what eventsourcing's own, rendered per execute, do."""

from __future__ import annotations

import itertools
from uuid import uuid4

import pytest
from eventsourcing.persistence import IntegrityError, StoredEvent
from eventsourcing.postgres import PostgresApplicationRecorder

from adapters.integrity.recorders import ChainedPostgresRecorder
from adapters.store import build_application


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
