"""Look-ups that several packages share, in the caller's session.

One home per table's queries: a query only one domain runs lives in that
domain's module (lists.py for list entries and imports, ledger.py for the
suppression ledger, batch/ for parts and the proof index, report/ for
reporting); a look-up more than one package needs lives here, beside the
models, so no domain module imports another one just to find a row.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from scrubber.errors import NotFoundError
from scrubber.store.models import Batch, MailingList


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
