"""National and hotline statistics and the CTDC export, on SQLite and PostgreSQL.

The read models against a scripted history (exact rows), rebuilt equal to live; then, through
the HTTP API over 80 synthetic cases: small cells suppressed and the rest equal to counts taken
from the domain, CSV equal to JSON, who may read what, a hotline's own contacts, and an export
that is k-anonymous and carries no name, case id or exact date.
"""

from __future__ import annotations

import csv
import io
import re
import time
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import Any
from uuid import UUID, uuid4

import pytest

from adapters.auth import issue_token
from projections.db import PostgresDatabase, SqliteDatabase
from projections.runner import ProjectionRunner, rebuild
from projections.statistics import (
    HotlineStatistics,
    MonthRange,
    count_cases,
    count_contacts,
    statistics_projections,
)
from projections.stats_export import COLUMNS, QUASI_IDENTIFIER_COLUMNS
from referral_core import synthetic
from referral_core.application import ReferralApplication
from referral_core.case import Case
from referral_core.directory import Directory
from referral_core.disclosure import TOTAL, recoverable
from referral_core.vocab import AgencyKind, Role
from tests.conftest import BACKENDS
from tests.support import postgres
from tests.support.api import SYSTEM, Harness, harness
from tests.support.builders import HOTLINE, NGO, NOW, POLICE, actor, envelope, example
from tests.support.readmodels import table_rows

THRESHOLD = 5
K = 11
CANARY_GIVEN = "Zebedeecanary"
CANARY_FAMILY = "Quillcanaryson"
CANARY_BIRTH = "2011-02-03"
Database = SqliteDatabase | PostgresDatabase


def catch_up(runner: ProjectionRunner, timeout: float = 60.0) -> None:
    """Apply the whole log. A run can return early while another process holds the read
    models' PostgreSQL advisory lock (it is per database, not per schema), so wait for it."""
    target = runner.app.recorder.max_notification_id() or 0
    deadline = time.monotonic() + timeout
    while min(runner.positions().values()) < target:
        assert time.monotonic() < deadline, "the read models did not catch up"
        if runner.catch_up() == 0:
            time.sleep(0.05)


# -- a scripted history ---------------------------------------------------------------------------


def _register(d: Directory, agency_id: str, kind: AgencyKind) -> None:
    d.register_agency(UUID(agency_id), kind, "UA", f"Scripted {kind.value}", SYSTEM)


def _at(text: str) -> datetime:
    return datetime.fromisoformat(text)


@dataclass
class Script:
    app: ReferralApplication

    def open(self, event_type: str, who: str, at: str, **payload: Any) -> tuple[str, str]:
        env = envelope(actor(who), occurred_at=_at(at))
        result = self.app.open_case(
            event_type=event_type, payload=example(event_type, **payload), envelope=env
        )
        return str(result.case_id), str(env.event_id)

    def add(self, case_id: str, event_type: str, who: str, at: str, **payload: Any) -> str:
        env = envelope(actor(who), occurred_at=_at(at), legal_basis="Scripted statute s.1")
        self.app.append(
            UUID(case_id),
            expected_version=None,
            event_type=event_type,
            payload=payload,
            envelope=env,
        )
        return str(env.event_id)


@dataclass(frozen=True)
class Scripted:
    returnee: str
    first_contact: str
    cleared: str
    enquiry: str
    enquiry_contact: str


