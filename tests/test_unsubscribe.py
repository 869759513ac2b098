"""Unsubscribe tokens, List-Unsubscribe headers, stamping and DKIM coverage.

The headers are judged by listunsub (a parser and RFC 2369/8058 checker)
and the signature by dkimpy's own verifier.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import hmac
import secrets
import stat
import struct
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import dkim
import listunsub
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from scrubber import lists, unsubscribe
from scrubber.config import Settings
from scrubber.errors import KeyFileError, UnsubscribeTokenError
from scrubber.unsubscribe import Subscriber
from scrubber.workspace import Workspace, init_workspace, open_store
from tests.support import run_cli

MESSAGE = (
    b"From: News <news@shop.example>\r\n"
    b"To: Jane <Jane@Example.com>\r\n"
    b"Subject: March offers\r\n"
    b"Date: Sat, 01 Mar 2025 10:00:00 +0000\r\n"
    b"Message-ID: <m1@shop.example>\r\n"
    b"\r\n"
    b"Hello Jane,\r\nour offers.\r\n"
)


@pytest.fixture
def ws(tmp_path: Path) -> Workspace:
    settings = Settings(
        response_base_url="https://dni.shop.example", response_domain="shop.example"
    )
    workspace = init_workspace(tmp_path / "ws", settings)
    source = tmp_path / "l.txt"
    source.write_text("jane@example.com\nbob@example.com\n")
    with open_store(workspace) as store:
        lists.import_files(store, "news", [source], rejects_path=tmp_path / "r.csv")
    return workspace


def test_token_round_trip_and_forgeries(tmp_path: Path) -> None:
    secret = unsubscribe.load_secret(tmp_path)
    path = tmp_path / unsubscribe.SECRET_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert unsubscribe.load_secret(tmp_path) == secret  # made once
    who = Subscriber(3, 12345, b"abc")
    token = unsubscribe.make_token(secret, who)
    assert len(token) == unsubscribe.TOKEN_LENGTH and token == token.lower()
    assert len(f"unsubscribe-{token}") <= 64  # fits a local part (RFC 5321)
    assert unsubscribe.parse_token(secret, token) == who
    assert unsubscribe.parse_token(secret, token.upper()) == who
    forged = unsubscribe.make_token(b"x" * 32, who)
    middle = token[:20] + ("a" if token[20] != "a" else "b") + token[21:]
    for bad in (forged, middle):
        with pytest.raises(UnsubscribeTokenError, match="not issued here"):
            unsubscribe.parse_token(secret, bad)
    last = "abcdefghijklmnopqrstuvwxyz234567"
    other_spelling = token[:-1] + last[last.index(token[-1]) ^ 1]  # only ignored bits differ
    for bad in (other_spelling, "", "short", token + "a", "1" * unsubscribe.TOKEN_LENGTH, "é" * 52):
        with pytest.raises(UnsubscribeTokenError, match="malformed"):
            unsubscribe.parse_token(secret, bad)
    with pytest.raises(ValueError, match="address check"):
        unsubscribe.make_token(secret, Subscriber(3, 12345))


def v1_token(secret: bytes, list_id: int, address_id: int) -> str:
    """A token as version 1 made them (no address check): still in sent mail."""
    body = struct.pack(">BIQ", 1, list_id, address_id)
    tag = hmac.new(secret, body, hashlib.sha256).digest()[:16]
    return base64.b32encode(body + tag).decode().rstrip("=").lower()


def test_version_1_tokens_are_still_honoured(tmp_path: Path) -> None:
    secret = unsubscribe.load_secret(tmp_path)
    token = v1_token(secret, 3, 12345)
    assert len(token) == unsubscribe.V1_TOKEN_LENGTH
    assert unsubscribe.parse_token(secret, token) == Subscriber(3, 12345, None)
    with pytest.raises(UnsubscribeTokenError, match="not issued here"):
        unsubscribe.parse_token(secret, v1_token(b"x" * 32, 3, 12345))


def test_a_secret_others_can_read_is_refused(tmp_path: Path) -> None:
    unsubscribe.load_secret(tmp_path)
    (tmp_path / unsubscribe.SECRET_FILE).chmod(0o644)
    with pytest.raises(KeyFileError, match="chmod 600"):
        unsubscribe.load_secret(tmp_path)


def test_a_secret_being_made_is_never_read_half_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two listeners starting at once on a new workspace: the second must not
    read the first's file before its bytes are in (it did: "must hold 32
    bytes, not 0"). Each gets the one secret that won, mode 0600, and no
    temporary file is left."""
    real = secrets.token_bytes

    def slow(count: int) -> bytes:  # the window between creating and writing, widened
        time.sleep(0.3)
        return real(count)

    monkeypatch.setattr(unsubscribe.secrets, "token_bytes", slow)
    with ThreadPoolExecutor(2) as pool:
        first = pool.submit(unsubscribe.load_secret, tmp_path)
        time.sleep(0.1)
        second = pool.submit(unsubscribe.load_secret, tmp_path)
        made = {first.result(), second.result()}
    path = tmp_path / unsubscribe.SECRET_FILE
    assert made == {path.read_bytes()} and len(path.read_bytes()) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [p.name for p in path.parent.iterdir()] == [path.name]


