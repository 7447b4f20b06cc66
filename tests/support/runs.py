"""Run read models to the end of the log, whatever else holds their advisory lock meanwhile."""

from __future__ import annotations

import time

from projections.runner import ProjectionRunner


def drain(runner: ProjectionRunner, timeout: float = 60.0) -> None:
    """Catch up until every read model has reached the newest position of the log.

    `catch_up` returns early when another runner holds the read models' advisory lock (on
    PostgreSQL the lock key is the read models' names, shared by every schema of the server),
    so it is retried until the positions say the work is done.
    """
    deadline = time.monotonic() + timeout
    target = runner.app.recorder.max_notification_id() or 0
    while True:
        runner.catch_up()
        if min(runner.positions().values(), default=target) >= target:
            return
        assert time.monotonic() < deadline, "the read models did not catch up"
        time.sleep(0.05)
