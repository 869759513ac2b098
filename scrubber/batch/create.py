"""batch create: snapshot lists minus suppressions, hash, store the membership and parts."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    LargeBinary,
    Numeric,
    and_,
    case,
    cast,
    delete,
    func,
    insert,
    literal,
    select,
)
from sqlalchemy.dialects.postgresql import BIT
from sqlalchemy.orm import InstrumentedAttribute, Session
from sqlalchemy.sql.functions import Function

from scrubber import article, hashing, scheme
from scrubber.batch.parts import plan_parts
from scrubber.config import Settings
from scrubber.errors import UsageError
from scrubber.keys import OperatorKey
from scrubber.store import Store
from scrubber.store.models import (
    Batch,
    BatchEntry,
    BatchList,
    CachedDigest,
    ListEntry,
    SaltEpoch,
    Suppression,
)
from scrubber.store.queries import get_list
from scrubber.store.types import utcnow

TOKEN_BYTES = 24  # 192 bits; the scheme asks for at least 128
PROTOCOLS = (1, 2)
_VALUE_FUNCTION = "scrubber_v2_value"  # scheme.item_value, registered on SQLite


@dataclass(frozen=True)
class BatchRequest:
    lists: Sequence[str]
    tag_length: int  # v1 only; a v2 value is always 8 octets
    expires_days: int
    newsgroup: str
    protocol: int = 2
    encoding: str = "yenc"  # v2 tag block: yenc, or base64 for 7-bit paths


@dataclass(frozen=True)
class CreatedBatch:
    batch: Batch
    lists: list[str]
    hashed: hashing.HashSummary


def new_batch_id(now: datetime) -> str:
    return f"{now:%Y%m%d}-{secrets.token_hex(4)}"


def request_from_settings(
    settings: Settings,
    lists: Sequence[str],
    *,
    tag_length: int | None = None,
    expires_days: int | None = None,
    newsgroup: str | None = None,
    protocol: int = 2,
    encoding: str = "yenc",
) -> BatchRequest:
    if protocol == 2 and tag_length is not None:
        raise UsageError("--tag-length applies to --protocol 1 only (a v2 value is 8 bytes)")
    return BatchRequest(
        lists=lists,
        tag_length=tag_length or settings.tag_length,
        expires_days=expires_days or settings.batch_expires_days,
        newsgroup=newsgroup or settings.newsgroup,
        protocol=protocol,
        encoding=encoding,
    )


def new_batch(
    settings: Settings, key: OperatorKey, epoch: SaltEpoch, request: BatchRequest, now: datetime
) -> Batch:
    """A Batch row with a fresh id and one-time token; not stored yet."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    v2 = request.protocol == 2
    gcs = scheme.Gcs()
    return Batch(
        id=new_batch_id(now),
        created_at=now,
        epoch_id=epoch.id,
        salt=epoch.salt,
        params=scheme.Params(
            t=epoch.t,
            m=epoch.m,
            p=epoch.p,
            tag_length=scheme.ITEM_LEN if v2 else request.tag_length,
        ),
        token=token,
        newsgroup=request.newsgroup,
        respond=scheme.RespondTo(
            http=f"{settings.response_base_url.rstrip('/')}/dni/v1/ping/{token}",
            smtp=f"dni-{token}@{settings.response_domain}",
        ),
        expires_at=now + timedelta(days=request.expires_days),
        key_public=key.public_b64,
        count=0,
        parts_total=0,
        protocol=request.protocol,
        nonce=secrets.token_bytes(scheme.NONCE_LEN) if v2 else None,
        gcs_p=gcs.p if v2 else None,
        gcs_m=gcs.m if v2 else None,
        encoding=request.encoding if v2 else None,
    )


