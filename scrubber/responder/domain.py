"""Who may receive an SMTP ping: only a domain that proved it is the key holder's.

A batch names its ``Respond-SMTP`` domain itself, so without a check anyone
could post batches that make every responder mail a bystander (reflection).
The HTTP side is bound by ``GET /dni/v1/key``; the SMTP side by a DNS TXT
record at ``_dni.<domain>`` carrying the fingerprint of the batch's key
(``v=DNI1; fp=<fingerprint>``, docs/scheme.md), the convention of DKIM and
MTA-STS. Delivery then follows RFC 5321: the domain's MX hosts by preference,
else its own A/AAAA, never an IP literal, loopback or private address unless
the registrant allows it (tests, a lab network).
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol

import dns.exception
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.resolver
from dns.rdtypes.ANY.MX import MX
from dns.rdtypes.ANY.TXT import TXT

from scrubber.errors import SmtpDomainRefused
from scrubber.keys import fingerprint
from scrubber.responder.proxy import PROXY_REFUSED, SocksProxy

RECORD_PREFIX = "_dni"
VERSION = "DNI1"
_TAG = re.compile(r"\s*([A-Za-z0-9]+)\s*=\s*([^;]*?)\s*")


@dataclass(frozen=True)
class DnsConfig:
    """Which resolver answers: the system's (/etc/resolv.conf) unless a
    nameserver is given (tests point it at a dnsmasq on loopback)."""

    nameserver: str | None = None
    port: int = 53
    timeout: float = 5  # seconds for one whole lookup, retries included


class Resolves(Protocol):
    def resolve(self, qname: str, rdtype: str, *, search: bool) -> Iterable[dns.rdata.Rdata]: ...


class ProxiedResolver:
    """DNS over TCP through the SOCKS proxy to one nameserver, so the
    lookups of a sender's domain leave through the proxy like the pings."""

    def __init__(self, proxy: SocksProxy, nameserver: str, port: int, timeout: float) -> None:
        self.proxy, self.nameserver, self.port, self.timeout = proxy, nameserver, port, timeout

    def resolve(self, qname: str, rdtype: str, *, search: bool) -> Iterable[dns.rdata.Rdata]:
        name = dns.name.from_text(qname)
        query = dns.message.make_query(name, rdtype)  # recursion desired
        where = f"{self.nameserver}:{self.port} through {self.proxy}"
        try:
            with self.proxy.connect(self.nameserver, self.port, self.timeout) as sock:
                response = dns.query.tcp(query, self.nameserver, self.timeout, sock=sock)
        except (OSError, PROXY_REFUSED, dns.exception.DNSException) as exc:
            raise SmtpDomainRefused(f"DNS {where} unreachable for {qname}: {exc}") from None
        if response.rcode() == dns.rcode.NXDOMAIN:
            return []
        if response.rcode() != dns.rcode.NOERROR or not isinstance(
            response, dns.message.QueryMessage
        ):
            code = dns.rcode.to_text(response.rcode())
            raise SmtpDomainRefused(f"DNS {where} answered {code} for {qname} {rdtype}")
        # Answer follows CNAMEs and raises NoAnswer when the name has no such record.
        kind = dns.rdatatype.from_text(rdtype)
        return dns.resolver.Answer(name, kind, dns.rdataclass.IN, response)


def resolver(config: DnsConfig, proxy: SocksProxy | None = None) -> Resolves:
    """The system's or the configured resolver; through ``proxy`` when given
    (then a nameserver reachable through it must be configured)."""
    if proxy is not None:
        if config.nameserver is None:
            raise SmtpDomainRefused(
                "with --proxy, SMTP pings need --dns-server IP (a resolver reached through the "
                "proxy); otherwise the lookups would leave around it"
            )
        return ProxiedResolver(proxy, config.nameserver, config.port, config.timeout)
    if config.nameserver is None:
        try:
            found = dns.resolver.Resolver()
        except dns.exception.DNSException as exc:
            raise SmtpDomainRefused(f"no DNS resolver configured: {exc}") from None
    else:
        found = dns.resolver.Resolver(configure=False)
        found.nameservers = [config.nameserver]
        found.port = config.port
    found.lifetime = config.timeout
    found.timeout = min(found.timeout, config.timeout)
    return found


