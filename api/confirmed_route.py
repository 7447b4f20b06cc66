"""Authentication in one thread hop: the token is checked against the store in the route's own
worker thread, just before the route's body runs.

A request's bearer token must be checked against the directory as the store had it when the
request arrived or later, so a revocation committed anywhere refuses every request that arrives
after it; that is a query (or another request's read that began after this one arrived:
`DirectoryView.current(since=…)`). Done in its own
dependency, the check costs a thread hop of its own besides the route's (plain `def` routes
run in a worker thread): about 8% of an append's CPU, measured in-process. So on routes of
this class:

1. `get_principal` (on the event loop) resolves the token against the directory this process
   read last, and leaves a `Provisional` record in a context variable;
2. the route's body is wrapped: in the worker thread, before the body, `confirm` reads the
   directory from the store (unless a read begun since the request arrived already has) and
   resolves the token again. A token revoked, expired or moved meanwhile is refused (401)
   there, before the body does anything.

Nothing is read or written for the caller before step 2. What the caller may learn earlier
is only what any well-formed request learns: a 422 for an invalid body, or a 403 from a
route's kind check, instead of the 401 a revoked token gets otherwise.
`get_principal` takes this path only on routes of this class, so a route of any other class
still authenticates in full before anything else.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from fastapi import Request
from fastapi.routing import APIRoute

from adapters.auth import AuthenticationError, DirectoryTokenResolver, DirectoryView
from referral_core.policy import Principal


@dataclass(frozen=True)
class Provisional:
    """A principal resolved against the directory held in memory, to confirm in the route."""

    request: Request
    view: DirectoryView
    tokens: DirectoryTokenResolver
    token_hash: str
    principal: Principal


PENDING: ContextVar[Provisional | None] = ContextVar("referral_pending_principal", default=None)


ARRIVED = "arrived"
"""`request.state` key: the `time.perf_counter()` at which the request arrived (`RequestGuard`)."""


def arrival(request: Request) -> float | None:
    """When the request arrived: the directory must hold every change committed before it."""
    arrived = getattr(request.state, ARRIVED, None)
    return arrived if isinstance(arrived, float) else None


def confirm() -> None:
    """Check the pending principal against the store's directory now; 401 if it changed.

    Runs in the route's worker thread (a copy of the request's context), before the body.
    """
    pending = PENDING.get()
    if pending is None:
        return
    directory = pending.view.current(since=arrival(pending.request))
    principal = pending.tokens.resolve_hashed(directory, pending.token_hash)
    if principal != pending.principal:
        raise AuthenticationError("the credentials changed during the request")
    pending.request.state.directory = directory


def _confirming(endpoint: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(endpoint)
    def confirmed(*args: Any, **kwargs: Any) -> Any:
        confirm()
        return endpoint(*args, **kwargs)

    return confirmed


class ConfirmedRoute(APIRoute):
    """A route whose plain `def` body is preceded by `confirm`, in the same worker thread."""

    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # An `async def` body runs on the event loop, with no thread of its own to confirm in:
        # such a route keeps the full check in `get_principal`.
        self.confirms_principal = not inspect.iscoroutinefunction(endpoint)
        if self.confirms_principal:
            endpoint = _confirming(endpoint)
        super().__init__(path, endpoint, **kwargs)


def confirms(request: Request) -> bool:
    """Whether the route this request matched confirms its principal in its own thread."""
    route = request.scope.get("route")
    return isinstance(route, ConfirmedRoute) and route.confirms_principal
