"""The stored-event mapper: seals identifying fields under the case key, strips the chain header.

Writing, per kind of event:

* a case event: its identifying payload values are sealed (`fields`) under its case's key,
  created first if the case has none; an erased case's key is gone, so writing fails;
* an access record: its free-text `purpose` is sealed under the key of the case it concerns
  (after that case's erasure the purpose is not kept at all);
* a snapshot of a case: the whole transcoded state is sealed under the case key,
  `b"RFS2" || nonce || AES-GCM(state)`, because the case state holds the birth date; its
  per-event entries are stored as columns (`snapshot_layout`), a third of the bytes. Snapshots
  sealed earlier as `RFS1` (entries as rows) still open;
* anything else (the directory: staff, not children): plain JSON, as eventsourcing writes it.

Reading strips the chain header the recorder added (`adapters.integrity.chain`) and opens what
was sealed (opened values are kept a few seconds, `opened`, as loading a case replays the same
events at every append). When the case key was destroyed, sealed values read as None and the
event carries `erased = True` (every event of an erased case does), so the case still loads.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import Any, cast
from uuid import UUID

from cryptography.exceptions import InvalidTag
from eventsourcing.domain import DomainEventProtocol, Snapshot
from eventsourcing.persistence import (
    Mapper,
    MapperDeserialisationError,
    StoredEvent,
    Transcoder,
    find_id_convertor,
)
from eventsourcing.utils import get_topic, resolve_topic

from adapters.crypto import fields, snapshot_layout
from adapters.crypto.keyring import CaseKeyDestroyedError, CaseKeyError, Keyring
from adapters.crypto.opened import OpenedPayloads
from adapters.integrity.chain import HEADER_SIZE, MAGIC
from referral_core.access import ACCESS_RECORDED_TOPIC
from referral_core.case import CASE_TOPIC, CaseEvent

ERASED = "erased"
"""The attribute set to True on every event read back from an erased case."""
SEALED_SNAPSHOT = b"RFS2"
"""A sealed case snapshot whose entries are packed in columns."""
SEALED_ROW_SNAPSHOT = b"RFS1"
"""A sealed case snapshot of the first layout (entries as rows); read, no longer written."""
PACKED_SNAPSHOT_PATH = "*packed"
ROW_SNAPSHOT_PATH = "*"
"""The associated data of each layout differ, so one cannot be passed off as the other."""
PURPOSE = "purpose"


class CaseKeyMapper(Mapper[UUID]):
    """eventsourcing's Mapper with per-case sealing; one per application."""

    def __init__(
        self,
        transcoder: Transcoder,
        keyring: Keyring,
        *,
        fold: bool = False,
        keep: bool = True,
        open_cases: bool = True,
    ) -> None:
        """`fold`: a mapper for loading aggregates, which opens only the sealed values the
        case's fold reads (see `fields.fold_names`); the others stay sealed in the event.
        `keep` false: keep no opened payload (a reader of the whole log reads each once).
        `open_cases` false: open no case event's sealed values at all (a reader that needs
        only their envelope: type, ids, times)."""
        super().__init__(transcoder)
        self.keyring = keyring
        self.fold = fold
        self.open_cases = open_cases
        self.opened = OpenedPayloads() if keep else OpenedPayloads(0)
        if keep:
            keyring.on_destroy(self.opened.forget)

    # -- writing -----------------------------------------------------------------------------

    def to_stored_event(self, domain_event: DomainEventProtocol[UUID]) -> StoredEvent:
        topic = get_topic(type(domain_event))
        if isinstance(domain_event, CaseEvent):
            return self._stored(domain_event, topic, self._seal_case_event)
        if topic == ACCESS_RECORDED_TOPIC:
            return self._stored(domain_event, topic, self._seal_purpose)
        if isinstance(domain_event, Snapshot) and domain_event.topic == CASE_TOPIC:
            return self._sealed_snapshot(domain_event, topic)
        return super().to_stored_event(domain_event)

    def _sealed_snapshot(self, snapshot: Snapshot, topic: str) -> StoredEvent:
        state, originator_id, originator_version = _event_state(snapshot)
        state["state"] = snapshot_layout.packed_state(state["state"])
        aead = self.keyring.for_writing(originator_id)
        if aead is None:
            raise CaseKeyDestroyedError("the case is erased: it is not snapshotted")
        nonce = fields.nonces.take()
        ad = _snapshot_place(originator_id, originator_version).ad(PACKED_SNAPSHOT_PATH)
        sealed = aead.encrypt(nonce, self.transcoder.encode(state), ad)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=topic,
            state=SEALED_SNAPSHOT + nonce + sealed,
        )

    def _stored(self, domain_event: Any, topic: str, seal: Any) -> StoredEvent:
        state, originator_id, originator_version = _event_state(domain_event)
        state.pop(ERASED, None)
        seal(state, originator_id, originator_version, type(domain_event).__name__)
        return StoredEvent(
            originator_id=originator_id,
            originator_version=originator_version,
            topic=topic,
            state=self.transcoder.encode(state),
        )

    def _seal_case_event(
        self, state: dict[str, Any], case_id: UUID, version: int, event_type: str
    ) -> None:
        payload = state.get("payload") or {}
        if not fields.sealed_field_names(event_type) and event_type != "EntryCorrected":
            return
        aead = self.keyring.for_writing(case_id)
        if aead is None:
            raise CaseKeyDestroyedError("the case is erased: nothing more is recorded on it")
        case = str(case_id)
        state["payload"] = fields.seal_payload(
            aead, payload, fields.Place(case, case, version, event_type)
        )

    def _seal_purpose(
        self, state: dict[str, Any], record_id: UUID, version: int, event_type: str
    ) -> None:
        if state.get(PURPOSE) is None:
            return
        aead = self.keyring.for_writing(state["case_id"])
        if aead is None:
            state[PURPOSE] = None  # the case is erased: its readers' reasons are not kept
            return
        place = fields.Place(str(state["case_id"]), str(record_id), version, event_type)
        state[PURPOSE] = fields.seal(aead, state[PURPOSE], place, PURPOSE)

    # -- reading -----------------------------------------------------------------------------

    def to_domain_event(self, stored_event: StoredEvent) -> DomainEventProtocol[UUID]:
        state = stored_event.state
        if state.startswith(MAGIC) and len(state) >= HEADER_SIZE:
            state = state[HEADER_SIZE:]
        elif state.startswith(SEALED_SNAPSHOT):
            snapshot: DomainEventProtocol[UUID] = self._decode(
                stored_event, self._open_snapshot(stored_event, state), packed=True
            )
            return snapshot
        elif state.startswith(SEALED_ROW_SNAPSHOT):
            state = self._open_snapshot(stored_event, state)
        event: DomainEventProtocol[UUID] = self._decode(stored_event, state)
        if isinstance(event, CaseEvent):
            if self.open_cases:
                self._open_case_event(event)
        elif stored_event.topic == ACCESS_RECORDED_TOPIC:
            self._open_purpose(event)
        return event

    def _decode(self, stored: StoredEvent, state: bytes, *, packed: bool = False) -> Any:
        """eventsourcing's `Mapper.to_domain_event` (9.5) of `state` in place of `stored.state`.

        Written out rather than called with a copied StoredEvent: a case load decodes dozens
        of events, and the copy was a measurable part of each. `packed`: the state is a case
        snapshot's, whose entries are stored in columns.
        """
        cls = resolve_topic(stored.topic)
        try:
            event_state: dict[str, Any] = self.transcoder.decode(state)
            if packed:
                snapshot_layout.unpacked_state(event_state["state"])
        except Exception as exc:
            raise MapperDeserialisationError(
                f"Failed to deserialise state of stored event with topic '{stored.topic}', "
                f"originator_id '{stored.originator_id}' and originator_version "
                f"{stored.originator_version}"
            ) from exc
        convert = find_id_convertor(cls, cast("Hashable", type(stored.originator_id)))
        event_state["originator_id"] = convert(stored.originator_id)
        event_state["originator_version"] = stored.originator_version
        class_version = getattr(cls, "class_version", 1)
        from_version = event_state.pop("class_version", 1)
        while from_version < class_version:
            getattr(cls, f"upcast_v{from_version}_v{from_version + 1}")(event_state)
            from_version += 1
        event = object.__new__(cls)
        object.__setattr__(event, "__dict__", event_state)
        return event

    def _open_case_event(self, event: CaseEvent) -> None:
        attributes = event.__dict__
        stream = event.originator_id
        exists, aead = self.keyring.for_reading(stream)
        erased = exists and aead is None
        payload = attributes.get("payload")
        event_type = type(event).__name__
        names = fields.fold_names(event_type) if self.fold else fields.openable_names(event_type)
        if erased and payload and self.fold:
            names = fields.openable_names(event_type)  # erased: every sealed value reads None
        if payload and names:
            version = event.originator_version
            again = (
                None
                if aead is None
                else self.opened.get(stream, version, event_type, payload, names)
            )
            if again is not None:
                attributes["payload"] = again
            else:
                place = fields.Place(stream, stream, version, event_type)
                opened = fields.open_payload(aead, payload, place, names=names)
                if opened is not None:
                    attributes["payload"] = opened[0]
                    erased = erased or opened[1]
                    if aead is not None:
                        self.opened.put(
                            stream, version, event_type, payload, opened=opened[0], names=names
                        )
        if erased:
            attributes[ERASED] = True

    def _open_purpose(self, event: Any) -> None:
        attributes = event.__dict__
        purpose = attributes.get(PURPOSE)
        if not fields.is_sealed(purpose):
            return
        _exists, aead = self.keyring.for_reading(attributes["case_id"])
        place = fields.Place(
            str(attributes["case_id"]),
            str(event.originator_id),
            event.originator_version,
            type(event).__name__,
        )
        opened = fields.open_payload(aead, {PURPOSE: purpose}, place)
        if opened is not None:
            attributes[PURPOSE] = opened[0][PURPOSE]
            if opened[1]:
                attributes[ERASED] = True

    def _open_snapshot(self, stored: StoredEvent, state: bytes) -> bytes:
        _exists, aead = self.keyring.for_reading(stored.originator_id)
        if aead is None:
            raise CaseKeyError("a snapshot of an erased case cannot be read")
        start = len(SEALED_SNAPSHOT)  # both layouts have four-byte marks
        nonce = state[start : start + fields.NONCE_SIZE]
        sealed = state[start + fields.NONCE_SIZE :]
        place = _snapshot_place(stored.originator_id, stored.originator_version)
        path = PACKED_SNAPSHOT_PATH if state.startswith(SEALED_SNAPSHOT) else ROW_SNAPSHOT_PATH
        try:
            return aead.decrypt(nonce, sealed, place.ad(path))
        except InvalidTag:
            raise CaseKeyError("a case snapshot does not open") from None


def _event_state(domain_event: object) -> tuple[dict[str, Any], UUID, int]:
    """(the event's attributes to transcode, its originator id, its version), as eventsourcing's
    `Mapper.to_stored_event` (9.5) splits them: the class version kept when above 1."""
    state = dict(vars(domain_event))
    originator_id = state.pop("originator_id")
    originator_version = state.pop("originator_version")
    class_version = getattr(type(domain_event), "class_version", 1)
    if class_version > 1:
        state["class_version"] = class_version
    return state, originator_id, originator_version


def _snapshot_place(case_id: UUID | str, version: int) -> fields.Place:
    case = str(case_id)
    return fields.Place(case, case, version, "Snapshot")
