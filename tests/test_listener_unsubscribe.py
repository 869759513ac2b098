"""One-click (RFC 8058) and mailto (RFC 2369) unsubscribes against a real
listener subprocess: every answer over real sockets, the ledger read back.

The listener serves under the base URL's path prefix, and the URLs come
from `scrubber unsubscribe header`, so the routes and the headers agree.
"""

from __future__ import annotations

import dataclasses
import re
import smtplib
import socket
import sqlite3
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scrubber import ledger, lists, unsubscribe
from scrubber.config import Settings
from scrubber.store.models import Address, Suppression
from scrubber.workspace import Workspace, init_workspace, open_store
from tests.listener_support import Listener, start_listener
from tests.support import free_port, run_cli

DOMAIN = "shop.example"
PREFIX = "/dni-proxy"
ONE_CLICK = b"List-Unsubscribe=One-Click"
FORM = "application/x-www-form-urlencoded"
ADDRESSES = [f"reader{n}@example.com" for n in range(12)]


@dataclass
class Served:
    ws: Workspace
    listener: Listener
    base: str  # the public base URL, prefix included

    def header_urls(self, address: str) -> tuple[str, str]:
        """The https-or-http URL and the mailto address `unsubscribe header` prints."""
        shown = run_cli("unsubscribe", "header", address, "--list", "news", workspace=self.ws.root)
        assert shown.returncode == 0, shown.stderr
        found = re.search(r"List-Unsubscribe: <([^>]+)>, <mailto:([^>]+)>", shown.stdout)
        assert found is not None, shown.stdout
        return found.group(1), found.group(2)

    def token(self, address: str) -> str:
        url, mailto = self.header_urls(address)
        token = url.rsplit("/", 1)[1]
        assert mailto == f"unsubscribe-{token}@{DOMAIN}"
        return token


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    root = tmp_path_factory.mktemp("unsubscribe")
    port = free_port()
    base = f"http://127.0.0.1:{port}{PREFIX}"
    ws = init_workspace(root / "ws", Settings(response_base_url=base, response_domain=DOMAIN))
    source = root / "news.txt"
    source.write_text("\n".join(ADDRESSES) + "\n", encoding="utf-8")
    with open_store(ws) as store:
        lists.import_files(store, "news", [source], rejects_path=root / "rejects.csv")
    listener = start_listener(ws.root, "--http", f"127.0.0.1:{port}")
    yield Served(ws, listener, base)
    assert listener.stop() == 0, listener.log()
    assert "Traceback" not in listener.log()


def call(
    url: str, body: bytes | None = None, *, method: str | None = None, **headers: str
) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, data=body, method=method, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, dict(response.headers), response.read()
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers), error.read()


def ledger_rows(ws: Workspace) -> dict[str, ledger.Row]:
    with open_store(ws) as store:
        return {row.canonical: row for row in ledger.rows(store)}


def stored_counts(ws: Workspace) -> tuple[int, int]:
    with open_store(ws) as store, store.read() as session:
        return (
            int(session.scalar(select(func.count()).select_from(Suppression)) or 0),
            int(session.scalar(select(func.count()).select_from(Address)) or 0),
        )


def metric(served: Served, name: str, **labels: str) -> float:
    _, _, body = call(f"{served.base}/metrics")
    shown = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    pattern = re.escape(f"{name}{{{shown}}}" if labels else name) + r" ([0-9.e+]+)"
    found = re.search(pattern, body.decode())
    return float(found.group(1)) if found else 0.0


def test_one_click_post_suppresses_after_commit_and_replays_change_nothing(
    served: Served,
) -> None:
    address = ADDRESSES[0]
    url, _ = served.header_urls(address)
    assert url.startswith(f"{served.base}/u/")
    # As Gmail sends it: urlencoded, Content-Length 26, no cookie, no auth.
    status, headers, body = call(url, ONE_CLICK, **{"Content-Type": FORM})
    assert (status, body) == (200, b"")
    assert headers["Content-Length"] == "0"
    assert "Set-Cookie" not in headers and "Location" not in headers
    row = ledger_rows(served.ws)[address]  # committed before the answer
    token = url.rsplit("/", 1)[1]
    assert (row.channel, row.reason, row.origin) == ("one-click", "unsubscribe", "news")
    assert (row.client, row.evidence) == ("127.0.0.0/24", token)
    assert row.request_id is not None and re.fullmatch(r"[0-9a-f]{16}", row.request_id)
    before = stored_counts(served.ws)
    again = call(url, ONE_CLICK, **{"Content-Type": FORM})
    assert (again[0], again[2]) == (200, b"")  # idempotent
    assert stored_counts(served.ws) == before
    assert ledger_rows(served.ws)[address] == row  # the first record stands
    assert metric(served, "scrubber_unsubscribes_total", channel="one-click", outcome="repeated")


