"""Each agency's inbox and each shelter's roster."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["work"])
