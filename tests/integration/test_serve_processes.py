"""`referral serve --workers N`: N processes each listening on the port, kept running.

Started as a deployment starts it (a subprocess on SQLite): each process has a listening socket
of its own on the port (SO_REUSEPORT, not one socket shared), every process answers its share of
keep-alive connections (read from /proc: which process holds each established connection), a
process that dies is replaced while the others go on answering, and SIGTERM stops them all with
exit status 0.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait(condition: Callable[[], bool], what: str, timeout: float = START_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.1)


def children(pid: int) -> list[int]:
    """The serving processes `pid` spawned (not multiprocessing's resource tracker)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        if parent == pid and b"spawn_main" in command:
            found.append(int(entry.name))
    return sorted(found)


def established_inodes(port: int, state_code: str = "01") -> set[str]:
    """Socket inodes of TCP sockets whose local port is `port`, in a state (01: established,
    0A: listening)."""
    inodes: set[str] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == state_code and int(local.rsplit(":", 1)[1], 16) == port:
                inodes.add(inode)
    return inodes


def connections_held(pid: int, port: int) -> int:
    inodes = established_inodes(port)
    held = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = str(fd.readlink())
        except OSError:
            continue
        if target.startswith("socket:[") and target[8:-1] in inodes:
            held += 1
    return held


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], int]]:
    port = free_port()
    env = {
        **os.environ,
        "REFERRAL_DATABASE_URL": f"sqlite:///{tmp_path / 'referral.sqlite'}",
        "REFERRAL_DATA_DIR": str(tmp_path),
        "REFERRAL_LOG_LEVEL": "warning",
    }
    log = (tmp_path / "serve.log").open("wb")
    process = subprocess.Popen(  # noqa: S603 -- our interpreter and module
        [sys.executable, "-m", "api.cli", "serve", "--port", str(port), "--workers", "2"],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield process, port
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)
        log.close()


def healthy(port: int) -> bool:
    try:
        return httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
    except httpx.HTTPError:
        return False


def test_each_process_serves_connections_and_a_dead_one_is_replaced(
    served: tuple[subprocess.Popen[bytes], int],
) -> None:
    process, port = served
    wait(lambda: len(children(process.pid)) == 2 and healthy(port), "two serving processes")
    first = children(process.pid)
    # Each process listens itself (SO_REUSEPORT); uvicorn's workers would share one socket.
    assert len(established_inodes(port, "0A")) == 2
    clients = [httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) for _ in range(16)]
    try:
        for client in clients:
            assert client.get("/healthz").status_code == 200  # the connection stays open
        held = {pid: connections_held(pid, port) for pid in first}
        assert sum(held.values()) == 16
        assert all(count > 0 for count in held.values()), held
    finally:
        for client in clients:
            client.close()

    os.kill(first[0], signal.SIGKILL)
    wait(lambda: healthy(port), "the other process answers meanwhile", timeout=10)
    wait(
        lambda: len(children(process.pid)) == 2 and first[0] not in children(process.pid),
        "a new process in place of the dead one",
    )
    wait(lambda: healthy(port), "served again")

    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=45) == 0
    assert children(process.pid) == []
