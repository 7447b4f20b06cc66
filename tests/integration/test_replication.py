"""More than one machine: a primary with a synchronous streaming-replication hot standby.

Two throwaway clusters on loopback (`tests.support.replication`). The primary commits with
`synchronous_commit = remote_apply` and the standby as its synchronous standby, the deployment
ops/postgresql/referral.conf recommends when reads are served from the standby:

- every acknowledged event is readable on the standby the moment it is acknowledged, through an
  application built on the standby's URL, and the standby refuses writes;
- read models are built on the primary (they write tables) and arrive on the standby row for
  row, so the query behind `GET /cases` answers the same there;
- after the primary stops abruptly and the standby is promoted, every acknowledged event is in
  the log exactly once at the position it was acknowledged with, the log is strictly
  increasing, the chains verify, the read models resume and equal a rebuild, and appends work.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import psycopg
import pytest
from fastapi.testclient import TestClient

from adapters.auth import issue_token
from adapters.store import build_application
from api.app import create_app
from api.settings import Settings
from projections.case_index import ALL_AGENCIES, list_cases
from projections.db import PostgresDatabase, SqliteDatabase, open_database
from projections.registry import all_projections
from projections.runner import ProjectionRunner, rebuild
from projections.statistics import count_cases
from projections.verification import verify_log
from projections.work_inboxes import referrals_to_answer, reports_to_acknowledge
from projections.work_summary import deadlines_of, open_cases
from referral_core import synthetic
from referral_core.application import AppendResult, ReferralApplication
from referral_core.synthetic import SyntheticEvent
from referral_core.vocab import Role
from tests.support import postgres
from tests.support.builders import NOW, MovableClock, example
from tests.support.readmodels import table_rows
from tests.support.replication import (
    ReplicatedPair,
    read_only_application,
    replicated_pair,
)

pytestmark = pytest.mark.postgres

SCHEMA = "referral"
TOKEN_ACTOR = {"user_id": "test-replication", "agency_id": "system", "role": "admin"}


@dataclass(frozen=True)
class Ack:
    """An acknowledged event: what the caller was told."""

    case_id: UUID
    version: int
    event_id: str
    position: int


@pytest.fixture
def pair() -> Iterator[ReplicatedPair]:
    bindir = postgres.find_binaries()
    if bindir is None:
        pytest.skip(
            f"the replication test starts its own clusters: {postgres.HOW_TO_GET_POSTGRES}"
        )
    with replicated_pair(bindir) as started:
        started.make_synchronous("remote_apply")
        started.primary.execute(f"CREATE SCHEMA {SCHEMA}")
        yield started


def planned_events(cases: int, seed: int) -> list[SyntheticEvent]:
    return synthetic.interleave(synthetic.plan_cases(cases=cases, seed=seed, now=NOW))


def append(app: ReferralApplication, clock: MovableClock, event: SyntheticEvent) -> AppendResult:
    """Open or append one planned event, as the API would, with the clock at its time."""
    clock.now = max(clock.now, event.recorded_at)
    if event.seq == 1:
        return app.open_case(
            event_type=event.event_type, payload=event.payload, envelope=event.envelope
        )
    return app.append(
        event.case_id,
        expected_version=event.seq - 1,
        event_type=event.event_type,
        payload=event.payload,
        envelope=event.envelope,
    )


def acknowledged(result: AppendResult) -> Ack:
    assert result.position is not None
    assert not result.duplicate
    return Ack(result.case_id, result.version, result.event_id, result.position)


def whole_log(app: ReferralApplication) -> list[Any]:
    found: list[Any] = []
    start = 1
    while True:
        page = app.recorder.select_notifications(start=start, limit=500)
        found.extend(page)
        if len(page) < 500:
            return found
        start = page[-1].id + 1


def in_read_only_transaction(exc: BaseException) -> bool:
    """Whether the refusal came from PostgreSQL's hot standby (read-only, or in recovery)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, psycopg.errors.ReadOnlySqlTransaction):
            return True
        text = str(seen)
        if "read-only transaction" in text or "during recovery" in text:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def test_standby_serves_every_acknowledged_event_and_the_read_models(
    pair: ReplicatedPair,
) -> None:
    clock = MovableClock()
    primary = build_application(pair.primary.url(SCHEMA), clock=clock)
    standby = read_only_application(pair.standby.url(SCHEMA), clock=clock)
    primary_db = open_database(pair.primary.url(SCHEMA))
    standby_db = open_database(pair.standby.url(SCHEMA))
    try:
        synthetic.seed_directory(primary)
        acks: list[Ack] = []
        for event in planned_events(cases=6, seed=61):
            ack = acknowledged(append(primary, clock, event))
            acks.append(ack)
            # Read on the standby at once: remote_apply acknowledged only once it was applied.
            found = standby.recorder.select_notifications(start=ack.position, limit=1)
            assert [(n.id, n.originator_id, n.originator_version) for n in found] == [
                (ack.position, ack.case_id, ack.version)
            ]
            case = standby.get_case(ack.case_id)
            assert case.version == ack.version
            assert case.entry(ack.event_id) is not None
        assert len(acks) > 50

        # The standby refuses writes, through the application and underneath it.
        head = standby.recorder.max_notification_id()
        opening = next(e for e in planned_events(cases=1, seed=62) if e.seq == 1)
        with pytest.raises(Exception) as refused:  # noqa: PT011 -- asserted just below
            append(standby, clock, opening)
        assert in_read_only_transaction(refused.value), repr(refused.value)
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            pair.standby.execute(f"DELETE FROM {SCHEMA}.referral_events")  # noqa: S608
        assert standby.recorder.max_notification_id() == head

        # Read models write tables: they cannot be built on a hot standby…
        with pytest.raises(Exception) as refused:  # noqa: PT011 -- asserted just below
            ProjectionRunner(standby, standby_db, all_projections())
        assert in_read_only_transaction(refused.value), repr(refused.value)

        # …so they are built on the primary, and replicated to the standby row for row.
        runner = ProjectionRunner(primary, primary_db, all_projections())
        runner.catch_up()
        assert min(runner.positions().values()) == primary.recorder.max_notification_id()
        for projection in all_projections():
            assert table_rows(standby_db, projection) == table_rows(primary_db, projection)
        assert _positions(standby_db) == _positions(primary_db)

        # The queries behind GET /cases, GET /inbox and GET /stats answer the same on the
        # standby as on the primary, in the standby's read-only transactions.
        lead = str(primary.get_case(acks[0].case_id).lead_agency_id)
        for agency in (ALL_AGENCIES, lead):
            on_primary, on_standby = (
                _read_endpoint_queries(db, agency) for db in (primary_db, standby_db)
            )
            assert on_standby == on_primary
            assert on_standby["cases"]
        leads = {str(primary.get_case(a.case_id).lead_agency_id) for a in acks}
        inboxes = [_read_endpoint_queries(standby_db, agency) for agency in sorted(leads)]
        assert any(inbox["open_cases"] or inbox["deadlines"] for inbox in inboxes)
        assert sum(inboxes[0]["stats"].values()) > 0

        # An API node on the standby serves the read endpoints and refuses what would write.
        _api_on_standby_serves_reads(pair, primary, acks)
    finally:
        primary_db.close()
        standby_db.close()
        standby.close()
        primary.close()


