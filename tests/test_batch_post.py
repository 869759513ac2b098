"""batch post against the real INN2: multi-part batches, kill and resume, rnews spool."""

from __future__ import annotations

import dataclasses
import json
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import threading
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from scrubber.article import MAX_PART_BYTES, parse_article, parse_subject
from scrubber.batch import post
from scrubber.errors import TransportError
from scrubber.transport import PostStatus, open_transport, server_name
from scrubber.transport.spool import spool_name
from scrubber.workspace import Workspace, load_key, load_workspace, open_store
from tests.batch_support import (
    batch_row,
    fetch_article,
    fetch_parsed,
    nntp_connect,
    part_numbers_on,
    parts_of,
    servers_of,
    synthetic_batch,
)
from tests.support import free_port, require_service, run_cli

pytestmark = pytest.mark.inn


@pytest.fixture
def nntp() -> str:
    return require_service("SCRUBBER_TEST_NNTP", "INN2")


def test_200k_batch_is_split_posted_read_back_and_complete(workspace: Workspace, nntp: str) -> None:
    batch_id, tags = synthetic_batch(workspace, 200_000)
    result = run_cli("batch", "post", batch_id, "--server", nntp, workspace=workspace.root)
    assert result.returncode == 0, result.stderr

    parts = parts_of(workspace, batch_id)
    assert len(parts) >= 3
    conn = nntp_connect(nntp)
    seen: list[bytes] = []
    try:
        for row in parts:
            headers, parsed = fetch_parsed(conn, row.message_id)
            info = parse_subject(headers["subject"])
            assert info is not None
            assert (info.batch_id, info.part, info.parts) == (batch_id, row.part, len(parts))
            assert (info.first_tag, info.last_tag) == (row.first_tag, row.last_tag)
            assert parsed.meta.count == row.count == len(parsed.tags)
            assert parsed.meta.total == len(tags)
            assert row.size <= MAX_PART_BYTES
            seen.extend(parsed.tags)
    finally:
        conn.quit()
    assert seen == sorted(tags)  # every tag, once, in order across the parts
    assert servers_of(workspace, batch_id) == [{nntp}] * len(parts)


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    from pathlib import Path
    from scrubber.batch import post
    from scrubber.transport import open_transport, server_name
    from scrubber.workspace import load_key, load_workspace, open_store

    root, batch_id, server, when = sys.argv[1:]
    ws = load_workspace(Path(root))
    store = open_store(ws)
    work = post.pending(store, batch_id, server_name(server))
    transport = open_transport(server, newsgroup=work.batch.newsgroup)

    class DieAfterServerAccepts:
        server = transport.server
        def post(self, message_id, article):
            status = transport.post(message_id, article)
            os.kill(os.getpid(), signal.SIGKILL)  # before the part is marked posted
        def close(self):
            transport.close()

    def die_after_mark(result):
        os.kill(os.getpid(), signal.SIGKILL)

    if when == "after-accept":
        post.post_batch(store, work, load_key(ws), DieAfterServerAccepts)
    else:
        post.post_batch(store, work, load_key(ws), lambda: transport, on_part=die_after_mark)
    """
)


@pytest.mark.parametrize("when", ["after-mark", "after-accept"])
def test_killed_post_resumes_with_exactly_one_article_per_part(
    workspace: Workspace, nntp: str, when: str
) -> None:
    batch_id, _ = synthetic_batch(workspace, 90_000, tag_length=16)
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(workspace.root), batch_id, nntp, when],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    marked = [bool(servers) for servers in servers_of(workspace, batch_id)]
    assert len(marked) >= 3
    assert marked == ([True] if when == "after-mark" else [False]) + [False] * (len(marked) - 1)

    resumed = run_cli("batch", "post", batch_id, "--server", nntp, workspace=workspace.root)
    assert resumed.returncode == 0, resumed.stderr
    if when == "after-accept":
        assert "1 already on the server" in resumed.stdout
    else:
        assert "1 posted earlier" in resumed.stdout
    assert servers_of(workspace, batch_id) == [{nntp}] * len(marked)

    assert part_numbers_on(nntp, batch_id) == list(range(1, len(marked) + 1))


def rename_batch(root: Path, old: str, new: str) -> None:
    """Give the copied batch another id, so both copies can reach the same server."""
    db = sqlite3.connect(root / "scrubber.db")
    with db:
        db.execute("PRAGMA foreign_keys = OFF")
        db.execute("UPDATE batches SET id = ? WHERE id = ?", (new, old))
        for table in ("batch_entries", "batch_lists"):
            db.execute(f"UPDATE {table} SET batch_id = ? WHERE batch_id = ?", (new, old))
        db.execute(
            "UPDATE batch_parts SET batch_id = ?, message_id = replace(message_id, ?, ?) "
            "WHERE batch_id = ?",
            (new, old, new, old),
        )
    db.close()


def post_at(ws: Workspace, batch_id: str, server: str, when: datetime) -> list[str]:
    store = open_store(ws)
    work = post.pending(store, batch_id, server_name(server, base=ws.root))
    try:
        post.post_batch(
            store,
            work,
            load_key(ws),
            lambda: open_transport(server, newsgroup=work.batch.newsgroup, base=ws.root),
            now=lambda: when,
        )
    finally:
        store.close()
    return [p.message_id for p in work.parts]


AUTHORED = ("from", "newsgroups", "subject", "message-id", "date", "expires", "content-type")


def test_spool_fed_to_rnews_equals_a_direct_post(
    workspace: Workspace, nntp: str, tmp_path: Path
) -> None:
    rnews = shutil.which("rnews") or require_service("SCRUBBER_TEST_RNEWS", "INN2's rnews")
    batch_id, _ = synthetic_batch(workspace, 5_000)
    twin_root = tmp_path / "twin"
    shutil.copytree(workspace.root, twin_root)
    twin_id = batch_id + "t"
    rename_batch(twin_root, batch_id, twin_id)
    twin = load_workspace(twin_root)
    when = datetime.now(UTC).replace(microsecond=0)

    spool = tmp_path / "spool"
    spooled = post_at(workspace, batch_id, f"spool:{spool}", when)
    for message_id in spooled:
        with (spool / spool_name(message_id)).open("rb") as handle:
            fed = subprocess.run(
                [rnews, "-r", "127.0.0.1"], stdin=handle, capture_output=True, timeout=60
            )
        assert fed.returncode == 0, fed.stderr
    direct = post_at(twin, twin_id, nntp, when)

    conn = nntp_connect(nntp)
    try:
        for via_rnews, via_post in zip(spooled, direct, strict=True):
            r_headers, r_body = fetch_article(conn, via_rnews)
            d_headers, d_body = fetch_article(conn, via_post)
            for name in AUTHORED:
                assert r_headers[name] == d_headers[name].replace(twin_id, batch_id), name
            assert strip_id(r_body, batch_id) == strip_id(d_body, twin_id)
            r_parsed, d_parsed = parse_article(r_body), parse_article(d_body)
            assert r_parsed.tags == d_parsed.tags
            assert r_parsed.meta == dataclasses.replace(d_parsed.meta, batch_id=batch_id)
    finally:
        conn.quit()
    assert batch_row(workspace, batch_id).parts_total == len(spooled) == len(direct)


def strip_id(body: bytes, batch_id: str) -> bytes:
    """The body without its batch id and signature (both differ by construction)."""
    signed = body[: body.rindex(b"\nSignature: ") + 1]
    return signed.replace(batch_id.encode(), b"BATCH")


def test_a_tag_two_addresses_share_is_posted_once(workspace: Workspace, tmp_path: Path) -> None:
    batch_id, tags = synthetic_batch(workspace, 5_000)
    shared = sorted(tags)[1234]
    db = sqlite3.connect(workspace.root / "scrubber.db")
    with db:  # a second address whose tag collides (as two of 450M would, at 8 bytes)
        twin = db.execute(
            "INSERT INTO addresses (canonical) VALUES ('twin@example.test') RETURNING id"
        ).fetchone()[0]
        db.execute(
            "INSERT INTO batch_entries (batch_id, address_id, tag) VALUES (?, ?, ?)",
            (batch_id, twin, shared),
        )
    db.close()
    spool = tmp_path / "spool"
    posted = post_at(workspace, batch_id, f"spool:{spool}", datetime.now(UTC))
    seen = [
        tag
        for message_id in posted
        for tag in parse_article(
            (spool / spool_name(message_id)).read_bytes().split(b"\n\n", 1)[1]
        ).tags
    ]
    assert seen == sorted(tags)


class FailingTransport:
    server = "test:failing"

    def post(self, message_id: str, article: bytes) -> PostStatus:
        raise TransportError("test:failing refused: 441 no")

    def close(self) -> None:
        pass


def renderers() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("render-part")]


@pytest.mark.parametrize("fails", ["connect", "post"])
def test_a_failed_post_stops_rendering_and_marks_nothing(workspace: Workspace, fails: str) -> None:
    batch_id, _ = synthetic_batch(workspace, 90_000, tag_length=16)
    store = open_store(workspace)

    def connect() -> FailingTransport:
        if fails == "connect":
            raise TransportError("cannot reach test:failing: Connection refused")
        return FailingTransport()

    try:
        work = post.pending(store, batch_id, FailingTransport.server)
        with pytest.raises(TransportError):
            post.post_batch(store, work, load_key(workspace), connect)
        assert renderers() == []
        assert servers_of(workspace, batch_id) == [set()] * len(work.parts)
        assert len(work.parts) >= 3
    finally:
        store.close()


def test_a_batch_posted_to_one_server_is_posted_to_others_without_their_password(
    workspace: Workspace, nntp: str, tmp_path: Path
) -> None:
    auth = require_service("SCRUBBER_TEST_NNTP_AUTH", "INN2 with authentication")
    password = urlsplit(auth).password
    assert password
    batch_id, _ = synthetic_batch(workspace, 90_000, tag_length=16)
    first = run_cli("batch", "post", batch_id, "--server", nntp, workspace=workspace.root)
    assert first.returncode == 0, first.stderr
    n = len(parts_of(workspace, batch_id))
    assert n >= 3

    spool = tmp_path / "spool"
    more = ("--server", auth, "--server", f"spool:{spool}", "--server", nntp, "--json")
    again = run_cli("batch", "post", batch_id, *more, workspace=workspace.root)
    assert again.returncode == 0, again.stderr
    assert password not in again.stdout + again.stderr
    doc = json.loads(again.stdout)
    by = {s["server"]: s for s in doc["servers"]}
    inn2, spooled, plain = server_name(auth), f"spool:{spool}", server_name(nntp)
    assert list(by) == [inn2, spooled, plain]  # in the order given
    # The second nnrpd serves the same spool: it has every part already.
    assert [p["result"] for p in by[inn2]["parts"]] == ["duplicate"] * n
    assert [p["result"] for p in by[spooled]["parts"]] == ["posted"] * n
    assert (by[plain]["parts"], by[plain]["already"]) == ([], n)
    assert (doc["posted"], doc["duplicates"], doc["already"]) == (n, n, n)
    assert len(list(spool.iterdir())) == n
    assert servers_of(workspace, batch_id) == [{inn2, spooled, plain}] * n

    shown = run_cli("batch", "show", batch_id, "--json", workspace=workspace.root)
    detail = json.loads(shown.stdout)
    assert detail["servers"] == {inn2: n, spooled: n, plain: n}
    assert [p["server"] for p in detail["parts"][0]["posts"]] == [plain, inn2, spooled]
    table = run_cli("batch", "show", batch_id, workspace=workspace.root).stdout
    assert f"{inn2} ({n}/{n})" in table and password not in table
    with sqlite3.connect(workspace.root / "scrubber.db") as db:
        dump = "\n".join(db.iterdump())
    assert password not in dump and inn2 in dump


def test_a_killed_post_to_several_servers_resumes_what_each_lacks(
    workspace: Workspace, nntp: str, tmp_path: Path
) -> None:
    batch_id, _ = synthetic_batch(workspace, 90_000, tag_length=16)
    spool = f"spool:{tmp_path / 'spool'}"
    first = run_cli("batch", "post", batch_id, "--server", spool, workspace=workspace.root)
    assert first.returncode == 0, first.stderr
    killed = subprocess.run(
        [sys.executable, "-c", KILLER, str(workspace.root), batch_id, nntp, "after-mark"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -9, killed.stderr
    both, n = {spool, server_name(nntp)}, len(parts_of(workspace, batch_id))
    assert servers_of(workspace, batch_id) == [both] + [{spool}] * (n - 1)

    resumed = run_cli(
        "batch", "post", batch_id, "--server", spool, "--server", nntp, workspace=workspace.root
    )
    assert resumed.returncode == 0, resumed.stderr
    assert f"all {n} parts already posted to {spool}" in resumed.stdout
    assert f"{n - 1} posted, 0 already on the server, 1 posted earlier" in resumed.stdout
    assert servers_of(workspace, batch_id) == [both] * n
    # Each part once on the news server.
    assert part_numbers_on(nntp, batch_id) == list(range(1, n + 1))


def test_a_server_that_fails_does_not_stop_the_others(workspace: Workspace, tmp_path: Path) -> None:
    batch_id, _ = synthetic_batch(workspace, 5_000)
    dead = f"nntp://127.0.0.1:{free_port()}"
    spool = tmp_path / "spool"
    result = run_cli(
        "batch",
        "post",
        batch_id,
        "--server",
        dead,
        "--server",
        f"spool:{spool}",
        "--retries",
        "1",
        workspace=workspace.root,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: cannot reach {dead}: Connection refused (gave up after 2 attempts)",
        "error: 1 of 2 servers failed; re-run the same command to post what they lack",
    ]
    assert "1 posted, 0 already on the server, 0 posted earlier" in result.stdout
    assert servers_of(workspace, batch_id) == [{f"spool:{spool}"}]


def test_a_bad_second_server_url_posts_nothing(workspace: Workspace, tmp_path: Path) -> None:
    batch_id, _ = synthetic_batch(workspace, 5_000)
    spool = tmp_path / "spool"
    result = run_cli(
        "batch",
        "post",
        batch_id,
        "--server",
        f"spool:{spool}",
        "--server",
        "http://user:secret@news.example",
        workspace=workspace.root,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: server must be nntp://host, nntps://host or spool:DIR (got scheme 'http')"
    ]
    assert not spool.exists()
    assert servers_of(workspace, batch_id) == [set()]
