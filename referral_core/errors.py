"""One hierarchy of domain errors, each with a stable code the API maps to a problem type.

ReferralError
├── InvalidCommandError          the command is malformed (HTTP 422)
│   ├── UnknownEventTypeError
│   ├── InvalidPayloadError
│   └── InvalidEnvelopeError
├── DomainRuleError              the command is well formed but the case forbids it (HTTP 409/422)
│   ├── CaseClosedError              nothing but CaseReopened on a closed case
│   ├── CaseErasedError              nothing at all after a case's data was erased
│   ├── CaseNotClosedError           CaseReopened on an open case
│   ├── NotReferralReceiverError     only the receiving agency answers a referral
│   ├── NotReferralSenderError       only the sending agency revokes a referral
│   ├── NotReportRecipientError      only the receiving police unit acknowledges a report
│   ├── ReferralNotPendingError      the referral is not in a state that allows this answer
│   ├── MissingLegalBasisError       disclosure without a legal basis or a live consent
│   ├── UnreportedTraffickingError   closure with trafficking indicators and no report
│   ├── UnknownTargetEventError      a correction, answer or consent_ref names no such entry here
│   ├── NotAuthorAgencyError         only the author's agency corrects or voids an entry
│   ├── MinorityPresumptionError     minority presumed until a consistent age assessment lifts it
│   ├── CaseOpeningError             a case opens with ChildIdentified or ContactReceived only
│   └── InconsistentStateError       e.g. ending a placement that does not exist, correcting a
│                                    field that routes access, a deactivated user's role
├── ConflictError                the store moved on (HTTP 409/412)
│   ├── VersionConflictError         expected version is stale
│   └── IdempotencyConflictError     an event id reused with other content
├── NotFoundError                (HTTP 404)
│   ├── CaseNotFoundError
│   └── DirectoryEntryNotFoundError
└── PermissionDeniedError        policy refuses the actor (HTTP 403, or 404 to hide existence)
"""

from __future__ import annotations


class ReferralError(Exception):
    """Base of every error the domain raises on purpose."""

    code = "referral-error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidCommandError(ReferralError):
    code = "invalid-command"


class UnknownEventTypeError(InvalidCommandError):
    code = "unknown-event-type"


class InvalidPayloadError(InvalidCommandError):
    code = "invalid-payload"

    def __init__(self, message: str, errors: list[dict[str, object]] | None = None) -> None:
        super().__init__(message)
        self.errors = errors or []


class InvalidEnvelopeError(InvalidCommandError):
    code = "invalid-envelope"


class DomainRuleError(ReferralError):
    code = "domain-rule"


class CaseClosedError(DomainRuleError):
    code = "case-closed"


class CaseErasedError(DomainRuleError):
    code = "case-erased"


class CaseNotClosedError(DomainRuleError):
    code = "case-not-closed"


class NotReferralReceiverError(DomainRuleError):
    code = "not-referral-receiver"


class NotReferralSenderError(DomainRuleError):
    code = "not-referral-sender"


class NotReportRecipientError(DomainRuleError):
    code = "not-report-recipient"


class ReferralNotPendingError(DomainRuleError):
    code = "referral-not-pending"


class MissingLegalBasisError(DomainRuleError):
    code = "missing-legal-basis"


class UnreportedTraffickingError(DomainRuleError):
    code = "unreported-trafficking"


class UnknownTargetEventError(DomainRuleError):
    code = "unknown-target-event"


class NotAuthorAgencyError(DomainRuleError):
    code = "not-author-agency"


class MinorityPresumptionError(DomainRuleError):
    code = "minority-presumption"


class CaseOpeningError(DomainRuleError):
    code = "case-opening"


class InconsistentStateError(DomainRuleError):
    code = "inconsistent-state"


class ConflictError(ReferralError):
    code = "conflict"


class VersionConflictError(ConflictError):
    code = "version-conflict"

    def __init__(self, message: str, *, expected: int | None, actual: int | None) -> None:
        super().__init__(message)
        self.expected = expected
        self.actual = actual


class IdempotencyConflictError(ConflictError):
    code = "idempotency-conflict"


class NotFoundError(ReferralError):
    code = "not-found"


class CaseNotFoundError(NotFoundError):
    code = "case-not-found"


class DirectoryEntryNotFoundError(NotFoundError):
    code = "directory-entry-not-found"


class PermissionDeniedError(ReferralError):
    code = "permission-denied"
