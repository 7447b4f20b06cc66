"""The read-model runner: exactly once, rebuildable to identical rows, one worker per model."""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from datetime import timedelta
from typing import ClassVar
from uuid import UUID

import pytest
from eventsourcing.persistence import Notification

from adapters.crypto.fields import fold_names, is_sealed
from adapters.crypto.mapper import CaseKeyMapper
from projections import runner as runner_module
from projections.base import Change, Projection
from projections.collector import BULK_THRESHOLDS
from projections.db import PostgresDatabase, SqliteDatabase, Tx, open_database
from projections.registry import all_projections, by_names
from projections.runner import CaseStates, ProjectionRunner, _after, rebuild
from projections.worker import run_worker
from referral_core import synthetic
from referral_core.application import ReferralApplication
from referral_core.case import Case, CaseEvent
from tests.support.builders import NOW
from tests.support.readmodels import table_rows


@pytest.fixture
def seeded(app: ReferralApplication) -> ReferralApplication:
    synthetic.seed_directory(app)
    synthetic.generate_cases(app, cases=12, seed=7, now=NOW - timedelta(minutes=1))
    return app


def test_rebuild_equals_live_row_for_row(
    seeded: ReferralApplication, db: SqliteDatabase | PostgresDatabase
) -> None:
    projections = all_projections()
    live = ProjectionRunner(seeded, db, projections, batch_size=37)
    assert live.catch_up() > 0
    position = seeded.recorder.max_notification_id()
    assert live.positions() == {p.name: position for p in projections}
    before = {p.name: table_rows(db, p) for p in projections}
    assert before["case_index"]["case_index"], "the index must not be empty"

    checked = rebuild(seeded, db, projections, swap=False, suffix="_check", batch_size=1000)
    assert checked == position
    for projection in projections:
        assert table_rows(db, projection, "_check") == before[projection.name]

    swapped = rebuild(seeded, db, projections, batch_size=11)
    assert swapped == position
    for projection in projections:
        assert table_rows(db, projection) == before[projection.name]
    assert live.positions() == {p.name: position for p in projections}
    assert live.run_once() == 0


class Exploding(Projection):
    """Counts changes; raises once at a chosen position, like a crash mid-batch."""

    name = "exploding"
    tables: ClassVar[dict[str, str]] = {"exploding": "position BIGINT PRIMARY KEY"}

    def __init__(self, explode_at: int) -> None:
        self.explode_at = explode_at

    def handle(self, tx: Tx, change: Change, suffix: str = "") -> None:
        if change.position == self.explode_at:
            self.explode_at = -1
            raise RuntimeError("crash in the middle of a batch")
        tx.execute(f"INSERT INTO exploding{suffix} (position) VALUES (?)", (change.position,))  # noqa: S608


def test_a_failed_batch_leaves_no_trace_and_resumes_exactly_once(
    seeded: ReferralApplication, db: SqliteDatabase | PostgresDatabase
) -> None:
    exploding = Exploding(explode_at=25)
    runner = ProjectionRunner(seeded, db, [exploding, *by_names(["case_index"])], batch_size=20)
    assert runner.run_once() == 20
    with pytest.raises(RuntimeError):
        runner.run_once()
    assert runner.positions()["exploding"] == 20
    runner.catch_up()
    rows = table_rows(db, exploding)["exploding"]
    last = seeded.recorder.max_notification_id() or 0
    expected = [n.id for n in seeded.recorder.select_notifications(start=1, limit=10_000)]
    assert sorted(r[0] for r in rows) == expected
    assert expected[-1] == last


