"""Rate limits that charge whoever sends worthless proofs, never the batch.

A proof is worthless when checking it finds nothing to do: invalid (not in
the batch's index), repeated (accepted before), or for an unknown token.
Checking is one index lookup, far cheaper than making a proof, so the
listener checks every admitted request and charges only the worthless part,
afterwards (``Limits.settle``):

- per client address (``per_client``): a client's bucket holds a minute's
  worth of proofs (at least one full request) and is charged only for
  worthless ones. The proofs of the client's requests being checked are
  held against it, so no client has more than its bucket's worth in
  flight, and a request that does not fit is refused at once (429, nothing
  stored). A client whose bucket is full is *clean*; one below full (it
  sent worthless proofs lately) is *suspect*: its requests wait in the
  committer's second lane, behind every clean request; so do requests of
  more than ``SMALL_REQUEST`` proofs, whoever sends them.
- per response token (``per_token``): the worthless proofs sent for one
  batch. When a token's bucket is empty, suspect clients are refused for it;
  clean clients never are, so nobody can spend a batch's budget and block
  its registrants' opt-outs.

IPv6 clients are keyed by their /64 (one host usually holds a whole /64).
"""

from __future__ import annotations

import enum
import ipaddress
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from scrubber.listener.ping import MAX_PROOFS

MAX_KEYS = 100_000  # buckets kept before full (idle) ones are dropped
# Proofs a registrant's ping carries (one per address it protects): a larger
# request waits in the second lane, behind every small one from clean clients.
SMALL_REQUEST = 20


class Admission(enum.Enum):
    CLEAN = "clean"  # first lane
    SUSPECT = "suspect"  # second lane
    REFUSED = "refused"  # 429 at once


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
        """Take ``cost`` if the bucket holds it."""
        if self.per_minute <= 0:
            return True
        bucket = self._refilled(key)
        if bucket.level < cost:
            return False
        bucket.level -= cost
        return True

    def level(self, key: str) -> float:
        """What the bucket holds now; ``capacity`` when full or unknown."""
        bucket = self._buckets.get(key)
        if bucket is None or self.per_minute <= 0:
            return self.capacity
        return self._refill(bucket)

    def charge(self, key: str, cost: float) -> None:
        """Take ``cost`` (or give it back, when negative), into debt if need be."""
        if self.per_minute <= 0 or cost == 0:
            return
        bucket = self._refilled(key)
        bucket.level = min(self.capacity, bucket.level - cost)
        if bucket.level >= self.capacity:
            del self._buckets[key]  # a full bucket holds nothing worth keeping

    def _refilled(self, key: str) -> _Bucket:
        bucket = self._buckets.get(key)
        now = self.clock()
        if bucket is None:
            if len(self._buckets) >= MAX_KEYS:
                self._prune(now)
            bucket = self._buckets[key] = _Bucket(self.capacity, now)
        self._refill(bucket, now)
        return bucket

    def _refill(self, bucket: _Bucket, now: float | None = None) -> float:
        now = self.clock() if now is None else now
        bucket.level = min(
            self.capacity, bucket.level + (now - bucket.stamp) * self.per_minute / 60
        )
        bucket.stamp = now
        return bucket.level

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
    """The client's and the token's budgets for worthless proofs."""

    per_client: RateLimiter
    per_token: RateLimiter
    _held: dict[str, int] = field(default_factory=dict)  # client -> proofs in flight

    @classmethod
    def of(cls, client_per_minute: int, token_per_minute: int) -> Limits:
        return cls(RateLimiter(client_per_minute), RateLimiter(token_per_minute))

    def refused(self, peer: str) -> bool:
        """A client without room for one proof: answered 429 before its
        request is even read (or its connection accepted)."""
        return self.room(peer) < 1

    def room(self, peer: str) -> float:
        """Proofs the client may still send (its bucket's level); infinite
        without a limit. A full bucket has room for a whole request."""
        if self.per_client.per_minute <= 0:
            return float("inf")
        return self.per_client.level(client_key(peer))

    def admit(self, peer: str, token: str, cost: int) -> Admission:
        """Which lane a request of ``cost`` proofs takes; holds them for the client."""
        bulk = cost > SMALL_REQUEST
        if self.per_client.per_minute <= 0:
            return Admission.SUSPECT if bulk else Admission.CLEAN
        key = client_key(peer)
        level = self.per_client.level(key)
        held = self._held.get(key, 0)
        if held + cost > level:
            return Admission.REFUSED
        suspect = bulk or level < self.per_client.capacity
        if suspect and level < self.per_client.capacity and self.per_token.level(token) <= 0:
            return Admission.REFUSED
        self._held[key] = held + cost
        return Admission.SUSPECT if suspect else Admission.CLEAN

    def settle(self, peer: str, token: str, cost: int, worthless: int) -> None:
        """After the check (or its failure: ``worthless`` 0): the held proofs
        are released, the worthless ones charged to the client and the token."""
        if self.per_client.per_minute > 0:
            key = client_key(peer)
            held = self._held.pop(key, 0) - cost
            if held > 0:
                self._held[key] = held
            self.per_client.charge(key, worthless)
        if worthless:
            self.per_token.charge(token, worthless)

    def worthless(self, peer: str, count: int) -> None:
        """Charge a client for worthless work outside a ping (unknown recipients)."""
        self.per_client.charge(client_key(peer), count)


def client_key(peer: str) -> str:
    """The bucket of a client address: itself, or its /64 for IPv6."""
    if ":" not in peer:
        return peer  # IPv4, the usual case: no parsing
    try:
        address = ipaddress.IPv6Address(peer)
    except ValueError:
        return peer
    if address.ipv4_mapped is not None:  # IPv4 on a dual-stack socket
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))
