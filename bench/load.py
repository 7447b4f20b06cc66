"""Load: a realistic mix of requests against a live server on PostgreSQL, per-operation figures.

Setup, in a throwaway PostgreSQL schema: the demo directory and synthetic cases
(`referral_core.synthetic.generate_cases`), then one server, `python -m api.cli serve` (one
uvicorn worker, read models inside it), as `bench.http` starts it. Tokens: the hotlines'
caseworkers, the shelters' caseworkers, a caseworker of every agency that has an inbox, and the
ministries' caseworkers for statistics.

Clients: `CLIENTS` threads of a separate load-generator process (so the figures do not include
this process's set-up), each with its own keep-alive `httpx.Client`, for `duration` seconds.
Each picks its next request at random with these weights (a day at a national mechanism:
many reads, fewer writes):

- `contact`  (20%): a hotline records a call, `POST /cases` with ContactReceived (a new case);
- `shelter`  (25%): a shelter records a service to a child it houses, `POST /cases/{id}/events`
  ServiceDelivered with `If-Match` (each client has cases of its own, so no conflicts; a 412
  after a lost race re-reads the version and counts as an error);
- `inbox`    (40%): an agency's caseworker opens `GET /inbox`;
- `stats`    (15%): a ministry reads `GET /stats?by=month,sex`.

Reported per operation and in total: requests, errors (anything but 2xx), throughput and
latency p50/p99 (nearest rank) over the measured window. Quick mode: 8 clients for 6 s.
"""

from __future__ import annotations

import multiprocessing
import random
import tempfile
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

import httpx

from adapters.auth import issue_token
from adapters.store import build_application
from bench.common import (
    Section,
    Settings,
    Table,
    fmt_ms,
    fmt_rate,
    postgres_schema,
    with_schema,
)
from bench.http import Config as ServerConfig
from bench.http import percentile, running
from referral_core.clock import utc_now
from referral_core.policy import Principal, access_of, check_append
from referral_core.synthetic import DEMO_AGENCIES, DemoAgency, generate_cases, seed_directory
from referral_core.vocab import AgencyKind, Role

SEED = 4242
TOKEN_ACTOR = {"user_id": "bench-load", "agency_id": "system", "role": "admin"}
MIX: dict[str, float] = {"contact": 0.20, "shelter": 0.25, "inbox": 0.40, "stats": 0.15}
INBOX_KINDS = (
    AgencyKind.NGO,
    AgencyKind.SOCIAL_SERVICES,
    AgencyKind.SHELTER,
    AgencyKind.LAW_ENFORCEMENT,
    AgencyKind.HOTLINE,
)
REQUEST_TIMEOUT = 60.0
WARM_UP_SECONDS = 1.0


@dataclass(frozen=True)
class Sizes:
    cases: int
    clients: int
    seconds: float


FULL = Sizes(cases=300, clients=16, seconds=60.0)
QUICK = Sizes(cases=40, clients=8, seconds=6.0)


@dataclass
class Workload:
    """What the clients need: tokens by purpose, and each shelter's cases."""

    hotline: list[str]
    inbox: list[str]
    stats: list[str]
    shelter_cases: list[tuple[str, str, str]]  # (case id, shelter agency id, token)


def _token(app: Any, agency: DemoAgency, role: Role = Role.CASEWORKER) -> str:
    _id, token = issue_token(
        app, agency.user(role).user_id, ttl=timedelta(days=1), actor=TOKEN_ACTOR
    )
    return token


