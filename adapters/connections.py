"""When PostgreSQL goes away: fail fast, and heal by itself when it is back.

eventsourcing retries a failed statement ten times, 0.2 s apart, and each attempt waits up to
the pool timeout for a connection: with the server down an append took about 50 s to fail.
`harden` changes what the event store's datastore does on an error, without a round trip on
the good path (no pre-ping):

* **No connection within the pool timeout** (the server is down or unreachable): the pool's
  `PoolTimeout` is raised as it is, which eventsourcing does not retry, so the request fails
  after one pool timeout (`POOL_TIMEOUT_SECONDS`) and the API answers 503.
* **A connection broke** (the server restarted, or closed it): every idle connection of the
  pool was opened to the same server and is as dead, so the pool is drained at once (new
  connections are opened in the background) and eventsourcing's retry gets a fresh one. Other
  errors (a lock timeout, a serialization failure) leave the pool alone.

The pool's background connections get libpq's `connect_timeout`, so a server that does not
answer at all (a dropped packet, not a refused connection) cannot hold a reconnection forever.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from eventsourcing.persistence import InterfaceError, OperationalError
from eventsourcing.postgres import PostgresDatastore
from psycopg_pool import PoolTimeout

POOL_TIMEOUT_SECONDS = 3
"""The longest a statement waits for a pooled connection (POSTGRES_CONNECT_TIMEOUT)."""
CONNECT_TIMEOUT_SECONDS = 3
"""libpq's connect_timeout of the pool's own connection attempts."""


class FailFastDatastore(PostgresDatastore):
    """eventsourcing's PostgreSQL datastore, failing fast and draining a pool of dead sessions."""

    @contextmanager
    def get_connection(self) -> Iterator[Any]:
        used: Any = None
        try:
            with super().get_connection() as conn:
                used = conn
                yield conn
        except (OperationalError, InterfaceError) as exc:
            if isinstance(exc.__cause__, PoolTimeout):
                raise exc.__cause__ from None
            if used is not None and used.broken:
                self.pool.drain()
            raise


def harden(datastore: PostgresDatastore) -> None:
    """Make an existing datastore fail fast and self-heal (see the module docstring)."""
    datastore.__class__ = FailFastDatastore
    kwargs = datastore.pool.kwargs
    if isinstance(kwargs, dict):
        kwargs.setdefault("connect_timeout", CONNECT_TIMEOUT_SECONDS)
