"""HTTP: the API under uvicorn on PostgreSQL, driven by 16 keep-alive clients on 127.0.0.1.

Setup, in a throwaway PostgreSQL schema: the demo directory, synthetic cases
(`referral_core.synthetic.generate_cases`), and one bearer token per (lead agency, role) needed.
Each configuration runs as production does on PostgreSQL (ops/systemd, ops/container): each
server is a separate process, `python -m api.cli serve --workers N`, with
REFERRAL_RUN_PROJECTIONS=false, and ONE read-model worker, `python -m api.cli projections run`,
is started for the configuration (once the servers are up) and stopped after it. Before the
first phase the worker has caught up with the log, so its catch-up on the setup's events is not
measured.

Configurations: 1 worker; 2 workers (`referral serve --workers 2`: two processes each listening
on the port with SO_REUSEPORT, `api/serve.py`); and, for comparison, 2 separate 1-worker servers
with the clients split evenly between their ports, as a balancer in front of them would.
Quick mode runs the first two only, with a few hundred requests: a smoke run of about 20 s.

The load generator is a separate process: 16 threads, each with its own keep-alive connection
(`bench.wire`: a plain socket, one `sendall` per request, TCP_NODELAY on), each sending a
fixed share of the phase's requests back to back (their first connections 20 ms apart). Phases,
each measured from a barrier after an unmeasured warm-up request:

- /healthz: the ceiling of this client and server on this machine, with no application work;
- before appends and before reads, an unmeasured warm-up of a tenth as many of the same requests
  (the direct baseline is warmed up alike): a server's first thousand or so appends after its
  start ran 10-15% slower than the next ones (bench http, one worker), and production servers
  run for days;
- appends: POST /cases/{id}/events with If-Match, each client to a case of its own that its
  agency leads (ServiceDelivered or CaseConferenceHeld from `synthetic.repeatable_event`), so
  no append conflicts: anything but 201 counts as an error;
- reads: GET /cases/{id}, GET /cases/{id}/events and GET /cases?limit=50 in turn, by the lead
  agency's caseworker, on cases nobody appends to (history reads of identifying data record an
  access, as every such read does).

A phase's wall time (and so its rates) ends with its last response. Its CPU is counted until the
read-model worker has also applied everything the phase appended (polled through /readyz, at most
SETTLE_TIMEOUT), so the read models' cost of a request is in the CPU table, in its own column.

Baseline, in the same run and with no server running, half just before each configuration and
half just after it, so drift in the machine's load hits both alike: our `ReferralApplication` on
the same schema appending the same kind of event to the same cases, in-process, one thread.
The CPU each phase costs per request is split between the servers' processes, the read-model
worker, PostgreSQL, the load generator and the rest of the machine (from /proc), so readers can
see what limited it.
"""

from __future__ import annotations

import base64
import json
import math
import multiprocessing
import os
import random
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from uuid import UUID

import httpx

from adapters.auth import issue_token
from adapters.store import build_application
from bench.common import (
    Section,
    Settings,
    Table,
    fmt_ms,
    fmt_rate,
    fmt_ratio,
    postgres_schema,
    rate,
    verdict,
    with_schema,
)
from bench.wire import Wire
from referral_core.application import ReferralApplication
from referral_core.clock import utc_now
from referral_core.synthetic import (
    demo_agency_by_id,
    generate_cases,
    repeatable_event,
    seed_directory,
)
from referral_core.vocab import Role

CLIENTS = 16
TARGET_RATIO = 0.6
TARGET_P99_MS = 100.0
SEED = 2007
TOKEN_ACTOR = {"user_id": "bench-http", "agency_id": "system", "role": "admin"}
REFERENCE = (
    "reference: a bare FastAPI + eventsourcing append endpoint measured here reached about "
    "270 req/s with p99 about 150 ms at 32 clients."
)
READY_TIMEOUT = 120.0
SETTLE_TIMEOUT = 30.0  # longest wait for the read models to apply a phase's appends
SETTLE_POLL = 0.02
STOP_TIMEOUT = 15.0
REQUEST_TIMEOUT = 60.0
LIST_PATH = "/cases?limit=50"
MASTER_KEYS_SETTING = "REFERRAL_MASTER_KEYS"
MASTER_KEY_FILE_SETTING = "REFERRAL_MASTER_KEY_FILE"
READ_KINDS = ("summary", "history", "list")
MIN_OPEN_CASES = CLIENTS + 8  # a case of its own for each appending client, the rest to read
MAX_BATCHES = 5
CONNECT_STAGGER = 0.02  # seconds between the clients' first connections
WARM_UP = "warm-up"  # an unmeasured phase: a tenth of the next phase's requests, as for direct


