"""SMTP edge (aiosmtpd): RCPT picks the batch, DATA carries DNI-Proof lines.

Only ``dni-<token>@<response domain>`` (pings) and
``unsubscribe-<token>@<response domain>`` (RFC 2369 mailto unsubscribe,
whatever the message says) are recipients here (never a relay); a message
is answered 250 only after what it asks is committed.
"""

from __future__ import annotations

import asyncio
import email
import email.message
import functools
import logging
import re
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, AnyStr, cast

from aiosmtpd.smtp import SMTP, Envelope, Session

from scrubber.errors import Overloaded, StoreUnavailable, UnsubscribeTokenError
from scrubber.listener.committer import GroupCommitter
from scrubber.listener.gate import ConnectionGate, peer_of
from scrubber.listener.ingestor import Ingestor
from scrubber.listener.ping import (
    MAILTO,
    MAX_PROOFS,
    Outcome,
    PingRequest,
    UnsubscribeRequest,
    clean_token,
)
from scrubber.listener.ratelimit import Admission, Limits
from scrubber.unsubscribe import MAILTO_PREFIX, Subscriber, parse_token

log = logging.getLogger("scrubber.listener")

MAX_MESSAGE = 64 * 1024
_PROOF_LINE = re.compile(r"^DNI-Proof:[ \t]*(\S+)[ \t\r]*$", re.IGNORECASE | re.MULTILINE)
_HEADER_END = re.compile(rb"\r?\n\r?\n")
_MIME_HEADER = re.compile(rb"(?im)^(?:content-|mime-version)")
_HEADER_LINE = re.compile(rb"[!-9;-~]+:|[ \t]")

NO_RELAY = "550 5.1.1 No such recipient here (this host takes opt-out pings only)"
UNKNOWN = "550 5.1.1 Unknown response address"
UNKNOWN_UNSUBSCRIBE = "550 5.1.1 Unknown unsubscribe address"
TRY_LATER = "451 4.3.0 Not stored, try again later"
RATE_LIMITED = "451 4.7.1 Rate limited, try again later"
TOO_MANY = "421 4.7.0 Too many connections, try again later"
# Commands that do nothing a ping needs, at most this often a session (then
# 421 and closed): a session kept busy by them costs the loop for nothing.
CALL_LIMITS = {"NOOP": 10, "RSET": 10, "HELP": 10, "VRFY": 10, "EXPN": 10, "*": 10_000}
RATE_LIMITED_421 = "421 4.7.1 Rate limited, try again later"
TIMED_OUT = b"421 4.4.2 Session too long, closing\r\n"
_NOOP_LINES = (b"NOOP\r\n", b"NOOP\n")  # a bare NOOP, upper-cased
_WAITING = ("334", "354")  # answers after which the client sends more of the command


def token_of(address: str, domain: str) -> str | None:
    """The token of ``dni-<token>@<domain>``, or None for any other address."""
    local, at, host = address.rpartition("@")
    if not at or host.lower().rstrip(".") != domain.lower() or not local.startswith("dni-"):
        return None
    return clean_token(local[len("dni-") :])


def unsubscribe_token_of(address: str, domain: str) -> str | None:
    """The token of ``unsubscribe-<token>@<domain>`` (any case), or None."""
    local, at, host = address.rpartition("@")
    if not at or host.lower().rstrip(".") != domain.lower():
        return None
    if not local.lower().startswith(MAILTO_PREFIX):
        return None
    return local[len(MAILTO_PREFIX) :].lower()


def extract_proofs(content: bytes) -> list[str]:
    """``DNI-Proof:`` lines of every text part, transfer encodings undone."""
    body = _plain_body(content)
    if body is not None:  # most pings: no MIME at all, so nothing to undo
        return _PROOF_LINE.findall(body.decode("utf-8", errors="replace"))
    return parsed_proofs(content)


def parsed_proofs(content: bytes) -> list[str]:
    """:func:`extract_proofs` through the email parser, for any message; a
    message the parser cannot take apart has no proofs (answered 550)."""
    proofs: list[str] = []
    try:
        for part in email.message_from_bytes(content).walk():
            if part.is_multipart() or part.get_content_maintype() != "text":
                continue
            proofs.extend(_PROOF_LINE.findall(_part_text(part)))
    # The standard library's parser is not robust against every malformed
    # header: mixed RFC 2231 continuations (`x*` and `x*1`) raise TypeError
    # from email.utils.decode_params, found by the fuzzer.
    except (TypeError, ValueError, LookupError, AttributeError):
        return []
    return proofs


