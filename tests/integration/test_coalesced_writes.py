"""`referral serve`'s protocol sends each response in one write (`api.server_protocol.
CoalescingTransport`): a real uvicorn server on a real socket, with a count of the writes that
reach the socket's transport, and responses that must still arrive whole, in order, and before
a close."""

from __future__ import annotations

import asyncio
from typing import Any, cast

import uvicorn
import uvloop
from uvicorn.server import ServerState

from api.server_protocol import NoDelayHttpToolsProtocol


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    assert scope["type"] == "http"
    if scope["path"] == "/stream":  # a body in three parts, the event loop turning in between
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b""})
        return
    body = scope["path"].encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def serve(requests: bytes, expected_responses: int) -> tuple[bytes, list[int]]:
    """Send `requests` on one connection; return all bytes read until the server closed or
    `expected_responses` arrived, and the size of each write that reached the transport."""

    async def main() -> tuple[bytes, list[int]]:
        config = uvicorn.Config(app, log_level="warning")
        config.load()
        state = ServerState()
        writes: list[int] = []

        class Counted(NoDelayHttpToolsProtocol):
            def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
                super().connection_made(cast(asyncio.Transport, CountingTransport(transport)))

        class CountingTransport:
            """The socket's transport, counting the writes that reach it."""

            def __init__(self, transport: asyncio.Transport) -> None:
                self.transport = transport

            def write(self, data: bytes) -> None:
                writes.append(len(data))
                self.transport.write(data)

            def __getattr__(self, name: str) -> Any:
                return getattr(self.transport, name)

        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            lambda: Counted(config=config, server_state=state, app_state={}), "127.0.0.1", 0
        )
        port = server.sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(requests)
        await writer.drain()
        received = b""
        while received.count(b"HTTP/1.1 ") < expected_responses or not received.endswith(
            (b"/a", b"/b", b"/c", b"0\r\n\r\n")
        ):
            chunk = await asyncio.wait_for(reader.read(65536), timeout=5)
            if not chunk:
                break
            received += chunk
        writer.close()
        server.close()
        for connection in list(state.connections):
            connection.shutdown()
        await server.wait_closed()
        return received, writes

    return uvloop.run(main())


def get(path: str, *extra: str) -> bytes:
    return "\r\n".join([f"GET {path} HTTP/1.1", "host: test", *extra, "", ""]).encode()


def test_each_response_leaves_in_one_write_and_keep_alive_responses_stay_in_order() -> None:
    received, writes = serve(get("/a") + get("/b") + get("/c"), 3)
    responses = received.split(b"HTTP/1.1 200 OK\r\n")[1:]
    assert [r.rsplit(b"\r\n\r\n", 1)[1] for r in responses] == [b"/a", b"/b", b"/c"]
    assert len(writes) == 3, f"one write per response, not status line and body apart: {writes}"


def test_a_closing_connection_gets_its_whole_response_first() -> None:
    received, writes = serve(get("/last", "connection: close"), 1)
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"\r\n\r\n/last")
    assert b"connection: close" in received
    assert len(writes) == 1


def test_a_body_written_over_several_turns_still_streams() -> None:
    received, writes = serve(get("/stream"), 1)
    assert b"transfer-encoding: chunked" in received
    assert b"one," in received
    assert b"three" in received
    assert received.endswith(b"0\r\n\r\n")
    # The parts written in separate turns of the loop go out separately, not held to the end.
    assert len(writes) >= 3
