"""Benchmark: bytes on the wire per address for a v2 batch (yEnc and base64) against v1.

    .venv/bin/python bench/wire.py [--addresses N]

A batch of N addresses (default 1,000,000; random H, so the values are what
a real batch publishes) is split as `batch create` splits it (the planner's
capacity estimate, even parts, the same header margin) and every part is
rendered by the real writer: headers, metadata, tag block and signature.
The figure is the whole articles' bytes divided by N. The baseline, measured
in the same run, is v1 with the default 8-byte tags. The last two lines are
`wire-base64: ratio <bytes/address> (goal <= 3.6)` and
`wire: ratio <bytes/address> (goal <= 2.8)` for yEnc.
"""

from __future__ import annotations

import argparse
import os
from datetime import UTC, datetime, timedelta

from scrubber import article, scheme
from scrubber.batch.parts import OVERHEAD_MARGIN
from scrubber.keys import OperatorKey

TOKEN = "q7Xz0Jm4bS3uVw9YcLp2Ea7Kd1Rt"
GOALS = {"yenc": 2.8, "base64": 3.6}


def header(total: int, v2: article.V2Fields | None, key: OperatorKey) -> article.BatchHeader:
    now = datetime(2026, 12, 1, tzinfo=UTC)
    return article.BatchHeader(
        batch_id="20261201-0a1b2c3d",
        salt=os.urandom(16),
        params=scheme.Params(
            t=2, m=1024, p=1, tag_length=scheme.ITEM_LEN if v2 else scheme.DEFAULT_TAG_LEN
        ),
        total=total,
        respond=scheme.RespondTo(
            http=f"https://dni.example.com/dni/v1/ping/{TOKEN}",
            smtp=f"dni-{TOKEN}@dni.example.com",
        ),
        expires=now + timedelta(days=30),
        key=key.public_raw,
        v2=v2,
    )


def wire_bytes(tags: list[bytes], head: article.BatchHeader, key: OperatorKey) -> int:
    """Bytes of every whole article of the batch, split as the planner splits it."""
    size = head.tag_length

    def render(number: int, parts: int, chunk: list[bytes]) -> bytes:
        blob = b"".join(chunk)
        meta = article.part_meta(head, number, parts, blob)
        return article.render_article(
            meta,
            blob,
            key,
            newsgroup="alt.dni.batches",
            domain="dni.example.com",
            date=head.expires,
        )

    overhead = len(render(1, 1, [bytes(size)])) + OVERHEAD_MARGIN
    capacity = (
        article.tags_per_part(size, overhead)
        if head.v2 is None
        else article.items_per_part(head.v2, overhead)
    )
    parts = -(-len(tags) // capacity)
    per = -(-len(tags) // parts)
    sizes = [
        len(render(n, parts, tags[i : i + per])) for n, i in enumerate(range(0, len(tags), per), 1)
    ]
    assert max(sizes) <= article.MAX_PART_BYTES
    return sum(sizes)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--addresses", type=int, default=1_000_000)
    n = parser.parse_args().addresses
    key = OperatorKey.generate()
    hashes = [os.urandom(32) for _ in range(n)]
    v1 = sorted({h[: scheme.DEFAULT_TAG_LEN] for h in hashes})
    baseline = wire_bytes(v1, header(n, None, key), key) / n
    print(f"v1 (8-byte tags, base64): {baseline:.3f} bytes/address")
    nonce, gcs = os.urandom(scheme.NONCE_LEN), scheme.Gcs()
    values = sorted({scheme.item_value(h, nonce, n, gcs) for h in hashes})
    items = [scheme.item_bytes(v) for v in values]
    results = {}
    for encoding in ("base64", "yenc"):
        v2 = article.V2Fields(nonce=nonce, gcs=gcs, encoding=encoding)
        results[encoding] = wire_bytes(items, header(n, v2, key), key) / n
        share = results[encoding] / baseline
        print(f"v2 {encoding}: {results[encoding]:.3f} bytes/address, {share:.3f} of v1")
    print(f"wire-base64: ratio {results['base64']:.3f} (goal <= {GOALS['base64']})")
    print(f"wire: ratio {results['yenc']:.3f} (goal <= {GOALS['yenc']})")


if __name__ == "__main__":
    main()
