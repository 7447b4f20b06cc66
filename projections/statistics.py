"""National and hotline statistics, and the de-identified CTDC/HTCDS export."""

from __future__ import annotations

from projections.base import Projection


def statistics_projections() -> list[Projection]:
    return []