def _tokens(app: ReferralApplication, agencies: list[str]) -> dict[str, str]:
    found: dict[str, str] = {}
    for agency_id in agencies:
        agency = synthetic.demo_agency_by_id(agency_id)
        assert agency is not None
        _id, token = issue_token(
            app, agency.user(Role.CASEWORKER).user_id, ttl=timedelta(days=1), actor=TOKEN_ACTOR
        )
        found[agency_id] = token
    return found


def _api_on_standby_serves_reads(
    pair: ReplicatedPair, primary: ReferralApplication, acks: list[Ack]
) -> None:
    case_id = next(a.case_id for a in acks if not primary.get_case(a.case_id).closed)
    lead = str(primary.get_case(case_id).lead_agency_id)
    token_of = _tokens(primary, [lead])
    pair.wait_replayed()
    settings = Settings(
        database_url=pair.standby.url(SCHEMA),
        create_tables=False,
        run_projections=False,
    )
    with TestClient(create_app(settings)) as client:
        client.headers["Authorization"] = f"Bearer {token_of[lead]}"
        listed = client.get("/cases")
        assert listed.status_code == 200, listed.text
        assert str(case_id) in {item["case_id"] for item in listed.json()["items"]}
        assert client.get("/inbox").status_code == 200
        shown = client.get(f"/cases/{case_id}")
        assert shown.status_code == 200, shown.text
        # Reading the history records an access, and appending writes: the standby refuses
        # both, as a problem naming the primary, never a 500.
        for response in (
            client.get(f"/cases/{case_id}/events"),
            client.post(
                f"/cases/{case_id}/events",
                json={
                    "type": "ServiceDelivered",
                    "payload": example("ServiceDelivered", provider_agency_id=lead),
                    "occurred_at": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
                },
                headers={"If-Match": shown.headers["ETag"]},
            ),
        ):
            assert response.status_code == 503, response.text
            assert response.json()["type"].endswith(":read-only-node")


