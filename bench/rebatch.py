"""Benchmark: a protocol-2 re-batch in the same salt epoch against the first batch.

    .venv/bin/python bench/rebatch.py [--addresses N] [--rounds R]

A fresh SQLite workspace at the default cost (t=2, m=1024 KiB, p=1) imports
N addresses; the first `create_batch` hashes them all (the baseline), then
R further batches of the same list in the same epoch reuse the digest cache
and only derive the v2 values (SHA-256 with each batch's nonce), insert the batch's
members and tags (no proof: the listener reads it from the digests) and
plan the parts. The figure is the first batch's time over
the median re-batch time. The last line is `rebatch: ratio <x> (goal >= 50)`.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from scrubber import hashing, lists
from scrubber.batch import create
from scrubber.workspace import init_workspace, load_key, open_store

GOAL = 50


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addresses", type=int, default=5_000)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        ws = init_workspace(root / "ws")
        source = root / "list.txt"
        source.write_text(
            "".join(f"user.{n}@mail{n % 300}.example\n" for n in range(args.addresses))
        )
        store, key = open_store(ws), load_key(ws)
        executor = hashing.ThreadExecutor()
        try:
            lists.import_files(store, "bench", [source], rejects_path=root / "rejects.csv")
            request = create.request_from_settings(ws.settings, ["bench"])
            times = []
            for _ in range(args.rounds + 1):
                start = time.perf_counter()
                create.create_batch(store, ws.settings, key, request, executor)
                times.append(time.perf_counter() - start)
        finally:
            executor.close()
            store.close()
    first, again = times[0], statistics.median(times[1:])
    print(f"first batch (hashing {args.addresses:,}): {first:.2f} s")
    print(f"re-batch, median of {args.rounds}: {again:.3f} s")
    print(f"rebatch: ratio {first / again:.1f} (goal >= {GOAL})")


if __name__ == "__main__":
    main()
