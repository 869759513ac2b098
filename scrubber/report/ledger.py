"""The ledger report: every suppression from every channel, with its deadline clocks.

Two clocks run per request: received to committed (scrubber's part), and
received to the moment sending stopped, which is the first list export or
batch, started at or after the commit, over a list holding the address (from
then on nothing the operator sends from scrubber reaches it). The operator's
deadline rules (``[scrubber.deadlines]``) are judged on the second clock.
Addresses leave this module masked only.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrubber import scheme
from scrubber.deadlines import Rule, ledger_rules
from scrubber.report.build import (
    Operator,
    iso,
    latency_stats,
    seconds,
    snapshot,
    span_header,
)
from scrubber.report.model import LEDGER_FORMAT, LedgerCheck, LedgerItem, LedgerReport
from scrubber.store import Store
from scrubber.store.models import (
    Address,
    Batch,
    BatchList,
    ListEntry,
    ListExport,
    MailingList,
    Suppression,
    SuppressionLift,
)
from scrubber.store.types import utcnow

# Requests scrubber itself received; an import's received time is another
# system's record of a request that system had to honour, so it is not judged.
JUDGED_CHANNELS = ("dni-ping", "one-click", "mailto", "manual")
_ZERO = timedelta(0)


@dataclass(frozen=True)
class Stop:
    """When sending to an address stopped, and what stopped it."""

    at: datetime | None
    by: str | None


def build_ledger(
    store: Store,
    deadlines: Mapping[str, str],
    *,
    since: datetime | None = None,
    now: datetime | None = None,
    operator: Operator | None = None,
) -> LedgerReport:
    """The unsigned ledger report of suppressions committed at or after ``since``."""
    now = now or utcnow()
    rules = ledger_rules(deadlines)
    with store.read() as session:
        snapshot(session)
        rows = _suppressions(session, since)
        stops = _stops(session, since)
        lifted = _lifted(session, since)
    items = [_item(row, stops.get(row.address_id), rules, now) for row in rows]
    checks = [_rule_totals(rule, items) for rule in rules]
    return {
        "report": span_header(LEDGER_FORMAT, now, since),
        "operator": (operator or Operator()).as_json(),
        "suppressions": {
            "count": len(items),
            "by_channel": _tally(i["channel"] for i in items),
            "by_reason": _tally(i["reason"] for i in items),
            "by_origin": _tally(i["origin"] or "-" for i in items),
        },
        "lifted": lifted,
        "clocks": {
            "commit_seconds": latency_stats([i["commit_seconds"] for i in items]),
            "stop_seconds": latency_stats(
                [i["stop_seconds"] for i in items if i["stop_seconds"] is not None]
            ),
        },
        "deadlines": checks,
        "items": items,
        "ok": all(check["ok"] for check in checks),
    }


def _tally(values: Iterable[str]) -> dict[str, int]:
    return dict(sorted(Counter(values).items()))


def _suppressions(session: Session, since: datetime | None) -> list[Any]:
    query = select(
        Suppression.address_id,
        Address.canonical,
        Suppression.channel,
        Suppression.reason,
        Suppression.origin,
        Suppression.received_at,
        Suppression.suppressed_at,
    ).join(Address, Address.id == Suppression.address_id)
    if since is not None:
        query = query.where(Suppression.suppressed_at >= since)
    return list(session.execute(query.order_by(Suppression.suppressed_at, Address.canonical)))


def _stops(session: Session, since: datetime | None) -> dict[int, Stop]:
    """Per suppressed address on a list: the first export or batch of one of its lists
    started at or after the commit. Addresses on no list are absent."""
    export = (
        select(func.min(ListExport.started_at))
        .where(
            ListExport.list_id == ListEntry.list_id,
            ListExport.started_at >= Suppression.suppressed_at,
        )
        .scalar_subquery()
    )
    batch = (
        select(Batch.id)
        .join(BatchList, BatchList.batch_id == Batch.id)
        .where(
            BatchList.list_id == ListEntry.list_id, Batch.created_at >= Suppression.suppressed_at
        )
        .order_by(Batch.created_at, Batch.id)
        .limit(1)
        .scalar_subquery()
    )
    query = (
        select(ListEntry.address_id, Address.canonical, ListEntry.list_id, export, batch)
        .join(Suppression, Suppression.address_id == ListEntry.address_id)
        .join(Address, Address.id == ListEntry.address_id)
    )
    if since is not None:
        query = query.where(Suppression.suppressed_at >= since)
    names = _list_names(session)
    created = _batch_times(session)
    stops: dict[int, Stop] = {}
    for address_id, _, list_id, exported, batch_id in session.execute(query):
        found = stops.setdefault(address_id, Stop(None, None))
        for at, by in (
            (exported, f"export of {names[list_id]}"),
            (created.get(batch_id), f"batch {batch_id}"),
        ):
            if at is not None and (found.at is None or at < found.at):
                found = Stop(at, by)
        stops[address_id] = found
    return stops


def _list_names(session: Session) -> dict[int, str]:
    return {i: name for i, name in session.execute(select(MailingList.id, MailingList.name))}


def _batch_times(session: Session) -> dict[str | None, datetime]:
    return {i: at for i, at in session.execute(select(Batch.id, Batch.created_at))}


def _lifted(session: Session, since: datetime | None) -> int:
    query = select(func.count()).select_from(SuppressionLift)
    if since is not None:
        query = query.where(SuppressionLift.lifted_at >= since)
    return int(session.scalar(query) or 0)


def _item(row: Any, stop: Stop | None, rules: tuple[Rule, ...], now: datetime) -> LedgerItem:
    # An address on no list is sent nothing from scrubber: sending stopped at the commit.
    stopped_at = row.suppressed_at if stop is None else stop.at
    stopped_by = "on no list" if stop is None else stop.by
    judged = row.channel in JUDGED_CHANNELS
    item: LedgerItem = {
        "address": scheme.mask(row.canonical),
        "channel": row.channel,
        "reason": row.reason,
        "origin": row.origin,
        "received_at": iso(row.received_at),
        "committed_at": iso(row.suppressed_at),
        "commit_seconds": seconds(max(row.suppressed_at - row.received_at, _ZERO)),
        "stopped_at": iso(stopped_at),
        "stopped_by": stopped_by,
        "stop_seconds": None
        if stopped_at is None
        else seconds(max(stopped_at - row.received_at, _ZERO)),
        "deadlines": {
            rule.key: _verdict(rule, row.received_at, stopped_at, now) if judged else "not judged"
            for rule in rules
        },
    }
    return item


def _verdict(rule: Rule, received: datetime, stopped: datetime | None, now: datetime) -> str:
    deadline = rule.deadline(received)
    if stopped is not None:
        return "met" if stopped <= deadline else "late"
    return "late" if now > deadline else "pending"


def _rule_totals(rule: Rule, items: list[LedgerItem]) -> LedgerCheck:
    counts = Counter(item["deadlines"][rule.key] for item in items)
    return {
        "rule": rule.key,
        "name": rule.name,
        "limit": rule.limit,
        "checked": len(items) - counts["not judged"],
        "met": counts["met"],
        "late": counts["late"],
        "pending": counts["pending"],
        "not_judged": counts["not judged"],
        "ok": counts["late"] == 0,
    }
