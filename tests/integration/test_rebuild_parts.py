"""A rebuild shared out among processes, on PostgreSQL (SQLite rebuilds in one process).

The rows equal a live runner's, row for row, including events appended after the rebuild's
plan; the parts leave no position behind; a part that fails fails the rebuild before any swap;
`referral projections rebuild --processes N` asks for N.
"""

from __future__ import annotations

import gc
import itertools
from collections import Counter
from datetime import timedelta
from pathlib import Path
from typing import Any, ClassVar
from uuid import UUID

import pytest

from adapters.crypto.mapper import CaseKeyMapper
from adapters.store import build_application
from api.cli import main
from projections import rebuild_parts
from projections.base import CaseRowsProjection, Projection
from projections.collector import BULK_THRESHOLDS
from projections.db import PostgresDatabase, Row, SqliteDatabase, open_database
from projections.registry import all_projections
from projections.runner import (
    PARALLEL_FROM,
    TRACKING_TABLE,
    ProjectionRunner,
    part_of,
    rebuild,
    rebuild_processes,
    shareable,
)
from referral_core import synthetic
from referral_core.application import ReferralApplication
from referral_core.case import Case, CaseEvent
from referral_core.case_events import TOPIC_PREFIX
from tests.support.builders import NOW
from tests.support.readmodels import table_rows

Database = SqliteDatabase | PostgresDatabase


@pytest.fixture
def seeded(app: ReferralApplication) -> ReferralApplication:
    synthetic.seed_directory(app)
    synthetic.generate_cases(app, cases=16, seed=5, now=NOW - timedelta(minutes=1))
    return app


def positions_named(db: Database, pattern: str) -> list[str]:
    with db.reading() as tx:
        rows = tx.fetchall(f"SELECT name FROM {TRACKING_TABLE} WHERE name LIKE ?", (pattern,))  # noqa: S608
    return sorted(str(r[0]) for r in rows)


