"""The suppression ledger: every opt-out, from every channel, in one table.

A suppression is global (every list) and permanent. Each row says how the
request came (channel), why (reason), who asked (origin), when it was made
(received) and committed, and its evidence. Only a manual suppression may be
lifted, with a reason, and the lift is itself recorded (suppression_lifts).
Importers (scrubber.suppress) and the listener write through here or through
the same columns.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, bindparam, delete, insert, select, text, update

from scrubber import scheme
from scrubber.errors import NotFoundError, UsageError
from scrubber.store import Store
from scrubber.store.models import Address, Suppression, SuppressionLift
from scrubber.store.types import utcnow

CHUNK = 500  # addresses per IN (...) lookup and per INSERT


class Reason(enum.StrEnum):
    UNSUBSCRIBE = "unsubscribe"
    COMPLAINT = "complaint"
    HARD_BOUNCE = "hard-bounce"
    MANUAL = "manual"
    REGISTRY = "registry"


class Channel(enum.StrEnum):
    DNI_PING = "dni-ping"
    ONE_CLICK = "one-click"
    MAILTO = "mailto"
    MANUAL = "manual"


def import_channel(source: str) -> str:
    """The channel of suppressions imported from ``source`` (postmark, csv...)."""
    return f"import:{source}"


@dataclass(frozen=True)
class Entry:
    """One suppression request, before it is recorded."""

    canonical: str
    channel: str
    reason: Reason
    received_at: datetime
    origin: str | None = None
    request_id: str | None = None
    client: str | None = None
    evidence: str | None = None


@dataclass(frozen=True)
class RecordSummary:
    added: int  # newly suppressed addresses
    already: int  # suppressed before (the earlier record stands)
    earlier: int  # re-recorded on the same channel with an earlier time: the time moved back


@dataclass(frozen=True)
class Row:
    """One ledger row as read back."""

    canonical: str
    channel: str
    reason: str
    origin: str | None
    received_at: datetime
    suppressed_at: datetime
    batch_id: str | None
    request_id: str | None
    client: str | None
    evidence: str | None


@functools.lru_cache(maxsize=4096)
def mask_client(peer: str) -> str:
    """A client address reduced to its network (IPv4 /24, IPv6 /48): enough to
    show where a request came from, not which host sent it.

    Memoised: the listener's writer masks every accepted ping's peer, and
    parsing it with ipaddress was about a tenth of that process's CPU under
    load (py-spy, docs/performance.md listen_http); a pure function of a string."""
    try:
        ip = ipaddress.ip_address(peer.strip("[]"))
    except ValueError:
        return peer[:64]
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def record(store: Store, entries: Iterable[Entry], *, dry_run: bool = False) -> RecordSummary:
    """Record suppressions in one transaction (``dry_run``: counted, rolled back).

    The first record of an address stands (suppression is permanent and its
    evidence kept); recording it again on the same channel with an earlier
    received time moves that time back, so a re-import keeps the earliest.
    """
    with store.write_connection(dry_run=dry_run) as conn:
        return record_on(conn, entries)


def record_on(conn: Connection, entries: Iterable[Entry]) -> RecordSummary:
    """:func:`record` inside a transaction the caller owns (the listener's
    writer records one-click and mailto requests in its group's)."""
    first = _earliest(entries)
    added = already = earlier = 0
    items = sorted(first.values(), key=lambda e: e.canonical)
    for start in range(0, len(items), CHUNK):
        a, b, c = _record_chunk(conn, items[start : start + CHUNK])
        added, already, earlier = added + a, already + b, earlier + c
    return RecordSummary(added, already, earlier)


def _earliest(entries: Iterable[Entry]) -> dict[str, Entry]:
    first: dict[str, Entry] = {}
    for entry in entries:
        seen = first.get(entry.canonical)
        if seen is None or entry.received_at < seen.received_at:
            first[entry.canonical] = entry
    return first


def _record_chunk(conn: Connection, chunk: list[Entry]) -> tuple[int, int, int]:
    ids = _address_ids(conn, [e.canonical for e in chunk])
    existing = {
        address_id: (channel, received)
        for address_id, channel, received in conn.execute(
            select(Suppression.address_id, Suppression.channel, Suppression.received_at).where(
                Suppression.address_id.in_(ids.values())
            )
        )
    }
    now = utcnow()
    new_rows = [
        _values(ids[e.canonical], e, now) for e in chunk if ids[e.canonical] not in existing
    ]
    added = 0
    if new_rows:
        # Another writer (a listener on PostgreSQL) may suppress the same
        # address meanwhile: its row stands.
        added = conn.execute(
            text(
                "INSERT INTO suppressions (address_id, suppressed_at, channel, reason, origin, "
                "received_at, request_id, client, evidence) VALUES (:address_id, "
                ":suppressed_at, :channel, :reason, :origin, :received_at, :request_id, "
                ":client, :evidence) ON CONFLICT (address_id) DO NOTHING"
            ).bindparams(*_TIME_PARAMS),
            new_rows,
        ).rowcount
    earlier = 0
    for entry in chunk:
        address_id = ids[entry.canonical]
        if address_id in existing:
            channel, received = existing[address_id]
            if channel == entry.channel and entry.received_at < received:
                _move_back(conn, address_id, entry)
                earlier += 1
    return added, len(chunk) - added, earlier


def _move_back(conn: Connection, address_id: int, entry: Entry) -> None:
    conn.execute(
        update(Suppression)
        .where(Suppression.address_id == address_id)
        .values(
            received_at=entry.received_at,
            reason=entry.reason.value,
            origin=entry.origin,
            request_id=entry.request_id,
            evidence=entry.evidence,
        )
    )


def _values(address_id: int, entry: Entry, now: datetime) -> dict[str, object]:
    return {
        "address_id": address_id,
        "suppressed_at": now,
        "channel": entry.channel,
        "reason": entry.reason.value,
        "origin": entry.origin,
        "received_at": min(entry.received_at, now),
        "request_id": entry.request_id,
        "client": entry.client,
        "evidence": entry.evidence,
    }


# text() binds datetimes through the column type (UTC, SQLite's text form).
_TIME_PARAMS = [
    bindparam(name, type_=Suppression.__table__.c[name].type)
    for name in ("suppressed_at", "received_at")
]


def _address_ids(conn: Connection, canonicals: list[str]) -> dict[str, int]:
    """Id per canonical form, adding the addresses not known yet."""
    conn.execute(
        text("INSERT INTO addresses (canonical) VALUES (:c) ON CONFLICT (canonical) DO NOTHING"),
        [{"c": c} for c in canonicals],
    )
    found = conn.execute(
        select(Address.canonical, Address.id).where(Address.canonical.in_(canonicals))
    )
    return {canonical: address_id for canonical, address_id in found}


def lift(store: Store, address: str, reason: str) -> Row:
    """Lift a manual suppression entered by mistake; the lift is recorded.

    Any other channel is a request from the address's owner or the registry
    and stays permanent.
    """
    if not reason.strip():
        raise UsageError("a lift needs a reason (--reason)")
    canonical = scheme.canonicalize(address)
    with store.write() as session:
        found = session.execute(
            select(Suppression)
            .join(Address, Address.id == Suppression.address_id)
            .where(Address.canonical == canonical)
        ).scalar_one_or_none()
        if found is None:
            raise NotFoundError(f"{scheme.mask(canonical)} is not suppressed")
        if found.channel != Channel.MANUAL:
            raise UsageError(
                f"{scheme.mask(canonical)} was suppressed by {found.channel}; "
                "only a manual suppression can be lifted"
            )
        row = _row(canonical, found)
        session.execute(
            insert(SuppressionLift).values(
                address_id=found.address_id,
                lifted_at=utcnow(),
                lift_reason=reason.strip(),
                channel=found.channel,
                reason=found.reason,
                origin=found.origin,
                received_at=found.received_at,
                suppressed_at=found.suppressed_at,
            )
        )
        session.execute(delete(Suppression).where(Suppression.address_id == found.address_id))
    return row


def _row(canonical: str, s: Suppression) -> Row:
    return Row(
        canonical,
        s.channel,
        s.reason,
        s.origin,
        s.received_at,
        s.suppressed_at,
        s.batch_id,
        s.request_id,
        s.client,
        s.evidence,
    )


def rows(store: Store, *, since: datetime | None = None, page: int = 5_000) -> Iterator[Row]:
    """Every suppression committed at or after ``since``, in commit order, paged."""
    last: tuple[datetime, int] | None = None
    while True:
        with store.read() as session:
            query = select(Address.canonical, Suppression).join(
                Address, Address.id == Suppression.address_id
            )
            if since is not None:
                query = query.where(Suppression.suppressed_at >= since)
            if last is not None:
                query = query.where(
                    (Suppression.suppressed_at > last[0])
                    | ((Suppression.suppressed_at == last[0]) & (Suppression.address_id > last[1]))
                )
            found = session.execute(
                query.order_by(Suppression.suppressed_at, Suppression.address_id).limit(page)
            ).all()
        if not found:
            return
        for canonical, suppression in found:
            yield _row(canonical, suppression)
        tail = found[-1][1]
        last = (tail.suppressed_at, tail.address_id)


def lifts(store: Store) -> list[tuple[str, SuppressionLift]]:
    """Every lift, oldest first, with the canonical address it lifted."""
    with store.read() as session:
        return [
            (canonical, found)
            for canonical, found in session.execute(
                select(Address.canonical, SuppressionLift)
                .join(Address, Address.id == SuppressionLift.address_id)
                .order_by(SuppressionLift.lifted_at, SuppressionLift.id)
            ).all()
        ]


def manual(canonical: str, *, origin: str | None, now: datetime) -> Entry:
    """A suppression the operator enters by hand."""
    return Entry(canonical, Channel.MANUAL, Reason.MANUAL, now, origin=origin)
