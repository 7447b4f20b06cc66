"""Integrity: verifying the log against reading it, and appends with sealing and chaining.

Verification. A log of N events (1,000,000; quick: 5,000) is written straight into an events
table: stored events of this service (a sealed `ChildIdentified` opening each stream, then
sealed `ServiceDelivered`, recorded once through the application), replicated over streams of
20 events interleaved a thousand at a time, each with its chain header, with the Merkle leaves
and a signed tree head every 1,000 leaves as the integrity read model writes them. In the same
run, turn by turn:

* reading the log: every row of the events table in log order, as the verifier reads it
  (`adapters.integrity.log_reader`), hashing nothing;
* reading the log as the application does: `recorder.select_notifications`, 10,000 a page;
* verifying it: `projections.verification.verify_log`, every chain link, leaf and signed head.

Target: verification at least 0.5 of the first reading rate. PostgreSQL at N, SQLite at N/4.

Appends. `ServiceDelivered`, one per transaction, one client, round robin over existing cases,
as in the store section: the service as built (identifying fields sealed under case keys,
stored events chained) against `ReferralApplication` with eventsourcing's own recorder and
mapper (neither). Target: at least 0.85. Opening a case, which also creates and commits its
key, is shown beside it without a target.
"""

from __future__ import annotations

import base64
import os
import secrets
import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID, uuid4

import psycopg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from psycopg import sql

from adapters.crypto.master import MASTER_KEYS_SETTING, MasterKeys
from adapters.integrity.chain import (
    HEADER_SIZE,
    ZERO_HASH,
    event_hash,
    event_leaf_hash,
    with_header,
)
from adapters.integrity.log_reader import iter_events
from adapters.integrity.merkle import MerkleTree
from adapters.integrity.tree_head import TreeHeadSigner
from adapters.integrity.verify import case_text
from adapters.store import ProtectedApplication, build_application, parse_database_url
from bench.common import (
    Section,
    Settings,
    Table,
    fmt_rate,
    fmt_ratio,
    interleaved_rates,
    median,
    paired_ratio,
    postgres_schema,
    sqlite_path,
    verdict,
    with_schema,
)
from bench.store import OPENING, ReferralSubject, envelope
from projections.db import open_database
from projections.integrity import IntegrityProjection
from projections.verification import verify_log
from referral_core.application import ReferralApplication

