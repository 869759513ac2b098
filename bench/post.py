"""Benchmark: `scrubber batch post` of a multi-part batch vs raw nntplib posting the same bytes.

    .venv/bin/python bench/post.py [--quick] [--server nntp://127.0.0.1:119] [--rounds N]

Needs the local INN2 (scripts/provision-inn.sh; $SCRUBBER_TEST_NNTP). Each
round makes two twin batches of the same size in a fresh SQLite workspace
(synthetic tags, so no Argon2: hashing is `batch create`'s cost, not
posting's). Batch A is posted the way the `batch post` command does it
(pending parts, open_transport, post_batch: store reads, rendering and
signing, STAT + POST, one commit per part), timed in-process so Python's
start-up and the CLI's imports are left out; the whole CLI process is timed
too and printed for reference (batch C). Batch B's articles are first
rendered to a spool (untimed), then the same process posts those exact
bytes with nothing but stdlib nntplib (connect, TCP_NODELAY, MODE READER,
STARTTLS since the server offers it, POST per article): the floor for any
client. Message-IDs differ between the twins, so neither side meets
duplicates. The figure is the median over rounds of scrubber's time / raw
time. Last line: `post: ratio <x> (goal <= 1.5)`.
"""

from __future__ import annotations

import argparse
import os
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from scrubber.batch import post  # noqa: E402
from scrubber.config import Workspace  # noqa: E402
from scrubber.transport import open_transport  # noqa: E402
from scrubber.transport.nntp import nntplib  # noqa: E402
from scrubber.workspace import init_workspace, load_key, open_store  # noqa: E402
from tests.batch_support import batch_row, synthetic_batch  # noqa: E402

GOAL_RATIO = 1.5


def post_raw(server: str, articles: list[bytes]) -> float:
    """The floor: stdlib nntplib, connect, MODE READER, STARTTLS when offered (as
    scrubber does), POST each article, QUIT."""
    url = urlsplit(server)
    start = time.perf_counter()
    conn = nntplib.NNTP(url.hostname, url.port or 119, readermode=True, usenetrc=False)
    # As scrubber does: without it Nagle's algorithm stalls every POST here.
    conn.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if "STARTTLS" in conn.getcapabilities():
        conn.starttls(ssl.create_default_context())
    for article in articles:
        conn.post(article)
    conn.quit()
    return time.perf_counter() - start


def post_scrubber(ws: Workspace, batch_id: str, server: str) -> float:
    """`batch post` minus process start: what the CLI command runs, timed in-process."""
    store = open_store(ws)
    key = load_key(ws)
    start = time.perf_counter()
    work = post.pending(store, batch_id)
    transport = open_transport(server, newsgroup=work.batch.newsgroup)
    try:
        post.post_batch(store, work, key, transport)
    finally:
        transport.close()
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def spooled_articles(ws: Workspace, batch_id: str) -> list[bytes]:
    spool = ws.root / f"spool-{batch_id}"
    store = open_store(ws)
    work = post.pending(store, batch_id)
    post.post_batch(store, work, load_key(ws), open_transport(f"spool:{spool}", newsgroup=""))
    store.close()
    files = sorted(spool.iterdir())
    return [p.read_bytes().partition(b"\n")[2] for p in files]  # drop "#! rnews N"


def timed_cli(ws: Workspace, batch_id: str, server: str) -> float:
    command = [sys.executable, "-m", "scrubber", "--workspace", str(ws.root), "batch", "post"]
    start = time.perf_counter()
    subprocess.run([*command, batch_id, "--server", server], check=True, capture_output=True)
    return time.perf_counter() - start


def one_round(ws: Workspace, server: str, tags: int, tag_length: int) -> dict[str, float]:
    """Seconds for scrubber (in-process and CLI) and raw nntplib, twin batches each."""
    ids = [synthetic_batch(ws, tags, tag_length=tag_length)[0] for _ in range(3)]
    raw = post_raw(server, spooled_articles(ws, ids[0]))
    ours = post_scrubber(ws, ids[1], server)
    cli = timed_cli(ws, ids[2], server)
    return {"raw": raw, "ours": ours, "cli": cli, "parts": batch_row(ws, ids[1]).parts_total}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small batches, one round (< 30 s)")
    parser.add_argument("--server", default=os.environ.get("SCRUBBER_TEST_NNTP", ""))
    parser.add_argument("--rounds", type=int, default=None)
    args = parser.parse_args()
    if not args.server:
        sys.exit("post: no server; run 'make services' or pass --server nntp://HOST")
    tags, tag_length = (100_000, 16) if args.quick else (400_000, 8)
    rounds = args.rounds or (1 if args.quick else 3)
    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench-post-") as tmp:
        ws = init_workspace(Path(tmp) / "ws")
        for number in range(1, rounds + 1):
            r = one_round(ws, args.server, tags, tag_length)
            ratios.append(r["ours"] / r["raw"])
            print(
                f"round {number}: {r['parts']:.0f} parts of {tags:,} tags x {tag_length} bytes: "
                f"scrubber {r['ours']:.2f} s, raw nntplib {r['raw']:.2f} s, "
                f"whole CLI process {r['cli']:.2f} s"
            )
    print(f"post: ratio {statistics.median(ratios):.2f} (goal <= {GOAL_RATIO})")


if __name__ == "__main__":
    main()
