"""Erasing a case: the `CaseErased` event, then its snapshots, its key and read-model copies.

Used by `referral erase` and `POST /cases/{id}/erase`. The steps, each safe to repeat, so an
erasure interrupted half-way is completed by running it again:

1. append `CaseErased` (reason, legal basis) unless the case already has one;
2. delete the case's snapshots and destroy its key (`ProtectedApplication.shred_case`): every
   sealed field of every event of the case now reads as None;
3. let the read models pass the erasure, then set the identifying text they copied to NULL
   (on SQLite with secure_delete, then a WAL checkpoint, so no old page copy keeps it).

The events, their hash chain and every non-identifying field stay as they were, so statistics
and the verification of the log are unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from uuid import UUID, uuid4

from adapters.store import ConfigurationError, ProtectedApplication
from projections.db import PostgresDatabase, SqliteDatabase
from projections.erasure import scrub_case
from projections.runner import ProjectionRunner
from referral_core.application import ReferralApplication
from referral_core.case import Case
from referral_core.envelope import Actor, Envelope

ERASED_EVENT = "CaseErased"


@dataclass(frozen=True)
class Erasure:
    case_id: UUID
    version: int
    position: int | None
    already_erased: bool


def is_erased(case: Case) -> bool:
    return bool(getattr(case, "erased", False)) or any(
        entry["type"] == ERASED_EVENT for entry in case.entries.values()
    )


def erase_case(
    app: ReferralApplication,
    db: SqliteDatabase | PostgresDatabase,
    case_id: UUID,
    *,
    reason: str,
    legal_basis: str,
    actor: Actor,
    correlation_id: str,
    runner: ProjectionRunner | None = None,
    wait_seconds: float = 5.0,
) -> Erasure:
    if not isinstance(app, ProtectedApplication):
        raise ConfigurationError("erasure needs the application built by adapters.store")
    case = app.get_case(case_id)
    already = is_erased(case)
    position: int | None = None
    version = case.version
    if not already:
        result = app.append(
            case_id,
            expected_version=None,
            event_type=ERASED_EVENT,
            payload={"reason": reason, "legal_basis": legal_basis},
            envelope=Envelope(
                event_id=uuid4(),
                actor=actor,
                occurred_at=app.clock(),
                correlation_id=correlation_id,
                legal_basis=legal_basis,
            ),
        )
        position, version = result.position, result.version
    app.shred_case(case_id)
    if runner is not None:
        runner.nudge.set()
        runner.wait_for(position or (app.recorder.max_notification_id() or 0), wait_seconds)
    with db.transaction() as tx:
        if isinstance(db, SqliteDatabase):
            tx.execute("PRAGMA secure_delete = ON")  # zero the scrubbed bytes in their page
        scrub_case(tx, str(case_id))
    app.flush_overwritten()
    return Erasure(case_id, version, position, already)
