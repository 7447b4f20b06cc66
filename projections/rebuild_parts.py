"""A rebuild shared out among processes, each folding and writing the rows of its own cases.

Decoding the log and folding cases is most of a rebuild's work, and it is all Python: one
process uses one core. The keyed read models' rows of a case depend on that case alone, so the
cases can be shared out among n parts (`projections.runner.part_of`). Part 0 runs in
the rebuilding process (`projections.runner.rebuild`): it reads every entry, hands every change
to the read models that are not keyed by case (those read no case: `Projection.reads_cases`)
and every event that is not a case's to the keyed ones, and folds only its own cases. Other
parts' case events it decodes by their envelope only (type, ids, times): their sealed values
stay sealed and their cases' keys are not fetched, which took a rebuild of 149,000 entries
in two processes from 12,500 to 14,400 entries a second. Parts 1 to n-1 are spawned processes
that read and decode only their cases' events.

Every part stops at the position the rebuild planned, keeps its own positions (so a part's
batch is still one transaction with its rows), and writes into the same fresh tables, rows of
different cases. When every part has reached the plan, the read models' positions are set to
it and the parts' are deleted; the rebuild then goes on alone up to the end of the log and
swaps the tables in as usual. A part that fails fails the rebuild, whose next run starts again
from fresh tables.

Parts are spawned: each imports the program's main module afresh, so a script that calls
`rebuild` must keep its work under `if __name__ == "__main__":`, as multiprocessing requires
(`referral` and `python -m bench` do). One that does not starts a second rebuild in each part,
which drops the tables under the first (the integrity read model then refuses to go on).
"""

from __future__ import annotations

import multiprocessing
from dataclasses import dataclass, field
from multiprocessing.reduction import ForkingPickler
from types import MappingProxyType
from typing import Any
from uuid import UUID

from adapters.store import build_application
from projections.base import Projection
from projections.collector import fewer_collections
from projections.db import PostgresDatabase, open_database
from projections.runner import (
    PART_MARK,
    REBUILD_CASE_STATES,
    TRACKING_TABLE,
    ProjectionRunner,
    part_of,
    write_positions,
)


def _mapping(items: dict[Any, Any]) -> MappingProxyType[Any, Any]:
    return MappingProxyType(items)


# Read models hold read-only rules tables (`MappingProxyType`), which pickle cannot send to a
# spawned process as they are: they go as the dicts they show, and come back read-only.
ForkingPickler.register(MappingProxyType, lambda proxy: (_mapping, (dict(proxy),)))


@dataclass(frozen=True)
class Part:
    """What a spawned part needs: where, which read models, up to where, and which cases."""

    database_url: str = field(repr=False)  # may hold a password
    projections: tuple[Projection, ...]
    suffix: str
    upto: int
    index: int
    count: int
    batch_size: int | None
    final: dict[UUID, int]
    """The plan (each stream's last position) for this part's cases only."""


def part_name(suffix: str, index: int) -> str:
    """The suffix of a part's positions."""
    return f"{suffix}{PART_MARK}{index}"


def rebuild_in_parts(
    runner: ProjectionRunner, db: PostgresDatabase, upto: int, count: int
) -> None:
    """Bring a rebuild's runner to `upto` with `count` processes (this one and `count - 1`)."""
    final = runner.final or {}
    keyed = tuple(p for p in runner.projections if p.keyed_by_case)
    parts = [
        Part(
            database_url=db.url,
            projections=keyed,
            suffix=runner.suffix,
            upto=upto,
            index=index,
            count=count,
            batch_size=runner.requested_batch,
            final={case: at for case, at in final.items() if part_of(case, count) == index},
        )
        for index in range(1, count)
    ]
    context = multiprocessing.get_context("spawn")
    with context.Pool(len(parts)) as pool:
        pending = pool.map_async(run_part, parts)
        _run_as_part(runner, upto, 0, count)
        reached = pending.get()
    if any(position != upto for position in reached):
        raise RuntimeError(f"a part of the rebuild stopped at {reached}, not at {upto}")
    with db.transaction() as tx:
        write_positions(tx, [runner.tracking_name(p) for p in runner.projections], upto)
        tx.execute(
            f"DELETE FROM {TRACKING_TABLE} WHERE name LIKE ?",
            (f"%{runner.suffix}{PART_MARK}%",),
        )


def _make_part(runner: ProjectionRunner, upto: int, index: int, count: int) -> None:
    """Make `runner` part `index` of `count`, stopping at `upto`, with positions of its own."""
    runner.partition, runner.stop = (index, count), upto
    runner.tracking_suffix = part_name(runner.suffix, index)


def _run_as_part(runner: ProjectionRunner, upto: int, index: int, count: int) -> None:
    """Run `runner` as part `index` up to `upto`, then make it the whole rebuild's again."""
    _make_part(runner, upto, index, count)
    try:
        runner.catch_up()
    finally:
        runner.partition, runner.stop = None, None
        runner.tracking_suffix = runner.suffix
        runner.states.forget()  # it folded only its own cases


@fewer_collections()
def run_part(part: Part) -> int:
    """In a spawned process: rebuild one part's cases up to the plan; return where it got."""
    app = build_application(part.database_url, create_tables=False)
    db = open_database(part.database_url)
    try:
        runner = ProjectionRunner(
            app,
            db,
            part.projections,
            batch_size=part.batch_size,
            suffix=part.suffix,
            create_tables=False,
        )
        runner.final = part.final
        runner.states.resize(max(runner.states.size, min(len(part.final), REBUILD_CASE_STATES)))
        _make_part(runner, part.upto, part.index, part.count)
        runner.catch_up()
        return min(runner.positions().values(), default=0)
    finally:
        db.close()
        app.close()