def test_one_click_as_multipart_form_data(served: Served) -> None:
    address = ADDRESSES[1]
    url, _ = served.header_urls(address)
    body = (
        b"--b0undary\r\n"
        b'Content-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
        b"One-Click\r\n"
        b"--b0undary--\r\n"
    )
    status, _, answer = call(
        url, body, **{"Content-Type": "multipart/form-data; boundary=b0undary"}
    )
    assert (status, answer) == (200, b"")
    assert ledger_rows(served.ws)[address].channel == "one-click"


def test_get_shows_a_button_and_changes_nothing(served: Served) -> None:
    url, _ = served.header_urls(ADDRESSES[2])
    before = stored_counts(served.ws)
    for method in ("GET", "HEAD", "GET"):  # a link scanner, twice
        status, headers, body = call(url, method=method)
        assert status == 200
        assert headers["Content-Type"] == "text/html; charset=utf-8"
        assert "default-src 'none'" in headers["Content-Security-Policy"]
        assert "Set-Cookie" not in headers
    assert '<form method="post">' in body.decode()
    assert 'name="List-Unsubscribe" value="One-Click"' in body.decode()
    assert "<script" not in body.decode() and "http" not in body.decode()
    assert stored_counts(served.ws) == before
    assert ADDRESSES[2] not in ledger_rows(served.ws)


def test_bad_requests_get_their_4xx_and_write_nothing(served: Served) -> None:
    token = served.token(ADDRESSES[3])
    url = f"{served.base}/u/{token}"
    secret = unsubscribe.load_secret(served.ws.root)
    who = unsubscribe.parse_token(secret, token)
    forged = unsubscribe.make_token(b"f" * 32, who)
    tampered = token[:10] + ("a" if token[10] != "a" else "b") + token[11:]
    commits = metric(served, "scrubber_commit_seconds_count")
    refused = metric(served, "scrubber_unsubscribes_total", channel="one-click", outcome="refused")
    before = stored_counts(served.ws)
    cases: list[tuple[str, bytes | None, dict[str, str], int]] = [
        (url, b"foo=bar", {"Content-Type": FORM}, 400),  # no List-Unsubscribe key
        (url, b"List-Unsubscribe=Yes", {"Content-Type": FORM}, 400),
        (url, b"", {"Content-Type": FORM}, 400),
        (url, ONE_CLICK, {"Content-Type": "text/plain"}, 415),
        (url, b'{"List-Unsubscribe": "One-Click"}', {"Content-Type": "application/json"}, 415),
        (url, ONE_CLICK, {"Content-Type": "multipart/form-data"}, 400),  # no boundary
        (url, b"--x\r\nbroken", {"Content-Type": "multipart/form-data; boundary=x"}, 400),
        (url, b"x" * 70_000, {"Content-Type": FORM}, 413),
        (url, ONE_CLICK, {"Content-Type": FORM, "Expect": "something"}, 417),
        (f"{served.base}/u/{forged}", ONE_CLICK, {"Content-Type": FORM}, 404),
        (f"{served.base}/u/{tampered}", ONE_CLICK, {"Content-Type": FORM}, 404),
        (f"{served.base}/u/nonsense", ONE_CLICK, {"Content-Type": FORM}, 404),
        (f"{served.base}/u/{forged}", None, {}, 404),  # GET of a forged link
        # Not served outside the base URL's path.
        (url.replace(PREFIX, ""), ONE_CLICK, {"Content-Type": FORM}, 404),
    ]
    for target, body, headers, expected in cases:
        status, _, answer = call(target, body, **headers)
        assert status == expected, (target, body, headers, answer)
    assert stored_counts(served.ws) == before
    assert ADDRESSES[3] not in ledger_rows(served.ws)
    # Forged tokens never reached the writer: refused by their MAC alone.
    assert metric(served, "scrubber_commit_seconds_count") == commits
    after = metric(served, "scrubber_unsubscribes_total", channel="one-click", outcome="refused")
    assert after == refused + 4
    assert "Traceback" not in served.listener.log()