def parse_record(text: str) -> dict[str, str] | None:
    """The tags of a ``v=DNI1; fp=...`` record; None when it is not one."""
    tags: dict[str, str] = {}
    for item in text.split(";"):
        if not item.strip():
            continue
        match = _TAG.fullmatch(item)
        if match is None:
            return None
        tags.setdefault(match.group(1).lower(), match.group(2))
    first = text.split(";", 1)[0].strip().replace(" ", "")
    return tags if first == f"v={VERSION}" else None


def prove_domain(res: Resolves, domain: str, key: bytes) -> None:
    """Raise SmtpDomainRefused unless ``_dni.<domain>`` names ``key``'s fingerprint."""
    if ip_literal(domain):
        raise SmtpDomainRefused(f"{domain} is an IP literal, not a domain")
    name = f"{RECORD_PREFIX}.{domain}"
    found = _lookup(res, name, "TXT")
    texts = [b"".join(r.strings).decode("ascii", "replace") for r in found if isinstance(r, TXT)]
    if not texts:
        raise SmtpDomainRefused(f"{name} has no TXT record: the domain never opted in")
    records = [r for r in map(parse_record, texts) if r is not None]
    if not records:
        raise SmtpDomainRefused(f"{name} holds no v={VERSION} record")
    wanted = fingerprint(key)
    offered = [r.get("fp", "").lower() for r in records]
    if wanted not in offered:
        raise SmtpDomainRefused(
            f"{name} names key {', '.join(o or '(none)' for o in offered)}, "
            f"the batch is signed by {wanted}"
        )


def mail_hosts(
    res: Resolves, domain: str, port: int, *, allow_private: bool
) -> list[tuple[str, int]]:
    """(address, port) to try in order: MX by preference, else the domain itself."""
    found = _lookup(res, domain, "MX")
    mx = sorted((r for r in found if isinstance(r, MX)), key=lambda r: r.preference)
    if any(r.exchange == dns.name.root for r in mx):
        raise SmtpDomainRefused(f"{domain} accepts no mail (null MX, RFC 7505)")
    names = [r.exchange.to_text(omit_final_dot=True) for r in mx] or [domain]
    usable: list[tuple[str, int]] = []
    refused: list[str] = []
    for host in names:
        for address in addresses(res, host):
            why = None if allow_private else address_refusal(address)
            if why is None:
                usable.append((address, port))
            else:
                refused.append(f"{host} is {address}, {why}")
    if usable:
        return usable
    if refused:
        raise SmtpDomainRefused(f"{refused[0]} (give --allow-private to permit it)")
    raise SmtpDomainRefused(f"{domain}: no mail host has an address")


def address_refusal(text: str) -> str | None:
    """Why an address is no place to send a ping to; None for a public one."""
    address = ipaddress.ip_address(text)
    if address.is_loopback:
        return "a loopback address"
    if address.is_private or address.is_link_local:
        return "a private address"
    if not address.is_global or address.is_multicast:
        return "not a public address"
    return None


def addresses(res: Resolves, host: str) -> list[str]:
    """The A and AAAA addresses of ``host`` (itself when it is an IP literal)."""
    if ip_literal(host):
        return [host]  # an MX naming an address: judged like any other address
    return [r.to_text() for kind in ("A", "AAAA") for r in _lookup(res, host, kind)]


def _lookup(res: Resolves, name: str, kind: str) -> list[dns.rdata.Rdata]:
    """The records, [] when the name has none of that kind; lookup failures raise."""
    try:
        return list(res.resolve(name, kind, search=False))
    except (dns.resolver.NoAnswer, dns.resolver.NXDOMAIN):
        return []
    except dns.resolver.LifetimeTimeout:
        raise SmtpDomainRefused(f"DNS lookup of {name} {kind} timed out") from None
    except dns.resolver.NoNameservers:
        raise SmtpDomainRefused(f"DNS unreachable or failing for {name} {kind}") from None
    except dns.exception.DNSException as exc:
        raise SmtpDomainRefused(f"DNS lookup of {name} {kind} failed: {exc}") from None


def ip_literal(text: str) -> bool:
    """An IP address (IPv6 with or without its URL brackets), not a name."""
    try:
        ipaddress.ip_address(text.strip("[]"))
    except ValueError:
        return False
    return True
