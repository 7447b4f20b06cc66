"""Crashes under load: real processes on a throwaway PostgreSQL cluster, nothing acknowledged lost.

A live `referral serve` (uvicorn, its own process) and a `referral projections run` worker run
on a cluster of the test's own (`tests.support.replication.standalone_cluster`, never the shared
server). A client thread appends continuously over HTTP, opening a case with ContactReceived and
appending to it, each request with its own event id and retried with the same body until it is
acknowledged; it records every acknowledged (2xx) event. A reader thread lists cases meanwhile.
Then, while they run:

(a) the API process is SIGKILLed and started again;
(b) the read-model worker is SIGKILLed and started again;
(c) PostgreSQL is stopped abruptly (`pg_ctl stop -m immediate`) and started again; the API is
    not restarted.

Afterwards every acknowledged event is in the log exactly once at the position it was
acknowledged with, the read models converge to a rebuild, no request ever got a 500, and while
the database was away the API answered 503 quickly (one pool timeout, not eventsourcing's ten
retries) and recovered by itself.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from adapters.auth import issue_token
from adapters.connections import POOL_TIMEOUT_SECONDS
from adapters.store import build_application
from projections.db import open_database
from projections.registry import all_projections
from projections.runner import read_position, rebuild
from referral_core import synthetic
from referral_core.clock import utc_now
from referral_core.synthetic import repeatable_event
from referral_core.vocab import AgencyKind, Role
from tests.support import postgres
from tests.support.readmodels import table_rows
from tests.support.replication import Cluster, free_port, standalone_cluster

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
SCHEMA = "referral"
SETUP = {"user_id": "test-setup", "agency_id": "system", "role": "admin"}
START_TIMEOUT = 60.0
RUNNING = "referral: projections running"


@dataclass(frozen=True)
class Ack:
    case_id: str
    version: int
    event_id: str
    position: int


@dataclass
class Outcomes:
    """What the clients saw: acknowledgements, statuses, slowest 503."""

    acks: list[Ack] = field(default_factory=list)
    statuses: Counter[int] = field(default_factory=Counter)
    read_statuses: Counter[int] = field(default_factory=Counter)
    transport_errors: int = 0
    slowest_503: float = 0.0
    slowest_read_503: float = 0.0
    lock: threading.Lock = field(default_factory=threading.Lock)

    def acked(self) -> int:
        with self.lock:
            return len(self.acks)


def _env(url: str, tmp: Path) -> dict[str, str]:
    return {
        **os.environ,
        "REFERRAL_DATABASE_URL": url,
        "REFERRAL_DATA_DIR": str(tmp),
        "REFERRAL_LOG_LEVEL": "warning",
        "REFERRAL_RUN_PROJECTIONS": "false",
        "REFERRAL_PROJECTION_BATCH_SIZE": "20",
    }


@dataclass
class Process:
    """A `referral …` subprocess with its output in a file."""

    args: list[str]
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(  # noqa: S603 -- our interpreter and module
                [sys.executable, "-m", "api.cli", *self.args],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def tail(self) -> str:
        return self.log.read_text(errors="replace")[-3000:]


def _wait(
    condition: Callable[[], bool], what: str | Callable[[], str], timeout: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, (
            f"timed out waiting: {what if isinstance(what, str) else what()}"
        )
        time.sleep(0.05)


def _ready(base: str) -> bool:
    with suppress(httpx.HTTPError):
        return httpx.get(f"{base}/readyz", timeout=2).status_code == 200
    return False


@dataclass
class Tokens:
    hotline: str
    lead: str
    by_role: dict[str, str]


def _prepare(url: str) -> Tokens:
    app = build_application(url)
    try:
        synthetic.seed_directory(app)
        agency = next(a for a in synthetic.DEMO_AGENCIES if a.kind == AgencyKind.HOTLINE)
        by_role = {}
        for role in (Role.CASEWORKER, Role.SUPERVISOR):
            _tid, token = issue_token(
                app, agency.user(role).user_id, ttl=timedelta(days=1), actor=SETUP
            )
            by_role[role.value] = token
        return Tokens(by_role[Role.CASEWORKER.value], str(agency.agency_id), by_role)
    finally:
        app.close()


class Client(threading.Thread):
    """Opens a case, appends two events to it, again and again; retries until acknowledged."""

    def __init__(self, base: str, tokens: Tokens, outcomes: Outcomes) -> None:
        super().__init__(name="appender", daemon=True)
        self.base = base
        self.tokens = tokens
        self.outcomes = outcomes
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.rng = random.Random(606)  # noqa: S311 -- test data, not secrets

    def run(self) -> None:
        try:
            with httpx.Client(base_url=self.base, timeout=30) as http:
                while not self.stop.is_set():
                    self._one_case(http)
        except BaseException as exc:  # noqa: BLE001 -- reported by the test
            self.failure = exc

    def _one_case(self, http: httpx.Client) -> None:
        opening = {
            "type": "ContactReceived",
            "occurred_at": (utc_now() - timedelta(minutes=5)).isoformat(),
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "payload": {
                "channel": "phone",
                "anonymous": True,
                "caller_type": "relative",
                "topics": ["missing_child_abroad"],
                "child_age_years": 15,
                "child_sex": "female",
            },
        }
        ack = self._until_acknowledged(http, "/cases", opening, self.tokens.hotline, None)
        if ack is None:
            return
        version = ack.version
        for _ in range(2):
            event_type, payload, envelope = repeatable_event(self.rng, self.tokens.lead, utc_now())
            body = {
                "type": event_type,
                "payload": payload,
                "occurred_at": envelope.occurred_at.isoformat(),
                "event_id": str(envelope.event_id),
            }
            token = self.tokens.by_role[envelope.actor.role.value]
            path = f"/cases/{ack.case_id}/events"
            later = self._until_acknowledged(http, path, body, token, version)
            if later is None:
                return
            version = later.version

    def _until_acknowledged(
        self, http: httpx.Client, path: str, body: dict[str, Any], token: str, version: int | None
    ) -> Ack | None:
        headers = {"Authorization": f"Bearer {token}"}
        if version is not None:
            headers["If-Match"] = f'"{version}"'
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                response = http.post(path, json=body, headers=headers)
            except httpx.HTTPError:
                with self.outcomes.lock:
                    self.outcomes.transport_errors += 1
                time.sleep(0.1)
                continue
            elapsed = time.monotonic() - started
            with self.outcomes.lock:
                self.outcomes.statuses[response.status_code] += 1
                if response.status_code == 503:
                    self.outcomes.slowest_503 = max(self.outcomes.slowest_503, elapsed)
            if response.is_success:
                data = response.json()
                ack = Ack(str(data["case_id"]), data["version"], data["event_id"], 0)
                if data["position"] is not None:
                    ack = Ack(ack.case_id, ack.version, ack.event_id, data["position"])
                with self.outcomes.lock:
                    self.outcomes.acks.append(ack)
                return ack
            assert response.status_code >= 500, f"{response.status_code}: {response.text}"
            time.sleep(0.1)
        return None


class Reader(threading.Thread):
    """Lists cases every 0.2 s, recording the statuses."""

    def __init__(self, base: str, token: str, outcomes: Outcomes) -> None:
        super().__init__(name="reader", daemon=True)
        self.base = base
        self.token = token
        self.outcomes = outcomes
        self.stop = threading.Event()

    def run(self) -> None:
        with httpx.Client(base_url=self.base, timeout=30) as http:
            while not self.stop.wait(0.2):
                started = time.monotonic()
                with suppress(httpx.HTTPError):
                    status = http.get(
                        "/cases?limit=5", headers={"Authorization": f"Bearer {self.token}"}
                    ).status_code
                    with self.outcomes.lock:
                        self.outcomes.read_statuses[status] += 1
                        if status == 503:
                            elapsed = time.monotonic() - started
                            self.outcomes.slowest_read_503 = max(
                                self.outcomes.slowest_read_503, elapsed
                            )


@pytest.fixture(scope="module")
def server() -> Iterator[Cluster]:
    """A cluster of this module's own, which its tests crash and restart."""
    bindir = postgres.find_binaries()
    if bindir is None:
        pytest.exit(postgres.HOW_TO_GET_POSTGRES, returncode=3)
    with standalone_cluster(bindir) as started:
        yield started


