"""The directory on the request path: read once per request, without a lock around the read,
and never stale: a revocation or deactivation committed before a request refuses it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest
from fastapi import APIRouter

from adapters.auth import AuthenticationError, DirectoryTokenResolver, DirectoryView, issue_token
from api.confirmed_route import ConfirmedRoute
from api.context import PrincipalDep
from referral_core.application import ReferralApplication
from referral_core.directory import DIRECTORY_ID, Directory
from referral_core.vocab import AgencyKind, Role
from tests.support.api import Harness, harness
from tests.support.builders import MovableClock, example

SYSTEM = {"user_id": "t", "agency_id": "system", "role": "admin"}


@pytest.fixture
def http(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(database_url, tmp_path) as h:
        yield h


def add_caseworker(app: ReferralApplication) -> UUID:
    """A new NGO with one caseworker, in the directory; the caseworker's user id."""
    user, agency = uuid4(), uuid4()

    def add(d: Directory) -> None:
        d.register_agency(agency, AgencyKind.NGO, "TH", "An NGO", SYSTEM)
        d.add_user(user, agency, Role.CASEWORKER, "A caseworker", SYSTEM)

    app.change_directory(add)
    return user


def _count_reads(http: Harness, monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Count `services.directory.current()` calls; the list holds one item per call."""
    view = http.services.directory
    real = view.current
    calls: list[int] = []

    def counted(since: float | None = None) -> Directory:
        calls.append(1)
        return real(since=since)

    monkeypatch.setattr(view, "current", counted)
    return calls


def case_requests(http: Harness, case_id: str, version: int) -> list[Callable[[], Any]]:
    """A case's summary, its history, and one append to it, each as the NGO (the lead)."""
    return [
        lambda: http.client.get(f"/cases/{case_id}", headers=http.headers("ngo")),
        lambda: http.client.get(f"/cases/{case_id}/events", headers=http.headers("ngo")),
        lambda: http.append(
            case_id,
            version=version,
            event_type="ServiceDelivered",
            payload=example("ServiceDelivered"),
        ),
    ]


def test_each_case_request_reads_the_directory_once(
    http: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    case_id, version = http.open_case()
    calls = _count_reads(http, monkeypatch)
    for send in case_requests(http, case_id, version):
        calls.clear()
        response = send()
        assert response.status_code in {200, 201}, response.text
        assert len(calls) == 1, response.request.url


def test_a_revocation_refuses_the_next_case_request(http: Harness) -> None:
    case_id, version = http.open_case()
    appended = http.append(
        case_id,
        version=version,
        event_type="ServiceDelivered",
        payload=example("ServiceDelivered"),
    )
    assert appended.status_code == 201, appended.text
    directory = http.services.app.directory()
    ngo_user = http.users[("ngo", "caseworker")]
    for token_id, token in directory.tokens.items():
        if token["user_id"] == ngo_user:
            revoke = partial(
                Directory.revoke_token, token_id=UUID(token_id), reason="t", actor=SYSTEM
            )
            http.services.app.change_directory(revoke)
    again = http.append(
        case_id,
        version=appended.json()["version"],
        event_type="ServiceDelivered",
        payload=example("ServiceDelivered"),
    )
    assert again.status_code == 401, again.text
    read = http.client.get(f"/cases/{case_id}", headers=http.headers("ngo"))
    assert read.status_code == 401, read.text


def test_a_deactivation_refuses_the_next_case_read(http: Harness) -> None:
    case_id, _version = http.open_case()
    headers = http.headers("ngo")
    assert http.client.get(f"/cases/{case_id}/events", headers=headers).status_code == 200
    user = UUID(http.users[("ngo", "caseworker")])
    http.services.app.change_directory(lambda d: d.deactivate_user(user, "left", SYSTEM))
    assert http.client.get(f"/cases/{case_id}/events", headers=headers).status_code == 401
    assert http.client.get(f"/cases/{case_id}", headers=headers).status_code == 401


def test_a_view_answers_concurrent_requests_without_queueing_them(
    app: ReferralApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two requests are in the store round trip at once: nothing serializes them."""
    view = DirectoryView(app)
    view.current()  # loaded; from now on each call fetches the events after its version
    both_inside = threading.Barrier(2, timeout=5)
    real_get = app.events.get

    def get(originator_id: UUID, **kwargs: Any) -> Any:
        if originator_id == DIRECTORY_ID:
            both_inside.wait()  # times out (BrokenBarrierError) if the calls are serialized
        return real_get(originator_id, **kwargs)

    monkeypatch.setattr(app.events, "get", get)
    failures: list[BaseException] = []

    def read() -> None:
        try:
            view.current()
        except BaseException as exc:  # noqa: BLE001 -- reported by the assertion below
            failures.append(exc)

    threads = [threading.Thread(target=read) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert failures == []


def test_a_directory_served_is_never_changed_afterwards(app: ReferralApplication) -> None:
    view = DirectoryView(app)
    user = add_caseworker(app)
    before = view.current()
    token_id, _token = issue_token(app, user, ttl=timedelta(days=1), actor=SYSTEM)
    after = view.current()
    assert str(token_id) in after.tokens
    assert str(token_id) not in before.tokens  # a reader holding `before` saw no change
    assert after.version == before.version + 1
    assert view.current() is after  # nothing newer: the same directory, no copy
    app.change_directory(lambda d: d.revoke_token(token_id, "t", SYSTEM))
    revoked = view.current()
    assert revoked.tokens[str(token_id)]["revoked"] is True
    assert after.tokens[str(token_id)]["revoked"] is False


def test_a_read_begun_after_a_request_arrived_serves_it_without_another(
    app: ReferralApplication, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`current(since=arrival)`: a read of the store that began at or after the arrival (by any
    request) has seen every change committed before it; a change committed after the latest
    read began is read for every request that arrives after the change."""
    view = DirectoryView(app)
    user = add_caseworker(app)
    token_id, _token = issue_token(app, user, ttl=timedelta(days=1), actor=SYSTEM)
    queries: list[UUID] = []
    real_get = app.events.get

    def get(originator_id: UUID, **kwargs: Any) -> Any:
        queries.append(originator_id)
        return real_get(originator_id, **kwargs)

    monkeypatch.setattr(app.events, "get", get)
    early = time.perf_counter()  # a request arrives…
    held = view.current()  # …and another request's read begins after it
    assert str(token_id) in held.tokens
    queries.clear()
    assert view.current(since=early) is held
    assert queries == [], "served by the read that began after it arrived"
    app.change_directory(lambda d: d.revoke_token(token_id, "t", SYSTEM))
    assert view.current(since=early).tokens[str(token_id)]["revoked"] is False
    assert queries == [], "it arrived before the revocation: the earlier read still serves it"
    late = time.perf_counter()  # a request that arrives after the revocation…
    revoked = view.current(since=late)
    assert queries == [DIRECTORY_ID]  # …is not served by a read older than itself
    assert revoked.tokens[str(token_id)]["revoked"] is True
    queries.clear()
    assert view.current(since=late) is revoked  # that read began after `late`: it serves again
    assert view.current() is revoked
    assert queries == [DIRECTORY_ID], "without `since`, every call reads"


def test_a_resolved_token_is_remembered_per_directory_and_still_expires(
    app: ReferralApplication, clock: MovableClock
) -> None:
    """`DirectoryTokenResolver` remembers what a token resolved to in one directory; the
    expiry is checked on every call, and every change (a new directory) resolves afresh."""
    view = DirectoryView(app)
    tokens = DirectoryTokenResolver(app, view)
    user = add_caseworker(app)
    token_id, token = issue_token(app, user, ttl=timedelta(hours=1), actor=SYSTEM)
    directory = view.current()
    first = tokens.resolve_in(directory, token)
    assert first.role is Role.CASEWORKER
    assert tokens.resolve_in(directory, token) is first, "remembered in the same directory"
    app.change_directory(lambda d: d.change_role(user, Role.SUPERVISOR, SYSTEM))
    changed = view.current()
    assert tokens.resolve_in(changed, token).role is Role.SUPERVISOR
    assert tokens.resolve_in(directory, token).role is Role.CASEWORKER  # as that one said
    clock.advance(timedelta(hours=1))
    with pytest.raises(AuthenticationError, match="expired"):
        tokens.resolve_in(changed, token)
    clock.advance(timedelta(hours=-1))
    app.change_directory(lambda d: d.revoke_token(token_id, "t", SYSTEM))
    with pytest.raises(AuthenticationError, match="revoked"):
        tokens.resolve(token)
    with pytest.raises(AuthenticationError, match="malformed"):
        tokens.resolve("not-a-token")


def test_case_routes_hop_to_a_worker_thread_only_to_authenticate_and_to_work(
    http: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Dependencies without I/O run on the event loop, the token is checked against the store
    in the route's own thread (`ConfirmedRoute`), and the routes render their own bodies: a
    request costs one worker-thread hop, the route's, not five."""
    import fastapi.dependencies.utils as dependency_utils
    import fastapi.routing as fastapi_routing

    case_id, version = http.open_case()
    hops: list[str] = []

    def counting(module: Any) -> None:
        real = module.run_in_threadpool

        async def run_in_threadpool(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            hops.append(getattr(func, "__name__", repr(func)))
            return await real(func, *args, **kwargs)

        monkeypatch.setattr(module, "run_in_threadpool", run_in_threadpool)

    counting(dependency_utils)
    counting(fastapi_routing)
    sends = [
        lambda: http.client.get("/cases?limit=5", headers=http.headers("ngo")),
        *case_requests(http, case_id, version),
    ]
    for send in sends:
        hops.clear()
        response = send()
        assert response.status_code in {200, 201}, response.text
        assert response.headers["content-type"] == "application/json"
        if "/cases/" in str(response.request.url):
            assert response.headers["etag"].strip('"').isdigit()
        assert hops == ["_run_sync_endpoint"], hops  # FastAPI's wrapper around the route


def test_the_liveness_probe_needs_no_request_thread(
    http: Harness, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/healthz is answered on the event loop: with every request thread waiting on a slow
    store, the process still says it is alive (/readyz is the one that asks the store)."""
    import fastapi.routing as fastapi_routing

    hops: list[str] = []
    real = fastapi_routing.run_in_threadpool  # type: ignore[attr-defined]

    async def run_in_threadpool(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        hops.append(getattr(func, "__name__", repr(func)))
        return await real(func, *args, **kwargs)

    monkeypatch.setattr(fastapi_routing, "run_in_threadpool", run_in_threadpool)
    response = http.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}
    assert hops == []
    assert http.client.get("/readyz").status_code == 200
    assert "_run_sync_endpoint" in hops  # the count works: a plain `def` route hops


def test_a_role_changed_since_the_held_directory_is_refused_before_the_route_runs(
    http: Harness,
) -> None:
    """The token resolves to a caseworker against the directory this process holds; the store
    says supervisor now: the route's own thread refuses the request (401) before its body."""
    case_id, _version = http.open_case()
    headers = http.headers("ngo")
    assert http.client.get(f"/cases/{case_id}", headers=headers).status_code == 200
    user = UUID(http.users[("ngo", "caseworker")])
    http.services.app.change_directory(lambda d: d.change_role(user, Role.SUPERVISOR, SYSTEM))
    held = http.services.directory.held
    assert held is not None
    assert held.users[str(user)]["role"] == Role.CASEWORKER.value  # the process has not seen it
    refused = http.client.get(f"/cases/{case_id}", headers=headers)
    assert refused.status_code == 401, refused.text
    # the next request resolves against the directory read meanwhile: the new role
    me = http.client.get("/me", headers=headers)
    assert me.status_code == 200, me.text
    assert me.json()["role"] == Role.SUPERVISOR.value


def _whoami_routes(ran: list[str]) -> APIRouter:
    """Two routes `get_principal` must authenticate in full: one of FastAPI's own route
    class, and an `async def` one of `ConfirmedRoute` (no thread of its own to confirm in)."""
    plain = APIRouter()

    @plain.get("/test-only/plain")
    def plain_route(principal: PrincipalDep) -> dict[str, str]:
        ran.append(principal.user_id)
        return {"user_id": principal.user_id}

    confirmed = APIRouter(route_class=ConfirmedRoute)

    @confirmed.get("/test-only/async")
    async def async_route(principal: PrincipalDep) -> dict[str, str]:
        ran.append(principal.user_id)
        return {"user_id": principal.user_id}

    plain.include_router(confirmed)
    return plain


@pytest.mark.parametrize("path", ["/test-only/plain", "/test-only/async"])
def test_routes_that_cannot_confirm_authenticate_in_full_before_they_run(
    http: Harness, path: str
) -> None:
    """`get_principal` trusts the held directory only on a `ConfirmedRoute` with a plain
    `def` body; any other route gets a principal checked against the store first."""
    ran: list[str] = []
    http.client.app.include_router(_whoami_routes(ran))  # type: ignore[attr-defined]
    headers = http.headers("ngo")
    assert http.client.get(path, headers=headers).status_code == 200
    user = UUID(http.users[("ngo", "caseworker")])
    http.services.app.change_directory(lambda d: d.deactivate_user(user, "left", SYSTEM))
    ran.clear()
    refused = http.client.get(path, headers=headers)
    assert refused.status_code == 401, refused.text
    assert ran == []
