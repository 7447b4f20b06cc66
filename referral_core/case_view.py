"""A case as one principal may see it: the visible history and a summary, both through `policy`.

The API, the read models and exports use these functions, so every read applies the same policy.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from referral_core.case import Case, CaseEvent
from referral_core.policy import (
    Access,
    Category,
    EventView,
    Principal,
    Relation,
    view_event,
    visible_categories,
)


@dataclass(frozen=True)
class VisibleEvent:
    event: CaseEvent
    view: EventView


def _addressed_to(case: Case, event: CaseEvent) -> str | None:
    if event.event_type == "ReferralSent":
        return str(event.payload["to_agency_id"])
    referral_id = event.payload.get("referral_event_id")
    if referral_id is not None and str(referral_id) in case.referrals:
        return str(case.referrals[str(referral_id)]["to_agency_id"])
    return None


def _target_type(case: Case, event: CaseEvent) -> str | None:
    target = event.payload.get("target_event_id")
    if target is None:
        return None
    entry = case.entry(str(target))
    return None if entry is None else str(entry["type"])


def visible_history(
    principal: Principal, access: Access, case: Case, events: Iterable[CaseEvent]
) -> list[VisibleEvent]:
    """The events of `case` the principal may see, each with the payload it may read.

    `case` is the current state (relations are judged now: revoking a referral removes access
    to the whole history, not only to what comes after).
    """
    seen: list[VisibleEvent] = []
    for event in events:
        view = view_event(
            principal,
            access,
            event_type=event.event_type,
            payload=event.payload,
            author_agency_id=event.agency_id,
            target_type=_target_type(case, event),
            addressed_to=_addressed_to(case, event),
        )
        if view is not None:
            seen.append(VisibleEvent(event, view))
    return seen


def summary(principal: Principal, access: Access, case: Case) -> dict[str, Any]:
    """The case at a glance, with only the parts the principal's categories allow."""
    categories = visible_categories(principal, access)
    full = bool(access.relations & {Relation.LEAD, Relation.AUDITOR, Relation.BREAK_GLASS})
    body: dict[str, Any] = {
        "case_id": str(case.id),
        "version": case.version,
        "stage": case.stage,
        "closed": case.closed,
        "lead_agency_id": case.lead_agency_id,
        "relations": sorted(r.value for r in access.relations),
        "updated_at": _iso(case.modified_on),
    }
    if Category.IDENTIFICATION in categories:
        body["child"] = {
            key: case.child[key]
            for key in ("sex", "age_years", "age_is_estimate", "nationality", "minority_presumed")
        }
        body["country"] = case.country
        body["exploitation_types"] = list(case.exploitation_types)
        body["identification_decision"] = case.identification_decision
    if Category.PLACEMENT in categories and case.placement is not None:
        body["placement"] = {
            k: case.placement[k]
            for k in ("shelter_agency_id", "facility", "placement_type", "start_date")
        }
    if Category.MISSING in categories:
        body["missing"] = case.missing
    body["referrals"] = [
        {k: r[k] for k in ("event_id", "from_agency_id", "to_agency_id", "service", "status")}
        for r in case.referrals.values()
        if full or principal.agency_id in (r["from_agency_id"], r["to_agency_id"])
    ]
    if Category.REPORT in categories:
        body["reports"] = [
            {k: r[k] for k in ("event_id", "unit_agency_id", "reported_at", "acknowledged_at")}
            for r in case.reports.values()
            if not r["voided"]
        ]
    return body


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()