@dataclass(frozen=True)
class Sizes:
    """How much work one run does."""

    cases: int  # synthetic cases generated
    pings: int  # /healthz requests per configuration
    appends: int  # HTTP appends per configuration
    reads: int  # HTTP reads per configuration
    direct: int  # in-process appends around each configuration


FULL = Sizes(cases=200, pings=4000, appends=2000, reads=4000, direct=1000)
QUICK = Sizes(cases=24, pings=160, appends=96, reads=96, direct=48)


@dataclass(frozen=True)
class Config:
    """One server configuration: `servers` processes of `workers` uvicorn workers each."""

    label: str
    workers: int
    servers: int


CONFIGS = (
    Config("1 worker", 1, 1),
    Config("2 workers", 2, 1),
    Config("2 x 1-worker procs", 1, 2),
)


# -- what the load generator is told ---------------------------------------------------------


@dataclass(frozen=True)
class Call:
    """One request of a client's script."""

    kind: str  # healthz, append, summary, history, list
    method: str
    path: str
    token: str | None = None
    body: bytes | None = None
    case_id: str | None = None  # the case whose ETag an append sends as If-Match


@dataclass(frozen=True)
class Job:
    """One phase: a script per client, the servers to send it to, the processes to watch."""

    name: str
    base_urls: list[str]
    scripts: list[list[Call]]
    server_pids: list[int]
    ports: list[int]
    projection_pids: list[int] = field(default_factory=list)  # the read-model worker


@dataclass
class Outcome:
    """What one phase measured."""

    name: str
    requests: int
    wall: float
    latencies: dict[str, list[float]]  # seconds, by call kind
    statuses: Counter[int]
    cpu: dict[str, float]  # CPU seconds: server, projections, postgres, client, total
    machine_cpus: int
    connections: list[int]  # established client connections per server process
    settle: float = 0.0  # seconds after the last response until the read models caught up
    settled: bool = True  # False: they had not caught up after SETTLE_TIMEOUT

    @property
    def all_latencies(self) -> list[float]:
        return [v for values in self.latencies.values() for v in values]

    @property
    def errors(self) -> int:
        good = {201} if self.name == "appends" else {200}
        return sum(n for status, n in self.statuses.items() if status not in good)


# -- /proc: CPU time by process group, and connections per server process ---------------------

TICKS = os.sysconf("SC_CLK_TCK")


def _processes() -> dict[int, tuple[str, int, float]]:
    """pid -> (command name, parent pid, CPU seconds) for every process we may read."""
    found: dict[int, tuple[str, int, float]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            text = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        found[int(entry.name)] = (
            name,
            int(fields[1]),
            (int(fields[11]) + int(fields[12])) / TICKS,
        )
    return found


def _descendants(roots: Sequence[int], table: dict[int, tuple[str, int, float]]) -> set[int]:
    tree = set(roots)
    grew = True
    while grew:
        grew = False
        for pid, (_name, parent, _cpu) in table.items():
            if parent in tree and pid not in tree:
                tree.add(pid)
                grew = True
    return tree


def _machine_busy() -> float:
    """CPU seconds the whole machine has spent busy since boot."""
    with Path("/proc/stat").open() as stat:
        values = [int(v) for v in stat.readline().split()[1:]]
    idle = values[3] + values[4]
    return (sum(values[:8]) - idle) / TICKS


@dataclass(frozen=True)
class CpuSample:
    """CPU seconds so far: the servers', the read-model worker's and PostgreSQL's processes by
    pid, ours, the machine's."""

    server: dict[int, float]
    projections: dict[int, float]
    postgres: dict[int, float]
    client: float
    total: float

    @classmethod
    def take(cls, server_roots: Sequence[int], projection_roots: Sequence[int] = ()) -> CpuSample:
        table = _processes()
        servers = _descendants(server_roots, table)
        workers = _descendants(projection_roots, table) if projection_roots else set()
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return cls(
            server={pid: table[pid][2] for pid in servers if pid in table},
            projections={pid: table[pid][2] for pid in workers if pid in table},
            postgres={pid: cpu for pid, (name, _, cpu) in table.items() if name == "postgres"},
            client=usage.ru_utime + usage.ru_stime,
            total=_machine_busy(),
        )

    def since(self, start: CpuSample) -> dict[str, float]:
        """CPU seconds spent since `start`; a process that exited in between is not counted."""

        def spent(now: dict[int, float], before: dict[int, float]) -> float:
            return sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items())

        return {
            "server": spent(self.server, start.server),
            "projections": spent(self.projections, start.projections),
            "postgres": spent(self.postgres, start.postgres),
            "client": self.client - start.client,
            "total": self.total - start.total,
        }


