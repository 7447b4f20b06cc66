"""Markers that say what kind of personal data a payload field holds.

A field is tagged with `Annotated[T, Sensitive(...)]`. The tags drive three things elsewhere:
per-case encryption of identifying fields, the field filters of each audience, and log redaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Sensitivity(StrEnum):
    IDENTIFYING = "identifying"
    """Names, birth dates, addresses, contacts, photos, free-text notes: encrypted per case."""
    PSYCHOSOCIAL = "psychosocial"
    """The child's views, psychological content: never for law enforcement."""
    MEDICAL = "medical"
    """Health content: never for law enforcement."""
    PERPETRATOR = "perpetrator"
    """Who exploited the child: never for the guardian."""
    INVESTIGATION = "investigation"
    """Police references and investigative detail: never for the guardian."""


@dataclass(frozen=True)
class Sensitive:
    """Annotation metadata naming the sensitivities of one field."""

    tags: frozenset[Sensitivity]

    def __init__(self, *tags: Sensitivity) -> None:
        object.__setattr__(self, "tags", frozenset(tags))


IDENTIFYING = Sensitive(Sensitivity.IDENTIFYING)
IDENTIFYING_PSYCHOSOCIAL = Sensitive(Sensitivity.IDENTIFYING, Sensitivity.PSYCHOSOCIAL)
PERPETRATOR = Sensitive(Sensitivity.IDENTIFYING, Sensitivity.PERPETRATOR)
INVESTIGATION = Sensitive(Sensitivity.INVESTIGATION)
