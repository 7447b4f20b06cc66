"""The de-identified case export in the CTDC/HTCDS shape, k-anonymous.

One row per identified case (those decided "not a victim" are left out), in random order,
numbered 1..n afresh for each export (`exportRow`): no case id, no name, no date but the year.

Columns, after the CTDC global dataset's names:
- `yearOfRegistration`: the year the child was identified, or "(older)" once generalised;
- `Datasource`: "Case Management";
- `countryOfIdentification`: ISO code of the country where the child was identified;
- `gender`: Female, Male, Transgender/NonConforming, or empty when unknown;
- `ageBroad`: the statistics' bands in CTDC notation, 0--5, 6--11, 12--14, 15--17, 18+, or 0--17
  once generalised; empty when unknown. `majorityStatus`: Minor, Adult, or empty;
- `citizenship`: ISO code, a region (Africa, Americas, Asia, Europe, Oceania) or "(other)" once
  generalised; empty when unknown;
- exploitation flags (1 or 0): `isSexualExploit`, `isForcedLabour`, `isOtherExploit` (the
  families of `disclosure.EXPLOITATION_FAMILIES`), `isSexAndLabour`, and the details
  `isForcedMarriage`, `isForcedMilitary`, `isOrganRemoval`, `isSlaveryAndPractices`,
  `typeOfLabourDomesticWork`, `typeOfLabourBegging`, `typeOfLabourIllicitActivities`,
  `typeOfSexRemoteInteractiveServices`, `typeOfSexPornography`. Generalised to families, the
  details are empty; generalised to "not specified", all are empty;
- means of control flags (`meansOfControl...`, one per HTCDS value) and recruiter relation flags
  (`recruiterRelation...`), from `ExploitationEpisodeRecorded`: 1 or 0; when none was recorded,
  `meansOfControlNotSpecified` or `recruiterRelationUnknown` is 1 and the others are empty.

Quasi-identifiers (`disclosure.CTDC_QUASI_IDENTIFIERS`): year, country, gender, age band,
nationality, exploitation types. Every combination of them in the export is shared by at least
k rows (`disclosure.k_anonymise` with `disclosure.ctdc_ladder`). Means of control and recruiter
relation are not quasi-identifiers: they are published as attributes of rows that are already
k-anonymous, and their diversity within a group is not enforced.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from projections.statistics import ExportSource
from referral_core.disclosure import (
    ADULT_BAND,
    CTDC_QUASI_IDENTIFIERS,
    EXPLOITATION_FAMILIES,
    LABOUR,
    NOT_SPECIFIED,
    OTHER_FAMILY,
    SEXUAL,
    TYPE_SEPARATOR,
    UNKNOWN,
    ctdc_ladder,
    exploitation_value,
    k_anonymise,
)
from referral_core.vocab import MeansOfControl, RecruiterRelation

GENDERS = {
    "female": "Female",
    "male": "Male",
    "transgender_or_nonconforming": "Transgender/NonConforming",
}
DETAIL_FLAGS: dict[str, str] = {
    "isForcedMarriage": "forced_marriage",
    "isForcedMilitary": "forced_military",
    "isOrganRemoval": "organ_removal",
    "isSlaveryAndPractices": "slavery_and_similar_practices",
    "typeOfLabourDomesticWork": "domestic_servitude",
    "typeOfLabourBegging": "forced_begging",
    "typeOfLabourIllicitActivities": "forced_criminality",
    "typeOfSexRemoteInteractiveServices": "online_sexual_exploitation",
    "typeOfSexPornography": "child_sexual_abuse_material",
}
FAMILY_FLAGS: dict[str, str] = {
    "isSexualExploit": SEXUAL,
    "isForcedLabour": LABOUR,
    "isOtherExploit": OTHER_FAMILY,
}


def _camel(value: str) -> str:
    return "".join(part.capitalize() for part in value.split("_"))


MEANS_FLAGS: dict[str, str] = {f"meansOfControl{_camel(m.value)}": m.value for m in MeansOfControl}
MEANS_NOT_SPECIFIED = "meansOfControlNotSpecified"
RELATION_FLAGS: dict[str, str] = {
    f"recruiterRelation{_camel(r.value)}": r.value for r in RecruiterRelation
}
RELATION_UNKNOWN = f"recruiterRelation{_camel(RecruiterRelation.UNKNOWN.value)}"

COLUMNS: tuple[str, ...] = (
    "exportRow",
    "yearOfRegistration",
    "Datasource",
    "countryOfIdentification",
    "gender",
    "ageBroad",
    "majorityStatus",
    "citizenship",
    *FAMILY_FLAGS,
    "isSexAndLabour",
    *DETAIL_FLAGS,
    *MEANS_FLAGS,
    MEANS_NOT_SPECIFIED,
    *RELATION_FLAGS,
)
QUASI_IDENTIFIER_COLUMNS: tuple[str, ...] = (
    "yearOfRegistration",
    "countryOfIdentification",
    "gender",
    "ageBroad",
    "majorityStatus",
    "citizenship",
    *FAMILY_FLAGS,
    "isSexAndLabour",
    *DETAIL_FLAGS,
)
"""The columns that carry the quasi-identifiers: each combination appears at least k times."""


@dataclass(frozen=True)
class CtdcExport:
    columns: tuple[str, ...]
    rows: list[dict[str, str]]
    withheld: int
    k: int


def _flag(present: bool) -> str:
    return "1" if present else "0"


def _exploitation_columns(value: str) -> dict[str, str]:
    blank = dict.fromkeys((*FAMILY_FLAGS, "isSexAndLabour", *DETAIL_FLAGS), "")
    if value == NOT_SPECIFIED:
        return blank
    parts = set(value.split(TYPE_SEPARATOR))
    generalised = parts <= {SEXUAL, LABOUR, OTHER_FAMILY}
    families = (
        parts if generalised else {EXPLOITATION_FAMILIES.get(t, OTHER_FAMILY) for t in parts}
    )
    columns = blank | {flag: _flag(f in families) for flag, f in FAMILY_FLAGS.items()}
    columns["isSexAndLabour"] = _flag({SEXUAL, LABOUR} <= families)
    if not generalised:
        columns |= {flag: _flag(t in parts) for flag, t in DETAIL_FLAGS.items()}
    return columns


def _age_columns(band: str) -> dict[str, str]:
    if band == UNKNOWN:
        return {"ageBroad": "", "majorityStatus": ""}
    status = "Adult" if band == ADULT_BAND else "Minor"
    return {"ageBroad": band.replace("-", "--"), "majorityStatus": status}


def _flags(recorded: Sequence[str], flags: Mapping[str, str], fallback: str) -> dict[str, str]:
    if not recorded:
        return dict.fromkeys(flags, "") | {fallback: "1"}
    return {flag: _flag(value in recorded) for flag, value in flags.items()}


def _row(qi: Mapping[str, str], source: ExportSource) -> dict[str, str]:
    nationality = qi["nationality"]
    return {
        "yearOfRegistration": qi["year"],
        "Datasource": "Case Management",
        "countryOfIdentification": "" if qi["country"] == UNKNOWN else qi["country"],
        "gender": GENDERS.get(qi["sex"], ""),
        **_age_columns(qi["age_band"]),
        "citizenship": "" if nationality == UNKNOWN else nationality,
        **_exploitation_columns(qi["exploitation"]),
        **_flags(source.means_of_control, MEANS_FLAGS, MEANS_NOT_SPECIFIED),
        MEANS_NOT_SPECIFIED: _flag(not source.means_of_control),
        **_flags(source.recruiter_relations, RELATION_FLAGS, RELATION_UNKNOWN),
    }


def quasi_identifiers(source: ExportSource) -> dict[str, str]:
    return {
        "year": source.month[:4],
        "country": source.country,
        "sex": source.sex,
        "age_band": source.age_band,
        "nationality": source.nationality,
        "exploitation": exploitation_value(source.exploitation_types),
    }


def ctdc_export(
    sources: Sequence[ExportSource], *, k: int, rng: random.Random | None = None
) -> CtdcExport:
    """The k-anonymous export rows of `sources`, shuffled and numbered from 1."""
    records = [quasi_identifiers(s) for s in sources]
    newest = max((r["year"] for r in records), default="")
    result = k_anonymise(records, k=k, fields=CTDC_QUASI_IDENTIFIERS, ladder=ctdc_ladder(newest))
    rows = [
        _row(qi, sources[index]) for qi, index in zip(result.records, result.sources, strict=True)
    ]
    (rng or random.SystemRandom()).shuffle(rows)
    numbered = [{"exportRow": str(number), **row} for number, row in enumerate(rows, start=1)]
    return CtdcExport(columns=COLUMNS, rows=numbered, withheld=result.withheld, k=k)
