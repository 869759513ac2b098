"""Opt-out deadlines a suppression must meet, counted from the ping.

CAN-SPAM (15 U.S.C. 7704(a)(4)) allows 10 business days; Gmail's and Yahoo's
bulk-sender rules (2024) ask for 2 days. Business days are Monday to Friday in
UTC; public holidays are not skipped, which only makes the check stricter.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

CAN_SPAM_BUSINESS_DAYS = 10
GMAIL_YAHOO_DAYS = 2


def add_business_days(start: datetime, days: int) -> datetime:
    """``start`` moved forward by ``days`` weekdays, keeping the time of day."""
    if days <= 0:
        return start
    # From a weekend, counting starts as from the Friday before.
    current = start - timedelta(days=max(0, start.weekday() - 4))
    weeks, rest = divmod(days, 5)
    current += timedelta(weeks=weeks)  # five weekdays are always one calendar week
    while rest:
        current += timedelta(days=1)
        if current.weekday() < 5:
            rest -= 1
    return current


@dataclass(frozen=True)
class Rule:
    """One deadline: its stable key, a human name, and how to compute it."""

    key: str
    name: str
    limit: str
    deadline: Callable[[datetime], datetime]


def _can_spam(received: datetime) -> datetime:
    return add_business_days(received, CAN_SPAM_BUSINESS_DAYS)


def _gmail_yahoo(received: datetime) -> datetime:
    return received + timedelta(days=GMAIL_YAHOO_DAYS)


RULES: tuple[Rule, ...] = (
    Rule("can_spam", "CAN-SPAM", f"{CAN_SPAM_BUSINESS_DAYS} business days", _can_spam),
    Rule("gmail_yahoo", "Gmail/Yahoo", f"{GMAIL_YAHOO_DAYS} days", _gmail_yahoo),
)
