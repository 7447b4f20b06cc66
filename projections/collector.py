"""How often the cyclic garbage collector runs in a process that applies the log in bulk.

A rebuild, or a worker catching up, keeps many cases folded at once (up to
`runner.REBUILD_CASE_STATES`), each a few hundred dicts and lists, and makes a few dozen more
objects per event it decodes and folds. With the interpreter's default thresholds a collection
of the youngest generation runs every 700 allocations, so every few events, and every tenth of
those walks the middle generation too: a third of the CPU time of decoding and folding the log
went to the collector (measured at 149,000 entries: 25.5 µs an event with the defaults, 18.1 µs
with a first threshold of 50,000, 17.0 µs with no collection at all).

Nothing these processes build refers back to itself (cases, events and rows are trees of plain
values, freed by reference counting as soon as they are dropped), so running the collector less
often only keeps the garbage of a rare cycle a little longer. The request-serving processes keep
the defaults: there a collection of a large young generation would land on one request.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

BULK_THRESHOLDS = (50_000, 10, 10)
"""gc thresholds while the log is applied in bulk (the defaults are 700, 10, 10)."""


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Run the cyclic collector at `BULK_THRESHOLDS` inside (a `with` block, or a function it
    decorates), and as before afterwards."""
    previous = gc.get_threshold()
    gc.set_threshold(*BULK_THRESHOLDS)
    try:
        yield
    finally:
        gc.set_threshold(*previous)
