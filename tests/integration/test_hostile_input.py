"""Hostile input: every malformed or malicious request gets a clear problem and changes nothing.

Each test sends the real app (both stores) something a careless or hostile client would, and
asserts the status, the problem `type`, and that the log and the case did not move. Free text
with HTML and SQL in it is the exception: it is valid, so it is stored and returned exactly.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any, cast

import anyio
import pytest
from fastapi import APIRouter, FastAPI

from tests.conftest import BACKENDS
from tests.support import postgres
from tests.support.api import Harness, harness
from tests.support.builders import NOW, example

PROBLEM = "urn:referral:problem:"
Opened = tuple[str, int]  # a fresh case's id and version
LIMIT = 262_144  # REFERRAL_MAX_BODY_BYTES' default


@pytest.fixture(scope="module", params=BACKENDS)
def http(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Harness]:
    """One app per store for the whole module: every test opens its own case and checks only
    that nothing it sent moved the log, so they can share it (and the suite stays quick)."""
    tmp_path = tmp_path_factory.mktemp("hostile")
    if request.param == "sqlite":
        with harness(f"sqlite:///{tmp_path / 'referral.sqlite'}", tmp_path) as h:
            yield h
        return
    admin = request.getfixturevalue("postgres_url")
    schema = f"t_{uuid.uuid4().hex[:16]}"
    postgres.create_schema(admin, schema)
    try:
        with harness(f"{admin}?schema={schema}", tmp_path) as h:
            yield h
    finally:
        postgres.drop_schema(admin, schema)


@pytest.fixture
def opened(http: Harness) -> Opened:
    return http.open_case("ngo")


@contextmanager
def unchanged(h: Harness, case_id: str | None = None) -> Iterator[None]:
    """Nothing was written: the log's head and the case's version stay where they were."""
    head = h.latest()
    version = _version(h, case_id)
    yield
    assert h.latest() == head, "the log moved"
    assert _version(h, case_id) == version, "the case moved"


def _version(h: Harness, case_id: str | None) -> int | None:
    if case_id is None:
        return None
    return int(h.services.app.get_case(_uuid(case_id)).version)


def _uuid(value: str) -> uuid.UUID:
    return uuid.UUID(value)


def problem(response: Any, status: int, code: str | set[str]) -> dict[str, Any]:
    """The response is an RFC 9457 problem with this status and one of these types."""
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    codes = {code} if isinstance(code, str) else code
    assert body["type"] in {PROBLEM + c for c in codes}, body
    assert body["status"] == status
    # Every answer, the guard's own refusals included, names the request its log line has.
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers.get("x-request-id", ""))
    return body


def submission(event_type: str = "ContactReceived", **payload: Any) -> dict[str, Any]:
    return {
        "type": event_type,
        "occurred_at": (NOW - timedelta(minutes=5)).isoformat(),
        "payload": example(event_type, **payload),
    }


def post_raw(
    h: Harness, path: str, content: bytes | Iterator[bytes], *, who: str = "ngo", **headers: str
) -> Any:
    base = {"Content-Type": "application/json", **h.headers(who), **headers}
    return h.client.post(path, content=content, headers=base)


def append_headers(h: Harness, version: int, **extra: str) -> dict[str, str]:
    return h.headers("ngo", **{"If-Match": f'"{version}"', **extra})


# -- size -------------------------------------------------------------------------------------


def test_an_oversized_declared_body_is_refused_before_it_is_read(
    http: Harness, opened: Opened
) -> None:
    case_id, version = opened
    body = json.dumps(submission(summary="x" * (LIMIT + 10))).encode()
    with unchanged(http, case_id):
        response = post_raw(http, f"/cases/{case_id}/events", body, **{"If-Match": f'"{version}"'})
        problem(response, 413, "too-large")


def test_an_oversized_streamed_body_without_a_length_is_cut_off(
    http: Harness, opened: Opened
) -> None:
    case_id, version = opened

    def chunks() -> Iterator[bytes]:
        yield b'{"type": "ContactReceived", "payload": {"summary": "'
        for _ in range(64):  # 4 MiB in all, far past the limit, with no Content-Length
            yield b"x" * 65_536
        yield b'"}}'

    with unchanged(http, case_id):
        response = post_raw(
            http, f"/cases/{case_id}/events", chunks(), **{"If-Match": f'"{version}"'}
        )
        assert "content-length" not in response.request.headers
        assert response.request.headers.get("transfer-encoding") == "chunked"
        problem(response, 413, "too-large")


def test_the_server_stops_reading_a_stream_at_the_limit(http: Harness, opened: Opened) -> None:
    """At the ASGI level: chunks past the limit are never pulled, so none is buffered."""
    case_id, version = opened
    chunk = b"x" * 65_536
    pulled = 0

    async def receive() -> dict[str, Any]:
        nonlocal pulled
        pulled += 1
        return {"type": "http.request", "body": chunk, "more_body": pulled < 64}

    headers = [
        (b"content-type", b"application/json"),
        (b"if-match", f'"{version}"'.encode()),
        (b"authorization", http.headers("ngo")["Authorization"].encode()),
    ]
    with unchanged(http, case_id):
        status = _asgi(http, "POST", f"/cases/{case_id}/events".encode(), headers, receive)
    assert status == 413
    assert pulled == LIMIT // len(chunk) + 1


def test_a_small_streamed_body_is_still_accepted(http: Harness) -> None:
    body = json.dumps(submission()).encode()

    def chunks() -> Iterator[bytes]:
        yield body[:10]
        yield body[10:]

    response = post_raw(http, "/cases", chunks(), who="hotline")
    assert response.status_code == 201, response.text


def test_a_non_numeric_content_length_is_refused(http: Harness) -> None:
    with unchanged(http):
        response = post_raw(http, "/cases", b"{}", **{"Content-Length": "12abc"})
    problem(response, 413, "too-large")


# -- structure --------------------------------------------------------------------------------


@pytest.mark.parametrize("depth", [100_000, 5_000, 40])
def test_deeply_nested_json_is_refused_quickly(http: Harness, opened: Opened, depth: int) -> None:
    case_id, version = opened
    nested = "[" * depth + "]" * depth
    occurred = (NOW - timedelta(minutes=5)).isoformat()
    body = f'{{"type": "ContactReceived", "occurred_at": "{occurred}", "payload": {nested}}}'
    started = time.monotonic()
    with unchanged(http, case_id):
        response = post_raw(
            http, f"/cases/{case_id}/events", body.encode(), **{"If-Match": f'"{version}"'}
        )
        problem(response, 422, "too-deep")
    assert time.monotonic() - started < 5
    # The worker is still alive and answering.
    assert http.client.get("/healthz").status_code == 200


def test_moderately_nested_json_in_a_payload_is_a_payload_problem(
    http: Harness, opened: Opened
) -> None:
    case_id, version = opened
    body = submission()
    body["payload"]["summary"] = {"a": {"b": {"c": [1, [2, [3]]]}}}
    with unchanged(http, case_id):
        response = http.client.post(
            f"/cases/{case_id}/events", json=body, headers=append_headers(http, version)
        )
        problem(response, 422, "invalid-payload")


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "ContactReceived", "payload": {"summary": "\xff\xfe\xc3\x28"}}',  # not UTF-8
        b"\xff\xfe",
        b'{"type": "ContactReceived", "payl',  # cut short
        b'{"type": "ContactReceived", "payload": {"child_age_years": NaN}}',
        b'{"type": "ContactReceived", "payload": {"child_age_years": -Infinity}}',
        b'{"type": "ContactReceived", "payload": {"child_age_years": ' + b"9" * 5000 + b"}}",
        b"{'type': 'ContactReceived'}",
    ],
)
def test_malformed_json_is_refused(http: Harness, body: bytes) -> None:
    with unchanged(http):
        response = post_raw(http, "/cases", body, who="hotline")
        problem(response, 422, "invalid-request")


def test_duplicate_keys_are_refused_not_silently_resolved(http: Harness) -> None:
    good = json.dumps(submission())
    # The second "type" would win in most parsers: the body is ambiguous, so it is refused.
    body = good.replace(
        '{"type": "ContactReceived"', '{"type": "ChildIdentified", "type": "ContactReceived"'
    )
    assert body != good
    nested = good.replace('"channel": "phone"', '"channel": "phone", "channel": "chat"')
    assert nested != good
    with unchanged(http):
        for sent in (body, nested):
            response = post_raw(http, "/cases", sent.encode(), who="hotline")
            problem(response, 422, "duplicate-key")


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/xml", "application/x-www-form-urlencoded", "multipart/form-data"],
)
def test_a_wrong_content_type_is_refused(http: Harness, content_type: str) -> None:
    body = json.dumps(submission()).encode()
    with unchanged(http):
        response = post_raw(http, "/cases", body, who="hotline", **{"Content-Type": content_type})
        problem(response, 415, "media-type")


def test_a_missing_content_type_is_refused(http: Harness) -> None:
    body = json.dumps(submission()).encode()
    headers = {**http.headers("hotline")}
    with unchanged(http):
        response = http.client.post("/cases", content=body, headers=headers)
        problem(response, 415, "media-type")


# -- NUL bytes --------------------------------------------------------------------------------


def test_nul_bytes_in_free_text_are_refused(http: Harness, opened: Opened) -> None:
    case_id, version = opened
    for field, value in (("summary", "before\x00after"), ("caller_name", "\x00")):
        body = submission(**{field: value})
        with unchanged(http, case_id):
            response = http.client.post(
                f"/cases/{case_id}/events", json=body, headers=append_headers(http, version)
            )
            problem(response, 422, {"invalid-payload", "invalid-request"})
    envelope = {**submission(), "legal_basis": "Act\x00 s.1"}
    with unchanged(http, case_id):
        response = http.client.post(
            f"/cases/{case_id}/events", json=envelope, headers=append_headers(http, version)
        )
        problem(response, 422, {"invalid-request", "invalid-envelope"})


async def _empty() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


def _asgi(
    h: Harness,
    method: str,
    path: bytes,
    headers: list[tuple[bytes, bytes]],
    receive: Callable[[], Awaitable[dict[str, Any]]] = _empty,
) -> int:
    """Call the app as a server would, with bytes an HTTP client would refuse to send (a NUL
    in a header or path) or a body stream the test controls; the answer must be a problem."""
    messages: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path.decode("latin-1"),
        "raw_path": path,
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"testserver"), *headers],
        "client": ("127.0.0.1", 5000),
        "server": ("testserver", 80),
    }
    anyio.run(h.client.app, scope, receive, send)  # type: ignore[arg-type]
    start = next(m for m in messages if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in messages if m["type"] == "http.response.body")
    assert dict(start["headers"]).get(b"content-type") == b"application/problem+json", body
    assert json.loads(body)["type"].startswith(PROBLEM)
    return int(start["status"])


def test_nul_bytes_in_headers_and_ids_are_refused(http: Harness, opened: Opened) -> None:
    case_id, _version = opened
    auth = http.headers("police", "supervisor")["Authorization"].encode()
    bearer = [(b"authorization", auth)]
    with unchanged(http, case_id):
        # A NUL in the token, the purpose, the path id: a problem each, and no read recorded.
        assert _asgi(http, "GET", b"/me", [(b"authorization", auth + b"\x00")]) == 401
        assert _asgi(http, "GET", f"/cases/{case_id}\x00".encode(), bearer) == 422
        assert _asgi(http, "GET", b"/cases/\x00", bearer) == 422
        own = [(b"authorization", http.headers("ngo")["Authorization"].encode())]
        purpose = [*own, (b"x-purpose", b"review\x00")]
        assert _asgi(http, "GET", f"/cases/{case_id}/events".encode(), purpose) == 422


# -- types, events, identifiers ---------------------------------------------------------------


def test_unknown_event_types_are_refused(http: Harness, opened: Opened) -> None:
    case_id, version = opened
    for name in ("NoSuchEvent", "childidentified", "CaseCreated", "__class__", "x" * 64):
        body = {**submission(), "type": name}
        with unchanged(http, case_id):
            response = http.client.post(
                f"/cases/{case_id}/events", json=body, headers=append_headers(http, version)
            )
            problem(response, 422, {"unknown-event-type", "invalid-request"})


@pytest.mark.parametrize(
    "change",
    [
        {"type": 42},
        {"payload": ["not", "an", "object"]},
        {"payload": "text"},
        {"occurred_at": 1_700_000_000},
        {"occurred_at": None},
        {"event_id": 7},
        {"consent_ref": ["x"]},
        {"legal_basis": {"a": 1}},
        {"unexpected": True},
    ],
)
def test_wrong_types_in_the_envelope_are_refused(
    http: Harness, opened: Opened, change: dict[str, Any]
) -> None:
    case_id, version = opened
    body = {**submission(), **change}
    with unchanged(http, case_id):
        response = http.client.post(
            f"/cases/{case_id}/events", json=body, headers=append_headers(http, version)
        )
        problem(response, 422, "invalid-request")


@pytest.mark.parametrize(
    "change",
    [
        {"anonymous": "maybe"},
        {"topics": "missing_child_abroad"},
        {"child_age_years": "fifteen"},
        {"child_age_years": 10**30},
        {"child_age_years": -1},
        {"child_age_years": 1.5},
        {"imminent_danger": None},
        {"country_of_concern": "Poland"},
    ],
)
def test_wrong_types_in_a_payload_are_refused(
    http: Harness, opened: Opened, change: dict[str, Any]
) -> None:
    case_id, version = opened
    with unchanged(http, case_id):
        response = http.client.post(
            f"/cases/{case_id}/events",
            json=submission(**change),
            headers=append_headers(http, version),
        )
        problem(response, 422, "invalid-payload")


def test_a_top_level_array_or_scalar_body_is_refused(http: Harness) -> None:
    with unchanged(http):
        for body in (b"[]", b"null", b"42", b'"text"', b""):
            response = post_raw(http, "/cases", body, who="hotline")
            problem(response, 422, "invalid-request")


@pytest.mark.parametrize(
    "bad",
    ["not-a-uuid", "00000000-0000-0000-0000-00000000000g", "1" * 200, "%20", "'; DROP"],
)
def test_bad_case_ids_are_refused(http: Harness, bad: str) -> None:
    with unchanged(http):
        response = http.client.get(f"/cases/{bad}", headers=http.headers("ngo"))
        problem(response, 422, "invalid-request")
        response = http.client.post(
            f"/cases/{bad}/events", json=submission(), headers=append_headers(http, 1)
        )
        problem(response, 422, "invalid-request")


def test_bad_uuids_in_a_body_are_refused(http: Harness, opened: Opened) -> None:
    case_id, version = opened
    for change in ({"event_id": "nope"}, {"consent_ref": "123"}):
        with unchanged(http, case_id):
            response = http.client.post(
                f"/cases/{case_id}/events",
                json={**submission(), **change},
                headers=append_headers(http, version),
            )
            problem(response, 422, "invalid-request")
    referral = submission("ReferralSent", to_agency_id="not-an-agency")
    with unchanged(http, case_id):
        response = http.client.post(
            f"/cases/{case_id}/events",
            json={**referral, "legal_basis": "Act s.1"},
            headers=append_headers(http, version),
        )
        problem(response, 422, "invalid-payload")


@pytest.mark.parametrize(
    "if_match",
    ["*", '"abc"', 'W/"x"', '"-1"', '"0"', '"99999999999"', '"1", "2"', "", " ", '"1\\"'],
)
def test_bad_if_match_values_are_refused(http: Harness, opened: Opened, if_match: str) -> None:
    case_id, _version = opened
    with unchanged(http, case_id):
        response = http.client.post(
            f"/cases/{case_id}/events",
            json=submission(),
            headers=http.headers("ngo", **{"If-Match": if_match}),
        )
        problem(response, 412, "version-conflict")


def test_huge_integers_in_queries_are_refused(http: Harness, opened: Opened) -> None:
    case_id, _version = opened
    headers = http.headers("ngo")
    huge = str(10**30)
    with unchanged(http, case_id):
        for path in (
            f"/cases?limit={huge}",
            f"/cases?min_position={huge}",
            f"/cases?cursor={'9' * 20}",
            f"/cases/{case_id}/events?as_of={huge}",
            f"/inbox?limit={huge}",
            f"/audit/access?limit={huge}",
        ):
            response = http.client.get(path, headers=headers)
            assert 400 <= response.status_code < 500, (path, response.status_code)
            assert response.headers["content-type"] == "application/problem+json"


def test_the_largest_cursor_is_the_first_page_not_an_error(http: Harness, opened: Opened) -> None:
    headers = http.headers("ngo")
    first = http.client.get(f"/cases?min_position={http.latest()}", headers=headers)
    response = http.client.get(f"/cases?cursor={'9' * 18}", headers=headers)
    assert response.status_code == 200, response.text
    assert response.json()["items"] == first.json()["items"] != []


# -- dates ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("occurred_at", "code"),
    [
        ("9999-12-31T23:59:59Z", "invalid-envelope"),
        ("0001-01-01T00:00:00Z", "invalid-envelope"),
        ("10000-01-01T00:00:00Z", "invalid-request"),
        ("2026-02-30T00:00:00Z", "invalid-request"),
        ("2026-11-29T25:00:00Z", "invalid-request"),
        ("2026-11-29T10:00:00", "invalid-request"),
        ("2026-11-29T10:00:00+25:00", "invalid-request"),
        ("yesterday", "invalid-request"),
    ],
)
def test_occurred_at_far_away_or_impossible_is_refused(
    http: Harness, opened: Opened, occurred_at: str, code: str
) -> None:
    case_id, version = opened
    with unchanged(http, case_id):
        response = http.client.post(
            f"/cases/{case_id}/events",
            json={**submission(), "occurred_at": occurred_at},
            headers=append_headers(http, version),
        )
        problem(response, 422, {code, "invalid-envelope", "invalid-request"})


@pytest.mark.parametrize("day", ["9999-12-31", "0001-01-01", "10000-01-01", "2026-13-01"])
def test_payload_dates_far_away_are_refused(http: Harness, opened: Opened, day: str) -> None:
    case_id, version = opened
    for event_type, field in (
        ("ServiceDelivered", "delivered_on"),
        ("ChildSheltered", "start_date"),
    ):
        payload = example(event_type, **{field: day})
        body = {**submission(), "type": event_type, "payload": payload}
        with unchanged(http, case_id):
            response = http.client.post(
                f"/cases/{case_id}/events", json=body, headers=append_headers(http, version)
            )
            problem(response, 422, "invalid-payload")


def test_dates_far_away_in_queries_are_refused(http: Harness, opened: Opened) -> None:
    case_id, _version = opened
    headers = http.headers("ngo")
    ministry = http.headers("ministry")
    for path, who in (
        ("/cases?updated_since=10000-01-01T00:00:00Z", headers),
        ("/cases?updated_since=0000-01-01", headers),
        (f"/cases/{case_id}/events?as_of=10000-01-01", headers),
        (f"/cases/{case_id}/events?as_of=0001-01-01T00:00:00%2B14:00", headers),
        ("/stats?from=0000-01&to=9999-12", ministry),
        ("/stats?from=2026-13", ministry),
    ):
        response = http.client.get(path, headers=who)
        assert response.status_code < 500, (path, response.text)
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/problem+json", path
    # The extremes that parse are answered, not crashed on.
    for path in (
        "/cases?updated_since=9999-12-31T23:59:59Z",
        "/cases?updated_since=0001-01-01T00:00:00Z",
        f"/cases/{case_id}/events?as_of=9999-12-31T23:59:59Z",
        f"/cases/{case_id}/events?as_of=0001-01-01T00:00:00Z",
    ):
        response = http.client.get(path, headers=headers)
        # 404: the case did not exist yet at the start of the calendar.
        assert response.status_code in {200, 404, 422}, (path, response.text)


# -- long strings -----------------------------------------------------------------------------


def test_very_long_strings_are_refused(http: Harness, opened: Opened) -> None:
    case_id, version = opened
    long = "y" * 100_000
    attempts = [
        submission(summary=long),
        submission(caller_name=long),
        {**submission(), "legal_basis": long},
        {**submission(), "type": long},
    ]
    for body in attempts:
        with unchanged(http, case_id):
            response = http.client.post(
                f"/cases/{case_id}/events", json=body, headers=append_headers(http, version)
            )
            problem(response, 422, {"invalid-payload", "invalid-request"})
    with unchanged(http, case_id):
        for name, value in (("Idempotency-Key", long[:5000]), ("X-Purpose", long[:5000])):
            response = (
                http.client.post(
                    f"/cases/{case_id}/events",
                    json=submission(),
                    headers=append_headers(http, version, **{name: value}),
                )
                if name == "Idempotency-Key"
                else http.client.get(
                    f"/cases/{case_id}/events", headers=http.headers("ngo", **{name: value})
                )
            )
            problem(response, 422, {"invalid-idempotency-key", "invalid-purpose"})


# -- HTML and SQL in free text ----------------------------------------------------------------

HOSTILE_TEXT = [
    "<script>alert('x')</script>",
    '"><img src=x onerror=alert(1)>',
    "Robert'); DROP TABLE events;--",
    "1' OR '1'='1",
    "{{7*7}} ${7*7} <%= 7*7 %>",
    "\u202eevil\u200b \U0001f600 ÄÖÜ",
    "\\u0000 is not a NUL here",
]


def test_html_and_sql_in_free_text_are_stored_and_returned_exactly(
    http: Harness, opened: Opened
) -> None:
    case_id, version = opened
    for text in HOSTILE_TEXT:
        body = submission("ContactReceived", anonymous=False, summary=text, caller_name=text[:200])
        response = http.client.post(
            f"/cases/{case_id}/events", json=body, headers=append_headers(http, version)
        )
        assert response.status_code == 201, response.text
        version = response.json()["version"]
    events = http.client.get(f"/cases/{case_id}/events", headers=http.headers("ngo"))
    assert events.status_code == 200
    summaries = [e["payload"]["summary"] for e in events.json()["events"][1:]]
    names = [e["payload"]["caller_name"] for e in events.json()["events"][1:]]
    assert summaries == HOSTILE_TEXT
    assert names == [t[:200] for t in HOSTILE_TEXT]
    # JSON, never HTML: nothing in the answer is served for a browser to interpret.
    assert events.headers["content-type"] == "application/json"
    assert events.headers.get("x-content-type-options", "nosniff") == "nosniff"
    # The store still answers normally after the SQL-looking text.
    listed = http.client.get("/cases", headers=http.headers("ngo"))
    assert listed.status_code == 200


def test_hostile_text_in_query_parameters_is_harmless(http: Harness, opened: Opened) -> None:
    case_id, _version = opened
    headers = http.headers("ngo")
    for text in HOSTILE_TEXT:
        for path, params in (
            ("/cases", {"stage": text}),
            ("/cases", {"agency": text}),
            ("/cases", {"cursor": text}),
            (f"/cases/{case_id}/events", {"as_of": text[:40]}),
        ):
            with unchanged(http, case_id):
                response = http.client.get(path, params=params, headers=headers)
            assert 400 <= response.status_code < 500, (path, text, response.status_code)
            assert response.headers["content-type"] == "application/problem+json"


# -- failures the guard answers ----------------------------------------------------------------

CANARY = "Canary Smith"


def _failing_routes() -> APIRouter:
    """Routes that fail as a bug or an absent store would, with identifying text in the error."""
    router = APIRouter()

    @router.get("/test-only/bug")
    def bug() -> None:
        raise RuntimeError(f"a bug that mentions {CANARY}")

    @router.get("/test-only/store-away")
    def store_away() -> None:
        raise sqlite3.OperationalError(f"unable to open database of {CANARY}")

    return router


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [("/test-only/bug", 500, "internal"), ("/test-only/store-away", 503, "unavailable")],
)
def test_a_failure_is_a_problem_with_the_request_id_and_no_detail(
    http: Harness, path: str, status: int, code: str
) -> None:
    app = cast("FastAPI", http.client.app)
    if not any(getattr(route, "path", "") == path for route in app.routes):
        app.include_router(_failing_routes())
    response = http.client.get(path)
    body = problem(response, status, code)
    assert CANARY not in response.text
    assert set(body) == {"type", "title", "status"}
    assert response.headers["cache-control"] == "no-store"
    assert ("retry-after" in response.headers) == (status == 503)
