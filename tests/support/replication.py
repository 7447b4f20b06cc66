"""A throwaway PostgreSQL primary with a streaming-replication hot standby, on loopback.

Two clusters in one temporary directory, each on a free port of 127.0.0.1 (and a Unix socket in
that directory): the primary is initialised with `initdb`, the standby is a `pg_basebackup -R`
of it. Like `tests.support.postgres`, the server binaries run as the `postgres` system user when
the suite runs as root. `replicated_pair()` stops both clusters and removes the directory at the
end, whatever happened.

The primary runs the settings of `ops/postgresql/referral.conf` that matter to replication:
`wal_level=replica`, `max_wal_senders`, `hot_standby`, `fsync=on`, `full_page_writes=on`. The
synchronous standby is switched on only once the standby streams (`make_synchronous`), as one
does in production: `synchronous_standby_names` names a standby that does not exist yet, and
every commit on the primary would wait for it. It is set with ALTER SYSTEM on the primary after
the base backup, so the standby does not inherit it: promoted, it commits without waiting for a
standby of its own. (A production standby carries referral.conf and its standby names: see
ops/RUNBOOK.md, "Fail over", for keeping writes flowing after a promotion.)
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

from adapters.store import ProtectedApplication, build_application
from referral_core.clock import Clock, utc_now

STANDBY_NAME = "referral_standby"
REPLICATION_USER = "replicator"
START_TIMEOUT = 30.0

# Loopback only: the local superuser, the application (trust, throwaway), replication.
PG_HBA = f"""\
# Throwaway test cluster: loopback only, trust (there is no password to leak).
local   all          all                        trust
host    all          all          127.0.0.1/32  trust
host    replication  {REPLICATION_USER:<12} 127.0.0.1/32  trust
"""

PRIMARY_SETTINGS = """
# --- referral replication test (see ops/postgresql/referral.conf) ---
listen_addresses = '127.0.0.1'
wal_level = replica
max_wal_senders = 4
max_replication_slots = 4
hot_standby = on
hot_standby_feedback = on
fsync = on
full_page_writes = on
synchronous_commit = remote_apply
wal_keep_size = '64MB'
shared_buffers = '32MB'
max_connections = 60
"""


class ReplicationError(RuntimeError):
    """A cluster did not start, stream or promote in time."""


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _as_postgres(args: list[str], *, check: bool = True) -> subprocess.CompletedProcess[bytes]:
    """Run a server binary (as `postgres` when root); with `check`, fail with its stderr."""
    prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    result = subprocess.run([*prefix, *args], check=False, capture_output=True)  # noqa: S603
    if check and result.returncode != 0:
        error = result.stderr.decode(errors="replace").strip()[-2000:]
        raise ReplicationError(f"{Path(args[0]).name} failed ({result.returncode}): {error}")
    return result


def _chown(path: Path) -> None:
    if os.geteuid() == 0:
        shutil.chown(path, "postgres", "postgres")


@dataclass
class Cluster:
    """One PostgreSQL cluster of the pair."""

    name: str
    bindir: Path
    root: Path
    port: int

    @property
    def data(self) -> Path:
        return self.root / self.name

    @property
    def log(self) -> Path:
        return self.root / f"{self.name}.log"

    @property
    def admin_url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def url(self, schema: str | None = None) -> str:
        """The URL the application uses (`?schema=` selects the store's schema)."""
        return self.admin_url + (f"?schema={schema}" if schema else "")

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        return _as_postgres(
            [str(self.bindir / "pg_ctl"), "-D", str(self.data), *args], check=check
        )

    def start(self, *settings: str) -> None:
        """Start on this cluster's port and socket directory; wait until it answers."""
        options = " ".join([f"-p {self.port}", f"-k {self.root}", *(f"-c {s}" for s in settings)])
        result = self.pg_ctl(
            "-o", options, "-l", str(self.log), "-w", "-t", "30", "start", check=False
        )
        if result.returncode != 0:
            raise ReplicationError(f"{self.name} did not start: {self.log_tail()}")
        deadline = time.monotonic() + START_TIMEOUT
        while not self.answers():
            if time.monotonic() > deadline:
                raise ReplicationError(f"{self.name} does not answer: {self.log_tail()}")
            time.sleep(0.1)

    def running(self) -> bool:
        return self.pg_ctl("status", check=False).returncode == 0

    def stop(self, mode: str = "fast") -> None:
        """Stop the cluster (`immediate` is a crash: no checkpoint, no goodbye to the standby)."""
        if self.running():
            self.pg_ctl("-m", mode, "-w", "-t", "30", "stop", check=False)

    def answers(self) -> bool:
        try:
            with psycopg.connect(self.admin_url, connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def scalar(self, sql: str, params: tuple[object, ...] = ()) -> object:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    def execute(self, sql: str) -> None:
        with psycopg.connect(self.admin_url, autocommit=True, connect_timeout=5) as conn:
            conn.execute(sql)

    def in_recovery(self) -> bool:
        return bool(self.scalar("SELECT pg_is_in_recovery()"))

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = self.log.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return "(no log)"
        return " | ".join(text.strip().splitlines()[-lines:])


@dataclass
class ReplicatedPair:
    """A primary and its hot standby; the standby streams under `STANDBY_NAME`."""

    primary: Cluster
    standby: Cluster

    def replication_state(self) -> tuple[str, str] | None:
        """(state, sync_state) of the standby as the primary sees it, or None."""
        with psycopg.connect(self.primary.admin_url, autocommit=True, connect_timeout=5) as conn:
            row = conn.execute(
                "SELECT state, sync_state FROM pg_stat_replication WHERE application_name = %s",
                (STANDBY_NAME,),
            ).fetchone()
        return None if row is None else (str(row[0]), str(row[1]))

    def wait_streaming(self, *, sync: bool = False, timeout: float = START_TIMEOUT) -> None:
        """Until the primary sees the standby streaming (and, with `sync`, as its sync standby)."""
        deadline = time.monotonic() + timeout
        while True:
            state = self.replication_state()
            if state and state[0] == "streaming" and (not sync or state[1] == "sync"):
                return
            if time.monotonic() > deadline:
                raise ReplicationError(
                    f"the standby is not streaming ({state}): {self.standby.log_tail()}"
                )
            time.sleep(0.1)

    def make_synchronous(self, level: str = "remote_apply") -> None:
        """Every commit on the primary now waits for the standby (`remote_apply`: until the
        standby has applied it, so a read there right after the acknowledgement sees it)."""
        self.primary.execute(f"ALTER SYSTEM SET synchronous_standby_names = '{STANDBY_NAME}'")
        self.primary.execute(f"ALTER SYSTEM SET synchronous_commit = '{level}'")
        self.primary.execute("SELECT pg_reload_conf()")
        self.wait_streaming(sync=True)

    def wait_replayed(self, timeout: float = START_TIMEOUT) -> None:
        """Until the standby has replayed everything the primary has written so far."""
        target = str(self.primary.scalar("SELECT pg_current_wal_lsn()"))
        deadline = time.monotonic() + timeout
        while not self.standby.scalar("SELECT pg_last_wal_replay_lsn() >= %s::pg_lsn", (target,)):
            if time.monotonic() > deadline:
                raise ReplicationError("the standby did not replay the primary's WAL in time")
            time.sleep(0.05)

    def crash_primary(self) -> None:
        """Stop the primary abruptly: `pg_ctl stop -m immediate`."""
        self.primary.pg_ctl("-m", "immediate", "-w", "stop")

    def promote(self, timeout: float = START_TIMEOUT) -> None:
        """Promote the standby (`pg_ctl promote -w`) and wait until it accepts writes."""
        self.standby.pg_ctl("-w", "-t", str(int(timeout)), "promote")
        deadline = time.monotonic() + timeout
        while self.standby.in_recovery():
            if time.monotonic() > deadline:
                raise ReplicationError(f"the standby was not promoted: {self.standby.log_tail()}")
            time.sleep(0.1)


def _start_primary(primary: Cluster, *, synchronous: bool = True) -> None:
    _as_postgres(
        [
            str(primary.bindir / "initdb"),
            "-D",
            str(primary.data),
            "-U",
            "postgres",
            "--auth=trust",
            "--no-sync",  # the test's initdb need not survive a power cut; the server fsyncs
            "--no-instructions",
        ]
    )
    hba = primary.data / "pg_hba.conf"
    hba.write_text(PG_HBA, encoding="utf-8")
    _chown(hba)
    conf = primary.data / "postgresql.conf"
    settings = PRIMARY_SETTINGS
    if not synchronous:  # no standby will ever answer: commit locally
        settings = settings.replace("synchronous_commit = remote_apply", "synchronous_commit = on")
    with conf.open("a", encoding="utf-8") as handle:
        handle.write(settings)
    primary.start()
    primary.execute(f"CREATE ROLE {REPLICATION_USER} WITH REPLICATION LOGIN")


def _start_standby(standby: Cluster, primary: Cluster) -> None:
    conninfo = (
        f"host=127.0.0.1 port={primary.port} user={REPLICATION_USER} "
        f"application_name={STANDBY_NAME}"
    )
    _as_postgres(
        [
            str(standby.bindir / "pg_basebackup"),
            "-d",
            conninfo,
            "-D",
            str(standby.data),
            "-R",  # standby.signal + primary_conninfo (with the application_name)
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        ]
    )
    standby.start("hot_standby=on")


@contextmanager
def replicated_pair(bindir: Path) -> Iterator[ReplicatedPair]:
    """A streaming primary/standby pair; both stopped and their directory removed at the end.

    `bindir` holds `pg_ctl`; a symlinked one (/usr/local/bin/pg_ctl) leads to the real bin
    directory, where initdb and pg_basebackup are.
    """
    bindir = (bindir / "pg_ctl").resolve().parent
    root = Path(tempfile.mkdtemp(prefix="referral-repl-"))
    _chown(root)
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, root, ignore_errors=True)
        primary = Cluster("primary", bindir, root, free_port())
        standby = Cluster("standby", bindir, root, free_port())
        # Registered before anything starts: a half-started cluster is stopped too (LIFO).
        cleanup.callback(primary.stop, "immediate")
        cleanup.callback(standby.stop, "immediate")
        _start_primary(primary)
        _start_standby(standby, primary)
        pair = ReplicatedPair(primary, standby)
        pair.wait_streaming()
        yield pair


@contextmanager
def standalone_cluster(bindir: Path) -> Iterator[Cluster]:
    """One throwaway cluster that a test may stop, crash and start again (`Cluster.start`).

    Initialised like the primary of the pair (loopback only, trust) without a standby; stopped
    and its directory removed at the end, whatever happened.
    """
    bindir = (bindir / "pg_ctl").resolve().parent
    root = Path(tempfile.mkdtemp(prefix="referral-pg-"))
    _chown(root)
    with ExitStack() as cleanup:
        cleanup.callback(shutil.rmtree, root, ignore_errors=True)
        cluster = Cluster("single", bindir, root, free_port())
        cleanup.callback(cluster.stop, "immediate")
        _start_primary(cluster, synchronous=False)
        yield cluster


def read_only_application(database_url: str, *, clock: Clock = utc_now) -> ProtectedApplication:
    """The application on a hot standby, for reads: built without creating any table.

    `build_application` creates its tables on start (`CREATE TABLE IF NOT EXISTS`, which a hot
    standby refuses even when the table exists) unless `create_tables` is off (as with
    REFERRAL_CREATE_TABLES=false). The tables must already exist (created on the primary,
    replicated).
    """
    return build_application(database_url, clock=clock, create_tables=False)
