"""A lean keep-alive HTTP/1.1 client for the load generators: one connection, TCP_NODELAY.

`http.client` from the standard library, with nothing on top: the load generator shares the
machine's cores with the server it measures, and httpx spent about 0.3 ms of CPU on each
request (headers models, URL objects, hooks), which the server then did not get.
"""

from __future__ import annotations

import http.client
import socket
from urllib.parse import urlsplit

FAILED = 0  # the status a request reports when it got no answer


class Wire:
    """One persistent connection to a server; requests go out one after another."""

    def __init__(self, base_url: str, timeout: float) -> None:
        parts = urlsplit(base_url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.timeout = timeout
        self._connection: http.client.HTTPConnection | None = None

    def _connected(self) -> http.client.HTTPConnection:
        if self._connection is None:
            connection = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout)
            connection.connect()
            assert connection.sock is not None  # noqa: S101 -- connect() set it
            connection.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._connection = connection
        return self._connection

    def request(
        self, method: str, path: str, headers: dict[str, str], body: bytes | None = None
    ) -> tuple[int, dict[str, str], bytes]:
        """(status, lower-cased headers, body); status FAILED and the connection dropped when
        the exchange failed."""
        try:
            connection = self._connected()
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            content = response.read()
        except (OSError, http.client.HTTPException):
            self.close()
            return FAILED, {}, b""
        return response.status, {k.lower(): v for k, v in response.getheaders()}, content

    def close(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()
