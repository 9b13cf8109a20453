"""What `GET /metrics` reports, in the Prometheus text format (prometheus_client).

Each app has its own registry, so two apps in one process (tests) do not share counters. With
several workers each reports its own figures; the scraper sums them per instance.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from routing_runner.runtime.events import TurnEnded

CONTENT_TYPE = CONTENT_TYPE_LATEST
# Turn latency buckets (seconds): offline turns take milliseconds, model turns seconds.
_BUCKETS = (0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300)


class Metrics:
    """The server's counters: turns, their latency, turns running, errors by kind, model calls."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.turns = Counter("routing_runner_turns", "Turns completed with a reply.",
                             ["agent"], registry=self.registry)
        self.turn_time = Histogram("routing_runner_turn_seconds",
                                   "Time from taking a conversation to the turn's end.",
                                   buckets=_BUCKETS, registry=self.registry)
        self.in_flight = Gauge("routing_runner_turns_in_flight", "Turns running now.",
                               registry=self.registry)
        self.errors = Counter("routing_runner_errors", "Requests refused or turns failed, "
                              "by kind.", ["kind"], registry=self.registry)
        self.model_calls = Counter("routing_runner_model_calls",
                                   "Requests sent to the model provider by completed turns.",
                                   registry=self.registry)
        self.requests = Counter("routing_runner_http_requests", "HTTP requests by status.",
                                ["status"], registry=self.registry)

    def ended(self, event: TurnEnded) -> None:
        """Count a completed turn."""
        self.turns.labels(event.agent).inc()
        self.model_calls.inc(event.model_calls)

    def error(self, kind: str) -> None:
        """Count one refusal or failure of `kind` (busy, session_busy, model, store, ...)."""
        self.errors.labels(kind).inc()

    def text(self) -> bytes:
        """Every metric in the Prometheus text format."""
        return generate_latest(self.registry)