@pytest.fixture
def cluster(server: Cluster) -> Cluster:
    """The module's cluster, running, with an empty `referral` schema."""
    if not server.running():
        server.start()
    server.execute(f"DROP SCHEMA IF EXISTS {SCHEMA} CASCADE")
    server.execute(f"CREATE SCHEMA {SCHEMA}")
    return server


def _position(url: str) -> int:
    db = open_database(url)
    try:
        with db.transaction() as tx:
            return min(read_position(tx, p.name) for p in all_projections())
    except Exception:  # noqa: BLE001 -- not yet created, or the server is away
        return 0
    finally:
        db.close()


@dataclass
class Run:
    """The processes, the clients and what they saw."""

    cluster: Cluster
    url: str
    base: str
    api: Process
    worker: Process
    client: Client
    reader: Reader
    outcomes: Outcomes
    crash_runs: list[str] = field(default_factory=list)

    def progress(self, more: int, what: str) -> None:
        """Wait for `more` acknowledgements (the client has not failed meanwhile)."""
        target = self.outcomes.acked() + more

        def reached() -> bool:
            assert self.client.failure is None, f"the client failed: {self.client.failure!r}"
            return self.outcomes.acked() >= target

        _wait(reached, lambda: f"{more} acknowledgements {what}: {self.outcomes.statuses}")

    def kill_api(self) -> None:
        self.api.kill()
        self.crash_runs.append("API SIGKILL")
        time.sleep(0.3)
        self.api.start()
        _wait(lambda: _ready(self.base), lambda: f"the API to restart: {self.api.tail()}")
        self.progress(10, "after the API restarted")

    def kill_worker(self) -> None:
        _wait(
            lambda: _position(self.url) > 0, lambda: f"a batch of the worker: {self.worker.tail()}"
        )
        self.worker.kill()
        self.crash_runs.append("worker SIGKILL")
        self.progress(6, "while no worker runs")
        runs = self.worker.tail().count(RUNNING)
        self.worker.start()
        _wait(
            lambda: self.worker.tail().count(RUNNING) > runs,
            lambda: f"the worker to restart: {self.worker.tail()}",
        )
        self.progress(6, "after the worker restarted")

    def restart_database(self) -> None:
        """Crash PostgreSQL; the API and the worker stay up and must recover by themselves."""
        pid = self.api.pid
        with self.outcomes.lock:
            before = self.outcomes.statuses[503]
        self.cluster.stop("immediate")
        self.crash_runs.append("PostgreSQL crash and restart")
        _wait(lambda: self.outcomes.statuses[503] > before, "a 503 while the database is away")
        time.sleep(1.0)
        self.cluster.start()
        self.progress(10, "after PostgreSQL came back (the API was not restarted)")
        assert self.api.pid == pid
        assert self.api.process is not None
        assert self.api.process.poll() is None, "the API process should have stayed up"


