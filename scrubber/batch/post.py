"""batch post: send the parts not yet posted, recording each as the server takes it.

Idempotent and resumable: a part is marked posted (time, server) only after
the transport accepted it or reported the Message-ID as already there, and
each mark is its own transaction, so a killed run loses at most the mark of
the part in flight; the next run finds that part on the server as a duplicate.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TypeVar, cast

from sqlalchemy import select, update

from scrubber import keys
from scrubber.batch import parts as batch_parts
from scrubber.errors import KeyFileError, NotFoundError
from scrubber.keys import OperatorKey
from scrubber.store import Store
from scrubber.store.models import Batch, BatchPart
from scrubber.store.types import utcnow
from scrubber.transport import PostStatus, Transport

T = TypeVar("T")


@dataclass(frozen=True)
class PartPosted:
    part: int
    message_id: str
    size: int
    status: PostStatus


@dataclass
class PostSummary:
    batch_id: str
    server: str
    parts_total: int
    already: int = 0  # marked posted by an earlier run
    results: list[PartPosted] = field(default_factory=list)

    @property
    def posted(self) -> int:
        return sum(r.status is PostStatus.POSTED for r in self.results)

    @property
    def duplicates(self) -> int:
        return sum(r.status is PostStatus.DUPLICATE for r in self.results)


@dataclass(frozen=True)
class PendingWork:
    batch: Batch
    parts: list[BatchPart]  # not posted yet, in order

    @property
    def bytes(self) -> int:
        return sum(p.size for p in self.parts)


def get_batch(store: Store, batch_id: str) -> Batch:
    with store.read() as session:
        batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFoundError(f"no batch {batch_id!r} (see 'scrubber batch ls')")
    return batch


def pending(store: Store, batch_id: str) -> PendingWork:
    batch = get_batch(store, batch_id)
    with store.read() as session:
        rows = session.scalars(
            select(BatchPart)
            .where(BatchPart.batch_id == batch_id, BatchPart.posted_at.is_(None))
            .order_by(BatchPart.part)
        ).all()
    return PendingWork(batch, list(rows))


def post_batch(
    store: Store,
    work: PendingWork,
    key: OperatorKey,
    transport: Transport,
    *,
    on_part: Callable[[PartPosted], None] | None = None,
    now: Callable[[], datetime] = utcnow,
) -> PostSummary:
    """Post every pending part of ``work`` through ``transport``."""
    batch = work.batch
    batch_key = keys.decode_public(batch.key_public)
    if key.public_raw != batch_key:
        raise KeyFileError(
            f"batch {batch.id} was made with key {keys.fingerprint(batch_key)}, "
            f"but the workspace key is {key.fingerprint}"
        )
    summary = PostSummary(batch.id, transport.server, batch.parts_total)
    summary.already = batch.parts_total - len(work.parts)

    def rendered() -> Iterator[tuple[BatchPart, bytes]]:
        with store.read() as session:
            total = batch_parts.total_tags(session, batch.id)
            for part, tags in batch_parts.pending_tags(session, batch, work.parts):
                yield (
                    part,
                    batch_parts.render(
                        batch, part.part, batch.parts_total, total, tags, key, now()
                    ),
                )

    for part, raw in _one_ahead(rendered):
        status = transport.post(part.message_id, raw)
        _mark_posted(store, part, transport.server, now())
        result = PartPosted(part.part, part.message_id, len(raw), status)
        summary.results.append(result)
        if on_part is not None:
            on_part(result)
    return summary


def _one_ahead(produce: Callable[[], Iterator[T]]) -> Iterator[T]:
    """Run ``produce()`` in a worker thread one item ahead of the consumer, so
    reading and signing the next part overlaps the server taking this one
    (both sides spend that time in C: SQLite, sockets; the GIL is free)."""
    items: queue.Queue[tuple[bool, object]] = queue.Queue(maxsize=1)
    stop = threading.Event()

    def hand_over(entry: tuple[bool, object]) -> bool:
        while not stop.is_set():
            with contextlib.suppress(queue.Full):
                items.put(entry, timeout=0.1)
                return True
        return False

    def work() -> None:
        try:
            for item in produce():
                if not hand_over((True, item)):
                    return
            hand_over((False, None))
        except BaseException as exc:  # handed to the consumer, which re-raises it
            hand_over((False, exc))

    worker = threading.Thread(target=work, name="render-parts", daemon=True)
    worker.start()
    try:
        while True:
            is_item, value = items.get()
            if is_item:
                yield cast(T, value)
            elif isinstance(value, BaseException):
                raise value
            else:
                return
    finally:
        stop.set()
        worker.join()


def _mark_posted(store: Store, part: BatchPart, server: str, when: datetime) -> None:
    with store.write() as session:
        session.execute(
            update(BatchPart)
            .where(BatchPart.batch_id == part.batch_id, BatchPart.part == part.part)
            .where(BatchPart.posted_at.is_(None))
            .values(posted_at=when, server=server)
        )
