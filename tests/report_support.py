"""Report test data: a real batch of fresh addresses, then pings, suppressions
and parts stored as rows, the way the listener and posting store them."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select

from scrubber import lists
from scrubber.batch.create import create_batch, request_from_settings
from scrubber.config import Settings
from scrubber.hashing import ThreadExecutor
from scrubber.store import Store
from scrubber.store.models import (
    Batch,
    BatchEntry,
    BatchPart,
    BatchPartPost,
    CachedDigest,
    Ping,
    Suppression,
)
from scrubber.workspace import Workspace, init_workspace, load_key, open_store
from tests.support import free_port

DAY = 86400.0

# (channel, outcome, hours after the batch, seconds to suppression or None)
TIMELY = [
    ("http", "accepted", 1, 0.25),
    ("http", "accepted", 2, 90.0),
    ("smtp", "accepted", 3, 3600.0),
    ("smtp", "accepted", 4, 1.5 * DAY),
    ("http", "duplicate", 5, None),
    ("http", "invalid", 5, None),
    ("smtp", "invalid", 6, None),
    ("http", "rate-limited", 7, None),
]


@dataclass
class Seeded:
    workspace: Workspace
    batch_id: str
    created_at: datetime
    addresses: list[str]


def make_workspace(root: Path, **settings: Any) -> Workspace:
    return init_workspace(root, Settings(http_port=free_port(), **settings))


def make_batch(workspace: Workspace, n: int = 24, name: str = "customers") -> Seeded:
    """A list of ``n`` fresh addresses and a real batch of it."""
    addresses = [f"person{i}.{secrets.token_hex(3)}@example.org" for i in range(n)]
    source = workspace.root / f"{name}-{secrets.token_hex(2)}.txt"
    source.write_text("\n".join(addresses) + "\n", encoding="utf-8")
    settings = workspace.settings
    executor = ThreadExecutor(2)
    with open_store(workspace) as store:
        lists.import_files(store, name, [source], rejects_path=workspace.root / "rejects.csv")
        request = request_from_settings(settings, [name])
        try:
            batch = create_batch(store, settings, load_key(workspace), request, executor).batch
        finally:
            executor.close()
    return Seeded(workspace, batch.id, batch.created_at, addresses)


def record_pings(
    store: Store, batch_id: str, plan: list[tuple[str, str, int, float | None]]
) -> None:
    """Store pings (and suppressions of accepted ones) as the listener does."""
    with store.write() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        # A member's proof is H[16:32] of its digest in the batch's epoch.
        entries = session.execute(
            select(CachedDigest.proof, BatchEntry.address_id)
            .join(CachedDigest, CachedDigest.address_id == BatchEntry.address_id)
            .where(BatchEntry.batch_id == batch_id, CachedDigest.epoch_id == batch.epoch_id)
            .order_by(BatchEntry.address_id)
        ).all()
        used = 0
        for channel, outcome, hours, latency in plan:
            received = batch.created_at + timedelta(hours=hours)
            accepted = outcome == "accepted"
            proof, address_id = entries[used] if accepted else (secrets.token_bytes(16), None)
            used += accepted
            ping = Ping(
                token=batch.token,
                batch_id=batch_id,
                proof=proof,
                outcome=outcome,
                channel=channel,
                peer="127.0.0.1",
                address_id=address_id,
                received_at=received,
                committed_at=received,
            )
            session.add(ping)
            session.flush()
            if accepted and latency is not None:
                session.add(
                    Suppression(
                        address_id=address_id,
                        suppressed_at=received + timedelta(seconds=latency),
                        channel="dni-ping",
                        reason="registry",
                        received_at=received,
                        batch_id=batch_id,
                        ping_id=ping.id,
                    )
                )


def add_parts(store: Store, batch_id: str, posted: int, total: int) -> None:
    with store.write() as session:
        batch = session.get(Batch, batch_id)
        assert batch is not None
        # Replace whatever parts batch creation planned with a known layout.
        session.execute(delete(BatchPart).where(BatchPart.batch_id == batch_id))
        batch.parts_total = total
        for part in range(1, total + 1):
            session.add(
                BatchPart(
                    batch_id=batch_id,
                    part=part,
                    message_id=f"<{batch_id}.{part}@dni.example.test>",
                    first_tag=bytes([part]) * 8,
                    last_tag=bytes([part + 1]) * 8,
                    count=10 + part,
                    size=1000 + part,
                )
            )
        session.flush()
        for part in range(1, posted + 1):
            when = batch.created_at + timedelta(minutes=part)
            # A second server took the part later: the report names the first.
            for server, later in (("spool:/var/spool/dni", 5), ("nntp://127.0.0.1:119", 0)):
                session.add(
                    BatchPartPost(
                        batch_id=batch_id,
                        part=part,
                        server=server,
                        posted_at=when + timedelta(minutes=later),
                    )
                )
