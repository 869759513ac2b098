"""Prometheus metrics of one listener, in its own registry (no global state)."""

from __future__ import annotations

from collections.abc import Sequence

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client.exposition import generate_latest

from scrubber.listener.ping import MAILTO, ONE_CLICK, Outcome, Request

_SECONDS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5)
_SIZES = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000)
UNSUBSCRIBE_CHANNELS = (ONE_CLICK, MAILTO)
# An unsubscribe's outcome (ping.UnsubscribeRequest) as the counter names it.
_UNSUBSCRIBE_OUTCOMES = {
    Outcome.ACCEPTED: "suppressed",
    Outcome.DUPLICATE: "repeated",
    Outcome.INVALID: "unknown",
    Outcome.UNKNOWN_BATCH: "unknown",
    Outcome.RATE_LIMITED: "rate-limited",
}


class ListenerMetrics:
    """Pings by channel and outcome, commit latency, group-commit sizes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.pings = Counter(
            "scrubber_pings",
            "Proofs received, by channel and outcome (rate-limited: refused unchecked)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        self.commit_seconds = Histogram(
            "scrubber_commit_seconds",
            "Time to verify and commit one group of pings",
            buckets=_SECONDS,
            registry=self.registry,
        )
        self.group_requests = Histogram(
            "scrubber_group_commit_requests",
            "Requests committed together in one transaction",
            buckets=_SIZES,
            registry=self.registry,
        )
        self.commit_failures = Counter(
            "scrubber_commit_failures",
            "Requests whose transaction failed (answered 451/503)",
            registry=self.registry,
        )
        self.responses = Counter(
            "scrubber_responses",
            "Answers sent, by channel and status code",
            ["channel", "status"],
            registry=self.registry,
        )
        self.connections_refused = Counter(
            "scrubber_connections_refused",
            "Connections closed at once: a channel's or a client's cap was reached",
            ["channel"],
            registry=self.registry,
        )
        self.unsubscribes = Counter(
            "scrubber_unsubscribes",
            "One-click and mailto unsubscribe requests, by channel and outcome "
            "(suppressed, repeated, unknown: address gone, refused: forged or "
            "malformed token, rate-limited)",
            ["channel", "outcome"],
            registry=self.registry,
        )
        # Label lookups cost more than the increments on the hot path:
        # children are bound once and kept.
        self._pings_by = {
            (channel, outcome): self.pings.labels(channel, outcome.value)
            for channel in ("http", "smtp")
            for outcome in Outcome
        }
        # Answers are counted in a plain dict and moved into their counter
        # when /metrics is read: a counter's increment takes a lock, and the
        # HTTP edge answers every request through here.
        self._answers: dict[tuple[str, int], int] = {}

    # CommitObserver
    def committed(self, seconds: float, requests: Sequence[Request]) -> None:
        self.commit_seconds.observe(seconds)
        self.group_requests.observe(len(requests))

    def outcome(self, channel: str, outcome: Outcome, count: int) -> None:
        if channel in UNSUBSCRIBE_CHANNELS:
            self.unsubscribed(channel, _UNSUBSCRIBE_OUTCOMES[outcome], count)
            return
        child = self._pings_by.get((channel, outcome))
        if child is None:
            child = self._pings_by[channel, outcome] = self.pings.labels(channel, outcome.value)
        child.inc(count)

    def unsubscribed(self, channel: str, outcome: str, count: int = 1) -> None:
        self.unsubscribes.labels(channel, outcome).inc(count)

    def failed(self, requests: int) -> None:
        self.commit_failures.inc(requests)

    def answered(self, channel: str, status: int) -> None:
        key = (channel, status)
        self._answers[key] = self._answers.get(key, 0) + 1

    def connection_refused(self, channel: str) -> None:
        self.connections_refused.labels(channel).inc()

    def render(self) -> tuple[bytes, str]:
        answers, self._answers = self._answers, {}
        for (channel, status), count in answers.items():
            self.responses.labels(channel, str(status)).inc(count)
        return generate_latest(self.registry), CONTENT_TYPE_LATEST
