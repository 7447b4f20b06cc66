"""Read-your-writes: a read waits for the read models to reach a log position, off its thread.

A request thread is the scarce thing in a worker (`REFERRAL_THREADS`, a few per process): a
read that held one for up to `REFERRAL_READ_WAIT_SECONDS` would take it from every other
request meanwhile, and a handful of such reads would stall the process. So the wait happens
on the event loop, as a dependency resolved before the route's own (threaded) body: it sleeps
there for free, and only each short look at the read models' positions runs on a thread, from
a small pool of its own that request threads never wait on.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated

import anyio
import anyio.to_thread
from fastapi import Depends, Query, Request

from api.context import get_services
from api.problems import Problem

MAX_POSITION = 2**63 - 1
POSITION_CHECK_THREADS = 2  # threads that look up positions for every waiting read at once
FIRST_DELAY = 0.01
LONGEST_DELAY = 0.2

MinPosition = Annotated[
    int | None,
    Query(ge=0, le=MAX_POSITION, description="Wait until the read models reach this log position"),
]


def _position_checks(request: Request) -> anyio.CapacityLimiter:
    """The app's pool for position look-ups, made on first use (on the event loop)."""
    state = request.app.state
    limiter: anyio.CapacityLimiter | None = getattr(state, "position_checks", None)
    if limiter is None:
        limiter = anyio.CapacityLimiter(POSITION_CHECK_THREADS)
        state.position_checks = limiter
    return limiter


@dataclass(frozen=True)
class Waited:
    """What a read asked to wait for (`?min_position=`) and whether the read models got there."""

    position: int | None = None
    reached: bool = True

    def require(self) -> int | None:
        """The position asked for; a 504 problem if the read models did not reach it in time.

        A route calls it after its own checks, so a refusal (403, 422) still comes first.
        """
        if not self.reached:
            raise Problem(
                504,
                "read-model-behind",
                "The read models have not reached that position yet",
                headers={"Retry-After": "1"},
            )
        return self.position


NOT_ASKED = Waited()


async def read_models_reached(request: Request, min_position: MinPosition = None) -> Waited:
    """Wait until every read model has reached `min_position`, at most REFERRAL_READ_WAIT_SECONDS.

    Declare it after the principal, so an unauthenticated caller is refused before any wait.
    """
    if min_position is None:
        return NOT_ASKED
    timeout = get_services(request).settings.read_wait_seconds
    return Waited(min_position, await until_reached(request, min_position, timeout))


async def until_reached(request: Request, position: int | None, timeout: float) -> bool:
    """Whether every read model reached `position` (None: the log's newest) within `timeout`."""
    services = get_services(request)
    limiter = _position_checks(request)
    deadline = time.monotonic() + timeout
    if position is None:
        newest = services.app.recorder.max_notification_id
        position = await anyio.to_thread.run_sync(newest, limiter=limiter) or 0
    delay = FIRST_DELAY
    while not await anyio.to_thread.run_sync(services.runner.reached, position, limiter=limiter):
        left = deadline - time.monotonic()
        if left <= 0:
            return False
        await anyio.sleep(min(delay, left))
        delay = min(delay * 2, LONGEST_DELAY)
    return True


WaitedDep = Annotated[Waited, Depends(read_models_reached)]
"""`?min_position=` for a route, waited for before the route's body runs (`Waited.require`)."""
