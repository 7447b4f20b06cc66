"""Request ids drawn in batches stay 128-bit, hex, and distinct across batch boundaries."""

from __future__ import annotations

import re

from api.request_ids import BATCH, RequestIds


def test_ids_are_32_hex_digits_and_never_repeat_across_batches() -> None:
    ids = RequestIds()
    drawn = [ids() for _ in range(3 * BATCH + 5)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in drawn)
    assert len(set(drawn)) == len(drawn)


def test_two_sources_draw_different_ids() -> None:
    first, second = RequestIds(), RequestIds()
    assert {first() for _ in range(BATCH)}.isdisjoint({second() for _ in range(BATCH)})
