"""The police units' and the referral receivers' inboxes.

`le_inbox`: one row per report to law enforcement (not voided), for the unit that received it:
when it was reported, how urgent, when it was acknowledged, and the acknowledgement's due time
while one is owed. `referral_inbox`: one row per referral, for the agency it was sent to: who
sent it, for which service, its status (pending, accepted, declined, completed, revoked,
voided), its respond-by, the answer's due time while one is owed, and when it was sent and
answered. Each row goes only to the agency the report or referral is addressed to, which sees
these events (`policy`: report recipient; referral events addressed to it). Nothing
identifying: ids, kinds, statuses and times.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from projections.base import CaseRowsProjection, Index
from projections.db import Row, Tx
from projections.work_common import RulesTable, WorkRules, stored_time
from referral_core.case import Case, CaseEvent
from referral_core.deadlines import DeadlineKind

LE_COLUMNS = (
    "report_event_id",
    "unit_agency_id",
    "case_id",
    "reported_at",
    "urgency",
    "acknowledged_at",
    "due_at",
    "position",
    "updated_at",
)
REFERRAL_COLUMNS = (
    "referral_event_id",
    "to_agency_id",
    "from_agency_id",
    "case_id",
    "service",
    "status",
    "respond_by",
    "due_at",
    "sent_at",
    "answered_at",
    "position",
    "updated_at",
)


class LawEnforcementInbox(CaseRowsProjection):
    name = "le_inbox"
    tables: ClassVar[dict[str, str]] = {
        "le_inbox": "report_event_id TEXT PRIMARY KEY, unit_agency_id TEXT NOT NULL, "
        "case_id TEXT NOT NULL, reported_at TEXT NOT NULL, urgency TEXT NOT NULL, "
        "acknowledged_at TEXT, due_at TEXT, position BIGINT NOT NULL, updated_at TEXT NOT NULL"
    }
    indexes = (
        Index("le_inbox_by_unit", "le_inbox", "unit_agency_id, due_at"),
        Index("le_inbox_by_case", "le_inbox", "case_id"),
    )

    def __init__(self, rules: RulesTable | None = None) -> None:
        self.rules = WorkRules(rules)

    case_columns: ClassVar[dict[str, tuple[str, ...]]] = {"le_inbox": LE_COLUMNS}

    def case_rows(self, case: Case, event: CaseEvent, position: int) -> dict[str, list[Row]]:
        due = {
            d.subject_event_id: stored_time(d.due_at)
            for d in self.rules.deadlines(case)
            if d.kind is DeadlineKind.REPORT_ACKNOWLEDGEMENT
        }
        rows = [
            (
                str(r["event_id"]),
                str(r["unit_agency_id"]),
                str(case.id),
                stored_time(r["reported_at"]),
                str(r["urgency"]),
                stored_time(r["acknowledged_at"]),
                due.get(str(r["event_id"])),
                position,
                stored_time(event.timestamp),
            )
            for r in case.reports.values()
            if not r["voided"]
        ]
        return {"le_inbox": rows}


class ReferralInbox(CaseRowsProjection):
    name = "referral_inbox"
    tables: ClassVar[dict[str, str]] = {
        "referral_inbox": "referral_event_id TEXT PRIMARY KEY, to_agency_id TEXT NOT NULL, "
        "from_agency_id TEXT NOT NULL, case_id TEXT NOT NULL, service TEXT NOT NULL, "
        "status TEXT NOT NULL, respond_by TEXT, due_at TEXT, sent_at TEXT NOT NULL, "
        "answered_at TEXT, position BIGINT NOT NULL, updated_at TEXT NOT NULL"
    }
    indexes = (
        Index("referral_inbox_by_receiver", "referral_inbox", "to_agency_id, status, due_at"),
        Index("referral_inbox_by_case", "referral_inbox", "case_id"),
    )

    def __init__(self, rules: RulesTable | None = None) -> None:
        self.rules = WorkRules(rules)

    case_columns: ClassVar[dict[str, tuple[str, ...]]] = {"referral_inbox": REFERRAL_COLUMNS}

    def case_rows(self, case: Case, event: CaseEvent, position: int) -> dict[str, list[Row]]:
        due = {
            d.subject_event_id: stored_time(d.due_at)
            for d in self.rules.deadlines(case)
            if d.kind is DeadlineKind.REFERRAL_ANSWER
        }
        rows = [
            (
                str(r["event_id"]),
                str(r["to_agency_id"]),
                str(r["from_agency_id"]),
                str(case.id),
                str(r["service"]),
                str(r["status"]),
                stored_time(r["respond_by"]),
                due.get(str(r["event_id"])),
                stored_time(r["sent_at"]),
                stored_time(r["answered_at"]),
                position,
                stored_time(event.timestamp),
            )
            for r in case.referrals.values()
        ]
        return {"referral_inbox": rows}


# -- reads --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportRow:
    report_event_id: str
    case_id: str
    reported_at: str
    urgency: str
    acknowledged_at: str | None
    due_at: str | None


@dataclass(frozen=True)
class ReferralRow:
    referral_event_id: str
    case_id: str
    from_agency_id: str
    service: str
    status: str
    respond_by: str | None
    due_at: str | None
    sent_at: str
    answered_at: str | None


def reports_to_acknowledge(tx: Tx, unit_agency_id: str, limit: int) -> list[ReportRow]:
    """The reports a police unit still owes an acknowledgement, soonest due first."""
    rows = tx.fetchall(
        "SELECT report_event_id, case_id, reported_at, urgency, acknowledged_at, due_at "
        "FROM le_inbox WHERE unit_agency_id = ? AND due_at IS NOT NULL "
        "ORDER BY due_at, report_event_id LIMIT ?",
        (unit_agency_id, limit),
    )
    return [ReportRow(*r) for r in rows]


_REFERRAL_SELECT = (
    "SELECT referral_event_id, case_id, from_agency_id, service, status, respond_by, due_at, "
    "sent_at, answered_at FROM referral_inbox WHERE to_agency_id = ? "
)


def referrals_to_answer(tx: Tx, to_agency_id: str, limit: int) -> list[ReferralRow]:
    """The referrals an agency still owes an answer (pending, case open), soonest due first."""
    rows = tx.fetchall(
        _REFERRAL_SELECT + "AND status = 'pending' AND due_at IS NOT NULL "
        "ORDER BY due_at, referral_event_id LIMIT ?",
        (to_agency_id, limit),
    )
    return [ReferralRow(*r) for r in rows]


def referrals_accepted(tx: Tx, to_agency_id: str, limit: int) -> list[ReferralRow]:
    """The referrals an agency has accepted and not yet completed, newest answer first."""
    rows = tx.fetchall(
        _REFERRAL_SELECT + "AND status = 'accepted' "
        "ORDER BY answered_at DESC, referral_event_id LIMIT ?",
        (to_agency_id, limit),
    )
    return [ReferralRow(*r) for r in rows]
