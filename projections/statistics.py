"""National and hotline statistics: de-identified facts per case and per contact, and their counts.

Two read models, built from the log, holding nothing that identifies a child: no name, no birth
date, no exact date (months only, `YYYY-MM` in UTC), ages only as bands (`disclosure.age_band`
of the age in years as recorded). The case id and the contact's event id are kept as row keys,
so a later event can update its row; they are never published.

`national_statistics`:
- `stats_case_facts`: one row per identified case (one with a `ChildIdentified` in effect):
  month of identification, current stage, sex, age band, nationality, lead agency, country of
  identification, identification decision (`undecided` before one), closure reason (`open`
  while open), and, for the export, its exploitation types, means of control and recruiter
  relations (sorted, comma-separated; the last two from `ExploitationEpisodeRecorded`).
- `stats_case_exploitation`: one row per (case, exploitation type), with the case's dimensions
  repeated so a count by type reads one table; a case with none has one row `unspecified`.
  Counted by exploitation type, a case with two types counts once under each, so such a table
  counts (case, type) pairs and its totals are sums of pairs.
- `stats_agency_kinds`: agency id -> kind, from the directory's `AgencyRegistered` events; the
  lead agency's kind is joined at query time (`unknown` for an agency not registered).

`hotline_statistics`:
- `stats_contact_facts`: one row per `ContactReceived` in effect (a voided one is gone, a
  corrected one counts as corrected): month, channel, anonymous, caller type, child's age group,
  imminent danger, and the agency that recorded it.
- `stats_contact_topics`: one row per (contact, topic); counted by topic, a contact with two
  topics counts once under each.

Rows depend only on the log, never on the wall clock, so a rebuild gives the same rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, fields
from datetime import UTC, datetime
from typing import Any, ClassVar

from projections.base import CaseRowsProjection, Change, Index, Projection
from projections.db import Row, Tx
from referral_core.case import Case, CaseEvent
from referral_core.disclosure import UNKNOWN, Key, age_band

AGENCY_REGISTERED = "Directory.AgencyRegistered"
CASE_COLUMNS: tuple[str, ...] = (
    "month",
    "stage",
    "sex",
    "age_band",
    "nationality",
    "country",
    "decision",
    "closure_reason",
    "lead_agency_id",
)
"""The dimensions of a case that statistics group by (the lead agency for its kind)."""
CONTACT = "ContactReceived"
EPISODE = "ExploitationEpisodeRecorded"
ENTRY_CHANGES = frozenset({CONTACT, "EntryCorrected", "EntryVoided"})
UNSPECIFIED = "unspecified"
UNDECIDED = "undecided"
OPEN = "open"


def month_of(moment: str) -> str:
    """The UTC month (YYYY-MM) of an ISO 8601 time."""
    parsed = datetime.fromisoformat(moment)
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return parsed.astimezone(UTC).strftime("%Y-%m")


def _joined(values: Sequence[str] | set[str]) -> str:
    return ",".join(sorted(set(values)))


# -- facts of one case ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFacts:
    """What the statistics keep of one identified case; the field order is the table's."""

    case_id: str
    month: str
    stage: str
    sex: str
    age_band: str
    nationality: str
    lead_agency_id: str
    country: str
    decision: str
    closed: int
    closure_reason: str
    exploitation_types: str
    means_of_control: str
    recruiter_relations: str

    def row(self) -> tuple[Any, ...]:
        return astuple(self)

    def dimensions(self) -> tuple[str, ...]:
        """The values of `CASE_COLUMNS`."""
        return tuple(str(getattr(self, column)) for column in CASE_COLUMNS)

    @property
    def types(self) -> list[str]:
        return self.exploitation_types.split(",") if self.exploitation_types else [UNSPECIFIED]


def _effective_entries(case: Case, event_type: str) -> list[tuple[str, dict[str, Any]]]:
    """The event ids and effective payloads of the case's entries of a type, not voided."""
    found: list[tuple[str, dict[str, Any]]] = []
    for event_id, entry in case.entries.items():
        if entry["type"] != event_type or entry["voided"]:
            continue
        payload = case.effective_payload(event_id)
        if payload is not None:
            found.append((event_id, payload))
    return found