def _plain_body(content: bytes) -> bytes | None:
    """The body of a message without MIME headers (plain text, no transfer
    encoding, as RFC 5322 has it), or None when the parser must decide."""
    if content.startswith((b"\r\n", b"\n")):
        return None  # no header block: rare, let the parser decide
    match = _HEADER_END.search(content)
    if match is None:
        return None
    block = content[: match.start()]
    if b"\r" in block.replace(b"\r\n", b""):
        return None  # a bare CR ends a header line for the parser, not for us
    headers = block.split(b"\n")
    # Any line that is not a plain header (or its continuation) makes the
    # parser end the headers early: leave such messages to it.
    if not all(_HEADER_LINE.match(line) for line in headers):
        return None
    if _MIME_HEADER.search(content, 0, match.start() + 1):
        return None
    return content[match.end() :]


def _part_text(part: email.message.Message) -> str:
    payload = part.get_payload(decode=True)
    raw = payload if isinstance(payload, bytes) else b""
    charset = part.get_content_charset() or "utf-8"
    try:
        return raw.decode(charset, errors="replace")
    # An unknown or malformed charset name (a NUL in it), or a codec that is
    # not a character set (idna refuses errors="replace"): proofs are ASCII anyway.
    except (LookupError, ValueError):
        return raw.decode("utf-8", errors="replace")


@dataclass
class SmtpHandler:
    """aiosmtpd handler hooks; ``inflight`` counts messages being committed."""

    committer: GroupCommitter
    ingestor: Ingestor
    domain: str
    limits: Limits
    answered: Callable[[str, int], None]  # metrics hooks
    outcome: Callable[[str, Outcome, int], None]
    inflight: int = 0
    idle: asyncio.Event = field(default_factory=asyncio.Event)
    unsubscribe_secret: bytes = b""  # the workspace's token secret (unsubscribe.load_secret)
    unsubscribed: Callable[[str, str, int], None] = lambda *_: None  # metrics hook

    async def handle_PROXY(
        self, server: SMTP, session: Session, envelope: Envelope, data: Any
    ) -> bool:
        """A trusted proxy's PROXY header (v1 or v2, smtp_door): a session
        whose header does not parse is closed."""
        return bool(getattr(data, "valid", False))

    async def handle_RCPT(
        self,
        server: SMTP,
        session: Session,
        envelope: Envelope,
        address: str,
        rcpt_options: list[str],
    ) -> str:
        peer = _peer(session)
        if self.limits.refused(peer):
            return self._say(RATE_LIMITED)
        if unsubscribe_token_of(address, self.domain) is not None:
            return self._say(self._unsubscribe_rcpt(peer, envelope, address))
        token = token_of(address, self.domain)
        if token is None:
            self.limits.worthless(peer, 1)
            return self._say(NO_RELAY)
        if envelope.rcpt_tos:
            return self._say("452 4.5.3 One recipient per message")
        try:
            # A known token needs no database, so no thread hop.
            batch_id = self.ingestor.known(token) or await asyncio.to_thread(
                self.ingestor.lookup, token
            )
        except StoreUnavailable:
            return self._say(TRY_LATER)
        if batch_id is None:
            log.debug("event=unknown-token channel=smtp peer=%s", peer)
            self.limits.worthless(peer, 1)
            return self._say(UNKNOWN)
        envelope.rcpt_tos.append(address)
        return self._say("250 2.1.5 OK")

    def _unsubscribe_rcpt(self, peer: str, envelope: Envelope, address: str) -> str:
        """A mailto unsubscribe address: its token is checked by its MAC alone."""
        if envelope.rcpt_tos:
            return "452 4.5.3 One recipient per message"
        if self._subscriber(address) is None:
            log.debug("event=unknown-token channel=mailto peer=%s", peer)
            self.limits.worthless(peer, 1)
            self.unsubscribed(MAILTO, "refused", 1)
            return UNKNOWN_UNSUBSCRIBE
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    def _subscriber(self, address: str) -> Subscriber | None:
        token = unsubscribe_token_of(address, self.domain)
        try:
            return None if token is None else parse_token(self.unsubscribe_secret, token)
        except UnsubscribeTokenError:
            return None

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.inflight += 1
        self.idle.clear()
        try:
            return self._say(await self._data(session, envelope))
        finally:
            self.inflight -= 1
            if self.inflight == 0:
                self.idle.set()

    async def _data(self, session: Session, envelope: Envelope) -> str:
        who = self._subscriber(envelope.rcpt_tos[0]) if envelope.rcpt_tos else None
        if who is not None:
            return await self._unsubscribe(session, envelope.rcpt_tos[0], who)
        token = token_of(envelope.rcpt_tos[0], self.domain) if envelope.rcpt_tos else None
        if token is None:
            return "503 5.5.1 No valid recipient"
        content = envelope.original_content or b""
        proofs = extract_proofs(content if isinstance(content, bytes) else content.encode())
        if not proofs:
            return "550 5.6.0 No DNI-Proof lines in the message"
        if len(proofs) > MAX_PROOFS:
            return f"552 5.3.4 Too many proofs (at most {MAX_PROOFS} a message)"
        peer = _peer(session)
        admission = self.limits.admit(peer, token, len(proofs))
        if admission is Admission.REFUSED:
            return self._rate_limited(peer, len(proofs))
        suspect = admission is Admission.SUSPECT
        worthless = 0
        try:
            ping = PingRequest(token, proofs, "smtp", peer)
            result = await self.committer.ping(ping, suspect=suspect)
            worthless = result.worthless
        except Overloaded:
            return self._rate_limited(peer, len(proofs)) if suspect else TRY_LATER
        except StoreUnavailable:
            return TRY_LATER
        finally:
            self.limits.settle(peer, token, len(proofs), worthless)
        counts = result.counts()
        summary = " ".join(f"{k}={v}" for k, v in counts.items() if v)
        return f"250 2.0.0 Stored: {summary}"

    async def _unsubscribe(self, session: Session, address: str, who: Subscriber) -> str:
        """Suppress whom the token names, whatever the message says; 250 after the commit."""
        peer = _peer(session)
        token = unsubscribe_token_of(address, self.domain) or ""
        admission = self.limits.admit(peer, token, 1)
        if admission is Admission.REFUSED:
            self.unsubscribed(MAILTO, "rate-limited", 1)
            return RATE_LIMITED
        request = UnsubscribeRequest(
            token, who.list_id, who.address_id, who.check, MAILTO, peer, secrets.token_hex(8)
        )
        worthless = 0
        try:
            result = await self.committer.ping(request, suspect=admission is Admission.SUSPECT)
            worthless = result.worthless
        except Overloaded:
            return RATE_LIMITED if admission is Admission.SUSPECT else TRY_LATER
        except StoreUnavailable:
            return TRY_LATER
        finally:
            self.limits.settle(peer, token, 1, worthless)
        if result.outcomes[0] is Outcome.INVALID:
            return "550 5.1.1 This address is no longer here"
        return "250 2.0.0 Unsubscribed"

    def _rate_limited(self, peer: str, proofs: int) -> str:
        self.outcome("smtp", Outcome.RATE_LIMITED, proofs)
        log.debug("event=rate-limited channel=smtp peer=%s proofs=%d", peer, proofs)
        return RATE_LIMITED

    def _say(self, reply: str) -> str:
        self.answered("smtp", int(reply[:3]))
        return reply