def test_two_runners_never_process_the_same_read_model_twice(
    seeded: ReferralApplication, db: SqliteDatabase | PostgresDatabase, database_url: str
) -> None:
    other_db = open_database(database_url)
    runners = [
        ProjectionRunner(seeded, db, [Exploding(-1)], batch_size=7),
        ProjectionRunner(seeded, other_db, [Exploding(-1)], batch_size=7),
    ]
    errors: list[BaseException] = []

    def work(runner: ProjectionRunner) -> None:
        try:
            for _ in range(200):
                runner.run_once()
        except BaseException as exc:  # noqa: BLE001 -- reported by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(r,)) for r in runners]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    runners[1].catch_up()
    other_db.close()
    assert errors == []
    rows = [r[0] for r in table_rows(db, Exploding(-1))["exploding"]]
    expected = [n.id for n in seeded.recorder.select_notifications(start=1, limit=10_000)]
    assert len(rows) == len(set(rows))
    assert sorted(rows) == expected


def test_unknown_read_model_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown read model"):
        by_names(["case_index", "nope"])
    assert [p.name for p in by_names(None)] == [p.name for p in all_projections()]


class Recording(Projection):
    """Keeps the changes each batch hands it (a keyed read model writes nothing here)."""

    name = "recording"
    tables: ClassVar[dict[str, str]] = {}
    keyed_by_case = True

    def __init__(self) -> None:
        self.batches: list[list[Change]] = []

    def handle_batch(self, tx: Tx, changes: Sequence[Change], suffix: str = "") -> None:
        self.batches.append(list(changes))

    def handle(self, tx: Tx, change: Change, suffix: str = "") -> None:
        raise AssertionError("batches only")


def test_a_keyed_read_model_learns_which_cases_its_batch_opened(
    app: ReferralApplication, db: SqliteDatabase | PostgresDatabase
) -> None:
    synthetic.seed_directory(app)
    directory_events = app.recorder.max_notification_id() or 0
    synthetic.generate_cases(app, cases=1, seed=3, now=NOW - timedelta(minutes=1))
    case_events = (app.recorder.max_notification_id() or 0) - directory_events
    assert case_events >= 3
    recording = Recording()
    # the first batch ends one event into the case; the second holds the rest of it
    runner = ProjectionRunner(app, db, [recording], batch_size=directory_events + 1)
    assert runner.run_once() == directory_events + 1
    runner.next_batch = 10_000
    assert runner.run_once() == case_events - 1
    first, second = ([c for c in batch if c.case_event] for batch in recording.batches)
    assert [(c.case_event.originator_version, c.opened_at) for c in first if c.case_event] == [
        (1, directory_events + 1)
    ]
    assert [(c.case_event.originator_version, c.opened_at) for c in second if c.case_event] == [
        (case_events, None)
    ]


def test_a_read_model_ahead_of_the_batch_start_is_not_told_it_opened_a_case_it_has() -> None:
    opened = [Change(position, object(), None, None, opened_at=3) for position in (3, 4, 5)]
    assert _after(opened, 2) is opened  # the whole batch is new to it
    assert [(c.position, c.opened_at) for c in _after(opened, 3)] == [(4, None), (5, None)]
    assert [(c.position, c.opened_at) for c in _after(opened, 0)] == [(3, 3), (4, 3), (5, 3)]


class Counting(Projection):
    """Counts the changes of each batch (every change: not keyed by case)."""

    name = "counting"
    tables: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.sizes: list[int] = []

    def handle_batch(self, tx: Tx, changes: Sequence[Change], suffix: str = "") -> None:
        self.sizes.append(len(changes))

    def handle(self, tx: Tx, change: Change, suffix: str = "") -> None:
        raise AssertionError("batches only")