def test_a_token_for_a_list_that_is_gone_is_still_honoured(served: Served) -> None:
    """Suppression is global: the person asked to hear no more, whatever the list."""
    secret = unsubscribe.load_secret(served.ws.root)
    who = unsubscribe.parse_token(secret, served.token(ADDRESSES[4]))
    gone = unsubscribe.make_token(secret, dataclasses.replace(who, list_id=who.list_id + 99))
    status, _, _ = call(f"{served.base}/u/{gone}", ONE_CLICK, **{"Content-Type": FORM})
    assert status == 200
    assert ledger_rows(served.ws)[ADDRESSES[4]].origin == f"list #{who.list_id + 99} (gone)"
    # An address no longer in the database cannot be suppressed: 404, no write.
    before = stored_counts(served.ws)
    nobody = unsubscribe.make_token(secret, dataclasses.replace(who, address_id=10**9))
    status, _, _ = call(f"{served.base}/u/{nobody}", ONE_CLICK, **{"Content-Type": FORM})
    assert status == 404
    assert stored_counts(served.ws) == before


def send_mail(served: Served, recipient: str, body: str) -> dict[str, tuple[int, bytes]]:
    with smtplib.SMTP("127.0.0.1", served.listener.smtp_port, timeout=30) as client:
        message = f"From: someone@example.net\r\nTo: {recipient}\r\nSubject: x\r\n\r\n{body}\r\n"
        return client.sendmail("someone@example.net", [recipient], message)


def test_mailto_suppresses_whatever_the_body(served: Served) -> None:
    _, mailto = served.header_urls(ADDRESSES[5])
    with smtplib.SMTP("127.0.0.1", served.listener.smtp_port, timeout=30) as client:
        client.ehlo("mx.example.net")
        client.mail("someone@example.net")
        assert client.rcpt(mailto)[0] == 250
        code, reply = client.data(b"Subject: please stop\r\n\r\nanything at all\r\n")
    assert (code, reply) == (250, b"2.0.0 Unsubscribed")
    row = ledger_rows(served.ws)[ADDRESSES[5]]  # committed before the 250
    token = mailto.split("@")[0].removeprefix("unsubscribe-")
    assert (row.channel, row.reason, row.origin, row.evidence) == (
        "mailto",
        "unsubscribe",
        "news",
        token,
    )
    before = stored_counts(served.ws)
    assert send_mail(served, mailto, "again") == {}  # a replay: 250, no second row
    # A mail system may fold the local part's case: still the same token.
    assert send_mail(served, mailto.upper(), "") == {}
    assert stored_counts(served.ws) == before
    assert metric(served, "scrubber_unsubscribes_total", channel="mailto", outcome="suppressed")


def test_mailto_with_a_forged_token_is_refused_at_rcpt(served: Served) -> None:
    secret = unsubscribe.load_secret(served.ws.root)
    who = unsubscribe.parse_token(secret, served.token(ADDRESSES[6]))
    before = stored_counts(served.ws)
    for token in (unsubscribe.make_token(b"f" * 32, who), "x" * 47, "short"):
        with smtplib.SMTP("127.0.0.1", served.listener.smtp_port, timeout=30) as client:
            client.ehlo("mx.example.net")
            client.mail("someone@example.net")
            code, reply = client.rcpt(f"unsubscribe-{token}@{DOMAIN}")
        assert (code, reply) == (550, b"5.1.1 Unknown unsubscribe address")
    assert stored_counts(served.ws) == before
    assert ADDRESSES[6] not in ledger_rows(served.ws)


