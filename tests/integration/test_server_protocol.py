"""TCP_NODELAY on the connections `referral serve` accepts, however its socket was made.

uvicorn's workers get the listening socket rebuilt from its descriptor (`proto` 0), and asyncio
then leaves Nagle's algorithm on for what they accept: the test makes such a socket, serves a
real request over it with uvicorn's own protocol and with ours, and reads the option back from
the connection the server accepted.
"""

from __future__ import annotations

import asyncio
import socket
from typing import Any

import pytest
import uvicorn
import uvloop
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from api.server_protocol import NoDelayHttpToolsProtocol


async def hello(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def served_nodelay(protocol: type[HttpToolsProtocol], loop: str) -> int:
    """TCP_NODELAY as read on the server's side of one connection that was served a request."""

    async def main() -> int:
        config = uvicorn.Config(hello, log_level="warning")
        config.load()
        state = ServerState()
        accepted: list[asyncio.Transport] = []

        class Watching(protocol):  # type: ignore[valid-type,misc]
            def connection_made(self, transport: asyncio.Transport) -> None:
                accepted.append(transport)
                super().connection_made(transport)

        bound = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        bound.bind(("127.0.0.1", 0))
        bound.listen()
        # As uvicorn's workers get it: the same socket, rebuilt from its descriptor (proto 0).
        rebuilt = socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, bound.detach())
        assert rebuilt.proto == 0
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Watching(config=config, server_state=state, app_state={}), sock=rebuilt
        )
        port = rebuilt.getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
        await writer.drain()
        assert (await reader.readuntil(b"\r\n")).startswith(b"HTTP/1.1 200")
        option = int(
            accepted[0].get_extra_info("socket").getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        )
        writer.close()
        server.close()
        for connection in list(state.connections):
            connection.shutdown()
        await server.wait_closed()
        return option

    if loop == "uvloop":  # what `referral serve` runs on
        return int(uvloop.run(main()))
    return asyncio.run(main())


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_connections_accepted_on_a_rebuilt_socket_have_nodelay_with_our_protocol(
    loop: str,
) -> None:
    assert served_nodelay(NoDelayHttpToolsProtocol, loop) == 1


def test_uvicorns_own_protocol_leaves_nagle_on_for_them() -> None:
    """The reason for ours: on the loop asyncio brings, what a worker accepts keeps Nagle."""
    assert served_nodelay(HttpToolsProtocol, "asyncio") == 0
