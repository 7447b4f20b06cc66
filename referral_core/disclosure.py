"""Statistical disclosure control: age bands, cell suppression and k-anonymity. Pure functions.

Published statistics and the de-identified export must not single out a child. Three tools:

**Bands.** Ages are published only as bands (`age_band`): 0-5, 6-11, 12-14, 15-17, 18+, unknown,
taken from the age in years as recorded (never from a birth date).

**Cell suppression** (`protect_table`), for a count table of any number of dimensions published
with all its margins. Every count, a cell or a margin, is an *item*; every additive relation
"margin = sum of the items it adds up", one per margin and per dimension it aggregates, is a
*line* (a row, a column, the line of totals; in three dimensions, every such relation of the
cube). Then:

1. *Primary suppression*: an item with a count in 1..threshold-1 is suppressed. True zeros are
   published (as 0, or by omission: a table lists only its non-empty combinations). Publishing
   zeros is standard practice; a zero says no child is in that cell.
2. *Complementary suppression*, until stable, line by line:
   - a line with exactly one suppressed item would give it away by one subtraction, so the
     smallest other non-zero published item of the line is suppressed too (a part before the
     total on a tie; the total when no part is left);
   - a line whose total is published and whose suppressed parts sum to S, with h of them, must
     leave each suppressed part an upper bound of at least threshold-1 (S - (h - 1) >= threshold
     - 1), or two suppressed ones would, for example, be known to be 1 each; otherwise the
     smallest non-zero published item of the line is suppressed too.
   Each pass suppresses one more item, so it ends; a published non-zero item is always at least
   the threshold (primary suppression saw to that), and a line with a suppressed part has a
   non-zero total, so there is always an item to choose. The choice is deterministic: the same
   table always gets the same pattern, so asking twice reveals nothing more.

   What this guarantees: no published count is in 1..threshold-1, and no suppressed count can be
   worked out from one line (nor from chains of single-line subtractions). It is not a linear
   programming audit of the whole table, and each table is protected on its own: two different
   tables (another grouping, another period) are not protected against each other.

**k-anonymity** (`k_anonymise`), for record exports. Records are grouped by their
quasi-identifiers; a record in a group of fewer than k is generalised one rung of a ladder at a
time (only records in small groups are, so most keep their detail), and a record still in a
small group after the last rung is withheld. `CTDC_QUASI_IDENTIFIERS` and `ctdc_ladder` define
the ladder of the CTDC/HTCDS export:

1. nationality -> its region (Africa, Americas, Asia, Europe, Oceania);
2. age band -> child (0-17), adult (18+) or unknown;
3. exploitation types -> their families (sexual, labour, other);
4. year -> "(older)" when before the newest year of the export (the newest year stays);
5. nationality -> "(other)" (any other or unknown nationality);
6. exploitation types -> "(not specified)";
then records still in groups of fewer than k are withheld.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import product

# -- bands ----------------------------------------------------------------------------------------

UNKNOWN = "unknown"
AGE_BANDS: tuple[tuple[str, int, int], ...] = (
    ("0-5", 0, 5),
    ("6-11", 6, 11),
    ("12-14", 12, 14),
    ("15-17", 15, 17),
)
ADULT_BAND = "18+"
CHILD_BROAD = "0-17"
AGE_BAND_ORDER: tuple[str, ...] = (*(b for b, _, _ in AGE_BANDS), ADULT_BAND, UNKNOWN)


def age_band(age_years: int | None) -> str:
    """The published band of an age in completed years; `unknown` without an age."""
    if age_years is None or age_years < 0:
        return UNKNOWN
    for band, low, high in AGE_BANDS:
        if low <= age_years <= high:
            return band
    return ADULT_BAND


def broad_age_band(band: str) -> str:
    """A band coarsened to child (0-17), adult (18+) or unknown."""
    if band in (ADULT_BAND, UNKNOWN):
        return band
    return CHILD_BROAD


# -- cell suppression -----------------------------------------------------------------------------

TOTAL = "*"
"""The value of a dimension that a margin adds up over."""

Key = tuple[str, ...]


@dataclass(frozen=True)
class Line:
    """One additive relation of a table: `total` is the sum of `parts`."""

    total: Key
    parts: tuple[Key, ...]

    @property
    def items(self) -> tuple[Key, ...]:
        return (self.total, *self.parts)


@dataclass(frozen=True)
class ProtectedItem:
    """A published count: `count` is None when suppressed; `margin` when it adds up cells."""

    key: Key
    count: int | None
    suppressed: bool
    margin: bool


def with_margins(cells: Mapping[Key, int], width: int) -> dict[Key, int]:
    """The cells and every margin of a `width`-dimensional table, the grand total included."""
    table: dict[Key, int] = {(TOTAL,) * width: 0}
    for key, count in cells.items():
        if len(key) != width or TOTAL in key:
            raise ValueError(f"a cell key has {width} values, none of them {TOTAL!r}")
        if count < 0:
            raise ValueError("counts are not negative")
        for mask in product((False, True), repeat=width):
            margin = tuple(TOTAL if hide else value for value, hide in zip(key, mask, strict=True))
            table[margin] = table.get(margin, 0) + count
    return table


def lines_of(keys: Iterable[Key]) -> list[Line]:
    """Every line of a table with margins: one per margin and per dimension it adds up over."""
    groups: dict[tuple[Key, int], list[Key]] = defaultdict(list)
    present = set(keys)
    for key in present:
        for position, value in enumerate(key):
            if value != TOTAL:
                parent = (*key[:position], TOTAL, *key[position + 1 :])
                groups[(parent, position)].append(key)
    return [
        Line(parent, tuple(sorted(parts)))
        for (parent, _position), parts in sorted(groups.items())
        if parent in present
    ]


def primary_suppression(table: Mapping[Key, int], threshold: int) -> set[Key]:
    """Items with a count in 1..threshold-1."""
    return {key for key, count in table.items() if 0 < count < threshold}


def _needs_complement(
    line: Line, table: Mapping[Key, int], hidden: set[Key], threshold: int
) -> bool:
    hidden_parts = [part for part in line.parts if part in hidden]
    hidden_total = line.total in hidden
    suppressed = len(hidden_parts) + hidden_total
    if suppressed == 0:
        return False
    if suppressed == 1:
        return True
    if hidden_total:
        return False
    spread = sum(table[part] for part in hidden_parts) - (len(hidden_parts) - 1)
    return spread < threshold - 1


def _complement(line: Line, table: Mapping[Key, int], hidden: set[Key]) -> Key:
    """The smallest non-zero published item of the line; a part before the total on a tie."""
    candidates = [key for key in line.items if key not in hidden and table[key] > 0]
    return min(candidates, key=lambda key: (table[key], key == line.total, key))


def complementary_suppression(
    table: Mapping[Key, int], hidden: Iterable[Key], threshold: int
) -> set[Key]:
    """`hidden` and the complements that keep every hidden item from being recovered."""
    suppressed = set(hidden)
    lines = lines_of(table)
    member_of: dict[Key, list[int]] = defaultdict(list)
    for index, line in enumerate(lines):
        for key in line.items:
            member_of[key].append(index)
    queue = deque(range(len(lines)))
    queued = set(queue)
    while queue:
        index = queue.popleft()
        queued.discard(index)
        line = lines[index]
        if not _needs_complement(line, table, suppressed, threshold):
            continue
        chosen = _complement(line, table, suppressed)
        suppressed.add(chosen)
        for other in (index, *member_of[chosen]):
            if other not in queued:
                queue.append(other)
                queued.add(other)
    return suppressed


def protect_table(cells: Mapping[Key, int], width: int, threshold: int) -> list[ProtectedItem]:
    """The cells and margins of a table, small counts and their complements suppressed.

    Items come sorted: the cells first, then the margins (the grand total last).
    """
    if threshold < 1:
        raise ValueError("the threshold is at least 1")
    table = with_margins(cells, width)
    hidden = complementary_suppression(table, primary_suppression(table, threshold), threshold)
    items = [
        ProtectedItem(
            key=key,
            count=None if key in hidden else count,
            suppressed=key in hidden,
            margin=TOTAL in key,
        )
        for key, count in table.items()
    ]
    items.sort(key=lambda item: (item.margin, sum(v == TOTAL for v in item.key), item.key))
    return items


def recoverable(published: Mapping[Key, int | None]) -> dict[Key, int]:
    """The suppressed items (None) that subtraction along lines recovers, with their values.

    An attacker's view: any line with exactly one unknown item gives it away; a recovered item
    is then known, and the lines are tried again until nothing more comes out.
    """
    known: dict[Key, int] = {k: v for k, v in published.items() if v is not None}
    found: dict[Key, int] = {}
    lines = lines_of(published)
    progress = True
    while progress:
        progress = False
        for line in lines:
            unknown = [key for key in line.items if key not in known]
            if len(unknown) != 1:
                continue
            (missing,) = unknown
            parts = sum(known[p] for p in line.parts if p != missing)
            value = parts if missing == line.total else known[line.total] - parts
            known[missing] = found[missing] = value
            progress = True
    return found


# -- k-anonymity ----------------------------------------------------------------------------------

QuasiIdentifiers = Mapping[str, str]


@dataclass(frozen=True)
class Step:
    """One rung of a generalisation ladder: `field` of a record becomes `generalise(original)`."""

    name: str
    field: str
    generalise: Callable[[str], str]


@dataclass(frozen=True)
class KAnonymous:
    """The records kept (generalised), where they came from, and how many were withheld."""

    records: list[dict[str, str]]
    sources: list[int]
    """For each kept record, its index in the input."""
    withheld: int
    steps_applied: dict[str, int]
    """How many records each rung generalised."""


def equivalence_classes(
    records: Sequence[QuasiIdentifiers], fields: Sequence[str]
) -> dict[tuple[str, ...], list[int]]:
    """Record indexes grouped by their values of `fields`."""
    classes: dict[tuple[str, ...], list[int]] = defaultdict(list)
    for index, record in enumerate(records):
        classes[tuple(record[f] for f in fields)].append(index)
    return classes


def _in_small_classes(
    records: Sequence[QuasiIdentifiers], fields: Sequence[str], k: int
) -> list[int]:
    small = [
        index
        for members in equivalence_classes(records, fields).values()
        if len(members) < k
        for index in members
    ]
    return sorted(small)


def k_anonymise(
    records: Sequence[QuasiIdentifiers],
    *,
    k: int,
    fields: Sequence[str],
    ladder: Sequence[Step],
) -> KAnonymous:
    """Generalise records in groups of fewer than `k`, rung by rung; withhold what stays small.

    Only the `fields` of each record are read and returned. Every rung generalises a field from
    its original value, so a later rung of the same field replaces an earlier one.
    """
    if k < 1:
        raise ValueError("k is at least 1")
    current = [{f: record[f] for f in fields} for record in records]
    applied: dict[str, int] = {}
    for step in ladder:
        small = _in_small_classes(current, fields, k)
        if not small:
            break
        for index in small:
            current[index][step.field] = step.generalise(records[index][step.field])
        applied[step.name] = len(small)
    withheld = set(_in_small_classes(current, fields, k))
    kept = [index for index in range(len(current)) if index not in withheld]
    return KAnonymous(
        records=[current[i] for i in kept],
        sources=kept,
        withheld=len(withheld),
        steps_applied=applied,
    )


# -- the CTDC/HTCDS export's quasi-identifiers and ladder -----------------------------------------

CTDC_QUASI_IDENTIFIERS: tuple[str, ...] = (
    "year",
    "country",
    "sex",
    "age_band",
    "nationality",
    "exploitation",
)
OLDER = "(older)"
OTHER = "(other)"
NOT_SPECIFIED = "(not specified)"
TYPE_SEPARATOR = "+"

SEXUAL = "any sexual"
LABOUR = "any labour"
OTHER_FAMILY = "any other"
EXPLOITATION_FAMILIES: dict[str, str] = {
    "sexual_exploitation": SEXUAL,
    "online_sexual_exploitation": SEXUAL,
    "child_sexual_abuse_material": SEXUAL,
    "sexual_exploitation_in_travel_and_tourism": SEXUAL,
    "forced_labour": LABOUR,
    "domestic_servitude": LABOUR,
    "forced_begging": LABOUR,
    "forced_criminality": LABOUR,
    "forced_marriage": OTHER_FAMILY,
    "forced_military": OTHER_FAMILY,
    "organ_removal": OTHER_FAMILY,
    "slavery_and_similar_practices": OTHER_FAMILY,
    "other": OTHER_FAMILY,
}
"""HTCDS exploitation types by CTDC family: isSexualExploit, isForcedLabour, isOtherExploit.

