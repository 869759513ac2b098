"""One-click unsubscribe tokens and the List-Unsubscribe headers that carry them.

A token is opaque and never expires: base32 (lower case, so a mail system
that folds the case of a local part cannot break it) of a version byte, the
list id, the address id, a 3-byte keyed check of the address, and an
HMAC-SHA256 tag (16 bytes) over those with the workspace's secret
(``keys/unsubscribe.secret``, 32 random bytes, mode 0600). It names no
address in clear, and it is verified with the secret alone, without a
database read, so a forged token costs no storage. The address check is
compared when the suppression is recorded: ids are reused (SQLite gives a
new row the highest id + 1, so the ids of addresses ``list rm`` forgot go
to the next import), and a token must never suppress whoever holds its
address id later. Version 1 tokens (no check) are still honoured.

``headers`` gives RFC 2369 ``List-Unsubscribe`` (https one-click URL and
``mailto:unsubscribe-<token>@<response domain>``) and RFC 8058
``List-Unsubscribe-Post``; ``stamp`` adds them to a message, and optionally
a DKIM signature (dkimpy) whose ``h=`` covers both, as RFC 8058 section 4
requires.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import hmac
import secrets
import struct
from dataclasses import dataclass
from datetime import datetime
from email.parser import BytesHeaderParser
from email.utils import getaddresses
from pathlib import Path

from sqlalchemy import Connection, select

from scrubber import ledger, scheme
from scrubber.errors import KeyFileError, NotFoundError, UnsubscribeTokenError, UsageError
from scrubber.private import AtomicFile, check_key_file, private_dir
from scrubber.store import Store
from scrubber.store.models import Address, ListEntry, MailingList

SECRET_FILE = "keys/unsubscribe.secret"  # noqa: S105 - a path, not a secret
VERSION = 2
_BODY = struct.Struct(">BIQ3s")  # version, list id, address id, address check
_BODY_V1 = struct.Struct(">BIQ")  # version 1: no address check
_TAG = 16
_CHECK = 3  # a wrong address passes with odds of 1 in 16.7 million
# base32 of 32 bytes, no padding: `unsubscribe-<token>` is 64 octets, the
# most a local part may have (RFC 5321).
TOKEN_LENGTH = 52
V1_TOKEN_LENGTH = 47  # base32 of 29 bytes
ONE_CLICK_POST = "List-Unsubscribe=One-Click"
MAILTO_PREFIX = "unsubscribe-"
# Signed by DKIM with the two unsubscribe fields (RFC 8058 section 4).
DKIM_HEADERS = (b"from", b"to", b"subject", b"date", b"list-unsubscribe", b"list-unsubscribe-post")


@dataclass(frozen=True)
class Subscriber:
    """What a token stands for; ``check`` is its address's keyed check
    (:func:`address_check`), None in a version 1 token."""

    list_id: int
    address_id: int
    check: bytes | None = None


def check_key(secret: bytes) -> bytes:
    """The key of address checks, derived from the secret: the listener's
    writer process gets this one, which cannot make tokens."""
    return hmac.new(secret, b"scrubber unsubscribe address check", hashlib.sha256).digest()


def address_check(key: bytes, canonical: str) -> bytes:
    return hmac.new(key, canonical.encode("utf-8"), hashlib.sha256).digest()[:_CHECK]


def load_secret(root: Path, *, create: bool = True) -> bytes:
    """The workspace's token secret, made (mode 0600) on first use."""
    path = root / SECRET_FILE
    if not path.exists() and create:
        private_dir(path.parent)
        # Whole or not at all: two listeners starting at once on a new
        # workspace must not read each other's empty file (the first wins).
        made = AtomicFile.binary(path)
        try:
            made.handle.write(secrets.token_bytes(32))
            made.commit_new()  # False: another process made it first; read theirs
        finally:
            made.discard()  # the temporary file, whatever happened
    check_key_file(path)
    secret = path.read_bytes()
    if len(secret) != 32:
        raise KeyFileError(f"{path} must hold 32 bytes, not {len(secret)}")
    return secret