def _fields(ws: Workspace, address: str = "Jane@Example.com") -> dict[str, str]:
    secret = unsubscribe.load_secret(ws.root)
    with open_store(ws) as store:
        who = unsubscribe.subscriber(store, address, "news", secret=secret)
    token = unsubscribe.make_token(secret, who)
    return unsubscribe.headers(token, ws.settings.response_base_url, ws.settings.response_domain)


def test_headers_are_compliant_by_listunsub(ws: Workspace) -> None:
    fields = _fields(ws)
    parsed = listunsub.parse_header(fields["List-Unsubscribe"], strict=True)
    https, mailto = parsed.uris
    assert https.startswith("https://dni.shop.example/u/")
    assert mailto.startswith("mailto:unsubscribe-") and mailto.endswith("@shop.example")
    assert "jane" not in fields["List-Unsubscribe"].lower()
    assert listunsub.audit(fields["List-Unsubscribe"], fields["List-Unsubscribe-Post"]) == []
    assert listunsub.is_one_click(fields["List-Unsubscribe-Post"])


def _dkim_key(tmp_path: Path) -> tuple[Path, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    path = tmp_path / "dkim.pem"
    path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    path.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return path, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_stamp_adds_the_fields_and_dkim_covers_them(ws: Workspace, tmp_path: Path) -> None:
    key_path, record = _dkim_key(tmp_path)
    key = unsubscribe.DkimKey.load(key_path, "s1", "shop.example")
    stamped = unsubscribe.stamp(MESSAGE, _fields(ws), key)
    assert stamped.endswith(MESSAGE)  # the message itself untouched

    def dns(name: bytes, timeout: int = 5) -> bytes:
        assert name == b"s1._domainkey.shop.example."
        return record

    assert dkim.verify(stamped, dnsfunc=dns)
    signature = (
        stamped.split(b"\r\nList-Unsubscribe:", 1)[0].decode().removeprefix("DKIM-Signature: ")
    )
    assert listunsub.dkim_covers(signature)
    parsed = dkim.DKIM(stamped)
    assert parsed.verify(dnsfunc=dns)
    # Tampering with the one-click URL breaks the signature.
    assert not dkim.verify(stamped.replace(b"/u/", b"/x/"), dnsfunc=dns)


def test_stamp_refuses_a_message_that_has_the_fields(ws: Workspace) -> None:
    fields = _fields(ws)
    once = unsubscribe.stamp(MESSAGE, fields)
    with pytest.raises(Exception, match="already has List-Unsubscribe"):
        unsubscribe.stamp(once, fields)


def test_cli_header_and_stamp_as_a_mailer_filter(ws: Workspace, tmp_path: Path) -> None:
    shown = run_cli(
        "unsubscribe", "header", "jane@example.com", "--list", "news", workspace=ws.root
    )
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].startswith("List-Unsubscribe: <https://dni.shop.example/u/")
    assert lines[1] == "List-Unsubscribe-Post: List-Unsubscribe=One-Click"
    key_path, _ = _dkim_key(tmp_path)
    stamped = run_cli(
        "unsubscribe",
        "stamp",
        "--list",
        "news",
        "--dkim-key",
        str(key_path),
        workspace=ws.root,
        stdin=MESSAGE.decode(),
    )
    assert stamped.returncode == 0, stamped.stderr
    assert stamped.stdout.startswith("DKIM-Signature:")
    assert "d=shop.example" in stamped.stdout
    unknown = run_cli(
        "unsubscribe", "header", "nobody@example.com", "--list", "news", workspace=ws.root
    )
    assert unknown.returncode == 1 and "nobody" not in unknown.stderr
    many = run_cli(
        "unsubscribe",
        "stamp",
        "--list",
        "news",
        workspace=ws.root,
        stdin="To: a@x.example, b@x.example\n\nhi\n",
    )
    assert many.returncode == 2 and "give --to" in many.stderr