def test_batches_grow_while_behind_on_postgres_only_and_shrink_once_caught_up(
    seeded: ReferralApplication,
    db: SqliteDatabase | PostgresDatabase,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(runner_module, "POSTGRES_BATCH", 5)
    monkeypatch.setattr(runner_module, "DEFAULT_BATCH", 5)
    monkeypatch.setattr(runner_module, "CATCH_UP_BATCH", 20)
    total = seeded.recorder.max_notification_id() or 0
    assert total > 60
    counting = Counting()
    runner = ProjectionRunner(seeded, db, [counting])
    assert runner.catch_up() == total
    if isinstance(db, PostgresDatabase):
        full = [5, 10, 20]
        full += [20] * ((total - 35) // 20)
        assert counting.sizes == [*full, total - sum(full)]
    else:
        assert counting.sizes == [5] * (total // 5) + ([total % 5] if total % 5 else [])
    assert runner.next_batch == 5  # the last batch was not full
    assert runner.states.size == runner_module.CASE_STATES  # tailing: the usual few cases
    behind = ProjectionRunner(seeded, db, [Counting()], suffix="_behind")
    assert behind.run_once() == 5  # a full batch: behind
    catching_up = isinstance(db, PostgresDatabase)
    assert behind.states.size == (
        runner_module.REBUILD_CASE_STATES if catching_up else runner_module.CASE_STATES
    )
    fixed = ProjectionRunner(seeded, db, [counting], batch_size=7, suffix="_fixed")
    counting.sizes.clear()
    fixed.catch_up()
    assert set(counting.sizes[:-1]) == {7}


def test_stream_ends_are_each_streams_last_position_up_to_a_point(
    seeded: ReferralApplication,
) -> None:
    upto = (seeded.recorder.max_notification_id() or 0) - 7
    expected: dict[UUID, int] = {}
    for n in seeded.recorder.select_notifications(start=1, limit=10**6, stop=upto):
        expected[UUID(str(n.originator_id))] = n.id
    assert len(expected) > 12
    assert seeded.stream_ends(upto) == expected  # the store's one query
    assert ReferralApplication.stream_ends(seeded, upto) == expected  # page by page


def test_a_rebuild_writes_each_case_once_at_its_last_change(
    seeded: ReferralApplication, db: SqliteDatabase | PostgresDatabase
) -> None:
    recording = Recording()
    rebuild(seeded, db, [recording], swap=False, suffix="_once", batch_size=13)
    handled = [c.case.id for batch in recording.batches for c in batch if c.case is not None]
    assert len(recording.batches) > 5
    assert sorted(handled) == sorted(set(handled))  # once each, though spread over batches
    ends = seeded.stream_ends(seeded.recorder.max_notification_id() or 0)
    assert {c.case.id: c.position for batch in recording.batches for c in batch if c.case} == {
        case_id: ends[case_id] for case_id in handled
    }


class CollectorThresholds(Projection):
    """Keeps the collector's thresholds as they were while each batch was handed to it."""

    name = "collector_thresholds"
    tables: ClassVar[dict[str, str]] = {}

    def __init__(self) -> None:
        self.seen: list[tuple[int, int, int]] = []

    def handle_batch(self, tx: Tx, changes: Sequence[Change], suffix: str = "") -> None:
        self.seen.append(gc.get_threshold())

    def handle(self, tx: Tx, change: Change, suffix: str = "") -> None:
        raise AssertionError("batches only")


def test_a_rebuild_runs_the_collector_less_often_and_then_as_before(
    seeded: ReferralApplication, db: SqliteDatabase | PostgresDatabase
) -> None:
    before = gc.get_threshold()
    assert before != BULK_THRESHOLDS
    spy = CollectorThresholds()
    rebuild(seeded, db, [spy], swap=False, suffix="_gc", batch_size=50, processes=1)
    assert len(spy.seen) > 2
    assert set(spy.seen) == {BULK_THRESHOLDS}
    assert gc.get_threshold() == before
    failing = Exploding(explode_at=30)
    with pytest.raises(RuntimeError, match="middle of a batch"):
        rebuild(seeded, db, [failing], swap=False, suffix="_gc2", batch_size=50, processes=1)
    assert gc.get_threshold() == before


def test_the_worker_runs_the_collector_less_often_until_it_stops(
    seeded: ReferralApplication, db: SqliteDatabase | PostgresDatabase
) -> None:
    before = gc.get_threshold()
    spy = CollectorThresholds()
    runner = ProjectionRunner(seeded, db, [spy], batch_size=50)
    stop = threading.Event()
    thread = threading.Thread(
        target=run_worker, args=(runner, db), kwargs={"stop": stop, "poll_interval": 0.05}
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while runner.positions()["collector_thresholds"] < (
            seeded.recorder.max_notification_id() or 0
        ):
            assert time.monotonic() < deadline, "the worker did not catch up"
            time.sleep(0.02)
    finally:
        stop.set()
        runner.nudge.set()
        thread.join(timeout=30)
    assert not thread.is_alive()
    assert spy.seen
    assert set(spy.seen) == {BULK_THRESHOLDS}
    assert gc.get_threshold() == before


@pytest.mark.parametrize("rebuild_states", [1000, 2])
def test_a_rebuild_keeps_its_cases_folded_instead_of_loading_them_again(
    seeded: ReferralApplication,
    db: SqliteDatabase | PostgresDatabase,
    monkeypatch: pytest.MonkeyPatch,
    rebuild_states: int,
) -> None:
    monkeypatch.setattr(runner_module, "CASE_STATES", 2)  # far fewer than the open cases
    monkeypatch.setattr(runner_module, "REBUILD_CASE_STATES", rebuild_states)
    loads: list[int | None] = []
    get_case = seeded.get_case

    def counted(case_id: UUID, *, version: int | None = None) -> Case:
        loads.append(version)
        return get_case(case_id, version=version)

    monkeypatch.setattr(seeded, "get_case", counted)
    rebuild(seeded, db, all_projections(), swap=False, suffix="_states", batch_size=7)
    if rebuild_states == 1000:
        assert loads == []  # every case stayed folded from its first event to its last
    else:
        assert len(loads) > 10  # too few kept: cases loaded again from the store


def test_a_reading_transaction_neither_waits_for_a_writer_nor_sees_its_uncommitted_rows(
    database_url: str,
) -> None:
    db = open_database(database_url)
    try:
        with db.transaction() as tx:
            tx.execute("CREATE TABLE reading_check (n INTEGER NOT NULL)")
            tx.execute("INSERT INTO reading_check (n) VALUES (1)")
        writing, release = threading.Event(), threading.Event()

        def writer() -> None:
            with db.transaction() as tx:  # holds SQLite's write lock until released
                tx.execute("INSERT INTO reading_check (n) VALUES (2)")
                writing.set()
                release.wait(30)

        thread = threading.Thread(target=writer)
        thread.start()
        try:
            assert writing.wait(10)
            with db.reading() as tx:
                assert tx.fetchall("SELECT n FROM reading_check") == [(1,)]
                release.set()
                thread.join(10)
                assert not thread.is_alive()  # the writer committed past an open reader
        finally:
            release.set()
            thread.join(10)
        with db.reading() as tx:
            assert sorted(tx.fetchall("SELECT n FROM reading_check")) == [(1,), (2,)]
    finally:
        db.close()


def test_the_runners_log_pages_and_decoder_read_what_the_recorder_and_mapper_do(
    seeded: ReferralApplication,
) -> None:
    last = seeded.recorder.max_notification_id() or 0
    assert last > 100
    for after, limit in ((0, 1000), (17, 40), (last - 3, 10), (last, 10)):
        page = seeded.log_page(after, limit)
        assert page == seeded.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )
    decode = seeded.log_decoder()
    mapper = getattr(decode, "__self__", None)
    assert isinstance(mapper, CaseKeyMapper)
    assert mapper is not seeded.mapper
    for notification in seeded.log_page(0, 1000):
        event = decode(notification)
        assert event.__dict__ == seeded.mapper.to_domain_event(notification).__dict__
    assert not mapper.opened._entries  # each event of the log is read once: nothing kept


def case_events_alike(
    app: ReferralApplication, decode: Callable[[Notification], object]
) -> Iterator[tuple[CaseEvent, CaseEvent]]:
    """Decode the whole log with `decode` and with the full decoder; assert that each entry
    comes out of the same type and equal in every attribute, a case event in every attribute
    but its payload; yield each case event as both gave it, for the caller to compare."""
    full = app.log_decoder()
    for notification in app.log_page(0, 100_000):
        read, opened = decode(notification), full(notification)
        assert type(read) is type(opened)
        if not isinstance(opened, CaseEvent):
            assert vars(read) == vars(opened)
            continue
        assert isinstance(read, CaseEvent)
        assert {k: v for k, v in vars(read).items() if k != "payload"} == {
            k: v for k, v in vars(opened).items() if k != "payload"
        }
        yield read, opened


def test_the_envelope_decoder_leaves_case_events_sealed_and_the_rest_as_read(
    seeded: ReferralApplication,
) -> None:
    """What part 0 of a rebuild reads other parts' case events with: their type, ids and times
    as the full decoder gives them, their sealed values still sealed."""
    sealed_somewhere = False
    for read, opened in case_events_alike(seeded, seeded.log_envelope_decoder()):
        assert read.payload.keys() == opened.payload.keys()
        differing = [k for k in opened.payload if read.payload[k] != opened.payload[k]]
        sealed_somewhere = sealed_somewhere or bool(differing)
        for key in differing:  # sealed: no plain value of the child's reaches this reader
            assert str(opened.payload[key]) not in str(read.payload[key])
    assert sealed_somewhere


def test_the_runner_opens_case_events_only_as_far_as_the_fold_reads_and_folds_the_same(
    seeded: ReferralApplication,
) -> None:
    """Read models read the folded case and the envelope: the runner leaves sealed every
    sensitive value the case does not keep, and its cases equal those of the full decoder."""
    by_runner, by_full = CaseStates(seeded, 1000), CaseStates(seeded, 1000)
    left_sealed = 0
    for read, opened in case_events_alike(seeded, seeded.log_fold_decoder()):
        kept = fold_names(opened.event_type)
        for key, value in opened.payload.items():
            if key in kept or read.payload[key] == value:
                assert read.payload[key] == value
                continue
            assert is_sealed(read.payload[key])  # no plain value of the child's reaches it
            assert str(value) not in str(read.payload[key])
            left_sealed += 1
        assert case_state(by_runner.advance(read)) == case_state(by_full.advance(opened))
    assert left_sealed > 10


def case_state(case: Case) -> dict[str, object]:
    return {k: v for k, v in vars(case).items() if k != "_pending_events"}


@pytest.mark.parametrize("gather", [0.0, 1.0])
def test_a_woken_runner_gathers_the_appends_that_follow_into_one_batch(
    app: ReferralApplication, db: SqliteDatabase | PostgresDatabase, gather: float
) -> None:
    synthetic.seed_directory(app)
    recording = Recording()
    runner = ProjectionRunner(app, db, [recording])
    runner.catch_up()
    recording.batches.clear()
    stop = threading.Event()
    looked = threading.Event()
    run_once = runner.run_once

    def first_look_seen() -> int:
        done = run_once()
        looked.set()
        return done

    runner.run_once = first_look_seen  # type: ignore[method-assign]
    worker = threading.Thread(
        target=runner.run_forever, args=(stop, 5.0), kwargs={"gather": gather}
    )
    worker.start()
    try:
        # The worker's first look at the log (it finds nothing) is over before the appends
        # start: on a busy machine it could otherwise catch the first case's first event alone.
        assert looked.wait(10)
        synthetic.generate_cases(app, cases=1, seed=3, now=NOW - timedelta(minutes=1))
        first = app.recorder.max_notification_id() or 0
        runner.nudge.set()  # as the worker's listener does on the append's NOTIFY
        time.sleep(0.1)
        synthetic.generate_cases(app, cases=1, seed=4, now=NOW - timedelta(minutes=1))
        runner.nudge.set()
        last = app.recorder.max_notification_id() or 0
        assert runner.wait_for(last, timeout=10)
    finally:
        stop.set()
        runner.nudge.set()
        worker.join(10)
    batches = [[c.position for c in batch] for batch in recording.batches if batch]
    handled = sorted(p for batch in batches for p in batch)
    assert handled[-1] == last
    if gather:
        assert len(batches) == 1  # both cases' events in the batch after the window
    else:
        assert any(max(batch) == first for batch in batches)  # the first case's alone
        assert len(batches) >= 2