def _connection_holders(server_roots: Sequence[int], ports: Sequence[int]) -> dict[int, int]:
    """Server process -> established connections on the servers' ports that it holds."""
    established: set[str] = set()
    for listing in ("/proc/net/tcp", "/proc/net/tcp6"):
        with suppress(OSError), Path(listing).open() as lines:
            next(lines)
            for line in lines:
                cells = line.split()
                port = int(cells[1].rsplit(":", 1)[1], 16)
                if port in ports and cells[3] == "01":
                    established.add(cells[9])
    holders: dict[int, int] = {}
    for pid in sorted(_descendants(server_roots, _processes())):
        inodes: set[str] = set()
        with suppress(OSError):
            for fd in Path(f"/proc/{pid}/fd").iterdir():
                with suppress(OSError):
                    target = str(fd.readlink())
                    if target.startswith("socket:["):
                        inodes.add(target[8:-1])
        held = len(inodes & established)
        if held:
            holders[pid] = held
    return holders


def _connections(server_roots: Sequence[int], ports: Sequence[int]) -> list[int]:
    """Established connections on the servers' ports held by each server process."""
    return list(_connection_holders(server_roots, ports).values())


# -- the load generator (a separate process) ------------------------------------------------


def _etag_version(headers: dict[str, str]) -> int:
    return int(headers["etag"].strip('W/"'))


def _drive(job: Job) -> Outcome:
    """Run every client's script at once, after a warm-up, and measure the phase."""
    clients = len(job.scripts)
    ready = threading.Barrier(clients + 1)
    go = threading.Barrier(clients + 1)
    samples: list[list[tuple[str, float, int]]] = [[] for _ in range(clients)]
    ends = [0.0] * clients

    def client(index: int) -> None:
        script = job.scripts[index]
        versions: dict[str, int] = {}
        base_url = job.base_urls[index % len(job.base_urls)]
        with Wire(base_url, REQUEST_TIMEOUT) as wire:
            try:
                # Clients arrive one after another, as they would, rather than in one burst
                # that the first uvicorn worker to wake accepts whole.
                time.sleep(index * CONNECT_STAGGER)
                appends = [c for c in script if c.case_id is not None]
                for call in {c.case_id: c for c in appends}.values():
                    _status, headers, _body = wire.request(
                        "GET", f"/cases/{call.case_id}", {"Authorization": f"Bearer {call.token}"}
                    )
                    versions[str(call.case_id)] = _etag_version(headers)
                if not appends and script:
                    _send(wire, script[0], versions)
            except (KeyError, ValueError):
                pass  # the measured requests will fail and count as errors
            finally:
                ready.wait()
            go.wait()
            for call in script:
                started = time.perf_counter()
                status = _send(wire, call, versions)
                samples[index].append((call.kind, time.perf_counter() - started, status))
            ends[index] = time.perf_counter()

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for thread in threads:
        thread.start()
    ready.wait()
    connections = _connections(job.server_pids, job.ports)
    cpu_start = CpuSample.take(job.server_pids, job.projection_pids)
    go.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join()
    wall = max(ends) - started
    settled = _settle(job.base_urls[0]) if job.projection_pids else True
    settle = max(0.0, time.perf_counter() - started - wall)
    cpu = CpuSample.take(job.server_pids, job.projection_pids).since(cpu_start)
    latencies: dict[str, list[float]] = {}
    statuses: Counter[int] = Counter()
    for kind, latency, status in (s for per_client in samples for s in per_client):
        latencies.setdefault(kind, []).append(latency)
        statuses[status] += 1
    return Outcome(
        name=job.name,
        requests=sum(len(s) for s in samples),
        wall=wall,
        latencies=latencies,
        statuses=statuses,
        cpu=cpu,
        machine_cpus=os.cpu_count() or 1,
        connections=connections,
        settle=settle,
        settled=settled,
    )


