"""batch create: snapshot lists minus suppressions, hash, store the proof index and parts."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, insert, literal, select
from sqlalchemy.orm import Session

from scrubber import hashing, scheme
from scrubber.batch.parts import plan_parts
from scrubber.config import Settings
from scrubber.errors import UsageError
from scrubber.keys import OperatorKey
from scrubber.lists import get_list
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
from scrubber.store.types import utcnow

TOKEN_BYTES = 24  # 192 bits; the scheme asks for at least 128


@dataclass(frozen=True)
class BatchRequest:
    lists: Sequence[str]
    tag_length: int
    expires_days: int
    newsgroup: str


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
) -> BatchRequest:
    return BatchRequest(
        lists=lists,
        tag_length=tag_length or settings.tag_length,
        expires_days=expires_days or settings.batch_expires_days,
        newsgroup=newsgroup or settings.newsgroup,
    )


def new_batch(
    settings: Settings, key: OperatorKey, epoch: SaltEpoch, request: BatchRequest, now: datetime
) -> Batch:
    """A Batch row with a fresh id and one-time token; not stored yet."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return Batch(
        id=new_batch_id(now),
        created_at=now,
        epoch_id=epoch.id,
        salt=epoch.salt,
        t=epoch.t,
        m=epoch.m,
        p=epoch.p,
        tag_length=request.tag_length,
        token=token,
        newsgroup=request.newsgroup,
        respond_http=f"{settings.response_base_url.rstrip('/')}/dni/v1/ping/{token}",
        respond_smtp=f"dni-{token}@{settings.response_domain}",
        expires_at=now + timedelta(days=request.expires_days),
        key_public=key.public_b64,
        count=0,
        parts_total=0,
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
    """Hash the lists (cache reused) and store the batch with its proof index."""
    if not scheme.MIN_TAG_LEN <= request.tag_length <= scheme.MAX_TAG_LEN:
        raise UsageError(f"--tag-length must be {scheme.MIN_TAG_LEN}..{scheme.MAX_TAG_LEN}")
    with store.read() as session:
        list_ids = [get_list(session, name).id for name in request.lists]
    epoch = hashing.current_epoch(store, settings.params, settings.salt_epoch_days)
    summary = hashing.HashEngine(store, executor).ensure(
        epoch, list_ids, on_done=on_hashed, on_total=on_total
    )
    batch = new_batch(settings, key, epoch, request, utcnow())
    with store.write() as session:
        session.add(batch)
        session.flush()
        session.execute(
            insert(BatchList),
            [{"batch_id": batch.id, "list_id": list_id} for list_id in sorted(set(list_ids))],
        )
        batch.count = _insert_entries(session, batch, epoch.id, list_ids)
        if batch.count == 0:
            # Raising rolls the whole batch back: nothing is stored.
            raise UsageError(
                f"nothing to batch: {', '.join(request.lists)} "
                "has no address left after suppression"
            )
        plan_parts(session, batch, key)
    return CreatedBatch(batch=batch, lists=list(request.lists), hashed=summary)


def _insert_entries(session: Session, batch: Batch, epoch_id: int, list_ids: Sequence[int]) -> int:
    """Copy tag and proof of every unsuppressed listed address; return the count."""
    on_lists = select(ListEntry.address_id).where(ListEntry.list_id.in_(list_ids))
    rows = (
        select(
            literal(batch.id),
            func.substr(CachedDigest.h, 17, 16),
            func.substr(CachedDigest.h, 1, batch.tag_length),
            CachedDigest.address_id,
        )
        .where(CachedDigest.epoch_id == epoch_id)
        .where(CachedDigest.address_id.in_(on_lists))
        .where(~CachedDigest.address_id.in_(select(Suppression.address_id)))
    )
    session.execute(
        insert(BatchEntry).from_select(["batch_id", "proof", "tag", "address_id"], rows)
    )
    count = session.scalar(
        select(func.count()).select_from(BatchEntry).where(BatchEntry.batch_id == batch.id)
    )
    return int(count or 0)
