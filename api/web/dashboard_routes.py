"""The dashboard: charts of the published statistics, suppressed cells shown as such, CSV.

The numbers come from the JSON API's statistics functions (`api.routers.stats`), with the
same readers, threshold and suppression; a chart never shows a count the API would withhold.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response

from api.context import Services, ServicesDep
from api.routers import stats as stats_routes
from api.waiting import NOT_ASKED
from api.web.context import TranslatorDep, UserDep, WebUser
from api.web.i18n import N_
from api.web.render import WebRoute, page
from referral_core.errors import PermissionDeniedError

router = APIRouter(route_class=WebRoute, include_in_schema=False)
Source = Literal["cases", "hotline"]

CHARTS: tuple[tuple[Source, str, str], ...] = (
    ("cases", "month", N_("Identifications per month")),
    ("cases", "exploitation_type", N_("By exploitation type")),
    ("cases", "age_band", N_("By age band")),
    ("cases", "nationality", N_("By nationality")),
    ("hotline", "topic", N_("Hotline contacts by topic")),
)


@dataclass(frozen=True)
class Bar:
    label: str
    count: int | None
    suppressed: bool
    width: float
    """Percent of the largest published count."""


@dataclass(frozen=True)
class Chart:
    source: Source
    dimension: str
    title: str
    bars: list[Bar]
    total: int | None
    total_suppressed: bool
    unit: str


def _table(  # noqa: PLR0917
    request: Request,
    services: Services,
    user: WebUser,
    source: Source,
    by: str,
    fmt: Literal["json", "csv"],
) -> Response:
    if source == "cases":
        return stats_routes.national_statistics(
            request=request,
            services=services,
            principal=user.principal,
            by=by,
            start=None,
            to=None,
            fmt=fmt,
            waited=NOT_ASKED,
        )
    return stats_routes.hotline_statistics(
        request=request,
        services=services,
        principal=user.principal,
        by=by,
        start=None,
        to=None,
        fmt=fmt,
        waited=NOT_ASKED,
    )


def _chart(
    request: Request, services: Services, user: WebUser, spec: tuple[Source, str, str]
) -> Chart:
    source, dimension, title = spec
    body: dict[str, Any] = json.loads(
        bytes(_table(request, services, user, source, dimension, "json").body)
    )
    cells = sorted(body["cells"], key=lambda c: str(c[dimension]))
    if dimension != "month":
        cells = sorted(cells, key=lambda c: -(c["count"] or 0))
    largest = max((c["count"] or 0 for c in cells), default=0) or 1
    bars = [
        Bar(
            label=str(c[dimension]),
            count=c["count"],
            suppressed=bool(c["suppressed"]),
            width=round(100 * (c["count"] or 0) / largest, 1),
        )
        for c in cells
    ]
    total = next((m for m in body["margins"] if m[dimension] == body["total"]), None)
    return Chart(
        source=source,
        dimension=dimension,
        title=title,
        bars=bars,
        total=None if total is None else total["count"],
        total_suppressed=bool(total and total["suppressed"]),
        unit=str(body.get("unit", "")),
    )


@router.get("/web/dashboard")
def dashboard_page(
    request: Request, services: ServicesDep, user: UserDep, t: TranslatorDep
) -> Response:
    charts: list[Chart] = []
    for spec in CHARTS:
        try:
            charts.append(_chart(request, services, user, spec))
        except PermissionDeniedError:
            continue
    if not charts:
        raise PermissionDeniedError("no statistics for this agency")
    return page(
        request,
        "dashboard.html",
        t,
        user,
        title=t.gettext("Dashboard"),
        charts=charts,
        threshold=services.settings.stats_threshold,
    )


@router.get("/web/dashboard.csv")
def dashboard_csv(
    request: Request,
    services: ServicesDep,
    user: UserDep,
    source: Annotated[Source, Query()] = "cases",
    by: Annotated[str, Query(max_length=200)] = "month",
) -> Response:
    response = _table(request, services, user, source, by, "csv")
    response.headers["Content-Disposition"] = (
        f'attachment; filename="referral-{source}-{by.replace(",", "-")}.csv"'
    )
    return response
