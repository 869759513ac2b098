"""The ping-outcome vocabulary: what ``pings.outcome`` holds and reports count.

One home for it below the listener, so the store's models, the listener's
SQL and the reports name outcomes alike without importing the listener.
"""

from __future__ import annotations

import enum


class Outcome(enum.StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    INVALID = "invalid"
    UNKNOWN_BATCH = "unknown-batch"
    RATE_LIMITED = "rate-limited"


OUTCOMES = tuple(outcome.value for outcome in Outcome)

# The predicate of the partial unique index ``uq_pings_accepted``; the
# listener's ON CONFLICT target repeats it, and PostgreSQL matches the two.
ACCEPTED_ONLY = f"outcome = '{Outcome.ACCEPTED.value}'"
