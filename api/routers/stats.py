"""Statistics with small cells suppressed, and the de-identified CTDC export."""

from __future__ import annotations

from fastapi import APIRouter

router = APIRouter(tags=["statistics"])