def create_batch(
    store: Store,
    settings: Settings,
    key: OperatorKey,
    request: BatchRequest,
    executor: hashing.Executor,
    on_hashed: Callable[[int], None] | None = None,
    on_total: Callable[[int], None] | None = None,
) -> CreatedBatch:
    """Hash the lists (cache reused) and store the batch with its members and tags."""
    if not scheme.MIN_TAG_LEN <= request.tag_length <= scheme.MAX_TAG_LEN:
        raise UsageError(f"--tag-length must be {scheme.MIN_TAG_LEN}..{scheme.MAX_TAG_LEN}")
    if request.protocol not in PROTOCOLS:
        raise UsageError(f"--protocol must be one of {', '.join(map(str, PROTOCOLS))}")
    if request.encoding not in article.ENCODINGS:
        raise UsageError(f"--encoding must be one of {', '.join(article.ENCODINGS)}")
    with store.read() as session:
        list_ids = [get_list(session, name).id for name in request.lists]
    epoch = hashing.current_epoch(store, settings.params, settings.salt_epoch_days)
    summary = hashing.HashEngine(store, executor).ensure(
        epoch, list_ids, on_done=on_hashed, on_total=on_total
    )
    batch = new_batch(settings, key, epoch, request, utcnow())
    with store.write(bulk=True) as session:
        session.add(batch)
        session.flush()
        list_rows = _list_rows(session, batch.id, list_ids)
        session.execute(insert(BatchList), list_rows)
        batch.left_out_suppressed = (
            list_rows[0]["left_out"] if len(list_rows) == 1 else _left_out(session, list_ids)
        )
        if batch.protocol == 2:
            batch.count = _insert_values(session, batch, epoch.id, list_ids, summary.needed)
        else:
            batch.count = _insert_entries(session, batch, epoch.id, list_ids)
        if batch.count == 0:
            # Raising rolls the whole batch back: nothing is stored.
            raise UsageError(
                f"nothing to batch: {', '.join(request.lists)} "
                "has no address left after suppression"
            )
        plan_parts(session, batch, key)
    return CreatedBatch(batch=batch, lists=list(request.lists), hashed=summary)


def _list_rows(session: Session, batch_id: str, list_ids: Sequence[int]) -> list[dict[str, Any]]:
    """batch_lists rows: each list's size now, and how many of it are suppressed."""
    suppressed = ListEntry.address_id.in_(select(Suppression.address_id))
    counts = session.execute(
        select(ListEntry.list_id, func.count(), func.count().filter(suppressed))
        .where(ListEntry.list_id.in_(list_ids))
        .group_by(ListEntry.list_id)
    ).all()
    sizes = {list_id: (int(listed), int(left)) for list_id, listed, left in counts}
    return [
        {
            "batch_id": batch_id,
            "list_id": list_id,
            "listed": sizes.get(list_id, (0, 0))[0],
            "left_out": sizes.get(list_id, (0, 0))[1],
        }
        for list_id in sorted(set(list_ids))
    ]


def _left_out(session: Session, list_ids: Sequence[int]) -> int:
    """Distinct addresses of the lists left out as suppressed (one on two lists counts once)."""
    on_lists = select(ListEntry.address_id).where(ListEntry.list_id.in_(list_ids))
    query = select(func.count()).where(Suppression.address_id.in_(on_lists))
    return int(session.scalar(query.select_from(Suppression)) or 0)


def _batched(epoch_id: int, list_ids: Sequence[int]) -> ColumnElement[bool]:
    """The digests a batch takes: this epoch's, of listed and unsuppressed addresses."""
    on_lists = select(ListEntry.address_id).where(ListEntry.list_id.in_(list_ids))
    return and_(
        CachedDigest.epoch_id == epoch_id,
        CachedDigest.address_id.in_(on_lists),
        ~CachedDigest.address_id.in_(select(Suppression.address_id)),
    )


def _insert_entries(session: Session, batch: Batch, epoch_id: int, list_ids: Sequence[int]) -> int:
    """v1: copy the tag of every unsuppressed listed address; return the count."""
    rows = (
        select(
            literal(batch.id),
            CachedDigest.address_id,
            func.substr(CachedDigest.h, 1, batch.tag_length),
        )
        .where(_batched(epoch_id, list_ids))
        .order_by(CachedDigest.address_id)
    )
    session.execute(insert(BatchEntry).from_select(["batch_id", "address_id", "tag"], rows))
    return _entry_count(session, batch.id)


