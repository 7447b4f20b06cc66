"""The memo read models share within a batch: one result per case state, bounded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import cast
from uuid import UUID, uuid4

from projections.work_common import CaseMemo
from referral_core.case import Case


@dataclass
class StandIn:
    """What the memo reads of a case: its id, version and erasure."""

    id: UUID
    version: int
    erased: bool = False


def test_one_result_per_case_state_and_per_question() -> None:
    memo = CaseMemo()
    calls: list[int] = []

    def compute(case: Case) -> int:
        calls.append(case.version)
        return case.version * 10

    case = StandIn(uuid4(), 3)
    as_case = cast("Case", case)
    assert memo.get("q", as_case, compute) == 30
    assert memo.get("q", as_case, compute) == 30
    assert calls == [3]
    assert memo.get("other question", as_case, compute) == 30
    case.version = 4  # a later event: a new state
    assert memo.get("q", as_case, compute) == 40
    case.erased = True  # erased without a new event: a new state too
    assert memo.get("q", as_case, compute) == 40
    assert calls == [3, 3, 4, 4]


def test_the_memo_keeps_only_the_most_recent_results() -> None:
    memo = CaseMemo(size=2)
    cases = [cast("Case", StandIn(uuid4(), 1)) for _ in range(3)]
    calls: list[UUID] = []

    def compute(case: Case) -> UUID:
        calls.append(case.id)
        return case.id

    for case in cases:
        memo.get("q", case, compute)
    memo.get("q", cases[0], compute)  # forgotten: computed again
    memo.get("q", cases[2], compute)  # kept
    assert calls == [c.id for c in cases] + [cases[0].id]
