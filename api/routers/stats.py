"""Statistics with small cells suppressed, and the de-identified CTDC export. Aggregates only.

- `GET /stats`: identified cases counted by up to four dimensions (`by=month,sex`), with every
  margin; ministries, coordinators and auditors.
- `GET /stats/hotline`: contacts counted the same way, in the shape of La Strada's figures (by
  topic, age group, channel, month); a hotline sees its own contacts, ministries, coordinators
  and auditors see all.
- `GET /exports/ctdc.csv`: one k-anonymous row per case in the CTDC/HTCDS shape; ministries and
  auditors.

Counts from 1 to `REFERRAL_STATS_THRESHOLD` - 1, and every count from which one of them could be
worked out by subtraction, are published as `null` with `"suppressed": true` (see
`referral_core.disclosure`). Each cell and margin is an object of its dimension values (`"*"`
where a margin adds that dimension up), `count` and `suppressed`; combinations not listed are 0.
JSON by default; CSV with `Accept: text/csv` or `?format=csv`. A JSON table says the read-model
`position` it was counted at: tables are counted again once the read models move and a few
seconds have passed, or at once for a reader asking for a newer position (`api.table_cache`).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from api import problems
from api.confirmed_route import ConfirmedRoute
from api.context import PrincipalDep, Services, ServicesDep
from api.problems import Problem
from api.waiting import WaitedDep
from projections.statistics import (
    CASE_DIMENSIONS,
    CONTACT_DIMENSIONS,
    HotlineStatistics,
    MonthRange,
    NationalStatistics,
    count_cases,
    count_contacts,
    export_sources,
)
from projections.stats_export import ctdc_export
from referral_core.disclosure import TOTAL, ProtectedItem, protect_table
from referral_core.errors import PermissionDeniedError
from referral_core.policy import Principal
from referral_core.vocab import AgencyKind

router = APIRouter(
    route_class=ConfirmedRoute,
    tags=["statistics"],
    responses=problems.responses(*problems.COMMON, 504),
)

K = AgencyKind
STATS_READERS = frozenset({K.MINISTRY, K.COORDINATOR, K.AUDITOR})
HOTLINE_READERS = STATS_READERS | {K.HOTLINE}
EXPORT_READERS = frozenset({K.MINISTRY, K.AUDITOR})
MAX_DIMENSIONS = 4
MONTH = r"^\d{4}-(0[1-9]|1[0-2])$"
CSV = "text/csv; charset=utf-8"
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")

TABLE_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"content": {"application/json": {}, "text/csv": {}}},
    403: {"description": "The caller's agency kind may not read these statistics"},
}

By = Annotated[
    str,
    Query(max_length=200, description="Comma-separated dimensions, at most four"),
]
From = Annotated[
    str | None, Query(alias="from", pattern=MONTH, description="First month (YYYY-MM)")
]
To = Annotated[str | None, Query(pattern=MONTH, description="Last month (YYYY-MM)")]
Format = Annotated[
    Literal["json", "csv"] | None,
    Query(alias="format", description="csv, or Accept: text/csv; JSON by default"),
]


def _allow(principal: Principal, kinds: frozenset[AgencyKind], what: str) -> None:
    if principal.agency_kind not in kinds:
        raise PermissionDeniedError(f"{what} are for {', '.join(sorted(kinds))} agencies")


def parse_dimensions(by: str, allowed: Iterable[str]) -> list[str]:
    """The requested dimensions, in order; 422 when empty, unknown, repeated or too many."""
    names = [name.strip() for name in by.split(",")]
    known = list(allowed)
    unknown = [name for name in names if name not in known]
    if unknown or not names:
        raise Problem(
            422,
            "invalid-dimension",
            "by names unknown dimensions",
            f"dimensions are: {', '.join(known)}",
        )
    if len(set(names)) != len(names):
        raise Problem(422, "invalid-dimension", "by names a dimension twice")
    if len(names) > MAX_DIMENSIONS:
        raise Problem(
            422,
            "invalid-dimension",
            f"by names at most {MAX_DIMENSIONS} dimensions",
            "tables of more dimensions are nearly all suppressed",
        )
    return names


def _months(start: str | None, end: str | None) -> MonthRange:
    if start is not None and end is not None and start > end:
        raise Problem(422, "invalid-range", "from is after to")
    return MonthRange(start, end)


def _counted(
    services: Services,
    key: tuple[Any, ...],
    read_model: str,
    count: Callable[[], list[ProtectedItem]],
    min_position: int | None,
) -> tuple[list[ProtectedItem], int]:
    """The protected table for `key`, counted now or recently (`api.table_cache`)."""
    position = services.runner.positions().get(read_model, 0)
    return services.tables.table(
        key,
        position=position,
        seconds=services.settings.stats_cache_seconds,
        count=count,
        at_least=min_position,
    )


def _wants_csv(request: Request, fmt: str | None) -> bool:
    if fmt is not None:
        return fmt == "csv"
    return "text/csv" in request.headers.get("accept", "")


def _item(dimensions: Sequence[str], item: ProtectedItem) -> dict[str, Any]:
    return {
        **dict(zip(dimensions, item.key, strict=True)),
        "count": item.count,
        "suppressed": item.suppressed,
    }


def _safe(value: str) -> str:
    """A CSV field a spreadsheet will not run as a formula."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def csv_text(columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_safe(_csv_value(row.get(c))) for c in columns])
    return buffer.getvalue()