def script_history(app: ReferralApplication) -> Scripted:
    """Three cases: a returnee with two contacts (one voided), a boy cleared, an enquiry."""
    app.change_directory(partial(_register, agency_id=HOTLINE, kind=AgencyKind.HOTLINE))
    app.change_directory(partial(_register, agency_id=NGO, kind=AgencyKind.NGO))
    app.change_directory(partial(_register, agency_id=POLICE, kind=AgencyKind.LAW_ENFORCEMENT))
    s = Script(app)
    returnee, first = s.open(
        "ContactReceived",
        HOTLINE,
        "2026-03-31T23:30:00-02:00",  # April in UTC
        topics=["missing_child_abroad", "return_assistance"],
        summary=f"{CANARY_GIVEN} left for a job abroad.",
    )
    second = s.add(
        returnee,
        "ContactReceived",
        HOTLINE,
        "2026-04-02T09:00:00+00:00",
        channel="web_form",
        anonymous=False,
        caller_type="parent",
        caller_name=f"{CANARY_FAMILY} senior",
        topics=["report_of_exploitation"],
        imminent_danger=True,
    )
    s.add(
        returnee,
        "ChildIdentified",
        HOTLINE,
        "2026-04-03T10:00:00+00:00",
        **example(
            "ChildIdentified",
            country="UA",
            nationality="MD",
            exploitation_types=["sexual_exploitation", "forced_labour"],
            given_name=CANARY_GIVEN,
            family_name=CANARY_FAMILY,
            birth_date="2010-06-01",
        ),
    )
    s.add(
        returnee,
        "ExploitationEpisodeRecorded",
        HOTLINE,
        "2026-04-04T10:00:00+00:00",
        **example("ExploitationEpisodeRecorded", exploitation_types=["domestic_servitude"]),
    )
    s.add(
        returnee,
        "EntryVoided",
        HOTLINE,
        "2026-04-05T10:00:00+00:00",
        target_event_id=second,
        reason="recorded on the wrong case",
    )
    s.add(
        returnee,
        "ReportedToLawEnforcement",
        HOTLINE,
        "2026-04-05T11:00:00+00:00",
        **example("ReportedToLawEnforcement", receiving_unit_agency_id=POLICE),
    )
    cleared, identification = s.open(
        "ChildIdentified",
        NGO,
        "2026-05-10T08:00:00+00:00",
        sex="male",
        age_years=4,
        nationality=None,
        exploitation_types=[],
        indicators=[],
        country="UA",
    )
    s.add(
        cleared,
        "EntryCorrected",
        NGO,
        "2026-05-11T08:00:00+00:00",
        target_event_id=identification,
        reason="age entered wrongly",
        corrected_values={"age_years": 7},
    )
    s.add(
        cleared,
        "IdentificationDecisionMade",
        NGO,
        "2026-05-12T08:00:00+00:00",
        decision="not_a_victim",
        deciding_body="Scripted panel",
        reasons="No exploitation found.",
    )
    s.add(cleared, "CaseClosed", NGO, "2026-05-13T08:00:00+00:00", reason="not_a_victim")
    enquiry, enquiry_contact = s.open(
        "ContactReceived",
        HOTLINE,
        "2026-05-20T08:00:00+00:00",
        channel="email",
        caller_type="child",
        topics=["safe_migration"],
        child_age_years=17,
    )
    return Scripted(returnee, first, cleared, enquiry, enquiry_contact)


def test_read_models_hold_exactly_the_scripted_facts(
    app: ReferralApplication, db: Database
) -> None:
    ids = script_history(app)
    national, hotline = statistics_projections()
    catch_up(ProjectionRunner(app, db, [national, hotline], batch_size=4))
    returnee = ("2026-04", "reported", "female", "15-17", "MD", "UA", "undecided", "open", HOTLINE)
    cleared = ("2026-05", "closed", "male", "6-11", "unknown", "UA", "not_a_victim",
               "not_a_victim", NGO)  # fmt: skip
    assert table_rows(db, national) == {
        "stats_case_facts": sorted(
            [
                (ids.returnee, "2026-04", "reported", "female", "15-17", "MD", HOTLINE, "UA",
                 "undecided", 0, "open", "domestic_servitude,forced_labour,sexual_exploitation",
                 "false_promises,withholds_documents", "friend"),
                (ids.cleared, "2026-05", "closed", "male", "6-11", "unknown", NGO, "UA",
                 "not_a_victim", 1, "not_a_victim", "", "", ""),
            ],
            key=repr,
        ),
        "stats_case_exploitation": sorted(
            [
                (ids.returnee, "domestic_servitude", *returnee),
                (ids.returnee, "forced_labour", *returnee),
                (ids.returnee, "sexual_exploitation", *returnee),
                (ids.cleared, "unspecified", *cleared),
            ],
            key=repr,
        ),
        "stats_agency_kinds": sorted(
            [(HOTLINE, "hotline"), (NGO, "ngo"), (POLICE, "law_enforcement")], key=repr
        ),
    }  # fmt: skip
    assert table_rows(db, hotline) == {
        "stats_contact_facts": sorted(
            [
                (ids.first_contact, ids.returnee, "2026-04", "phone", 1, "relative", "15-17", 0,
                 HOTLINE),
                (ids.enquiry_contact, ids.enquiry, "2026-05", "email", 1, "child", "15-17", 0,
                 HOTLINE),
            ],
            key=repr,
        ),
        "stats_contact_topics": sorted(
            [
                (ids.first_contact, ids.returnee, "missing_child_abroad"),
                (ids.first_contact, ids.returnee, "return_assistance"),
                (ids.enquiry_contact, ids.enquiry, "safe_migration"),
            ],
            key=repr,
        ),
    }  # fmt: skip
    stored = repr([table_rows(db, p) for p in (national, hotline)])
    for secret in (CANARY_GIVEN, CANARY_FAMILY, "2010-06-01", "2026-04-03"):
        assert secret not in stored


