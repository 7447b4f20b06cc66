"""The work read models and their endpoints, on SQLite and PostgreSQL.

Each read model against one scripted case history (exact rows), rebuilt to the same rows; then
over HTTP: breaches that appear as the clock moves and clear when the discharging event is
appended, each agency's inbox holding only its own work, the shelter roster and who may read
it, and a canary name and birth date that reach none of these tables or responses. At scale:
each inbox list read in index order, and planner statistics kept after a rebuild or catch-up.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from projections.base import Projection
from projections.db import PostgresDatabase, SqliteDatabase
from projections.runner import ProjectionRunner, rebuild, refresh_statistics
from projections.work_common import stored_time
from projections.work_queues import RULES_FILE_VARIABLE, configured_rules, work_projections
from projections.work_summary import (
    DEADLINE_COLUMNS,
    SUMMARY_COLUMNS,
    count_overdue,
    deadlines_of,
    open_cases,
)
from referral_core.application import ReferralApplication, case_id_for_opening
from referral_core.deadlines import RULES_BY_COUNTRY
from tests.support.api import Harness, agency, harness
from tests.support.builders import (
    NGO,
    NOW,
    OTHER,
    POLICE,
    SHELTER,
    actor,
    envelope,
    example,
)
from tests.support.readmodels import table_rows

CANARY = "Qwertzuiop-Canary"
BIRTH_DATE = "2009-01-15"
STATUTE = "Child Protection Act s.20"
STAMP = stored_time(NOW)

Database = SqliteDatabase | PostgresDatabase


def at(hours: float) -> datetime:
    """A time relative to NOW, where the test clock starts."""
    return NOW + timedelta(hours=hours)


class Script:
    """One case recorded through the application, each event by one agency at a chosen time."""

    def __init__(self, app: ReferralApplication) -> None:
        self.app = app
        opening = uuid4()
        self.case_id = case_id_for_opening(opening)
        self.version = 0
        self.position = 0
        self.record(
            "ChildIdentified",
            at(-10),
            event_id=opening,
            given_name=CANARY,
            family_name=CANARY,
            notes=f"{CANARY} told us",
            birth_date=BIRTH_DATE,
            age_years=17,
            country="UA",
        )

    def record(
        self,
        event_type: str,
        when: datetime,
        *,
        who: str = NGO,
        event_id: UUID | None = None,
        legal_basis: str | None = None,
        **payload: Any,
    ) -> str:
        env = envelope(
            actor(who), event_id=event_id or uuid4(), occurred_at=when, legal_basis=legal_basis
        )
        body = example(event_type, **payload)
        if self.version == 0:
            result = self.app.open_case(event_type=event_type, payload=body, envelope=env)
        else:
            result = self.app.append(
                self.case_id,
                expected_version=self.version,
                event_type=event_type,
                payload=body,
                envelope=env,
            )
        self.version = result.version
        self.position = result.position or self.position
        return result.event_id


def scripted_history(app: ReferralApplication) -> tuple[Script, dict[str, str]]:
    """Identified, reported (urgent), referred to a shelter that takes the child in, a plan, and
    a second referral still pending."""
    script = Script(app)
    ids = {
        "report": script.record(
            "ReportedToLawEnforcement",
            at(-9),
            receiving_unit_agency_id=POLICE,
            urgency="urgent",
        ),
        "to_shelter": script.record(
            "ReferralSent",
            at(-8),
            legal_basis=STATUTE,
            to_agency_id=SHELTER,
            service="shelter",
            scope=["identification", "placement", "services", "plan"],
            respond_by=None,
        ),
    }
    script.record("ReferralAccepted", at(-7), who=SHELTER, referral_event_id=ids["to_shelter"])
    ids["placement"] = script.record(
        "ChildSheltered",
        at(-6),
        who=SHELTER,
        shelter_agency_id=SHELTER,
        facility="North wing",
        start_date="2026-11-29",
    )
    for hours in (-5, -4):
        script.record("ServiceDelivered", at(hours), who=SHELTER, provider_agency_id=SHELTER)
    ids["plan"] = script.record("ReintegrationPlanAgreed", at(-3), review_date="2027-02-01")
    ids["to_other"] = script.record(
        "ReferralSent",
        at(-2),
        legal_basis=STATUTE,
        to_agency_id=OTHER,
        service="legal",
        scope=["services"],
        respond_by="2026-11-30T09:00:00Z",
    )
    return script, ids


def run(app: ReferralApplication, db: Database) -> list[Projection]:
    projections = work_projections(RULES_BY_COUNTRY)
    ProjectionRunner(app, db, projections, batch_size=3).catch_up()
    return projections


def rows_of(db: Database, projections: list[Projection]) -> dict[str, list[tuple[Any, ...]]]:
    found: dict[str, list[tuple[Any, ...]]] = {}
    for projection in projections:
        found.update(table_rows(db, projection))
    return found


# -- each read model against a scripted history -------------------------------------------------


def test_each_work_read_model_holds_exactly_the_scripted_rows(
    app: ReferralApplication, db: Database
) -> None:
    script, ids = scripted_history(app)
    rows = rows_of(db, run(app, db))
    case, last = str(script.case_id), script.position
    ack_due = stored_time(at(-9 + 4))
    majority_due = "2026-12-01T00:00:00.000000+00:00"
    plan_due = "2027-02-02T00:00:00.000000+00:00"
    other_due = "2026-11-30T09:00:00.000000+00:00"

    assert rows["le_inbox"] == [
        (ids["report"], POLICE, case, stored_time(at(-9)), "urgent", None, ack_due, last, STAMP)
    ]
    assert rows["referral_inbox"] == sorted(
        [
            (
                ids["to_shelter"], SHELTER, NGO, case, "shelter", "accepted", None, None,
                stored_time(at(-8)), stored_time(at(-7)), last, STAMP,
            ),
            (
                ids["to_other"], OTHER, NGO, case, "legal", "pending", other_due, other_due,
                stored_time(at(-2)), None, last, STAMP,
            ),
        ],
        key=repr,
    )  # fmt: skip
    assert rows["shelter_roster"] == [
        (
            SHELTER, case, ids["placement"], "2026-11-29", "short_term_shelter", "North wing",
            2, "2027-02-01", "plan_review", plan_due, "15-17", "female", 0, last, STAMP,
        )
    ]  # fmt: skip
    summary = {row[1]: row for row in rows["case_summary"]}
    assert summary == {
        NGO: (
            case, NGO, "lead,opener", "reintegration", NGO, 0, SHELTER, "North wing",
            2, "report_acknowledgement", ack_due, script.version, last, STAMP,
        ),
        POLICE: (
            case, POLICE, "report_recipient", "reintegration", NGO, 0, None, None,
            0, "report_acknowledgement", ack_due, script.version, last, STAMP,
        ),
        SHELTER: (
            case, SHELTER, "referral_receiver,shelter", "reintegration", NGO, 0, SHELTER,
            "North wing", 1, None, None, script.version, last, STAMP,
        ),
        OTHER: (
            case, OTHER, "referral_pending", "reintegration", NGO, 0, None, None,
            1, "referral_answer", other_due, script.version, last, STAMP,
        ),
    }  # fmt: skip
    assert rows["case_deadlines"] == sorted(
        [
            (NGO, case, "report_acknowledgement", POLICE, ids["report"], ack_due, last),
            (NGO, case, "referral_answer", OTHER, ids["to_other"], other_due, last),
            (NGO, case, "majority", NGO, None, majority_due, last),
            (NGO, case, "plan_review", NGO, ids["plan"], plan_due, last),
            (POLICE, case, "report_acknowledgement", POLICE, ids["report"], ack_due, last),
            (OTHER, case, "referral_answer", OTHER, ids["to_other"], other_due, last),
        ],
        key=repr,
    )


def test_discharging_events_update_every_work_read_model(
    app: ReferralApplication, db: Database
) -> None:
    script, ids = scripted_history(app)
    script.record("ReportAcknowledged", at(-1), who=POLICE, report_event_id=ids["report"])
    script.record("PlacementEnded", at(-0.5), who=SHELTER, end_date="2026-11-29")
    script.record(
        "ReferralDeclined", at(-0.2), who=OTHER, referral_event_id=ids["to_other"], reason="full"
    )
    rows = rows_of(db, run(app, db))
    (report,) = rows["le_inbox"]
    assert (report[5], report[6]) == (stored_time(at(-1)), None)
    assert rows["shelter_roster"] == []
    assert [(r[0], r[5], r[7]) for r in rows["referral_inbox"] if r[0] == ids["to_other"]] == [
        (ids["to_other"], "declined", None)
    ]
    assert {(r[0], r[2]) for r in rows["case_deadlines"]} == {
        (NGO, "majority"),
        (NGO, "plan_review"),
    }
    summary = {row[1]: row for row in rows["case_summary"]}
    assert set(summary) == {NGO, POLICE, SHELTER}
    assert summary[NGO][6:11] == (None, None, 1, "majority", "2026-12-01T00:00:00.000000+00:00")
    assert summary[POLICE][9:11] == (None, None)


def test_rebuilt_work_read_models_equal_the_live_ones(
    app: ReferralApplication, db: Database
) -> None:
    script, ids = scripted_history(app)
    script.record("EntryVoided", at(-1), target_event_id=ids["report"], reason="wrong unit")
    projections = run(app, db)
    live = rows_of(db, projections)
    assert live["le_inbox"] == []
    assert "report_to_law_enforcement" in {r[2] for r in live["case_deadlines"]}
    position = rebuild(app, db, projections, swap=False, suffix="_check", batch_size=1000)
    assert position == app.recorder.max_notification_id()
    for projection in projections:
        assert table_rows(db, projection, "_check") == table_rows(db, projection)


def test_no_identifying_value_reaches_a_work_table(app: ReferralApplication, db: Database) -> None:
    scripted_history(app)
    dump = repr(rows_of(db, run(app, db)))
    assert CANARY not in dump
    assert BIRTH_DATE not in dump


def test_work_read_models_apply_the_configured_rules_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(RULES_FILE_VARIABLE, raising=False)
    assert configured_rules() is RULES_BY_COUNTRY
    path = tmp_path / "rules.json"
    path.write_text('{"UA": {"referral_answer": "P7D"}}')
    monkeypatch.setenv(RULES_FILE_VARIABLE, str(path))
    assert configured_rules()["UA"].referral_answer == timedelta(days=7)
    path.write_text('{"UA": {"referral_answer": 7}}')
    with pytest.raises(ValueError, match=re.escape(str(path))):
        work_projections()


# -- over HTTP ----------------------------------------------------------------------------------


@pytest.fixture
def http(database_url: str, tmp_path: Path) -> Iterator[Harness]:
    # A generous read-your-writes wait: runners of other schemas on the same PostgreSQL server
    # share the advisory-lock keys (see the report on projections/runner.py) and can hold ours.
    with harness(database_url, tmp_path, read_wait_seconds=30) as h:
        yield h


def inbox(http: Harness, name: str) -> dict[str, Any]:
    response = http.client.get(f"/inbox?min_position={http.latest()}", headers=http.headers(name))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def append(http: Harness, case_id: str, event_type: str, name: str = "ngo", **kw: Any) -> str:
    """Append at the current version, happening now by the test clock; the new event id."""
    version = http.client.get(f"/cases/{case_id}", headers=http.headers(name)).json()["version"]
    legal_basis = {"legal_basis": STATUTE} if event_type == "ReferralSent" else {}
    response = http.append(
        case_id,
        version=version,
        event_type=event_type,
        payload=example(event_type, **kw),
        name=name,
        occurred_at=http.clock.now.isoformat(),
        **legal_basis,
    )
    assert response.status_code == 201, response.text
    event_id: str = response.json()["event_id"]
    return event_id


def open_case_at(http: Harness, when: datetime) -> str:
    """Open a case (an identification with indicators) by the NGO, identified at `when`."""
    body = {
        "type": "ChildIdentified",
        "occurred_at": when.isoformat(),
        "payload": example("ChildIdentified"),
    }
    response = http.client.post("/cases", json=body, headers=http.headers("ngo"))
    assert response.status_code == 201, response.text
    case_id: str = response.json()["case_id"]
    return case_id


def kinds(body: dict[str, Any]) -> list[tuple[str, bool]]:
    return [(d["kind"], d["overdue"]) for d in body["deadlines"]]


def test_a_report_breach_appears_as_the_clock_moves_and_clears_when_reported(
    http: Harness,
) -> None:
    case_id, _ = http.open_case("ngo")  # identified an hour before NOW, with indicators
    assert kinds(inbox(http, "ngo")) == [("report_to_law_enforcement", False)]
    assert inbox(http, "ngo")["overdue"] == 0
    http.clock.advance(timedelta(hours=23, minutes=1))
    late = inbox(http, "ngo")
    assert kinds(late) == [("report_to_law_enforcement", True)]
    assert late["overdue"] == 1
    assert late["cases"][0]["next_deadline"]["overdue"] is True
    append(http, case_id, "ReportedToLawEnforcement", receiving_unit_agency_id=agency("police"))
    cleared = inbox(http, "ngo")
    assert kinds(cleared) == [("report_acknowledgement", False)]
    assert cleared["overdue"] == 0


def test_an_acknowledgement_breach_shows_in_the_police_inbox_until_acknowledged(
    http: Harness,
) -> None:
    case_id, _ = http.open_case("ngo")
    report_id = append(
        http,
        case_id,
        "ReportedToLawEnforcement",
        receiving_unit_agency_id=agency("police"),
        urgency="urgent",
    )
    police = inbox(http, "police")
    assert [(r["report_event_id"], r["overdue"]) for r in police["reports_to_acknowledge"]] == [
        (report_id, False)
    ]
    assert police["reports_to_acknowledge"][0]["urgency"] == "urgent"
    http.clock.advance(timedelta(hours=4))
    police = inbox(http, "police")
    assert police["reports_to_acknowledge"][0]["overdue"] is True
    assert kinds(police) == [("report_acknowledgement", True)]
    assert kinds(inbox(http, "ngo")) == [("report_acknowledgement", True)]
    append(http, case_id, "ReportAcknowledged", "police", report_event_id=report_id)
    police = inbox(http, "police")
    assert police["reports_to_acknowledge"] == []
    assert police["deadlines"] == []
    assert police["overdue"] == 0
    assert kinds(inbox(http, "ngo")) == []


def test_the_police_inbox_lists_only_reports_to_its_own_unit(http: Harness) -> None:
    first, _ = http.open_case("ngo")
    second, _ = http.open_case("hotline")
    to_police = append(
        http, first, "ReportedToLawEnforcement", receiving_unit_agency_id=agency("police")
    )
    to_police2 = append(
        http,
        second,
        "ReportedToLawEnforcement",
        "hotline",
        receiving_unit_agency_id=agency("police2"),
    )
    reports = {
        name: [r["report_event_id"] for r in inbox(http, name)["reports_to_acknowledge"]]
        for name in ("police", "police2", "ngo", "hotline", "auditor")
    }
    assert reports == {
        "police": [to_police],
        "police2": [to_police2],
        "ngo": [],
        "hotline": [],
        "auditor": [],
    }
    assert [c["case_id"] for c in inbox(http, "police")["cases"]] == [first]


def test_a_referral_waits_in_the_receivers_inbox_until_answered(http: Harness) -> None:
    case_id, _ = http.open_case("ngo", indicators=[], exploitation_types=[])
    respond_by = NOW + timedelta(hours=6)
    referral_id = append(
        http,
        case_id,
        "ReferralSent",
        to_agency_id=agency("ngo2"),
        scope=["services"],
        respond_by=respond_by.isoformat(),
    )
    receiver = inbox(http, "ngo2")
    assert [r["referral_event_id"] for r in receiver["referrals_to_answer"]] == [referral_id]
    pending = receiver["referrals_to_answer"][0]
    assert (pending["from_agency_id"], pending["status"]) == (agency("ngo"), "pending")
    assert pending["due_at"] == pending["respond_by"] == "2026-11-29T18:00:00Z"
    assert kinds(receiver) == [("referral_answer", False)]
    assert receiver["cases"][0]["placement"] is None
    assert kinds(inbox(http, "ngo")) == [("referral_answer", False)]
    http.clock.advance(timedelta(hours=6))  # tokens of the harness live one day
    assert inbox(http, "ngo2")["referrals_to_answer"][0]["overdue"] is True
    append(http, case_id, "ReferralAccepted", "ngo2", referral_event_id=referral_id)
    receiver = inbox(http, "ngo2")
    assert receiver["referrals_to_answer"] == []
    assert [r["referral_event_id"] for r in receiver["referrals_accepted"]] == [referral_id]
    assert receiver["referrals_accepted"][0]["overdue"] is False
    assert kinds(receiver) == []
    assert kinds(inbox(http, "ngo")) == []


def place_with_shelter(http: Harness) -> str:
    case_id, _ = http.open_case("ngo", indicators=[], exploitation_types=[])
    referral_id = append(
        http,
        case_id,
        "ReferralSent",
        to_agency_id=agency("shelter"),
        service="shelter",
        scope=["identification", "placement", "services"],
    )
    append(http, case_id, "ReferralAccepted", "shelter", referral_event_id=referral_id)
    append(
        http,
        case_id,
        "ChildSheltered",
        "shelter",
        shelter_agency_id=agency("shelter"),
        start_date="2026-11-29",
    )
    return case_id


def roster(http: Harness, name: str, shelter: str = "shelter") -> Any:
    return http.client.get(
        f"/shelters/{agency(shelter)}/roster?min_position={http.latest()}",
        headers=http.headers(name),
    )


def test_the_roster_lists_a_placed_child_until_the_placement_ends(http: Harness) -> None:
    case_id = place_with_shelter(http)
    body = roster(http, "shelter").json()
    assert body["shelter_agency_id"] == agency("shelter")
    (child,) = body["children"]
    assert child["case_id"] == case_id
    assert (child["since"], child["placement_type"], child["facility"]) == (
        "2026-11-29",
        "short_term_shelter",
        "Girls' transit home, north wing",
    )
    assert (child["age_band"], child["sex"], child["missing"]) == ("15-17", "female", False)
    assert child["services_delivered"] == 0
    append(http, case_id, "ServiceDelivered", "shelter", provider_agency_id=agency("shelter"))
    assert roster(http, "shelter").json()["children"][0]["services_delivered"] == 1
    append(http, case_id, "PlacementEnded", "shelter", end_date="2026-11-29")
    assert roster(http, "shelter").json()["children"] == []


def test_only_the_shelter_and_auditors_read_its_roster(http: Harness) -> None:
    place_with_shelter(http)
    assert len(roster(http, "shelter").json()["children"]) == 1
    assert len(roster(http, "auditor").json()["children"]) == 1
    for name in ("ngo", "police", "ministry"):
        refused = roster(http, name)
        assert refused.status_code == 403, refused.text
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert refused.json()["type"] == "urn:referral:problem:permission-denied"
    assert roster(http, "ngo", "ngo").json()["children"] == []
    unauthenticated = http.client.get(f"/shelters/{agency('shelter')}/roster")
    assert unauthenticated.status_code == 401
    assert http.client.get("/inbox").status_code == 401


def test_no_identifying_value_reaches_an_inbox_or_a_roster(http: Harness) -> None:
    case_id, _ = http.open_case(
        "ngo", given_name=CANARY, family_name=CANARY, notes=CANARY, birth_date=BIRTH_DATE,
        age_years=17,
    )  # fmt: skip
    append(http, case_id, "ReportedToLawEnforcement", receiving_unit_agency_id=agency("police"))
    referral_id = append(
        http,
        case_id,
        "ReferralSent",
        to_agency_id=agency("shelter"),
        scope=["identification", "placement"],
    )
    append(http, case_id, "ReferralAccepted", "shelter", referral_event_id=referral_id)
    append(http, case_id, "ChildSheltered", "shelter", shelter_agency_id=agency("shelter"))
    bodies = [inbox(http, name) for name in ("ngo", "police", "shelter", "auditor")]
    bodies.append(roster(http, "shelter").json())
    assert "majority" in {d["kind"] for d in bodies[0]["deadlines"]}
    dump = repr(bodies) + repr(rows_of(http.services.db, work_projections()))
    assert CANARY not in dump
    assert BIRTH_DATE not in dump


def test_the_inbox_reads_its_writes_orders_cases_and_bounds_its_lists(http: Harness) -> None:
    quiet, _ = http.open_case("ngo", indicators=[], exploitation_types=[])
    second = open_case_at(http, at(-1))
    first = open_case_at(http, at(-2))
    body = inbox(http, "ngo")
    assert body["position"] >= http.latest()
    assert [c["case_id"] for c in body["cases"]] == [first, second, quiet]
    assert body["cases"][2]["next_deadline"] is None
    limited = http.client.get("/inbox?limit=2", headers=http.headers("ngo")).json()
    assert len(limited["deadlines"]) == 2
    assert [c["case_id"] for c in limited["cases"]] == [first, second]
    assert http.client.get("/inbox?limit=0", headers=http.headers("ngo")).status_code == 422


# -- at scale: lists read in index order, planner statistics kept ------------------------------


class RecordingTx:
    """A transaction that remembers each query it is asked, then answers it as usual."""

    def __init__(self, tx: Any) -> None:
        self.tx = tx
        self.queries: list[tuple[str, tuple[Any, ...]]] = []

    def fetchall(self, sql: str, params: Any = ()) -> list[tuple[Any, ...]]:
        self.queries.append((sql, tuple(params)))
        return list(self.tx.fetchall(sql, params))

    def fetchone(self, sql: str, params: Any = ()) -> tuple[Any, ...] | None:
        self.queries.append((sql, tuple(params)))
        row = self.tx.fetchone(sql, params)
        return None if row is None else tuple(row)


def busy_agency_rows(count: int) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]:
    """`count` open cases with a deadline for the NGO, each with a deadline row; as many for
    the other agency, only three of them with a deadline."""
    summary: list[tuple[Any, ...]] = []
    deadlines: list[tuple[Any, ...]] = []
    for n in range(2 * count):
        agency_id = NGO if n < count else OTHER
        case_id = str(UUID(int=n + 1))
        due = stored_time(at(n % 500))
        dated = agency_id == NGO or n < count + 3
        kind = "report_to_law_enforcement"
        summary.append(
            (case_id, agency_id, "lead", "identified", agency_id, 0, None, None, 0)
            + ((kind, due) if dated else (None, None))
            + (3, n + 10, STAMP)
        )
        deadlines.append((agency_id, case_id, kind, agency_id, None, due, n))
    return summary, deadlines


def sorts_rows(db: Database, sql: str, params: tuple[Any, ...]) -> bool:
    """Whether the database sorts the rows of `sql` rather than reading them in index order."""
    with db.transaction() as tx:
        if isinstance(db, PostgresDatabase):
            plan = "\n".join(str(r[0]) for r in tx.fetchall("EXPLAIN " + sql, params))
            return "Sort" in plan
        plan = "\n".join(str(r[-1]) for r in tx.fetchall("EXPLAIN QUERY PLAN " + sql, params))
        return "TEMP B-TREE" in plan


def has_index(db: Database, name: str) -> bool:
    with db.transaction() as tx:
        if isinstance(db, PostgresDatabase):
            row = tx.fetchone("SELECT to_regclass(?)", (f"{db.schema}.{name}",))
            return bool(row and row[0])
        return tx.fetchone("SELECT 1 FROM sqlite_master WHERE name = ?", (name,)) is not None


def has_statistics(db: Database, table: str) -> bool:
    with db.transaction() as tx:
        if isinstance(db, PostgresDatabase):
            row = tx.fetchone(
                "SELECT COUNT(*) FROM pg_stats WHERE schemaname = ? AND tablename = ?",
                (db.schema, table),
            )
            return bool(row and row[0])
        if tx.fetchone("SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'") is None:
            return False
        return tx.fetchone("SELECT tbl FROM sqlite_stat1 WHERE tbl = ?", (table,)) is not None


def test_an_inbox_reads_each_list_in_index_order_however_busy_the_agency(
    app: ReferralApplication, db: Database
) -> None:
    projections = work_projections(RULES_BY_COUNTRY)
    ProjectionRunner(app, db, projections)  # creates the tables
    with db.transaction() as tx:  # as an earlier release left it
        tx.execute("CREATE INDEX case_summary_by_agency ON case_summary (agency_id, closed)")
    assert has_index(db, "case_summary_by_agency")
    ProjectionRunner(app, db, projections)  # a start drops what this release replaced
    assert not has_index(db, "case_summary_by_agency")
    assert has_index(db, "case_summary_open_dated")
    summary, deadlines = busy_agency_rows(2000)
    with db.transaction() as tx:
        tx.insert_rows("case_summary", SUMMARY_COLUMNS, summary)
        tx.insert_rows("case_deadlines", DEADLINE_COLUMNS, deadlines)
    refresh_statistics(db, projections)
    now = stored_time(at(4.5))
    with db.transaction() as tx:
        recording = RecordingTx(tx)
        dated = open_cases(recording, NGO, 10)  # type: ignore[arg-type]
        mostly_undated = open_cases(recording, OTHER, 10)  # type: ignore[arg-type]
        listed = deadlines_of(recording, NGO, 10)  # type: ignore[arg-type]
        overdue = count_overdue(recording, NGO, now)  # type: ignore[arg-type]
    assert [c.next_deadline_at for c in dated] == sorted(c.next_deadline_at or "" for c in dated)
    assert [c.next_deadline_at is None for c in mostly_undated] == [False] * 3 + [True] * 7
    newest = [c.position for c in mostly_undated[3:]]
    assert newest == list(range(2 * 2000 + 9, 2 * 2000 + 2, -1))
    assert [d.due_at for d in listed] == sorted(d[5] for d in deadlines if d[0] == NGO)[:10]
    assert overdue == sum(1 for d in deadlines if d[0] == NGO and d[5] <= now)
    lists = [(sql, params) for sql, params in recording.queries if "ORDER BY" in sql]
    assert len(lists) == 4  # dated cases (twice), undated cases, deadlines
    for sql, params in lists:
        assert not sorts_rows(db, sql, params), sql


def test_a_runner_refreshes_planner_statistics_after_a_large_catch_up(
    app: ReferralApplication, db: Database
) -> None:
    scripted_history(app)
    projections = work_projections(RULES_BY_COUNTRY)
    runner = ProjectionRunner(app, db, projections, batch_size=1000)
    runner.maintain_after = 10_000
    assert runner.catch_up() > 0
    assert not has_statistics(db, "case_summary")  # fewer entries than `maintain_after`
    scripted_history(app)
    runner.maintain_after = runner.unmaintained + 1
    assert runner.catch_up() > 0
    assert runner.refreshing is not None  # in a thread of its own: batches go on meanwhile
    runner.refreshing.join(30)
    assert has_statistics(db, "case_summary")
    assert has_statistics(db, "case_deadlines")
    assert runner.unmaintained == 0


def test_a_rebuild_leaves_planner_statistics(app: ReferralApplication, db: Database) -> None:
    scripted_history(app)
    projections = work_projections(RULES_BY_COUNTRY)
    rebuild(app, db, projections, swap=False, suffix="_check")
    assert has_statistics(db, "case_summary_check")
    assert not has_statistics(db, "case_summary")
    rebuild(app, db, projections)
    assert has_statistics(db, "case_summary")
    assert has_statistics(db, "case_deadlines")
    if isinstance(db, PostgresDatabase):  # vacuumed too: no dead versions, visibility map set
        with db.reading() as tx:
            row = tx.fetchone(
                "SELECT last_vacuum IS NOT NULL FROM pg_stat_user_tables "
                "WHERE schemaname = ? AND relname = 'case_summary'",
                (db.schema,),
            )
        assert row == (True,)
