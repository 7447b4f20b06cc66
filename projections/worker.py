"""The long-running read-model worker: `referral projections run`.

Applies the log to every read model until SIGTERM or SIGINT. On PostgreSQL it LISTENs on the
event store's channel so a new event wakes it at once, and it survives a lost connection: the
listener reconnects with backoff and the runner's next batch retries, while the poll interval
bounds how stale a read model can get even without notifications.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType

from projections.collector import fewer_collections
from projections.db import PostgresDatabase, SqliteDatabase
from projections.runner import ProjectionRunner

RESTART_BACKOFF = (0.5, 1.0, 2.0, 5.0)


def listen_for_appends(
    runner: ProjectionRunner, db: PostgresDatabase, stop: threading.Event
) -> threading.Thread:
    """Wake the runner on each NOTIFY the event store sends; reconnect when the link drops."""
    channel = getattr(runner.app.recorder, "channel_name", None)

    def listen() -> None:
        attempt = 0
        while not stop.is_set() and channel:
            try:
                import psycopg

                with psycopg.connect(db.conninfo, autocommit=True, **db.connect_kwargs) as conn:
                    conn.execute(f'LISTEN "{channel}"')
                    attempt = 0
                    while not stop.is_set():
                        for _ in conn.notifies(timeout=1.0, stop_after=1):
                            runner.nudge.set()
            except Exception:  # noqa: BLE001 -- any failure: back off and listen again
                delay = RESTART_BACKOFF[min(attempt, len(RESTART_BACKOFF) - 1)]
                attempt += 1
                stop.wait(delay)

    thread = threading.Thread(target=listen, name="projections-listen", daemon=True)
    thread.start()
    return thread


@fewer_collections()  # a process of its own, that may catch up on a long log
def run_worker(
    runner: ProjectionRunner,
    db: SqliteDatabase | PostgresDatabase,
    *,
    stop: threading.Event | None = None,
    poll_interval: float = 0.5,
    gather: float = 0.0,
    on_error: Callable[[BaseException], None] | None = None,
) -> None:
    """Run until `stop` is set (SIGTERM/SIGINT set it when called from the main thread).
    `gather`: see `ProjectionRunner.run_forever`."""
    stop = stop or threading.Event()
    if threading.current_thread() is threading.main_thread():

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            stop.set()
            runner.nudge.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
    if isinstance(db, PostgresDatabase):
        listen_for_appends(runner, db, stop)
    attempt = 0
    while not stop.is_set():
        try:
            runner.run_forever(stop, poll_interval, gather=gather)
            attempt = 0
        except Exception as exc:  # noqa: BLE001 -- restart loop: the store may come back
            if on_error is not None:
                on_error(exc)
            runner.states.forget()
            delay = RESTART_BACKOFF[min(attempt, len(RESTART_BACKOFF) - 1)]
            attempt += 1
            stop.wait(delay)
