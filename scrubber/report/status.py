"""The facts behind ``scrubber status``: lists, batches, pings today, listener."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import func, select

from scrubber import lists
from scrubber.config import Settings
from scrubber.store import Store
from scrubber.store.models import Batch, Ping, PingTally, Suppression
from scrubber.store.outcomes import Outcome
from scrubber.store.queries import parts_posted

AT_RISK_AFTER = timedelta(hours=24)  # half the strictest deadline (Gmail/Yahoo, 48 h)
HEALTH_TIMEOUT = 0.5  # seconds; a listener that is up answers far faster


@dataclass(frozen=True)
class BatchLine:
    id: str
    created_at: datetime
    count: int
    parts_posted: int
    parts_total: int
    accepted: int


@dataclass(frozen=True)
class Health:
    url: str
    up: bool
    detail: str
    key_ok: bool | None = None  # the listener serves this workspace's key (None: not asked)


@dataclass(frozen=True)
class Status:
    lists: list[lists.ListInfo]
    batches_total: int
    recent_batches: list[BatchLine]
    pings_today: dict[str, int]
    suppressions: dict[str, int]
    listener: Health
    at_risk: int = 0  # accepted pings unsuppressed for over AT_RISK_AFTER


def gather(store: Store, settings: Settings, key: str, recent: int = 5) -> Status:
    midnight = today_utc()
    with store.read() as session:
        batches_total = int(session.scalar(select(func.count()).select_from(Batch)) or 0)
        today = session.execute(
            select(Ping.outcome, func.count())
            .where(Ping.received_at >= midnight)
            .group_by(Ping.outcome)
        ).all()
        tallied = session.execute(
            select(func.sum(PingTally.invalid), func.sum(PingTally.duplicate)).where(
                PingTally.minute >= midnight
            )
        ).one()
        at_risk = session.scalar(
            select(func.count())
            .select_from(Ping)
            .where(
                Ping.outcome == Outcome.ACCEPTED.value,
                Ping.received_at <= datetime.now(UTC) - AT_RISK_AFTER,
                Ping.address_id.not_in(select(Suppression.address_id)),
            )
        )
        by_source = session.execute(
            select(Suppression.channel, func.count()).group_by(Suppression.channel)
        ).all()
    return Status(
        lists=lists.list_infos(store),
        batches_total=batches_total,
        recent_batches=recent_batches(store, recent),
        pings_today=_today(today, tallied),
        suppressions={source: int(n) for source, n in sorted(by_source)},
        listener=probe_listener(settings, key),
        at_risk=int(at_risk or 0),
    )


def _today(rows: Sequence[Any], tallied: Any) -> dict[str, int]:
    """Outcomes of today's pings: rows of pings plus the tallies (schema 0004)."""
    counts = {outcome: int(n) for outcome, n in rows}
    for outcome, n in zip(("invalid", "duplicate"), tallied, strict=True):
        if n:
            counts[outcome] = counts.get(outcome, 0) + int(n)
    return dict(sorted(counts.items()))


def recent_batches(store: Store, limit: int) -> list[BatchLine]:
    posted = parts_posted(Batch.id)
    accepted = (
        select(func.count())
        .where(Ping.batch_id == Batch.id, Ping.outcome == Outcome.ACCEPTED.value)
        .scalar_subquery()
    )
    query = (
        select(Batch.id, Batch.created_at, Batch.count, posted, Batch.parts_total, accepted)
        .order_by(Batch.created_at.desc(), Batch.id.desc())
        .limit(limit)
    )
    with store.read() as session:
        return [BatchLine(*row) for row in session.execute(query).all()]


def probe_listener(settings: Settings, key: str, timeout: float = HEALTH_TIMEOUT) -> Health:
    """GET /healthz, then the key endpoint, under the listener's path prefix; never raises."""
    base = f"http://{settings.http_host}:{settings.http_port}"
    base += urlsplit(settings.response_base_url).path.rstrip("/")
    url = f"{base}/healthz"
    try:
        body = _get(url, timeout)
    except urllib.error.HTTPError as exc:
        return Health(url, False, f"HTTP {exc.code}")
    except (OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        return Health(url, False, f"not running ({reason})")
    summary = _summary(body) or "up"
    try:
        served = json.loads(_get(f"{base}/dni/v1/key", timeout)).get("key")
    except (OSError, ValueError, AttributeError):
        return Health(url, True, f"{summary}; its key endpoint does not answer", False)
    if served != key:
        return Health(url, True, f"{summary}; it serves another key ({served}), not {key}", False)
    return Health(url, True, f"{summary}; serves this workspace's key", True)


def _get(url: str, timeout: float) -> str:
    with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310  (http URL from settings)
        return str(response.read(4096).decode("utf-8", "replace").strip())


def _summary(body: str) -> str:
    try:
        data = json.loads(body)
    except json.JSONDecodeError:
        return body.splitlines()[0][:80] if body else ""
    if isinstance(data, dict):
        return ", ".join(f"{k}={v}" for k, v in sorted(data.items()))[:120]
    return str(data)[:80]


def today_utc() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