def test_honour_suppresses_once_and_forgeries_write_nothing(ws: Workspace) -> None:
    from datetime import UTC, datetime

    from sqlalchemy import func, select

    from scrubber import ledger
    from scrubber.ledger import Channel
    from scrubber.store.models import Address, Suppression

    secret = unsubscribe.load_secret(ws.root)
    with open_store(ws) as store:
        who = unsubscribe.subscriber(store, "jane@example.com", "news", secret=secret)
        token = unsubscribe.make_token(secret, who)
        when = datetime(2025, 3, 1, 10, tzinfo=UTC)

        def counts() -> tuple[int, int]:
            with store.read() as session:
                return (
                    int(session.scalar(select(func.count()).select_from(Suppression)) or 0),
                    int(session.scalar(select(func.count()).select_from(Address)) or 0),
                )

        before = counts()
        for bad in (unsubscribe.make_token(b"y" * 32, who), "x" * 47, "nonsense"):
            with pytest.raises(UnsubscribeTokenError):
                unsubscribe.honour(
                    store, secret, bad, channel=Channel.ONE_CLICK, client="x", received_at=when
                )
        gone = unsubscribe.make_token(secret, dataclasses.replace(who, address_id=10**9))
        with pytest.raises(UnsubscribeTokenError, match="no longer here"):
            unsubscribe.honour(
                store, secret, gone, channel=Channel.ONE_CLICK, client="x", received_at=when
            )
        assert counts() == before
        args = {"channel": Channel.ONE_CLICK, "client": "198.51.100.7", "received_at": when}
        assert unsubscribe.honour(store, secret, token, **args) is True
        assert unsubscribe.honour(store, secret, token, **args) is False  # replay: no-op
        (row,) = ledger.rows(store)
    assert (row.canonical, row.channel, row.reason, row.origin) == (
        "jane@example.com",
        "one-click",
        "unsubscribe",
        "news",
    )
    assert (row.client, row.evidence, row.received_at) == ("198.51.100.0/24", token, when)


def test_honour_a_token_whose_list_is_gone(ws: Workspace) -> None:
    """Suppression is global: a token is honoured after its list went."""
    from datetime import UTC, datetime

    from scrubber import ledger
    from scrubber.ledger import Channel

    secret = unsubscribe.load_secret(ws.root)
    with open_store(ws) as store:
        who = unsubscribe.subscriber(store, "bob@example.com", "news", secret=secret)
        gone = unsubscribe.make_token(secret, dataclasses.replace(who, list_id=who.list_id + 99))
        when = datetime(2025, 3, 1, 10, tzinfo=UTC)
        assert unsubscribe.honour(
            store, secret, gone, channel=Channel.MAILTO, client="::1", received_at=when
        )
        (row,) = ledger.rows(store)
    assert (row.canonical, row.channel) == ("bob@example.com", "mailto")
    assert row.origin == f"list #{who.list_id + 99} (gone)"


