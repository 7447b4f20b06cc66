"""Find a PostgreSQL server for the suite, or start a throwaway one from the installed binaries.

pytest-postgresql was considered: it cannot run initdb as root, which CI is, so this module runs
the server binaries itself (as the `postgres` system user when the suite runs as root).
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import psycopg

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
TEST_DATABASE = "referral_test"
HOW_TO_GET_POSTGRES = (
    "PostgreSQL is needed for the suite: start one and set REFERRAL_TEST_DATABASE_URL "
    "(default postgresql://postgres@127.0.0.1:5432/postgres), or install the server binaries "
    "(Debian: apt-get install postgresql) so the suite can start its own."
)


def answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=3):
            return True
    except psycopg.OperationalError:
        return False


def find_binaries() -> Path | None:
    found = shutil.which("pg_ctl")
    if found:
        real = Path(found).resolve().parent  # Debian links pg_ctl into /usr/bin, alone
        if (real / "initdb").exists():
            return real
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"), reverse=True)
    return versions[0].parent if versions else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ThrowawayServer:
    """A PostgreSQL cluster in a temporary directory, stopped and removed at the end."""

    bindir: Path
    root: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        subprocess.run([*prefix, *args], check=True, capture_output=True)  # noqa: S603

    @classmethod
    def start(cls, bindir: Path) -> ThrowawayServer:
        root = Path(tempfile.mkdtemp(prefix="referral-pg-"))
        server = cls(bindir, root, _free_port())
        if os.geteuid() == 0:
            shutil.chown(root, "postgres")
        data = str(root / "data")
        server._run(str(bindir / "initdb"), "-D", data, "-U", "postgres", "--auth=trust")
        options = f"-p {server.port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        log = str(root / "log")
        server._run(str(bindir / "pg_ctl"), "-D", data, "-o", options, "-l", log, "-w", "start")
        deadline = time.monotonic() + 30
        while not answers(server.url):
            if time.monotonic() > deadline:
                raise RuntimeError("the throwaway PostgreSQL did not start")
            time.sleep(0.2)
        return server

    def stop(self) -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "fast", "stop")
        shutil.rmtree(self.root, ignore_errors=True)


def ensure_test_database(admin_url: str) -> str:
    """Create the suite's database if missing; return its URL."""
    with psycopg.connect(admin_url, autocommit=True) as conn:
        exists = conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,)
        ).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{TEST_DATABASE}"')
    parts = urlsplit(admin_url)
    return parts._replace(path=f"/{TEST_DATABASE}").geturl()


def create_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')


def drop_schema(url: str, schema: str) -> None:
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
