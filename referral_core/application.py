"""The application service: cases opened, appended to and read; the directory kept.

It runs on any eventsourcing persistence module; `adapters.store` chooses SQLite or PostgreSQL
and the stored-event mapper. Nothing here knows which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import partial
from typing import Any, ClassVar, TypeVar
from uuid import UUID, uuid5

from eventsourcing.application import AggregateNotFoundError, Application
from eventsourcing.domain import DomainEventProtocol
from eventsourcing.persistence import IntegrityError, Notification

from referral_core.case import Case, CaseEvent
from referral_core.case_cache import DEFAULT_CASE_CACHE_SIZE, CaseCache
from referral_core.clock import Clock, utc_now
from referral_core.commands import Decision, record_event
from referral_core.directory import DIRECTORY_ID, Directory
from referral_core.envelope import Envelope
from referral_core.errors import (
    CaseNotFoundError,
    ConflictError,
    DirectoryEntryNotFoundError,
    VersionConflictError,
)

CASE_NAMESPACE = UUID("9a7d2b1c-3e4f-4a5b-8c6d-7e8f9a0b1c2d")
SNAPSHOT_INTERVAL = 50
DIRECTORY_RETRIES = 5
CASE_CACHE_SIZE = "REFERRAL_CASE_CACHE_SIZE"
"""How many folded cases each process keeps (`case_cache`); 0 turns the cache off."""
STREAM_ENDS_PAGE = 10_000

T = TypeVar("T")


def case_id_for_opening(event_id: UUID) -> UUID:
    """The case a given opening event creates: a retried opening finds the same case."""
    return uuid5(CASE_NAMESPACE, str(event_id))


def replay(aggregate: Any, events: Iterable[Any]) -> Any:
    """Fold events onto an aggregate (or None).

    eventsourcing's default projector checks a typing Protocol with isinstance on every event,
    which cost a fifth of each append; our events are all ours, so a plain loop does.
    """
    for event in events:
        aggregate = event.mutate(aggregate)
    return aggregate


@dataclass(frozen=True)
class AppendResult:
    """What an append acknowledges: the case, its new version, and the event's log position."""

    case_id: UUID
    version: int
    event_id: str
    position: int | None
    duplicate: bool


