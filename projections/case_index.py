"""Which agencies may see which cases: the index behind `GET /cases`.

One row per (case, agency with a relation to it), replaced whenever the case changes, plus a row
with agency `*` for auditors. Relations come from `referral_core.policy`, the same policy every
read applies, so the index never lists a case its reader could not open.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from projections.base import CaseRowsProjection, Index
from projections.db import Row, Tx
from projections.work_common import case_memo
from referral_core.case import Case, CaseEvent
from referral_core.policy import Principal, access_of
from referral_core.vocab import AgencyKind, Role

ALL_AGENCIES = "*"


def agencies_with_access(case: Case) -> dict[str, list[str]]:
    """Every agency with a relation to the case, and those relations (shared: not to change)."""
    return case_memo.get("agencies_with_access", case, _agencies_with_access)


def _agencies_with_access(case: Case) -> dict[str, list[str]]:
    candidates = {case.lead_agency_id, case.opened_by_agency_id}
    candidates.update(r["to_agency_id"] for r in case.referrals.values())
    candidates.update(r["unit_agency_id"] for r in case.reports.values())
    if case.placement is not None:
        candidates.add(case.placement["shelter_agency_id"])
    if case.guardian_agency_id:
        candidates.add(case.guardian_agency_id)
    found: dict[str, list[str]] = {}
    for agency in sorted(c for c in candidates if c):
        # The kind only matters for auditors, whose access is not per case.
        probe = Principal("index", agency, AgencyKind.NGO, Role.CASEWORKER)
        access = access_of(probe, case)
        if access.visible:
            found[agency] = sorted(r.value for r in access.relations)
    return found


class CaseIndex(CaseRowsProjection):
    name = "case_index"
    tables: ClassVar[dict[str, str]] = {
        "case_index": "case_id TEXT NOT NULL, agency_id TEXT NOT NULL, relations TEXT NOT NULL, "
        "stage TEXT NOT NULL, lead_agency_id TEXT NOT NULL, closed INTEGER NOT NULL, "
        "version INTEGER NOT NULL, position BIGINT NOT NULL, updated_at TEXT NOT NULL, "
        "PRIMARY KEY (case_id, agency_id)"
    }
    indexes = (Index("case_index_by_agency", "case_index", "agency_id, position"),)

    case_columns: ClassVar[dict[str, tuple[str, ...]]] = {
        "case_index": (
            "case_id",
            "agency_id",
            "relations",
            "stage",
            "lead_agency_id",
            "closed",
            "version",
            "position",
            "updated_at",
        )
    }

    def case_rows(self, case: Case, event: CaseEvent, position: int) -> dict[str, list[Row]]:
        relations = [
            (agency, ",".join(found)) for agency, found in agencies_with_access(case).items()
        ]
        relations.append((ALL_AGENCIES, "auditor"))
        stamp = (case.version, position, event.timestamp.isoformat())
        return {
            "case_index": [
                (
                    str(case.id),
                    agency,
                    rel,
                    case.stage,
                    case.lead_agency_id,
                    int(case.closed),
                    *stamp,
                )
                for agency, rel in relations
            ]
        }


@dataclass(frozen=True)
class CaseListing:
    case_id: str
    relations: list[str]
    stage: str
    lead_agency_id: str
    closed: bool
    version: int
    position: int
    updated_at: str


def list_cases(
    tx: Tx,
    *,
    agency_id: str,
    stage: str | None = None,
    lead_agency_id: str | None = None,
    updated_since: str | None = None,
    before_position: int | None = None,
    limit: int = 50,
) -> list[CaseListing]:
    """The cases an agency (or `*` for auditors) may see, newest change first."""
    sql = (
        "SELECT case_id, relations, stage, lead_agency_id, closed, version, position, "
        "updated_at FROM case_index WHERE agency_id = ?"
    )
    params: list[Any] = [agency_id]
    if stage is not None:
        sql += " AND stage = ?"
        params.append(stage)
    if lead_agency_id is not None:
        sql += " AND lead_agency_id = ?"
        params.append(lead_agency_id)
    if updated_since is not None:
        sql += " AND updated_at >= ?"
        params.append(updated_since)
    if before_position is not None:
        sql += " AND position < ?"
        params.append(before_position)
    sql += " ORDER BY position DESC LIMIT ?"
    params.append(limit)
    return [
        CaseListing(
            case_id=row[0],
            relations=row[1].split(","),
            stage=row[2],
            lead_agency_id=row[3],
            closed=bool(row[4]),
            version=int(row[5]),
            position=int(row[6]),
            updated_at=row[7],
        )
        for row in tx.fetchall(sql, params)
    ]
