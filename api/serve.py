"""`referral serve`: the API under uvicorn, in one process or in several sharing one port.

With `--workers N` uvicorn's own supervisor shares one listening socket among its workers, and
whichever worker is awake accepts: with a few long-lived keep-alive connections (a balancer's
pool, the benchmark's 16 clients) one worker ends up with most of them (measured: 14 of 16)
and the busiest worker bounds the whole. Here each of the N processes listens on the port
itself (SO_REUSEPORT), so the kernel spreads connections across them by their addresses. A
small supervisor starts them, starts again any that dies, and on SIGTERM or SIGINT stops them
gracefully. Where SO_REUSEPORT is missing, uvicorn's supervisor serves instead.

Every connection gets TCP_NODELAY (`api.server_protocol`).
"""

from __future__ import annotations

import multiprocessing
import signal
import socket
import threading
import time
from multiprocessing.process import BaseProcess
from types import FrameType

import uvicorn

from api.server_protocol import IMPORT_PATH as NODELAY_HTTP

APP = "api.app:create_app"
BACKLOG = 2048
RESTART_DELAY = 1.0
"""A process that dies within this many seconds of its start is started again only after it."""
STOP_TIMEOUT = 30.0
"""How long a process may take to finish its requests when stopped before it is killed."""


OPTIONS: dict[str, object] = {
    "factory": True,
    "http": NODELAY_HTTP,
    "log_level": "warning",
    "access_log": False,
}


def shared_port_socket(host: str, port: int) -> socket.socket:
    """A TCP socket bound to (host, port) with SO_REUSEPORT: others may bind the same."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    return sock


def run_process(host: str, port: int) -> None:
    """One serving process (spawned): its own listening socket on the shared port."""
    sock = shared_port_socket(host, port)
    sock.listen(BACKLOG)
    uvicorn.Server(uvicorn.Config(APP, host=host, port=port, **OPTIONS)).run(sockets=[sock])  # type: ignore[arg-type]


def serve(host: str, port: int, workers: int) -> int:
    """Serve until SIGTERM or SIGINT; return the exit status."""
    if workers == 1 or not hasattr(socket, "SO_REUSEPORT"):
        uvicorn.run(APP, host=host, port=port, workers=workers, **OPTIONS)  # type: ignore[arg-type]
        return 0
    # Held, never listening: it keeps the port while processes come and go (port 0: picks one).
    holder = shared_port_socket(host, port)
    try:
        return Supervisor(host, holder.getsockname()[1], workers).run()
    finally:
        holder.close()


class Supervisor:
    """Keeps `workers` serving processes running until told to stop."""

    def __init__(self, host: str, port: int, workers: int) -> None:
        self.host, self.port, self.workers = host, port, workers
        self.stop = threading.Event()
        self.context = multiprocessing.get_context("spawn")
        self.processes: list[tuple[BaseProcess, float]] = []

    def _start(self) -> tuple[BaseProcess, float]:
        process = self.context.Process(
            target=run_process, args=(self.host, self.port), name="referral-serve", daemon=False
        )
        process.start()
        return process, time.monotonic()

    def _on_signal(self, _signum: int, _frame: FrameType | None) -> None:
        self.stop.set()

    def run(self) -> int:
        previous = {
            sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)
        }
        try:
            self.processes = [self._start() for _ in range(self.workers)]
            while not self.stop.wait(0.2):
                self._replace_the_dead()
        finally:
            self._stop_all()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
        return 0

    def _replace_the_dead(self) -> None:
        for index, (process, started) in enumerate(self.processes):
            if process.is_alive():
                continue
            process.join()
            if time.monotonic() - started < RESTART_DELAY and self.stop.wait(RESTART_DELAY):
                return
            self.processes[index] = self._start()

    def _stop_all(self) -> None:
        for process, _started in self.processes:
            if process.is_alive():
                process.terminate()  # SIGTERM: uvicorn finishes its requests, then exits
        deadline = time.monotonic() + STOP_TIMEOUT
        for process, _started in self.processes:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                process.kill()
                process.join()