def _read_endpoint_queries(db: SqliteDatabase | PostgresDatabase, agency: str) -> dict[str, Any]:
    """What the read endpoints query for one agency, in one transaction of this node."""
    with db.transaction() as tx:
        return {
            "cases": list_cases(tx, agency_id=agency, limit=200),
            "open_cases": open_cases(tx, agency, 200),
            "deadlines": deadlines_of(tx, agency, 200),
            "reports": reports_to_acknowledge(tx, agency, 200),
            "referrals": referrals_to_answer(tx, agency, 200),
            "stats": count_cases(tx, ["month", "sex"]),
        }


def _positions(db: SqliteDatabase | PostgresDatabase) -> list[tuple[Any, ...]]:
    """Where each read model stands (its tracking row, without the wall-clock time)."""
    with db.transaction() as tx:
        return sorted(tx.fetchall("SELECT name, position FROM projection_position"))


class Writer(threading.Thread):
    """Appends the planned events one by one, recording each acknowledgement, until one fails."""

    def __init__(
        self, app: ReferralApplication, clock: MovableClock, events: list[SyntheticEvent]
    ) -> None:
        super().__init__(name="writer", daemon=True)
        self.app = app
        self.clock = clock
        self.events = events
        self.acks: list[Ack] = []
        self.failure: BaseException | None = None
        self.in_doubt = 0
        """The index of the append that failed: it may or may not have been recorded."""

    def run(self) -> None:
        for index, event in enumerate(self.events):
            self.in_doubt = index
            try:
                result = append(self.app, self.clock, event)
            except Exception as exc:  # noqa: BLE001 -- the crash; this append is in doubt
                self.failure = exc
                return
            self.acks.append(acknowledged(result))


