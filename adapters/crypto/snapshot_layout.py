"""The stored layout of a case snapshot: the per-event `entries` of the case kept as columns.

A case keeps one small record per event in `entries` (version, type, agency, voided). As rows of
JSON objects they are about 150 bytes each, nearly all of it the repeated keys, type names and
agency ids, and they are most of a long case's snapshot: 150 KB at 1,000 events, which is what
PostgreSQL sends and what JSON decoding walks on every cold load. Stored as columns, with the
types and agencies each written once and referred to by position, the same entries take about a
third of the bytes and decode without building a dictionary per event inside the JSON parser.

`pack` and `unpack` are exact inverses for every entries mapping the case can hold (the order of
the entries is the order of the events, and is kept). The domain never sees this layout: the
mapper packs when it seals a snapshot and unpacks when it opens one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

ENTRIES = "entries"


class SnapshotLayoutError(ValueError):
    """A stored snapshot's packed entries do not fit together (lengths or references differ)."""


def pack(entries: Mapping[str, Mapping[str, Any]]) -> dict[str, list[Any]]:
    """The entries as columns: ids, versions, type and agency references, voided positions."""
    types: dict[str, int] = {}
    agencies: dict[str, int] = {}
    ids: list[str] = []
    versions: list[int] = []
    type_of: list[int] = []
    agency_of: list[int] = []
    voided: list[int] = []
    for position, (event_id, entry) in enumerate(entries.items()):
        ids.append(event_id)
        versions.append(entry["version"])
        type_of.append(types.setdefault(entry["type"], len(types)))
        agency_of.append(agencies.setdefault(entry["agency_id"], len(agencies)))
        if entry["voided"]:
            voided.append(position)
    return {
        "ids": ids,
        "versions": versions,
        "types": list(types),
        "type_of": type_of,
        "agencies": list(agencies),
        "agency_of": agency_of,
        "voided": voided,
    }


def unpack(columns: Mapping[str, list[Any]]) -> dict[str, dict[str, Any]]:
    """The entries mapping `pack` was given, in the same order."""
    try:
        types = columns["types"]
        agencies = columns["agencies"]
        voided = set(columns["voided"])
        rows = zip(
            columns["ids"],
            columns["versions"],
            columns["type_of"],
            columns["agency_of"],
            strict=True,
        )
        return {
            event_id: {
                "version": version,
                "type": types[type_at],
                "agency_id": agencies[agency_at],
                "voided": position in voided,
            }
            for position, (event_id, version, type_at, agency_at) in enumerate(rows)
        }
    except (KeyError, IndexError, TypeError, ValueError) as exc:
        raise SnapshotLayoutError(
            f"the packed entries of a case snapshot do not fit: {exc}"
        ) from exc


def packed_state(state: Mapping[str, Any]) -> dict[str, Any]:
    """A case state with its entries packed (a shallow copy; `state` is not changed)."""
    return {**state, ENTRIES: pack(state[ENTRIES])}


def unpacked_state(state: dict[str, Any]) -> dict[str, Any]:
    """A decoded case state with its entries unpacked, in place."""
    state[ENTRIES] = unpack(state[ENTRIES])
    return state
