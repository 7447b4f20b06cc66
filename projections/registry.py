"""Every read model the service keeps, by name."""

from __future__ import annotations

from projections.access_log import AccessLog
from projections.base import Projection
from projections.case_index import CaseIndex
from projections.integrity import IntegrityProjection
from projections.statistics import statistics_projections
from projections.work_queues import work_projections


def all_projections() -> list[Projection]:
    return [
        CaseIndex(),
        AccessLog(),
        *work_projections(),
        *statistics_projections(),
        IntegrityProjection(),
    ]


def by_names(names: list[str] | None) -> list[Projection]:
    """The named read models (all when `names` is empty); an unknown name is a ValueError."""
    known = {p.name: p for p in all_projections()}
    if not names:
        return list(known.values())
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown read model(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]
