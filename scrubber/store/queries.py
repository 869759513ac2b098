"""Look-ups that several packages share, in the caller's session.

One home per table's queries: a query only one domain runs lives in that
domain's module (lists.py for list entries and imports, ledger.py for the
suppression ledger, batch/ for parts and batch entries, report/ for
reporting); a look-up more than one package needs lives here, beside the
models, so no domain module imports another one just to find a row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ScalarSelect, func, select
from sqlalchemy.orm import QueryableAttribute, Session

from scrubber.errors import NotFoundError
from scrubber.store.models import Batch, BatchPartPost, MailingList


def get_batch(session: Session, batch_id: str) -> Batch:
    """The batch ``batch_id``; NotFoundError naming the command that lists them."""
    batch = session.get(Batch, batch_id)
    if batch is None:
        raise NotFoundError(f"no batch {batch_id!r} (see 'scrubber batch ls')")
    return batch


def get_list(session: Session, name: str) -> MailingList:
    """The list called ``name``; NotFoundError naming the command that lists them."""
    found = session.scalars(select(MailingList).where(MailingList.name == name)).first()
    if found is None:
        raise NotFoundError(f"no list named {name!r}; 'scrubber list ls' shows the lists")
    return found


@dataclass(frozen=True)
class PartPost:
    server: str  # no credentials: nntp://HOST:PORT, nntps://HOST:PORT or spool:DIR
    posted_at: datetime


def part_posts(session: Session, batch_id: str) -> dict[int, list[PartPost]]:
    """Where each part of a batch went: part -> its servers, earliest first."""
    rows = session.execute(
        select(BatchPartPost.part, BatchPartPost.server, BatchPartPost.posted_at)
        .where(BatchPartPost.batch_id == batch_id)
        .order_by(BatchPartPost.part, BatchPartPost.posted_at, BatchPartPost.server)
    ).all()
    posts: dict[int, list[PartPost]] = {}
    for part, server, posted_at in rows:
        posts.setdefault(part, []).append(PartPost(server, posted_at))
    return posts


def parts_posted(batch_id: QueryableAttribute[str] | str) -> ScalarSelect[int]:
    """How many parts of the batch went to at least one server (a subquery)."""
    return (
        select(func.count(func.distinct(BatchPartPost.part)))
        .where(BatchPartPost.batch_id == batch_id)
        .scalar_subquery()
    )
