"""Split a batch's sorted tags into parts and render each part as an article.

The plan is made once, at create time, and stored in batch_parts: each part
covers a contiguous tag range, so its tags are re-read from the proof index
by range whenever it is rendered, and the same part renders to the same body.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from scrubber import keys
from scrubber.batch import article
from scrubber.errors import StoreError
from scrubber.keys import OperatorKey
from scrubber.store.models import Batch, BatchEntry, BatchPart

# Room for the digits of Count/Total/Part growing after the overhead is measured.
OVERHEAD_MARGIN = 512
_STREAM = 20_000


@dataclass(frozen=True)
class PartRange:
    part: int
    first_tag: bytes
    last_tag: bytes
    count: int


def batch_header(batch: Batch, total: int) -> article.BatchHeader:
    return article.BatchHeader(
        batch_id=batch.id,
        salt=batch.salt,
        t=batch.t,
        m=batch.m,
        p=batch.p,
        tag_length=batch.tag_length,
        total=total,
        respond_http=batch.respond_http,
        respond_smtp=batch.respond_smtp,
        expires=batch.expires_at,
        key=keys.decode_public(batch.key_public),
    )


def domain_of(batch: Batch) -> str:
    """Message-IDs use the response domain, which the batch already records."""
    return batch.respond_smtp.rpartition("@")[2]


def render(
    batch: Batch, part: int, parts: int, total: int, tags: bytes, key: OperatorKey, date: datetime
) -> bytes:
    meta = article.part_meta(batch_header(batch, total), part, parts, tags)
    return article.render_article(
        meta, tags, key, newsgroup=batch.newsgroup, domain=domain_of(batch), date=date
    )


def distinct_tags(session: Session, batch_id: str) -> int:
    return int(
        session.scalar(
            select(func.count(func.distinct(BatchEntry.tag))).where(BatchEntry.batch_id == batch_id)
        )
        or 0
    )


def plan_parts(session: Session, batch: Batch, key: OperatorKey) -> list[BatchPart]:
    """Store one BatchPart per part (ranges, counts, exact sizes); return them."""
    total = distinct_tags(session, batch.id)
    sample = render(batch, 1, 1, total, bytes(batch.tag_length), key, batch.created_at)
    capacity = article.tags_per_part(batch.tag_length, len(sample) + OVERHEAD_MARGIN)
    parts = -(-total // capacity)
    per_part = -(-total // parts)  # even parts rather than full ones and a stub
    rows: list[BatchPart] = []
    for number, tags in enumerate(_chunks(session, batch, per_part), start=1):
        raw = render(batch, number, parts, total, tags, key, batch.created_at)
        if len(raw) > article.MAX_PART_BYTES:
            raise AssertionError(f"part {number} is {len(raw)} bytes")  # planning bug
        rows.append(
            BatchPart(
                batch_id=batch.id,
                part=number,
                message_id=article.message_id(batch.id, number, domain_of(batch)),
                first_tag=tags[: batch.tag_length],
                last_tag=tags[-batch.tag_length :],
                count=len(tags) // batch.tag_length,
                size=len(raw),
            )
        )
    session.add_all(rows)
    batch.parts_total = parts
    return rows


def pending_tags(
    session: Session, batch: Batch, rows: Sequence[BatchPart]
) -> Iterator[tuple[BatchPart, bytes]]:
    """Each of ``rows`` (parts of ``batch``, in order) with its tags, concatenated.

    One ordered pass over the proof index serves every part: the parts are
    contiguous runs of the sorted distinct tags, ``count`` tags each.
    """
    wanted = {row.part: row for row in rows}
    counts = session.scalars(
        select(BatchPart.count).where(BatchPart.batch_id == batch.id).order_by(BatchPart.part)
    ).all()
    stream = _stream(session, batch.id)
    last_wanted = max(wanted, default=0)
    for number, count in enumerate(counts[:last_wanted], start=1):
        chunk = b"".join(itertools.islice(stream, count))
        row = wanted.get(number)
        if row is None:
            continue
        size = batch.tag_length
        if chunk[:size] != row.first_tag or chunk[-size:] != row.last_tag:
            raise StoreError(f"batch {batch.id}: proof index no longer matches part {number}")
        yield row, chunk


def total_tags(session: Session, batch_id: str) -> int:
    """Tags in the whole batch (the articles' Total): the parts' counts added up."""
    return int(
        session.scalar(select(func.sum(BatchPart.count)).where(BatchPart.batch_id == batch_id)) or 0
    )


def _stream(session: Session, batch_id: str) -> Iterator[bytes]:
    """The batch's distinct tags in order, straight from the driver's cursor.

    Millions of rows pass here; SQLAlchemy's per-row result processing would
    cost more than the query, so the compiled statement runs on the DBAPI
    cursor (plain bytes come back from both sqlite3 and psycopg).
    """
    query = (
        select(BatchEntry.tag)
        .where(BatchEntry.batch_id == batch_id)
        .distinct()
        .order_by(BatchEntry.tag)
    )
    connection = session.connection()
    compiled = query.compile(dialect=connection.dialect)
    params = compiled.construct_params()
    args: Any = (
        tuple(params[name] for name in compiled.positiontup or ())
        if compiled.positional
        else params
    )
    cursor = connection.connection.cursor()
    try:
        cursor.execute(str(compiled), args)
        while rows := cursor.fetchmany(_STREAM):
            for (tag,) in rows:
                yield bytes(tag)
    finally:
        cursor.close()


def _chunks(session: Session, batch: Batch, per_part: int) -> Iterator[bytes]:
    chunk = bytearray()
    limit = per_part * batch.tag_length
    for tag in _stream(session, batch.id):
        chunk += tag
        if len(chunk) == limit:
            yield bytes(chunk)
            chunk.clear()
    if chunk:
        yield bytes(chunk)
