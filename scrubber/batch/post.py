"""batch post: send the parts a server lacks, recording each as the server takes it.

Idempotent and resumable per server: a part is marked posted to a server
(batch_part_posts) only after that server's transport accepted it or
reported the Message-ID as already there, and each mark is its own
transaction, so a killed run loses at most the mark of the part in flight;
the next run finds that part on the server as a duplicate. A batch posted
to one server can be posted to another later: each has its own marks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.dialects import postgresql, sqlite

from scrubber import keys
from scrubber.batch import parts as batch_parts
from scrubber.errors import KeyFileError
from scrubber.keys import OperatorKey
from scrubber.store import Store
from scrubber.store.models import Batch, BatchPart, BatchPartPost
from scrubber.store.queries import get_batch
from scrubber.store.types import utcnow
from scrubber.transport import PostStatus, Transport, server_name

# Parts rendered ahead of the one being posted (each about 1 MB in memory),
# and the threads rendering them.
AHEAD = 8
RENDER_WORKERS = 1


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
    server: str  # as transport.server_name names it: no credentials
    parts: list[BatchPart]  # not posted to ``server`` yet, in order

    @property
    def bytes(self) -> int:
        return sum(p.size for p in self.parts)


def pending(store: Store, batch_id: str, server: str) -> PendingWork:
    """The parts of ``batch_id`` not marked posted to ``server`` (a
    :func:`scrubber.transport.server_name`)."""
    taken = select(BatchPartPost.part).where(
        BatchPartPost.batch_id == batch_id, BatchPartPost.server == server
    )
    with store.read() as session:
        batch = get_batch(session, batch_id)
        rows = session.scalars(
            select(BatchPart)
            .where(BatchPart.batch_id == batch_id, BatchPart.part.not_in(taken))
            .order_by(BatchPart.part)
        ).all()
    return PendingWork(batch, server, list(rows))


def distinct_servers(urls: Sequence[str], *, base: Path | None = None) -> dict[str, str]:
    """Server name -> the first of ``urls`` naming it (``nntp://h`` and
    ``nntp://u:p@h:119`` are one server). Checks every URL, so a typo in
    the last one fails before anything is posted."""
    servers: dict[str, str] = {}
    for url in urls:
        servers.setdefault(server_name(url, base=base), url)
    return servers


def post_batch(
    store: Store,
    work: PendingWork,
    key: OperatorKey,
    connect: Callable[[], Transport],
    *,
    on_part: Callable[[PartPosted], None] | None = None,
    now: Callable[[], datetime] = utcnow,
) -> PostSummary:
    """Post every pending part of ``work`` through the transport ``connect()``
    opens (and this closes).

    The first parts are read and signed while ``connect()`` runs: reading a
    part's tags and signing it take longer than a server takes the article
    (about 60 ms against 10 ms for 80,000 tags), and connecting is mostly
    waiting for the server's greeting, capabilities and TLS handshake.
    """
    batch = work.batch
    _check_key(batch, key)
    with _RenderAhead(store, batch, key, work.parts, now) as rendered:
        transport = connect()
        try:
            summary = PostSummary(batch.id, work.server, batch.parts_total)
            summary.already = batch.parts_total - len(work.parts)
            for part, raw in rendered:
                status = transport.post(part.message_id, raw)
                _mark_posted(store, part, work.server, now())
                result = PartPosted(part.part, part.message_id, len(raw), status)
                summary.results.append(result)
                if on_part is not None:
                    on_part(result)
        finally:
            transport.close()
    return summary


def _check_key(batch: Batch, key: OperatorKey) -> None:
    batch_key = keys.decode_public(batch.key_public)
    if key.public_raw != batch_key:
        raise KeyFileError(
            f"batch {batch.id} was made with key {keys.fingerprint(batch_key)}, "
            f"but the workspace key is {key.fingerprint}"
        )


class _RenderAhead:
    """The articles of ``rows`` in order, rendered by worker threads up to
    ``AHEAD`` parts ahead of the one being posted.

    Each part is its own task with its own session, so two workers read and
    sign two parts at once; most of that time is spent in C (SQLite, hashing,
    the signature) with the GIL released. Leaving early (an error while
    posting) cancels the parts not started and waits for the ones running.
    """

    def __init__(
        self,
        store: Store,
        batch: Batch,
        key: OperatorKey,
        rows: Sequence[BatchPart],
        now: Callable[[], datetime],
    ) -> None:
        self._store, self._batch, self._key, self._now = store, batch, key, now
        with store.read() as session:
            self._total = batch_parts.total_tags(session, batch.id)
        self._rows = iter(rows)
        self._pool = ThreadPoolExecutor(RENDER_WORKERS, thread_name_prefix="render-part")
        self._futures: deque[Future[tuple[BatchPart, bytes]]] = deque()
        self._fill()

    def __enter__(self) -> _RenderAhead:
        return self

    def __exit__(self, *exc: object) -> None:
        for future in self._futures:
            future.cancel()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __iter__(self) -> Iterator[tuple[BatchPart, bytes]]:
        while self._futures:
            future = self._futures.popleft()
            self._fill()
            yield future.result()

    def _fill(self) -> None:
        while len(self._futures) < AHEAD and (row := next(self._rows, None)) is not None:
            self._futures.append(self._pool.submit(self._render, row))

    def _render(self, row: BatchPart) -> tuple[BatchPart, bytes]:
        batch = self._batch
        with self._store.read() as session:
            ((_, tags),) = batch_parts.pending_tags(session, batch, [row])
        raw = batch_parts.render(
            batch, row.part, batch.parts_total, self._total, tags, self._key, self._now()
        )
        return row, raw


def _mark_posted(store: Store, part: BatchPart, server: str, when: datetime) -> None:
    """Record the part on ``server``; a mark already there (two runs at
    once) stays as it is."""
    row = {"batch_id": part.batch_id, "part": part.part, "server": server, "posted_at": when}
    dialect = sqlite if store.is_sqlite else postgresql
    with store.write() as session:
        session.execute(dialect.insert(BatchPartPost).values(row).on_conflict_do_nothing())
