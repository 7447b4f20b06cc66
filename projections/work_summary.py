"""Case summaries and open deadlines, per agency involved in each case.

`case_summary` has one row per (case, agency with a relation to it): stage, lead, placement (if
the agency's relations let it see placements), how many open referrals it may see, and its next
deadline. `case_deadlines` lists each open deadline once per agency shown it: the agency that
owes it, and the case's lead, which sees every deadline of the cases it leads.

Relations and what they see come from `referral_core.policy`; deadlines from
`referral_core.deadlines`. Nothing identifying is stored: ids, kinds, stages, times, counts.
Rows are built without agency kinds (the log's case events do not carry them), and no kind
changes them: no kind is barred from placements, and an agency is shown a deadline only if it
owes it or leads the case (the deadlines a lead does not owe are about reports and referrals,
which every kind may see).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from projections.base import CaseRowsProjection, Index
from projections.case_index import agencies_with_access
from projections.db import Row, Tx
from projections.work_common import RulesTable, WorkRules, earliest, stored_time
from referral_core.case import Case, CaseEvent
from referral_core.deadlines import Deadline
from referral_core.policy import (
    Access,
    Category,
    Principal,
    Relation,
    access_of,
    visible_categories,
)
from referral_core.vocab import AgencyKind, Role

SUMMARY_COLUMNS = (
    "case_id",
    "agency_id",
    "relations",
    "stage",
    "lead_agency_id",
    "closed",
    "shelter_agency_id",
    "facility",
    "open_referrals",
    "next_deadline_kind",
    "next_deadline_at",
    "version",
    "position",
    "updated_at",
)
DEADLINE_COLUMNS = (
    "agency_id",
    "case_id",
    "kind",
    "owed_by_agency_id",
    "subject_event_id",
    "due_at",
    "position",
)


def as_principal(agency_id: str) -> Principal:
    """An agency as policy sees it here; no agency kind changes what these rows hold."""
    return Principal("work", agency_id, AgencyKind.NGO, Role.CASEWORKER)


def sees_placement(agency_id: str, access: Access) -> bool:
    return Category.PLACEMENT in visible_categories(as_principal(agency_id), access)


def deadlines_shown_to(agency_id: str, case: Case, deadlines: list[Deadline]) -> list[Deadline]:
    if agency_id == case.lead_agency_id:
        return list(deadlines)
    return [d for d in deadlines if d.agency_id == agency_id]


def placement_seen(case: Case, agency_id: str) -> dict[str, Any] | None:
    """The current placement, if the agency's relations let it see placements."""
    if case.placement is None:
        return None
    access = access_of(as_principal(agency_id), case)
    return case.placement if sees_placement(agency_id, access) else None


def open_referrals_seen(agency_id: str, relations: list[str], case: Case) -> int:
    """The open referrals an agency may see: all for the lead, else those it sent or received."""
    full = Relation.LEAD.value in relations
    return sum(
        1
        for r in case.open_referrals()
        if full or agency_id in (r["from_agency_id"], r["to_agency_id"])
    )


