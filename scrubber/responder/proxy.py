"""Pings through a SOCKS5 proxy (Tor's SOCKS port), so a sender learns the
proxy's address, not the registrant's.

``socks5h://`` lets the proxy resolve host names (nothing about the sender's
host is looked up here); ``socks5://`` resolves them locally first, as curl
does. Both the HTTP side (key binding and pings, through urllib) and the
SMTP fallback (smtplib) go through it (HTTP: responder/dial.py); python-socks
makes the connection.
"""

from __future__ import annotations

import smtplib
import socket
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from python_socks import ProxyError, ProxyType
from python_socks.sync import Proxy

from scrubber.errors import UsageError

SCHEMES = ("socks5", "socks5h")
# What a proxy refusing the connection raises (its other failures are
# OSErrors): the caller treats it as a connection failure, the proof stays owed.
PROXY_REFUSED = ProxyError


@dataclass(frozen=True)
class SocksProxy:
    host: str
    port: int
    remote_dns: bool
    user: str | None = None
    password: str | None = None

    def connect(self, host: str, port: int, timeout: float | None) -> socket.socket:
        proxy = Proxy(
            ProxyType.SOCKS5, self.host, self.port, self.user, self.password, self.remote_dns
        )
        return proxy.connect(host, port, timeout=timeout)

    def __str__(self) -> str:  # never the password
        scheme = "socks5h" if self.remote_dns else "socks5"
        return f"{scheme}://{self.host}:{self.port}"


def parse_proxy(url: str) -> SocksProxy:
    parts = urlsplit(url)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme not in SCHEMES or not parts.hostname or port is None:
        raise UsageError(f"--proxy must be socks5h://HOST:PORT or socks5://HOST:PORT, not {url!r}")
    return SocksProxy(
        parts.hostname,
        port,
        remote_dns=parts.scheme == "socks5h",
        user=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


class ProxiedSMTP(smtplib.SMTP):
    """smtplib.SMTP whose connection goes through a SOCKS proxy."""

    def __init__(self, proxy: SocksProxy, *args: Any) -> None:
        self._proxy = proxy  # before SMTP.__init__, which connects
        super().__init__(*args)

    def _get_socket(self, host: str, port: int, timeout: float) -> socket.socket:
        return self._proxy.connect(host, port, timeout)