TARGET_VERIFY = 0.5
TARGET_APPEND = 0.85
STREAM_LENGTH = 20
INTERLEAVE = 1000
EVERY = 1000
PAGE = 10_000
SIGNED_AT = datetime(2026, 11, 29, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Sizes:
    events: int
    verify_repeats: int
    appends: int
    append_repeats: int
    cases: int


FULL = Sizes(events=1_000_000, verify_repeats=3, appends=300, append_repeats=5, cases=20)
QUICK = Sizes(events=5_000, verify_repeats=2, appends=20, append_repeats=2, cases=4)


def use_throwaway_keys() -> None:
    """Every section builds its stores with `build_application`: give them a master key."""
    if not os.environ.get(MASTER_KEYS_SETTING):
        key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
        os.environ[MASTER_KEYS_SETTING] = f"bench:{key}"


def throwaway_keys() -> MasterKeys:
    return MasterKeys.parse(f"bench:{base64.b64encode(secrets.token_bytes(32)).decode()}")


# -- building a log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Template:
    """The stored bodies (state less chain header) of real events of this service."""

    opening: tuple[str, bytes]
    later: tuple[str, bytes]


def templates() -> Template:
    """Record one case through the application, in a scratch store, and keep its bodies."""
    with sqlite_path("template.sqlite") as path:
        app = build_application(f"sqlite:///{path}", master_keys=throwaway_keys())
        try:
            subject = ReferralSubject(app, 1)
            subject(1)
            first, second = app.recorder.select_events(subject.case_ids[0])[:2]
        finally:
            app.close()
    return Template(
        (first.topic, first.state[HEADER_SIZE:]), (second.topic, second.state[HEADER_SIZE:])
    )


EventTuple = tuple[UUID, int, str, bytes]
LeafTuple = tuple[int, int, str, int, str, str]


def generate(
    count: int, template: Template, signer: TreeHeadSigner
) -> Iterator[tuple[EventTuple, LeafTuple, tuple[Any, ...] | None]]:
    """(event row, leaf row, tree-head row or None) for positions 1..count, chained."""
    tree = MerkleTree()
    position = 0
    while position < count:
        block = [uuid4() for _ in range(INTERLEAVE)]
        last: dict[UUID, bytes] = {}
        for version in range(1, STREAM_LENGTH + 1):
            topic, body = template.opening if version == 1 else template.later
            for stream in block:
                if position >= count:
                    return
                position += 1
                state = with_header(last.get(stream, ZERO_HASH), body)
                digest = event_hash(stream, version, topic, state)
                last[stream] = digest
                leaf = event_leaf_hash(position, digest)
                tree.append(leaf)
                head = None
                if tree.size % EVERY == 0:
                    sth = signer.sign(tree.size, tree.root(), SIGNED_AT)
                    head = (
                        sth.tree_size,
                        sth.root_hash.hex(),
                        sth.timestamp.isoformat(),
                        sth.key_id,
                        sth.signature.hex(),
                        position,
                    )
                leaf_row = (position - 1, position, case_text(stream), version, topic, leaf.hex())
                yield (stream, version, topic, state), leaf_row, head


def fill_postgres(url: str, schema: str, count: int, template: Template, signer: Any) -> None:
    options = f"-c search_path={schema}"
    heads: list[tuple[Any, ...]] = []
    with (
        psycopg.connect(url, options=options) as events_conn,
        psycopg.connect(url, options=options) as leaves_conn,
        events_conn.cursor() as events_cur,
        leaves_conn.cursor() as leaves_cur,
        events_cur.copy(
            "COPY referral_events (originator_id, originator_version, topic, state) FROM STDIN"
        ) as events_copy,
        leaves_cur.copy(
            "COPY merkle_leaves (leaf_index, position, originator_id, version, topic, leaf_hash) "
            "FROM STDIN"
        ) as leaves_copy,
    ):
        for event_row, leaf_row, head in generate(count, template, signer):
            events_copy.write_row(event_row)
            leaves_copy.write_row(leaf_row)
            if head is not None:
                heads.append(head)
    with psycopg.connect(url, options=options) as conn:
        conn.cursor().executemany(
            sql.SQL("INSERT INTO tree_heads VALUES (%s, %s, %s, %s, %s, %s)"), heads
        )
        conn.execute("ANALYZE")


def fill_sqlite(path: str, count: int, template: Template, signer: Any) -> None:
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN")
        events: list[tuple[Any, ...]] = []
        leaves: list[tuple[Any, ...]] = []
        for event_row, leaf_row, head in generate(count, template, signer):
            stream, version, topic, state = event_row
            events.append((stream.hex, version, topic, state))
            leaves.append(leaf_row)
            if head is not None:
                conn.execute("INSERT INTO tree_heads VALUES (?, ?, ?, ?, ?, ?)", head)
            if len(events) >= PAGE:
                _flush_sqlite(conn, events, leaves)
        _flush_sqlite(conn, events, leaves)
        conn.execute("COMMIT")
    finally:
        conn.close()


def _flush_sqlite(
    conn: sqlite3.Connection, events: list[tuple[Any, ...]], leaves: list[tuple[Any, ...]]
) -> None:
    conn.executemany("INSERT INTO stored_events VALUES (?, ?, ?, ?)", events)
    conn.executemany("INSERT INTO merkle_leaves VALUES (?, ?, ?, ?, ?, ?)", leaves)
    events.clear()
    leaves.clear()


# -- verification --------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyFigures:
    events: int
    event_bytes: int
    build_seconds: float
    raw: float
    log: float
    verify: float
    over_raw: float
    over_log: float


def measure_verification(
    url: str, count: int, repeats: int, fill: Callable[..., None]
) -> VerifyFigures:
    template = templates()
    signer = TreeHeadSigner(Ed25519PrivateKey.generate())
    app = build_application(url, master_keys=throwaway_keys())
    db = open_database(url)
    try:
        with db.transaction() as tx:
            IntegrityProjection().create(tx)
        started = time.perf_counter()
        fill(count, template, signer)
        build = time.perf_counter() - started
        total = app.recorder.max_notification_id() or 0
        raw_rates: list[float] = []
        log_rates: list[float] = []
        verify_rates: list[float] = []
        for _ in range(repeats):
            raw_rates.append(total / _timed(lambda: _read_raw(app)))
            log_rates.append(total / _timed(lambda: _read_log(app)))
            verify_rates.append(total / _timed(lambda: _verify(app, db, signer)))
    finally:
        db.close()
        app.close()
    return VerifyFigures(
        total,
        len(template.later[1]) + HEADER_SIZE,
        build,
        median(raw_rates),
        median(log_rates),
        median(verify_rates),
        paired_ratio(verify_rates, raw_rates),
        paired_ratio(verify_rates, log_rates),
    )


def _timed(action: Callable[[], object]) -> float:
    started = time.perf_counter()
    action()
    return time.perf_counter() - started


def _read_raw(app: ProtectedApplication) -> int:
    return sum(1 for _ in iter_events(app.recorder))


def _read_log(app: ProtectedApplication) -> int:
    seen, after = 0, 0
    while True:
        page = app.recorder.select_notifications(after, PAGE, inclusive_of_start=False)
        if not page:
            return seen
        seen += len(page)
        after = page[-1].id


def _verify(app: ProtectedApplication, db: Any, signer: TreeHeadSigner) -> None:
    report = verify_log(app, db, public_key=signer.public_key, checkpoint_every=EVERY)
    if not report.ok:
        raise RuntimeError(f"the benchmark log does not verify: {report.summary()}")


@contextmanager
def postgres_log() -> Iterator[tuple[str, Callable[..., None]]]:
    with postgres_schema("bench_integrity") as (url, schema):
        scoped = with_schema(url, schema)

        def fill(count: int, template: Template, signer: Any) -> None:
            fill_postgres(url, schema, count, template, signer)

        yield scoped, fill


@contextmanager
def sqlite_log() -> Iterator[tuple[str, Callable[..., None]]]:
    with sqlite_path("integrity.sqlite") as path:

        def fill(count: int, template: Template, signer: Any) -> None:
            fill_sqlite(str(path), count, template, signer)

        yield f"sqlite:///{path}", fill


# -- appends -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppendFigures:
    plain: float
    sealed: float
    ratio: float
    plain_opening: float
    sealed_opening: float
    opening_ratio: float


class Opener:
    """Open `n` new cases (the sealed application first creates and commits each key)."""

    def __init__(self, app: ReferralApplication) -> None:
        self.app = app

    def __call__(self, n: int) -> None:
        for _ in range(n):
            self.app.open_case(event_type="ChildIdentified", payload=OPENING, envelope=envelope())


def measure_appends(sealed_url: str, plain_url: str, sizes: Sizes) -> AppendFigures:
    sealed_app = build_application(sealed_url, master_keys=throwaway_keys())
    plain_app = ReferralApplication(env=parse_database_url(plain_url).env)
    try:
        sealed = ReferralSubject(sealed_app, sizes.cases)
        plain = ReferralSubject(plain_app, sizes.cases)
        rates = interleaved_rates(
            {"plain": plain, "sealed": sealed}, sizes.appends, sizes.append_repeats
        )
        openings = interleaved_rates(
            {"plain": Opener(plain_app), "sealed": Opener(sealed_app)},
            max(1, sizes.appends // 3),
            sizes.append_repeats,
        )
    finally:
        sealed_app.close()
        plain_app.close()
    return AppendFigures(
        median(rates["plain"]),
        median(rates["sealed"]),
        paired_ratio(rates["sealed"], rates["plain"]),
        median(openings["plain"]),
        median(openings["sealed"]),
        paired_ratio(openings["sealed"], openings["plain"]),
    )


@contextmanager
def append_stores() -> Iterator[list[tuple[str, str, str]]]:
    with (
        postgres_schema("bench_sealed") as (url, sealed_schema),
        postgres_schema("bench_plain") as (_, plain_schema),
        sqlite_path("sealed.sqlite") as sealed_path,
        sqlite_path("plain.sqlite") as plain_path,
    ):
        yield [
            ("postgres", with_schema(url, sealed_schema), with_schema(url, plain_schema)),
            ("sqlite", f"sqlite:///{sealed_path}", f"sqlite:///{plain_path}"),
        ]


# -- the section ---------------------------------------------------------------------------------


def run(settings: Settings) -> list[Table]:
    sizes = QUICK if settings.quick else FULL
    verification: dict[str, VerifyFigures] = {}
    for backend, opener, count in (
        ("postgres", postgres_log, sizes.events),
        ("sqlite", sqlite_log, max(1, sizes.events // 4)),
    ):
        with opener() as (url, fill):
            verification[backend] = measure_verification(url, count, sizes.verify_repeats, fill)
    appends: dict[str, AppendFigures] = {}
    with append_stores() as stores:
        for backend, sealed_url, plain_url in stores:
            appends[backend] = measure_appends(sealed_url, plain_url, sizes)
    return [verification_table(verification, sizes), append_table(appends, sizes)]


def verification_table(figures: dict[str, VerifyFigures], sizes: Sizes) -> Table:
    table = Table(
        f"integrity: verifying the log vs reading it (events/s, median of {sizes.verify_repeats})",
        [
            "backend",
            "events",
            "event bytes",
            "read (bare)",
            "read (app)",
            "verify",
            "verify/read",
            f">= {TARGET_VERIFY}",
            "verify/read (app)",
        ],
    )
    for backend, f in figures.items():
        table.rows.append(
            [
                backend,
                f"{f.events:,}",
                str(f.event_bytes),
                fmt_rate(f.raw),
                fmt_rate(f.log),
                fmt_rate(f.verify),
                fmt_ratio(f.over_raw),
                verdict(f.over_raw >= TARGET_VERIFY),
                fmt_ratio(f.over_log),
            ]
        )
    table.notes.append(
        "read (bare): the events table in log order as the verifier reads it; read (app): "
        "recorder.select_notifications; verify: chains, leaves and signed heads of the whole log."
    )
    table.notes.append(
        "Built straight into the tables (not timed): "
        + ", ".join(f"{b} {f.build_seconds:.0f} s" for b, f in figures.items())
        + f"; a signed tree head every {EVERY} leaves."
    )
    return table


def append_table(figures: dict[str, AppendFigures], sizes: Sizes) -> Table:
    table = Table(
        f"integrity: appends with sealing and chaining vs without (events/s, median of "
        f"{sizes.append_repeats} x {sizes.appends})",
        [
            "backend",
            "plain",
            "sealed+chained",
            "ratio",
            f">= {TARGET_APPEND}",
            "open: plain",
            "open: sealed",
            "open ratio",
        ],
    )
    for backend, f in figures.items():
        table.rows.append(
            [
                backend,
                fmt_rate(f.plain),
                fmt_rate(f.sealed),
                fmt_ratio(f.ratio),
                verdict(f.ratio >= TARGET_APPEND),
                fmt_rate(f.plain_opening),
                fmt_rate(f.sealed_opening),
                fmt_ratio(f.opening_ratio),
            ]
        )
    table.notes.append(
        f"Appends go round {sizes.cases} open cases per subject. Opening a case also creates "
        "and commits its key first (no target)."
    )
    return table


SECTION = Section(
    "integrity",
    "verifying the log vs reading it; appends sealed and chained vs plain",
    run,
)
