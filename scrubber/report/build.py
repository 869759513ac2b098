"""Gather one batch's compliance facts from the Store into the canonical JSON form.

Everything in a report is derived from rows at build time; nothing is cached.
Addresses leave this module masked only.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, overload

from sqlalchemy import BigInteger, Integer, and_, case, cast, func, literal, select
from sqlalchemy.orm import Session

from scrubber import __version__, keys, scheme
from scrubber.batch.info import list_names
from scrubber.deadlines import RULES
from scrubber.errors import NotFoundError
from scrubber.report.model import (
    FORMAT,
    SUMMARY_FORMAT,
    BatchMeta,
    BatchReport,
    Bucket,
    DeadlineCheck,
    Header,
    Invariant,
    Latency,
    ListCount,
    OperatorJson,
    OtherSuppressions,
    PartItem,
    Parts,
    Pings,
    Removal,
    SpanHeader,
    SummaryReport,
    SummaryRowJson,
    Verdict,
)
from scrubber.store import Store
from scrubber.store.models import (
    Address,
    Batch,
    BatchEntry,
    BatchList,
    BatchPart,
    MailingList,
    Ping,
    PingTally,
    Suppression,
)
from scrubber.store.outcomes import OUTCOMES as OUTCOMES
from scrubber.store.outcomes import Outcome
from scrubber.store.queries import PartPost, part_posts
from scrubber.store.types import utcnow

VERSION = 2  # 2: JCS-canonical signatures (docs/report.md)
CHANNELS = ("http", "smtp")
INVARIANT = "no address suppressed before this batch was created is in it"
RELISTED = "no address suppressed through this batch was listed in a later batch"
EXAMPLES = 20  # masked examples kept per failed invariant
OTHER_ITEMS = 200  # other-channel suppressions listed one by one (all are counted)


@overload
def iso(moment: datetime) -> str: ...
@overload
def iso(moment: None) -> None: ...
@overload
def iso(moment: datetime | None) -> str | None: ...


def iso(moment: datetime | None) -> str | None:
    """UTC ISO 8601 with microseconds and a Z, or None."""
    if moment is None:
        return None
    return moment.astimezone(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")


def parse_iso(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def seconds(delta: timedelta) -> float:
    return round(delta.total_seconds(), 6)


@dataclass(frozen=True)
class Operator:
    """Who sends: the organisation and a contact an auditor can reach (scrubber.toml)."""

    name: str = ""
    contact: str = ""

    def as_json(self) -> OperatorJson:
        return {"name": self.name or None, "contact": self.contact or None}


def build_report(
    store: Store,
    batch_id: str,
    *,
    now: datetime | None = None,
    operator: Operator | None = None,
) -> BatchReport:
    """The unsigned report of ``batch_id``; raises NotFoundError if there is none."""
    now = now or utcnow()
    with store.read() as session:
        snapshot(session)
        batch = session.get(Batch, batch_id)
        if batch is None:
            raise NotFoundError(f"no batch {batch_id!r} (see 'scrubber report --all')")
        removals = _removals(session, batch, now)
        deadlines = _deadlines(removals)
        invariants = _invariants(session, batch)
        return {
            "report": header(FORMAT, now),
            "operator": (operator or Operator()).as_json(),
            "batch": _metadata(session, batch),
            "addresses_hashed": _count(session, BatchEntry, BatchEntry.batch_id == batch.id),
            "left_out_suppressed": batch.left_out_suppressed,
            "list_counts": _list_counts(session, batch.id),
            "parts": _parts(session, batch),
            "pings": _pings(session, batch.id),
            "suppressions": {
                "count": sum(1 for r in removals if r["suppressed_at"] is not None),
                "pending": sum(1 for r in removals if r["suppressed_at"] is None),
                "items": removals,
            },
            "latency_seconds": latency_stats(
                [r["latency_seconds"] for r in removals if r["latency_seconds"] is not None]
            ),
            "deadlines": deadlines,
            "other_suppressions": _other_suppressions(session, batch, now),
            "invariants": invariants,
            "timeline": _timeline(session, batch.id),
            "ok": all(d["ok"] for d in deadlines) and all(i["ok"] for i in invariants),
        }


def snapshot(session: Session) -> None:
    """Make every query of the report see one moment, while listeners write."""
    # SQLite's read transaction already is a snapshot (WAL); PostgreSQL's
    # default READ COMMITTED would let counts drift between statements.
    if session.get_bind().dialect.name == "postgresql":
        session.connection(execution_options={"isolation_level": "REPEATABLE READ"})


def header(kind: str, now: datetime) -> Header:
    # The generator matters to verification: files are re-rendered to compare.
    return {
        "format": kind,
        "version": VERSION,
        "generator": f"scrubber {__version__}",
        "generated_at": iso(now),
    }


def span_header(kind: str, now: datetime, since: datetime | None) -> SpanHeader:
    """The header of a report over a period (a summary, the ledger)."""
    start = header(kind, now)
    return {
        "format": start["format"],
        "version": start["version"],
        "generator": start["generator"],
        "generated_at": start["generated_at"],
        "since": iso(since),
    }


def _count(session: Session, model: Any, *where: Any) -> int:
    return int(session.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _metadata(session: Session, batch: Batch) -> BatchMeta:
    names = list_names(session, batch.id)
    return {
        "id": batch.id,
        "lists": names,
        "created_at": iso(batch.created_at),
        "expires_at": iso(batch.expires_at),
        "scheme": scheme.SCHEME_NAME,
        "argon2": {"t": batch.t, "m": batch.m, "p": batch.p},
        "tag_length": batch.tag_length,
        "salt_epoch": {"id": batch.epoch_id, "salt": batch.salt.hex()},
        "key_public": batch.key_public,
        "key_fingerprint": keys.fingerprint(keys.decode_public(batch.key_public)),
        "newsgroup": batch.newsgroup,
        "respond_http": batch.respond_http,
        "respond_smtp": batch.respond_smtp,
    }


def _list_counts(session: Session, batch_id: str) -> list[ListCount]:
    """Per list: its size when the batch was made, and how many were left out as
    suppressed (both null for batches made before schema 0007)."""
    rows = session.execute(
        select(MailingList.name, BatchList.listed, BatchList.left_out)
        .join(BatchList, BatchList.list_id == MailingList.id)
        .where(BatchList.batch_id == batch_id)
        .order_by(MailingList.name)
    ).all()
    return [
        {
            "list": name,
            "listed": listed,
            "left_out": left_out,
            "in_batch": None if listed is None or left_out is None else listed - left_out,
        }
        for name, listed, left_out in rows
    ]


def _other_suppressions(session: Session, batch: Batch, now: datetime) -> OtherSuppressions:
    """Addresses of this batch suppressed by other means (by hand, imported, one-click,
    mailto, another batch's ping) while the batch was out: created to expiry."""
    through_this = and_(Suppression.channel == "dni-ping", Suppression.batch_id == batch.id)
    rows = session.execute(
        select(
            Address.canonical,
            Suppression.channel,
            Suppression.reason,
            Suppression.received_at,
            Suppression.suppressed_at,
        )
        .join(BatchEntry, BatchEntry.address_id == Suppression.address_id)
        .join(Address, Address.id == Suppression.address_id)
        .where(
            BatchEntry.batch_id == batch.id,
            Suppression.suppressed_at >= batch.created_at,
            Suppression.suppressed_at < min(batch.expires_at, now),
            ~through_this,
        )
        .order_by(Suppression.suppressed_at, Address.canonical)
    ).all()
    return {
        "count": len(rows),
        "by_channel": dict(sorted(Counter(r.channel for r in rows).items())),
        "by_reason": dict(sorted(Counter(r.reason for r in rows).items())),
        "items": [
            {
                "address": scheme.mask(r.canonical),
                "channel": r.channel,
                "reason": r.reason,
                "received_at": iso(r.received_at),
                "suppressed_at": iso(r.suppressed_at),
            }
            for r in rows[:OTHER_ITEMS]
        ],
    }


def _parts(session: Session, batch: Batch) -> Parts:
    rows = session.scalars(
        select(BatchPart).where(BatchPart.batch_id == batch.id).order_by(BatchPart.part)
    ).all()
    # Where a part first went (a batch may go to several servers; 'batch
    # show' lists them all): the report's layout predates that.
    first = {part: posts[0] for part, posts in part_posts(session, batch.id).items()}
    items: list[PartItem] = [_part_item(row, first.get(row.part)) for row in rows]
    posted = sum(1 for item in items if item["posted_at"] is not None)
    return {"total": batch.parts_total, "posted": posted, "items": items}


def _part_item(row: BatchPart, post: PartPost | None) -> PartItem:
    return {
        "part": row.part,
        "message_id": row.message_id,
        "server": post.server if post else None,
        "posted_at": iso(post.posted_at) if post else None,
        "count": row.count,
        "size": row.size,
        "first_tag": row.first_tag.hex(),
        "last_tag": row.last_tag.hex(),
    }


def _pings(session: Session, batch_id: str) -> Pings:
    rows: list[Any] = list(
        session.execute(
            select(Ping.channel, Ping.outcome, func.count())
            .where(Ping.batch_id == batch_id)
            .group_by(Ping.channel, Ping.outcome)
        ).all()
    )
    # Worthless proofs are counted in ping_tallies, one row per client and
    # minute (older databases also hold them as pings rows: both are read).
    tallied = session.execute(
        select(PingTally.channel, func.sum(PingTally.invalid), func.sum(PingTally.duplicate))
        .where(PingTally.batch_id == batch_id)
        .group_by(PingTally.channel)
    ).all()
    for channel, invalid, duplicate in tallied:
        rows.append((channel, Outcome.INVALID.value, invalid))
        rows.append((channel, Outcome.DUPLICATE.value, duplicate))
    by_channel: dict[str, dict[str, int]] = {c: dict.fromkeys(OUTCOMES, 0) for c in CHANNELS}
    for channel, outcome, count in rows:
        by_channel.setdefault(channel, dict.fromkeys(OUTCOMES, 0))
        by_channel[channel][outcome] = by_channel[channel].get(outcome, 0) + int(count)
    by_outcome: Counter[str] = Counter(dict.fromkeys(OUTCOMES, 0))
    for counts in by_channel.values():
        by_outcome.update(counts)
    first, last = _first_last(session, batch_id)
    return {
        "total": sum(by_outcome.values()),
        "by_outcome": dict(sorted(by_outcome.items())),
        "by_channel": {c: dict(sorted(v.items())) for c, v in sorted(by_channel.items())},
        "first_received_at": iso(first),
        "last_received_at": iso(last),
    }


def _first_last(session: Session, batch_id: str) -> tuple[datetime | None, datetime | None]:
    """When the batch's first and last proofs came (a tally, to the minute)."""
    first, last = session.execute(
        select(func.min(Ping.received_at), func.max(Ping.received_at)).where(
            Ping.batch_id == batch_id
        )
    ).one()
    tally_first, tally_last = session.execute(
        select(func.min(PingTally.minute), func.max(PingTally.minute)).where(
            PingTally.batch_id == batch_id
        )
    ).one()
    firsts = [t for t in (first, tally_first) if t is not None]
    lasts = [t for t in (last, tally_last) if t is not None]
    return (min(firsts) if firsts else None, max(lasts) if lasts else None)


def _removals(session: Session, batch: Batch, now: datetime) -> list[Removal]:
    """One row per accepted ping: its address (masked) and when it was suppressed."""
    rows = session.execute(
        select(
            Ping.id,
            Ping.channel,
            Ping.received_at,
            Address.canonical,
            Suppression.suppressed_at,
            Suppression.channel,
        )
        .join(Address, Address.id == Ping.address_id)
        .outerjoin(Suppression, Suppression.address_id == Ping.address_id)
        .where(Ping.batch_id == batch.id, Ping.outcome == Outcome.ACCEPTED.value)
        .order_by(Ping.received_at, Ping.id)
    ).all()
    return [_removal(row, now) for row in rows]


def _removal(row: Any, now: datetime) -> Removal:
    ping_id, channel, received, canonical, suppressed, source = row
    # Suppressed earlier (another batch, or by hand): removal took no time.
    latency = None if suppressed is None else max(suppressed - received, timedelta(0))
    verdicts: dict[str, Verdict] = {}
    for rule in RULES:
        deadline = rule.deadline(received)
        if latency is not None:
            verdicts[rule.key] = "met" if received + latency <= deadline else "late"
        else:
            verdicts[rule.key] = "late" if now > deadline else "pending"
    return {
        "ping_id": ping_id,
        "address": scheme.mask(canonical),
        "channel": channel,
        "received_at": iso(received),
        "suppressed_at": iso(suppressed),
        "source": source,
        "latency_seconds": None if latency is None else seconds(latency),
        "can_spam": verdicts["can_spam"],
        "gmail_yahoo": verdicts["gmail_yahoo"],
    }


def verdicts(item: Removal) -> dict[str, Verdict]:
    """A removal's verdict per batch-report rule key (deadlines.RULES)."""
    return {"can_spam": item["can_spam"], "gmail_yahoo": item["gmail_yahoo"]}


def latency_stats(values: Sequence[float]) -> Latency:
    """min, median, p99 (nearest rank) and max of the removal latencies."""
    if not values:
        return {"count": 0, "min": None, "median": None, "p99": None, "max": None}
    ordered = sorted(values)
    rank = math.ceil(0.99 * len(ordered))
    return {
        "count": len(ordered),
        "min": ordered[0],
        "median": round(statistics.median(ordered), 6),
        "p99": ordered[rank - 1],
        "max": ordered[-1],
    }


def _deadlines(removals: Iterable[Removal]) -> list[DeadlineCheck]:
    items = list(removals)
    result: list[DeadlineCheck] = []
    for rule in RULES:
        counts = Counter(verdicts(item)[rule.key] for item in items)
        result.append(
            {
                "rule": rule.key,
                "name": rule.name,
                "limit": rule.limit,
                "checked": len(items),
                "met": counts["met"],
                "late": counts["late"],
                "pending": counts["pending"],
                "ok": counts["late"] == 0,
            }
        )
    return result


def _invariants(session: Session, batch: Batch) -> list[Invariant]:
    before = (
        select(Address.canonical)
        .join(BatchEntry, BatchEntry.address_id == Address.id)
        .join(Suppression, Suppression.address_id == Address.id)
        .where(BatchEntry.batch_id == batch.id, Suppression.suppressed_at < batch.created_at)
    )
    # Driven from this batch's accepted pings and the few later batches, so the
    # (batch_id, address_id) index answers each lookup.
    later = (
        select(Address.canonical)
        .select_from(Ping)
        .join(Suppression, Suppression.address_id == Ping.address_id)
        .join(Batch, Batch.created_at > Suppression.suppressed_at)
        .join(
            BatchEntry,
            and_(BatchEntry.batch_id == Batch.id, BatchEntry.address_id == Ping.address_id),
        )
        .join(Address, Address.id == Ping.address_id)
        .where(Ping.batch_id == batch.id, Ping.outcome == Outcome.ACCEPTED.value)
        .distinct()
    )
    return [
        _invariant(session, "not_previously_suppressed", INVARIANT, before),
        _invariant(session, "not_relisted_later", RELISTED, later),
    ]


def _invariant(session: Session, key: str, statement: str, query: Any) -> Invariant:
    count = int(session.scalar(select(func.count()).select_from(query.subquery())) or 0)
    examples = (
        session.scalars(query.order_by(Address.canonical).limit(EXAMPLES)).all() if count else []
    )
    return {
        "check": key,
        "statement": statement,
        "violations": count,
        "examples": [scheme.mask(a) for a in examples],
        "ok": count == 0,
    }


# Bucket widths the timeline may use, finest first; the finest one that keeps
# the batch's pings within TIMELINE_BARS bars wins, so a batch whose pings
# fall in one hour is drawn in minutes, not as one bar.
BUCKETS = (60, 300, 900, 3600, 6 * 3600, 86400, 7 * 86400)
TIMELINE_BARS = 48


def _timeline(session: Session, batch_id: str) -> list[Bucket]:
    """Pings and suppressions per time bucket, for the HTML timeline; counted in SQL."""
    width = _bucket_width(session, batch_id)
    buckets: dict[int, Counter[str]] = {}
    # Grouped by label: PostgreSQL would not match repeated bound expressions.
    kind = case((Ping.outcome == Outcome.ACCEPTED.value, "accepted"), else_="other").label("kind")
    pings = (
        select(_bucket(session, Ping.received_at, width).label("start"), kind, func.count())
        .where(Ping.batch_id == batch_id)
        .group_by("start", "kind")
    )
    removed = (
        select(
            _bucket(session, Suppression.suppressed_at, width).label("start"),
            literal("suppressed"),
            func.count(),
        )
        .where(Suppression.batch_id == batch_id)
        .group_by("start")
    )
    tallied = (
        select(
            _bucket(session, PingTally.minute, width).label("start"),
            literal("other"),
            func.sum(PingTally.invalid + PingTally.duplicate),
        )
        .where(PingTally.batch_id == batch_id)
        .group_by("start")
    )
    for query in (pings, tallied, removed):
        for start, kind, count in session.execute(query):
            buckets.setdefault(int(start), Counter())[kind] += int(count)
    return [
        {
            "start": iso(datetime.fromtimestamp(start, UTC)),
            "seconds": width,
            "accepted": counts["accepted"],
            "other": counts["other"],
            "suppressed": counts["suppressed"],
        }
        for start, counts in sorted(buckets.items())
    ]


def _bucket_width(session: Session, batch_id: str) -> int:
    """The finest bucket that spans the batch's first to last event in few bars."""
    spans = [
        select(func.min(Ping.received_at), func.max(Ping.received_at)).where(
            Ping.batch_id == batch_id
        ),
        select(func.min(PingTally.minute), func.max(PingTally.minute)).where(
            PingTally.batch_id == batch_id
        ),
        select(func.min(Suppression.suppressed_at), func.max(Suppression.suppressed_at)).where(
            Suppression.batch_id == batch_id
        ),
    ]
    moments = [m for query in spans for m in session.execute(query).one() if m is not None]
    if not moments:
        return BUCKETS[0]
    span = (max(moments) - min(moments)).total_seconds()
    return next((w for w in BUCKETS if span / w < TIMELINE_BARS), BUCKETS[-1])


def _bucket(session: Session, column: Any, width: int) -> Any:
    """SQL for the start of the ``width``-second UTC bucket of a timestamp, in Unix seconds."""
    if session.get_bind().dialect.name == "sqlite":
        # SQLite stores the naive UTC text that store/types.py writes.
        return cast(func.strftime("%s", column), Integer) // width * width
    epoch = func.floor(func.extract("epoch", column) / width)
    return cast(epoch * width, BigInteger)


# -- the summary across batches (report --all) --------------------------------


def summary_row(report: BatchReport) -> SummaryRowJson:
    """The columns an auditor scans first, one row per batch."""
    deadlines = {d["rule"]: d["ok"] for d in report["deadlines"]}
    return {
        "batch": report["batch"]["id"],
        "created_at": report["batch"]["created_at"],
        "lists": " ".join(report["batch"]["lists"]),
        "addresses_hashed": report["addresses_hashed"],
        "parts_posted": report["parts"]["posted"],
        "parts_total": report["parts"]["total"],
        "pings": report["pings"]["total"],
        "accepted": report["pings"]["by_outcome"]["accepted"],
        "suppressed": report["suppressions"]["count"],
        "pending": report["suppressions"]["pending"],
        "latency_max_seconds": report["latency_seconds"]["max"],
        "can_spam_ok": deadlines["can_spam"],
        "gmail_yahoo_ok": deadlines["gmail_yahoo"],
        "invariants_ok": all(i["ok"] for i in report["invariants"]),
        "ok": report["ok"],
    }


def batch_ids(store: Store, since: datetime | None = None) -> list[str]:
    query = select(Batch.id).order_by(Batch.created_at, Batch.id)
    if since is not None:
        query = query.where(Batch.created_at >= since)
    with store.read() as session:
        return list(session.scalars(query).all())


def build_summary(
    store: Store, since: datetime | None = None, *, operator: Operator | None = None
) -> SummaryReport:
    """A row per batch created at or after ``since``; unsigned."""
    now = utcnow()
    rows = [summary_row(build_report(store, b, now=now)) for b in batch_ids(store, since)]
    return {
        "report": span_header(SUMMARY_FORMAT, now, since),
        "operator": (operator or Operator()).as_json(),
        "batches": rows,
        "ok": all(row["ok"] for row in rows),
    }
