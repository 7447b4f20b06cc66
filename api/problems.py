"""RFC 9457 problem details: one stable `type` per error, no stack traces, nothing identifying."""

from __future__ import annotations

import json
import re
from typing import Any

import psycopg
from eventsourcing import persistence as es_persistence
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.auth import AuthenticationError
from referral_core import errors

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:referral:problem:"


PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "instance": {"type": "string"},
    },
}
PROBLEM_TITLES: dict[int, str] = {
    400: "The request body cannot be parsed",
    401: "Authentication required",
    403: "Not allowed",
    404: "Not found, or not visible to the caller",
    409: "The case does not allow this, or a conflict",
    412: "The case has changed since the version you sent",
    413: "The request body is too large",
    415: "The request body is not JSON",
    # Also a body that is not UTF-8 JSON, repeats a key, nests too deeply or holds NaN.
    422: "The request is not valid",
    428: "A required precondition header is missing",
    503: "The store is unavailable; retry shortly",
    504: "The read models have not reached the requested position",
}
# What every authenticated route may answer besides its own success.
COMMON = (400, 401, 403, 413, 422, 503)


JSON_MEDIA = re.compile(r"^application/(?:[\w.-]+\+)?json\s*(?:;.*)?$", re.IGNORECASE | re.DOTALL)
# Deeper than any payload needs; a body nested further is refused before it is parsed twice.
MAX_JSON_DEPTH = 32
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


class _DuplicateKeyError(ValueError):
    pass


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            raise _DuplicateKeyError(key)
        found[key] = value
    return found


def _no_constants(name: str) -> Any:
    raise ValueError(name)  # NaN, Infinity, -Infinity: not JSON


def _too_deep(value: Any) -> bool:
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        children = item.values() if isinstance(item, dict) else item
        if not isinstance(item, dict | list):
            continue
        if depth > MAX_JSON_DEPTH:
            return True
        stack.extend((child, depth + 1) for child in children)
    return False


def is_json(content_type: bytes | str | None) -> bool:
    if isinstance(content_type, bytes):
        content_type = content_type.decode("latin-1")
    return content_type is not None and JSON_MEDIA.match(content_type.strip()) is not None


def json_body_problem(body: bytes, content_type: bytes | None) -> tuple[str, int, str] | None:
    """Why a JSON (or unlabelled) body must be refused as it stands, or None.

    Strict UTF-8, no repeated key in an object (parsers disagree on which one wins), no NaN or
    Infinity, nesting at most MAX_JSON_DEPTH deep (a 100 000-deep array costs no recursion here:
    the parser's own limit stops it and is answered like any other too-deep body).
    """
    if not body or (content_type is not None and not is_json(content_type)):
        return None
    try:
        text = body.decode("utf-8")
        parsed = json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constants)
    except _DuplicateKeyError:
        return "duplicate-key", 422, "The request body repeats a key in one object"
    except RecursionError:
        return "too-deep", 422, "The request body nests too deeply"
    except ValueError:  # not UTF-8, not JSON, a number too long to convert
        return "invalid-request", 422, "The request body is not valid JSON"
    if _too_deep(parsed):
        return "too-deep", 422, "The request body nests too deeply"
    return None