def _peer(session: Session) -> str:
    """The real client: the one a trusted proxy's PROXY header names, else the TCP peer."""
    proxied = getattr(session.proxy_data, "src_addr", None)
    if proxied is not None:  # None for a v2 LOCAL header (the proxy's own health check)
        return str(proxied)
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "unknown")


@dataclass(frozen=True)
class SessionLimits:
    """How long an SMTP session may last: ``silence`` without any command,
    ``idle`` without a command that moves it on (NOOP and RSET do not), and
    ``total`` in all."""

    silence: float = 15.0
    idle: float = 60.0
    total: float = 300.0


def _moving_on(name: str) -> Callable[[GatedSMTP, str], Awaitable[None]]:
    """SMTP's command ``name``, restarting the idle clock first (HELP text kept)."""
    base = getattr(SMTP, name)

    @functools.wraps(base)
    async def command(self: GatedSMTP, arg: str) -> None:
        self._moved_on()
        await base(self, arg)

    return command


class SmtpDoor(asyncio.Protocol):
    """The gate in front of an SMTP session. aiosmtpd's session costs about
    0.3 ms to make (it inspects its own methods), so it is made only for a
    connection the gate admits; a refused one gets its 421 from here."""

    def __init__(self, make: Callable[[str, Callable[[], None]], GatedSMTP], gate: ConnectionGate):
        self.make = make
        self.gate = gate
        self.session: GatedSMTP | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = peer_of(transport)
        reason = self.gate.enter(peer, self.evict)
        if reason is not None:
            answer = RATE_LIMITED_421 if reason == "rate" else TOO_MANY
            cast(asyncio.Transport, transport).write(answer.encode() + b"\r\n")
            transport.close()
            return
        self.session = self.make(peer, self.evict)
        transport.set_protocol(self.session)
        self.session.connection_made(transport)

    def evict(self) -> None:
        """Closed to make room for another client (gate.py)."""
        if self.session is not None:
            self.session.expire("evicted")

    def data_received(self, data: bytes) -> None:
        pass  # a refused client's words, until its connection closes


