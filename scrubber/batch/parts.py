"""Split a batch's sorted tags into parts and render each part as an article.

The plan is made once, at create time, and stored in batch_parts: each part
covers a contiguous tag range, so its tags are re-read from the batch's entries
by range whenever it is rendered, and the same part renders to the same body.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from scrubber import article, keys, scheme
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
    """What every part shares. ``total`` counts distinct tags (v1); a v2 Total is
    the N the values were mapped with, the batch's address count, however many
    distinct values that gave."""
    if batch.protocol == 2:
        total = batch.count
    return article.BatchHeader(
        batch_id=batch.id,
        salt=batch.salt,
        params=batch.params,
        total=total,
        respond=batch.respond,
        expires=batch.expires_at,
        key=keys.decode_public(batch.key_public),
        v2=v2_fields(batch),
    )


def v2_fields(batch: Batch) -> article.V2Fields | None:
    """The v2 fields a batch row records; None for a v1 batch."""
    if batch.protocol != 2:
        return None
    assert batch.nonce is not None and batch.gcs_p is not None and batch.gcs_m is not None
    gcs = scheme.Gcs(p=batch.gcs_p, m=batch.gcs_m)
    return article.V2Fields(nonce=batch.nonce, gcs=gcs, encoding=batch.encoding or "yenc")


def domain_of(batch: Batch) -> str:
    """Message-IDs use the response domain, which the batch already records."""
    return batch.respond.domain


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
    """Store one BatchPart per part (ranges, counts, exact sizes); return them.

    A batch whose address count fits one part (the count bounds its
    distinct tags) is planned from one query that returns every tag,
    concatenated, and repeats are folded here (cheaper than DISTINCT); a
    larger one counts its distinct tags first, then reads each part's with
    one query (see :func:`_next_tags`).
    """
    capacity = _capacity(batch, key)
    one_part = batch.count <= capacity
    total = batch.count if one_part else distinct_tags(session, batch.id)
    parts = -(-total // capacity)
    per_part = -(-total // parts)  # even parts rather than full ones and a stub
    size = batch.tag_length
    rows: list[BatchPart] = []
    after = b""
    for number in range(1, parts + 1):
        if one_part:
            tags = _folded(_next_tags(session, batch.id, after, per_part, distinct=False), size)
            total = len(tags) // size
        else:
            tags = _next_tags(session, batch.id, after, per_part)
        raw = render(batch, number, parts, total, tags, key, batch.created_at)
        if len(raw) > article.MAX_PART_BYTES:
            raise AssertionError(f"part {number} is {len(raw)} bytes")  # planning bug
        after = tags[-size:]
        rows.append(
            BatchPart(
                batch_id=batch.id,
                part=number,
                message_id=article.message_id(batch.id, number, domain_of(batch)),
                first_tag=tags[:size],
                last_tag=after,
                count=len(tags) // size,
                size=len(raw),
            )
        )
    session.add_all(rows)
    batch.parts_total = parts
    return rows


def _capacity(batch: Batch, key: OperatorKey) -> int:
    """Tags (v1) or values (v2) one part of ``batch`` surely holds, next to
    the overhead of a rendered one-tag part (Total at its largest, the
    address count, plus a margin)."""
    sample = render(batch, 1, 1, batch.count, bytes(batch.tag_length), key, batch.created_at)
    overhead = len(sample) + OVERHEAD_MARGIN
    v2 = v2_fields(batch)
    if v2 is None:
        return article.tags_per_part(batch.tag_length, overhead)
    return article.items_per_part(v2, overhead)


def pending_tags(
    session: Session, batch: Batch, rows: Sequence[BatchPart]
) -> Iterator[tuple[BatchPart, bytes]]:
    """Each of ``rows`` (parts of ``batch``) with its tags, sorted and concatenated."""
    size = batch.tag_length
    for row in rows:
        tags = part_tags(session, batch.id, row.first_tag, row.last_tag, distinct=False)
        if len(tags) > row.count * size:
            # Two addresses share a tag (the count is of distinct tags): fold them.
            # Only then: DISTINCT doubles the query's CPU time.
            tags = part_tags(session, batch.id, row.first_tag, row.last_tag)
        if len(tags) != row.count * size or (tags[:size], tags[-size:]) != (
            row.first_tag,
            row.last_tag,
        ):
            raise StoreError(f"batch {batch.id}: entries no longer match part {row.part}")
        yield row, tags


def part_tags(
    session: Session, batch_id: str, first: bytes, last: bytes, *, distinct: bool = True
) -> bytes:
    """The distinct tags in ``[first, last]`` (every tag if not ``distinct``),
    sorted and concatenated.

    The database concatenates (a part holds up to ~110,000 tags, and Python's
    per-row cost would exceed the query's): group_concat on SQLite, string_agg
    on PostgreSQL; other databases stream rows.
    """
    params = {"batch": batch_id, "first": first, "last": last}
    ordered = ("SELECT DISTINCT tag" if distinct else "SELECT tag") + (  # noqa: S608 (constants)
        " FROM batch_entries WHERE batch_id = :batch AND tag >= :first AND tag <= :last"
        " ORDER BY tag"
    )
    sql = _concatenation(session, ordered)
    if sql is None:
        return b"".join(_stream(session, batch_id, first, last))
    return bytes(session.execute(text(sql), params).scalar_one() or b"")


def _concatenation(session: Session, ordered: str) -> str | None:
    """SQL that concatenates the tags ``ordered`` selects, in tag order, into
    one blob; None where the dialect has no such aggregate (stream instead)."""
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        # group_concat keeps the order of the ordered subquery it reads, and
        # copies a blob's bytes as they are (NULs included); CAST makes the
        # text it returns a blob again. A third faster than going through hex.
        return f"SELECT CAST(group_concat(tag, '') AS BLOB) FROM ({ordered})"  # noqa: S608
    if dialect == "postgresql":
        return f"SELECT string_agg(tag, ''::bytea ORDER BY tag) FROM ({ordered}) AS t"  # noqa: S608
    return None


def total_tags(session: Session, batch_id: str) -> int:
    """Tags in the whole batch (the articles' Total): the parts' counts added up."""
    return int(
        session.scalar(select(func.sum(BatchPart.count)).where(BatchPart.batch_id == batch_id)) or 0
    )


def _stream(
    session: Session, batch_id: str, first: bytes = b"", last: bytes | None = None
) -> Iterator[bytes]:
    """The batch's distinct tags in order, straight from the driver's cursor.

    Millions of rows pass here; SQLAlchemy's per-row result processing would
    cost more than the query, so the compiled statement runs on the DBAPI
    cursor (plain bytes come back from both sqlite3 and psycopg).
    """
    query = select(BatchEntry.tag).where(BatchEntry.batch_id == batch_id, BatchEntry.tag >= first)
    if last is not None:
        query = query.where(BatchEntry.tag <= last)
    query = query.distinct().order_by(BatchEntry.tag)
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


def _next_tags(
    session: Session, batch_id: str, after: bytes, limit: int, *, distinct: bool = True
) -> bytes:
    """Up to ``limit`` distinct tags (every tag if not ``distinct``) above
    ``after`` (b"": from the first), sorted and concatenated by the database
    in one query (see :func:`part_tags`)."""
    params = {"batch": batch_id, "after": after, "limit": limit}
    ordered = ("SELECT DISTINCT tag" if distinct else "SELECT tag") + (  # noqa: S608 (constants)
        " FROM batch_entries WHERE batch_id = :batch AND tag > :after ORDER BY tag LIMIT :limit"
    )
    sql = _concatenation(session, ordered)
    if sql is None:
        tags = (t for t in _stream(session, batch_id, after) if t > after)
        return b"".join(itertools.islice(tags, limit))
    return bytes(session.execute(text(sql), params).scalar_one() or b"")


def _folded(tags: bytes, size: int) -> bytes:
    """Sorted, concatenated tags with repeats folded (two addresses can share a tag)."""
    items = [tags[i : i + size] for i in range(0, len(tags), size)]
    unique = set(items)
    return tags if len(unique) == len(items) else b"".join(sorted(unique))