def test_counts_by_dimension_on_the_scripted_history(
    app: ReferralApplication, db: Database
) -> None:
    script_history(app)
    catch_up(ProjectionRunner(app, db, statistics_projections()))
    with db.transaction() as tx:
        assert count_cases(tx, ["exploitation_type"]) == {
            ("domestic_servitude",): 1,
            ("forced_labour",): 1,
            ("sexual_exploitation",): 1,
            ("unspecified",): 1,
        }
        assert count_cases(tx, ["agency_kind", "age_band"]) == {
            ("hotline", "15-17"): 1,
            ("ngo", "6-11"): 1,
        }
        assert count_cases(tx, ["month"], MonthRange("2026-05", "2026-05")) == {("2026-05",): 1}
        assert count_contacts(tx, ["topic", "month"], agency_id=HOTLINE) == {
            ("missing_child_abroad", "2026-04"): 1,
            ("return_assistance", "2026-04"): 1,
            ("safe_migration", "2026-05"): 1,
        }
        assert count_contacts(tx, ["channel", "anonymous"]) == {
            ("phone", "yes"): 1,
            ("email", "yes"): 1,
        }
        assert count_contacts(tx, ["channel"], agency_id=NGO) == {}


def test_rebuilt_statistics_equal_live_ones(app: ReferralApplication, db: Database) -> None:
    script_history(app)
    synthetic.seed_directory(app)
    synthetic.generate_cases(app, cases=12, seed=5, now=NOW - timedelta(minutes=1))
    projections = statistics_projections()
    catch_up(ProjectionRunner(app, db, projections, batch_size=29))
    live = {p.name: table_rows(db, p) for p in projections}
    assert all(rows for rows in live["national_statistics"].values())
    rebuild(app, db, projections, swap=False, suffix="_check", batch_size=1000)
    for projection in projections:
        assert table_rows(db, projection, "_check") == live[projection.name]


def test_the_hotline_model_ignores_events_that_change_no_contact(
    app: ReferralApplication, db: Database
) -> None:
    ids = script_history(app)
    runner = ProjectionRunner(app, db, [HotlineStatistics()])
    catch_up(runner)
    before = table_rows(db, HotlineStatistics())
    Script(app).add(
        ids.returnee,
        "ServiceDelivered",
        HOTLINE,
        "2026-04-06T10:00:00+00:00",
        **example("ServiceDelivered", provider_agency_id=HOTLINE),
    )
    catch_up(runner)
    assert table_rows(db, HotlineStatistics()) == before


# -- the HTTP API over synthetic cases ------------------------------------------------------------


@dataclass(frozen=True)
class World:
    http: Harness
    case_ids: tuple[UUID, ...]
    contact_cases: tuple[UUID, ...]
    demo_hotline_token: str

    @property
    def app(self) -> ReferralApplication:
        return self.http.services.app

    def get(self, path: str, name: str = "ministry", **headers: str) -> Any:
        sep = "&" if "?" in path else "?"
        url = f"{path}{sep}min_position={self.http.latest()}"
        return self.http.client.get(url, headers=self.http.headers(name, **headers))

    def cases(self) -> list[Case]:
        return [self.app.get_case(case_id) for case_id in self.case_ids]


