"""The HTTP API end to end through the real app, on SQLite and on PostgreSQL.

Every endpoint and every error status; object-level access between agencies; audit of reads;
and a canary name that must never reach a log line.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from adapters.store import build_application
from api.logging import configure_logging
from referral_core.directory import Directory
from referral_core.envelope import Actor, Envelope
from referral_core.vocab import Role
from tests.support.api import Harness, agency, harness
from tests.support.builders import NOW, example

PROBLEM = "application/problem+json"


@pytest.fixture
def http(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(database_url, tmp_path) as h:
        yield h


def _problem(response: object, status: int, code: str) -> dict[str, object]:
    assert response.status_code == status, response.text  # type: ignore[attr-defined]
    assert response.headers["content-type"].startswith(PROBLEM)  # type: ignore[attr-defined]
    body: dict[str, object] = response.json()  # type: ignore[attr-defined]
    assert body["type"] == f"urn:referral:problem:{code}"
    assert body["status"] == status
    assert "Traceback" not in json.dumps(body)
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers.get("x-request-id", ""))  # type: ignore[attr-defined]
    return body


# -- health, identity --------------------------------------------------------------------------


def test_health_and_readiness(http: Harness) -> None:
    assert http.client.get("/healthz").json() == {"status": "ok"}
    ready = http.client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["status"] == "ready"
    assert {"case_index", "access_log"} <= set(ready.json()["read_models"])


def test_me_and_agencies(http: Harness) -> None:
    me = http.client.get("/me", headers=http.headers("shelter", "supervisor"))
    assert me.status_code == 200
    assert me.json()["agency"]["kind"] == "shelter"
    assert me.json()["role"] == "supervisor"
    assert me.json()["user_id"] == http.users[("shelter", "supervisor")]
    agencies = http.client.get("/agencies", headers=http.headers("ngo")).json()["items"]
    assert agency("police") in {a["agency_id"] for a in agencies}


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer rfl_not-a-real-token", "Basic abc", "Bearer " + "x" * 600],
)
def test_unauthenticated_requests_get_401(http: Harness, header: str | None) -> None:
    headers = {"Authorization": header} if header else {}
    response = http.client.get("/cases", headers=headers)
    _problem(response, 401, "unauthenticated")
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_expired_and_revoked_tokens_get_401(http: Harness) -> None:
    headers = http.headers("ngo")
    assert http.client.get("/me", headers=headers).status_code == 200
    http.clock.advance(timedelta(days=2))
    _problem(http.client.get("/me", headers=headers), 401, "unauthenticated")
    http.clock.now = NOW
    token_ids = list(http.services.app.directory().tokens)
    from uuid import UUID

    system = {"user_id": "t", "agency_id": "system", "role": "admin"}
    for token_id in token_ids:
        revoke = partial(Directory.revoke_token, token_id=UUID(token_id), reason="t", actor=system)
        http.services.app.change_directory(revoke)
    _problem(http.client.get("/me", headers=headers), 401, "unauthenticated")


# -- opening and reading -----------------------------------------------------------------------


def test_open_case_returns_location_and_etag(http: Harness) -> None:
    body = {
        "type": "ContactReceived",
        "occurred_at": (NOW - timedelta(hours=2)).isoformat(),
        "payload": example("ContactReceived"),
    }
    response = http.client.post("/cases", json=body, headers=http.headers("hotline"))
    assert response.status_code == 201, response.text
    case_id = response.json()["case_id"]
    assert response.headers["location"] == f"/cases/{case_id}"
    assert response.headers["etag"] == '"1"'
    assert response.json()["position"] >= 1
    read = http.client.get(response.headers["location"], headers=http.headers("hotline"))
    assert read.status_code == 200
    assert read.json()["stage"] == "contact"


def test_idempotency_key_makes_opening_safe_to_retry(http: Harness) -> None:
    body = {
        "type": "ChildIdentified",
        "occurred_at": (NOW - timedelta(hours=2)).isoformat(),
        "payload": example("ChildIdentified"),
    }
    headers = http.headers("ngo", **{"Idempotency-Key": "open-42"})
    first = http.client.post("/cases", json=body, headers=headers)
    again = http.client.post("/cases", json=body, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json()["case_id"] == again.json()["case_id"]
    assert again.headers["idempotent-replayed"] == "true"
    changed = {**body, "payload": example("ChildIdentified", age_years=12)}
    _problem(
        http.client.post("/cases", json=changed, headers=headers), 409, "idempotency-conflict"
    )
    listed = http.client.get(
        f"/cases?min_position={http.latest()}", headers=http.headers("ngo")
    ).json()
    assert len(listed["items"]) == 1


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        (
            {"type": "ChildIdentified", "occurred_at": "2026-11-29T10:00:00Z"},
            422,
            "invalid-request",
        ),
        (
            {"type": "ServiceDelivered", "occurred_at": "2026-11-29T10:00:00Z", "payload": {}},
            422,
            "case-opening",
        ),
        (
            {"type": "Nope", "occurred_at": "2026-11-29T10:00:00Z", "payload": {}},
            422,
            "case-opening",
        ),
        (
            {
                "type": "ChildIdentified",
                "occurred_at": "2026-11-29T10:00:00Z",
                "payload": {"place": 7},
            },
            422,
            "invalid-payload",
        ),
        (
            {
                "type": "ChildIdentified",
                "occurred_at": "2030-01-01T00:00:00Z",
                "payload": example("ChildIdentified"),
            },
            422,
            "invalid-envelope",
        ),
        (
            {
                "type": "ChildIdentified",
                "occurred_at": "2026-11-29T10:00:00",
                "payload": example("ChildIdentified"),
            },
            422,
            "invalid-request",
        ),
    ],
)
def test_bad_openings_change_nothing(
    http: Harness, body: dict[str, object], status: int, code: str
) -> None:
    before = http.services.app.recorder.max_notification_id()
    _problem(http.client.post("/cases", json=body, headers=http.headers("ngo")), status, code)
    assert http.services.app.recorder.max_notification_id() == before


def test_agencies_that_may_not_open_cases_get_403(http: Harness) -> None:
    body = {
        "type": "ChildIdentified",
        "occurred_at": (NOW - timedelta(hours=2)).isoformat(),
        "payload": example("ChildIdentified"),
    }
    for name in ("ministry", "auditor", "prosecutor", "guardian"):
        response = http.client.post("/cases", json=body, headers=http.headers(name))
        _problem(response, 403, "permission-denied")


def test_invalid_payload_errors_say_where_without_echoing_values(http: Harness) -> None:
    body = {
        "type": "ChildIdentified",
        "occurred_at": (NOW - timedelta(hours=2)).isoformat(),
        "payload": {**example("ChildIdentified"), "age_years": "Canary-Value-99"},
    }
    problem = _problem(
        http.client.post("/cases", json=body, headers=http.headers("ngo")), 422, "invalid-payload"
    )
    assert problem["errors"] == [
        {
            "loc": ["age_years"],
            "msg": "Input should be a valid integer, unable to parse string as an integer",
            "type": "int_parsing",
        }
    ]
    assert "Canary-Value-99" not in json.dumps(problem)


# -- appending ---------------------------------------------------------------------------------


def test_append_requires_if_match_and_refuses_stale_versions(http: Harness) -> None:
    case_id, version = http.open_case("ngo")
    body = {
        "type": "ServiceDelivered",
        "occurred_at": (NOW - timedelta(minutes=5)).isoformat(),
        "payload": example("ServiceDelivered", provider_agency_id=agency("ngo")),
    }
    _problem(
        http.client.post(f"/cases/{case_id}/events", json=body, headers=http.headers("ngo")),
        428,
        "precondition-required",
    )
    ok = http.append(case_id, version=version, event_type=body["type"], payload=body["payload"])  # type: ignore[arg-type]
    assert ok.status_code == 201, ok.text
    assert ok.headers["etag"] == '"2"'
    stale = http.append(case_id, version=1, event_type=body["type"], payload=body["payload"])  # type: ignore[arg-type]
    _problem(stale, 412, "version-conflict")
    garbage = http.client.post(
        f"/cases/{case_id}/events",
        json=body,
        headers=http.headers("ngo", **{"If-Match": "yesterday"}),
    )
    _problem(garbage, 412, "version-conflict")
    history = http.client.get(f"/cases/{case_id}/events", headers=http.headers("ngo")).json()
    assert [e["version"] for e in history["events"]] == [1, 2]


def test_retry_with_same_event_id_is_safe(http: Harness) -> None:
    case_id, version = http.open_case("ngo")
    event_id = str(uuid4())
    payload = example("ServiceDelivered", provider_agency_id=agency("ngo"))
    first = http.append(
        case_id, version=version, event_type="ServiceDelivered", payload=payload, event_id=event_id
    )
    again = http.append(
        case_id, version=version, event_type="ServiceDelivered", payload=payload, event_id=event_id
    )
    assert first.status_code == again.status_code == 201
    assert again.json()["duplicate"] is True
    assert again.json()["version"] == first.json()["version"] == 2


def test_domain_rules_answer_409_and_change_nothing(http: Harness) -> None:
    case_id, version = http.open_case("ngo")
    closing = http.append(
        case_id,
        version=version,
        event_type="CaseClosed",
        payload=example("CaseClosed"),
        role="supervisor",
    )
    _problem(closing, 409, "unreported-trafficking")
    no_basis = http.append(
        case_id,
        version=version,
        event_type="ReferralSent",
        payload=example("ReferralSent", to_agency_id=agency("shelter")),
    )
    _problem(no_basis, 409, "missing-legal-basis")
    case = http.client.get(f"/cases/{case_id}", headers=http.headers("ngo")).json()
    assert case["version"] == 1


def test_kind_and_role_refusals_are_403_on_a_visible_case(http: Harness) -> None:
    case_id, version = http.open_case("ngo")
    plan = http.append(
        case_id,
        version=version,
        event_type="ReintegrationPlanAgreed",
        payload=example("ReintegrationPlanAgreed"),
        role="caseworker",
    )
    _problem(plan, 403, "permission-denied")
    ok = http.append(
        case_id,
        version=version,
        event_type="ReintegrationPlanAgreed",
        payload=example("ReintegrationPlanAgreed"),
        role="supervisor",
    )
    assert ok.status_code == 201, ok.text


# -- who sees what -----------------------------------------------------------------------------


def test_other_agencies_cannot_read_list_or_append(http: Harness) -> None:
    case_id, version = http.open_case("ngo")
    for name in ("ngo2", "shelter", "police", "ministry", "guardian"):
        headers = http.headers(name)
        _problem(http.client.get(f"/cases/{case_id}", headers=headers), 404, "not-found")
        _problem(http.client.get(f"/cases/{case_id}/events", headers=headers), 404, "not-found")
        listed = http.client.get(f"/cases?min_position={http.latest()}", headers=headers).json()[
            "items"
        ]
        assert case_id not in {item["case_id"] for item in listed}
        attempt = http.append(
            case_id,
            version=version,
            event_type="ServiceDelivered",
            payload=example("ServiceDelivered"),
            name=name,
        )
        _problem(attempt, 404, "not-found")
    missing = http.client.get(f"/cases/{uuid4()}", headers=http.headers("ngo2"))
    hidden = http.client.get(f"/cases/{case_id}", headers=http.headers("ngo2"))
    assert missing.json() | {"instance": ""} == hidden.json() | {"instance": ""}
    _problem(
        http.client.get("/cases/not-a-uuid", headers=http.headers("ngo")), 422, "invalid-request"
    )


def test_auditor_sees_everything_and_every_read_is_recorded(http: Harness) -> None:
    case_id, _ = http.open_case("ngo")
    listed = http.client.get(
        f"/cases?min_position={http.latest()}", headers=http.headers("auditor")
    ).json()
    assert case_id in {item["case_id"] for item in listed["items"]}
    history = http.client.get(
        f"/cases/{case_id}/events",
        headers=http.headers("auditor", **{"X-Purpose": "annual audit"}),
    )
    assert history.status_code == 200
    assert history.json()["events"][0]["payload"]["given_name"] == "Mali"
    records = http.client.get(
        f"/audit/access?case_id={case_id}", headers=http.headers("auditor")
    ).json()["items"]
    assert records[0]["user_id"] == http.users[("auditor", "caseworker")]
    assert records[0]["purpose"] == "annual audit"
    by_user = http.client.get(
        f"/audit/access?user_id={http.users[('auditor', 'caseworker')]}",
        headers=http.headers("auditor"),
    ).json()["items"]
    assert len(by_user) == 1
    _problem(
        http.client.get("/audit/access", headers=http.headers("ngo")), 403, "permission-denied"
    )


def test_identifying_reads_are_recorded_for_case_workers_too(http: Harness) -> None:
    case_id, _ = http.open_case("ngo")
    http.client.get(f"/cases/{case_id}/events", headers=http.headers("ngo"))
    records = http.client.get(
        f"/audit/access?case_id={case_id}", headers=http.headers("auditor")
    ).json()["items"]
    assert [r["user_id"] for r in records] == [http.users[("ngo", "caseworker")]]
    assert records[0]["purpose"] is None


def _refer_to_ngo2(http: Harness, case_id: str, version: int) -> str:
    """The lead NGO refers the case to ngo2 for services; returns the referral's event id."""
    sent = http.append(
        case_id,
        version=version,
        event_type="ReferralSent",
        payload=example("ReferralSent", to_agency_id=agency("ngo2"), scope=["services"]),
        legal_basis="Child Protection Act s.20",
    )
    assert sent.status_code == 201, sent.text
    return str(sent.json()["event_id"])


