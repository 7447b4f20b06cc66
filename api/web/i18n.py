"""Interface languages: message catalogues (one JSON file per language) and babel formatting.

A catalogue maps each English message to its translation; `{name}` placeholders are filled
after translation. Controlled-vocabulary codes (stages, kinds, topics, …) are looked up as
`term:CODE` and fall back to the code made readable. The language comes from the remembered
cookie, else the browser's Accept-Language, else English. Dates, times and numbers are
formatted by babel in the chosen locale (times in UTC, said so).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime
from functools import cache
from pathlib import Path
from typing import Any

from babel.dates import format_date, format_datetime
from babel.numbers import format_decimal

LANGUAGES: dict[str, str] = {"en": "English", "es": "Español", "uk": "Українська", "th": "ไทย"}
DEFAULT = "en"
CATALOGUE_DIR = Path(__file__).parent / "locales"
CAMEL = re.compile(r"(?<=[a-z])(?=[A-Z])")


def N_(message: str) -> str:  # noqa: N802 -- the conventional gettext_noop name
    """Mark a message for the catalogues where it is translated later (in a template)."""
    return message


@cache
def catalogue(lang: str) -> dict[str, str]:
    path = CATALOGUE_DIR / f"{lang}.json"
    loaded: dict[str, str] = json.loads(path.read_text(encoding="utf-8"))
    return loaded


def negotiate(cookie: str | None, accept_language: str | None) -> str:
    if cookie in LANGUAGES:
        return str(cookie)
    for part in (accept_language or "").split(","):
        code = part.split(";")[0].strip().lower()[:2]
        if code in LANGUAGES:
            return code
    return DEFAULT


class Translator:
    """The messages and formats of one language."""

    def __init__(self, lang: str) -> None:
        self.lang = lang if lang in LANGUAGES else DEFAULT
        self.messages = catalogue(self.lang)

    def gettext(self, message: str, **values: Any) -> str:
        text = self.messages.get(message) or message
        return text.format(**values) if values else text

    def term(self, code: object) -> str:
        if code is None:
            return "—"
        key = f"term:{code}"
        found = self.messages.get(key) or catalogue(DEFAULT).get(key)
        if found:
            return found
        text = CAMEL.sub(" ", str(code)).replace("_", " ").replace(".", " ")
        return text[:1].upper() + text[1:].lower()

    def value(self, value: object, names: dict[str, str]) -> str:
        """A payload value as shown: an agency's name, a known term translated, else as is."""
        if isinstance(value, bool):
            return self.gettext("yes") if value else self.gettext("no")
        if isinstance(value, list):
            return ", ".join(self.value(item, names) for item in value)
        text = str(value)
        if text in names:
            return names[text]
        key = f"term:{text}"
        if key in self.messages or key in catalogue(DEFAULT):
            return self.term(text)
        return text

    def datetime(self, value: datetime | str | None) -> str:
        if value is None:
            return "—"
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return format_datetime(moment, "medium", tzinfo=UTC, locale=self.lang) + " UTC"

    def date(self, value: date | str | None) -> str:
        if value is None:
            return "—"
        day = date.fromisoformat(value[:10]) if isinstance(value, str) else value
        return format_date(day, "medium", locale=self.lang)

    def number(self, value: float | None) -> str:
        if value is None:
            return "—"
        return format_decimal(value, locale=self.lang)
