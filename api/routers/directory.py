"""Who am I, and which agencies exist: the directory as the caller needs it."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api import problems
from api.confirmed_route import ConfirmedRoute
from api.context import PrincipalDep, ServicesDep

router = APIRouter(
    route_class=ConfirmedRoute, tags=["directory"], responses=problems.responses(*problems.COMMON)
)


@router.get("/me", summary="The caller: user, agency and role")
def me(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    directory = services.directory.current()
    agency = directory.agencies[principal.agency_id]
    user = directory.users[principal.user_id]
    return {
        "user_id": principal.user_id,
        "display_name": user["display_name"],
        "role": principal.role.value,
        "agency": {k: agency[k] for k in ("agency_id", "kind", "country", "name")},
    }


@router.get("/agencies", summary="Every registered agency (to choose referral receivers)")
def agencies(services: ServicesDep, principal: PrincipalDep) -> dict[str, Any]:
    directory = services.directory.current()
    items = [
        {k: a[k] for k in ("agency_id", "kind", "country", "name")}
        for a in sorted(directory.agencies.values(), key=lambda a: (a["country"], a["name"]))
    ]
    return {"items": items}
