"""Benchmark: building, signing and rendering one batch's report against reading its rows.

    .venv/bin/python bench/report.py [--quick] [--entries N] [--pings P]

A synthetic batch (N proof-index entries, P accepted pings each with its
suppression, plus P/4 rejected pings) is written straight into a fresh SQLite
workspace. The baseline, in the same run, is the least any report must do:
one SELECT of the batch's pings joined with their suppressions and
addresses, fetched in full, plus counting the proof index. The figure is
`build_report` + signing + rendering JSON and HTML over that baseline.
The last line is `report: ratio <x> (goal <= 10)`.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import func, insert, select

from scrubber.config import Settings
from scrubber.keys import OperatorKey
from scrubber.report import build, sign
from scrubber.report.render_html import render_html
from scrubber.report.render_json import render_json
from scrubber.store import Store
from scrubber.store.models import Address, Batch, BatchEntry, Ping, SaltEpoch, Suppression
from scrubber.store.types import utcnow
from scrubber.workspace import init_workspace, load_key, open_store

GOAL = 10.0
CHUNK = 20_000


def seed(store: Store, key: OperatorKey, entries: int, pings: int) -> None:
    now = utcnow()
    with store.write_connection() as c:
        c.execute(
            insert(SaltEpoch),
            [
                {
                    "id": 1,
                    "salt": b"s" * 16,
                    "t": 2,
                    "m": 1024,
                    "p": 1,
                    "started_at": now,
                    "ends_at": now,
                }
            ],
        )
        c.execute(
            insert(Batch),
            [
                {
                    "id": "bench",
                    "created_at": now,
                    "epoch_id": 1,
                    "salt": b"s" * 16,
                    "t": 2,
                    "m": 1024,
                    "p": 1,
                    "tag_length": 8,
                    "token": "tok",
                    "newsgroup": "g",
                    "respond_http": "http://127.0.0.1/dni/v1/ping/tok",
                    "respond_smtp": "dni-tok@x",
                    "expires_at": now + timedelta(days=30),
                    "key_public": key.public_b64,
                    "count": entries,
                    "parts_total": 0,
                }
            ],
        )
        for start in range(1, entries + 1, CHUNK):
            ids = range(start, min(start + CHUNK, entries + 1))
            c.execute(
                insert(Address), [{"id": i, "canonical": f"user{i}@example.org"} for i in ids]
            )
            c.execute(
                insert(BatchEntry),
                [
                    {
                        "batch_id": "bench",
                        "tag": i.to_bytes(8, "big"),
                        "address_id": i,
                    }
                    for i in ids
                ],
            )
        rows = []
        for i in range(1, pings + pings // 4 + 1):
            accepted = i <= pings
            received = now + timedelta(seconds=i)
            rows.append(
                {
                    "id": i,
                    "token": "tok",
                    "batch_id": "bench",
                    "proof": i.to_bytes(16, "big"),
                    "outcome": "accepted" if accepted else "invalid",
                    "channel": "http" if i % 3 else "smtp",
                    "peer": "127.0.0.1",
                    "address_id": i if accepted else None,
                    "received_at": received,
                    "committed_at": received,
                }
            )
        c.execute(insert(Ping), rows)
        c.execute(
            insert(Suppression),
            [
                {
                    "address_id": i,
                    "suppressed_at": now + timedelta(seconds=i, milliseconds=3 + i % 50),
                    "received_at": now + timedelta(seconds=i),
                    "channel": "dni-ping",
                    "reason": "registry",
                    "batch_id": "bench",
                    "ping_id": i,
                }
                for i in range(1, pings + 1)
            ],
        )


def baseline(store: Store) -> float:
    start = time.perf_counter()
    with store.read() as session:
        session.scalar(
            select(func.count()).select_from(BatchEntry).where(BatchEntry.batch_id == "bench")
        )
        session.execute(
            select(
                Ping.id,
                Ping.channel,
                Ping.outcome,
                Ping.received_at,
                Address.canonical,
                Suppression.suppressed_at,
            )
            .outerjoin(Address, Address.id == Ping.address_id)
            .outerjoin(Suppression, Suppression.address_id == Ping.address_id)
            .where(Ping.batch_id == "bench")
        ).all()
    return time.perf_counter() - start


def report(store: Store, key: OperatorKey) -> float:
    start = time.perf_counter()
    document = sign.sign_report(build.build_report(store, "bench"), key)
    render_json(document)
    render_html(document)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batch, under 30 s")
    parser.add_argument("--entries", type=int)
    parser.add_argument("--pings", type=int)
    args = parser.parse_args()
    entries = args.entries or (20_000 if args.quick else 1_000_000)
    pings = args.pings or (2_000 if args.quick else 50_000)
    with tempfile.TemporaryDirectory(prefix="scrubber-bench-report-") as tmp:
        workspace = init_workspace(Path(tmp) / "ws", Settings())
        key = load_key(workspace)
        with open_store(workspace) as store:
            seed(store, key, entries, pings)
            base = min(baseline(store) for _ in range(3))
            took = min(report(store, key) for _ in range(3))
    print(f"batch: {entries:,} addresses hashed, {pings:,} accepted pings, {pings // 4:,} invalid")
    print(f"baseline (read the rows): {base:.3f} s")
    print(f"report (build, sign, render json + html): {took:.3f} s")
    print(f"report: ratio {took / base:.2f} (goal <= {GOAL:g})")
    sys.stdout.flush()


if __name__ == "__main__":
    main()
