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
    ``per_client`` from one address (trusted proxies excepted)."""

    channel: str
    total: int
    per_client: int
    trusted: TrustedProxies = field(default_factory=TrustedProxies)
    refused: Callable[[str], None] = lambda _channel: None  # metrics hook
    open: int = 0
    _by_client: dict[str, int] = field(default_factory=dict)

    def enter(self, peer: str) -> bool:
        if self.open >= self.total:
            return self._refuse(peer, "total")
        held = self._by_client.get(peer, 0)
        if held >= self.per_client and not self.trusted.trusts(peer):
            return self._refuse(peer, "client")
        self.open += 1
        self._by_client[peer] = held + 1
        return True

    def leave(self, peer: str) -> None:
        self.open -= 1
        held = self._by_client.get(peer, 1) - 1
        if held > 0:
            self._by_client[peer] = held
        else:
            self._by_client.pop(peer, None)

    def _refuse(self, peer: str, cap: str) -> bool:
        self.refused(self.channel)
        log.warning("event=connection-refused channel=%s cap=%s peer=%s", self.channel, cap, peer)
        return False


def peer_of(transport: asyncio.BaseTransport) -> str:
    peer = transport.get_extra_info("peername")
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return str(peer or "unknown")


class GatedProtocol(asyncio.Protocol):
    """An asyncio protocol behind a ConnectionGate: a refused connection is
    closed at once, before the wrapped protocol sees it."""

    def __init__(self, inner: asyncio.Protocol, gate: ConnectionGate) -> None:
        self.inner = inner
        self.gate = gate
        self.peer: str | None = None  # set while admitted

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        peer = peer_of(transport)
        if not self.gate.enter(peer):
            cast(asyncio.Transport, transport).abort()  # no answer: costs nothing more
            return
        self.peer = peer
        self.inner.connection_made(transport)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.peer is None:
            return
        self.gate.leave(self.peer)
        self.peer = None
        self.inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self.inner.data_received(data)

    def eof_received(self) -> bool | None:
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