def _accept_as_ngo2(http: Harness, case_id: str, version: int, referral_id: str) -> None:
    accepted = http.append(
        case_id,
        version=version,
        event_type="ReferralAccepted",
        payload={"referral_event_id": referral_id},
        name="ngo2",
    )
    assert accepted.status_code == 201, accepted.text


def _deliver_as_ngo2(http: Harness, case_id: str, version: int) -> Any:
    return http.append(
        case_id,
        version=version,
        event_type="ServiceDelivered",
        payload=example(
            "ServiceDelivered", provider_agency_id=agency("ngo2"), service_type="education"
        ),
        name="ngo2",
    )


def test_referral_scope_and_revocation(http: Harness) -> None:
    case_id, version = http.open_case("ngo")
    referral_id = _refer_to_ngo2(http, case_id, version)
    seen = http.client.get(f"/cases/{case_id}/events", headers=http.headers("ngo2")).json()
    assert [e["type"] for e in seen["events"]] == ["ReferralSent"]
    _accept_as_ngo2(http, case_id, 2, referral_id)
    delivered = _deliver_as_ngo2(http, case_id, 3)
    assert delivered.status_code == 201, delivered.text
    revoked = http.append(
        case_id,
        version=4,
        event_type="ReferralRevoked",
        payload={"referral_event_id": referral_id, "reason": "consent withdrawn"},
    )
    assert revoked.status_code == 201, revoked.text
    _problem(http.client.get(f"/cases/{case_id}", headers=http.headers("ngo2")), 404, "not-found")
    listed = http.client.get(
        f"/cases?min_position={revoked.json()['position']}", headers=http.headers("ngo2")
    ).json()
    assert listed["items"] == []


