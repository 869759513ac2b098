"""Who a client is, and how many connections it may hold.

``TrustedProxies`` decides the real client of an HTTP request: the TCP peer,
or, only when that peer is a configured trusted proxy, the right-most
address in ``X-Forwarded-For`` that is not itself a trusted proxy (each
proxy appends the address it saw, so everything left of the last untrusted
hop may be forged).

``ConnectionGate`` caps one channel's concurrent connections, overall and
per client address; each channel has its own gate, so a flood of idle
connections on one channel never takes the other's. ``GatedProtocol`` puts
a gate in front of any asyncio protocol (aiohttp's request handler here).

``raise_open_files`` lifts the soft RLIMIT_NOFILE to the hard limit at start.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import resource
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import cast

from scrubber.errors import UsageError

log = logging.getLogger("scrubber.listener")

FDS_RESERVED = 64  # database, writer pipe, logs, listening sockets, DNS
_Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass
class TrustedProxies:
    """Addresses and networks whose ``X-Forwarded-For`` is believed."""

    networks: list[_Network] = field(default_factory=list)
    _known: dict[str, bool] = field(default_factory=dict)  # address -> trusted

    @classmethod
    def parse(cls, values: Iterable[str]) -> TrustedProxies:
        networks = []
        for value in values:
            for item in (v.strip() for v in value.split(",")):
                if not item:
                    continue
                try:
                    networks.append(ipaddress.ip_network(item, strict=False))
                except ValueError:
                    raise UsageError(f"not an address or network: {item!r}") from None
        return cls(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def trusts(self, address: str) -> bool:
        found = self._known.get(address)
        if found is None:
            found = self._check(address)
            if len(self._known) >= 10_000:
                self._known.clear()
            self._known[address] = found
        return found

    def client(self, peer: str, forwarded: list[str]) -> str:
        """The real client behind ``peer``, given its X-Forwarded-For values."""
        if not self.networks or not forwarded or not self.trusts(peer):
            return peer
        hops = [hop.strip() for value in forwarded for hop in value.split(",")]
        for hop in reversed(hops):
            address = _address(hop)
            if address is None:
                return peer  # garbage from here on: the proxy is the client we know
            if not self.trusts(address):
                return address
        return peer

    def _check(self, address: str) -> bool:
        try:
            ip = ipaddress.ip_address(address)
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)


def _address(hop: str) -> str | None:
    """A bare IP address from one X-Forwarded-For hop, or None."""
    text = hop.strip().strip('"')
    if text.startswith("["):  # [v6]:port
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:  # v4:port
        text = text.split(":")[0]
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        return None


@dataclass
class ConnectionGate:
    """Concurrent connections of one channel: at most ``total``, and at most
    ``per_client`` from one address (trusted proxies excepted).

    At the total cap a newcomer is not simply turned away, or a crowd of
    addresses could hold every slot: the oldest connection of the client
    holding the most is closed for it, as long as that client holds more
    than the newcomer does (so nobody is refused while another holds more
    than they do, and evictions stop once holders are even). A client the
    rate limits refuse (``in_debt``) is turned away at once, before any
    byte of its request is parsed.
    """

    channel: str
    total: int
    per_client: int
    trusted: TrustedProxies = field(default_factory=TrustedProxies)
    refused: Callable[[str], None] = lambda _channel: None  # metrics hook
    in_debt: Callable[[str], bool] = lambda _peer: False
    open: int = 0
    _by_client: dict[str, list[Callable[[], None]]] = field(default_factory=dict)

    def enter(self, peer: str, close: Callable[[], None]) -> str | None:
        """Admit a connection (``close`` closes it, should it be evicted);
        None, or why not: "rate", "client" or "total"."""
        trusted = self.trusted.trusts(peer)
        if not trusted and self.in_debt(peer):
            return self._refuse(peer, "rate")
        held = self._by_client.setdefault(peer, [])
        if len(held) >= self.per_client and not trusted:
            return self._refuse(peer, "client")
        if self.open >= self.total and not self._evict_for(len(held)):
            if not held:
                del self._by_client[peer]
            return self._refuse(peer, "total")
        self.open += 1
        held.append(close)
        return None

    def leave(self, peer: str, close: Callable[[], None]) -> None:
        held = self._by_client.get(peer, [])
        if close in held:
            held.remove(close)
            self.open -= 1
        if not held:
            self._by_client.pop(peer, None)

    def _evict_for(self, holding: int) -> bool:
        """Close the oldest connection of the biggest holder, if it holds more
        than ``holding`` (what the newcomer holds already)."""
        top = max(self._by_client.items(), key=lambda item: len(item[1]), default=None)
        if top is None or len(top[1]) <= holding:
            return False
        peer, held = top
        close = held.pop(0)
        self.open -= 1
        log.warning("event=connection-evicted channel=%s peer=%s", self.channel, peer)
        close()
        return True

    def _refuse(self, peer: str, cap: str) -> str:
        self.refused(self.channel)
        log.warning("event=connection-refused channel=%s cap=%s peer=%s", self.channel, cap, peer)
        return cap


def peer_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "unknown")


LINGER = 2.0  # seconds a refused connection's request is read and dropped


class GatedProtocol(asyncio.Protocol):
    """An asyncio protocol behind a ConnectionGate. A refused connection gets
    a canned answer (``answers``, by reason) before the wrapped protocol sees
    it; whatever it sends is dropped until it closes (or ``LINGER`` runs
    out), so the answer is not lost to a reset."""

    def __init__(
        self, inner: asyncio.Protocol, gate: ConnectionGate, answers: dict[str, bytes]
    ) -> None:
        self.inner = inner
        self.gate = gate
        self.answers = answers
        self.peer: str | None = None  # set while admitted
        self.refused = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = peer_of(transport)
        self.transport = cast(asyncio.Transport, transport)
        reason = self.gate.enter(peer, self.close)
        if reason is not None:
            self.refused = True
            try:
                self.transport.write(self.answers[reason])
                self.transport.write_eof()
            except OSError:  # the client has gone already
                self.transport.abort()
                return
            asyncio.get_running_loop().call_later(LINGER, self.transport.abort)
            return
        self.peer = peer
        self.inner.connection_made(transport)

    def close(self) -> None:
        self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is None:
            return
        self.gate.leave(self.peer, self.close)
        self.peer = None
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if not self.refused:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.refused:
            self.transport.abort()
            return None
        return self.inner.eof_received()

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()


def raise_open_files(wanted: int) -> int:
    """Lift the soft limit on open files to the hard one; warn when it stays
    below ``wanted``. Returns the soft limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else max(soft, wanted)
    if target > soft:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError) as error:
            log.warning("event=nofile-not-raised soft=%d hard=%d error=%r", soft, hard, str(error))
    if soft < wanted:
        log.warning(
            "event=nofile-low limit=%d wanted=%d; connection caps lowered to fit", soft, wanted
        )
    return int(soft)


def fit_caps(limit: int, caps: list[int]) -> list[int]:
    """Connection caps that fit in ``limit`` open files, shared in proportion."""
    room = max(limit - FDS_RESERVED, len(caps))
    wanted = sum(caps)
    if wanted <= room:
        return caps
    return [max(1, cap * room // wanted) for cap in caps]
