"""Run the SMTP and HTTP edges in one asyncio loop over one ingest path.

Shutdown (SIGTERM/SIGINT): stop accepting, let in-flight requests finish and
commit, commit whatever is queued, then return.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from sqlalchemy import text

from scrubber.batch.info import KeyInUse, keys_in_use
from scrubber.errors import ListenerError, UsageError
from scrubber.listener.committer import GroupCommitter
from scrubber.listener.gate import (
    FDS_RESERVED,
    ConnectionGate,
    GatedProtocol,
    TrustedProxies,
    fit_caps,
    raise_open_files,
)
from scrubber.listener.http import HttpEdge, protocol_logger
from scrubber.listener.ingestor import Ingestor
from scrubber.listener.metrics import ListenerMetrics
from scrubber.listener.ratelimit import Limits
from scrubber.listener.smtp import GatedSMTP, SessionLimits, SmtpHandler, smtp_door
from scrubber.listener.writer import WriterProcess
from scrubber.store import Store
from scrubber.store.types import utcnow
from scrubber.unsubscribe import check_key, load_secret
from scrubber.workspace import Workspace

log = logging.getLogger("scrubber.listener")

SHUTDOWN_GRACE = 20.0  # seconds in-flight requests get to finish
# How long a ping waits for a locked SQLite database (the writer process's
# Store option); the listener's own Store only reads, which WAL never blocks.
LOCK_WAIT_MS = 5000
# Groups sent to the writer process before the first is answered: with two,
# the child never waits for the loop to notice an answer (docs/design.md).
WRITER_PIPELINE = 2
# Connections the kernel queues before the loop accepts them: Linux's usual
# somaxconn. A burst of connections over it has SYNs dropped, and a client's
# retry comes 1, 3, 7 s later (bench/abuse.py, idle-connections).
BACKLOG = 4096


def _canned(status: str, retry: bool) -> bytes:
    head = f"HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n"
    return (head + ("Retry-After: 5\r\n" if retry else "") + "\r\n").encode()


# What a connection refused at the HTTP gate is told, by reason (gate.py).
REFUSALS = {
    "rate": _canned("429 Too Many Requests", True),
    "client": _canned("503 Service Unavailable", True),
    "total": _canned("503 Service Unavailable", True),
}


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_endpoint(value: str, option: str) -> Endpoint | None:
    """``HOST:PORT`` (IPv6 as ``[::1]:25``); ``off`` disables the channel."""
    if value.strip().lower() == "off":
        return None
    host, colon, port = value.strip().rpartition(":")
    host = host.strip("[]")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{option} wants HOST:PORT (or 'off'), got {value!r}")
    return Endpoint(host, int(port))


@dataclass(frozen=True)
class ListenConfig:
    smtp: Endpoint | None
    http: Endpoint | None
    client_per_minute: int
    token_per_minute: int
    key_public: str
    key_fingerprint: str
    read_timeout: float = 15.0
    log_level: str = "info"
    max_connections: int = 1000  # per channel
    max_client_connections: int = 32  # per channel and client address
    smtp_idle_timeout: float = 60.0
    smtp_session_timeout: float = 300.0
    trusted_proxies: tuple[str, ...] = ()
    smtp_proxy_protocol: bool = False  # trusted proxies open SMTP with a PROXY header
    prefix: str = ""  # every HTTP route is served under it (http.path_prefix)


@dataclass
class _Running:
    """What _serve started, for the shutdown."""

    runner: web.AppRunner | None = None
    http_server: asyncio.Server | None = None
    smtp_server: asyncio.Server | None = None
    handler: SmtpHandler | None = None
    sessions: set[GatedSMTP] = field(default_factory=set)  # the open SMTP sessions


def run(workspace: Workspace, store: Store, config: ListenConfig) -> None:
    """Serve until SIGTERM/SIGINT; returns after a clean shutdown."""
    if config.smtp is None and config.http is None:
        raise UsageError("both channels are off; nothing to listen on")
    trusted = TrustedProxies.parse(config.trusted_proxies)
    if config.smtp_proxy_protocol and not trusted:
        raise UsageError("--smtp-proxy-protocol needs --trusted-proxy (whose headers to believe)")
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:
        runner.run(_serve(workspace, store, config, trusted))


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop's event loop where it is installed (a dependency on POSIX), else
    asyncio's own. The loop is the listener's bottleneck, and most of its time
    per request is asyncio's Python around the socket calls, which uvloop does
    in C (docs/performance.md, listen_http)."""
    try:
        import uvloop
    except ImportError:  # Windows, where uvloop does not exist
        return None
    return uvloop.new_event_loop