def test_police_receive_only_the_shared_fields(http: Harness) -> None:
    case_id, version = http.open_case("ngo", given_name="Canary")
    reported = http.append(
        case_id,
        version=version,
        event_type="ReportedToLawEnforcement",
        payload=example(
            "ReportedToLawEnforcement",
            receiving_unit_agency_id=agency("police"),
            fields_shared=["age_years", "sex", "exploitation_types"],
        ),
    )
    assert reported.status_code == 201
    events = http.client.get(f"/cases/{case_id}/events", headers=http.headers("police")).json()
    identified = events["events"][0]
    assert set(identified["payload"]) == {"age_years", "sex", "exploitation_types"}
    assert "given_name" in identified["redacted"]
    ack = http.append(
        case_id,
        version=2,
        event_type="ReportAcknowledged",
        payload={"report_event_id": reported.json()["event_id"], "police_reference": "P-1"},
        name="police",
    )
    assert ack.status_code == 201, ack.text
    other_unit = http.append(
        case_id,
        version=3,
        event_type="InterviewConducted",
        payload=example("InterviewConducted"),
        name="police2",
    )
    _problem(other_unit, 404, "not-found")


def test_as_of_version_and_time(http: Harness) -> None:
    case_id, version = http.open_case("ngo")
    http.clock.advance(timedelta(hours=1))
    http.append(
        case_id,
        version=version,
        event_type="ServiceDelivered",
        payload=example("ServiceDelivered", provider_agency_id=agency("ngo")),
    )
    headers = http.headers("ngo")
    by_version = http.client.get(f"/cases/{case_id}/events?as_of=1", headers=headers).json()
    assert [e["version"] for e in by_version["events"]] == [1]
    at = (NOW + timedelta(minutes=30)).isoformat().replace("+00:00", "Z")
    by_time = http.client.get(f"/cases/{case_id}/events", params={"as_of": at}, headers=headers)
    assert [e["version"] for e in by_time.json()["events"]] == [1]
    everything = http.client.get(f"/cases/{case_id}/events", headers=headers).json()
    assert [e["version"] for e in everything["events"]] == [1, 2]
    for bad in ("0", "99", "not-a-time"):
        _problem(
            http.client.get(f"/cases/{case_id}/events?as_of={bad}", headers=headers),
            422,
            "invalid-as-of",
        )


