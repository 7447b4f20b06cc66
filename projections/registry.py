"""Every read model the service keeps, by name."""

from __future__ import annotations

from projections.access_log import AccessLog
from projections.base import Projection
from projections.case_index import CaseIndex


def all_projections() -> list[Projection]:
    return [CaseIndex(), AccessLog()]


def by_names(names: list[str] | None) -> list[Projection]:
    """The named read models (all when `names` is empty); an unknown name is a ValueError."""
    known = {p.name: p for p in all_projections()}
    if not names:
        return list(known.values())
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ValueError(f"unknown read model(s): {', '.join(unknown)}; known: {', '.join(known)}")
    return [known[n] for n in names]
