"""Disclosure control: bands, primary and complementary suppression, k-anonymity.

Examples pin the documented choices; properties check, over random tables and records, that no
published count is small, that no suppressed count can be worked out by subtraction, and that
every exported combination of quasi-identifiers is shared by at least k records.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping

import pytest
from hypothesis import given
from hypothesis import strategies as st

from referral_core.disclosure import (
    CTDC_QUASI_IDENTIFIERS,
    NOT_SPECIFIED,
    OLDER,
    OTHER,
    TOTAL,
    Key,
    Line,
    ProtectedItem,
    age_band,
    broad_age_band,
    ctdc_ladder,
    equivalence_classes,
    exploitation_families,
    exploitation_value,
    k_anonymise,
    lines_of,
    protect_table,
    recoverable,
    region_of,
    with_margins,
)

T = 5

# -- bands ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (None, "unknown"),
        (0, "0-5"),
        (5, "0-5"),
        (6, "6-11"),
        (11, "6-11"),
        (12, "12-14"),
        (14, "12-14"),
        (15, "15-17"),
        (17, "15-17"),
        (18, "18+"),
        (25, "18+"),
    ],
)
def test_age_bands(age: int | None, band: str) -> None:
    assert age_band(age) == band


def test_broad_bands_keep_majority_only() -> None:
    assert [broad_age_band(b) for b in ("0-5", "15-17", "18+", "unknown")] == [
        "0-17",
        "0-17",
        "18+",
        "unknown",
    ]


# -- helpers --------------------------------------------------------------------------------------


def published(items: list[ProtectedItem]) -> dict[Key, int | None]:
    return {item.key: item.count for item in items}


def single_line_recoveries(view: Mapping[Key, int | None]) -> list[Key]:
    """Suppressed items that one subtraction along one line gives away (the brief's checker)."""
    found = []
    for line in lines_of(view):
        unknown = [key for key in line.items if view[key] is None]
        if len(unknown) == 1:
            found.append(unknown[0])
    return found


def narrow_intervals(view: Mapping[Key, int | None], threshold: int) -> list[Line]:
    """Lines whose published total pins a suppressed part below threshold - 1 from above."""
    narrow = []
    for line in lines_of(view):
        total = view[line.total]
        hidden = [p for p in line.parts if view[p] is None]
        if total is None or not hidden:
            continue
        rest = total - sum(v for p in line.parts if (v := view[p]) is not None)
        if rest - (len(hidden) - 1) < threshold - 1:
            narrow.append(line)
    return narrow


# -- margins and primary suppression --------------------------------------------------------------


def test_margins_of_a_two_way_table() -> None:
    table = with_margins({("a", "x"): 3, ("a", "y"): 7, ("b", "x"): 10}, 2)
    assert table == {
        ("a", "x"): 3,
        ("a", "y"): 7,
        ("b", "x"): 10,
        ("a", TOTAL): 10,
        ("b", TOTAL): 10,
        (TOTAL, "x"): 13,
        (TOTAL, "y"): 7,
        (TOTAL, TOTAL): 20,
    }


def test_an_empty_table_publishes_a_zero_total() -> None:
    assert published(protect_table({}, 2, T)) == {(TOTAL, TOTAL): 0}


def test_cell_keys_are_checked() -> None:
    with pytest.raises(ValueError, match="values"):
        with_margins({("a",): 1}, 2)
    with pytest.raises(ValueError, match="values"):
        with_margins({(TOTAL,): 1}, 1)


def test_small_counts_are_suppressed_and_zeros_and_large_ones_published() -> None:
    items = protect_table({("a",): 0, ("b",): 20, ("c",): 30, ("d",): 40}, 1, T)
    assert published(items) == {("a",): 0, ("b",): 20, ("c",): 30, ("d",): 40, (TOTAL,): 90}
    assert [i.margin for i in items] == [False, False, False, False, True]


# -- complementary suppression --------------------------------------------------------------------


def test_one_small_cell_takes_the_smallest_other_cell_of_its_line() -> None:
    view = published(protect_table({("a",): 3, ("b",): 20, ("c",): 9, ("d",): 40}, 1, T))
    assert view == {("a",): None, ("b",): 20, ("c",): None, ("d",): 40, (TOTAL,): 72}
    assert recoverable(view) == {}


def test_the_classic_two_way_pattern() -> None:
    cells: dict[Key, int] = {
        ("a", "x"): 3,
        ("a", "y"): 12,
        ("a", "z"): 20,
        ("b", "x"): 8,
        ("b", "y"): 15,
        ("b", "z"): 30,
    }
    view = published(protect_table(cells, 2, T))
    hidden = {k for k, v in view.items() if v is None}
    assert hidden == {("a", "x"), ("a", "y"), ("b", "x"), ("b", "y")}
    assert view[("a", TOTAL)] == 35
    assert view[(TOTAL, "x")] == 11
    assert recoverable(view) == {}


def test_a_line_of_one_part_hides_its_total() -> None:
    view = published(protect_table({("a", "x"): 2, ("b", "y"): 30, ("b", "z"): 30}, 2, T))
    assert view[("a", "x")] is None
    assert view[("a", TOTAL)] is None
    assert view[(TOTAL, "x")] is None
    assert recoverable(view) == {}


def test_two_ones_in_a_line_are_not_left_to_be_known() -> None:
    """Two suppressed 1s under a published total would each be known to be 1."""
    cells: dict[Key, int] = {("a",): 1, ("b",): 1, ("c",): 9, ("d",): 50}
    view = published(protect_table(cells, 1, T))
    assert view == {("a",): None, ("b",): None, ("c",): None, ("d",): 50, (TOTAL,): 61}
    assert narrow_intervals(view, T) == []


def test_zeros_are_never_complements() -> None:
    view = published(protect_table({("a",): 2, ("b",): 0, ("c",): 0}, 1, T))
    assert view == {("a",): None, ("b",): 0, ("c",): 0, (TOTAL,): None}


def test_the_pattern_is_deterministic() -> None:
    cells: dict[Key, int] = {
        (m, s): (i * 7 + j * 3) % 9 for i, m in enumerate("abcdef") for j, s in enumerate("xyz")
    }
    first = protect_table(cells, 2, T)
    assert protect_table(dict(reversed(list(cells.items()))), 2, T) == first
    assert any(item.suppressed for item in first)


def test_the_checker_finds_what_primary_suppression_alone_leaves() -> None:
    naive: dict[Key, int | None] = {("a",): None, ("b",): 20, (TOTAL,): 23}
    assert recoverable(naive) == {("a",): 3}
    assert single_line_recoveries(naive) == [("a",)]
    chained: dict[Key, int | None] = {
        ("a", "x"): None,
        ("a", "y"): None,
        ("b", "x"): 7,
        ("b", "y"): 9,
        ("a", TOTAL): 5,
        ("b", TOTAL): 16,
        (TOTAL, "x"): 9,
        (TOTAL, "y"): None,
        (TOTAL, TOTAL): 21,
    }
    assert recoverable(chained) == {("a", "x"): 2, ("a", "y"): 3, (TOTAL, "y"): 12}


# -- properties of suppression --------------------------------------------------------------------

VALUES = ("p", "q", "r", "s")
COUNTS = st.one_of(st.integers(0, 6), st.integers(0, 40))


@st.composite
def tables(draw: st.DrawFn) -> tuple[dict[Key, int], int]:
    width = draw(st.integers(1, 3))
    sizes = [draw(st.integers(1, 4)) for _ in range(width)]
    keys = st.tuples(*(st.sampled_from(VALUES[:n]) for n in sizes))
    cells = draw(st.dictionaries(keys, COUNTS, max_size=40))
    return cells, width


@given(tables(), st.integers(2, 8))
def test_no_published_count_is_small_and_none_is_wrong(
    table: tuple[dict[Key, int], int], threshold: int
) -> None:
    cells, width = table
    items = protect_table(cells, width, threshold)
    truth = with_margins(cells, width)
    assert {i.key for i in items} == set(truth)
    for item in items:
        assert item.suppressed == (item.count is None)
        if item.count is not None:
            assert item.count == truth[item.key]
            assert item.count == 0 or item.count >= threshold


@given(tables(), st.integers(2, 8))
def test_no_suppressed_count_can_be_recovered_by_subtraction(
    table: tuple[dict[Key, int], int], threshold: int
) -> None:
    cells, width = table
    view = published(protect_table(cells, width, threshold))
    assert single_line_recoveries(view) == []
    assert recoverable(view) == {}
    assert narrow_intervals(view, threshold) == []


@given(tables())
def test_suppression_is_minimal_where_nothing_is_small(table: tuple[dict[Key, int], int]) -> None:
    cells, width = table
    large = {key: count + T if count else 0 for key, count in cells.items()}
    assert all(not item.suppressed for item in protect_table(large, width, T))


# -- k-anonymity ----------------------------------------------------------------------------------


def test_regions_and_exploitation_values() -> None:
    assert [region_of(c) for c in ("UA", "TH", "CR", "NG", "AU", "unknown", "ZZ")] == [
        "Europe",
        "Asia",
        "Americas",
        "Africa",
        "Oceania",
        "unknown",
        OTHER,
    ]
    value = exploitation_value(["sexual_exploitation", "forced_labour", "sexual_exploitation"])
    assert value == "forced_labour+sexual_exploitation"
    assert exploitation_families(value) == "any labour+any sexual"
    assert exploitation_value([]) == NOT_SPECIFIED
    assert exploitation_families(NOT_SPECIFIED) == NOT_SPECIFIED
    assert exploitation_families("other") == "any other"


def record(
    *,
    year: str = "2026",
    country: str = "UA",
    sex: str = "female",
    band: str = "15-17",
    nationality: str = "UA",
    exploitation: str = "sexual_exploitation",
) -> dict[str, str]:
    return {
        "year": year,
        "country": country,
        "sex": sex,
        "age_band": band,
        "nationality": nationality,
        "exploitation": exploitation,
    }


def test_small_groups_climb_the_ladder_and_large_ones_keep_their_detail() -> None:
    records = [record() for _ in range(3)]
    records += [record(nationality="MD"), record(nationality="PL")]
    records += [record(nationality="NG")]
    result = k_anonymise(records, k=2, fields=CTDC_QUASI_IDENTIFIERS, ladder=ctdc_ladder("2026"))
    assert result.withheld == 1
    assert result.sources == [0, 1, 2, 3, 4]
    assert [r["nationality"] for r in result.records] == ["UA", "UA", "UA", "Europe", "Europe"]
    assert result.steps_applied["nationality to region"] == 3


def test_older_years_merge_and_what_stays_alone_is_withheld() -> None:
    records = [record(year="2024"), record(year="2025"), record(year="2026", sex="male")]
    result = k_anonymise(records, k=2, fields=CTDC_QUASI_IDENTIFIERS, ladder=ctdc_ladder("2026"))
    assert [r["year"] for r in result.records] == [OLDER, OLDER]
    assert result.withheld == 1


QI_VALUES = {
    "year": ("2024", "2025", "2026"),
    "country": ("UA", "TH"),
    "sex": ("female", "male", "unknown"),
    "age_band": ("6-11", "12-14", "15-17", "18+", "unknown"),
    "nationality": ("UA", "TH", "LA", "MD", "unknown"),
    "exploitation": (
        "sexual_exploitation",
        "forced_labour",
        "forced_labour+sexual_exploitation",
        "forced_marriage",
        NOT_SPECIFIED,
    ),
}
RECORDS = st.lists(
    st.fixed_dictionaries({f: st.sampled_from(v) for f, v in QI_VALUES.items()}), max_size=80
)


@given(RECORDS, st.integers(1, 12))
def test_every_exported_group_has_at_least_k_records(
    records: list[dict[str, str]], k: int
) -> None:
    ladder = ctdc_ladder("2026")
    result = k_anonymise(records, k=k, fields=CTDC_QUASI_IDENTIFIERS, ladder=ladder)
    sizes = Counter(tuple(r[f] for f in CTDC_QUASI_IDENTIFIERS) for r in result.records)
    assert all(size >= k for size in sizes.values())
    assert len(result.records) + result.withheld == len(records)
    assert len(set(result.sources)) == len(result.sources)
    for kept, index in zip(result.records, result.sources, strict=True):
        original = records[index]
        for field in CTDC_QUASI_IDENTIFIERS:
            allowed = {original[field]} | {
                s.generalise(original[field]) for s in ladder if s.field == field
            }
            assert kept[field] in allowed
    classes = equivalence_classes(result.records, CTDC_QUASI_IDENTIFIERS)
    assert sum(len(m) for m in classes.values()) == len(result.records)
