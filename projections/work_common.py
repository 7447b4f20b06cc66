"""What the work read models share: the country rules they apply, stored times, age bands.

Rows hold times as fixed-width ISO 8601 text in UTC (`stored_time`), so they sort as text the
same way on SQLite and PostgreSQL, and a rebuild writes them byte for byte as before: every
time in a row comes from the log (event times, dates in payloads), never from a clock.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, overload

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


class WorkRules:
    """The rules table a work read model applies to each case's country."""

    def __init__(self, rules: RulesTable | None = None) -> None:
        self.rules: RulesTable = RULES_BY_COUNTRY if rules is None else rules

    def deadlines(self, case: Case) -> list[Deadline]:
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