def prepare(database_url: str, cases: int) -> Workload:
    """Seed the directory and cases, find which shelter houses which open case, issue tokens."""
    app = build_application(database_url)
    try:
        seed_directory(app)
        summary = generate_cases(app, cases=cases, seed=SEED)
        shelters = [a for a in DEMO_AGENCIES if a.kind is AgencyKind.SHELTER]
        tokens = {a.slug: _token(app, a) for a in shelters}
        shelter_cases: list[tuple[str, str, str]] = []
        now = utc_now()
        for case_id in sorted(summary.open_cases):
            case = app.get_case(case_id)
            for shelter in shelters:
                who = Principal(
                    str(shelter.user().user_id),
                    str(shelter.agency_id),
                    AgencyKind.SHELTER,
                    Role.CASEWORKER,
                )
                try:
                    check_append(who, "ServiceDelivered", access_of(who, case, now=now))
                except Exception:  # noqa: BLE001,S112 -- not this shelter's child
                    continue
                shelter_cases.append((str(case_id), str(shelter.agency_id), tokens[shelter.slug]))
        if not shelter_cases:
            raise RuntimeError("no open case is housed by a shelter: generate more cases")
        return Workload(
            hotline=[_token(app, a) for a in DEMO_AGENCIES if a.kind is AgencyKind.HOTLINE],
            inbox=[_token(app, a) for a in DEMO_AGENCIES if a.kind in INBOX_KINDS],
            stats=[_token(app, a) for a in DEMO_AGENCIES if a.kind is AgencyKind.MINISTRY],
            shelter_cases=shelter_cases,
        )
    finally:
        app.close()


# -- the clients ---------------------------------------------------------------------------------


@dataclass
class Samples:
    """Latencies (s) and errors per operation, from one client."""

    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    statuses: dict[int, int] = field(default_factory=lambda: defaultdict(int))


class LoadClient:
    """One client thread's requests; its share of the shelters' cases is its own."""

    def __init__(self, index: int, clients: int, workload: Workload, http: httpx.Client) -> None:
        self.rng = random.Random(SEED + index)
        self.workload = workload
        self.http = http
        pairs = workload.shelter_cases
        self.cases = pairs[index::clients] or [pairs[index % len(pairs)]]
        self.versions: dict[str, int] = {}

    def one(self) -> tuple[str, int]:
        kind = self.rng.choices(list(MIX), weights=list(MIX.values()))[0]
        return kind, getattr(self, f"_{kind}")()

    def _auth(self, token: str, **extra: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}", **extra}

    def _contact(self) -> int:
        body = {
            "type": "ContactReceived",
            "occurred_at": (utc_now() - timedelta(minutes=self.rng.randint(1, 30))).isoformat(),
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "payload": {
                "channel": self.rng.choice(("phone", "chat", "email")),
                "anonymous": True,
                "caller_type": self.rng.choice(("relative", "child", "professional")),
                "topics": [
                    self.rng.choice(("missing_child_abroad", "online_abuse", "safe_migration"))
                ],
                "child_age_years": self.rng.randint(9, 17),
                "child_sex": self.rng.choice(("female", "male")),
            },
        }
        token = self.rng.choice(self.workload.hotline)
        return self.http.post("/cases", json=body, headers=self._auth(token)).status_code

    def _shelter(self) -> int:
        case_id, shelter_id, token = self.rng.choice(self.cases)
        if case_id not in self.versions:
            found = self.http.get(f"/cases/{case_id}", headers=self._auth(token))
            self.versions[case_id] = int(found.headers.get("etag", '"0"').strip('W/"'))
        now = utc_now()
        body = {
            "type": "ServiceDelivered",
            "occurred_at": (now - timedelta(minutes=self.rng.randint(1, 60))).isoformat(),
            "event_id": str(uuid.UUID(int=self.rng.getrandbits(128), version=4)),
            "payload": {
                "service_type": self.rng.choice(("psychological", "education", "medical")),
                "provider_agency_id": shelter_id,
                "delivered_on": now.date().isoformat(),
                "outcome": self.rng.choice(("completed", "ongoing")),
            },
        }
        headers = self._auth(token, **{"If-Match": f'"{self.versions[case_id]}"'})
        response = self.http.post(f"/cases/{case_id}/events", json=body, headers=headers)
        if response.is_success:
            self.versions[case_id] = int(response.json()["version"])
        else:
            self.versions.pop(case_id, None)
        return response.status_code

    def _inbox(self) -> int:
        token = self.rng.choice(self.workload.inbox)
        return self.http.get("/inbox", headers=self._auth(token)).status_code

    def _stats(self) -> int:
        token = self.rng.choice(self.workload.stats)
        return self.http.get("/stats?by=month,sex", headers=self._auth(token)).status_code


@dataclass(frozen=True)
class Window:
    clients: int
    start: float
    stop: float


