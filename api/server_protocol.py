"""uvicorn's HTTP protocol (httptools) with TCP_NODELAY set on every connection it serves.

asyncio sets TCP_NODELAY on the sockets a server accepts only when the listening socket says it
is TCP (`proto == IPPROTO_TCP`). With `--workers N` uvicorn binds the socket in its supervisor
and hands each worker a copy rebuilt from the descriptor, whose `proto` reads 0: the workers'
connections then keep Nagle's algorithm, and every keep-alive response waits for the client's
delayed ACK (~40 ms; DESIGN.md). Setting the option on each connection does not depend on how
the listening socket was made.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket

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


class NoDelayHttpToolsProtocol(HttpToolsProtocol):
    """`HttpToolsProtocol`, with TCP_NODELAY on from the first byte."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        set_nodelay(transport)
        super().connection_made(transport)
