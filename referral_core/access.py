"""A record of each read of a child's identifying data: who, what, when, why.

Each record is its own one-event stream, so recording a read never contends with anything,
and the records sit in the same tamper-evident log as the cases they concern.
"""

from __future__ import annotations

from uuid import UUID, uuid4

from eventsourcing.domain import Aggregate, event


class AccessRecord(Aggregate):
    TOPIC = "referral.access:AccessRecord"

    class Created(Aggregate.Created):
        TOPIC = "referral.access:AccessRecord.Created"

    @event("Recorded", topic="referral.access:AccessRecorded")
    def __init__(
        self,
        *,
        user_id: str,
        agency_id: str,
        role: str,
        case_id: str,
        what: str,
        purpose: str | None,
        break_glass: bool,
        correlation_id: str,
    ) -> None:
        self.user_id = user_id
        self.agency_id = agency_id
        self.role = role
        self.case_id = case_id
        self.what = what
        self.purpose = purpose
        self.break_glass = break_glass
        self.correlation_id = correlation_id

    @staticmethod
    def create_id(*_: object, **__: object) -> UUID:
        return uuid4()


ACCESS_RECORDED_TOPIC = "referral.access:AccessRecorded"
