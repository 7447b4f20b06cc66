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
    """JSON lines to stdout (or `stream`), filtered to the allow-listed keys."""
    logging.basicConfig(
        format="%(message)s",
        stream=stream or sys.stdout,
        level=getattr(logging, level.upper(), logging.INFO),
        force=True,
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
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