def _client(index: int, base_url: str, workload: Workload, window: Window, out: Samples) -> None:
    start, stop = window.start, window.stop
    with httpx.Client(base_url=base_url, timeout=REQUEST_TIMEOUT) as http:
        client = LoadClient(index, window.clients, workload, http)
        while (now := time.monotonic()) < stop:
            try:
                kind, status = client.one()
            except httpx.HTTPError:
                kind, status = "transport", 0
            took = time.monotonic() - now
            if now < start:  # the warm-up: new connections, first requests
                continue
            out.statuses[status] += 1
            out.latencies[kind].append(took)
            if not 200 <= status < 300:
                out.errors[kind] += 1


def _generate(conn: Connection) -> None:
    """The load generator's process: run the clients, send back their samples."""
    base_url, workload, clients, seconds = conn.recv()
    start = time.monotonic() + WARM_UP_SECONDS
    window = Window(clients, start, start + seconds)
    samples = [Samples() for _ in range(clients)]
    threads = [
        threading.Thread(target=_client, args=(i, base_url, workload, window, samples[i]))
        for i in range(clients)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    merged = Samples()
    for sample in samples:
        for kind, values in sample.latencies.items():
            merged.latencies[kind].extend(values)
        for kind, count in sample.errors.items():
            merged.errors[kind] += count
        for status, count in sample.statuses.items():
            merged.statuses[status] += count
    conn.send(
        (
            {k: list(v) for k, v in merged.latencies.items()},
            dict(merged.errors),
            dict(merged.statuses),
            seconds,
        )
    )


def drive(base_url: str, workload: Workload, sizes: Sizes) -> tuple[Any, ...]:
    parent, child = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(target=_generate, args=(child,))
    process.start()
    parent.send((base_url, workload, sizes.clients, sizes.seconds))
    result: tuple[Any, ...] = parent.recv()
    process.join()
    return result


# -- the section ---------------------------------------------------------------------------------


def run(settings: Settings) -> list[Table]:
    sizes = QUICK if settings.quick else FULL
    with postgres_schema("load") as (url, schema), tempfile.TemporaryDirectory() as tmp:
        database_url = with_schema(url, schema)
        workload = prepare(database_url, sizes.cases)
        with running(database_url, ServerConfig("1 worker", 1, 1), Path(tmp)) as servers:
            latencies, errors, statuses, seconds = drive(servers[0].base_url, workload, sizes)
    table = Table(
        f"load: realistic mix, {sizes.clients} clients, {seconds:g} s, 1 uvicorn worker on "
        "PostgreSQL",
        ["operation", "share", "requests", "errors", "req/s", "p50 ms", "p99 ms"],
    )
    total: list[float] = []
    for kind in [*MIX, "transport"]:
        values = latencies.get(kind, [])
        if not values and kind == "transport":
            continue
        total.extend(values)
        table.rows.append(
            [
                kind,
                f"{MIX.get(kind, 0):.0%}",
                str(len(values)),
                str(errors.get(kind, 0)),
                fmt_rate(len(values) / seconds),
                fmt_ms(percentile(values, 50)),
                fmt_ms(percentile(values, 99)),
            ]
        )
    table.rows.append(
        [
            "all",
            "",
            str(len(total)),
            str(sum(errors.values())),
            fmt_rate(len(total) / seconds),
            fmt_ms(percentile(total, 50)),
            fmt_ms(percentile(total, 99)),
        ]
    )
    table.notes.append(
        f"statuses: {', '.join(f'{s}: {n}' for s, n in sorted(statuses.items()))}; "
        f"{len(workload.shelter_cases)} (case, shelter) pairs, {sizes.cases} synthetic cases"
    )
    table.notes.append(
        "contact = POST /cases ContactReceived by a hotline; shelter = POST /cases/{id}/events "
        "ServiceDelivered by the shelter housing the child; inbox = GET /inbox; "
        "stats = GET /stats?by=month,sex by a ministry"
    )
    return [table]


SECTION = Section(
    "load",
    "a realistic mix (hotline contacts, shelter appends, inbox and stats reads) on a live server",
    run,
)