def require_json(request: Request) -> None:
    """A route dependency: a request with a body must label it JSON (else 415)."""
    if request.method in BODY_METHODS and not is_json(request.headers.get("content-type")):
        raise Problem(
            415,
            "media-type",
            "The request body must be JSON",
            "send Content-Type: application/json",
        )


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI documentation of problem responses, for a router's or route's `responses=`."""
    documented: dict[int | str, dict[str, Any]] = {}
    for code in codes:
        documented[code] = {
            "description": PROBLEM_TITLES[code],
            "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}},
        }
    return documented


class Problem(Exception):  # noqa: N818 -- an RFC 9457 "problem", raised by routes
    """An HTTP problem raised by a route."""

    def __init__(
        self,
        status: int,
        code: str,
        title: str,
        detail: str | None = None,
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> None:
        super().__init__(detail or title)
        self.status = status
        self.code = code
        self.title = title
        self.detail = detail
        self.headers = headers or {}
        self.extra = extra


def problem_response(
    status: int,
    code: str,
    title: str,
    detail: str | None = None,
    *,
    instance: str | None = None,
    headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    body: dict[str, Any] = {"type": TYPE_PREFIX + code, "title": title, "status": status}
    if detail:
        body["detail"] = detail
    if instance:
        body["instance"] = instance
    body.update(extra)
    return JSONResponse(body, status_code=status, media_type=PROBLEM_JSON, headers=headers)


DOMAIN_STATUS: list[tuple[type[errors.ReferralError], int, str]] = [
    (errors.InvalidCommandError, 422, "The request is not valid"),
    (errors.VersionConflictError, 412, "The case has changed since the version you sent"),
    (errors.IdempotencyConflictError, 409, "That event id was used for other content"),
    (errors.ConflictError, 409, "Conflict"),
    (errors.DomainRuleError, 409, "The case does not allow this"),
    (errors.NotFoundError, 404, "Not found"),
    (errors.PermissionDeniedError, 403, "Not allowed"),
]


def _domain(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, errors.ReferralError)  # noqa: S101 -- registered for this class only
    for cls, status, title in DOMAIN_STATUS:
        if isinstance(exc, cls):
            extra: dict[str, Any] = {}
            if isinstance(exc, errors.InvalidPayloadError) and exc.errors:
                extra["errors"] = exc.errors
            if isinstance(exc, errors.NotFoundError):
                return problem_response(404, "not-found", "Not found", instance=request.url.path)
            return problem_response(
                status, exc.code, title, exc.message, instance=request.url.path, **extra
            )
    return problem_response(500, "internal", "Internal error")


def _problem(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, Problem)  # noqa: S101
    return problem_response(
        exc.status,
        exc.code,
        exc.title,
        exc.detail,
        instance=request.url.path,
        headers=exc.headers,
        **exc.extra,
    )


def _auth(request: Request, exc: Exception) -> JSONResponse:
    return problem_response(
        401,
        "unauthenticated",
        "Authentication required",
        "send a valid bearer token",
        instance=request.url.path,
        headers={"WWW-Authenticate": 'Bearer realm="referral"'},
    )


def _validation(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    details = [
        {"loc": list(e.get("loc", ())), "msg": e.get("msg", ""), "type": e.get("type", "")}
        for e in exc.errors()
    ]
    return problem_response(
        422,
        "invalid-request",
        "The request is not valid",
        instance=request.url.path,
        errors=details,
    )


def _http(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    codes = {
        400: "malformed-body",
        404: "not-found",
        405: "method-not-allowed",
        413: "too-large",
        415: "media-type",
    }
    return problem_response(
        exc.status_code,
        codes.get(exc.status_code, f"http-{exc.status_code}"),
        str(exc.detail) if exc.status_code != 404 else "Not found",  # noqa: PLR2004
        instance=request.url.path,
        headers=dict(exc.headers or {}),
    )


def is_read_only_refusal(exc: BaseException) -> bool:
    """Whether PostgreSQL refused a write because this node is a hot standby (SQLSTATE 25006)."""
    seen: BaseException | None = exc
    while seen is not None:
        if getattr(seen, "sqlstate", None) == READ_ONLY_SQLSTATE:
            return True
        seen = seen.__cause__
    return False


READ_ONLY_SQLSTATE = "25006"
READ_ONLY_ERRORS: tuple[type[Exception], ...] = (
    es_persistence.InternalError,  # the event store's wrapping of psycopg's InternalError
    psycopg.errors.ReadOnlySqlTransaction,  # the read models' own connections
)


def _read_only(request: Request, exc: Exception) -> JSONResponse:
    """A write on a node serving reads from a hot standby: 503 naming the primary's job."""
    if not is_read_only_refusal(exc):
        raise exc
    return problem_response(
        503,
        "read-only-node",
        "This node serves reads only",
        "send appends, and reads that are recorded (case histories), to a primary node",
        instance=request.url.path,
    )


def install(app: FastAPI) -> None:
    for refused in READ_ONLY_ERRORS:
        app.add_exception_handler(refused, _read_only)
    app.add_exception_handler(errors.ReferralError, _domain)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(AuthenticationError, _auth)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
