"""The NNTP transport against the real INN2: AUTHINFO, errors, duplicates, retries."""

from __future__ import annotations

import secrets
import socket
import threading
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from scrubber.errors import AuthenticationError, TransientTransportError, TransportError
from scrubber.transport import PostStatus, open_transport
from scrubber.transport.nntp import MAX_SEGMENT, NntpTransport
from scrubber.workspace import Workspace
from tests.batch_support import TEST_GROUP, batch_row, fetch_parsed, nntp_connect, synthetic_batch
from tests.support import require_service, run_cli

pytestmark = pytest.mark.inn


@pytest.fixture
def nntp() -> str:
    return require_service("SCRUBBER_TEST_NNTP", "INN2")


@pytest.fixture
def nntp_auth() -> str:
    return require_service("SCRUBBER_TEST_NNTP_AUTH", "INN2 with AUTHINFO (port 1119)")


def without_credentials(url: str) -> str:
    parts = urlsplit(url)
    return f"nntp://{parts.hostname}:{parts.port}"


def small_article(group: str = TEST_GROUP) -> tuple[str, bytes]:
    message_id = f"<t.{secrets.token_hex(8)}@scrubber.test>"
    article = (
        f"From: t@scrubber.test\nNewsgroups: {group}\nSubject: transport test\n"
        f"Message-ID: {message_id}\n\nhello\n.starts with a dot\n"
    ).encode()
    return message_id, article


def test_authinfo_with_credentials_posts(workspace: Workspace, nntp_auth: str) -> None:
    batch_id, tags = synthetic_batch(workspace, 1_000)
    result = run_cli("batch", "post", batch_id, "--server", nntp_auth, workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    assert "scrubber-test" not in result.stdout  # the password is never shown
    conn = nntp_connect(nntp_auth)
    try:
        message_id = f"<dni.{batch_id}.1@{workspace.settings.response_domain}>"
        _, parsed = fetch_parsed(conn, message_id)
    finally:
        conn.quit()
    assert parsed.tags == sorted(tags)


def test_authinfo_missing_or_wrong_fails_clearly_and_marks_nothing(
    workspace: Workspace, nntp_auth: str
) -> None:
    batch_id, _ = synthetic_batch(workspace, 100)
    bare = without_credentials(nntp_auth)
    wrong = bare.replace("nntp://", "nntp://scrubber:wrong@")
    for server, expected in ((bare, "requires authentication"), (wrong, "refused the credentials")):
        result = run_cli("batch", "post", batch_id, "--server", server, workspace=workspace.root)
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0]
        assert "wrong" not in lines[0]
    shown = run_cli("batch", "show", batch_id, "--json", workspace=workspace.root)
    assert '"parts_posted": 0' in shown.stdout


def test_missing_group_is_a_clear_error(workspace: Workspace, nntp: str) -> None:
    batch_id, _ = synthetic_batch(workspace, 100, newsgroup="alt.dni.no-such-group")
    result = run_cli("batch", "post", batch_id, "--server", nntp, workspace=workspace.root)
    assert result.returncode == 1
    assert "newsgroup alt.dni.no-such-group does not exist" in result.stderr
    assert batch_row(workspace, batch_id).parts_total == 1


def test_unreachable_server_is_retried_then_a_clear_error(workspace: Workspace) -> None:
    batch_id, _ = synthetic_batch(workspace, 100)
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]  # nothing listens here once closed
    result = run_cli(
        "batch",
        "post",
        batch_id,
        "--server",
        f"nntp://127.0.0.1:{port}",
        "--retries",
        "1",
        workspace=workspace.root,
    )
    assert result.returncode == 1
    assert result.stderr.strip() == (
        f"error: cannot reach nntp://127.0.0.1:{port}: Connection refused "
        "(gave up after 2 attempts)"
    )