def case_facts(case: Case) -> CaseFacts | None:
    """The case's statistical facts; None while no identification is in effect."""
    if case.identified_at is None:
        return None
    episodes = [payload for _id, payload in _effective_entries(case, EPISODE)]
    child = case.child
    return CaseFacts(
        case_id=str(case.id),
        month=month_of(case.identified_at),
        stage=case.stage,
        sex=str(child.get("sex") or UNKNOWN),
        age_band=age_band(child.get("age_years")),
        nationality=str(child.get("nationality") or UNKNOWN),
        lead_agency_id=case.lead_agency_id,
        country=case.country or UNKNOWN,
        decision=case.identification_decision or UNDECIDED,
        closed=int(case.closed),
        closure_reason=(case.closure_reason or UNKNOWN) if case.closed else OPEN,
        exploitation_types=_joined(case.exploitation_types),
        means_of_control=_joined({m for e in episodes for m in e.get("means_of_control", [])}),
        recruiter_relations=_joined({str(e.get("recruiter_relation", UNKNOWN)) for e in episodes}),
    )


# -- facts of one contact -------------------------------------------------------------------------


@dataclass(frozen=True)
class ContactFacts:
    """What the statistics keep of one contact; the field order is the table's."""

    event_id: str
    case_id: str
    month: str
    channel: str
    anonymous: int
    caller_type: str
    age_group: str
    imminent_danger: int
    hotline_agency_id: str
    topics: tuple[str, ...]

    def row(self) -> tuple[Any, ...]:
        return astuple(self)[:-1]


def contact_facts(case: Case) -> list[ContactFacts]:
    """The statistical facts of each contact of the case in effect, in the order recorded."""
    found: list[ContactFacts] = []
    for event_id, payload in _effective_entries(case, CONTACT):
        occurred_at = case.occurred_at_of(event_id)
        if occurred_at is None:
            continue
        found.append(
            ContactFacts(
                event_id=event_id,
                case_id=str(case.id),
                month=month_of(occurred_at),
                channel=str(payload["channel"]),
                anonymous=int(bool(payload["anonymous"])),
                caller_type=str(payload["caller_type"]),
                age_group=age_band(payload.get("child_age_years")),
                imminent_danger=int(bool(payload.get("imminent_danger", False))),
                hotline_agency_id=case.entries[event_id]["agency_id"],
                topics=tuple(sorted({str(t) for t in payload["topics"]})),
            )
        )
    return found


# -- the read models ------------------------------------------------------------------------------


class NationalStatistics(CaseRowsProjection):
    name = "national_statistics"
    tables: ClassVar[dict[str, str]] = {
        "stats_case_facts": "case_id TEXT PRIMARY KEY, month TEXT NOT NULL, "
        "stage TEXT NOT NULL, sex TEXT NOT NULL, age_band TEXT NOT NULL, "
        "nationality TEXT NOT NULL, lead_agency_id TEXT NOT NULL, country TEXT NOT NULL, "
        "decision TEXT NOT NULL, closed INTEGER NOT NULL, closure_reason TEXT NOT NULL, "
        "exploitation_types TEXT NOT NULL, means_of_control TEXT NOT NULL, "
        "recruiter_relations TEXT NOT NULL",
        "stats_case_exploitation": "case_id TEXT NOT NULL, exploitation_type TEXT NOT NULL, "
        + ", ".join(f"{column} TEXT NOT NULL" for column in CASE_COLUMNS)
        + ", PRIMARY KEY (case_id, exploitation_type)",
        "stats_agency_kinds": "agency_id TEXT PRIMARY KEY, kind TEXT NOT NULL",
    }
    indexes = (
        # Covers every dimension: a count reads this index, not the table.
        Index("stats_case_facts_dimensions", "stats_case_facts", ", ".join(CASE_COLUMNS)),
        Index(
            "stats_case_exploitation_dimensions",
            "stats_case_exploitation",
            ", ".join(("exploitation_type", *CASE_COLUMNS)),
        ),
    )

    case_columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "stats_case_facts": tuple(f.name for f in fields(CaseFacts)),
        "stats_case_exploitation": ("case_id", "exploitation_type", *CASE_COLUMNS),
    }

    def case_rows(self, case: Case, event: CaseEvent, position: int) -> dict[str, list[Row]]:
        facts = case_facts(case)
        if facts is None:
            return {}
        return {
            "stats_case_facts": [facts.row()],
            "stats_case_exploitation": [
                (facts.case_id, t, *facts.dimensions()) for t in facts.types
            ],
        }

    def handle_other(self, tx: Tx, change: Change, suffix: str) -> None:
        event = change.event
        if type(event).__qualname__ != AGENCY_REGISTERED:
            return
        agency_id, kind = str(vars(event)["agency_id"]), str(vars(event)["kind"])
        tx.execute(f"DELETE FROM stats_agency_kinds{suffix} WHERE agency_id = ?", (agency_id,))
        tx.execute(
            f"INSERT INTO stats_agency_kinds{suffix} (agency_id, kind) VALUES (?, ?)",
            (agency_id, kind),
        )