A family value ("any sexual") never equals a type's value, so a generalised value is told apart.
"""

_REGION_CODES: dict[str, str] = {
    "Africa": (
        "AO BF BI BJ BW CD CF CG CI CM CV DJ DZ EG EH ER ET GA GH GM GN GQ GW IO KE KM LR LS LY "
        "MA MG ML MR MU MW MZ NA NE NG RE RW SC SD SH SL SN SO SS ST SZ TD TF TG TN TZ UG YT ZA "
        "ZM ZW"
    ),
    "Americas": (
        "AG AI AR AW BB BL BM BO BQ BR BS BV BZ CA CL CO CR CU CW DM DO EC FK GD GF GL GP GS GT "
        "GY HN HT JM KN KY LC MF MQ MS MX NI PA PE PM PR PY SR SV SX TC TT UM US UY VC VE VG VI"
    ),
    "Asia": (
        "AE AF AM AZ BD BH BN BT CN CY GE HK ID IL IN IQ IR JO JP KG KH KP KR KW KZ LA LB LK MM "
        "MN MO MV MY NP OM PH PK PS QA SA SG SY TH TJ TL TM TR TW UZ VN YE"
    ),
    "Europe": (
        "AD AL AT AX BA BE BG BY CH CZ DE DK EE ES FI FO FR GB GG GI GR HR HU IE IM IS IT JE LI "
        "LT LU LV MC MD ME MK MT NL NO PL PT RO RS RU SE SI SJ SK SM UA VA XK"
    ),
    "Oceania": (
        "AS AU CC CK CX FJ FM GU HM KI MH MP NC NF NR NU NZ PF PG PN PW SB TK TO TV VU WF WS"
    ),
}
REGIONS: dict[str, str] = {
    code: region for region, codes in _REGION_CODES.items() for code in codes.split()
}
"""ISO 3166-1 alpha-2 code -> continental region (UN M49)."""


def region_of(nationality: str) -> str:
    """A nationality's region; `unknown` stays unknown; an unlisted code is "(other)"."""
    if nationality == UNKNOWN:
        return UNKNOWN
    return REGIONS.get(nationality, OTHER)


