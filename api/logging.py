"""Structured JSON logs: one line per request with ids, route, status and latency; no child data.

Only allow-listed keys reach a log line, so a payload, a name or a free-text note cannot slip in
through a careless `log.info(..., payload=...)`.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import MutableMapping
from typing import Any

import structlog

ALLOWED_KEYS = frozenset(
    {
        "event",
        "level",
        "timestamp",
        "logger",
        "request_id",
        "principal_id",
        "agency_id",
        "method",
        "route",
        "status",
        "latency_ms",
        "problem",
        "position",
        "projection",
        "lag_events",
        "count",
        "case_version",
        "error_type",
        "host",
        "port",
        "workers",
        "database",
        "exc_info",
    }
)


def _allow_list(
    _logger: Any, _method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    for key in list(event_dict):
        if key not in ALLOWED_KEYS:
            del event_dict[key]
    return event_dict


def configure_logging(level: str = "info", stream: Any = None) -> None:
    """JSON lines to stdout (or `stream`), filtered to the allow-listed keys.

    Records of other libraries (uvicorn, psycopg, httpx) pass through the same filter and
    renderer, so every line is JSON and none carries more than the allow-list.
    """
    global _configured  # noqa: PLW0603 -- loggers built before are rebuilt on their next use
    _configured += 1
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.processors.add_log_level,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*shared, structlog.stdlib.add_logger_name],
            processors=[
                structlog.stdlib.ProcessorFormatter.remove_processors_meta,
                _allow_list,
                structlog.processors.JSONRenderer(),
            ],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))
    structlog.configure(
        processors=[
            *shared,
            _allow_list,
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=structlog.WriteLoggerFactory(file=stream or sys.stdout),
        wrapper_class=structlog.make_filtering_bound_logger(
            getattr(logging, level.upper(), logging.INFO)
        ),
        cache_logger_on_first_use=False,
    )


def get_logger(name: str = "referral") -> Any:
    return structlog.get_logger(name)


_configured = 0  # how many times `configure_logging` ran: a bound logger is built for one
_bound: dict[str, tuple[int, Any]] = {}


def bound_logger(name: str = "referral") -> Any:
    """A logger built once per `configure_logging`, for the line every request writes:
    `get_logger`'s proxy builds a new one (logger, processors, context) on every call."""
    cached = _bound.get(name)
    if cached is None or cached[0] != _configured:
        cached = (_configured, structlog.get_logger(name).bind())
        _bound[name] = cached
    return cached[1]
