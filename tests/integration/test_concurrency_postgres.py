"""Concurrent writers on PostgreSQL through the real adapter: conflicts caught, nothing lost.

Two application instances race to append to one case at the same expected version: one wins,
the other gets a `VersionConflictError`, or, when both send the same event, a duplicate result.
Each race runs twice: with the threads released just before the call (the natural race), and
released just before `save`, after both have read the case and decided (so the store's own
optimistic lock must decide every round). Then eight threads append to eight cases at once and
the global log must hold every event exactly once, in increasing notification order.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from itertools import pairwise
from typing import Any
from uuid import UUID

import pytest
from eventsourcing.persistence import Notification

from adapters.store import build_application
from referral_core.application import AppendResult, ReferralApplication
from referral_core.envelope import Envelope
from referral_core.errors import VersionConflictError
from tests.support.builders import NGO, NOW, SHELTER, actor, envelope, example

pytestmark = pytest.mark.postgres

ROUNDS = 20
WRITERS = 8
EVENTS_PER_WRITER = 500
PAGE = 1000
JOIN_TIMEOUT = 60.0
RACE_POINTS = ["call", "save"]

Outcome = AppendResult | Exception


def fixed_clock() -> datetime:
    return NOW


@pytest.fixture
def two_apps(
    postgres_schema_url: str,
) -> Iterator[tuple[ReferralApplication, ReferralApplication]]:
    """Two separate application instances (two pools) on the same schema."""
    first = build_application(postgres_schema_url, clock=fixed_clock, pool_size=2)
    second = build_application(postgres_schema_url, clock=fixed_clock, pool_size=2)
    yield first, second
    first.close()
    second.close()


def open_case(app: ReferralApplication) -> UUID:
    result = app.open_case(
        event_type="ChildIdentified", payload=example("ChildIdentified"), envelope=envelope()
    )
    assert result.version == 1
    return result.case_id


def service(
    app: ReferralApplication, case_id: UUID, expected_version: int, env: Envelope
) -> Callable[[], AppendResult]:
    """One writer's command: append a ServiceDelivered at `expected_version`."""

    def call() -> AppendResult:
        return app.append(
            case_id,
            expected_version=expected_version,
            event_type="ServiceDelivered",
            payload=example("ServiceDelivered", outcome="completed"),
            envelope=env,
        )

    return call


def gate_saves(
    monkeypatch: pytest.MonkeyPatch, apps: tuple[ReferralApplication, ...]
) -> threading.Barrier:
    """Hold each app's `save` until every app has reached it: all have read and decided."""
    barrier = threading.Barrier(len(apps), timeout=JOIN_TIMEOUT)
    for app in apps:
        real_save = app.save

        def gated(*objs: Any, real_save: Callable[..., Any] = real_save, **kwargs: Any) -> Any:
            barrier.wait()
            return real_save(*objs, **kwargs)

        monkeypatch.setattr(app, "save", gated)
    return barrier


def race(
    calls: list[Callable[[], AppendResult]], start: threading.Barrier | None
) -> list[Outcome]:
    """Run the calls in threads released together; return each call's result or exception."""
    outcomes: list[Outcome | None] = [None] * len(calls)

    def run(index: int) -> None:
        if start is not None:
            start.wait()
        try:
            outcomes[index] = calls[index]()
        except Exception as exc:  # noqa: BLE001 -- the outcome under test
            outcomes[index] = exc

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT)
        assert not thread.is_alive(), "a writer hung"
    assert all(o is not None for o in outcomes)
    return [o for o in outcomes if o is not None]


def start_barrier(where: str, n: int) -> threading.Barrier | None:
    return threading.Barrier(n, timeout=JOIN_TIMEOUT) if where == "call" else None