async def _serve(
    workspace: Workspace, store: Store, config: ListenConfig, trusted: TrustedProxies
) -> None:
    secret = load_secret(workspace.root)  # before anything starts: a bad file stops here
    metrics = ListenerMetrics()
    writer = WriterProcess(
        store.url,
        lock_wait_ms=LOCK_WAIT_MS,
        log_level=config.log_level,
        check_key=check_key(secret),  # the writer checks addresses; it cannot make tokens
    )
    await asyncio.to_thread(writer.start)
    committer = GroupCommitter(writer, observer=metrics, max_inflight=WRITER_PIPELINE)
    committer.start()
    limits = Limits.of(config.client_per_minute, config.token_per_minute)
    http_gate, smtp_gate = _gates(config, trusted, metrics, limits)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    running = _Running()
    try:
        if config.http is not None:
            edge = _http_edge(config, committer, metrics, limits, store, trusted)
            edge.unsubscribe_secret = secret
            running.runner, running.http_server = await _start_http(config, edge, http_gate)
        if config.smtp is not None:
            running.handler = SmtpHandler(
                committer,
                Ingestor(store),  # token look-ups at RCPT; the writer process stores
                workspace.settings.response_domain,
                limits,
                metrics.answered,
                metrics.outcome,
                unsubscribe_secret=secret,
                unsubscribed=metrics.unsubscribed,
            )
            running.smtp_server = await _start_smtp(config, running, smtp_gate, workspace)
        # What start-up made (modules, the app, the ORM) lives as long as the
        # process: kept out of the collector's full passes, which otherwise
        # walk it all while 2,000 open connections churn their objects
        # (a 200-300 ms stall of the loop; docs/performance.md, abuse).
        gc.freeze()
        log.info("event=ready pid=%d", os.getpid())
        await stop.wait()
        log.info("event=stopping")
    finally:
        await _shutdown(running)
        await committer.close()
        await writer.close()
        log.info("event=stopped")


def _gates(
    config: ListenConfig, trusted: TrustedProxies, metrics: ListenerMetrics, limits: Limits
) -> tuple[ConnectionGate, ConnectionGate]:
    """One gate per channel, their caps fitted to the open-file limit."""
    channels = [c for c in (config.http, config.smtp) if c is not None]
    wanted = config.max_connections * len(channels) + FDS_RESERVED
    caps = fit_caps(raise_open_files(wanted), [config.max_connections] * len(channels))
    per_channel = caps[0]

    def gate(channel: str) -> ConnectionGate:
        per_client = min(config.max_client_connections, per_channel)
        return ConnectionGate(
            channel, per_channel, per_client, trusted, metrics.connection_refused, limits.refused
        )

    return gate("http"), gate("smtp")


def _http_edge(
    config: ListenConfig,
    committer: GroupCommitter,
    metrics: ListenerMetrics,
    limits: Limits,
    store: Store,
    trusted: TrustedProxies,
) -> HttpEdge:
    async def health() -> None:
        await asyncio.to_thread(_ping_database, store)

    async def in_use() -> list[KeyInUse]:
        return await asyncio.to_thread(keys_in_use, store, utcnow())

    return HttpEdge(
        committer,
        metrics,
        limits,
        config.key_public,
        config.key_fingerprint,
        health,
        read_timeout=config.read_timeout,
        trusted=trusted,
        prefix=config.prefix,
        keys_in_use=in_use,
    )


async def _start_http(
    config: ListenConfig, edge: HttpEdge, gate: ConnectionGate
) -> tuple[web.AppRunner, asyncio.Server]:
    assert config.http is not None
    runner = web.AppRunner(
        edge.app(),
        access_log=None,
        logger=protocol_logger(),
        shutdown_timeout=SHUTDOWN_GRACE,
        # Also the header timeout: a connection that has not sent a whole
        # request head this long after connecting (or its last answer) is closed.
        keepalive_timeout=config.read_timeout,
    )
    await runner.setup()
    handlers = runner.server
    assert handlers is not None
    handlers.request_handler = edge.fast_path(handlers.request_handler)
    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(
            lambda: GatedProtocol(handlers(), gate, REFUSALS),
            config.http.host,
            config.http.port,
            backlog=BACKLOG,
        )
    except OSError as error:
        await runner.cleanup()
        raise ListenerError(f"cannot listen for HTTP on {config.http}: {error.strerror}") from None
    for sock in server.sockets:
        address = sock.getsockname()
        log.info("event=listening channel=http address=%s:%d", address[0], address[1])
    return runner, server


async def _start_smtp(
    config: ListenConfig, running: _Running, gate: ConnectionGate, workspace: Workspace
) -> asyncio.Server:
    assert config.smtp is not None and running.handler is not None
    endpoint = config.smtp
    hostname = workspace.settings.response_domain
    handler, sessions = running.handler, running.sessions
    timeouts = SessionLimits(
        config.read_timeout, config.smtp_idle_timeout, config.smtp_session_timeout
    )

    def factory() -> Any:
        return smtp_door(handler, hostname, gate, timeouts, sessions, config.smtp_proxy_protocol)

    loop = asyncio.get_running_loop()
    try:
        server = await loop.create_server(factory, endpoint.host, endpoint.port, backlog=BACKLOG)
    except OSError as error:
        raise ListenerError(f"cannot listen for SMTP on {endpoint}: {error.strerror}") from None
    for sock in server.sockets:
        address = sock.getsockname()
        log.info("event=listening channel=smtp address=%s:%d", address[0], address[1])
    return server


async def _shutdown(running: _Running) -> None:
    if running.smtp_server is not None:
        running.smtp_server.close()  # stop accepting; open sessions go on for now
    if running.http_server is not None:
        running.http_server.close()
    handler = running.handler
    if handler is not None and handler.inflight:
        try:
            async with asyncio.timeout(SHUTDOWN_GRACE):
                await handler.idle.wait()
        except TimeoutError:
            log.warning("event=shutdown-timeout channel=smtp inflight=%d", handler.inflight)
    for session in list(running.sessions):
        if session.transport is not None:
            session.transport.close()
    if running.runner is not None:
        await running.runner.cleanup()  # waits for in-flight handlers, closes connections


def _ping_database(store: Store) -> None:
    with store.read() as session:
        session.execute(text("SELECT 1"))
