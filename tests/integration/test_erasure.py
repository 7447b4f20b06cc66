"""Erasure by destroying a case's key: a planted name is readable before and gone after, from
the database files (pg_dump on PostgreSQL), the read models, the API and the logs, while the
log still verifies and the statistics do not move.
"""

from __future__ import annotations

import io
import json
import subprocess
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit
from uuid import UUID, uuid4

import pytest

from adapters.auth import issue_token
from adapters.store import build_application
from api.cli import main
from api.logging import configure_logging
from projections.db import open_database
from projections.integrity import IntegrityProjection
from projections.registry import all_projections
from projections.runner import ProjectionRunner, rebuild
from referral_core import synthetic
from referral_core.vocab import Role
from tests.support.api import SYSTEM, Harness, agency, harness
from tests.support.builders import NOW, MovableClock, example
from tests.support.readmodels import table_rows
from tests.support.runs import drain

NAME = "Ilonka-Canary-Qx7"
PURPOSE = "Purpose-Canary-Zk4"
STATS_READ_MODELS = ("national_statistics", "hotline_statistics")


@pytest.fixture
def http(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    with harness(database_url, tmp_path) as h:
        yield h


def at_rest(database_url: str) -> str:
    """Everything the database holds: a pg_dump of the schema, or the SQLite files' bytes."""
    parts = urlsplit(database_url)
    if parts.scheme.startswith("postgres"):
        schema = parse_qs(parts.query)["schema"][0]
        dump = subprocess.run(  # noqa: S603 -- fixed arguments, the suite's own server
            [  # noqa: S607 -- pg_dump from PATH, as an operator would run it
                "pg_dump",
                f"--schema={schema}",
                "-h",
                parts.hostname or "127.0.0.1",
                "-p",
                str(parts.port or 5432),
                "-U",
                parts.username or "postgres",
                parts.path.lstrip("/"),
            ],
            check=True,
            capture_output=True,
        )
        return dump.stdout.decode("utf-8", "replace")
    path = Path(parts.path[1:])
    files = [p for p in path.parent.glob(path.name + "*") if p.is_file()]
    return "".join(p.read_bytes().decode("latin-1") for p in files)


def read_model_text(http: Harness) -> str:
    return json.dumps(
        {p.name: table_rows(http.services.db, p) for p in all_projections()}, default=str
    )


def dpo_token(http: Harness, agency_name: str = "ministry") -> str:
    user = uuid4()
    http.services.app.change_directory(
        lambda d: d.add_user(
            user, UUID(agency(agency_name)), Role.DATA_PROTECTION_OFFICER, "DPO", SYSTEM
        )
    )
    _tid, token = issue_token(http.services.app, user, ttl=timedelta(days=1), actor=SYSTEM)
    return token


def statistics(http: Harness) -> dict[str, Any]:
    """What statistics are built from: each case's stage and lead, and the statistics tables."""
    known = {p.name: p for p in all_projections()}
    found: dict[str, Any] = {
        name: table_rows(http.services.db, known[name])
        for name in STATS_READ_MODELS
        if name in known
    }
    with http.services.db.transaction() as tx:
        found["case_index"] = sorted(
            tx.fetchall("SELECT case_id, agency_id, stage, lead_agency_id, closed FROM case_index")
        )
    return found


def plant(http: Harness) -> tuple[str, int, str]:
    """A case carrying NAME in every kind of identifying field, read by an auditor who
    states PURPOSE; and a second case that is not erased."""
    case_id, version = http.open_case(
        "ngo",
        given_name=NAME,
        family_name=NAME,
        notes=f"{NAME} was met at the station",
        address=f"{NAME}'s street 4",
    )
    other_case, _ = http.open_case("ngo", given_name="Another-Child")
    for event_type, payload in (
        ("FamilyTraced", example("FamilyTraced", family_contact=NAME, notes=f"aunt of {NAME}")),
        ("ServiceDelivered", example("ServiceDelivered", notes=f"{NAME} attended")),
    ):
        response = http.append(case_id, version=version, event_type=event_type, payload=payload)
        assert response.status_code == 201, response.text
        version += 1
    purpose = {"X-Purpose": f"review of {PURPOSE}"}
    reviewed = http.client.get(
        f"/cases/{case_id}/events", headers=http.headers("auditor", **purpose)
    )
    assert reviewed.status_code == 200
    assert http.services.runner.wait_for(http.latest(), 10)
    return case_id, version, other_case


def erase_through_the_api(http: Harness, case_id: str) -> None:
    body = {"reason": "erasure request of the former client", "legal_basis": "GDPR art. 17"}
    for who in (("ministry", "caseworker"), ("ngo", "supervisor")):
        refused = http.client.post(
            f"/cases/{case_id}/erase", json=body, headers=http.headers(*who)
        )
        assert refused.status_code == 403
    dpo = {"Authorization": f"Bearer {dpo_token(http)}"}
    erased = http.client.post(f"/cases/{case_id}/erase", json=body, headers=dpo)
    assert erased.status_code == 200, erased.text
    assert erased.json()["already_erased"] is False
    again = http.client.post(f"/cases/{case_id}/erase", json=body, headers=dpo)
    assert again.status_code == 200
    assert again.json()["already_erased"] is True
    assert http.services.runner.wait_for(http.latest(), 10)


def api_responses_after(http: Harness, case_id: str) -> list[str]:
    responses = []
    for who in ("ngo", "auditor"):
        history = http.client.get(f"/cases/{case_id}/events", headers=http.headers(who))
        assert history.status_code == 200
        events = history.json()["events"]
        assert all(e["erased"] for e in events)
        assert events[0]["payload"]["given_name"] is None
        assert events[0]["payload"]["country"] == "TH"
        assert events[-1]["type"] == "CaseErased"
        responses.append(history.text)
    summary = http.client.get(f"/cases/{case_id}", headers=http.headers("ngo"))
    assert summary.json()["erased"] is True
    responses.append(summary.text)
    access = http.client.get(f"/audit/access?case_id={case_id}", headers=http.headers("auditor"))
    assert all(item["purpose"] is None for item in access.json()["items"])
    responses.append(access.text)
    return responses


def test_an_erased_name_appears_nowhere_and_the_log_still_verifies(
    http: Harness, capfd: pytest.CaptureFixture[str]
) -> None:
    stream = io.StringIO()
    configure_logging("debug", stream=stream)
    database_url = http.services.settings.database_url
    case_id, version, other_case = plant(http)

    # before: readable through the API, sealed at rest
    lead_view = http.client.get(f"/cases/{case_id}/events", headers=http.headers("ngo")).text
    assert NAME in lead_view
    assert NAME not in at_rest(database_url)
    assert PURPOSE in at_rest(database_url)  # the access log keeps readers' reasons in clear
    assert PURPOSE in read_model_text(http)
    before = statistics(http)

    erase_through_the_api(http, case_id)

    # after: gone from every API response, at rest, from the read models and from the logs
    for text in api_responses_after(http, case_id):
        assert NAME not in text
        assert PURPOSE not in text
    untouched = http.client.get(f"/cases/{other_case}", headers=http.headers("ngo")).json()
    assert untouched["erased"] is False
    dumped = at_rest(database_url)
    assert NAME not in dumped
    assert PURPOSE not in dumped
    assert NAME not in read_model_text(http)
    assert PURPOSE not in read_model_text(http)
    captured = capfd.readouterr()
    for text in (stream.getvalue(), captured.out, captured.err):
        assert NAME not in text
        assert PURPOSE not in text

    # the log still verifies; each event still verifies; statistics did not move
    report = http.client.get("/audit/verify", headers=http.headers("auditor")).json()
    assert report["ok"] is True, report["findings"]
    verified = http.client.get(f"/cases/{case_id}/events", headers=http.headers("auditor"))
    assert {e["verified"] for e in verified.json()["events"]} == {True}
    assert statistics(http) == before

    # nothing more is recorded on an erased case
    refused = http.append(
        case_id,
        version=version + 1,
        event_type="ServiceDelivered",
        payload=example("ServiceDelivered"),
    )
    assert refused.status_code == 409


def test_cli_erase_leaves_statistics_and_their_rebuild_unchanged(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("REFERRAL_DATABASE_URL", database_url)
    monkeypatch.setenv("REFERRAL_DATA_DIR", str(tmp_path))
    app = build_application(database_url, clock=MovableClock())
    synthetic.seed_directory(app)
    synthetic.generate_cases(app, cases=6, seed=3, now=NOW - timedelta(minutes=1))
    db = open_database(database_url)
    projections = [p for p in all_projections() if p.name in STATS_READ_MODELS]
    runner = ProjectionRunner(app, db, projections)
    drain(runner)
    integrity = ProjectionRunner(app, db, [IntegrityProjection()])
    drain(integrity)
    before = {p.name: table_rows(db, p) for p in projections}
    opened = [
        UUID(str(n.originator_id))
        for n in app.recorder.select_notifications(start=1, limit=10_000)
        if n.topic == "referral.case:ChildIdentified" and n.originator_version == 1
    ]
    for case_id in opened[:3]:
        args = ["erase", str(case_id), "--reason", "court order", "--legal-basis", "s.12"]
        assert main(args) == 0
        assert main(args) == 0  # completing it again is harmless
        assert app.get_case(case_id).erased
        assert all(getattr(e, "erased", False) for e in app.history(case_id))
    drain(integrity)
    assert main(["audit", "verify"]) == 0
    drain(runner)
    assert {p.name: table_rows(db, p) for p in projections} == before
    rebuild(app, db, projections, swap=False, suffix="_check")
    assert {p.name: table_rows(db, p, "_check") for p in projections} == before
    db.close()
    app.close()
