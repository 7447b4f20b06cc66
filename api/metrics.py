"""Prometheus metrics: requests, latencies, appends, and each read model's position and lag."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from projections.runner import ProjectionRunner

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ReadModelCollector(Collector):
    """Computed at scrape time: the log's head, each read model's position and lag."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self.runner = runner

    def collect(self) -> Iterator[GaugeMetricFamily]:
        app = self.runner.app
        head = app.recorder.max_notification_id() or 0
        positions = self.runner.positions()
        yield GaugeMetricFamily("referral_log_position", "Newest position in the event log", head)
        position = GaugeMetricFamily(
            "referral_read_model_position", "Position a read model has reached", labels=["name"]
        )
        lag_events = GaugeMetricFamily(
            "referral_read_model_lag_events", "Log entries not yet applied", labels=["name"]
        )
        lag_seconds = GaugeMetricFamily(
            "referral_read_model_lag_seconds",
            "Age of the oldest log entry not yet applied",
            labels=["name"],
        )
        for name, reached in positions.items():
            position.add_metric([name], reached)
            lag_events.add_metric([name], max(0, head - reached))
            lag_seconds.add_metric([name], self._age_of_next(reached) if reached < head else 0.0)
        yield position
        yield lag_events
        yield lag_seconds

    def _age_of_next(self, reached: int) -> float:
        app = self.runner.app
        found = app.recorder.select_notifications(start=reached, limit=1, inclusive_of_start=False)
        if not found:
            return 0.0
        event: Any = app.mapper.to_domain_event(found[0])
        recorded = getattr(event, "timestamp", None)
        return max(0.0, time.time() - recorded.timestamp()) if recorded else 0.0


class Metrics:
    """One registry per app, so several apps (tests) never share counters."""

    def __init__(self, runner: ProjectionRunner) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "referral_http_requests",
            "HTTP requests by route template and status",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "referral_http_request_seconds",
            "HTTP request latency by route template",
            ["route"],
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
            registry=self.registry,
        )
        self.appends = Counter(
            "referral_appends",
            "Events appended through the API, by type",
            ["event_type"],
            registry=self.registry,
        )
        self.registry.register(ReadModelCollector(runner))
        # Each labelled child looked up once: `labels()` costs more than the count itself.
        # Bounded: route templates (or "unmatched"), the parser's methods, status codes.
        self._children: dict[tuple[str, str, int], tuple[Counter, Histogram]] = {}

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        key = (method, route, status)
        children = self._children.get(key)
        if children is None:
            children = (
                self.requests.labels(method, route, str(status)),
                self.latency.labels(route),
            )
            self._children[key] = children
        children[0].inc()
        children[1].observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