def test_a_token_never_suppresses_whoever_got_its_address_id_later(
    ws: Workspace, tmp_path: Path
) -> None:
    """SQLite gives a new row the highest id + 1, so if the newest address rows
    are ever deleted (scrubber keeps them; an operator's hand-made cleanup)
    their ids go to the next import: an old token must not suppress the
    stranger who now has its address id."""
    from datetime import UTC, datetime

    from scrubber import ledger
    from scrubber.ledger import Channel

    secret = unsubscribe.load_secret(ws.root)
    when = datetime(2025, 3, 1, 10, tzinfo=UTC)
    with open_store(ws) as store:
        who = unsubscribe.subscriber(store, "jane@example.com", "news", secret=secret)
        token = unsubscribe.make_token(secret, who)
        lists.remove_list(store, "news")
        with store.engine.begin() as conn:  # the hand-made cleanup
            conn.exec_driver_sql(
                "DELETE FROM addresses WHERE id NOT IN (SELECT address_id FROM list_entries)"
            )
        source = tmp_path / "other.txt"
        source.write_text("bob@example.com\nzed@example.com\nzoe@example.com\n")
        lists.import_files(store, "other", [source], rejects_path=tmp_path / "r2.csv")
        reused = {
            unsubscribe.subscriber(store, a, "other", secret=secret).address_id
            for a in ("bob@example.com", "zed@example.com", "zoe@example.com")
        }
        assert who.address_id in reused  # the id went to someone else
        with pytest.raises(UnsubscribeTokenError, match="no longer here"):
            unsubscribe.honour(
                store, secret, token, channel=Channel.ONE_CLICK, client="x", received_at=when
            )
        assert list(ledger.rows(store)) == []


def test_after_list_rm_a_token_is_still_honoured(ws: Workspace, tmp_path: Path) -> None:
    """`list rm` keeps the address rows (docs/design.md, List import), so old
    tokens are still honoured, whether or not another list holds the address
    (suppression is global)."""
    from datetime import UTC, datetime

    from scrubber import ledger
    from scrubber.ledger import Channel

    secret = unsubscribe.load_secret(ws.root)
    when = datetime(2025, 3, 1, 10, tzinfo=UTC)
    with open_store(ws) as store:
        tokens = {
            a: unsubscribe.make_token(
                secret, unsubscribe.subscriber(store, a, "news", secret=secret)
            )
            for a in ("jane@example.com", "bob@example.com")
        }
        news_id = unsubscribe.parse_token(secret, tokens["bob@example.com"]).list_id
        source = tmp_path / "other.txt"
        source.write_text("bob@example.com\n")
        lists.import_files(store, "other", [source], rejects_path=tmp_path / "r2.csv")
        lists.remove_list(store, "news")
        args = {"channel": Channel.ONE_CLICK, "client": "x", "received_at": when}
        assert unsubscribe.honour(store, secret, tokens["jane@example.com"], **args) is True
        assert unsubscribe.honour(store, secret, tokens["bob@example.com"], **args) is True
        rows = sorted((row.canonical, row.origin) for row in ledger.rows(store))
    gone = f"list #{news_id} (gone)"
    assert rows == [("bob@example.com", gone), ("jane@example.com", gone)]


def test_the_origin_never_names_a_list_that_took_over_the_list_id(
    ws: Workspace, tmp_path: Path
) -> None:
    from datetime import UTC, datetime

    from scrubber import ledger
    from scrubber.ledger import Channel

    secret = unsubscribe.load_secret(ws.root)
    with open_store(ws) as store:
        source = tmp_path / "other.txt"
        source.write_text("bob@example.com\n")
        lists.import_files(store, "other", [source], rejects_path=tmp_path / "r2.csv")
        who = unsubscribe.subscriber(store, "bob@example.com", "other", secret=secret)
        token = unsubscribe.make_token(secret, who)
        lists.remove_list(store, "other")  # bob stays: "news" holds him
        source.write_text("carol@example.com\n")
        lists.import_files(store, "fresh", [source], rejects_path=tmp_path / "r3.csv")
        fresh = unsubscribe.subscriber(store, "carol@example.com", "fresh", secret=secret)
        assert fresh.list_id == who.list_id  # SQLite gave the new list the old id
        when = datetime(2025, 3, 1, 10, tzinfo=UTC)
        assert unsubscribe.honour(
            store, secret, token, channel=Channel.ONE_CLICK, client="x", received_at=when
        )
        (row,) = ledger.rows(store)
    assert (row.canonical, row.origin) == ("bob@example.com", f"list #{who.list_id} (gone)")