class ReferralApplication(Application[UUID]):
    """One event store for every case and the directory; one global log."""

    name = "Referral"
    snapshotting_intervals: ClassVar[dict[type[Any], int]] = {
        Case: SNAPSHOT_INTERVAL,
        Directory: SNAPSHOT_INTERVAL,
    }
    snapshotting_projectors: ClassVar[dict[type[Any], Any]] = {Case: replay, Directory: replay}

    def __init__(self, env: Mapping[str, str] | None = None, clock: Clock = utc_now) -> None:
        super().__init__(env)
        self.clock = clock
        self.case_cache = CaseCache(int(self.env.get(CASE_CACHE_SIZE) or DEFAULT_CASE_CACHE_SIZE))

    # -- cases -----------------------------------------------------------------------------------

    def open_case(
        self, *, event_type: str, payload: Mapping[str, Any], envelope: Envelope
    ) -> AppendResult:
        """Open a case with ChildIdentified or ContactReceived; a retry returns the same case."""
        case_id = case_id_for_opening(envelope.event_id)
        existing = self._find_case(case_id)
        return self._decide_and_save(
            case_id,
            case=existing,
            event_type=event_type,
            payload=payload,
            envelope=envelope,
            expected_version=None,
        )

    def append(
        self,
        case_id: UUID,
        *,
        expected_version: int | None,
        event_type: str,
        payload: Mapping[str, Any],
        envelope: Envelope,
        case: Case | None = None,
    ) -> AppendResult:
        """Append one event; a stale `expected_version` raises `VersionConflictError`.

        `case` is the case as the caller already loaded it (saves loading it twice); a writer
        that got in between is caught when saving, exactly as without it.
        """
        if case is None or case.id != case_id:
            case = self.get_case(case_id)
        return self._decide_and_save(
            case_id,
            case=case,
            event_type=event_type,
            payload=payload,
            envelope=envelope,
            expected_version=expected_version,
        )

    def _decide_and_save(
        self,
        case_id: UUID,
        *,
        case: Case | None,
        event_type: str,
        payload: Mapping[str, Any],
        envelope: Envelope,
        expected_version: int | None,
    ) -> AppendResult:
        decision = record_event(
            case,
            case_id=case_id,
            event_type=event_type,
            payload=payload,
            envelope=envelope,
            now=self.clock(),
            expected_version=expected_version,
            recorded=partial(self.recorded_event, case_id),
        )
        if decision.duplicate:
            return self._result(decision, None)
        try:
            recordings = self.save(decision.case)
        except IntegrityError:
            return self._after_race(case_id, event_type, payload, envelope, expected_version)
        self.case_cache.keep(decision.case)
        return self._result(decision, recordings[-1].notification.id)

    def _after_race(
        self,
        case_id: UUID,
        event_type: str,
        payload: Mapping[str, Any],
        envelope: Envelope,
        expected_version: int | None,
    ) -> AppendResult:
        """Another writer saved first: a retry of ours is a duplicate, anything else a conflict."""
        case = self.get_case(case_id)
        entry = case.entry(str(envelope.event_id))
        if entry is not None:
            decision = record_event(
                case,
                case_id=case_id,
                event_type=event_type,
                payload=payload,
                envelope=envelope,
                now=self.clock(),
                recorded=partial(self.recorded_event, case_id),
            )
            return self._result(decision, None)
        raise VersionConflictError(
            "another writer appended to this case first",
            expected=expected_version,
            actual=case.version,
        )

    @staticmethod
    def _result(decision: Decision, position: int | None) -> AppendResult:
        return AppendResult(
            case_id=decision.case.case_id,
            version=decision.version,
            event_id=decision.event_id,
            position=position,
            duplicate=decision.duplicate,
        )

    def expect_reads(self, case_ids: Iterable[UUID | str]) -> None:
        """A hint: events of these cases are about to be read in bulk (a read-model batch).

        Nothing to do here; a store that seals events fetches the cases' keys in one go.
        """

    def log_page(self, after: int, limit: int) -> Sequence[Notification]:
        """Up to `limit` entries of the notification log after position `after`, in order.

        Read here through the recorder; a store that can read its rows more cheaply does.
        """
        return self.recorder.select_notifications(
            start=after, limit=limit, inclusive_of_start=False
        )

    def log_decoder(self) -> Callable[[Notification], DomainEventProtocol[UUID]]:
        """How a reader of the whole log (a read-model runner) turns an entry into its event.

        Here the application's mapper; a store that keeps caches for repeated reads of the
        same events gives one that keeps none (the log is read once).
        """
        return self.mapper.to_domain_event

    def log_fold_decoder(self) -> Callable[[Notification], DomainEventProtocol[UUID]]:
        """How a read-model runner decodes the log: each case event opened as far as the
        case's fold reads it, since read models read the folded case and an event's envelope,
        never the sensitive values the case does not keep (`case.redact`).

        Here the same as `log_decoder`; a store that seals events' values leaves sealed those
        the fold never reads, which spares their decryption and keeps them out of the runner.
        """
        return self.log_decoder()

    def log_envelope_decoder(self) -> Callable[[Notification], DomainEventProtocol[UUID]]:
        """How a reader that needs only an entry's envelope (type, ids, times) decodes it.

        Here the same as `log_decoder`; a store that seals events' values leaves a case
        event's sealed, which spares their decryption.
        """
        return self.log_decoder()

    def stream_ends(self, upto: int) -> dict[UUID, int]:
        """The log position of each stream's last event at or before position `upto`.

        Read here page by page from the notification log; a store that can ask its database
        in one query does (a rebuild's plan: see `projections.runner.rebuild`).
        """
        ends: dict[UUID, int] = {}
        start = 0
        while start < upto:
            page = self.recorder.select_notifications(
                start=start, limit=STREAM_ENDS_PAGE, stop=upto, inclusive_of_start=False
            )
            for notification in page:
                stream = notification.originator_id
                ends[stream if isinstance(stream, UUID) else UUID(stream)] = notification.id
            if len(page) < STREAM_ENDS_PAGE:
                return ends
            start = page[-1].id
        return ends

    def recorded_event(self, case_id: UUID, version: int) -> CaseEvent | None:
        """One stored event of a case, by version (to tell a retry from a reuse of its id)."""
        for event in self.events.get(case_id, gt=version - 1, lte=version):
            if isinstance(event, CaseEvent):
                return event
        return None

    def _find_case(self, case_id: UUID, version: int | None = None) -> Case | None:
        try:
            aggregate: object = self.repository.get(
                case_id, version=version, projector_func=replay
            )
        except AggregateNotFoundError:
            return None
        return aggregate if isinstance(aggregate, Case) else None

    def get_case(
        self, case_id: UUID, *, version: int | None = None, to_append_at: int | None = None
    ) -> Case:
        """The case now (a private copy, free to change), or as it stood at `version`.

        `to_append_at`: the version a writer is about to append after (its If-Match). When the
        cache holds the case at exactly that version, the copy comes without asking the store
        for newer events: a writer that got in between is caught when saving, because the
        store takes each (case, version) once, and the append then fails as a conflict
        (`_after_race`) whatever it decided on this copy.
        """
        if version is None:
            cached = self.case_cache.copy_of(case_id)
            if cached is not None and to_append_at is not None and cached.version == to_append_at:
                return cached
            if cached is not None:
                newer = list(self.events.get(case_id, gt=cached.version))
                current: Case = replay(cached, newer)
                if newer:
                    self.case_cache.keep(current)
                return current
        case = self._find_case(case_id, version)
        if case is None:
            raise CaseNotFoundError("no such case")
        if version is None:
            self.case_cache.keep(case)
        return case

    def history(self, case_id: UUID, *, lte: int | None = None) -> list[CaseEvent]:
        """Every event of a case in order, optionally up to a version."""
        events = [e for e in self.events.get(case_id, lte=lte) if isinstance(e, CaseEvent)]
        if not events:
            raise CaseNotFoundError("no such case")
        return events

    def case_as_of(
        self, case_id: UUID, *, version: int | None = None, at: datetime | None = None
    ) -> Case:
        """The case as it stood at a version, or as the system knew it at a time."""
        if at is None:
            return self.get_case(case_id, version=version)
        case: Case | None = None
        for event in self._events_until(case_id, at, version):
            case = event.mutate(case)
        if case is None:
            raise CaseNotFoundError("the case did not exist then")
        return case

    def _events_until(
        self, case_id: UUID, at: datetime, version: int | None
    ) -> Iterator[CaseEvent]:
        for event in self.history(case_id, lte=version):
            if event.timestamp > at:
                return
            yield event

    # -- directory -------------------------------------------------------------------------------

    def directory(self, *, version: int | None = None) -> Directory:
        try:
            aggregate: object = self.repository.get(
                DIRECTORY_ID, version=version, projector_func=replay
            )
        except AggregateNotFoundError:
            return Directory.start()
        if not isinstance(aggregate, Directory):
            raise DirectoryEntryNotFoundError("the directory stream is not a directory")
        return aggregate

    def change_directory(self, change: Callable[[Directory], T]) -> T:
        """Apply a directory command and save it, retrying if another writer got there first."""
        for _ in range(DIRECTORY_RETRIES):
            directory = self.directory()
            result = change(directory)
            try:
                self.save(directory)
            except IntegrityError:
                continue
            return result
        raise ConflictError("the directory is busy; try again")