def test_promoted_standby_holds_every_acknowledged_event(pair: ReplicatedPair) -> None:
    clock = MovableClock()
    primary = build_application(pair.primary.url(SCHEMA), clock=clock)
    primary_db = open_database(pair.primary.url(SCHEMA))
    synthetic.seed_directory(primary)
    directory_log = [(n.id, n.originator_id, n.originator_version) for n in whole_log(primary)]
    events = planned_events(cases=40, seed=71)
    writer = Writer(primary, clock, events)
    writer.start()
    try:
        _wait_until(lambda: len(writer.acks) >= 20)
        # A read-model batch on the primary, mid-stream, as a worker there would apply it.
        assert ProjectionRunner(primary, primary_db, all_projections(), batch_size=20).run_once()
        _wait_until(lambda: len(writer.acks) >= 60)
        pair.crash_primary()
    finally:
        # Closing the pool ends the writer's retries against the dead primary at once.
        primary_db.close()
        primary.close()
        writer.join(timeout=60)
    assert not writer.is_alive()
    assert writer.failure is not None, (
        f"the crash should land while the writer appends ({len(writer.acks)} of {len(events)})"
    )
    acks = writer.acks

    pair.promote()
    promoted = build_application(pair.standby.url(SCHEMA), clock=clock)
    db = open_database(pair.standby.url(SCHEMA))
    try:
        log = whole_log(promoted)
        assert_log_holds(log, directory_log, acks)
        for case_id in {ack.case_id for ack in acks}:
            case = promoted.get_case(case_id)
            for ack in (a for a in acks if a.case_id == case_id):
                assert case.entry(ack.event_id) is not None, ack

        # The in-doubt append, retried against the new primary, is recorded once or recognised
        # as recorded already (the same event id); the appends after it work.
        for event in events[writer.in_doubt : writer.in_doubt + 5]:
            result = append(promoted, clock, event)
            assert result.position is not None or result.duplicate
            assert promoted.get_case(result.case_id).entry(str(event.envelope.event_id))
        after = whole_log(promoted)
        assert_log_holds(after, directory_log, acks)
        assert after[-1].id > log[-1].id

        # The read models resume from their replicated positions and equal a rebuild;
        # the hash chains and leaves verify.
        runner = ProjectionRunner(promoted, db, all_projections())
        runner.catch_up()
        assert min(runner.positions().values()) == after[-1].id
        rebuild(promoted, db, all_projections(), swap=False, suffix="_check")
        for projection in all_projections():
            assert table_rows(db, projection, "_check") == table_rows(db, projection)
        report = verify_log(promoted, db, public_key=None, checkpoint_every=None)
        assert report.ok, report.summary()
    finally:
        db.close()
        promoted.close()


def assert_log_holds(
    log: list[Any], directory_log: list[tuple[int, UUID, int]], acks: list[Ack]
) -> None:
    """Strictly increasing, no stream version twice, every acknowledged event at its position."""
    positions = [n.id for n in log]
    assert positions == sorted(set(positions)), "the log is strictly increasing"
    by_key = {(n.originator_id, n.originator_version): n.id for n in log}
    assert len(by_key) == len(log), "no event twice"
    for position, originator_id, version in directory_log:
        assert by_key.get((originator_id, version)) == position
    missing = [ack for ack in acks if by_key.get((ack.case_id, ack.version)) != ack.position]
    assert not missing, f"{len(missing)} acknowledged event(s) missing, first {missing[0]}"


def _wait_until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def _start_at_once(url: str, nodes: int) -> list[BaseException]:
    """`nodes` applications built at the same moment on one fresh schema; what they raised."""
    barrier = threading.Barrier(nodes)
    failures: list[BaseException] = []

    def start() -> None:
        barrier.wait()
        try:
            app = build_application(url)
            db = open_database(url)
            try:
                ProjectionRunner(app, db, all_projections())  # creates the read models' tables
            finally:
                db.close()
                app.close()
        except Exception as exc:  # noqa: BLE001 -- collected, asserted by the test
            failures.append(exc)

    threads = [threading.Thread(target=start) for _ in range(nodes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return failures


def test_nodes_starting_at_once_on_an_empty_schema_all_start(postgres_url: str) -> None:
    """Each node creates the store's and the read models' tables on first start; they take
    turns (advisory locks per schema), where concurrent DDL failed with a duplicate key in
    `pg_type` or "tuple concurrently updated"."""
    for attempt in range(3):
        schema = f"t_first_{attempt}_{threading.get_ident() % 10_000}"
        postgres.create_schema(postgres_url, schema)
        try:
            failures = _start_at_once(f"{postgres_url}?schema={schema}", nodes=4)
        finally:
            postgres.drop_schema(postgres_url, schema)
        assert not failures, [repr(f)[:200] for f in failures]