def caught_up(readiness: dict[str, object]) -> bool:
    """Whether a /readyz answer shows every read model at the log's last position."""
    position = readiness.get("log_position")
    models = readiness.get("read_models")
    if not isinstance(position, int) or not isinstance(models, dict) or not models:
        return False
    return all(isinstance(p, int) and p >= position for p in models.values())


def _settle(base_url: str, timeout: float = SETTLE_TIMEOUT) -> bool:
    """Wait until the read models have applied the whole log (via /readyz); False on timeout."""
    deadline = time.monotonic() + timeout
    with httpx.Client(base_url=base_url, timeout=5) as http:
        while time.monotonic() < deadline:
            with suppress(httpx.HTTPError, ValueError):
                response = http.get("/readyz")
                if response.status_code == 200 and caught_up(response.json()):
                    return True
            time.sleep(SETTLE_POLL)
    return False


def _send(wire: Wire, call: Call, versions: dict[str, int]) -> int:
    """Send one call; return its status (0 when the connection failed)."""
    headers: dict[str, str] = {}
    if call.token is not None:
        headers["Authorization"] = f"Bearer {call.token}"
    if call.body is not None:
        headers["Content-Type"] = "application/json"
    if call.case_id is not None:
        headers["If-Match"] = f'"{versions.get(call.case_id, 0)}"'
    status, answered, _body = wire.request(call.method, call.path, headers, call.body)
    if call.case_id is not None and status == 201:
        with suppress(KeyError, ValueError):  # no ETag: the next append fails and counts
            versions[call.case_id] = _etag_version(answered)
    return status


def _load_generator(conn: Connection) -> None:
    """The load generator process: run each job it is sent until it is sent None."""
    while True:
        job = conn.recv()
        if job is None:
            return
        conn.send(_drive(job))


@contextmanager
def load_generator() -> Iterator[Connection]:
    """A load generator process and the pipe to send it jobs; stopped afterwards."""
    ours, theirs = multiprocessing.get_context("spawn").Pipe()
    process = multiprocessing.get_context("spawn").Process(
        target=_load_generator, args=(theirs,), name="bench-http-clients", daemon=True
    )
    process.start()
    try:
        yield ours
    finally:
        with suppress(OSError):
            ours.send(None)
        process.join(timeout=10)
        if process.is_alive():
            process.kill()
            process.join()


# -- the servers -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-2000:]
        except OSError:
            return ""


def server_env(
    database_url: str, directory: Path, *, run_projections: bool = False
) -> dict[str, str]:
    """The environment of a server or read-model worker; by default production's layout on
    PostgreSQL, where the read models run in their own worker process, not in the servers."""
    return {
        **os.environ,
        "REFERRAL_DATABASE_URL": database_url,
        "REFERRAL_RUN_PROJECTIONS": "true" if run_projections else "false",
        "REFERRAL_DATA_DIR": str(directory),
    }


