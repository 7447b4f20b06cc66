"""Shared helpers of the benchmark sections: timing, medians, tables, and throwaway stores.

Every section measures its baselines in the same run as its subject, so the ratios it prints
compare like with like on whatever machine runs it. Nothing here asserts a target: targets
are printed next to the figures.
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

DATABASE_URL_SETTING = "REFERRAL_BENCH_DATABASE_URL"
TEST_DATABASE_URL_SETTING = "REFERRAL_TEST_DATABASE_URL"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


@dataclass(frozen=True)
class Settings:
    """What every section is told: whether this is a quick smoke run."""

    quick: bool = False


@dataclass(frozen=True)
class Section:
    """One benchmark section: a name to select it by, one line about it, and its run."""

    name: str
    about: str
    run: Callable[[Settings], list[Table]]


@dataclass
class Table:
    """One printed table: a title, column headings, rows of already formatted cells, notes."""

    title: str
    columns: Sequence[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def render(self) -> str:
        widths = [len(c) for c in self.columns]
        for row in self.rows:
            widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]

        def line(cells: Sequence[str]) -> str:
            first, *rest = (
                cell.ljust(w) if i == 0 else cell.rjust(w)
                for i, (cell, w) in enumerate(zip(cells, widths, strict=True))
            )
            return "  ".join([first, *rest]).rstrip()

        out = [f"== {self.title} ==", line(self.columns), line(["-" * w for w in widths])]
        out.extend(line(row) for row in self.rows)
        out.extend(f"  {note}" for note in self.notes)
        return "\n".join(out)


# -- timing --------------------------------------------------------------------------------------


def seconds(action: Callable[[], object]) -> float:
    """Wall-clock seconds one call of `action` takes."""
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def rate(operations: int, elapsed: float) -> float:
    """Operations per second."""
    return operations / elapsed if elapsed > 0 else float("inf")


def interleaved_rates(
    subjects: dict[str, Callable[[int], None]],
    operations: int,
    repeats: int,
    slices: int = 5,
) -> dict[str, list[float]]:
    """Operations/s of each subject in each repeat, measured so that drift hits all alike.

    Each subject is called once unmeasured (warm-up). Then each repeat runs every subject
    `operations` times in `slices` turns, the subjects taking turns slice by slice, so a burst
    of load from elsewhere on the machine falls on all of them rather than on one.
    """
    for run in subjects.values():
        run(max(1, operations // 10))
    per_slice = max(1, operations // slices)
    samples: dict[str, list[float]] = {name: [] for name in subjects}
    for _ in range(repeats):
        elapsed = dict.fromkeys(subjects, 0.0)
        for _ in range(slices):
            for name, run in subjects.items():
                start = time.perf_counter()
                run(per_slice)
                elapsed[name] += time.perf_counter() - start
        for name, total in elapsed.items():
            samples[name].append(rate(per_slice * slices, total))
    return samples


def paired_ratio(numerator: Sequence[float], denominator: Sequence[float]) -> float:
    """The median of the ratios of samples taken in the same repeat."""
    return median([n / d for n, d in zip(numerator, denominator, strict=True)])


def timings_ms(action: Callable[[], object], repeats: int) -> float:
    """Median milliseconds of `action` over `repeats` calls, after one unmeasured call."""
    action()
    return median([seconds(action) * 1000 for _ in range(repeats)])


# -- formatting ----------------------------------------------------------------------------------


def fmt_rate(value: float) -> str:
    return f"{value:,.0f}"


def fmt_ratio(value: float) -> str:
    return f"{value:.2f}"


def fmt_ms(value: float) -> str:
    return f"{value:.2f}" if value < 100 else f"{value:,.0f}"


def verdict(ok: bool) -> str:
    return "met" if ok else "MISSED"


# -- throwaway stores ----------------------------------------------------------------------------


def postgres_url() -> str:
    """The PostgreSQL database the benchmarks create their scratch schemas in."""
    return os.environ.get(
        DATABASE_URL_SETTING, os.environ.get(TEST_DATABASE_URL_SETTING, DEFAULT_POSTGRES_URL)
    )


def with_schema(url: str, schema: str) -> str:
    """The URL of `schema` in the database `url` names, as `adapters.store` reads it."""
    parts = urlsplit(url)
    return parts._replace(query=f"schema={schema}").geturl()


@contextmanager
def postgres_schema(prefix: str = "bench") -> Iterator[tuple[str, str]]:
    """A fresh schema, dropped afterwards: yields (database URL, schema name)."""
    url = postgres_url()
    schema = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    try:
        yield url, schema
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')


@contextmanager
def sqlite_path(name: str = "bench.sqlite") -> Iterator[Path]:
    """A path for a fresh SQLite file in a temporary directory, removed afterwards."""
    directory = Path(tempfile.mkdtemp(prefix="referral-bench-"))
    try:
        yield directory / name
    finally:
        shutil.rmtree(directory, ignore_errors=True)
