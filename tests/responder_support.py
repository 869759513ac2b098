"""Helpers for the responder tests: signed batches written to a spool, and
sender endpoints on real sockets (HTTP via aiohttp, SMTP via aiosmtpd) whose
behaviour a test chooses (right key, wrong key, 5xx)."""

from __future__ import annotations

import asyncio
import dataclasses
import os
import secrets
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiohttp import web

from scrubber import article, scheme
from scrubber.keys import OperatorKey, encode_public
from tests.support import free_port

GROUP = "alt.dni.batches"
FAST = scheme.Params(t=1, m=64, p=1, tag_length=8)


@dataclass
class BatchSpec:
    key: OperatorKey
    http_base: str  # http://host:port
    salt: bytes = field(default_factory=lambda: os.urandom(16))
    params: scheme.Params = FAST
    token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    batch_id: str = field(default_factory=lambda: f"b{secrets.token_hex(6)}")
    expires: datetime = field(default_factory=lambda: datetime.now(UTC) + timedelta(days=30))
    smtp_domain: str = "dni.example.test"
    protocol: int = 1
    nonce: bytes = field(default_factory=lambda: os.urandom(scheme.NONCE_LEN))
    encoding: str = "yenc"

    def v2(self) -> article.V2Fields | None:
        if self.protocol != 2:
            return None
        return article.V2Fields(nonce=self.nonce, gcs=scheme.Gcs(), encoding=self.encoding)

    def published(self, address: str, total: int) -> bytes:
        """The tag (v1) or value (v2, in a batch of ``total``) of ``address``."""
        h = self.digest(address).h
        if self.protocol != 2:
            return h[: self.params.tag_length]
        return scheme.item_bytes(scheme.item_value(h, self.nonce, total, scheme.Gcs()))

    def digest(self, address: str) -> scheme.Digest:
        return scheme.digest(scheme.canonicalize(address), self.salt, self.params)

    def proof(self, address: str) -> str:
        return scheme.b64url(self.digest(address).proof)


def batch_articles(
    spec: BatchSpec, listed: list[str], *, filler: int = 600, parts: int = 3
) -> list[bytes]:
    """Whole articles of one batch: ``listed`` hashed for real plus random tags."""
    size = spec.params.tag_length if spec.protocol == 1 else scheme.ITEM_LEN
    count = len(listed) + filler
    if spec.protocol == 2:
        span = count * scheme.GCS_M
        noise = {scheme.item_bytes(secrets.randbelow(span)) for _ in range(filler)}
    else:
        noise = {os.urandom(size) for _ in range(filler)}
    tags = {spec.published(a, count) for a in listed} | noise
    ordered = sorted(tags)
    per = -(-len(ordered) // parts)
    header = article.BatchHeader(
        batch_id=spec.batch_id,
        salt=spec.salt,
        params=dataclasses.replace(spec.params, tag_length=size),
        total=count if spec.protocol == 2 else len(ordered),
        respond=scheme.RespondTo(
            http=f"{spec.http_base}/dni/v1/ping/{spec.token}",
            smtp=f"dni-{spec.token}@{spec.smtp_domain}",
        ),
        expires=spec.expires.replace(microsecond=0),
        key=spec.key.public_raw,
        v2=spec.v2(),
    )
    chunks = [ordered[i : i + per] for i in range(0, len(ordered), per)]
    out = []
    for number, chunk in enumerate(chunks, 1):
        blob = b"".join(chunk)
        meta = article.part_meta(header, number, len(chunks), blob)
        out.append(
            article.render_article(
                meta,
                blob,
                spec.key,
                newsgroup=GROUP,
                domain="example.test",
                date=datetime.now(UTC),
            )
        )
    return out


def part_holding(spec: BatchSpec, articles: list[bytes], address: str) -> int:
    """1-based number of the part whose range holds ``address``'s tag."""
    for number, raw in enumerate(articles, 1):
        parsed = article.parse_article(article.split_article(raw)[1])
        if spec.published(address, parsed.meta.total) in parsed.tags:
            return number
    raise AssertionError("address not in the batch")


def write_spool(directory: Path, articles: list[bytes], *, later: bool = False) -> None:
    """Spool files of ``articles``; ``later`` dates them a second after the
    newest file already there (the spool mark orders by mtime), with no wait."""
    directory.mkdir(parents=True, exist_ok=True)
    newest = max((p.stat().st_mtime for p in directory.iterdir()), default=None)
    for raw in articles:
        headers, _ = article.split_article(raw)
        name = headers["message-id"].strip("<>").replace("/", "_") + ".rnews"
        path = directory / name
        path.write_bytes(b"#! rnews %d\n" % len(raw) + raw)
        if later and newest is not None:
            os.utime(path, (newest + 1, newest + 1))


@dataclass
class SenderEndpoint:
    """An HTTP server on a real socket speaking the listener's protocol.

    ``key`` is what GET /dni/v1/key serves; ``fail_pings`` makes POSTs answer
    503 that many times. Received proofs are kept in ``pings``.
    """

    key: bytes
    fail_pings: int = 0
    redirect_to: str | None = None
    pings: list[list[str]] = field(default_factory=list)
    key_requests: int = 0
    retired: list[Any] = field(default_factory=list)  # served as the key endpoint's "retired"
    peers: list[str] = field(default_factory=list)  # client address of every request
    port: int = 0
    _loop: asyncio.AbstractEventLoop | None = None
    _thread: threading.Thread | None = None
    _runner: web.AppRunner | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _key(self, request: web.Request) -> web.Response:
        self.key_requests += 1
        self.peers.append(str(request.remote))
        return web.json_response({"key": encode_public(self.key), "retired": self.retired})

    async def _ping(self, request: web.Request) -> web.Response:
        self.peers.append(str(request.remote))
        if self.redirect_to is not None:
            raise web.HTTPTemporaryRedirect(self.redirect_to)
        if self.fail_pings > 0:
            self.fail_pings -= 1
            return web.json_response({"error": "down"}, status=503)
        data: dict[str, Any] = await request.json()
        self.pings.append(list(data["proofs"]))
        return web.json_response({"outcomes": ["accepted"] * len(data["proofs"])})

    def start(self, port: int | None = None) -> SenderEndpoint:
        self.port = port or free_port()
        ready = threading.Event()
        loop = asyncio.new_event_loop()
        self._loop = loop

        async def serve() -> None:
            app = web.Application()
            app.router.add_get("/dni/v1/key", self._key)
            app.router.add_post("/dni/v1/ping/{token}", self._ping)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            loop.run_forever()
            assert self._runner is not None
            loop.run_until_complete(self._runner.cleanup())
            loop.close()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()
        assert ready.wait(10)
        return self

    def stop(self) -> None:
        if self._loop is not None and self._thread is not None:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(10)


class SmtpSink:
    """A real aiosmtpd server that accepts every message and keeps it."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[str, list[str], bytes]] = []
        self.peers: list[str] = []  # client address of every message
        self.port = free_port()
        self.controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, _server: Any, session: Any, envelope: Any) -> str:
        self.peers.append(str(session.peer[0]))
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"

    def start(self) -> SmtpSink:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()