def test_a_flood_of_forged_links_is_rate_limited_like_worthless_proofs(tmp_path: Path) -> None:
    """Each forged token charges its client one worthless proof: once its
    bucket (a minute's worth, at least 1,000) is spent, the client is answered
    429 before its request is read, a real unsubscribe of its included."""
    import asyncio

    import aiohttp

    ws = init_workspace(tmp_path / "ws", Settings(response_domain=DOMAIN))
    source = tmp_path / "news.txt"
    source.write_text(f"{ADDRESSES[0]}\n", encoding="utf-8")
    with open_store(ws) as store:
        lists.import_files(store, "news", [source], rejects_path=tmp_path / "rejects.csv")
        secret = unsubscribe.load_secret(ws.root)
        who = unsubscribe.subscriber(store, ADDRESSES[0], "news", secret=secret)
    forged = unsubscribe.make_token(b"f" * 32, who)
    real = unsubscribe.make_token(secret, who)
    listener = start_listener(
        ws.root, "--client-rate", "1", "--read-timeout", "1", channels=("http",)
    )
    slow = socket.create_connection(("127.0.0.1", listener.ports["http"]), timeout=30)
    head = f"POST /u/{real} HTTP/1.1\r\nHost: x\r\nContent-Type: {FORM}\r\n"
    slow.sendall(f"{head}Content-Length: 26\r\n\r\n".encode())  # and no body
    assert slow.recv(4096).startswith(b"HTTP/1.1 408 ")
    slow.close()

    async def flood() -> tuple[list[int], int]:
        async with aiohttp.ClientSession() as http:
            statuses = []
            for _ in range(1100):
                async with http.get(f"{listener.http}/u/{forged}") as response:
                    statuses.append(response.status)
                if statuses[-1] == 429:
                    break
            form = {"Content-Type": FORM}
            async with http.post(f"{listener.http}/u/{real}", data=ONE_CLICK, headers=form) as r:
                return statuses, r.status

    try:
        statuses, last = asyncio.run(flood())
    finally:
        assert listener.stop() == 0, listener.log()
    assert statuses[-1] == 429 and set(statuses[:-1]) == {404}
    assert 1000 <= len(statuses) <= 1002
    assert last == 429
    assert stored_counts(ws) == (0, 1)
    assert "Traceback" not in listener.log()


def test_a_locked_database_is_a_temporary_failure_never_an_acknowledgement(
    served: Served,
) -> None:
    """While the writer cannot commit, one-click answers 503 (Retry-After) and
    mailto 451; nothing is stored, and the same request succeeds afterwards."""
    url, mailto = served.header_urls(ADDRESSES[7])
    client = smtplib.SMTP("127.0.0.1", served.listener.smtp_port, timeout=30)
    client.ehlo("mx.example.net")
    client.mail("someone@example.net")
    assert client.rcpt(mailto)[0] == 250  # the MAC alone: no database needed
    before = stored_counts(served.ws)
    db = sqlite3.connect(served.ws.root / "scrubber.db", isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    try:
        status, headers, _ = call(url, ONE_CLICK, **{"Content-Type": FORM})
        assert (status, headers["Retry-After"]) == (503, "5")
        assert client.data(b"Subject: stop\r\n\r\nplease\r\n")[0] == 451
    finally:
        db.execute("ROLLBACK")
        db.close()
    assert stored_counts(served.ws) == before
    assert ADDRESSES[7] not in ledger_rows(served.ws)
    client.mail("someone@example.net")
    assert client.rcpt(mailto)[0] == 250
    assert client.data(b"Subject: stop\r\n\r\nplease\r\n")[0] == 250
    client.quit()
    assert ledger_rows(served.ws)[ADDRESSES[7]].channel == "mailto"
    assert call(url, ONE_CLICK, **{"Content-Type": FORM})[0] == 200  # and a repeat


def test_listen_refuses_a_token_secret_others_can_read(tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws", Settings(response_domain=DOMAIN))
    secret = ws.root / unsubscribe.SECRET_FILE
    unsubscribe.load_secret(ws.root)
    secret.chmod(0o644)
    result = run_cli("listen", "--smtp", "off", "--http", "127.0.0.1:0", workspace=ws.root)
    assert result.returncode != 0
    assert result.stderr.strip() == (
        f"error: key {secret} is readable by others (mode 0644); run 'chmod 600 {secret}'"
    )
