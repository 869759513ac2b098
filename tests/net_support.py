"""Real network peers from Debian for the responder tests, each run as the
test's own process on a free loopback port: dnsmasq (DNS: TXT, MX, A records)
and microsocks (a SOCKS5 proxy). scripts/provision-dns.sh and
scripts/provision-socks.sh install them and name them in .services.env."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import dns.exception
import dns.resolver

from tests.support import free_port, require_service

START_TIMEOUT = 10.0


def dni_record(fp: str) -> str:
    return f"v=DNI1; fp={fp}"


class Dnsmasq:
    """dnsmasq answering only from its command line, authoritative for .test.

    ``txt`` maps names to TXT strings, ``mx`` domains to (exchange, preference),
    ``a`` names to IPv4 addresses (loopback only: tests send nothing elsewhere).
    Any other name under .test is NXDOMAIN.
    """

    def __init__(
        self,
        tmp: Path,
        *,
        txt: dict[str, Sequence[str]] | None = None,
        mx: dict[str, tuple[str, int]] | None = None,
        a: dict[str, str] | None = None,
        log_queries: bool = False,
    ) -> None:
        binary = require_service("SCRUBBER_TEST_DNSMASQ", "dnsmasq")
        self.port = free_port()
        self.log = ""  # its stderr, read on stop: with log_queries, who asked what
        args = [
            binary,
            "--no-daemon",
            "--no-resolv",
            "--no-hosts",
            "--conf-file=/dev/null",
            f"--pid-file={tmp / 'dnsmasq.pid'}",
            f"--port={self.port}",
            "--listen-address=127.0.0.1",
            "--bind-interfaces",
            "--local=/test/",
        ]
        for name, texts in (txt or {}).items():
            args += [f"--txt-record={name},{text}" for text in texts]
        for name, (exchange, preference) in (mx or {}).items():
            args.append(f"--mx-host={name},{exchange},{preference}")
        for name, address in (a or {}).items():
            args.append(f"--host-record={name},{address}")
        if log_queries:
            args += ["--log-queries", "--log-facility=-"]
        self.process = subprocess.Popen(
            args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        self._wait_ready()

    def _wait_ready(self) -> None:
        res = dns.resolver.Resolver(configure=False)
        res.nameservers, res.port, res.lifetime = ["127.0.0.1"], self.port, 0.2
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"dnsmasq exited: {self.process.stderr.read()}")  # type: ignore[union-attr]
            try:
                res.resolve("ready.probe.test", "A")
            except dns.resolver.NXDOMAIN:
                return  # it answers
            except dns.exception.DNSException:
                continue
        raise RuntimeError("dnsmasq did not answer in time")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
        if self.process.stderr is not None:
            self.log = self.process.stderr.read()
            self.process.stderr.close()


class Microsocks:
    """A SOCKS5 proxy on loopback whose outgoing connections come from
    ``bind`` (127.0.0.2 by default), so a listener can tell proxied peers apart."""

    def __init__(self, bind: str = "127.0.0.2") -> None:
        binary = require_service("SCRUBBER_TEST_MICROSOCKS", "microsocks")
        self.port = free_port()
        self.bind = bind
        self.process = subprocess.Popen(
            [binary, "-i", "127.0.0.1", "-p", str(self.port), "-b", bind],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        self._wait_ready()

    @property
    def url(self) -> str:
        return f"socks5h://127.0.0.1:{self.port}"

    def _wait_ready(self) -> None:
        import socket

        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("microsocks exited")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
            except OSError:
                time.sleep(0.01)  # polling for the port, not synchronising on a guess
                continue
            return
        raise RuntimeError("microsocks did not listen in time")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)
