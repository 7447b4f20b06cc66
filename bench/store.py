"""The event store: append throughput against two baselines, and case load times with snapshots.

Appends, one event per transaction and one client, on PostgreSQL and on SQLite:

(a) the driver alone: one INSERT of a row the size of our stored event, then COMMIT;
(b) a bare `eventsourcing` application with a trivial aggregate: get it, trigger one event of the
    same size, save (it snapshots every 50 events, as ours does, so both do the same store work);
(c) our `ReferralApplication`, built by `adapters.store.build_application`, appending one validated
    `ServiceDelivered` with `expected_version` to existing cases, round robin.

(b) and (c) round-robin over the same number of aggregates, so their streams grow alike.
Loads: one case of 1,000 events read through the repository with snapshots, and through an
application of the same class with snapshotting off (same tables, same mapper, no snapshot store).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, ClassVar, cast
from uuid import UUID, uuid4, uuid5

import psycopg
from eventsourcing.application import Application
from eventsourcing.domain import Aggregate, event
from psycopg import sql

from adapters.store import (
    ProtectedApplication,
    application_env,
    build_application,
    parse_database_url,
)
from bench.common import (
    Section,
    Settings,
    Table,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    interleaved_rates,
    median,
    paired_ratio,
    postgres_schema,
    sqlite_path,
    timings_ms,
    verdict,
    with_schema,
)
from referral_core.application import SNAPSHOT_INTERVAL, ReferralApplication
from referral_core.case import Case
from referral_core.clock import utc_now
from referral_core.envelope import Actor, Envelope
from referral_core.vocab import Role

BENCH_NAMESPACE = UUID("5b0f4c55-1d7e-4a8e-9a51-0c3c2b7f6e10")
AGENCY = str(uuid5(BENCH_NAMESPACE, "bench-ngo"))
ACTOR = Actor("bench-user", AGENCY, Role.CASEWORKER)
TARGET_RATIO_CB = 0.8
TARGET_LOAD_MS = 5.0
# Sized so that one stored ServiceDelivered is about 1 KB.
NOTES = ("Synthetic session note for the benchmark; no real person. " * 12).strip()

OPENING: dict[str, Any] = {
    "place": "Bench city",
    "country": "TH",
    "method": "proactive",
    "indicators": ["no identity documents"],
    "exploitation_types": ["sexual_exploitation"],
    "sex": "female",
    "age_years": 15,
    "age_is_estimate": True,
    "minority_presumed": True,
    "nationality": "LA",
    "given_name": "Synthetic",
    "family_name": "Child",
}
SERVICE: dict[str, Any] = {
    "service_type": "psychological",
    "provider_agency_id": AGENCY,
    "delivered_on": "2026-11-28",
    "outcome": "ongoing",
    "notes": NOTES,
}


@dataclass(frozen=True)
class Sizes:
    """How much work one run does."""

    appends: int  # per repeat and subject
    repeats: int
    aggregates: int  # streams the appends go round
    case_events: int  # the case whose load time is measured
    loads: int


FULL = Sizes(appends=500, repeats=7, aggregates=20, case_events=1000, loads=20)
QUICK = Sizes(appends=20, repeats=2, aggregates=4, case_events=120, loads=3)


# -- (b): the bare eventsourcing baseline --------------------------------------------------------


class Note(Aggregate):
    """A trivial aggregate: counts its events and keeps the last text."""

    def __init__(self) -> None:
        self.count = 0
        self.text = ""

    @event("Noted")
    def note(self, text: str) -> None:
        self.count += 1
        self.text = text


class BareApplication(Application[UUID]):
    """Nothing but eventsourcing: no validation, no rules, no fingerprints."""

    name = "BenchBare"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {Note: SNAPSHOT_INTERVAL}


class ReplayingReferralApplication(ProtectedApplication):
    """Our application with snapshotting off: every load replays the whole stream."""

    name = ReferralApplication.name  # the same tables, not ones named after this class
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {}


# -- subjects: each is a callable appending `n` events --------------------------------------------


def envelope() -> Envelope:
    return Envelope(
        event_id=uuid4(),
        actor=ACTOR,
        occurred_at=utc_now() - timedelta(minutes=1),
        correlation_id="bench",
    )


class ReferralSubject:
    """(c): open cases, then append ServiceDelivered to them round robin."""

    def __init__(self, app: ReferralApplication, cases: int) -> None:
        self.app = app
        self.versions: dict[UUID, int] = {}
        for _ in range(cases):
            opened = app.open_case(
                event_type="ChildIdentified", payload=OPENING, envelope=envelope()
            )
            self.versions[opened.case_id] = opened.version
        self.case_ids = list(self.versions)
        self.turn = 0

    def append_one(self, case_id: UUID) -> None:
        result = self.app.append(
            case_id,
            expected_version=self.versions[case_id],
            event_type="ServiceDelivered",
            payload=SERVICE,
            envelope=envelope(),
        )
        self.versions[case_id] = result.version

    def __call__(self, n: int) -> None:
        for _ in range(n):
            self.append_one(self.case_ids[self.turn % len(self.case_ids)])
            self.turn += 1

    def event_bytes(self) -> int:
        """The size of the state of one stored ServiceDelivered."""
        case_id = self.case_ids[0]
        self.append_one(case_id)
        stored = self.app.recorder.select_events(case_id, desc=True, limit=1)
        return len(stored[0].state)


class BareSubject:
    """(b): get a trivial aggregate, trigger one event of `event_bytes`, save; round robin."""

    def __init__(self, app: BareApplication, aggregates: int, event_bytes: int) -> None:
        self.app = app
        probe = Note()
        probe.note("")
        overhead = len(app.mapper.to_stored_event(probe.collect_events()[-1]).state)
        self.text = "x" * max(0, event_bytes - overhead)
        self.ids: list[UUID] = []
        for _ in range(aggregates):
            note = Note()
            app.save(note)
            self.ids.append(note.id)
        self.turn = 0

    def __call__(self, n: int) -> None:
        for _ in range(n):
            note = cast("Note", self.app.repository.get(self.ids[self.turn % len(self.ids)]))
            note.note(self.text)
            self.app.save(note)
            self.turn += 1


@contextmanager
def raw_postgres(url: str, schema: str, event_bytes: int) -> Iterator[Callable[[int], None]]:
    """(a) on PostgreSQL: psycopg (binary build), one INSERT and one COMMIT per row."""
    table = sql.Identifier(schema, "scratch")
    insert = sql.SQL(
        "INSERT INTO {} (originator_id, originator_version, state) VALUES (%s, %s, %s)"
    ).format(table)
    body = b"x" * event_bytes
    with psycopg.connect(url) as conn:
        conn.execute(
            sql.SQL(
                "CREATE TABLE {} (id bigserial PRIMARY KEY, originator_id uuid NOT NULL,"
                " originator_version integer NOT NULL, state bytea NOT NULL)"
            ).format(table)
        )
        conn.commit()
        counter = [0]

        def run(n: int) -> None:
            for _ in range(n):
                counter[0] += 1
                conn.execute(insert, (uuid4(), counter[0], body))
                conn.commit()

        yield run


@contextmanager
def raw_sqlite(path: str, event_bytes: int) -> Iterator[Callable[[int], None]]:
    """(a) on SQLite: the stdlib driver as eventsourcing uses it (WAL, explicit BEGIN, COMMIT)."""
    body = b"x" * event_bytes
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(
            "CREATE TABLE scratch (id INTEGER PRIMARY KEY, originator_id TEXT NOT NULL,"
            " originator_version INTEGER NOT NULL, state BLOB NOT NULL)"
        )
        counter = [0]

        def run(n: int) -> None:
            for _ in range(n):
                counter[0] += 1
                conn.execute("BEGIN")
                conn.execute(
                    "INSERT INTO scratch (originator_id, originator_version, state)"
                    " VALUES (?, ?, ?)",
                    (str(uuid4()), counter[0], body),
                )
                conn.commit()

        yield run
    finally:
        conn.close()


# -- one backend ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stores:
    """Where each subject of one backend keeps its data."""

    backend: str
    referral_url: str
    bare_url: str
    raw: Callable[[int], AbstractContextManager[Callable[[int], None]]]  # by event bytes


@contextmanager
def postgres_stores() -> Iterator[Stores]:
    with (
        postgres_schema("bench_raw") as (url, raw_schema),
        postgres_schema("bench_bare") as (_, bare_schema),
        postgres_schema("bench_referral") as (_, referral_schema),
    ):
        yield Stores(
            "postgres",
            with_schema(url, referral_schema),
            with_schema(url, bare_schema),
            lambda size: raw_postgres(url, raw_schema, size),
        )


@contextmanager
def sqlite_stores() -> Iterator[Stores]:
    with (
        sqlite_path("raw.sqlite") as raw_path,
        sqlite_path("bare.sqlite") as bare_path,
        sqlite_path("referral.sqlite") as referral_path,
    ):
        yield Stores(
            "sqlite",
            f"sqlite:///{referral_path}",
            f"sqlite:///{bare_path}",
            lambda size: raw_sqlite(str(raw_path), size),
        )


@dataclass(frozen=True)
class AppendFigures:
    longest_stream: int
    event_bytes: int
    raw: float
    bare: float
    referral: float
    c_over_b: float
    c_over_a: float


@dataclass(frozen=True)
class LoadFigures:
    events: int
    snapshot_bytes: int
    with_snapshots_ms: float
    without_snapshots_ms: float


def measure_appends(stores: Stores, sizes: Sizes) -> AppendFigures:
    referral_app = build_application(stores.referral_url)
    bare_app = BareApplication(env=parse_database_url(stores.bare_url).env)
    try:
        referral = ReferralSubject(referral_app, sizes.aggregates)
        event_bytes = referral.event_bytes()
        bare = BareSubject(bare_app, sizes.aggregates, event_bytes)
        with stores.raw(event_bytes) as raw:
            rates = interleaved_rates(
                {"raw": raw, "bare": bare, "referral": referral}, sizes.appends, sizes.repeats
            )
    finally:
        referral_app.close()
        bare_app.close()
    return AppendFigures(
        max(referral.versions.values()),
        event_bytes,
        median(rates["raw"]),
        median(rates["bare"]),
        median(rates["referral"]),
        paired_ratio(rates["referral"], rates["bare"]),
        paired_ratio(rates["referral"], rates["raw"]),
    )


def measure_loads(stores: Stores, sizes: Sizes) -> LoadFigures:
    app = build_application(stores.referral_url)
    replay = ReplayingReferralApplication(
        application_env(stores.referral_url), master_keys=app.keyring.master_keys
    )
    try:
        if app.snapshots is None or replay.snapshots is not None:
            raise RuntimeError("expected snapshots on the referral app and off on the replay")
        subject = ReferralSubject(app, 1)
        case_id = subject.case_ids[0]
        subject(sizes.case_events - 1)
        snapshot = app.snapshots.recorder.select_events(case_id, desc=True, limit=1)
        snapshot_bytes = len(snapshot[0].state) if snapshot else 0
        with_snapshots = timings_ms(lambda: app.repository.get(case_id), sizes.loads)
        without = timings_ms(lambda: replay.repository.get(case_id), sizes.loads)
        fast = cast("Case", app.repository.get(case_id))
        slow = cast("Case", replay.repository.get(case_id))
        if not (
            fast.version == slow.version == sizes.case_events and fast.entries == slow.entries
        ):
            raise RuntimeError("the two loads disagree about the case")
    finally:
        app.close()
        replay.close()
    return LoadFigures(sizes.case_events, snapshot_bytes, with_snapshots, without)


# -- the section ----------------------------------------------------------------------------------


def run(settings: Settings) -> list[Table]:
    sizes = QUICK if settings.quick else FULL
    appends: dict[str, AppendFigures] = {}
    loads: dict[str, LoadFigures] = {}
    for open_stores in (postgres_stores, sqlite_stores):
        with open_stores() as stores:
            appends[stores.backend] = measure_appends(stores, sizes)
            loads[stores.backend] = measure_loads(stores, sizes)
    return [append_table(appends, sizes), load_table(loads, sizes)]


def append_table(figures: dict[str, AppendFigures], sizes: Sizes) -> Table:
    table = Table(
        f"store: appends, 1 event per transaction, 1 client (events/s, median of "
        f"{sizes.repeats} x {sizes.appends})",
        [
            "backend",
            "event bytes",
            "(a) raw INSERT",
            "(b) eventsourcing",
            "(c) referral",
            "c/b",
            f"c/b >= {TARGET_RATIO_CB}",
            "c/a",
        ],
    )
    for backend, f in figures.items():
        table.rows.append(
            [
                backend,
                str(f.event_bytes),
                fmt_rate(f.raw),
                fmt_rate(f.bare),
                fmt_rate(f.referral),
                fmt_ratio(f.c_over_b),
                verdict(f.c_over_b >= TARGET_RATIO_CB),
                fmt_ratio(f.c_over_a),
            ]
        )
    longest = max(f.longest_stream for f in figures.values())
    table.notes.append(
        f"(b) and (c) go round {sizes.aggregates} streams, which grow to {longest} events, and "
        f"snapshot every {SNAPSHOT_INTERVAL};"
    )
    table.notes.append("(a) writes rows of the size of (c)'s stored events.")
    table.notes.append(
        "Rates are medians over repeats; ratios are medians of the ratios within each repeat."
    )
    return table


def load_table(figures: dict[str, LoadFigures], sizes: Sizes) -> Table:
    table = Table(
        f"store: load one case of {sizes.case_events:,} events (ms, median of {sizes.loads})",
        [
            "backend",
            "snapshots",
            "no snapshots",
            "us/event replayed",
            "snapshot bytes",
            f"snapshots < {TARGET_LOAD_MS:g} ms",
            f"no snapshots < {TARGET_LOAD_MS:g} ms",
        ],
    )
    for backend, f in figures.items():
        table.rows.append(
            [
                backend,
                fmt_ms(f.with_snapshots_ms),
                fmt_ms(f.without_snapshots_ms),
                f"{f.without_snapshots_ms * 1000 / f.events:.0f}",
                f"{f.snapshot_bytes:,}",
                verdict(f.with_snapshots_ms < TARGET_LOAD_MS),
                verdict(f.without_snapshots_ms < TARGET_LOAD_MS),
            ]
        )
    return table


SECTION = Section("store", "append throughput against baselines; case load times", run)
