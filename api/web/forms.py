"""Event forms built from the payload models, and form posts turned back into payloads.

Each field of an event type's pydantic model becomes one labelled control: a choice list for a
value set, checkboxes for a list of values, a date or time picker, a checkbox for yes/no, one
line per item for a list of texts, and JSON for anything nested. The domain validates the
result exactly as it validates a JSON API body; its messages are shown next to the fields.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from typing import Any

from starlette.datastructures import FormData

from api.web.i18n import N_
from referral_core.case_events import CATALOG

PREFIX = "p."
LONG_TEXT = 200


@dataclass(frozen=True)
class FieldSpec:
    name: str
    """Also the label's catalogue key (`term:NAME`)."""
    widget: str
    """select, checkboxes, checkbox, number, date, datetime, text, textarea, lines, json,
    agency, event"""
    required: bool
    choices: tuple[str, ...] = ()
    max_length: int | None = None


@dataclass
class FormState:
    """What a re-rendered form shows: the values typed and a message per field."""

    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, str] = field(default_factory=dict)
    message: str | None = None


def _resolve(schema: dict[str, Any], defs: dict[str, Any]) -> dict[str, Any]:
    if "$ref" in schema:
        return dict(defs[schema["$ref"].split("/")[-1]])
    return schema


def _widget(name: str, prop: dict[str, Any], defs: dict[str, Any]) -> tuple[str, tuple[str, ...]]:  # noqa: PLR0911, PLR0912
    options = prop.get("anyOf")
    if options:
        prop = next((o for o in options if o.get("type") != "null"), options[0])
    prop = _resolve(prop, defs)
    kind = prop.get("type")
    if "enum" in prop:
        return "select", tuple(str(v) for v in prop["enum"])
    if kind == "array":
        items = _resolve(prop.get("items", {}), defs)
        if "enum" in items:
            return "checkboxes", tuple(str(v) for v in items["enum"])
        if items.get("type") == "string":
            return "lines", ()
        return "json", ()
    if kind == "boolean":
        return "checkbox", ()
    if kind in ("integer", "number"):
        return "number", ()
    if kind == "string":
        fmt = prop.get("format")
        if fmt == "uuid" and name.endswith("agency_id"):
            return "agency", ()
        if fmt == "uuid" and name.endswith("event_id"):
            return "event", ()
        if fmt == "date":
            return "date", ()
        if fmt == "date-time":
            return "datetime", ()
        if (prop.get("maxLength") or 0) > LONG_TEXT:
            return "textarea", ()
        return "text", ()
    return "json", ()


@cache
def fields_of(event_type: str) -> tuple[FieldSpec, ...]:
    model = CATALOG[event_type].payload_model
    schema = model.model_json_schema()
    defs = schema.get("$defs", {})
    required = set(schema.get("required", []))
    specs = []
    for name, prop in schema.get("properties", {}).items():
        widget, choices = _widget(name, prop, defs)
        plain = prop.get("anyOf", [prop])[0]
        specs.append(
            FieldSpec(
                name=name,
                widget=widget,
                required=name in required,
                choices=choices,
                max_length=plain.get("maxLength"),
            )
        )
    return tuple(specs)


class FormValueError(ValueError):
    """A value the form itself cannot read (e.g. malformed JSON), by field."""

    def __init__(self, errors: dict[str, str]) -> None:
        super().__init__("form values")
        self.errors = errors


def payload_from_form(event_type: str, form: FormData) -> dict[str, Any]:  # noqa: PLR0912
    """The payload a form post describes; empty optional fields are left out."""
    payload: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in fields_of(event_type):
        key = PREFIX + spec.name
        if spec.widget == "checkboxes":
            chosen = [str(v) for v in form.getlist(key)]
            if chosen or spec.required:
                payload[spec.name] = chosen
            continue
        if spec.widget == "checkbox":
            payload[spec.name] = form.get(key) == "on"
            continue
        raw = str(form.get(key) or "").strip()
        if not raw:
            continue
        if spec.widget == "lines":
            payload[spec.name] = [line.strip() for line in raw.splitlines() if line.strip()]
        elif spec.widget == "json":
            try:
                payload[spec.name] = json.loads(raw)
            except json.JSONDecodeError:
                errors[spec.name] = N_("This is not valid JSON.")
        elif spec.widget == "number":
            try:
                payload[spec.name] = int(raw)
            except ValueError:
                errors[spec.name] = N_("Enter a whole number.")
        elif spec.widget == "datetime":
            payload[spec.name] = raw if ("Z" in raw or "+" in raw) else raw + ":00+00:00"
        else:
            payload[spec.name] = raw
    if errors:
        raise FormValueError(errors)
    return payload


def values_from_form(event_type: str, form: FormData) -> dict[str, Any]:
    """What was typed, to show again after a refusal."""
    values: dict[str, Any] = {}
    for spec in fields_of(event_type):
        key = PREFIX + spec.name
        if spec.widget == "checkboxes":
            values[spec.name] = [str(v) for v in form.getlist(key)]
        else:
            values[spec.name] = form.get(key)
    return values


# The domain's (pydantic's) error types, as messages of the catalogues; others keep their text.
ERROR_MESSAGES = {
    "missing": N_("This field is required."),
    "enum": N_("Choose one of the options."),
    "too_short": N_("Give at least one."),
    "string_too_short": N_("This field is required."),
    "string_too_long": N_("This is too long."),
    "uuid_parsing": N_("Choose one of the options."),
    "date_from_datetime_parsing": N_("Enter a date."),
    "date_parsing": N_("Enter a date."),
    "int_parsing": N_("Enter a whole number."),
}


def field_errors(errors: list[dict[str, Any]]) -> dict[str, str]:
    """The domain's validation errors by the field they concern ("" for the whole payload)."""
    found: dict[str, str] = {}
    for error in errors:
        loc = [str(part) for part in error.get("loc", [])]
        name = loc[0] if loc else ""
        kind = str(error.get("type", ""))
        found.setdefault(name, ERROR_MESSAGES.get(kind, str(error.get("msg", ""))))
    return found