@pytest.fixture
def run(cluster: Cluster, tmp_path: Path) -> Iterator[Run]:
    """The API, a worker and the two client threads running; stopped at the end."""
    url = cluster.url(SCHEMA)
    tokens = _prepare(url)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = _env(url, tmp_path)
    outcomes = Outcomes()
    started = Run(
        cluster,
        url,
        base,
        Process(["serve", "--port", str(port)], env, tmp_path / "api.log"),
        Process(["projections", "run"], env, tmp_path / "worker.log"),
        Client(base, tokens, outcomes),
        Reader(base, tokens.hotline, outcomes),
        outcomes,
    )
    started.api.start()
    try:
        _wait(lambda: _ready(base), lambda: f"the API to start: {started.api.tail()}")
        started.worker.start()
        started.client.start()
        started.reader.start()
        yield started
    finally:
        started.client.stop.set()
        started.reader.stop.set()
        for thread in (started.client, started.reader):
            if thread.ident is not None:
                thread.join(timeout=40)
        started.worker.stop()
        started.api.stop()


def test_no_acknowledged_event_is_lost_when_processes_and_the_database_crash(run: Run) -> None:
    run.progress(10, "before the first crash")
    run.kill_api()  # (a)
    run.kill_worker()  # (b)
    run.restart_database()  # (c)
    run.client.stop.set()
    run.reader.stop.set()
    run.client.join(timeout=40)
    assert run.client.failure is None, repr(run.client.failure)
    outcomes = run.outcomes

    last = _assert_log_holds(run.url, outcomes.acks)
    _wait(
        lambda: _position(run.url) >= last, lambda: f"the worker to catch up: {run.worker.tail()}"
    )
    run.worker.stop()
    _assert_read_models_converge(run.url)

    assert outcomes.statuses[500] == 0, outcomes.statuses
    assert outcomes.read_statuses[500] == 0, outcomes.read_statuses
    assert outcomes.statuses[503] > 0
    # A read may wait for both pools (the store's, the read models'): two pool timeouts at most,
    # plus a loaded machine's slack; eventsourcing's own retries would take ten.
    slowest = max(outcomes.slowest_503, outcomes.slowest_read_503)
    assert slowest < 2 * POOL_TIMEOUT_SECONDS + 4, (
        f"a 503 took {slowest:.1f} s: the API should fail fast"
    )
    assert outcomes.read_statuses[200] > 0
    print(  # noqa: T201 -- the figures the issue asks for, in the test output with -s
        f"\ncrash runs: {len(run.crash_runs)} ({', '.join(run.crash_runs)}); "
        f"acknowledged events: {len(outcomes.acks)}; lost: 0; "
        f"append statuses: {dict(outcomes.statuses)}; reads: {dict(outcomes.read_statuses)}; "
        f"transport errors: {outcomes.transport_errors}; "
        f"slowest 503: {outcomes.slowest_503:.2f} s (appends), "
        f"{outcomes.slowest_read_503:.2f} s (reads)"
    )


