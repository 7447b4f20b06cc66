"""A lean keep-alive HTTP/1.1 client for the load generators: one connection, TCP_NODELAY.

A plain socket: each request goes out in one `sendall`, and the answer is read with just
enough parsing to find its status, headers and body (Content-Length or chunked). The load
generator shares the machine's cores with the server it measures, and every millisecond it
spends is one the server does not get: httpx spent about 0.3 ms of CPU on each request
(headers models, URL objects, hooks), and the standard library's http.client about 0.1 ms
(most of it parsing headers with the email package).
"""

from __future__ import annotations

import socket
from urllib.parse import urlsplit

FAILED = 0  # the status a request reports when it got no answer
RECEIVE = 65536
MAX_HEAD = 65536  # a longer status line and headers is a broken answer


class WireError(Exception):
    """The server's answer is not HTTP/1.1 this client can read."""


class Wire:
    """One persistent connection to a server; requests go out one after another."""

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._socket: socket.socket | None = None
        self._buffer = b""

    def _connected(self) -> socket.socket:
        if self._socket is None:
            sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._socket = sock
            self._buffer = b""
        return self._socket

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, lower-cased headers, body); status FAILED and the connection dropped when
        the exchange failed."""
        lines = [f"{method} {path} HTTP/1.1", f"Host: {self.host}:{self.port}"]
        lines.extend(f"{name}: {value}" for name, value in headers.items())
        if body is not None or method in ("POST", "PUT", "PATCH"):
            lines.append(f"Content-Length: {len(body or b'')}")
        message = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (body or b"")
        try:
            sock = self._connected()
            sock.sendall(message)
            status, answered, content = self._answer(sock, head_only=method == "HEAD")
        except (OSError, WireError, ValueError):
            self.close()
            return FAILED, {}, b""
        if answered.get("connection", "").lower() == "close":
            self.close()
        return status, answered, content

    def _answer(
        self, sock: socket.socket, *, head_only: bool
    ) -> tuple[int, dict[str, str], bytes]:
        head = self._until(sock, b"\r\n\r\n")
        status_line, *header_lines = head.decode("latin-1").split("\r\n")
        version, _, rest = status_line.partition(" ")
        if not version.startswith("HTTP/1."):
            raise WireError(f"not an HTTP/1.x status line: {status_line[:40]!r}")
        status = int(rest[:3])
        answered: dict[str, str] = {}
        for line in header_lines:
            name, _, value = line.partition(":")
            answered[name.strip().lower()] = value.strip()
        if head_only or status in (204, 304) or 100 <= status < 200:
            return status, answered, b""
        if answered.get("transfer-encoding", "").lower() == "chunked":
            return status, answered, self._chunked(sock)
        if "content-length" not in answered:
            raise WireError("an answer with neither Content-Length nor chunked encoding")
        return status, answered, self._exactly(sock, int(answered["content-length"]))

    def _chunked(self, sock: socket.socket) -> bytes:
        parts: list[bytes] = []
        while True:
            size = int(self._until(sock, b"\r\n").split(b";")[0], 16)
            if size == 0:
                while self._until(sock, b"\r\n"):  # trailers, up to the empty line
                    pass
                return b"".join(parts)
            parts.append(self._exactly(sock, size))
            if self._exactly(sock, 2) != b"\r\n":
                raise WireError("a chunk not followed by CRLF")

    def _until(self, sock: socket.socket, mark: bytes) -> bytes:
        """The bytes before the next `mark`, which is consumed too."""
        while True:
            end = self._buffer.find(mark)
            if end >= 0:
                found, self._buffer = self._buffer[:end], self._buffer[end + len(mark) :]
                return found
            if len(self._buffer) > MAX_HEAD:
                raise WireError("no end of the answer's head")
            self._receive(sock)

    def _exactly(self, sock: socket.socket, size: int) -> bytes:
        while len(self._buffer) < size:
            self._receive(sock)
        found, self._buffer = self._buffer[:size], self._buffer[size:]
        return found

    def _receive(self, sock: socket.socket) -> None:
        data = sock.recv(RECEIVE)
        if not data:
            raise WireError("the server closed the connection")
        self._buffer += data

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None
            self._buffer = b""

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
