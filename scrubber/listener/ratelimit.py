"""Token-bucket rate limits per client address and per response token.

Costs are counted in proofs, so one request with 1,000 proofs weighs as much
as 1,000 requests with one. The bucket holds a minute's worth (at least one
full request), refilled continuously.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from scrubber.listener.ping import MAX_PROOFS

MAX_KEYS = 100_000  # buckets kept before full (idle) ones are dropped


@dataclass
class _Bucket:
    level: float
    stamp: float


@dataclass
class RateLimiter:
    """``per_minute`` proofs per key; 0 means no limit."""

    per_minute: int
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, _Bucket] = field(default_factory=dict)

    @property
    def capacity(self) -> float:
        return float(max(self.per_minute, MAX_PROOFS))

    def allow(self, key: str, cost: int = 1) -> bool:
        if self.per_minute <= 0:
            return True
        now = self.clock()
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        bucket.level = min(
            self.capacity, bucket.level + (now - bucket.stamp) * self.per_minute / 60
        )
        bucket.stamp = now
        if bucket.level < cost:
            return False
        bucket.level -= cost
        return True

    def _prune(self, now: float) -> None:
        # A bucket that has refilled completely holds no state worth keeping.
        rate = self.per_minute / 60
        full = [
            key
            for key, b in self._buckets.items()
            if b.level + (now - b.stamp) * rate >= self.capacity
        ]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= MAX_KEYS:  # still full: forget the oldest half
            oldest = sorted(self._buckets, key=lambda k: self._buckets[k].stamp)
            for key in oldest[: MAX_KEYS // 2]:
                del self._buckets[key]


@dataclass
class Limits:
    """Both limits a request must pass: its client address and its token."""

    per_client: RateLimiter
    per_token: RateLimiter

    @classmethod
    def of(cls, client_per_minute: int, token_per_minute: int) -> Limits:
        return cls(RateLimiter(client_per_minute), RateLimiter(token_per_minute))

    def allow(self, peer: str, token: str, cost: int) -> bool:
        return self.per_client.allow(peer, cost) and self.per_token.allow(token, cost)