def _harness_contact(http: Harness, index: int) -> UUID:
    topics = ["safe_migration"] if index == 0 else ["safe_migration", "employment_abroad"]
    case_id, _ = http.open_case("hotline", "ContactReceived", topics=topics, channel="phone")
    return UUID(case_id)


@pytest.fixture(scope="module", params=BACKENDS)
def world(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[World]:
    """80 synthetic cases, a canary case, and six contacts of the harness's own hotline."""
    schema = None
    base = ""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('stats') / 'referral.sqlite'}"
    else:
        base = str(request.getfixturevalue("postgres_url"))
        schema = f"t_{uuid4().hex[:16]}"
        postgres.create_schema(base, schema)
        url = f"{base}?schema={schema}"
    data_dir: Path = tmp_path_factory.mktemp("data")
    # The statistics read models are brought up to date once, after the data is in: no runner
    # thread competes with the generator, and the other read models are not kept at all.
    with harness(url, data_dir, read_wait_seconds=0.25, run_projections=False) as http:
        app = http.services.app
        http.services.runner = ProjectionRunner(app, http.services.db, statistics_projections())
        synthetic.seed_directory(app)
        summary = synthetic.generate_cases(app, cases=80, seed=11, now=NOW - timedelta(minutes=1))
        canary, _ = http.open_case(
            "ngo", given_name=CANARY_GIVEN, family_name=CANARY_FAMILY, birth_date=CANARY_BIRTH
        )
        contacts = tuple(_harness_contact(http, index) for index in range(6))
        user = synthetic.demo_user_id("ua-hotline", Role.CASEWORKER)
        _id, token = issue_token(app, user, ttl=timedelta(days=1), actor=SYSTEM)
        catch_up(http.services.runner)
        yield World(http, (*summary.case_ids, UUID(canary)), contacts, token)
    if schema is not None:
        postgres.drop_schema(base, schema)


def _band(age: int | None) -> str:
    if age is None:
        return "unknown"
    edges = [(5, "0-5"), (11, "6-11"), (14, "12-14"), (17, "15-17")]
    return next((band for edge, band in edges if age <= edge), "18+")


def expected_case_counts(world: World, by: Sequence[str]) -> Counter[tuple[str, ...]]:
    """Counts taken from the domain's case states, not from the read models."""
    kinds = {a: v["kind"] for a, v in world.app.directory().agencies.items()}
    counts: Counter[tuple[str, ...]] = Counter()
    for case in world.cases():
        if case.identified_at is None:
            continue
        month = datetime.fromisoformat(case.identified_at).astimezone(UTC).strftime("%Y-%m")
        values: dict[str, list[str]] = {
            "month": [month],
            "stage": [case.stage],
            "sex": [case.child["sex"]],
            "age_band": [_band(case.child["age_years"])],
            "nationality": [case.child["nationality"] or "unknown"],
            "exploitation_type": list(case.exploitation_types) or ["unspecified"],
            "agency_kind": [kinds.get(case.lead_agency_id, "unknown")],
        }
        keys: list[tuple[str, ...]] = [()]
        for dimension in by:
            keys = [(*key, value) for key in keys for value in values[dimension]]
        counts.update(keys)
    return counts


