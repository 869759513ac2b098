"""Opt-out deadlines a suppression must meet, counted from the request.

CAN-SPAM (15 U.S.C. 7704(a)(4)) allows 10 business days; Gmail's and Yahoo's
bulk-sender rules (2024) ask for 2 days. Business days are Monday to Friday in
UTC; public holidays are not skipped, which only makes the check stricter.

Batch reports check the two fixed rules in ``RULES``; the ledger report checks
the operator's table (``[scrubber.deadlines]`` in scrubber.toml, name = limit,
``LEDGER_DEFAULTS`` when absent), each limit written as ``N hours``, ``N days``
or ``N business days`` (``working days`` is the same).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
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


# The ledger report's rules when scrubber.toml names none (docs/report.md).
LEDGER_DEFAULTS: dict[str, str] = {
    "Gmail": "48 hours",
    "Yahoo": "2 days",
    "CAN-SPAM": "10 business days",
    "CASL": "10 business days",
    "Australia Spam Act": "5 working days",
}
_LIMIT = re.compile(r"^\s*([0-9]{1,4})\s+(hours?|days?|business days?|working days?)\s*$")


def parse_limit(text: str) -> Callable[[datetime], datetime]:
    """The deadline function of a limit such as ``48 hours`` or ``10 business days``."""
    match = _LIMIT.match(text)
    if match is None:
        raise ValueError(
            f"deadline {text!r} is not 'N hours', 'N days', 'N business days' or 'N working days'"
        )
    count, unit = int(match.group(1)), match.group(2)
    if unit.startswith(("business", "working")):
        return lambda received: add_business_days(received, count)
    step = timedelta(hours=count) if unit.startswith("hour") else timedelta(days=count)
    return lambda received: received + step


def ledger_rules(table: Mapping[str, str]) -> tuple[Rule, ...]:
    """The operator's deadline table as rules, in the table's order."""
    return tuple(
        Rule(name, name, limit.strip(), parse_limit(limit)) for name, limit in table.items()
    )