def make_token(secret: bytes, subscriber: Subscriber) -> str:
    if subscriber.check is None or len(subscriber.check) != _CHECK:
        raise ValueError("a token needs its address check (unsubscribe.subscriber gives it)")
    body = _BODY.pack(VERSION, subscriber.list_id, subscriber.address_id, subscriber.check)
    tag = hmac.new(secret, body, hashlib.sha256).digest()[:_TAG]
    return base64.b32encode(body + tag).decode("ascii").rstrip("=").lower()


def parse_token(secret: bytes, token: str) -> Subscriber:
    """The subscriber a token stands for; UnsubscribeTokenError if malformed or forged."""
    if len(token) not in (TOKEN_LENGTH, V1_TOKEN_LENGTH) or not token.isascii():
        raise UnsubscribeTokenError("malformed unsubscribe token")
    try:
        raw = base64.b32decode(token.upper() + "=" * (-len(token) % 8))
    except ValueError:
        raise UnsubscribeTokenError("malformed unsubscribe token") from None
    if base64.b32encode(raw).decode("ascii").rstrip("=") != token.upper():
        # The last character carries bits the length ignores: only one
        # spelling of each token is accepted.
        raise UnsubscribeTokenError("malformed unsubscribe token")
    layout = _BODY if len(token) == TOKEN_LENGTH else _BODY_V1
    body, tag = raw[: layout.size], raw[layout.size :]
    expected = hmac.new(secret, body, hashlib.sha256).digest()[:_TAG]
    if not hmac.compare_digest(tag, expected):
        raise UnsubscribeTokenError("unsubscribe token not issued here")
    version, list_id, address_id, *check = layout.unpack(body)
    if (version, layout) not in ((VERSION, _BODY), (1, _BODY_V1)):
        raise UnsubscribeTokenError(f"unsubscribe token version {version} unknown")
    return Subscriber(list_id, address_id, check[0] if check else None)


def subscriber(store: Store, address: str, list_name: str, *, secret: bytes) -> Subscriber:
    """The (list, address) pair of ADDRESS on list LIST_NAME, with its address check."""
    canonical = scheme.canonicalize(address)
    with store.read() as session:
        found = session.execute(
            select(MailingList.id, Address.id)
            .join(ListEntry, ListEntry.list_id == MailingList.id)
            .join(Address, Address.id == ListEntry.address_id)
            .where(MailingList.name == list_name, Address.canonical == canonical)
        ).first()
    if found is None:
        raise NotFoundError(f"{scheme.mask(canonical)} is not on a list named {list_name!r}")
    return Subscriber(found[0], found[1], address_check(check_key(secret), canonical))


class Honoured(enum.Enum):
    """What honouring a token did."""

    SUPPRESSED = "suppressed"  # newly
    ALREADY = "already"  # suppressed before, by any channel: the first record stands
    UNKNOWN = "unknown"  # the token's address is no longer in the database


def honour(
    store: Store,
    secret: bytes,
    token: str,
    *,
    channel: ledger.Channel,
    client: str,
    received_at: datetime,
    request_id: str | None = None,
) -> bool:
    """Suppress the subscriber a one-click or mailto token names; True if newly.

    The token is checked before the database is touched, so a forged one
    costs nothing; a token whose address is no longer here is refused
    without a write. A replayed token is a no-op (the first record stands).
    """
    who = parse_token(secret, token)
    with store.write_connection() as conn:
        done = honour_on(
            conn,
            who,
            token,
            check_key(secret),
            channel=channel,
            client=client,
            received_at=received_at,
            request_id=request_id,
        )
        if done is Honoured.UNKNOWN:
            raise UnsubscribeTokenError("unsubscribe token for an address no longer here")
    return done is Honoured.SUPPRESSED