def exploitation_value(types: Iterable[str]) -> str:
    """The quasi-identifier value of a case's exploitation types (sorted, joined)."""
    found = sorted(set(types))
    return TYPE_SEPARATOR.join(found) if found else NOT_SPECIFIED


def exploitation_families(value: str) -> str:
    """An exploitation value coarsened to the families of its types."""
    if value == NOT_SPECIFIED:
        return value
    families = {EXPLOITATION_FAMILIES.get(t, OTHER_FAMILY) for t in value.split(TYPE_SEPARATOR)}
    return TYPE_SEPARATOR.join(sorted(families))


def _older_than(newest_year: str) -> Callable[[str], str]:
    def generalise(year: str) -> str:
        return OLDER if year < newest_year else year

    return generalise


def ctdc_ladder(newest_year: str) -> list[Step]:
    """The generalisation ladder of the CTDC export (see the module docstring)."""
    return [
        Step("nationality to region", "nationality", region_of),
        Step("age band to child or adult", "age_band", broad_age_band),
        Step("exploitation types to families", "exploitation", exploitation_families),
        Step("year to (older)", "year", _older_than(newest_year)),
        Step("nationality to (other)", "nationality", lambda _value: OTHER),
        Step("exploitation to (not specified)", "exploitation", lambda _value: NOT_SPECIFIED),
    ]