class HotlineStatistics(CaseRowsProjection):
    name = "hotline_statistics"
    tables: ClassVar[dict[str, str]] = {
        "stats_contact_facts": "event_id TEXT PRIMARY KEY, case_id TEXT NOT NULL, "
        "month TEXT NOT NULL, channel TEXT NOT NULL, anonymous INTEGER NOT NULL, "
        "caller_type TEXT NOT NULL, age_group TEXT NOT NULL, imminent_danger INTEGER NOT NULL, "
        "hotline_agency_id TEXT NOT NULL",
        "stats_contact_topics": "event_id TEXT NOT NULL, case_id TEXT NOT NULL, "
        "topic TEXT NOT NULL, PRIMARY KEY (event_id, topic)",
    }
    indexes = (
        Index("stats_contact_facts_by_case", "stats_contact_facts", "case_id"),
        Index(
            "stats_contact_facts_dimensions",
            "stats_contact_facts",
            "hotline_agency_id, month, channel, caller_type, age_group, anonymous, "
            "imminent_danger, event_id",
        ),
        Index("stats_contact_topics_by_case", "stats_contact_topics", "case_id"),
    )

    def wants(self, change: Change) -> bool:
        event = change.case_event
        return change.case is not None and event is not None and event.event_type in ENTRY_CHANGES

    case_columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "stats_contact_facts": tuple(f.name for f in fields(ContactFacts))[:-1],
        "stats_contact_topics": ("event_id", "case_id", "topic"),
    }

    def case_rows(self, case: Case, event: CaseEvent, position: int) -> dict[str, list[Row]]:
        contacts = contact_facts(case)
        return {
            "stats_contact_facts": [c.row() for c in contacts],
            "stats_contact_topics": [
                (c.event_id, c.case_id, topic) for c in contacts for topic in c.topics
            ],
        }


def statistics_projections() -> list[Projection]:
    return [NationalStatistics(), HotlineStatistics()]


# -- queries --------------------------------------------------------------------------------------

CASE_DIMENSIONS: dict[str, str] = {
    "month": "f.month",
    "stage": "f.stage",
    "sex": "f.sex",
    "age_band": "f.age_band",
    "nationality": "f.nationality",
    "exploitation_type": "f.exploitation_type",
    "agency_kind": f"COALESCE(k.kind, '{UNKNOWN}')",
    "country": "f.country",
    "decision": "f.decision",
    "closure_reason": "f.closure_reason",
}
"""The dimensions `GET /stats` groups by, and their SQL (a fixed list: never user text)."""