def test_listing_filters_and_pages(http: Harness) -> None:
    ids = [http.open_case("ngo")[0] for _ in range(5)]
    contact, _ = http.open_case("ngo", event_type="ContactReceived")
    headers = http.headers("ngo")
    position = http.services.app.recorder.max_notification_id()
    first = http.client.get(f"/cases?limit=4&min_position={position}", headers=headers).json()
    assert len(first["items"]) == 4
    second = http.client.get(f"/cases?limit=4&cursor={first['next_cursor']}", headers=headers)
    assert len(second.json()["items"]) == 2
    assert second.json()["next_cursor"] is None
    seen = [i["case_id"] for i in first["items"] + second.json()["items"]]
    assert sorted(seen) == sorted([*ids, contact])
    assert seen[0] == contact
    stage = http.client.get("/cases?stage=contact", headers=headers).json()["items"]
    assert [i["case_id"] for i in stage] == [contact]
    lead = http.client.get(f"/cases?agency={agency('ngo2')}", headers=headers).json()["items"]
    assert lead == []
    later = (NOW + timedelta(days=1)).isoformat().replace("+00:00", "Z")
    assert (
        http.client.get("/cases", params={"updated_since": later}, headers=headers).json()["items"]
        == []
    )
    _problem(http.client.get("/cases?stage=nonsense", headers=headers), 422, "invalid-request")
    _problem(http.client.get("/cases?limit=0", headers=headers), 422, "invalid-request")


