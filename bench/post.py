"""Benchmark: `scrubber batch post` of a multi-part batch vs raw nntplib posting the same bytes.

    .venv/bin/python bench/post.py [--quick] [--server nntp://127.0.0.1:119] [--rounds N]

Needs the local INN2 (scripts/provision-inn.sh; $SCRUBBER_TEST_NNTP). One
synthetic batch is made in a fresh SQLite workspace (synthetic tags, so no
Argon2: hashing is `batch create`'s cost, not posting's), and each round
copies it three times in SQL (same tags and plan, new ids, so new
Message-IDs and no duplicates on the server). Twin A is posted the way the
`batch post` command does it (pending parts, post_batch with a connect
function: store reads, rendering and signing, connecting, STAT + POST, one
commit per part), timed in-process so Python's start-up and the CLI's
imports are left out; the whole CLI process is timed too and printed for
reference (twin C). Twin B's articles are first rendered to a spool
(untimed), then the same process posts those exact bytes with nothing but
stdlib nntplib (connect with TCP_NODELAY and the segment size scrubber
uses, MODE READER, STARTTLS since the server offers it, POST per article):
the floor for any client. The figure is the median over rounds of
scrubber's time / raw time. Last line: `post: ratio <x> (goal <= 1.5)`.
"""

from __future__ import annotations

import argparse
import os
import secrets
import socket
import sqlite3
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
from scrubber.transport import open_transport, server_name  # noqa: E402
from scrubber.transport.nntp import nntplib  # noqa: E402
from scrubber.workspace import Workspace, init_workspace, load_key, open_store  # noqa: E402
from tests.batch_support import batch_row, synthetic_batch  # noqa: E402

GOAL_RATIO = 1.5
# What a batch is made of (none of it posted yet in the bench's batch).
TWIN_TABLES = ("batches", "batch_lists", "batch_entries", "batch_parts")


class RawClient(nntplib.NNTP):
    """Stdlib nntplib on a socket with the options scrubber sets before connect():
    TCP_NODELAY, and a segment size of at most 8960 bytes, without which a
    POST over TLS on loopback waits 200 ms for INN's delayed ACK about half
    the time (the floor would then measure that timer, not a client)."""

    def _create_socket(self, timeout: object) -> socket.socket:
        sock = socket.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, 8960)
        sock.connect((self.host, self.port))
        return sock


def post_raw(server: str, articles: list[bytes]) -> float:
    """The floor: stdlib nntplib, connect, MODE READER, STARTTLS when offered (as
    scrubber does), POST each article, QUIT."""
    url = urlsplit(server)
    start = time.perf_counter()
    conn = RawClient(url.hostname, url.port or 119, readermode=True, usenetrc=False)
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
    work = post.pending(store, batch_id, server_name(server))
    post.post_batch(
        store, work, key, lambda: open_transport(server, newsgroup=work.batch.newsgroup)
    )
    elapsed = time.perf_counter() - start
    store.close()
    return elapsed


def spooled_articles(ws: Workspace, batch_id: str) -> list[bytes]:
    spool = ws.root / f"spool-{batch_id}"
    store = open_store(ws)
    work = post.pending(store, batch_id, server_name(f"spool:{spool}"))
    post.post_batch(
        store, work, load_key(ws), lambda: open_transport(f"spool:{spool}", newsgroup="")
    )
    store.close()
    files = sorted(spool.iterdir())
    return [p.read_bytes().partition(b"\n")[2] for p in files]  # drop "#! rnews N"


def timed_cli(ws: Workspace, batch_id: str, server: str) -> float:
    command = [sys.executable, "-m", "scrubber", "--workspace", str(ws.root), "batch", "post"]
    start = time.perf_counter()
    subprocess.run([*command, batch_id, "--server", server], check=True, capture_output=True)
    return time.perf_counter() - start


def twin_batch(ws: Workspace, batch_id: str) -> str:
    """A copy of ``batch_id`` under a new id and token (same tags and plan, its
    own Message-IDs), made in SQL: a fresh synthetic batch takes 30 s or more."""
    new = f"{batch_id.rpartition('-')[0]}-{secrets.token_hex(4)}"
    replaced = {
        "id": ":new",
        "batch_id": ":new",
        "token": ":token",
        "respond_http": "replace(respond_http, token, :token)",
        "respond_smtp": "replace(respond_smtp, token, :token)",
        "message_id": "replace(message_id, :old, :new)",
    }
    names = {"old": batch_id, "new": new, "token": secrets.token_urlsafe(16)}
    db = sqlite3.connect(ws.root / "scrubber.db")
    try:
        with db:
            for table in TWIN_TABLES:
                columns = [row[1] for row in db.execute(f"PRAGMA table_info({table})")]
                values = ", ".join(replaced.get(c, c) for c in columns)
                key = "id" if table == "batches" else "batch_id"
                db.execute(
                    f"INSERT INTO {table} ({', '.join(columns)}) "
                    f"SELECT {values} FROM {table} WHERE {key} = :old",
                    names,
                )
    finally:
        db.close()
    return new


def one_round(ws: Workspace, server: str, batch_id: str) -> dict[str, float]:
    """Seconds for scrubber (in-process and CLI) and raw nntplib, twin batches each."""
    ids = [twin_batch(ws, batch_id) for _ in range(3)]
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
    rounds = args.rounds or (2 if args.quick else 5)
    ratios = []
    with tempfile.TemporaryDirectory(prefix="bench-post-") as tmp:
        ws = init_workspace(Path(tmp) / "ws")
        batch_id = synthetic_batch(ws, tags, tag_length=tag_length)[0]
        for number in range(1, rounds + 1):
            r = one_round(ws, args.server, batch_id)
            ratios.append(r["ours"] / r["raw"])
            print(
                f"round {number}: {r['parts']:.0f} parts of {tags:,} tags x {tag_length} bytes: "
                f"scrubber {r['ours']:.2f} s, raw nntplib {r['raw']:.2f} s, "
                f"whole CLI process {r['cli']:.2f} s"
            )
    print(f"post: ratio {statistics.median(ratios):.2f} (goal <= {GOAL_RATIO})")


if __name__ == "__main__":
    main()
