"""Test helpers for batches: synthetic large batches and reading a group back.

A synthetic batch skips Argon2 (hashing 200,000 addresses would take minutes)
by inserting random tags straight into the batch's entries (no digests, so
no proof of it is valid); its
parts are still planned by the real planner and written and posted by the
real writer and `batch post`.
"""

from __future__ import annotations

import base64
import os
import secrets
from datetime import timedelta

from sqlalchemy import insert, select

from scrubber import scheme
from scrubber.article import (
    SIGNATURE_PREFIX,
    ParsedArticle,
    parse_article,
    parse_subject,
    split_article,
)
from scrubber.batch import create, parts
from scrubber.keys import OperatorKey
from scrubber.store.models import (
    Address,
    Batch,
    BatchEntry,
    BatchList,
    BatchPart,
    BatchPartPost,
    MailingList,
    SaltEpoch,
)
from scrubber.store.types import utcnow
from scrubber.transport.nntp import nntplib
from scrubber.workspace import Workspace, load_key, open_store

TEST_GROUP = "alt.dni.test"


def synthetic_batch(
    ws: Workspace,
    n: int,
    *,
    tag_length: int = 8,
    newsgroup: str = TEST_GROUP,
    protocol: int = 1,
    encoding: str = "yenc",
) -> tuple[str, set[bytes]]:
    """Store a batch of ``n`` random addresses; return its id and its tags
    (v2: random values below n * M, as 8-byte tags)."""
    store = open_store(ws)
    key = load_key(ws)
    now = utcnow()
    if protocol == 2:
        span = n * scheme.GCS_M
        tags = {scheme.item_bytes(secrets.randbelow(span)) for _ in range(n)}
    else:
        tags = {os.urandom(tag_length) for _ in range(n)}
    stamp = secrets.token_hex(4)
    try:
        with store.write() as session:
            epoch = SaltEpoch(
                salt=os.urandom(16), t=2, m=1024, p=1, started_at=now, ends_at=now + timedelta(30)
            )
            mlist = MailingList(name=f"synthetic-{stamp}", created_at=now, last_import_at=now)
            session.add_all([epoch, mlist])
            session.flush()
            base = (session.scalar(select(Address.id).order_by(Address.id.desc())) or 0) + 1
            # Core inserts: the ORM bulk path is several times slower at this size.
            conn = session.connection()
            conn.execute(
                insert(Address.__table__),
                [{"id": base + i, "canonical": f"u{i}.{stamp}@example.test"} for i in range(n)],
            )
            request = create.BatchRequest(
                [mlist.name], tag_length, 30, newsgroup, protocol=protocol, encoding=encoding
            )
            batch = create.new_batch(ws.settings, key, epoch, request, now)
            batch.count = n if protocol == 2 else len(tags)
            session.add(batch)
            session.flush()
            session.execute(insert(BatchList), [{"batch_id": batch.id, "list_id": mlist.id}])
            conn.execute(
                insert(BatchEntry.__table__),
                [
                    {
                        "batch_id": batch.id,
                        "tag": tag,
                        "address_id": base + i,
                    }
                    for i, tag in enumerate(tags)
                ],
            )
            parts.plan_parts(session, batch, key)
            return batch.id, tags
    finally:
        store.close()


def batch_row(ws: Workspace, batch_id: str) -> Batch:
    store = open_store(ws)
    try:
        with store.read() as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None
            return batch
    finally:
        store.close()


def nntp_connect(url: str) -> nntplib.NNTP:
    from urllib.parse import urlsplit

    parts_ = urlsplit(url)
    conn = nntplib.NNTP(
        parts_.hostname or "127.0.0.1", parts_.port or 119, readermode=True, usenetrc=False
    )
    if parts_.username:
        conn.login(parts_.username, parts_.password)
    return conn


def fetch_article(conn: nntplib.NNTP, message_id: str) -> tuple[dict[str, str], bytes]:
    """Headers and body of one article, as the server serves it."""
    _, info = conn.article(message_id)
    return split_article(b"\n".join(info.lines))


def fetch_parsed(conn: nntplib.NNTP, message_id: str) -> tuple[dict[str, str], ParsedArticle]:
    headers, body = fetch_article(conn, message_id)
    return headers, parse_article(body)


def subjects_in_group(conn: nntplib.NNTP, group: str, batch_id: str) -> list[str]:
    """Subjects of every article in ``group`` that belongs to ``batch_id``."""
    _, _, first, last, _ = conn.group(group)
    if int(last) < int(first):
        return []
    _, overviews = conn.over((int(first), int(last)))
    subjects = [nntplib.decode_header(fields["subject"]) for _, fields in overviews]
    return [s for s in subjects if f" batch {batch_id} " in s]


def part_numbers_on(url: str, batch_id: str) -> list[int]:
    """The part numbers of ``batch_id``'s articles in TEST_GROUP on the news
    server at ``url``, sorted: a part posted twice shows twice."""
    conn = nntp_connect(url)
    try:
        subjects = subjects_in_group(conn, TEST_GROUP, batch_id)
    finally:
        conn.quit()
    return sorted(info.part for s in subjects if (info := parse_subject(s)) is not None)


def resign_body(body: bytes, mutate: bytes, replace: bytes, key: OperatorKey) -> bytes:
    """An article body with ``mutate`` replaced in its signed part and signed
    again by ``key``: only the checks after the signature can object."""
    signed = body[: body.rindex(SIGNATURE_PREFIX)]
    assert mutate in signed
    signed = signed.replace(mutate, replace, 1)
    return signed + SIGNATURE_PREFIX + base64.b64encode(key.sign(signed)) + b"\n"


def parts_of(ws: Workspace, batch_id: str) -> list[BatchPart]:
    store = open_store(ws)
    try:
        with store.read() as session:
            return list(
                session.query(BatchPart).filter_by(batch_id=batch_id).order_by(BatchPart.part)
            )
    finally:
        store.close()


def servers_of(ws: Workspace, batch_id: str) -> list[set[str]]:
    """For each part in order, the servers it is marked posted to."""
    marks: list[set[str]] = [set() for _ in parts_of(ws, batch_id)]
    with open_store(ws) as store, store.read() as session:
        for part, server in session.execute(
            select(BatchPartPost.part, BatchPartPost.server).where(
                BatchPartPost.batch_id == batch_id
            )
        ):
            marks[part - 1].add(server)
    return marks