class CaseSummary(CaseRowsProjection):
    name = "case_summary"
    tables: ClassVar[dict[str, str]] = {
        "case_summary": "case_id TEXT NOT NULL, agency_id TEXT NOT NULL, "
        "relations TEXT NOT NULL, stage TEXT NOT NULL, lead_agency_id TEXT NOT NULL, "
        "closed INTEGER NOT NULL, shelter_agency_id TEXT, facility TEXT, "
        "open_referrals INTEGER NOT NULL, next_deadline_kind TEXT, next_deadline_at TEXT, "
        "version INTEGER NOT NULL, position BIGINT NOT NULL, updated_at TEXT NOT NULL, "
        "PRIMARY KEY (case_id, agency_id)",
        "case_deadlines": "agency_id TEXT NOT NULL, case_id TEXT NOT NULL, kind TEXT NOT NULL, "
        "owed_by_agency_id TEXT NOT NULL, subject_event_id TEXT, due_at TEXT NOT NULL, "
        "position BIGINT NOT NULL",
    }
    # Each inbox list is read in its index's order, so a read stops after `limit` entries
    # however many cases the agency has (measured at 6,941 rows: a sort of them all, 4-7 ms).
    indexes = (
        Index(
            "case_summary_open_dated",
            "case_summary",
            "agency_id, next_deadline_at, case_id",
            where="closed = 0 AND next_deadline_at IS NOT NULL",
        ),
        Index(
            "case_summary_open_undated",
            "case_summary",
            "agency_id, position, case_id",
            where="closed = 0 AND next_deadline_at IS NULL",
        ),
        Index(
            "case_deadlines_due",
            "case_deadlines",
            "agency_id, due_at, case_id, kind, subject_event_id",
        ),
        Index("case_deadlines_by_case", "case_deadlines", "case_id"),
    )
    retired_indexes = (
        "case_summary_by_agency",
        "case_summary_by_position",
        "case_summary_undated",
        "case_deadlines_by_agency",
    )

    def __init__(self, rules: RulesTable | None = None) -> None:
        self.rules = WorkRules(rules)

    case_columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "case_summary": SUMMARY_COLUMNS,
        "case_deadlines": DEADLINE_COLUMNS,
    }

    def case_rows(self, case: Case, event: CaseEvent, position: int) -> dict[str, list[Row]]:
        deadlines = self.rules.deadlines(case)
        summaries: list[Row] = []
        shown: list[Row] = []
        stamp = (case.version, position, stored_time(event.timestamp))
        for agency_id, relations in agencies_with_access(case).items():
            mine = deadlines_shown_to(agency_id, case, deadlines)
            summaries.append((*self._summary(case, agency_id, relations, mine), *stamp))
            shown.extend(self._deadline(agency_id, d, position) for d in mine)
        return {"case_summary": summaries, "case_deadlines": shown}

    @staticmethod
    def _summary(
        case: Case, agency_id: str, relations: list[str], mine: list[Deadline]
    ) -> tuple[Any, ...]:
        placement = placement_seen(case, agency_id)
        kind, due_at = earliest(mine)
        return (
            str(case.id),
            agency_id,
            ",".join(relations),
            case.stage,
            case.lead_agency_id,
            int(case.closed),
            None if placement is None else str(placement["shelter_agency_id"]),
            None if placement is None else str(placement["facility"]),
            open_referrals_seen(agency_id, relations, case),
            kind,
            due_at,
        )

    @staticmethod
    def _deadline(agency_id: str, deadline: Deadline, position: int) -> tuple[Any, ...]:
        return (
            agency_id,
            deadline.case_id,
            deadline.kind.value,
            deadline.agency_id,
            deadline.subject_event_id,
            stored_time(deadline.due_at),
            position,
        )


# -- reads --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SummaryRow:
    case_id: str
    relations: list[str]
    stage: str
    lead_agency_id: str
    shelter_agency_id: str | None
    facility: str | None
    open_referrals: int
    next_deadline_kind: str | None
    next_deadline_at: str | None
    version: int
    position: int
    updated_at: str


@dataclass(frozen=True)
class DeadlineRow:
    case_id: str
    kind: str
    owed_by_agency_id: str
    subject_event_id: str | None
    due_at: str


_SUMMARY_SELECT = (
    "SELECT case_id, relations, stage, lead_agency_id, shelter_agency_id, facility, "
    "open_referrals, next_deadline_kind, next_deadline_at, version, position, updated_at "
    "FROM case_summary WHERE agency_id = ? AND closed = 0 "
)


def open_cases(tx: Tx, agency_id: str, limit: int) -> list[SummaryRow]:
    """An agency's open cases: soonest next deadline first, then those without one, newest first.

    Two index-ordered reads rather than one sort of all the agency's cases.
    """
    rows = tx.fetchall(
        _SUMMARY_SELECT + "AND next_deadline_at IS NOT NULL "
        "ORDER BY next_deadline_at, case_id LIMIT ?",
        (agency_id, limit),
    )
    if len(rows) < limit:
        rows += tx.fetchall(
            _SUMMARY_SELECT
            + "AND next_deadline_at IS NULL ORDER BY position DESC, case_id DESC LIMIT ?",
            (agency_id, limit - len(rows)),
        )
    return [_summary_row(r) for r in rows]


def _summary_row(r: tuple[Any, ...]) -> SummaryRow:
    return SummaryRow(
        case_id=r[0],
        relations=str(r[1]).split(","),
        stage=r[2],
        lead_agency_id=r[3],
        shelter_agency_id=r[4],
        facility=r[5],
        open_referrals=int(r[6]),
        next_deadline_kind=r[7],
        next_deadline_at=r[8],
        version=int(r[9]),
        position=int(r[10]),
        updated_at=r[11],
    )


def deadlines_of(tx: Tx, agency_id: str, limit: int) -> list[DeadlineRow]:
    """The deadlines an agency is shown, soonest (and so every overdue one) first."""
    rows = tx.fetchall(
        "SELECT case_id, kind, owed_by_agency_id, subject_event_id, due_at FROM case_deadlines "
        "WHERE agency_id = ? ORDER BY due_at, case_id, kind, subject_event_id LIMIT ?",
        (agency_id, limit),
    )
    return [DeadlineRow(r[0], r[1], r[2], r[3], r[4]) for r in rows]


def count_overdue(tx: Tx, agency_id: str, now: str) -> int:
    """How many of an agency's deadlines are due at or before `now` (a stored time)."""
    row = tx.fetchone(
        "SELECT COUNT(*) FROM case_deadlines WHERE agency_id = ? AND due_at <= ?",
        (agency_id, now),
    )
    return 0 if row is None else int(row[0])
