"""The disk under the database full (a small tmpfs, as root): ``list import``
ends in one line and leaves the store as it was; the running listener answers
503 (HTTP) and 451 (SMTP), never 200/250, and stores pings again once space
returns. Both channels, real processes."""

from __future__ import annotations

import errno
import smtplib
import sqlite3
from collections.abc import Callable
from pathlib import Path

from sqlalchemy import func, select

from scrubber.store.models import ListEntry, Suppression
from scrubber.workspace import Workspace, init_workspace, open_store
from tests.listener_support import make_batch, ping_json, proof_for, start_listener
from tests.support import run_cli

ADDRESSES = [f"reader{i}@example.com" for i in range(6)]
CHUNK = 64 * 1024
DISK = 16 * 2**20  # bytes of the tmpfs under the workspace


def fill(disk: Path) -> Path:
    """Write a file until the disk has no byte left; returns it (delete it to free)."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:  # unbuffered: each write meets the disk
        for size in (CHUNK, 512, 1):
            try:
                while True:
                    out.write(b"\0" * size)
            except OSError as error:
                assert error.errno == errno.ENOSPC
    return filler


def checkpoint(ws: Workspace) -> None:
    """Empty the WAL, so the next commit must take new space (a WAL that
    grew earlier would otherwise hold it in pages it already has)."""
    with sqlite3.connect(ws.root / "scrubber.db") as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")


def count(ws: Workspace, what: type[ListEntry] | type[Suppression]) -> int:
    with open_store(ws) as store, store.read() as session:
        return int(session.scalar(select(func.count()).select_from(what)) or 0)


def test_list_import_on_a_full_disk_is_one_line_and_keeps_the_store(
    small_disk: Callable[[int], Path],
) -> None:
    disk = small_disk(DISK)
    ws = init_workspace(disk / "ws")
    first = disk / "first.txt"
    first.write_text("".join(f"{a}\n" for a in ADDRESSES))
    assert run_cli("list", "import", "customers", str(first), workspace=ws.root).returncode == 0
    more = Path(ws.root.parent.parent / "more.txt")  # on the big disk
    more.write_text("".join(f"user{i}@example.net\n" for i in range(20_000)))
    checkpoint(ws)
    filler = fill(disk)
    elsewhere = str(disk.parent / "rejects.csv")  # the rejects file fits: the database not
    full = run_cli(
        "list", "import", "customers", str(more), "--rejects", elsewhere, workspace=ws.root
    )
    assert full.returncode != 0
    assert full.stderr.splitlines() == ["error: database unavailable: database or disk is full"]
    # With the rejects file on the full disk too, that is what the line names.
    both = run_cli("list", "import", "customers", str(more), workspace=ws.root)
    assert both.returncode != 0 and len(both.stderr.splitlines()) == 1, both.stderr
    assert both.stderr.startswith("error: cannot write the rejects file ")
    assert "No space left on device" in both.stderr
    filler.unlink()
    with sqlite3.connect(ws.root / "scrubber.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert count(ws, ListEntry) == len(ADDRESSES)  # as before the failed import
    again = run_cli("list", "import", "customers", str(more), workspace=ws.root)
    assert again.returncode == 0, again.stderr
    assert count(ws, ListEntry) == len(ADDRESSES) + 20_000


def smtp_ping(ws: Workspace, port: int, token: str, proof: str) -> int:
    """The SMTP answer to the message's end of data."""
    rcpt = f"dni-{token}@{ws.settings.response_domain}"
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
        client.ehlo()
        client.mail("")
        code, _ = client.rcpt(rcpt)
        assert code == 250
        code, _ = client.data(f"Subject: opt-out\r\n\r\nDNI-Proof: {proof}\r\n".encode())
        return code


def test_the_listener_on_a_full_disk_answers_503_and_451_then_recovers(
    small_disk: Callable[[int], Path],
) -> None:
    disk = small_disk(DISK)
    ws = init_workspace(disk / "ws")
    batch = make_batch(ws, ADDRESSES)
    proofs = [proof_for(a, batch) for a in ADDRESSES]
    listener = start_listener(ws.root)
    try:
        checkpoint(ws)
        filler = fill(disk)
        status, body = ping_json(listener, batch.token, [proofs[0]])
        assert status == 503, body
        assert smtp_ping(ws, listener.smtp_port, batch.token, proofs[1]) == 451
        filler.unlink()  # space returns
        status, body = ping_json(listener, batch.token, [proofs[0]])
        assert (status, body["outcomes"]) == (200, ["accepted"])
        assert smtp_ping(ws, listener.smtp_port, batch.token, proofs[1]) == 250
    finally:
        assert listener.stop() == 0, listener.log()
    assert "Traceback" not in listener.log()
    assert "database or disk is full" in listener.log(), listener.log()  # why it was 503/451
    assert count(ws, Suppression) == 2  # only the pings answered 200/250
    with sqlite3.connect(ws.root / "scrubber.db") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
