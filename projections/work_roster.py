"""Each shelter's roster: the children placed with it now, and what is due for them.

One row per case whose current placement is with the shelter agency: since when, the kind of
placement and the facility, how many services were delivered since the placement began, the
next plan review, the next deadline the shelter is shown (its own, or the plan review it
delivers services against), and the child's age band and sex. A row disappears when the
placement ends. Nothing identifying: no names, no birth dates, no notes.

A shelter sees a placed child's identification, plan and missing status (`policy`, relation
`shelter`), so the age band, sex, plan review and missing flag are within what it may see.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from projections.base import CaseRowsProjection, Index
from projections.db import Row, Tx
from projections.work_common import (
    RulesTable,
    WorkRules,
    age_band,
    earliest,
    stored_time,
)
from referral_core.case import Case, CaseEvent
from referral_core.deadlines import Deadline, DeadlineKind

ROSTER_COLUMNS = (
    "shelter_agency_id",
    "case_id",
    "placement_event_id",
    "since",
    "placement_type",
    "facility",
    "services_delivered",
    "next_plan_review",
    "next_deadline_kind",
    "next_deadline_at",
    "age_band",
    "sex",
    "missing",
    "position",
    "updated_at",
)


def services_since_placement(case: Case) -> int:
    """Services recorded (and not voided) after the current placement's entry."""
    if case.placement is None:
        return 0
    placed = str(case.placement["event_id"])
    counting = False
    count = 0
    for event_id, entry in case.entries.items():
        if event_id == placed:
            counting = True
        elif counting and entry["type"] == "ServiceDelivered" and not entry["voided"]:
            count += 1
    return count


def shelter_deadlines(shelter_id: str, deadlines: list[Deadline]) -> list[Deadline]:
    """What the shelter is shown as due: its own deadlines, and the plan review."""
    return [
        d for d in deadlines if d.agency_id == shelter_id or d.kind is DeadlineKind.PLAN_REVIEW
    ]


class ShelterRoster(CaseRowsProjection):
    name = "shelter_roster"
    tables: ClassVar[dict[str, str]] = {
        "shelter_roster": "shelter_agency_id TEXT NOT NULL, case_id TEXT PRIMARY KEY, "
        "placement_event_id TEXT NOT NULL, since TEXT NOT NULL, placement_type TEXT NOT NULL, "
        "facility TEXT NOT NULL, services_delivered INTEGER NOT NULL, next_plan_review TEXT, "
        "next_deadline_kind TEXT, next_deadline_at TEXT, age_band TEXT NOT NULL, "
        "sex TEXT NOT NULL, missing INTEGER NOT NULL, position BIGINT NOT NULL, "
        "updated_at TEXT NOT NULL"
    }
    indexes = (Index("shelter_roster_by_shelter", "shelter_roster", "shelter_agency_id, since"),)

    def __init__(self, rules: RulesTable | None = None) -> None:
        self.rules = WorkRules(rules)

    case_columns: ClassVar[dict[str, tuple[str, ...]]] = {"shelter_roster": ROSTER_COLUMNS}

    def case_rows(self, case: Case, event: CaseEvent, position: int) -> dict[str, list[Row]]:
        if case.placement is None:
            return {}
        row = self._row(case, event.occurred_at.isoformat())
        return {"shelter_roster": [(*row, position, stored_time(event.timestamp))]}

    def _row(self, case: Case, as_of: str) -> tuple[Any, ...]:
        placement = case.placement
        assert placement is not None  # noqa: S101 -- checked by the caller
        shelter_id = str(placement["shelter_agency_id"])
        kind, due_at = earliest(shelter_deadlines(shelter_id, self.rules.deadlines(case)))
        return (
            shelter_id,
            str(case.id),
            str(placement["event_id"]),
            str(placement["start_date"]),
            str(placement["placement_type"]),
            str(placement["facility"]),
            services_since_placement(case),
            case.plan_review_date,
            kind,
            due_at,
            age_band(case.child, as_of),
            str(case.child["sex"]),
            int(case.missing),
        )


# -- reads --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RosterRow:
    case_id: str
    placement_event_id: str
    since: str
    placement_type: str
    facility: str
    services_delivered: int
    next_plan_review: str | None
    next_deadline_kind: str | None
    next_deadline_at: str | None
    age_band: str
    sex: str
    missing: bool
    position: int


def roster_of(tx: Tx, shelter_agency_id: str, limit: int) -> list[RosterRow]:
    """The children placed with a shelter now, longest-placed first."""
    rows = tx.fetchall(
        "SELECT case_id, placement_event_id, since, placement_type, facility, "
        "services_delivered, next_plan_review, next_deadline_kind, next_deadline_at, age_band, "
        "sex, missing, position FROM shelter_roster WHERE shelter_agency_id = ? "
        "ORDER BY since, case_id LIMIT ?",
        (shelter_agency_id, limit),
    )
    return [
        RosterRow(
            case_id=r[0],
            placement_event_id=r[1],
            since=r[2],
            placement_type=r[3],
            facility=r[4],
            services_delivered=int(r[5]),
            next_plan_review=r[6],
            next_deadline_kind=r[7],
            next_deadline_at=r[8],
            age_band=r[9],
            sex=r[10],
            missing=bool(r[11]),
            position=int(r[12]),
        )
        for r in rows
    ]
