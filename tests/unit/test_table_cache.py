"""Counted statistics tables are served again only while nothing newer is owed to the reader."""

from __future__ import annotations

from api.table_cache import TableCache


class Counter:
    def __init__(self) -> None:
        self.counts = 0

    def __call__(self) -> int:
        self.counts += 1
        return self.counts


def test_a_table_is_kept_while_the_read_models_stay_where_it_was_counted() -> None:
    clock = [0.0]
    cache, count = TableCache(clock=lambda: clock[0]), Counter()
    assert cache.table("t", position=10, seconds=0, count=count) == (1, 10)
    clock[0] += 3600  # however long ago: nothing new can have changed it
    assert cache.table("t", position=10, seconds=0, count=count) == (1, 10)
    assert cache.table("t", position=11, seconds=0, count=count) == (2, 11)  # they moved
    assert cache.table("other", position=11, seconds=0, count=count) == (3, 11)


def test_a_table_is_kept_a_few_seconds_after_the_read_models_move_on() -> None:
    clock = [0.0]
    cache, count = TableCache(clock=lambda: clock[0]), Counter()
    assert cache.table("t", position=10, seconds=5, count=count) == (1, 10)
    clock[0] += 5
    assert cache.table("t", position=12, seconds=5, count=count) == (1, 10)
    clock[0] += 0.5
    assert cache.table("t", position=12, seconds=5, count=count) == (2, 12)


def test_a_reader_asking_for_a_newer_position_gets_a_table_counted_at_it() -> None:
    cache, count = TableCache(clock=lambda: 0.0), Counter()
    cache.table("t", position=10, seconds=60, count=count)
    assert cache.table("t", position=12, seconds=60, count=count, at_least=10) == (1, 10)
    assert cache.table("t", position=12, seconds=60, count=count, at_least=11) == (2, 12)


def test_only_the_most_recent_tables_are_kept() -> None:
    cache, count = TableCache(size=2, clock=lambda: 0.0), Counter()
    for key in ("a", "b", "c"):
        cache.table(key, position=1, seconds=60, count=count)
    assert cache.table("c", position=1, seconds=60, count=count) == (3, 1)
    assert cache.table("a", position=1, seconds=60, count=count) == (4, 1)  # was dropped