CONTACT_DIMENSIONS: dict[str, str] = {
    "month": "c.month",
    "topic": "t.topic",
    "age_group": "c.age_group",
    "channel": "c.channel",
    "caller_type": "c.caller_type",
    "anonymous": "CASE WHEN c.anonymous = 1 THEN 'yes' ELSE 'no' END",
    "imminent_danger": "CASE WHEN c.imminent_danger = 1 THEN 'yes' ELSE 'no' END",
}
"""The dimensions `GET /stats/hotline` groups by, and their SQL."""


@dataclass(frozen=True)
class MonthRange:
    """Months from and to (inclusive, YYYY-MM); None leaves that end open."""

    start: str | None = None
    end: str | None = None

    def where(self, column: str) -> tuple[list[str], list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        if self.start is not None:
            clauses.append(f"{column} >= ?")
            params.append(self.start)
        if self.end is not None:
            clauses.append(f"{column} <= ?")
            params.append(self.end)
        return clauses, params


def _grouped(
    tx: Tx,
    dimensions: Mapping[str, str],
    by: Sequence[str],
    source: str,
    where: tuple[list[str], list[Any]],
) -> dict[Key, int]:
    unknown = [d for d in by if d not in dimensions]
    if unknown or not by:
        raise ValueError(f"unknown or no dimensions: {unknown}")
    columns = ", ".join(dimensions[d] for d in by)
    clauses, params = where
    sql = f"SELECT {columns}, COUNT(*) FROM {source}"
    if clauses:
        sql += " WHERE " + " AND ".join(clauses)
    sql += f" GROUP BY {columns}"
    return {tuple(str(v) for v in row[:-1]): int(row[-1]) for row in tx.fetchall(sql, params)}


def count_cases(tx: Tx, by: Sequence[str], months: MonthRange = MonthRange()) -> dict[Key, int]:
    """Identified cases by the `by` dimensions (case-type pairs when by exploitation type)."""
    pairs = "exploitation_type" in by
    source = "stats_case_exploitation f" if pairs else "stats_case_facts f"
    if "agency_kind" in by:
        source += " LEFT JOIN stats_agency_kinds k ON k.agency_id = f.lead_agency_id"
    return _grouped(tx, CASE_DIMENSIONS, by, source, months.where("f.month"))


def count_contacts(
    tx: Tx,
    by: Sequence[str],
    months: MonthRange = MonthRange(),
    agency_id: str | None = None,
) -> dict[Key, int]:
    """Contacts by the `by` dimensions (contact-topic pairs by topic), of one agency or all."""
    source = "stats_contact_facts c"
    if "topic" in by:
        source += " JOIN stats_contact_topics t ON t.event_id = c.event_id"
    clauses, params = months.where("c.month")
    if agency_id is not None:
        clauses.append("c.hotline_agency_id = ?")
        params.append(agency_id)
    return _grouped(tx, CONTACT_DIMENSIONS, by, source, (clauses, params))


@dataclass(frozen=True)
class ExportSource:
    """What the CTDC export reads of one case: no id, no date but the month."""

    month: str
    country: str
    sex: str
    age_band: str
    nationality: str
    exploitation_types: tuple[str, ...]
    means_of_control: tuple[str, ...]
    recruiter_relations: tuple[str, ...]


def _split(value: str) -> tuple[str, ...]:
    return tuple(value.split(",")) if value else ()


def export_sources(tx: Tx, excluded_decision: str = "not_a_victim") -> list[ExportSource]:
    """Every identified case but those decided not to be a victim, in no meaningful order."""
    rows = tx.fetchall(
        "SELECT month, country, sex, age_band, nationality, exploitation_types, "
        "means_of_control, recruiter_relations FROM stats_case_facts WHERE decision <> ? "
        "ORDER BY month, country, sex, age_band, nationality, exploitation_types",
        (excluded_decision,),
    )
    return [
        ExportSource(
            month=str(r[0]),
            country=str(r[1]),
            sex=str(r[2]),
            age_band=str(r[3]),
            nationality=str(r[4]),
            exploitation_types=_split(str(r[5])),
            means_of_control=_split(str(r[6])),
            recruiter_relations=_split(str(r[7])),
        )
        for r in rows
    ]
