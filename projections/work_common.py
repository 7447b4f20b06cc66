"""What the work read models share: the country rules they apply, stored times, age bands.

Rows hold times as fixed-width ISO 8601 text in UTC (`stored_time`), so they sort as text the
same way on SQLite and PostgreSQL, and a rebuild writes them byte for byte as before: every
time in a row comes from the log (event times, dates in payloads), never from a clock.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping
from datetime import UTC, date, datetime
from typing import Any, TypeVar, overload

from referral_core.case import Case, age_on
from referral_core.deadlines import (
    RULES_BY_COUNTRY,
    CountryRules,
    Deadline,
    deadlines_for,
    moment,
    rules_for,
)

RulesTable = Mapping[str, CountryRules]

AGE_BANDS: tuple[tuple[int, str], ...] = ((12, "0-11"), (15, "12-14"), (18, "15-17"))
ADULT_BAND = "18+"
UNKNOWN_BAND = "unknown"


T = TypeVar("T")


class CaseMemo:
    """What a pure function made of a case state, kept for the other read models of a batch.

    Several read models derive the same things from the same case in one batch (its deadlines,
    the agencies that may see it). A case state is named by its id, its version and whether it
    is erased (erasure changes what a case reads as without a new event), so a result computed
    for one read model serves the others. The most recent `size` results are kept; callers
    must not change what they are given.
    """

    def __init__(self, size: int = 8192) -> None:
        self.size = size
        self._results: OrderedDict[Hashable, Any] = OrderedDict()

    def get(self, what: Hashable, case: Case, compute: Callable[[Case], T]) -> T:
        key = (what, case.id, case.version, case.erased)
        try:
            result: T = self._results[key]
        except KeyError:
            result = compute(case)
            self._results[key] = result
            if len(self._results) > self.size:
                self._results.popitem(last=False)
        return result


case_memo = CaseMemo()
"""The process's memo: the runner's read models share it."""


class WorkRules:
    """The rules table a work read model applies to each case's country."""

    def __init__(self, rules: RulesTable | None = None) -> None:
        self.rules: RulesTable = RULES_BY_COUNTRY if rules is None else rules

    def deadlines(self, case: Case) -> list[Deadline]:
        """The case's deadlines under these rules (shared between read models: not to change)."""
        rules, found = case_memo.get(
            ("deadlines", id(self.rules)), case, lambda c: (self.rules, self._deadlines(c))
        )
        # An id is only unique while its object lives: a result kept for other rules that
        # happened to have the same id is not ours.
        return found if rules is self.rules else self._deadlines(case)

    def _deadlines(self, case: Case) -> list[Deadline]:
        return deadlines_for(case, rules_for(case.country, self.rules))

    def country_rules(self, case: Case) -> CountryRules:
        return rules_for(case.country, self.rules)


@overload
def stored_time(value: datetime | str) -> str: ...


@overload
def stored_time(value: None) -> None: ...


@overload
def stored_time(value: datetime | str | None) -> str | None: ...


def stored_time(value: datetime | str | None) -> str | None:
    """A time as stored in a work row: UTC, microseconds, always the same width."""
    if value is None:
        return None
    return moment(value).astimezone(UTC).isoformat(timespec="microseconds")


def parsed_time(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def age_band(child: Mapping[str, Any], on: date | datetime | str) -> str:
    """The child's age band on a day: from the birth date if known, else the stated age."""
    age: int | None
    if child.get("birth_date") is not None:
        age = age_on(child["birth_date"], on)
    else:
        age = child.get("age_years")
    if age is None:
        return UNKNOWN_BAND
    for below, band in AGE_BANDS:
        if age < below:
            return band
    return ADULT_BAND


def earliest(deadlines: list[Deadline]) -> tuple[str | None, str | None]:
    """The kind and stored due time of the soonest deadline, or (None, None)."""
    if not deadlines:
        return None, None
    first = min(deadlines, key=lambda d: (d.due_at, d.kind.value))
    return first.kind.value, stored_time(first.due_at)