def _insert_values(
    session: Session, batch: Batch, epoch_id: int, list_ids: Sequence[int], expected: int
) -> int:
    """v2: the nonce-keyed value of every unsuppressed listed
    address, in one ``INSERT … SELECT``; return the count.

    The values depend on Total, the count, which is not known until the
    rows are: they are computed for ``expected`` (what :meth:`HashEngine.ensure`
    counted just before: the same rows unless the lists changed since),
    and if another count was inserted they are computed again for that one.
    """
    where = _batched(epoch_id, list_ids)
    total = expected
    if total > 0:
        inserted = _insert_values_for(session, batch, where, total)
        if inserted == total:
            return total
        session.execute(delete(BatchEntry).where(BatchEntry.batch_id == batch.id))
    total = int(session.scalar(select(func.count()).select_from(CachedDigest).where(where)) or 0)
    if total > 0:
        _insert_values_for(session, batch, where, total)
    return total


def _insert_values_for(
    session: Session, batch: Batch, where: ColumnElement[bool], total: int
) -> int:
    """Insert the entries ``where`` selects with their values for ``total``;
    return how many rows were inserted. The database computes the values,
    see :func:`_value_sql`."""
    assert batch.nonce is not None and batch.gcs_p is not None and batch.gcs_m is not None
    value = _value_sql(session, batch.nonce, total, scheme.Gcs(p=batch.gcs_p, m=batch.gcs_m))
    # In address order: the one B-tree of the membership grows at its end
    # (the proof is not copied: the listener finds it in the digests).
    rows = (
        select(literal(batch.id), CachedDigest.address_id, value)
        .where(where)
        .order_by(CachedDigest.address_id)
    )
    statement = insert(BatchEntry).from_select(["batch_id", "address_id", "tag"], rows)
    return int(session.connection().execute(statement).rowcount)


def _value_sql(session: Session, nonce: bytes, total: int, gcs: scheme.Gcs) -> ColumnElement[bytes]:
    """The v2 value of ``CachedDigest.h`` as 8 octets, computed by the database.

    SQLite lacks SHA-256, so :func:`scheme.item_value` itself is registered
    on this connection as a SQL function (one call per row, no row crosses
    into Python and back); PostgreSQL has ``sha256()`` and exact numerics,
    so :func:`value_sql_postgresql` spells the same arithmetic in SQL.
    """
    if session.get_bind().dialect.name != "sqlite":
        return value_sql_postgresql(CachedDigest.h, nonce, total, gcs)

    driver = session.connection().connection.driver_connection
    assert driver is not None
    value = scheme.item_values(nonce, total, gcs)
    driver.create_function(_VALUE_FUNCTION, 1, value, deterministic=True)
    return Function(_VALUE_FUNCTION, CachedDigest.h, type_=LargeBinary)


def value_sql_postgresql(
    h: ColumnElement[bytes] | InstrumentedAttribute[bytes],
    nonce: bytes,
    total: int,
    gcs: scheme.Gcs,
) -> ColumnElement[bytes]:
    """:func:`scheme.item_value` in PostgreSQL: the first 8 octets of
    SHA-256(domain || nonce || H[0:16]) as an unsigned number, times
    Total * M, shifted right 64 bits, as 8 octets big-endian."""
    if not 1 <= total <= scheme.MAX_TOTAL:
        raise ValueError(f"Total must be 1..{scheme.MAX_TOTAL}")
    keyed = literal(scheme.ITEM_DOMAIN + nonce, LargeBinary).op("||")(func.substr(h, 1, 16))
    head = func.substr(func.sha256(keyed), 1, 8)
    signed = cast(cast(literal("x").op("||")(func.encode(head, "hex")), BIT(64)), BigInteger)
    two64 = literal(2**64, Numeric)
    unsigned = cast(signed, Numeric) + case((signed < 0, two64), else_=literal(0, Numeric))
    value = func.div(unsigned * literal(total * gcs.m, Numeric), two64)
    # int8send writes a bigint big-endian; values of 2**63 and up wrap to
    # the negative bigint with the same 64 bits.
    wrapped = case((value >= literal(2**63, Numeric), value - two64), else_=value)
    return func.int8send(cast(wrapped, BigInteger), type_=LargeBinary)


def _entry_count(session: Session, batch_id: str) -> int:
    count = session.scalar(
        select(func.count()).select_from(BatchEntry).where(BatchEntry.batch_id == batch_id)
    )
    return int(count or 0)
