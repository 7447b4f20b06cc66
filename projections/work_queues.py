"""Per-agency work: case summaries, shelter rosters, police and referral inboxes, deadlines."""

from __future__ import annotations

from projections.base import Projection


def work_projections() -> list[Projection]:
    return []
