"""The benchmarks' HTTP client reads what servers send: lengths, chunks, closes, garbage."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from bench.wire import FAILED, Wire


@contextmanager
def server(answers: list[bytes]) -> Iterator[tuple[str, list[bytes]]]:
    """A one-connection server: reads one request per answer, replies with it, in order.

    Yields its base URL and the raw requests it received.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    received: list[bytes] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            buffer = b""
            for answer in answers:
                while b"\r\n\r\n" not in buffer:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buffer += chunk
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n")[1:]:
                    name, _, value = line.partition(b":")
                    if name.strip().lower() == b"content-length":
                        length = int(value)
                while len(buffer) < length:
                    buffer += conn.recv(65536)
                received.append(head + b"\r\n\r\n" + buffer[:length])
                buffer = buffer[length:]
                conn.sendall(answer)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}", received
    finally:
        listener.close()
        thread.join(timeout=5)


def test_a_request_goes_out_whole_and_answers_are_read_on_one_connection() -> None:
    answers = [
        b'HTTP/1.1 201 Created\r\nETag: "7"\r\nContent-Length: 11\r\n\r\n{"ok":true}',
        b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ]
    with server(answers) as (url, received), Wire(url, timeout=5) as wire:
        first = wire.request("POST", "/cases/x/events", {"If-Match": '"6"'}, b'{"a": 1}')
        second = wire.request("GET", "/healthz", {})
        third = wire.request("GET", "/nothing", {})
    assert first == (201, {"etag": '"7"', "content-length": "11"}, b'{"ok":true}')
    assert second[0] == 200
    assert second[2] == b"abcde"
    assert third[0] == 204
    assert third[2] == b""
    assert received[0].startswith(b"POST /cases/x/events HTTP/1.1\r\n")
    assert b'If-Match: "6"\r\n' in received[0]
    assert b"Content-Length: 8\r\n" in received[0]
    assert received[0].endswith(b'\r\n\r\n{"a": 1}')
    assert received[1].startswith(b"GET /healthz HTTP/1.1\r\n")


def test_an_answer_that_is_not_http_fails_and_drops_the_connection() -> None:
    with server([b"SSH-2.0-OpenSSH\r\n\r\n"]) as (url, _), Wire(url, timeout=5) as wire:
        assert wire.request("GET", "/healthz", {}) == (FAILED, {}, b"")
        assert wire._socket is None


def test_a_closed_connection_fails_the_request_and_the_next_one_reconnects() -> None:
    with server([b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort"]) as (url, _):
        wire = Wire(url, timeout=5)
        assert wire.request("GET", "/healthz", {}) == (FAILED, {}, b"")
    with server([b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"]) as (
        url,
        _,
    ):
        wire.port = int(url.rsplit(":", 1)[1])
        assert wire.request("GET", "/healthz", {}) == (
            200,
            {"content-length": "2", "connection": "close"},
            b"ok",
        )
        assert wire._socket is None  # the server said close
