"""uvicorn's HTTP protocol (httptools), with TCP_NODELAY on every connection it serves and each
response's writes sent together.

TCP_NODELAY: asyncio sets it on the sockets a server accepts only when the listening socket says
it is TCP (`proto == IPPROTO_TCP`). With `--workers N` uvicorn binds the socket in its supervisor
and hands each worker a copy rebuilt from the descriptor, whose `proto` reads 0: the workers'
connections then keep Nagle's algorithm, and every keep-alive response waits for the client's
delayed ACK (~40 ms; DESIGN.md). Setting the option on each connection does not depend on how
the listening socket was made.

Writes together: uvicorn writes a response's status line and headers, then its body, each
straight to the socket: two sends, two segments with Nagle off. On loopback and on a busy
machine each send costs the sender the receiver's network work too (about 6% of the server's
CPU per append in `bench http`, two sends per response). `CoalescingTransport` holds what is
written during one turn of the event loop and sends it at the end of that turn as one: a
response written in one go (every JSON response) leaves in one send. Nothing waits longer
than the turn it was written in, and closing sends what is held first.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import Any, cast

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

IMPORT_PATH = f"{__name__}:NoDelayHttpToolsProtocol"
"""What `uvicorn.run(http=...)` is given."""


def set_nodelay(transport: asyncio.BaseTransport) -> None:
    """Turn Nagle's algorithm off on a TCP transport's socket (nothing for a Unix socket)."""
    sock = transport.get_extra_info("socket")
    if sock is None or sock.family not in {socket.AF_INET, socket.AF_INET6}:
        return
    with contextlib.suppress(OSError):  # the peer may already have gone
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)


class CoalescingTransport:
    """A transport whose writes in one turn of the event loop go out as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self.transport = transport
        self._loop = loop
        self._held: list[bytes] = []

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._held:
            self._loop.call_soon(self.flush)
        self._held.append(bytes(data))

    def writelines(self, lines: Any) -> None:
        for data in lines:
            self.write(data)

    def flush(self) -> None:
        """Send what is held (at the end of the turn, or before closing)."""
        held, self._held = self._held, []
        if held and not self.transport.is_closing():
            self.transport.write(held[0] if len(held) == 1 else b"".join(held))

    def close(self) -> None:
        self.flush()
        self.transport.close()

    def write_eof(self) -> None:
        self.flush()
        self.transport.write_eof()

    def abort(self) -> None:
        self._held = []
        self.transport.abort()

    def is_closing(self) -> bool:
        return self.transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.transport.get_extra_info(name, default)

    def __getattr__(self, name: str) -> Any:  # pause_reading, resume_reading, …
        return getattr(self.transport, name)


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol`, with TCP_NODELAY on from the first byte and each turn's writes sent
    as one."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        coalescing = CoalescingTransport(transport, asyncio.get_running_loop())
        super().connection_made(cast(asyncio.Transport, coalescing))