def _csv_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _table(
    request: Request,
    fmt: str | None,
    dimensions: Sequence[str],
    items: list[ProtectedItem],
    meta: dict[str, Any],
    filename: str,
) -> Response:
    cells = [_item(dimensions, i) for i in items if not i.margin]
    margins = [_item(dimensions, i) for i in items if i.margin]
    headers = {"Vary": "Accept", "Cache-Control": "no-store"}
    if _wants_csv(request, fmt):
        text = csv_text([*dimensions, "count", "suppressed"], [*cells, *margins])
        headers["Content-Disposition"] = f'inline; filename="{filename}"'
        return Response(text, media_type=CSV, headers=headers)
    body = {**meta, "by": list(dimensions), "total": TOTAL, "cells": cells, "margins": margins}
    return JSONResponse(body, headers=headers)


@router.get(
    "/stats",
    summary="Identified cases by month, stage, sex, age band, nationality, exploitation type, ...",
    response_class=Response,
    responses=TABLE_RESPONSES,
)
def national_statistics(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    waited: WaitedDep,
    by: By = "month",
    start: From = None,
    to: To = None,
    fmt: Format = None,
) -> Response:
    """Counted by exploitation type, a case with two types counts once under each."""
    _allow(principal, STATS_READERS, "national statistics")
    dimensions = parse_dimensions(by, CASE_DIMENSIONS)
    months = _months(start, to)
    min_position = waited.require()
    threshold = services.settings.stats_threshold

    def count() -> list[ProtectedItem]:
        with services.db.reading() as tx:
            cells = count_cases(tx, dimensions, months)
        return protect_table(cells, len(dimensions), threshold)

    key = (NationalStatistics.name, tuple(dimensions), start, to, threshold)
    items, position = _counted(services, key, NationalStatistics.name, count, min_position)
    unit = "case-exploitation type pairs" if "exploitation_type" in dimensions else "cases"
    meta = {"from": start, "to": to, "threshold": threshold, "unit": unit, "position": position}
    return _table(request, fmt, dimensions, items, meta, "referral-stats.csv")


@router.get(
    "/stats/hotline",
    summary="Hotline contacts by topic, age group, channel, caller type, month",
    response_class=Response,
    responses=TABLE_RESPONSES,
)
def hotline_statistics(
    request: Request,
    services: ServicesDep,
    principal: PrincipalDep,
    waited: WaitedDep,
    by: By = "topic",
    start: From = None,
    to: To = None,
    fmt: Format = None,
) -> Response:
    """A hotline sees the contacts it recorded; a contact with two topics counts under each."""
    _allow(principal, HOTLINE_READERS, "hotline statistics")
    dimensions = parse_dimensions(by, CONTACT_DIMENSIONS)
    months = _months(start, to)
    own = principal.agency_kind is AgencyKind.HOTLINE
    min_position = waited.require()
    threshold = services.settings.stats_threshold
    scope = principal.agency_id if own else None

    def count() -> list[ProtectedItem]:
        with services.db.reading() as tx:
            cells = count_contacts(tx, dimensions, months, scope)
        return protect_table(cells, len(dimensions), threshold)

    key = (HotlineStatistics.name, tuple(dimensions), start, to, threshold, scope)
    items, position = _counted(services, key, HotlineStatistics.name, count, min_position)
    meta = {
        "from": start,
        "to": to,
        "threshold": threshold,
        "unit": "contact-topic pairs" if "topic" in dimensions else "contacts",
        "scope": "agency" if own else "all",
        "position": position,
    }
    return _table(request, fmt, dimensions, items, meta, "referral-hotline-stats.csv")


@router.get(
    "/exports/ctdc.csv",
    summary="De-identified, k-anonymous case records in the CTDC/HTCDS shape",
    response_class=Response,
    responses={
        200: {"content": {"text/csv": {}}},
        403: {"description": "Ministries and auditors only"},
    },
)
def ctdc_csv(services: ServicesDep, principal: PrincipalDep, waited: WaitedDep) -> Response:
    """One row per case; `X-Records-Withheld` says how many rows k-anonymity left out."""
    _allow(principal, EXPORT_READERS, "case exports")
    waited.require()
    with services.db.reading() as tx:
        sources = export_sources(tx)
    export = ctdc_export(sources, k=services.settings.export_k)
    day = services.app.clock().date().isoformat()
    headers = {
        "Content-Disposition": f'attachment; filename="ctdc-export-{day}.csv"',
        "Cache-Control": "no-store",
        "X-K-Anonymity": str(export.k),
        "X-Records-Withheld": str(export.withheld),
    }
    return Response(csv_text(export.columns, export.rows), media_type=CSV, headers=headers)