def _spawn(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("wb") as out:
        return subprocess.Popen(  # noqa: S603 -- our own interpreter and module
            command,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,  # its own process group, so its workers stop with it
        )


def start_server(
    database_url: str, workers: int, directory: Path, *, run_projections: bool = False
) -> Server:
    port = free_port()
    log = directory / f"server-{port}.log"
    command = [sys.executable, "-m", "api.cli", "serve", "--host", "127.0.0.1"]
    command += ["--port", str(port), "--workers", str(workers)]
    env = server_env(database_url, directory, run_projections=run_projections)
    return Server(_spawn(command, env, log), port, log)


def start_projections(database_url: str, directory: Path) -> Server:
    """The configuration's one read-model worker, `referral projections run` (no port)."""
    log = directory / f"projections-{secrets.token_hex(4)}.log"
    command = [sys.executable, "-m", "api.cli", "projections", "run"]
    return Server(_spawn(command, server_env(database_url, directory), log), 0, log)


def wait_projections(worker: Server, base_url: str) -> None:
    """Wait until the worker runs and the read models have applied the whole log."""
    deadline = time.monotonic() + READY_TIMEOUT
    while "projections running" not in worker.log_tail():
        if worker.process.poll() is not None:
            raise RuntimeError(f"the read-model worker exited:\n{worker.log_tail()}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"the read-model worker did not start:\n{worker.log_tail()}")
        time.sleep(0.05)
    if not _settle(base_url, max(1.0, deadline - time.monotonic())):
        raise RuntimeError(f"the read models did not catch up:\n{worker.log_tail()}")


@dataclass
class Running:
    """A configuration's servers and its read-model worker."""

    servers: list[Server]
    projections: Server


def wait_ready(server: Server) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    with httpx.Client(base_url=server.base_url, timeout=5) as http:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                raise RuntimeError(f"the server exited during start-up:\n{server.log_tail()}")
            with suppress(httpx.HTTPError):
                if http.get("/readyz").status_code == 200:
                    return
            time.sleep(0.1)
    raise RuntimeError(f"the server was not ready in {READY_TIMEOUT:g} s:\n{server.log_tail()}")


def wait_workers(server: Server, workers: int) -> None:
    """Wait until each worker has answered on a connection of its own.

    /readyz answered by one worker says nothing of the others, and a worker accepts connections
    only once started, so open fresh connections until each worker has held one (or give up
    after a while and measure as it is: the CPU table shows where the connections went).
    """
    answered: set[int] = set()
    deadline = time.monotonic() + READY_TIMEOUT / 4
    while len(answered) < workers and time.monotonic() < deadline:
        with httpx.Client(base_url=server.base_url, timeout=5) as http, suppress(httpx.HTTPError):
            http.get("/readyz")
            answered.update(_connection_holders([server.process.pid], [server.port]))
        time.sleep(0.05)


def stop_server(server: Server) -> None:
    """SIGTERM, then SIGKILL to its process group after a timeout."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
        try:
            server.process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            with suppress(ProcessLookupError):
                os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()
    with suppress(ProcessLookupError):  # a worker that outlived its parent
        os.killpg(server.process.pid, signal.SIGKILL)


@contextmanager
def running(database_url: str, config: Config, directory: Path) -> Iterator[list[Server]]:
    """Servers with the read models inside each (embedded mode), ready; stopped afterwards.

    Not what this section measures (`production`); `bench.load` uses it.
    """
    servers: list[Server] = []
    try:
        for _ in range(config.servers):
            servers.append(
                start_server(database_url, config.workers, directory, run_projections=True)
            )
            wait_ready(servers[-1])
            wait_workers(servers[-1], config.workers)
        yield servers
    finally:
        for server in servers:
            stop_server(server)


@contextmanager
def production(database_url: str, config: Config, directory: Path) -> Iterator[Running]:
    """The configuration as production runs it: servers with REFERRAL_RUN_PROJECTIONS=false and
    one read-model worker, ready and caught up; all stopped afterwards whatever happens."""
    servers: list[Server] = []
    worker: Server | None = None
    try:
        for _ in range(config.servers):
            # One after the other: two processes creating the store's tables at the same moment
            # can fail with "tuple concurrently updated" (CREATE OR REPLACE FUNCTION).
            servers.append(start_server(database_url, config.workers, directory))
            wait_ready(servers[-1])
            wait_workers(servers[-1], config.workers)
        worker = start_projections(database_url, directory)
        wait_projections(worker, servers[0].base_url)
        yield Running(servers, worker)
    finally:
        for server in servers:
            stop_server(server)
        if worker is not None:
            stop_server(worker)


# -- the workload ----------------------------------------------------------------------------


@dataclass
class Workload:
    """The cases and tokens the clients use, and the payloads' random source."""

    append_cases: list[tuple[str, str]]  # (case id, lead agency id), one per client
    read_cases: list[tuple[str, str]]
    tokens: dict[tuple[str, str], str]  # (agency id, role) -> bearer token
    rng: random.Random = field(default_factory=lambda: random.Random(SEED))

    def append_body(self, lead: str) -> tuple[str, bytes]:
        """(role, JSON body) of one more valid event by the lead agency."""
        event_type, payload, envelope = repeatable_event(self.rng, lead, utc_now())
        body = {
            "type": event_type,
            "payload": payload,
            "occurred_at": envelope.occurred_at.isoformat(),
            "event_id": str(envelope.event_id),
        }
        return envelope.actor.role.value, json.dumps(body).encode()

    def healthz(self, requests: int) -> list[list[Call]]:
        return [
            [Call("healthz", "GET", "/healthz") for _ in range(share)]
            for share in shares(requests)
        ]

    def appends(self, requests: int) -> list[list[Call]]:
        scripts: list[list[Call]] = []
        for (case_id, lead), share in zip(self.append_cases, shares(requests), strict=True):
            script: list[Call] = []
            for _ in range(share):
                role, body = self.append_body(lead)
                script.append(
                    Call(
                        "append",
                        "POST",
                        f"/cases/{case_id}/events",
                        self.tokens[(lead, role)],
                        body,
                        case_id,
                    )
                )
            scripts.append(script)
        return scripts

    def reads(self, requests: int) -> list[list[Call]]:
        scripts: list[list[Call]] = []
        for client, share in enumerate(shares(requests)):
            script: list[Call] = []
            for turn in range(share):
                case_id, lead = self.read_cases[(client * 7 + turn) % len(self.read_cases)]
                token = self.tokens[(lead, Role.CASEWORKER.value)]
                kind = READ_KINDS[(client + turn) % len(READ_KINDS)]
                path = {
                    "summary": f"/cases/{case_id}",
                    "history": f"/cases/{case_id}/events",
                    "list": LIST_PATH,
                }[kind]
                script.append(Call(kind, "GET", path, token))
            scripts.append(script)
        return scripts


def shares(requests: int) -> list[int]:
    """`requests` split between the clients as evenly as can be."""
    return [requests // CLIENTS + (i < requests % CLIENTS) for i in range(CLIENTS)]


def prepare(app: ReferralApplication, cases: int) -> Workload:
    """Seed the directory and cases; pick the cases; issue the tokens."""
    seed_directory(app)
    open_cases: list[tuple[str, str]] = []
    for batch in range(MAX_BATCHES):  # more cases until enough of them are open
        summary = generate_cases(app, cases=cases, seed=SEED + batch)
        open_cases.extend(
            (str(case_id), lead)
            for case_id, lead in summary.open_cases.items()
            if demo_agency_by_id(lead) is not None
        )
        if len(open_cases) >= MIN_OPEN_CASES:
            break
    else:
        raise RuntimeError(f"only {len(open_cases)} open cases in {MAX_BATCHES} batches")
    open_cases.sort()
    random.Random(SEED).shuffle(open_cases)
    append_cases, read_cases = open_cases[:CLIENTS], open_cases[CLIENTS:]
    tokens: dict[tuple[str, str], str] = {}
    for lead in sorted({lead for _case, lead in open_cases}):
        agency = demo_agency_by_id(lead)
        assert agency is not None  # noqa: S101 -- filtered above
        for role in (Role.CASEWORKER, Role.SUPERVISOR):
            _id, token = issue_token(
                app, agency.user(role).user_id, ttl=timedelta(days=1), actor=TOKEN_ACTOR
            )
            tokens[(lead, role.value)] = token
    return Workload(append_cases, read_cases, tokens)


def direct_seconds(database_url: str, workload: Workload, appends: int) -> float:
    """Seconds for `appends` in-process appends to the clients' cases, round robin, one thread.

    A fresh application each time, warmed up by a tenth as many unmeasured appends.
    """
    app = build_application(database_url)
    try:
        versions = {
            case_id: app.get_case(UUID(case_id)).version for case_id, _ in workload.append_cases
        }

        def append(n: int) -> None:
            for turn in range(n):
                case_id, lead = workload.append_cases[turn % len(workload.append_cases)]
                event_type, payload, envelope = repeatable_event(workload.rng, lead, utc_now())
                result = app.append(
                    UUID(case_id),
                    expected_version=versions[case_id],
                    event_type=event_type,
                    payload=payload,
                    envelope=envelope,
                )
                versions[case_id] = result.version

        append(max(1, appends // 10))
        started = time.perf_counter()
        append(appends)
        return time.perf_counter() - started
    finally:
        app.close()


# -- the section -----------------------------------------------------------------------------


@dataclass
class Figures:
    config: Config
    direct: float
    healthz: Outcome
    appends: Outcome
    reads: Outcome


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile of seconds, in ms."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)] * 1000


def measure(
    database_url: str,
    config: Config,
    *,
    workload: Workload,
    sizes: Sizes,
    clients: Connection,
    directory: Path,
) -> Figures:
    half = max(1, sizes.direct // 2)  # half before the server starts, half after it stops
    direct_elapsed = direct_seconds(database_url, workload, half)
    outcomes: dict[str, Outcome] = {}
    with production(database_url, config, directory) as layout:
        servers = layout.servers
        for name, scripts in (
            ("healthz", workload.healthz(sizes.pings)),
            (WARM_UP, workload.appends(sizes.appends // 10)),
            ("appends", workload.appends(sizes.appends)),
            (WARM_UP, workload.reads(sizes.reads // 10)),
            ("reads", workload.reads(sizes.reads)),
        ):
            clients.send(
                Job(
                    name,
                    [s.base_url for s in servers],
                    scripts,
                    [s.process.pid for s in servers],
                    [s.port for s in servers],
                    [layout.projections.process.pid],
                )
            )
            outcomes[name] = clients.recv()  # a warm-up's outcome is overwritten, unread
    direct_elapsed += direct_seconds(database_url, workload, half)
    return Figures(
        config,
        rate(2 * half, direct_elapsed),
        outcomes["healthz"],
        outcomes["appends"],
        outcomes["reads"],
    )


@contextmanager
def stopped_by_sigterm() -> Iterator[None]:
    """SIGTERM raises SystemExit here, so the servers and the schema are still cleaned up."""

    def stop(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


@contextmanager
def bench_master_keys() -> Iterator[None]:
    """A throwaway master key for the benchmark's store and servers unless one is configured."""
    if os.environ.get(MASTER_KEYS_SETTING) or os.environ.get(MASTER_KEY_FILE_SETTING):
        yield
        return
    key = base64.b64encode(secrets.token_bytes(32)).decode("ascii")
    os.environ[MASTER_KEYS_SETTING] = f"bench:{key}"
    try:
        yield
    finally:
        os.environ.pop(MASTER_KEYS_SETTING, None)


def run(settings: Settings) -> list[Table]:
    sizes = QUICK if settings.quick else FULL
    started = time.perf_counter()
    figures: list[Figures] = []
    with (
        stopped_by_sigterm(),
        bench_master_keys(),
        postgres_schema("bench_http") as (url, schema),
        tempfile.TemporaryDirectory(prefix="referral-bench-http-") as scratch,
        load_generator() as clients,
    ):
        database_url = with_schema(url, schema)
        app = build_application(database_url)
        try:
            workload = prepare(app, sizes.cases)
        finally:
            app.close()
        configs = CONFIGS[:2] if settings.quick else CONFIGS  # quick: what the targets are about
        figures.extend(
            measure(
                database_url,
                config,
                workload=workload,
                sizes=sizes,
                clients=clients,
                directory=Path(scratch),
            )
            for config in configs
        )
    elapsed = time.perf_counter() - started
    return [append_table(figures, sizes), read_table(figures, sizes), cpu_table(figures, elapsed)]


def append_table(figures: list[Figures], sizes: Sizes) -> Table:
    table = Table(
        f"http: appends under uvicorn on PostgreSQL (read models in a separate worker), "
        f"{CLIENTS} clients, {sizes.appends:,} requests per configuration",
        [
            "server",
            "appends/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "direct events/s",
            "http/direct",
            f"ratio >= {TARGET_RATIO}",
            f"p99 < {TARGET_P99_MS:g} ms",
        ],
    )
    for f in figures:
        appends = f.appends
        http_rate = rate(appends.requests, appends.wall)
        p99 = percentile(appends.all_latencies, 99)
        table.rows.append(
            [
                f.config.label,
                fmt_rate(http_rate),
                fmt_ms(percentile(appends.all_latencies, 50)),
                fmt_ms(p99),
                str(appends.errors),
                fmt_rate(f.direct),
                fmt_ratio(http_rate / f.direct),
                verdict(http_rate / f.direct >= TARGET_RATIO),
                verdict(p99 < TARGET_P99_MS),
            ]
        )
    table.notes.append(
        f"direct: ReferralApplication.append in-process, 1 thread, {sizes.direct:,} appends to "
        "the same cases, half just before each configuration's servers start and half just "
        "after they stop."
    )
    table.notes.append(
        "Each client appends to its own case with If-Match; errors are responses other than 201."
    )
    table.notes.append(
        "As in production on PostgreSQL: servers with REFERRAL_RUN_PROJECTIONS=false and one "
        "`referral projections run` worker per configuration (its CPU: the CPU table)."
    )
    table.notes.append(REFERENCE)
    return table


def read_table(figures: list[Figures], sizes: Sizes) -> Table:
    table = Table(
        f"http: reads, {CLIENTS} clients, {sizes.reads:,} requests per configuration "
        "(summary, history and list in turn)",
        [
            "server",
            "reads/s",
            "p50 ms",
            "p99 ms",
            "errors",
            "summary p50",
            "history p50",
            "list p50",
            "/healthz req/s",
            "/healthz p50",
            "/healthz p99",
        ],
    )
    for f in figures:
        reads = f.reads
        table.rows.append(
            [
                f.config.label,
                fmt_rate(rate(reads.requests, reads.wall)),
                fmt_ms(percentile(reads.all_latencies, 50)),
                fmt_ms(percentile(reads.all_latencies, 99)),
                str(reads.errors),
                *(fmt_ms(percentile(reads.latencies.get(k, []), 50)) for k in READ_KINDS),
                fmt_rate(rate(f.healthz.requests, f.healthz.wall)),
                fmt_ms(percentile(f.healthz.all_latencies, 50)),
                fmt_ms(percentile(f.healthz.all_latencies, 99)),
            ]
        )
    healthz = [f.healthz for f in figures]
    client_ms = max(o.cpu["client"] * 1000 / o.requests for o in healthz) if healthz else 0.0
    wrk = "installed but not used" if shutil.which("wrk") else "not installed"
    table.notes.append(
        f"Load generator: Python, 1 process, {CLIENTS} threads, one plain-socket "
        f"connection each (keep-alive, TCP_NODELAY; bench/wire.py); wrk {wrk}. It spends about "
        f"{client_ms:.2f} ms of CPU per /healthz request (see the CPU table for the other phases)."
    )
    table.notes.append(
        "/healthz (no store, no auth) is the ceiling of this client and server together on this "
        "machine, where they share its CPUs with PostgreSQL and anything else running."
    )
    table.notes.append(
        "history reads by the lead agency include identifying data, so each records an access "
        "(an append to the log), as every such read does."
    )
    return table


def cpu_table(figures: list[Figures], elapsed: float) -> Table:
    table = Table(
        "http: CPU ms per request, by process (from /proc), and how busy the machine was",
        [
            "server",
            "phase",
            "server",
            "projections",
            "postgres",
            "client",
            "other",
            "machine busy",
            "settle ms",
            "connections per process",
        ],
    )
    for f in figures:
        for outcome in (f.healthz, f.appends, f.reads):
            cpu = outcome.cpu
            per = 1000 / outcome.requests
            other = cpu["total"] - sum(
                cpu[k] for k in ("server", "projections", "postgres", "client")
            )
            busy = cpu["total"] / ((outcome.wall + outcome.settle) * outcome.machine_cpus)
            table.rows.append(
                [
                    f.config.label,
                    outcome.name,
                    f"{cpu['server'] * per:.2f}",
                    f"{cpu['projections'] * per:.2f}",
                    f"{cpu['postgres'] * per:.2f}",
                    f"{cpu['client'] * per:.2f}",
                    f"{max(0.0, other) * per:.2f}",
                    f"{busy:.0%}",
                    f"{outcome.settle * 1000:.0f}" + ("" if outcome.settled else " (timed out)"),
                    "/".join(str(n) for n in outcome.connections) or "-",
                ]
            )
    cpus = figures[0].appends.machine_cpus if figures else 1
    table.notes.append(
        f"{cpus} CPUs; 'server' is the API processes (REFERRAL_RUN_PROJECTIONS=false); "
        "'projections' is the one `referral projections run` worker of the configuration, which "
        "keeps the read models for every server; 'postgres' is every postgres process on the "
        "machine; 'other' is the rest of the machine's busy time. The server-side cost of a "
        "request is server + projections (+ postgres)."
    )
    table.notes.append(
        "Each phase's CPU is counted from its first request until the read models have applied "
        "all it appended: 'settle ms' is that wait after the last response, and 'machine busy' "
        "is over the phase and the wait together."
    )
    table.notes.append(
        "2 workers: the kernel spreads connections over the two listening sockets by their "
        "addresses (SO_REUSEPORT): 'connections per process' shows how evenly."
    )
    table.notes.append(
        "'other' well above 0 means other work on the machine took CPU during the phase and "
        "lowered its figures: rerun on a quiet machine before comparing with the targets."
    )
    table.notes.append(f"The section took {elapsed:.0f} s, setup and servers included.")
    return table


SECTION = Section(
    "http",
    "the API under uvicorn: appends and reads at 16 clients, against direct appends",
    run,
)