def test_a_rebuild_in_parts_equals_live_row_for_row_with_entries_after_its_plan(
    seeded: ReferralApplication, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    projections = all_projections()
    assert shareable(projections)
    parted: list[int] = []
    in_parts = rebuild_parts.rebuild_in_parts

    def then_append(runner: ProjectionRunner, pg: PostgresDatabase, upto: int, count: int) -> None:
        # Arrives while the parts run: they stop at the plan (whatever the gaps in positions),
        # and the rebuild applies it alone before the swap.
        synthetic.generate_cases(seeded, cases=2, seed=6, now=NOW)
        in_parts(runner, pg, upto, count)
        parted.append(count)
        assert positions_named(db, "%@part%") == []

    monkeypatch.setattr(rebuild_parts, "rebuild_in_parts", then_append)
    if isinstance(db, PostgresDatabase):  # a gap in the log, as a rolled-back append leaves
        with db.transaction() as tx:
            for _ in range(25):
                tx.fetchone("SELECT nextval('referral_events_notification_id_seq')")
        synthetic.generate_cases(seeded, cases=3, seed=7, now=NOW - timedelta(minutes=1))
        ids = [n.id for n in seeded.log_page(0, 100_000)]
        assert any(b - a > 20 for a, b in itertools.pairwise(ids))
    position = rebuild(seeded, db, projections, swap=False, suffix="_parts", processes=2)
    assert position == seeded.recorder.max_notification_id()
    live = ProjectionRunner(seeded, db, projections, batch_size=29)
    live.catch_up()
    for projection in projections:
        assert table_rows(db, projection, "_parts") == table_rows(db, projection)
    # Shared out on PostgreSQL only: SQLite's parts would queue for its one write lock.
    assert parted == ([2] if isinstance(db, PostgresDatabase) else [])
    assert positions_named(db, "%_parts%") == sorted(p.name + "_parts" for p in projections)


def test_part_zero_opens_only_its_own_cases_events(
    postgres_schema_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Part 0 reads every entry for the read models that read no case, but another part's case
    events only by their envelope: it neither decrypts their values nor fetches their keys."""
    opened: set[UUID] = set()
    open_case_event = CaseKeyMapper._open_case_event

    def recording(mapper: CaseKeyMapper, event: CaseEvent) -> None:
        opened.add(event.originator_id)
        open_case_event(mapper, event)

    monkeypatch.setattr(CaseKeyMapper, "_open_case_event", recording)
    app = build_application(postgres_schema_url)
    db = open_database(postgres_schema_url)
    try:
        synthetic.seed_directory(app)
        synthetic.generate_cases(app, cases=16, seed=5, now=NOW - timedelta(minutes=1))
        log = app.log_page(0, 100_000)
        cases = {UUID(str(n.originator_id)) for n in log if n.topic.startswith(TOPIC_PREFIX)}
        opened.clear()
        rebuild(app, db, all_projections(), processes=2)
    finally:
        db.close()
        app.close()
    mine = {case for case in cases if part_of(case, 2) == 0}
    assert mine
    assert mine < cases
    # The rebuild's own catch-up after the parts reads nothing more: part 0 opened its cases.
    assert opened == mine


def test_part_zero_takes_one_share_of_the_cases_and_every_other_part_two() -> None:
    cases = [UUID(int=n * 7919 + 13) for n in range(7000)]
    assert {part_of(case_id, 1) for case_id in cases} == {0}
    for count in (2, 3, 4):
        taken = Counter(part_of(case_id, count) for case_id in cases)
        assert set(taken) == set(range(count))
        share = len(cases) / (2 * count - 1)
        assert abs(taken[0] - share) < 0.1 * share
        for part in range(1, count):
            assert abs(taken[part] - 2 * share) < 0.1 * share


def test_a_rebuild_uses_one_process_per_core_only_for_a_long_log_on_postgres(
    db: Database,
) -> None:
    projections = all_projections()
    many = rebuild_processes(db, projections, PARALLEL_FROM)
    assert rebuild_processes(db, projections, PARALLEL_FROM - 1) == 1
    if isinstance(db, PostgresDatabase):
        assert many >= 1
        assert rebuild_processes(db, [*projections, ReadsCases()], PARALLEL_FROM) == 1
    else:
        assert many == 1


class ReadsCases(Projection):
    """Not keyed by case, yet reads cases: a rebuild cannot share the cases out."""

    name = "reads_cases"
    tables: ClassVar[dict[str, str]] = {"reads_cases": "position BIGINT PRIMARY KEY"}

    def handle(self, tx: Any, change: Any, suffix: str = "") -> None:
        """Nothing: only its kind matters here."""


class FailsInPartOne(CaseRowsProjection):
    """Keyed by case; refuses the cases the second of two parts takes, as a crash would."""

    name = "fails_in_part_one"
    tables: ClassVar[dict[str, str]] = {"fails_in_part_one": "case_id TEXT NOT NULL"}
    case_columns: ClassVar[dict[str, tuple[str, ...]]] = {"fails_in_part_one": ("case_id",)}

    def case_rows(self, case: Case, event: CaseEvent, position: int) -> dict[str, list[Row]]:
        if part_of(case.id, 2) == 1:
            raise RuntimeError("a part's batch failed")
        return {"fails_in_part_one": [(str(case.id),)]}


class CollectorThresholds(CaseRowsProjection):
    """Keyed by case; writes, for each case, the collector's first threshold where it ran."""

    name = "collector_thresholds"
    tables: ClassVar[dict[str, str]] = {
        "collector_thresholds": "case_id TEXT NOT NULL, part INTEGER NOT NULL, "
        "threshold INTEGER NOT NULL"
    }
    case_columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "collector_thresholds": ("case_id", "part", "threshold")
    }

    def case_rows(self, case: Case, event: CaseEvent, position: int) -> dict[str, list[Row]]:
        row = (str(case.id), part_of(case.id, 2), gc.get_threshold()[0])
        return {"collector_thresholds": [row]}


def test_every_part_of_a_rebuild_runs_the_collector_less_often(postgres_schema_url: str) -> None:
    """PostgreSQL only: there is no part on SQLite. Part 1 is a process of its own."""
    before = gc.get_threshold()
    app = build_application(postgres_schema_url)
    db = open_database(postgres_schema_url)
    try:
        synthetic.seed_directory(app)
        synthetic.generate_cases(app, cases=8, seed=5, now=NOW - timedelta(minutes=1))
        rebuild(app, db, [CollectorThresholds()], processes=2)
        with db.reading() as tx:
            rows = tx.fetchall("SELECT DISTINCT part, threshold FROM collector_thresholds")
    finally:
        db.close()
        app.close()
    assert sorted(rows) == [(0, BULK_THRESHOLDS[0]), (1, BULK_THRESHOLDS[0])]
    assert gc.get_threshold() == before


def test_a_failing_part_fails_the_rebuild_before_any_swap(postgres_schema_url: str) -> None:
    """PostgreSQL only: there is no part on SQLite."""
    app = build_application(postgres_schema_url)
    db = open_database(postgres_schema_url)
    try:
        synthetic.seed_directory(app)
        synthetic.generate_cases(app, cases=6, seed=5, now=NOW - timedelta(minutes=1))
        assert any(part_of(case_id, 2) == 1 for case_id in app.stream_ends(10**9))
        with pytest.raises(RuntimeError, match="part's batch failed"):
            rebuild(app, db, [FailsInPartOne()], processes=2)
        assert "fails_in_part_one" not in positions_named(db, "fails_in_part_one%")
        with db.reading() as tx:  # nothing swapped in: no live table
            assert tx.fetchone("SELECT to_regclass('fails_in_part_one')") == (None,)
        assert positions_named(db, "%@part%")  # where the parts had got to
        with pytest.raises(RuntimeError, match="part's batch failed"):
            rebuild(app, db, [FailsInPartOne()], processes=1)
        assert positions_named(db, "%@part%") == []  # a rebuild starts from nothing
    finally:
        db.close()
        app.close()


def test_the_cli_rebuilds_in_as_many_processes_as_asked(  # noqa: PLR0917 -- fixtures
    seeded: ReferralApplication,
    db: Database,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("REFERRAL_DATABASE_URL", database_url)
    monkeypatch.setenv("REFERRAL_DATA_DIR", str(tmp_path))
    parted: list[int] = []
    in_parts = rebuild_parts.rebuild_in_parts

    def counted(runner: ProjectionRunner, pg: PostgresDatabase, upto: int, count: int) -> None:
        parted.append(count)
        in_parts(runner, pg, upto, count)

    monkeypatch.setattr(rebuild_parts, "rebuild_in_parts", counted)
    assert main(["projections", "rebuild", "--processes", "2"]) == 0
    position = seeded.recorder.max_notification_id()
    assert f"up to position {position}" in capsys.readouterr().out
    assert parted == ([2] if isinstance(db, PostgresDatabase) else [])
    rebuilt = {p.name: table_rows(db, p) for p in all_projections()}
    rebuild(seeded, db, all_projections(), swap=False, suffix="_one", processes=1)
    assert {p.name: table_rows(db, p, "_one") for p in all_projections()} == rebuilt
    for bad in ("0", "two"):
        with pytest.raises(SystemExit) as exit_info:
            main(["projections", "rebuild", "--processes", bad])
        assert exit_info.value.code == 2
        assert "--processes" in capsys.readouterr().err