# -- break-glass -------------------------------------------------------------------------------


def test_break_glass_is_recorded_time_boxed_and_reviewed(http: Harness) -> None:
    case_id, _ = http.open_case("ngo")
    reason = {"reason": "child reported missing tonight; need placement history"}
    _problem(
        http.client.post(
            f"/cases/{case_id}/break-glass", json=reason, headers=http.headers("ngo2")
        ),
        403,
        "permission-denied",
    )
    _problem(
        http.client.post(
            f"/cases/{case_id}/break-glass",
            json={"reason": "short"},
            headers=http.headers("ngo2", "supervisor"),
        ),
        422,
        "invalid-request",
    )
    opened = http.client.post(
        f"/cases/{case_id}/break-glass", json=reason, headers=http.headers("ngo2", "supervisor")
    )
    assert opened.status_code == 201, opened.text
    supervisor = http.headers("ngo2", "supervisor")
    _problem(
        http.client.get(f"/cases/{case_id}/events", headers=supervisor), 428, "purpose-required"
    )
    with_purpose = http.client.get(
        f"/cases/{case_id}/events", headers={**supervisor, "X-Purpose": "emergency: missing"}
    )
    assert with_purpose.status_code == 200
    cannot_write = http.append(
        case_id,
        version=1,
        event_type="ServiceDelivered",
        payload=example("ServiceDelivered"),
        name="ngo2",
        role="supervisor",
    )
    _problem(cannot_write, 404, "not-found")
    records = http.client.get(
        f"/audit/access?case_id={case_id}", headers=http.headers("auditor")
    ).json()["items"]
    assert records[0]["break_glass"] is True
    grants = http.client.get("/audit/break-glass", headers=http.headers("auditor")).json()["items"]
    assert grants[0]["case_id"] == case_id
    assert grants[0]["reviewed"] is False
    review = http.client.post(
        f"/audit/break-glass/{grants[0]['grant_id']}/review",
        json={"outcome": "justified", "note": "child was missing"},
        headers=http.headers("auditor"),
    )
    assert review.status_code == 200
    assert review.json()["reviewed"] is True
    http.clock.advance(timedelta(hours=2))
    _problem(http.client.get(f"/cases/{case_id}", headers=supervisor), 404, "not-found")


