"""Benchmark: a responder scan against reading every part of the batch.

    .venv/bin/python bench/responder_scan.py [--quick] [--server nntp://HOST:PORT]

One signed batch of several parts (random tags plus the tags of the
registrant's 2 protected addresses) is written to a spool (or posted to a
news server with --server). The scan is the real thing: a fresh responder
database, ``scan()`` with overview, one body to learn the batch, hashing,
and only the parts whose Subject range can hold a protected tag. The
baseline, measured in the same run on the same source, is what a responder
without range selection must do: fetch and verify every part. Best of a few
alternating rounds each. The last line is
`responder_scan: ratio <x> (goal < 0.5)`.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import secrets
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from scrubber import article, scheme
from scrubber.keys import OperatorKey
from scrubber.responder.scan import scan
from scrubber.responder.store import ResponderStore, add_addresses, set_mark
from scrubber.transport import ArticleSource
from scrubber.transport.nntp import NntpSource, nntplib
from scrubber.transport.spool import SpoolSource

GOAL = 0.5
PROTECTED = ["reader@example.org", "second.reader@example.net"]
PARAMS = scheme.Params(t=2, m=1024, p=1, tag_length=8)


def build(parts: int, per_part: int, group: str) -> list[bytes]:
    key, salt = OperatorKey.generate(), os.urandom(16)
    mine = {scheme.digest(scheme.canonicalize(a), salt, PARAMS).tag for a in PROTECTED}
    tags = sorted(mine | {os.urandom(8) for _ in range(parts * per_part - len(mine))})
    token = secrets.token_urlsafe(24)
    header = article.BatchHeader(
        batch_id=f"bench{secrets.token_hex(6)}",
        salt=salt,
        params=dataclasses.replace(PARAMS, tag_length=8),
        total=len(tags),
        respond=scheme.RespondTo(
            http=f"http://127.0.0.1:9/dni/v1/ping/{token}",
            smtp=f"dni-{token}@bench.test",
        ),
        expires=(datetime.now(UTC) + timedelta(days=1)).replace(microsecond=0),
        key=key.public_raw,
    )
    per = -(-len(tags) // parts)
    out = []
    for number, start in enumerate(range(0, len(tags), per), 1):
        blob = b"".join(tags[start : start + per])
        meta = article.part_meta(header, number, parts, blob)
        now = datetime.now(UTC)
        out.append(
            article.render_article(meta, blob, key, newsgroup=group, domain="bench.test", date=now)
        )
    return out


def publish(articles: list[bytes], spool: Path, server: str | None) -> None:
    if server is None:
        spool.mkdir()
        for number, raw in enumerate(articles):
            (spool / f"{number:04d}.rnews").write_bytes(raw)
        return
    host, _, port = server.removeprefix("nntp://").partition(":")
    conn = nntplib.NNTP(host, int(port or 119), readermode=True)
    try:
        for raw in articles:
            conn.post(raw.splitlines())
    finally:
        conn.quit()


def timed_scan(open_source: Callable[[], ArticleSource], workdir: Path, mark: str | None) -> float:
    db = workdir / f"r{secrets.token_hex(4)}.db"
    store = ResponderStore.open(db)
    add_addresses(store, PROTECTED)
    source = open_source()
    try:
        if mark is not None:
            set_mark(store, source.name, mark)
        start = time.perf_counter()
        report = scan(store, source)
        elapsed = time.perf_counter() - start
    finally:
        source.close()
        store.close()
        db.unlink()
    assert report.matches == len(PROTECTED), report
    print(f"  scan: {elapsed:.3f} s, {report.bodies_fetched} bodies, {report.hashed} hashed")
    return elapsed


def timed_all_parts(open_source: Callable[[], ArticleSource], mark: str | None) -> float:
    source = open_source()
    try:
        start = time.perf_counter()
        entries, _ = source.overview(mark)
        for entry in entries:
            article.parse_article(source.body(entry))
        elapsed = time.perf_counter() - start
    finally:
        source.close()
    print(f"  every part: {elapsed:.3f} s, {len(entries)} bodies")
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batch, < 30 s")
    parser.add_argument("--server", help="post to and read from this news server")
    parser.add_argument("--group", default="alt.dni.test")
    parser.add_argument("--rounds", type=int, help="alternating rounds (default 3, quick; 5)")
    args = parser.parse_args()
    # Parts of a multi-part batch hold 41,000-82,000 tags (half to all of 900 KB).
    parts, per_part = (10, 80_000) if args.quick else (20, 80_000)
    rounds = args.rounds or (3 if args.quick else 5)
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        spool = workdir / "spool"
        mark: str | None = None
        if args.server:
            probe = NntpSource(args.server, args.group)
            mark = probe.overview(None)[1]
            probe.close()

        def open_source() -> ArticleSource:
            if args.server:
                return NntpSource(args.server, args.group)
            return SpoolSource(spool, args.group)

        articles = build(parts, per_part, args.group)
        publish(articles, spool, args.server)
        size = sum(len(a) for a in articles)
        print(f"batch: {parts} parts, {parts * per_part:,} tags, {size / 1e6:.1f} MB")
        scans, baselines = [], []
        for _ in range(rounds):
            baselines.append(timed_all_parts(open_source, mark))
            scans.append(timed_scan(open_source, workdir, mark))
    ratio = min(scans) / min(baselines)
    print(f"best: scan {min(scans):.3f} s, every part {min(baselines):.3f} s")
    print(f"responder_scan: ratio {ratio:.2f} (goal < {GOAL})")


if __name__ == "__main__":
    main()