def honour_on(
    conn: Connection,
    who: Subscriber,
    token: str,
    key: bytes,
    *,
    channel: ledger.Channel,
    client: str,
    received_at: datetime,
    request_id: str | None = None,
) -> Honoured:
    """Record the suppression of a token already verified, in the caller's
    transaction (the listener's writer runs it in its group's).

    Suppression is global, so a token is honoured even when its list is
    gone (or no longer holds the address): the person asked to hear no
    more. The origin is the list's name only while the list holds the
    address (a list id may have gone to a new list), else ``list #<id>
    (gone)``. An address that is no
    longer in the database, or whose id now belongs to another address (the
    address check, ``key`` = :func:`check_key`, differs), is UNKNOWN and
    nothing is written.
    """
    found = conn.execute(
        select(Address.canonical, MailingList.name)
        .select_from(Address)
        .outerjoin(
            ListEntry,
            (ListEntry.address_id == Address.id) & (ListEntry.list_id == who.list_id),
        )
        .outerjoin(MailingList, MailingList.id == ListEntry.list_id)
        .where(Address.id == who.address_id)
    ).first()
    if found is None:
        return Honoured.UNKNOWN
    if who.check is not None and not hmac.compare_digest(who.check, address_check(key, found[0])):
        return Honoured.UNKNOWN  # the id was reused: not the address the token was made for
    entry = ledger.Entry(
        found[0],
        channel,
        ledger.Reason.UNSUBSCRIBE,
        received_at,
        origin=found[1] if found[1] is not None else f"list #{who.list_id} (gone)",
        request_id=request_id,
        client=ledger.mask_client(client),
        evidence=token,
    )
    added = ledger.record_on(conn, [entry]).added
    return Honoured.SUPPRESSED if added == 1 else Honoured.ALREADY


def headers(token: str, base_url: str, domain: str) -> dict[str, str]:
    """List-Unsubscribe (one-click URL first, then mailto) and List-Unsubscribe-Post."""
    url = f"{base_url.rstrip('/')}/u/{token}"
    return {
        "List-Unsubscribe": f"<{url}>, <mailto:{MAILTO_PREFIX}{token}@{domain}>",
        "List-Unsubscribe-Post": ONE_CLICK_POST,
    }


@dataclass(frozen=True)
class DkimKey:
    selector: str
    domain: str
    private_pem: bytes

    @classmethod
    def load(cls, path: Path, selector: str, domain: str) -> DkimKey:
        check_key_file(path)
        try:
            return cls(selector, domain, path.read_bytes())
        except OSError as exc:
            raise KeyFileError(f"cannot read DKIM key {path}: {exc.strerror}") from None


def recipient(message: bytes) -> str:
    """The one address in the message's To field."""
    parsed = BytesHeaderParser().parsebytes(message)
    found = [a for _, a in getaddresses(parsed.get_all("To", [])) if a]
    if len(found) != 1:
        raise UsageError(f"the message has {len(found)} To addresses; give --to ADDRESS")
    return found[0]


def sender_domain(message: bytes) -> str:
    """The domain of the message's From address (DKIM's d= by default)."""
    parsed = BytesHeaderParser().parsebytes(message)
    found = [a for _, a in getaddresses(parsed.get_all("From", [])) if "@" in a]
    if len(found) != 1:
        raise UsageError("the message needs one From address for DKIM; give --dkim-domain")
    return found[0].rsplit("@", 1)[1]


def stamp(message: bytes, fields: dict[str, str], dkim_key: DkimKey | None = None) -> bytes:
    """``message`` with ``fields`` added at the top (and a DKIM signature over
    them); the rest of the message is left byte for byte as it was."""
    parsed = BytesHeaderParser().parsebytes(message)
    if any(parsed.get_all(name) for name in fields):
        raise UsageError("the message already has List-Unsubscribe fields")
    newline = b"\r\n" if b"\r\n" in message.split(b"\n", 1)[0] + b"\n" else b"\n"
    added = b"".join(f"{k}: {v}".encode("ascii") + newline for k, v in fields.items())
    stamped = added + message
    if dkim_key is None:
        return stamped
    return _dkim_sign(stamped, dkim_key) + stamped


def _dkim_sign(message: bytes, key: DkimKey) -> bytes:
    import dkim

    try:
        signature: bytes = dkim.sign(
            message,
            key.selector.encode("ascii"),
            key.domain.encode("ascii"),
            key.private_pem,
            include_headers=list(DKIM_HEADERS),
        )
    except dkim.DKIMException as exc:
        raise KeyFileError(f"cannot DKIM-sign: {exc}") from None
    if b"\r\n" not in message.split(b"\n", 1)[0] + b"\n":
        signature = signature.replace(b"\r\n", b"\n")
    return signature