# -- hostile bodies ----------------------------------------------------------------------------


def test_oversized_and_malformed_bodies(http: Harness) -> None:
    headers = {**http.headers("ngo"), "Content-Type": "application/json"}
    big = b'{"type":"ChildIdentified","payload":{"notes":"' + b"a" * 300_000 + b'"}}'
    _problem(http.client.post("/cases", content=big, headers=headers), 413, "too-large")
    _problem(
        http.client.post("/cases", content=b"{not json", headers=headers), 422, "invalid-request"
    )
    _problem(
        http.client.post("/cases", content=b"\xff\xfe", headers=headers), 422, "invalid-request"
    )


# -- logs never carry a child's data -----------------------------------------------------------


def test_canary_name_never_reaches_a_log_line(http: Harness) -> None:
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    canary = "Zyxwvut-Canary"
    case_id, version = http.open_case("ngo", given_name=canary, notes=f"{canary} said hello")
    http.append(
        case_id,
        version=version,
        event_type="ServiceDelivered",
        payload=example("ServiceDelivered", notes=f"{canary} attended"),
    )
    http.client.get(f"/cases/{case_id}/events", headers=http.headers("ngo"))
    bad = {"type": "ChildIdentified", "occurred_at": "x", "payload": {"given_name": canary}}
    http.client.post("/cases", json=bad, headers=http.headers("ngo"))
    lines = [line for line in stream.getvalue().splitlines() if line.strip()]
    assert len(lines) >= 4
    for line in lines:
        record = json.loads(line)
        assert canary not in line
        assert {"request_id", "route", "status", "latency_ms"} <= set(record) or record[
            "event"
        ] != "request"
    requests = [json.loads(line) for line in lines if json.loads(line)["event"] == "request"]
    assert {r["route"] for r in requests} >= {"/cases", "/cases/{case_id}/events"}
    assert all(r["agency_id"] == agency("ngo") for r in requests)


def test_metrics_count_requests_appends_and_read_model_lag(http: Harness) -> None:
    case_id, version = http.open_case("ngo")
    http.append(
        case_id,
        version=version,
        event_type="ServiceDelivered",
        payload=example("ServiceDelivered", provider_agency_id=agency("ngo")),
    )
    http.client.get(f"/cases?min_position={http.latest()}", headers=http.headers("ngo"))
    text = http.client.get("/metrics").text
    assert 'referral_appends_total{event_type="ChildIdentified"} 1.0' in text
    assert 'referral_appends_total{event_type="ServiceDelivered"} 1.0' in text
    assert 'referral_http_requests_total{method="POST",route="/cases",status="201"} 1.0' in text
    assert f"referral_log_position {float(http.latest())}" in text
    assert 'referral_read_model_lag_events{name="case_index"}' in text
    assert case_id not in text