@pytest.mark.parametrize("where", RACE_POINTS)
def test_two_writers_at_the_same_version_exactly_one_wins(
    two_apps: tuple[ReferralApplication, ReferralApplication],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    first, second = two_apps
    case_id = open_case(first)
    if where == "save":
        gate_saves(monkeypatch, two_apps)
    start = start_barrier(where, 2)
    version = 1
    winners: list[str] = []
    losers: list[str] = []
    for _ in range(ROUNDS):
        envelopes = [envelope(actor(NGO)), envelope(actor(SHELTER))]
        calls = [
            service(app, case_id, version, env)
            for app, env in zip(two_apps, envelopes, strict=True)
        ]
        outcomes = race(calls, start)

        won = [o for o in outcomes if isinstance(o, AppendResult)]
        lost = [o for o in outcomes if isinstance(o, VersionConflictError)]
        assert len(won) == 1, outcomes
        assert len(lost) == 1, outcomes
        assert won[0].version == version + 1
        assert not won[0].duplicate
        assert won[0].position is not None
        assert lost[0].expected == version
        assert lost[0].actual == version + 1
        winners.append(won[0].event_id)
        losers.extend(str(e.event_id) for e in envelopes if str(e.event_id) != won[0].event_id)
        version += 1

    case = second.get_case(case_id)
    assert case.version == 1 + ROUNDS
    history = first.history(case_id)
    assert [e.originator_version for e in history] == list(range(1, ROUNDS + 2))
    assert [e.event_id for e in history[1:]] == winners
    assert not set(losers) & set(case.entries)


@pytest.mark.parametrize("where", RACE_POINTS)
def test_the_same_event_from_two_writers_is_stored_once(
    two_apps: tuple[ReferralApplication, ReferralApplication],
    monkeypatch: pytest.MonkeyPatch,
    where: str,
) -> None:
    first, second = two_apps
    case_id = open_case(first)
    if where == "save":
        gate_saves(monkeypatch, two_apps)
    start = start_barrier(where, 2)
    version = 1
    sent: list[str] = []
    for _ in range(ROUNDS):
        env = envelope(actor(SHELTER))
        outcomes = race([service(app, case_id, version, env) for app in two_apps], start)

        results = [o for o in outcomes if isinstance(o, AppendResult)]
        assert len(results) == 2, outcomes
        assert sorted(r.duplicate for r in results) == [False, True]
        assert {r.version for r in results} == {version + 1}
        assert {r.event_id for r in results} == {str(env.event_id)}
        sent.append(str(env.event_id))
        version += 1

    assert second.get_case(case_id).version == 1 + ROUNDS
    history = first.history(case_id)
    assert len(history) == 1 + ROUNDS
    assert [e.event_id for e in history[1:]] == sent


def read_global_log(app: ReferralApplication) -> list[Notification]:
    """Every notification of the application's log, read in pages."""
    notifications: list[Notification] = []
    start = 1
    while True:
        page = app.recorder.select_notifications(start=start, limit=PAGE)
        if not page:
            return notifications
        notifications.extend(page)
        start = page[-1].id + 1


def test_eight_writers_on_eight_cases_lose_no_event(postgres_schema_url: str) -> None:
    app = build_application(postgres_schema_url, clock=fixed_clock, pool_size=WRITERS)
    try:
        case_ids = [open_case(app) for _ in range(WRITERS)]
        start = threading.Barrier(WRITERS, timeout=JOIN_TIMEOUT)

        def writer(case_id: UUID) -> int:
            start.wait()
            version = 1
            for _ in range(EVENTS_PER_WRITER):
                result = service(app, case_id, version, envelope(actor(SHELTER)))()
                assert result.version == version + 1
                version = result.version
            return version

        with ThreadPoolExecutor(max_workers=WRITERS) as pool:
            final_versions = list(pool.map(writer, case_ids))

        expected_length = 1 + EVENTS_PER_WRITER
        assert final_versions == [expected_length] * WRITERS
        for case_id in case_ids:
            assert app.get_case(case_id).version == expected_length
            assert len(app.history(case_id)) == expected_length

        log = read_global_log(app)
        ids = [n.id for n in log]
        assert all(a < b for a, b in pairwise(ids))
        positions = [(UUID(str(n.originator_id)), n.originator_version) for n in log]
        assert len(positions) == len(set(positions))
        assert set(positions) == {
            (case_id, version) for case_id in case_ids for version in range(1, expected_length + 1)
        }
    finally:
        app.close()