class GatedSMTP(SMTP):
    """aiosmtpd's session admitted by the gate, with idle and total timeouts."""

    def __init__(
        self,
        handler: SmtpHandler,
        admitted: tuple[ConnectionGate, str, Callable[[], None]],
        limits: SessionLimits,
        open_sessions: set[GatedSMTP],
        **kwargs: Any,
    ) -> None:
        super().__init__(handler, timeout=limits.silence, **kwargs)
        self.gate, self.peer, self.slot = admitted
        self.limits = limits
        self.open_sessions = open_sessions
        self._timers: list[asyncio.TimerHandle] = []
        self._noops = 0  # NOOPs so far, answered here or by aiosmtpd
        self._prompt = False  # the last answer ended a command, and nothing came since

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.open_sessions.add(self)
        self._timers = [self.loop.call_later(self.limits.total, self.expire, "session")]
        self._moved_on()
        super().connection_made(transport)

    def connection_lost(self, error: Exception | None) -> None:
        # Forgotten at once: a closed session still holds its transport, its
        # cancelled task and timers (12 KB traced; docs/performance.md, soak).
        self.open_sessions.discard(self)
        self.gate.leave(self.peer, self.slot)
        for timer in self._timers:
            timer.cancel()
        super().connection_lost(error)

    def data_received(self, data: bytes) -> None:
        # A bare NOOP at the prompt is answered here. Through aiosmtpd's
        # command loop it wakes the session's task and parses and logs the
        # line, about 0.08 ms of the loop; a crowd of idle sessions sends
        # them all at once (1,000 a burst, docs/performance.md, abuse).
        if self._prompt and data.upper() in _NOOP_LINES and not self._unread():
            self._noop()
            return
        self._prompt = False
        super().data_received(data)

    def _unread(self) -> bool:
        """Whether the session's task has bytes it has not read yet (a
        pipelined command, whose answer must come first)."""
        return bool(getattr(self._reader, "_buffer", True))

    def _noop(self) -> None:
        """NOOP as aiosmtpd answers it: silence ends, the idle clock runs on."""
        transport = cast(asyncio.Transport, self.transport)
        if transport.is_closing():
            return
        self._noops += 1
        if self._noops > CALL_LIMITS["NOOP"]:
            transport.write(b"421 4.7.0 NOOP sent too many times\r\n")
            transport.close()
            return
        self._reset_timeout()
        transport.write(b"250 OK\r\n")

    async def push(self, status: AnyStr) -> None:
        code = status[:4] if isinstance(status, str) else status[:4].decode("ascii", "replace")
        self._prompt = code[3:] != "-" and code[:3] not in _WAITING
        await super().push(status)

    @functools.wraps(SMTP.smtp_NOOP)
    async def smtp_NOOP(self, arg: str) -> None:
        """A NOOP aiosmtpd parses (pipelined, or with an argument) counts
        towards the same limit as those answered in ``data_received``."""
        self._noops += 1
        if self._noops > CALL_LIMITS["NOOP"]:
            await self.push("421 4.7.0 NOOP sent too many times")
            cast(asyncio.Transport, self.transport).close()
            return
        await super().smtp_NOOP(arg)

    def _moved_on(self) -> None:
        """A command that moves the session on: the idle clock starts again."""
        if len(self._timers) > 1:
            self._timers.pop().cancel()
        self._timers.append(self.loop.call_later(self.limits.idle, self.expire, "idle"))

    def expire(self, kind: str) -> None:
        log.debug("event=smtp-timeout kind=%s peer=%s", kind, self.peer)
        if self.transport is not None:
            cast(asyncio.Transport, self.transport).write(
                b"421 4.4.2 Session too long, closing\r\n"
            )
            self.transport.close()

    # The commands that move a session on; NOOP, RSET, HELP, VRFY do not.
    smtp_HELO = _moving_on("smtp_HELO")
    smtp_EHLO = _moving_on("smtp_EHLO")
    smtp_MAIL = _moving_on("smtp_MAIL")
    smtp_RCPT = _moving_on("smtp_RCPT")
    smtp_DATA = _moving_on("smtp_DATA")


def smtp_door(
    handler: SmtpHandler,
    hostname: str,
    gate: ConnectionGate,
    limits: SessionLimits,
    sessions: set[GatedSMTP],
    proxy_protocol: bool = False,
) -> SmtpDoor:
    """What the SMTP server makes per connection: a door, and behind it, if
    the gate admits the connection, a session (in ``sessions`` while open,
    for the shutdown). With ``proxy_protocol``, a connection from a trusted
    proxy must open with a PROXY header (v1 or v2) naming the real client;
    others are served as ever."""

    def make(peer: str, slot: Callable[[], None]) -> GatedSMTP:
        proxied = proxy_protocol and gate.trusted.trusts(peer)
        return GatedSMTP(
            handler,
            (gate, peer, slot),
            limits,
            sessions,
            command_call_limit=CALL_LIMITS,
            data_size_limit=MAX_MESSAGE,
            hostname=hostname,
            decode_data=False,
            proxy_protocol_timeout=limits.silence if proxied else None,
        )

    return SmtpDoor(make, gate)