def _items(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    return [*body["cells"], *body["margins"]]


def _key(item: Mapping[str, Any], by: Sequence[str]) -> tuple[str, ...]:
    return tuple(str(item[d]) for d in by)


def check_published(body: Mapping[str, Any], expected: Counter[tuple[str, ...]]) -> None:
    by = body["by"]
    for item in _items(body):
        key = _key(item, by)
        if item["suppressed"]:
            assert item["count"] is None
            continue
        count = item["count"]
        assert count == 0 or count >= THRESHOLD, item
        concrete = [i for i, v in enumerate(key) if v != TOTAL]
        true = sum(n for k, n in expected.items() if all(k[i] == key[i] for i in concrete))
        assert count == true, item
    view = {_key(i, by): i["count"] for i in _items(body)}
    assert recoverable(view) == {}


@pytest.mark.parametrize(
    "by",
    [
        ["month"],
        ["month", "sex"],
        ["age_band", "exploitation_type"],
        ["agency_kind", "stage", "sex"],
        ["nationality"],
    ],
)
def test_stats_publish_zero_or_at_least_the_threshold_and_match_the_domain(
    world: World, by: list[str]
) -> None:
    response = world.get(f"/stats?by={','.join(by)}")
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["threshold"] == THRESHOLD
    assert body["by"] == by
    expected = expected_case_counts(world, by)
    check_published(body, expected)
    assert {_key(c, by) for c in body["cells"]} == set(expected)
    grand = body["margins"][-1]
    assert all(grand[d] == TOTAL for d in by)
    if grand["count"] is not None:
        assert grand["count"] == sum(expected.values())
    unit = "case-exploitation type pairs" if "exploitation_type" in by else "cases"
    assert body["unit"] == unit


def test_stats_suppress_something_and_publish_something(world: World) -> None:
    body = world.get("/stats?by=month,sex").json()
    flags = {item["suppressed"] for item in _items(body)}
    assert flags == {True, False}


def _csv_rows(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def test_csv_matches_json(world: World) -> None:
    path = "/stats?by=month,age_band&from=2026-01"
    body = world.get(path).json()
    as_json = [
        {k: "" if v is None else str(v).lower() if isinstance(v, bool) else str(v)
         for k, v in item.items()}
        for item in _items(body)
    ]  # fmt: skip
    for response in (world.get(path + "&format=csv"), world.get(path, Accept="text/csv")):
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert _csv_rows(response.text) == as_json
    assert all(c["month"] >= "2026-01" for c in body["cells"])
    assert world.get(path + "&format=json", Accept="text/csv").json() == body


def test_month_ranges_and_bad_requests(world: World) -> None:
    body = world.get("/stats?by=month&from=2026-03&to=2026-05").json()
    assert {c["month"] for c in body["cells"]} <= {"2026-03", "2026-04", "2026-05"}
    assert body["from"] == "2026-03"
    bad = [
        "/stats?by=month&from=2026-05&to=2026-03",
        "/stats?by=month&from=2026-13",
        "/stats?by=name",
        "/stats?by=month,month",
        "/stats?by=",
        "/stats?by=month,sex,stage,age_band,nationality",
        "/stats/hotline?by=sex",
        "/stats?by=month&format=xml",
    ]
    for path in bad:
        response = world.get(path)
        assert response.status_code == 422, path
        assert response.headers["content-type"].startswith("application/problem+json")


@pytest.mark.parametrize(
    ("path", "allowed"),
    [
        ("/stats", {"ministry", "coordinator", "auditor"}),
        ("/stats/hotline", {"ministry", "coordinator", "auditor", "hotline"}),
        ("/exports/ctdc.csv", {"ministry", "auditor"}),
    ],
)
def test_who_may_read_statistics(world: World, path: str, allowed: set[str]) -> None:
    for name in ("ngo", "shelter", "police", "hotline", "guardian", *allowed):
        status = world.http.client.get(path, headers=world.http.headers(name)).status_code
        assert status == (200 if name in allowed else 403), (path, name)
    assert world.http.client.get(path).status_code == 401


def _contacts_by(world: World, agency_id: str | None) -> int:
    total = 0
    for case in world.cases() + [world.app.get_case(c) for c in world.contact_cases]:
        for entry in case.entries.values():
            if entry["type"] == "ContactReceived" and not entry["voided"]:
                total += agency_id is None or entry["agency_id"] == agency_id
    return total


def test_a_hotline_sees_only_its_own_contacts(world: World) -> None:
    own = world.get("/stats/hotline?by=topic", "hotline").json()
    assert own["scope"] == "agency"
    assert own["unit"] == "contact-topic pairs"
    assert {(c["topic"], c["count"]) for c in own["cells"]} == {
        ("safe_migration", 6),
        ("employment_abroad", 5),
    }
    by_channel = world.get("/stats/hotline?by=channel,month", "hotline").json()
    assert by_channel["margins"][-1]["count"] == 6
    demo = world.http.client.get(
        f"/stats/hotline?by=channel&min_position={world.http.latest()}",
        headers={"Authorization": f"Bearer {world.demo_hotline_token}"},
    ).json()
    ua_hotline = str(synthetic.demo_agency("ua-hotline").agency_id)
    assert demo["margins"][-1]["count"] == _contacts_by(world, ua_hotline) > THRESHOLD
    everything = world.get("/stats/hotline?by=age_group,channel").json()
    assert everything["scope"] == "all"
    assert everything["margins"][-1]["count"] == _contacts_by(world, None)
    for body in (own, by_channel, demo, everything):
        for item in _items(body):
            assert item["count"] is None or item["count"] == 0 or item["count"] >= THRESHOLD
        assert recoverable({_key(i, body["by"]): i["count"] for i in _items(body)}) == {}


def test_the_ctdc_export_is_k_anonymous_and_identifies_nobody(world: World) -> None:
    response = world.get("/exports/ctdc.csv", "auditor")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"] == (
        'attachment; filename="ctdc-export-2026-11-29.csv"'
    )
    assert response.headers["x-k-anonymity"] == str(K)
    rows = _csv_rows(response.text)
    assert rows, "the export must not be empty"
    assert list(rows[0]) == list(COLUMNS)
    classes = Counter(tuple(r[c] for c in QUASI_IDENTIFIER_COLUMNS) for r in rows)
    assert min(classes.values()) >= K
    eligible = [
        c for c in world.cases() if c.identified_at and c.identification_decision != "not_a_victim"
    ]
    assert len(rows) + int(response.headers["x-records-withheld"]) == len(eligible)
    assert sorted(int(r["exportRow"]) for r in rows) == list(range(1, len(rows) + 1))
    text = response.text
    for secret in (CANARY_GIVEN, CANARY_FAMILY, CANARY_BIRTH, *map(str, world.case_ids)):
        assert secret not in text
    assert re.search(r"\d{4}-\d{2}-\d{2}|\d{2}:\d{2}", text) is None
    assert {r["yearOfRegistration"] for r in rows} <= {"2025", "2026", "(older)"}


def test_the_export_is_the_same_rows_in_another_order(world: World) -> None:
    def rows() -> list[tuple[str, ...]]:
        found = _csv_rows(world.get("/exports/ctdc.csv").text)
        return sorted(tuple(v for k, v in r.items() if k != "exportRow") for r in found)

    assert rows() == rows()


def test_read_your_writes_times_out_as_a_problem(world: World) -> None:
    response = world.http.client.get(
        "/stats?min_position=999999999", headers=world.http.headers("ministry")
    )
    assert response.status_code == 504
    assert response.json()["type"] == "urn:referral:problem:read-model-behind"


@pytest.mark.parametrize("seconds", [0.0, 300.0])
def test_a_counted_table_is_served_again_until_the_reader_asks_for_newer(
    database_url: str, tmp_path: Path, seconds: float
) -> None:
    with harness(
        database_url, tmp_path, run_projections=False, stats_cache_seconds=seconds
    ) as http:
        runner = ProjectionRunner(http.services.app, http.services.db, statistics_projections())
        http.services.runner = runner
        path = "/stats/hotline?by=channel"

        def published() -> tuple[int, int]:
            body = http.client.get(path, headers=http.headers("hotline")).json()
            return body["margins"][-1]["count"], body["position"]

        for index in range(THRESHOLD):
            _harness_contact(http, index)
        catch_up(runner)
        first = published()
        assert first == (THRESHOLD, http.latest())
        _harness_contact(http, THRESHOLD)
        catch_up(runner)
        if seconds:  # the read models moved, but the table is recent: served again
            assert published() == first
        else:
            assert published() == (THRESHOLD + 1, http.latest())
        fresh = http.client.get(
            f"{path}&min_position={http.latest()}", headers=http.headers("hotline")
        ).json()
        assert (fresh["margins"][-1]["count"], fresh["position"]) == (THRESHOLD + 1, http.latest())
        assert published() == (THRESHOLD + 1, http.latest())