def test_an_append_after_a_revocation_in_another_process_answers_404(
    http: Harness, database_url: str
) -> None:
    """The API decides an append on its cached copy when that is at the If-Match; if another
    process meanwhile revoked the caller's referral, the append answers 404 (out of sight),
    not 412, and stores nothing."""
    case_id, version = http.open_case("ngo")
    referral_id = _refer_to_ngo2(http, case_id, version)
    _accept_as_ngo2(http, case_id, 2, referral_id)  # this process now caches version 3
    other = build_application(database_url, clock=http.clock)
    try:
        other.append(
            UUID(case_id),
            expected_version=3,
            event_type="ReferralRevoked",
            payload={"referral_event_id": referral_id, "reason": "consent withdrawn"},
            envelope=Envelope(
                event_id=uuid4(),
                actor=Actor(
                    user_id=http.users[("ngo", "caseworker")],
                    agency_id=agency("ngo"),
                    role=Role.CASEWORKER,
                ),
                occurred_at=http.clock(),
                correlation_id=str(uuid4()),
            ),
        )
    finally:
        other.close()
    stale = _deliver_as_ngo2(http, case_id, 3)
    _problem(stale, 404, "not-found")
    history = http.client.get(f"/cases/{case_id}/events", headers=http.headers("ngo")).json()
    assert [e["type"] for e in history["events"]] == [
        "ChildIdentified",
        "ReferralSent",
        "ReferralAccepted",
        "ReferralRevoked",
    ]
    # the lead agency, which still sees the case, gets the conflict as before
    _problem(
        http.append(
            case_id,
            version=3,
            event_type="ServiceDelivered",
            payload=example("ServiceDelivered", provider_agency_id=agency("ngo")),
        ),
        412,
        "version-conflict",
    )


def test_openapi_documents_the_append_headers(http: Harness) -> None:
    """If-Match and Idempotency-Key are read from the request, and still documented."""
    document = http.client.get("/openapi.json").json()
    operation = document["paths"]["/cases/{case_id}/events"]["post"]
    where = {(p["name"], p["in"]) for p in operation["parameters"]}
    assert where == {("case_id", "path"), ("if-match", "header"), ("idempotency-key", "header")}
    opening = document["paths"]["/cases"]["post"]
    assert ("idempotency-key", "header") in {(p["name"], p["in"]) for p in opening["parameters"]}


def test_no_response_may_be_stored_by_a_browser_or_proxy(http: Harness) -> None:
    """Answers carry children's data: each says `Cache-Control: no-store` once, problems and
    refusals made before any route included; a route's own caching header is kept as it is."""
    case_id, version = http.open_case("ngo")
    headers = http.headers("ngo")
    answers = [
        http.client.get(f"/cases/{case_id}", headers=headers),
        http.client.get(f"/cases/{case_id}/events", headers=headers),
        http.append(
            case_id,
            version=version,
            event_type="ServiceDelivered",
            payload=example("ServiceDelivered", provider_agency_id=agency("ngo")),
        ),
        http.client.get(f"/cases/{uuid4()}", headers=headers),  # 404
        http.client.get("/cases"),  # 401
        http.client.post("/cases", content=b"{not json", headers=headers),  # 422, before routes
        http.client.post("/cases", content=b"x" * (2 * 1024 * 1024), headers=headers),  # 413
        http.client.get("/stats", headers=http.headers("ministry")),
    ]
    for answer in answers:
        assert answer.headers.get_list("cache-control") == ["no-store"], answer.request.url
    assert [a.status_code for a in answers[3:7]] == [404, 401, 422, 413]
