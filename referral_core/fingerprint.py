"""A stable digest of what an event says, so a re-sent event can be told from a different one."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any
from uuid import UUID

from referral_core.envelope import Actor


def canonical_json(value: Any) -> bytes:
    """JSON with sorted keys and no spaces: the same value always gives the same bytes."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    ).encode("utf-8")


def fingerprint(
    event_type: str,
    *,
    payload: dict[str, Any],
    occurred_at: datetime,
    legal_basis: str | None,
    consent_ref: str | UUID | None,
    actor: Actor,
) -> str:
    body = {
        "type": event_type,
        "payload": payload,
        "occurred_at": occurred_at.isoformat(),
        "legal_basis": legal_basis,
        "consent_ref": str(consent_ref) if consent_ref is not None else None,
        "actor": actor.as_dict(),
    }
    return hashlib.sha256(canonical_json(body)).hexdigest()
