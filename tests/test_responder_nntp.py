"""The responder reading a real INN2 server: mixed-in junk, tampered parts,
a group that does not exist, a server that is down, and --watch."""

from __future__ import annotations

import json
import secrets
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from scrubber.keys import OperatorKey
from scrubber.responder.ping import PingConfig
from scrubber.responder.run import run_once
from scrubber.responder.store import ResponderStore, add_addresses, set_mark
from scrubber.transport.nntp import NntpSource, nntplib
from tests.responder_support import BatchSpec, SenderEndpoint, batch_articles, part_holding
from tests.support import require_service, run_cli, wait_until

pytestmark = pytest.mark.inn

GROUP = "alt.dni.test"
ALICE = "alice@example.org"


@pytest.fixture
def server() -> str:
    return require_service("SCRUBBER_TEST_NNTP", "INN2 news server")


@pytest.fixture
def store(tmp_path: Path, server: str) -> Iterator[ResponderStore]:
    """A responder that starts reading the test group from its current end."""
    opened = ResponderStore.open(tmp_path / "responder.db")
    source = NntpSource(server, GROUP)
    try:
        _, mark = source.overview(None)
    finally:
        source.close()
    if mark is not None:
        set_mark(opened, source.name, mark)
    yield opened
    opened.close()


def post(server: str, articles: list[bytes]) -> None:
    host, port = server.removeprefix("nntp://").split(":")
    conn = nntplib.NNTP(host, int(port), readermode=True)
    try:
        for raw in articles:
            conn.post(
                raw.replace(
                    b"Newsgroups: alt.dni.batches", f"Newsgroups: {GROUP}".encode()
                ).splitlines()
            )
    finally:
        conn.quit()


def junk(subject: str, body: bytes = b"hello\n") -> bytes:
    head = (
        f"From: junk@example.test\nNewsgroups: {GROUP}\nSubject: {subject}\n"
        f"Message-ID: <junk.{secrets.token_hex(8)}@example.test>\n\n"
    )
    return head.encode() + body


def test_junk_and_tampered_parts_in_the_group_are_skipped_and_the_real_batch_pinged(
    server: str, store: ResponderStore, key: OperatorKey, sender: SenderEndpoint
) -> None:
    listed = [f"user{i}@example.net" for i in range(30)]
    add_addresses(store, listed)
    spec = BatchSpec(key, sender.base)
    articles = batch_articles(spec, listed, filler=3000, parts=3)
    where = {a: part_holding(spec, articles, a) for a in listed}
    raw = bytearray(articles[1])
    cut = raw.index(b"\n\n", raw.index(b"Digest: ")) + 2
    raw[cut + 3] = ord("A") if raw[cut + 3] != ord("A") else ord("B")
    articles[1] = bytes(raw)
    fake = f"[DNI] batch zz{secrets.token_hex(4)} part 1/1 range 0000000000000000-ffffffffffffffff"
    post(server, [junk("lunch?"), junk(fake, b"Scheme: nonsense\n"), *articles])

    result = run_once(
        store,
        lambda: NntpSource(server, GROUP),
        ping_config=PingConfig(retries=0, allow_private_http=True),
    )

    assert result.error is None and result.scan is not None
    assert result.scan.articles == 5
    reasons = result.scan.skipped
    assert any("zz" in r and "Signature" in r for r in reasons)
    assert any("part 2" in r and "signature does not verify" in r for r in reasons)
    sent = sorted(p for request in sender.pings for p in request)
    assert sent == sorted(spec.proof(a) for a, part in where.items() if part != 2)


def test_group_that_does_not_exist_is_a_one_line_error(server: str, tmp_path: Path) -> None:
    result = run_cli(
        "responder", "--db", str(tmp_path / "r.db"), "scan", "--server", server,
        "--group", "alt.dni.no-such-group",
    )  # fmt: skip
    assert result.returncode == 1
    assert (
        result.stderr.strip() == "error: group alt.dni.no-such-group does not exist on the server"
    )


def test_server_down_keeps_the_mark_and_still_sends_what_is_owed(
    server: str, store: ResponderStore, key: OperatorKey, sender: SenderEndpoint
) -> None:
    add_addresses(store, [ALICE])
    spec = BatchSpec(key, sender.base)
    post(server, batch_articles(spec, [ALICE], parts=1))
    sender.fail_pings = 10
    no_retry = PingConfig(retries=0, use_smtp=False, allow_private_http=True)
    first = run_once(store, lambda: NntpSource(server, GROUP), ping_config=no_retry)
    assert first.scan is not None and first.scan.matches == 1 and first.pings.pending == 1

    sender.fail_pings = 0
    down = run_once(store, lambda: NntpSource("nntp://127.0.0.1:9", GROUP), ping_config=no_retry)
    assert down.error is not None and "unreachable" in down.error
    assert down.pings.delivered == 1 and sender.pings == [[spec.proof(ALICE)]]


def test_watch_picks_up_batches_posted_while_it_runs(
    server: str, store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, [ALICE])
    db = str(store.engine.url.database)
    command = [
        sys.executable, "-m", "scrubber", "responder", "--db", db, "scan",
        "--server", server, "--group", GROUP, "--watch", "1", "--json", "--ping-delay", "0",
        "--allow-private",
    ]  # fmt: skip
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")))  # type: ignore[union-attr]
    reader.start()

    def runs() -> int:  # each run prints one JSON document; it ends with "}" alone
        return sum(line == "}\n" for line in list(lines))

    try:
        assert wait_until(lambda: runs() >= 1, timeout=60)
        spec = BatchSpec(key, sender.base)
        post(server, batch_articles(spec, [ALICE], parts=2))
        assert wait_until(lambda: bool(sender.pings), timeout=60)
        seen = runs()
        # Two more rounds: they must not ping again.
        assert wait_until(lambda: runs() >= seen + 2, timeout=60)
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(30)
        reader.join(10)  # the reader alone drains stdout
        assert proc.stdout is not None and proc.stderr is not None
        err = proc.stderr.read()
        proc.stdout.close()
        proc.stderr.close()
    assert sender.pings == [[spec.proof(ALICE)]], err
    documents = json.loads("[" + "".join(lines).replace("}\n{", "},{") + "]")
    assert sum(d["pings"]["delivered"] for d in documents) == 1
    assert proc.returncode == 130 and "Traceback" not in err


def test_credentials_from_the_url_and_a_clear_error_without_them(tmp_path: Path) -> None:
    url = require_service("SCRUBBER_TEST_NNTP_AUTH", "INN2 with AUTHINFO")
    parts = urlsplit(url)
    bare = f"nntp://{parts.hostname}:{parts.port}"
    db = ["responder", "--db", str(tmp_path / "r.db")]
    denied = run_cli(*db, "scan", "--server", bare, "--group", GROUP)
    assert denied.returncode == 1
    assert denied.stderr.strip().endswith("(give credentials as nntp://USER:PASS@HOST)")
    wrong = run_cli(*db, "scan", "--server", f"nntp://x:y@{parts.hostname}:{parts.port}")
    assert wrong.returncode == 1 and "refused the login: 481" in wrong.stderr
    ok = run_cli(*db, "scan", "--server", url, "--group", GROUP)
    assert ok.returncode == 0, ok.stderr
    # Nothing protected: the overview is read, no body is fetched.
    assert "0 bodies fetched" in ok.stdout and "0 hashed" in ok.stdout