def _assert_log_holds(url: str, acks: list[Ack]) -> int:
    """Every acknowledged event once, at its position; returns the log's last position."""
    app = build_application(url)
    try:
        log: list[Any] = []
        start = 1
        while page := app.recorder.select_notifications(start=start, limit=500):
            log.extend(page)
            start = page[-1].id + 1
        by_key = {(str(n.originator_id), n.originator_version): n.id for n in log}
        assert len(by_key) == len(log), "no (case, version) twice"
        assert [n.id for n in log] == sorted({n.id for n in log})
        lost = [
            a
            for a in acks
            if (a.case_id, a.version) not in by_key
            or (a.position and by_key[(a.case_id, a.version)] != a.position)
        ]
        assert not lost, f"{len(lost)} acknowledged event(s) lost, first {lost[0]}"
        # An opening's case id derives from its event id; within a case, each version is a
        # different event id (a retry recorded twice would be two versions with one id).
        for case_id in {a.case_id for a in acks}:
            case = app.get_case(uuid.UUID(case_id))
            assert len(case.entries) == case.version, f"an event id twice in case {case_id}"
            for ack in (a for a in acks if a.case_id == case_id):
                entry = case.entry(ack.event_id)
                assert entry is not None, ack
                assert entry["version"] == ack.version, ack
        return int(log[-1].id)
    finally:
        app.close()


def _assert_read_models_converge(url: str) -> None:
    app = build_application(url)
    db = open_database(url)
    try:
        live = {p.name: table_rows(db, p) for p in all_projections()}
        rebuild(app, db, all_projections(), swap=False, suffix="_check")
        for projection in all_projections():
            assert table_rows(db, projection, "_check") == live[projection.name], projection.name
    finally:
        db.close()
        app.close()


def test_without_pre_ping_the_store_fails_fast_and_heals_after_a_restart(
    cluster: Cluster,
) -> None:
    """No round trip per checkout (POSTGRES_PRE_PING off): with the server away an append
    fails after one pool timeout; after a restart the first request on a dead connection may
    fail, the next one succeeds, with every pooled connection dead at once."""
    url = cluster.url(SCHEMA)
    app = build_application(url, pool_size=4)
    try:
        synthetic.seed_directory(app)
        # Warm the pool: several connections in use at once, then back in the pool.
        threads = [threading.Thread(target=app.recorder.max_notification_id) for _ in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

        def append(seed: int) -> None:
            synthetic.generate_cases(app, cases=1, seed=seed)

        append(1)
        cluster.stop("immediate")
        started = time.monotonic()
        with pytest.raises(Exception) as away:  # noqa: PT011 -- the type is asserted below
            append(2)
        assert time.monotonic() - started < POOL_TIMEOUT_SECONDS + 2
        assert "PoolTimeout" in type(away.value).__name__, repr(away.value)

        cluster.start()
        with suppress(Exception):  # allowed to fail: the request that met a dead connection
            append(3)
        append(4)  # must succeed
        append(5)
    finally:
        app.close()
