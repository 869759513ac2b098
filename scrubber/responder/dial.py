"""Where the responder's HTTP requests may connect: public addresses only.

A batch names its Respond-HTTP host itself, so without a check a fake batch
could aim every responder at its own loopback or network (reflection): the
key check alone is a GET of a URL the batch chose. Each connection resolves
the host (with the ``--dns-server`` resolver, through the proxy when there is
one; else the system's), refuses it when any address is loopback, private,
link-local or not public, and then connects to the very addresses it
checked, so a name cannot answer a public address to the check and a
private one to the connection (DNS rebinding). ``--allow-private`` (tests, a
lab network) turns the judging off. With a ``socks5h://`` proxy and no
``--dns-server`` the proxy resolves names, so only IP literals and
``localhost`` names are judged here; Tor refuses internal addresses itself
(ClientRejectInternalAddresses).
"""

from __future__ import annotations

import http.client
import socket
import ssl
import urllib.request
from collections.abc import Callable
from functools import partial

from scrubber.errors import HttpHostRefused, SmtpDomainRefused
from scrubber.responder import domain
from scrubber.responder.domain import DnsConfig, address_refusal, ip_literal
from scrubber.responder.proxy import SocksProxy

# Opens a TCP connection to (host, port) within a timeout, or raises.
Dial = Callable[[str, int, float | None], socket.socket]


def dialer(dns: DnsConfig, proxy: SocksProxy | None, *, allow_private: bool) -> Dial:
    """How the responder's HTTP connections are opened (module docstring)."""
    if proxy is not None and proxy.remote_dns and dns.nameserver is None:
        return partial(_open_at_proxy, proxy, allow_private)
    return partial(_open_checked, dns, proxy, allow_private)


def addresses(host: str, dns: DnsConfig, proxy: SocksProxy | None) -> list[str]:
    """Every address of ``host``: from the ``--dns-server`` resolver (through
    the proxy if any), else the system's (getaddrinfo: /etc/hosts too).
    OSError when it has none or the lookup fails (a later run may succeed)."""
    if ip_literal(host):
        return [host]
    if dns.nameserver is None:
        found = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
        return list(dict.fromkeys(str(info[4][0]) for info in found))
    try:
        named = domain.addresses(domain.resolver(dns, proxy), host)
    except SmtpDomainRefused as failed:  # the lookup failed: transient
        raise OSError(failed.message) from None
    if not named:
        raise OSError(f"{host} has no address")
    return named


def handlers(dial: Dial) -> list[urllib.request.BaseHandler]:
    """urllib handlers opening http and https URLs with ``dial``; the
    environment's HTTP proxy settings are ignored (``--proxy`` is the way)."""
    context = ssl.create_default_context()

    class Plain(http.client.HTTPConnection):
        def connect(self) -> None:
            self.sock = dial(self.host, self.port, _timeout(self.timeout))

    class Tls(http.client.HTTPSConnection):
        def connect(self) -> None:
            raw = dial(self.host, self.port, _timeout(self.timeout))
            self.sock = context.wrap_socket(raw, server_hostname=self.host)

    class PlainHandler(urllib.request.HTTPHandler):
        def http_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(Plain, req)

    class TlsHandler(urllib.request.HTTPSHandler):
        def https_open(self, req: urllib.request.Request) -> http.client.HTTPResponse:
            return self.do_open(Tls, req)

    return [urllib.request.ProxyHandler({}), PlainHandler(), TlsHandler()]


def _open_checked(
    dns: DnsConfig,
    proxy: SocksProxy | None,
    allow_private: bool,
    host: str,
    port: int,
    timeout: float | None,
) -> socket.socket:
    found = addresses(host, dns, proxy)
    if not allow_private:
        for address in found:
            _judge(host, address)
    failure = OSError(f"{host} has no address")
    for address in found:  # the addresses judged, not a second lookup
        try:
            if proxy is not None:
                return proxy.connect(address, port, timeout)
            return socket.create_connection((address, port), timeout)
        except OSError as error:
            failure = error
    raise failure


def _open_at_proxy(
    proxy: SocksProxy, allow_private: bool, host: str, port: int, timeout: float | None
) -> socket.socket:
    """The proxy resolves the name; what can be judged here is."""
    name = host.rstrip(".").lower()
    if not allow_private and (name == "localhost" or name.endswith(".localhost")):
        raise HttpHostRefused(f"{host} is a loopback name (give --allow-private to permit it)")
    if not allow_private and ip_literal(host):
        _judge(host, host)
    return proxy.connect(host, port, timeout)


def _judge(host: str, address: str) -> None:
    why = address_refusal(address)
    if why is None:
        return
    what = f"{host} is" if host == address else f"{host} is {address},"
    raise HttpHostRefused(f"{what} {why} (give --allow-private to permit it)")


def _timeout(value: object) -> float | None:
    return value if isinstance(value, int | float) else None
