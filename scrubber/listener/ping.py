"""The ping vocabulary both edges, the committer and the writer share.

A ``PingRequest`` is what one HTTP request or one SMTP message asks for
(an ``UnsubscribeRequest`` for a one-click or mailto unsubscribe); a
``PingResult`` is its answer, one ``Outcome`` per proof. ``Outcome`` lives
in ``scrubber.store.outcomes`` (the store and the reports use it without
importing the listener) and is re-exported here, so the listener's modules
take their whole vocabulary from this one. Nothing here does I/O, so any
listener module may import it.
"""

from __future__ import annotations

import binascii
import re
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from scrubber import scheme
from scrubber.store.outcomes import OUTCOMES as OUTCOMES
from scrubber.store.outcomes import Outcome as Outcome
from scrubber.store.types import utcnow

PROOF_LEN = 16
MAX_PROOFS = 1000  # per request, both channels
_TOKEN = re.compile(r"[A-Za-z0-9_-]{1,64}")
_PROOF_TEXT = re.compile(r"[A-Za-z0-9_-]{22}")  # 16 bytes, base64url without padding
_URLSAFE = bytes.maketrans(b"-_", b"+/")


@dataclass(slots=True)  # not frozen: a frozen __init__ costs the hot path
class PingRequest:
    """Proofs sent for one token in one HTTP request or one SMTP message.

    ``received`` is when it arrived, in POSIX seconds: the edges take the
    clock as a float (``time.time``, a fraction of ``datetime.now``'s cost on
    the event loop) and the writer process makes the datetime
    (``received_at``); a float carries the microseconds exactly for
    centuries either side of now (tests/test_listener_writer.py).
    """

    token: str
    proofs: Sequence[str]
    channel: str
    peer: str
    received: float = field(default_factory=time.time)

    @property
    def received_at(self) -> datetime:
        return datetime.fromtimestamp(self.received, UTC)


# The channels of unsubscribe requests (the ledger's names for them).
ONE_CLICK = "one-click"
MAILTO = "mailto"


@dataclass(slots=True)
class UnsubscribeRequest:
    """A one-click POST or a mailto message for a token the edge has verified
    (its MAC): the subscriber it names, and the request's evidence.

    It goes through the committer and the writer process like a ping, so it
    too is answered only after its commit. It carries no proofs: it costs
    nothing in the committer's proof budgets. Its result is a PingResult
    with one outcome: accepted (newly suppressed), duplicate (suppressed
    before), invalid (the address is no longer in the database).
    """

    token: str
    list_id: int
    address_id: int
    check: bytes | None  # the token's address check (unsubscribe.address_check)
    channel: str  # ONE_CLICK or MAILTO
    peer: str
    request_id: str
    received_at: datetime = field(default_factory=utcnow)

    @property
    def proofs(self) -> tuple[str, ...]:
        return ()


Request = PingRequest | UnsubscribeRequest


@dataclass(frozen=True)
class PingResult:
    batch_id: str | None
    outcomes: list[Outcome]
    suppressed: int  # addresses this request newly suppressed

    @property
    def known_batch(self) -> bool:
        return self.batch_id is not None

    @property
    def worthless(self) -> int:
        """Proofs that found nothing to do: what the sender is charged."""
        return len(self.outcomes) - self.outcomes.count(Outcome.ACCEPTED)

    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES, 0)
        for outcome in self.outcomes:
            counts[outcome.value] += 1
        return counts


def decode_proof(value: str) -> bytes | None:
    """The 16 proof bytes, or None when the text is not a well-formed proof."""
    if _PROOF_TEXT.fullmatch(value):  # the exact form nearly every ping uses
        # What base64.urlsafe_b64decode does, in a third of its time (the
        # writer decodes every proof): the pattern has checked the alphabet.
        return binascii.a2b_base64(value.encode("ascii").translate(_URLSAFE) + b"==")
    try:
        raw = scheme.from_b64url(value)
    except ValueError:
        return None
    return raw if len(raw) == PROOF_LEN else None


def clean_token(token: str) -> str | None:
    return token if _TOKEN.fullmatch(token) else None