@pytest.fixture
def busy_server() -> Iterator[tuple[int, list[int]]]:
    """A real socket that greets every client with 400 (try later) and counts them."""
    server = socket.create_server(("127.0.0.1", 0))
    accepted: list[int] = []

    def serve() -> None:
        while True:
            try:
                client, _ = server.accept()
            except OSError:
                return
            accepted.append(1)
            with client:
                client.sendall(b"400 too busy, try later\r\n")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    yield server.getsockname()[1], accepted
    server.close()
    thread.join(timeout=5)


def test_transient_4xx_is_retried_with_backoff(busy_server: tuple[int, list[int]]) -> None:
    port, accepted = busy_server
    with pytest.raises(TransientTransportError) as error:
        open_transport(f"nntp://127.0.0.1:{port}", newsgroup=TEST_GROUP, retries=3, backoff=0.01)
    assert len(accepted) == 4
    assert "400 too busy, try later (gave up after 4 attempts)" in str(error.value)


def test_duplicate_message_id_counts_as_posted(nntp: str) -> None:
    message_id, article = small_article()
    transport = open_transport(nntp, newsgroup=TEST_GROUP)
    try:
        assert transport.post(message_id, article) is PostStatus.POSTED
        assert transport.post(message_id, article) is PostStatus.DUPLICATE
    finally:
        transport.close()
    again = open_transport(nntp, newsgroup=TEST_GROUP)
    try:
        assert again.post(message_id, article) is PostStatus.DUPLICATE
    finally:
        again.close()


def test_dot_stuffing_survives_the_round_trip(nntp: str) -> None:
    message_id, article = small_article()
    transport = open_transport(nntp, newsgroup=TEST_GROUP)
    transport.post(message_id, article)
    transport.close()
    conn = nntp_connect(nntp)
    try:
        _, info = conn.body(message_id)
    finally:
        conn.quit()
    assert info.lines == [b"hello", b".starts with a dot"]


def test_rejected_article_shows_the_servers_text(nntp: str) -> None:
    message_id, article = small_article()
    broken = article.replace(b"From: t@scrubber.test\n", b"")
    transport = open_transport(nntp, newsgroup=TEST_GROUP, retries=3, backoff=0.01)
    try:
        with pytest.raises(TransportError) as error:
            transport.post(message_id, broken)
    finally:
        transport.close()
    assert not isinstance(error.value, (TransientTransportError, AuthenticationError))
    assert str(error.value).startswith(f"{nntp} refused: 441 ")


def test_starttls_is_used_when_the_server_offers_it(nntp: str) -> None:
    transport = open_transport(nntp, newsgroup=TEST_GROUP)
    try:
        assert isinstance(transport, NntpTransport) and transport.encrypted
        message_id, article = small_article()
        assert transport.post(message_id, article) is PostStatus.POSTED
    finally:
        transport.close()


@pytest.mark.parametrize("service", ["SCRUBBER_TEST_NNTP", "SCRUBBER_TEST_NNTPS"])
def test_segments_are_small_and_sent_at_once(service: str) -> None:
    """Set before connect() (after it, Linux keeps the loopback's 64 KiB MSS), so
    a TLS POST to INN on loopback does not wait 200 ms for its delayed ACK."""
    transport = open_transport(require_service(service, "INN2"), newsgroup=TEST_GROUP)
    try:
        assert isinstance(transport, NntpTransport) and transport.encrypted
        sock = transport._conn.sock
        assert 0 < sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG) <= MAX_SEGMENT
        assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
    finally:
        transport.close()


def test_nntps_posts_a_batch_over_implicit_tls(workspace: Workspace) -> None:
    nntps = require_service("SCRUBBER_TEST_NNTPS", "INN2 nnrpd with implicit TLS")
    batch_id, tags = synthetic_batch(workspace, 2_000)
    result = run_cli("batch", "post", batch_id, "--server", nntps, workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    assert batch_row(workspace, batch_id).parts_total == 1
    conn = nntp_connect(require_service("SCRUBBER_TEST_NNTP", "INN2"))
    try:
        _, parsed = fetch_parsed(conn, f"<dni.{batch_id}.1@{workspace.settings.response_domain}>")
    finally:
        conn.quit()
    assert parsed.tags == sorted(tags)
