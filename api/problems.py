"""RFC 9457 problem details: one stable `type` per error, no stack traces, nothing identifying."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from adapters.auth import AuthenticationError
from referral_core import errors

PROBLEM_JSON = "application/problem+json"
TYPE_PREFIX = "urn:referral:problem:"


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
    codes = {404: "not-found", 405: "method-not-allowed", 413: "too-large", 415: "media-type"}
    return problem_response(
        exc.status_code,
        codes.get(exc.status_code, f"http-{exc.status_code}"),
        str(exc.detail) if exc.status_code != 404 else "Not found",  # noqa: PLR2004
        instance=request.url.path,
        headers=dict(exc.headers or {}),
    )


def install(app: FastAPI) -> None:
    app.add_exception_handler(errors.ReferralError, _domain)
    app.add_exception_handler(Problem, _problem)
    app.add_exception_handler(AuthenticationError, _auth)
    app.add_exception_handler(RequestValidationError, _validation)
    app.add_exception_handler(StarletteHTTPException, _http)
