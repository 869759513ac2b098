"""HTTP edge (aiohttp): parses requests and answers; ingest does the work.

POST /dni/v1/ping/<token>   JSON {"proofs": [...]} or text/plain, one a line
POST /u/<token>             RFC 8058 one-click unsubscribe (List-Unsubscribe=One-Click)
GET  /u/<token>             a page with a button that makes that POST; changes nothing
GET  /dni/v1/key            the operator's public key (key binding)
GET  /healthz               200 when the database answers, else 503
GET  /metrics               Prometheus text format
GET  /openapi.yaml          the OpenAPI 3.1 description of these routes
(all under the path of the public base URL, if it has one)
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import re
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from typing import Any
from urllib.parse import urlsplit

from aiohttp import hdrs, web
from aiohttp.http_exceptions import HttpProcessingError

from scrubber import keys, scheme
from scrubber.batch.info import KeyInUse
from scrubber.errors import (
    BadPing,
    Overloaded,
    StoreError,
    StoreUnavailable,
    UnsubscribeTokenError,
)
from scrubber.listener.committer import GroupCommitter
from scrubber.listener.gate import TrustedProxies
from scrubber.listener.metrics import ListenerMetrics
from scrubber.listener.pages import (
    ONE_CLICK_FIELD,
    ONE_CLICK_VALUE,
    PAGE_HEADERS,
    UNSUBSCRIBE_PAGE,
    UNSUBSCRIBED_PAGE,
)
from scrubber.listener.ping import (
    MAX_PROOFS,
    ONE_CLICK,
    Outcome,
    PingRequest,
    PingResult,
    UnsubscribeRequest,
)
from scrubber.listener.ratelimit import Admission, Limits
from scrubber.unsubscribe import Subscriber, parse_token

log = logging.getLogger("scrubber.listener")

MAX_BODY = 64 * 1024
# Bytes a body may spend on each proof it carries, however it is spelled:
# MAX_BODY over MAX_PROOFS, rounded up, so a client whose bucket is full
# (room for MAX_PROOFS) may always announce MAX_BODY. A registrant's JSON
# or text spends 25-30 bytes a proof.
BODY_PER_PROOF = -(-MAX_BODY // MAX_PROOFS)
RETRY_AFTER = "5"
# What web.json_response sends, given whole: cheaper than content_type= and charset=.
_JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8"}
MAX_CACHED_ANSWERS = 1024
RETIRED_KEYS_TTL = 60.0  # seconds the key endpoint's list of earlier keys is reused
_BLANK = " \t\r"
_BARE_TYPES = frozenset({"application/json", "text/plain"})
# What aiohttp's form parser raises for a body that is not the form it says
# (a multipart body without its boundary, broken parts, an unknown part
# encoding, a part without a name, too many fields): the client's mistake.
_FORM_ERRORS = (
    web.RequestPayloadError,
    web.HTTPBadRequest,
    HttpProcessingError,
    ValueError,
    RuntimeError,
    AssertionError,
)
# The usual ping, one proof in the compact or the default JSON spacing: read
# without the JSON parser, which costs a few microseconds more on the hot path.
_ONE_PROOF = re.compile(rb'\{"proofs": ?\["([A-Za-z0-9_-]{1,64})"\]\}')
_FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})
# The ping route, before its token: for the router and for fast_path alike.
PING_PATH = "/dni/v1/ping/"
# One path segment, as aiohttp's router matches ``{token}`` (fast_path).
_SEGMENT = re.compile(r"[^{}/]+")
Handler = Callable[[web.BaseRequest], Awaitable[web.StreamResponse]]


@functools.cache
def openapi_document() -> bytes:
    """The OpenAPI 3.1 description of this API (docs/openapi.yaml links to it)."""
    return resources.files("scrubber.listener").joinpath("openapi.yaml").read_bytes()


def path_prefix(base_url: str) -> str:
    """The path under which the listener serves, from the public base URL:
    ``https://host/dni-proxy/`` gives ``/dni-proxy``, a bare origin ``""``
    (docs/scheme.md, "Key endpoint")."""
    return urlsplit(base_url).path.rstrip("/")


def parse_proofs(content_type: str, body: bytes) -> list[str]:
    """The proofs of a ping body; raises BadPing when the body is malformed."""
    if content_type == "application/json":
        proofs = _json_proofs(body)
    elif content_type == "text/plain":
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise BadPing("body is not valid UTF-8") from None
        # LF (or CRLF) only, spaces and tabs only: what docs/scheme.md says, no
        # more (str.splitlines and str.strip know many more separators).
        proofs = [p for line in text.split("\n") if (p := line.strip(_BLANK))]
    else:
        raise BadPing("send application/json or text/plain", status=415)
    if not proofs:
        raise BadPing("no proofs in the request")
    if len(proofs) > MAX_PROOFS:
        raise BadPing(f"too many proofs: {len(proofs)} (at most {MAX_PROOFS} a request)")
    return proofs


def _json_proofs(body: bytes) -> list[str]:
    one = _ONE_PROOF.fullmatch(body)
    if one is not None:  # what a registrant's responder sends: json.loads would agree
        return [one.group(1).decode("ascii")]
    try:
        data = json.loads(body)
    except ValueError:  # includes invalid UTF-8
        raise BadPing("body is not valid JSON") from None
    except RecursionError:  # nested deeper than the parser goes
        raise BadPing("body is nested too deeply") from None
    proofs = data.get("proofs") if isinstance(data, dict) else None
    if not isinstance(proofs, list) or not all(isinstance(p, str) for p in proofs):
        raise BadPing('expected {"proofs": ["<base64url>", ...]}')
    return proofs


def check_one_click(form: Mapping[str, object]) -> bool:
    """Whether a one-click body is the RFC 8058 one (``List-Unsubscribe=One-Click``);
    True when it also says it came from our own page (``from=page``).
    Raises BadPing when it is not."""
    if form.get(ONE_CLICK_FIELD) != ONE_CLICK_VALUE:
        raise BadPing(f"the body must hold {ONE_CLICK_FIELD}={ONE_CLICK_VALUE}")
    return form.get("from") == "page"


@dataclass
class HttpEdge:
    committer: GroupCommitter
    metrics: ListenerMetrics
    limits: Limits
    key_public: str
    key_fingerprint: str
    health: Callable[[], Awaitable[None]]
    read_timeout: float = 15.0  # seconds a slow client gets to deliver its body
    trusted: TrustedProxies = field(default_factory=TrustedProxies)
    prefix: str = ""  # the path of the public base URL, e.g. "/dni-proxy" (see path_prefix)
    unsubscribe_secret: bytes = b""  # the workspace's token secret (unsubscribe.load_secret)
    # The keys of unexpired batches (batch/info.py keys_in_use), for the key endpoint.
    keys_in_use: Callable[[], Awaitable[list[KeyInUse]]] | None = None
    _retired: list[dict[str, str]] | None = None
    _retired_at: float = float("-inf")
    _retired_lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    _answers: dict[tuple[str, Outcome, int], bytes] = field(default_factory=dict)

    def app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY)
        at = self.prefix
        app.add_routes(
            [
                web.post(f"{at}{PING_PATH}{{token}}", self.ping, expect_handler=_expect),
                web.post(f"{at}/u/{{token}}", self.one_click, expect_handler=_expect),
                web.get(f"{at}/u/{{token}}", self.one_click_page),
                web.get(f"{at}/dni/v1/key", self.key),
                web.get(f"{at}/healthz", self.healthz),
                web.get(f"{at}/metrics", self.metrics_text),
                web.get(f"{at}/openapi.yaml", self.openapi),
            ]
        )
        return app

    def fast_path(self, routed: Handler) -> Handler:
        """The request handler for aiohttp's server: a ping straight to
        ``ping_token``, anything else to ``routed`` (the application, with
        its router: ``runner.server.request_handler``).

        aiohttp's router, match info and application handler cost the hot
        path about 3 us of the loop's 40 a ping (docs/performance.md,
        listen_http). The ping route's shape is simple enough to match by
        hand: a POST to ``<prefix>/dni/v1/ping/<one segment>``. A request
        with ``Expect`` goes through the router, which calls ``_expect``.
        """
        start = f"{self.prefix}{PING_PATH}"
        cut = len(start)

        async def handle(request: web.BaseRequest) -> web.StreamResponse:
            if request.method == hdrs.METH_POST and hdrs.EXPECT not in request.headers:
                path = request.path
                if path.startswith(start) and _SEGMENT.fullmatch(path, cut):
                    return await self.ping_token(request, path[cut:])
            return await routed(request)

        return handle

    async def ping(self, request: web.Request) -> web.Response:
        """The ping route, through the router (see ``fast_path``)."""
        return await self.ping_token(request, request.match_info["token"])

    async def ping_token(self, request: web.BaseRequest, token: str) -> web.Response:
        # Counted here rather than in a middleware: a middleware costs every
        # request a wrapper, and the ping route is the hot path.
        response = await self._ping(request, token)
        self.metrics.answered("http", response.status)
        return response

    async def _ping(self, request: web.BaseRequest, token: str) -> web.Response:
        peer = self.client(request)
        room = self.limits.room(peer)  # proofs it may still send
        if room < 1:  # in debt: not even the body is read
            return _rate_limited()
        announced = request.content_length or 0
        if announced > MAX_BODY:  # announced: refused before reading
            return _too_large()
        if announced > BODY_PER_PROOF * room:
            # A client that sent worthless proofs lately, announcing more
            # than it could have checked: refused before its body is read
            # and parsed (a forger's 45 KB, over and over; docs/performance.md).
            return _rate_limited()
        try:
            body = await self._body(request)
            proofs = parse_proofs(_media_type(request), body)
        except TimeoutError:
            return _error(408, "request body not received in time")
        except web.HTTPRequestEntityTooLarge:
            return _too_large()
        except web.RequestPayloadError:  # e.g. a corrupt gzip body or bad chunking
            return _error(400, "request body could not be decoded")
        except ConnectionResetError:  # the client left; nobody reads this answer
            return _error(400, "connection closed before the body arrived")
        except BadPing as error:
            return _error(error.status, str(error))
        admission = self.limits.admit(peer, token, len(proofs))
        if admission is Admission.REFUSED:
            self.metrics.outcome("http", Outcome.RATE_LIMITED, len(proofs))
            log.debug("event=rate-limited channel=http peer=%s proofs=%d", peer, len(proofs))
            return _rate_limited()
        suspect = admission is Admission.SUSPECT
        worthless = 0
        try:
            result = await self.committer.ping(
                PingRequest(token, proofs, "http", peer), suspect=suspect
            )
            worthless = result.worthless
        except Overloaded:
            if suspect:
                self.metrics.outcome("http", Outcome.RATE_LIMITED, len(proofs))
                return _rate_limited()
            return _error(503, "not stored, try again later", retry=True)
        except StoreUnavailable:  # the writer logged why; clients learn only to retry
            return _error(503, "not stored, try again later", retry=True)
        finally:
            self.limits.settle(peer, token, len(proofs), worthless)
        if not result.known_batch:
            return _error(404, "unknown response token")
        return web.Response(body=self._answer(result), headers=_JSON_HEADERS)

    async def one_click(self, request: web.Request) -> web.Response:
        response = await self._one_click(request)
        self.metrics.answered("http", response.status)
        return response

    async def _one_click(self, request: web.Request) -> web.Response:
        """RFC 8058: 200 and an empty body once the suppression is committed."""
        peer = self.client(request)
        if self.limits.refused(peer):
            self.metrics.unsubscribed(ONE_CLICK, "rate-limited")
            return _rate_limited()
        who = self._subscriber(request, peer)
        if who is None:
            return _error(404, "unknown unsubscribe link")
        if (request.content_length or 0) > MAX_BODY:
            return _too_large()
        try:
            from_page = await self._one_click_body(request)
        except TimeoutError:
            return _error(408, "request body not received in time")
        except web.HTTPRequestEntityTooLarge:
            return _too_large()
        except _FORM_ERRORS:
            return _error(400, "request body could not be decoded")
        except ConnectionResetError:
            return _error(400, "connection closed before the body arrived")
        except BadPing as error:
            return _error(error.status, str(error))
        token = request.match_info["token"].lower()
        unsubscribe = UnsubscribeRequest(
            token, who.list_id, who.address_id, who.check, ONE_CLICK, peer, secrets.token_hex(8)
        )
        answer = await self._unsubscribe(unsubscribe)
        if answer is not None:
            return answer
        if from_page:
            return web.Response(body=UNSUBSCRIBED_PAGE, headers=PAGE_HEADERS)
        return web.Response(status=200)

    async def _unsubscribe(self, unsubscribe: UnsubscribeRequest) -> web.Response | None:
        """Through the committer like a ping; None once committed, else the refusal."""
        peer, token = unsubscribe.peer, unsubscribe.token
        admission = self.limits.admit(peer, token, 1)
        if admission is Admission.REFUSED:
            self.metrics.unsubscribed(ONE_CLICK, "rate-limited")
            return _rate_limited()
        worthless = 0
        try:
            result = await self.committer.ping(unsubscribe, suspect=admission is Admission.SUSPECT)
            worthless = result.worthless
        except Overloaded:
            if admission is Admission.SUSPECT:
                self.metrics.unsubscribed(ONE_CLICK, "rate-limited")
                return _rate_limited()
            return _error(503, "not stored, try again later", retry=True)
        except StoreUnavailable:
            return _error(503, "not stored, try again later", retry=True)
        finally:
            self.limits.settle(peer, token, 1, worthless)
        if result.outcomes[0] is Outcome.INVALID:
            return _error(404, "unknown unsubscribe link")  # the address is gone
        return None

    async def one_click_page(self, request: web.Request) -> web.Response:
        """A page whose button makes the one-click POST. Changes nothing: mail
        scanners follow links, and only a POST unsubscribes."""
        peer = self.client(request)
        if self.limits.refused(peer):
            response = _rate_limited()
        elif self._subscriber(request, peer) is None:
            response = _error(404, "unknown unsubscribe link")
        else:
            response = web.Response(body=UNSUBSCRIBE_PAGE, headers=PAGE_HEADERS)
        self.metrics.answered("http", response.status)
        return response

    def _subscriber(self, request: web.Request, peer: str) -> Subscriber | None:
        """Whom the token names, by its MAC alone (no database); None, and
        the client charged as for a worthless proof, when forged or malformed."""
        try:
            return parse_token(self.unsubscribe_secret, request.match_info["token"])
        except UnsubscribeTokenError:
            self.limits.worthless(peer, 1)
            self.metrics.unsubscribed(ONE_CLICK, "refused")
            return None

    async def _one_click_body(self, request: web.Request) -> bool:
        if request.content_type not in _FORM_TYPES:
            raise BadPing(
                "send application/x-www-form-urlencoded or multipart/form-data", status=415
            )
        if request.content.is_eof():
            form = await request.post()
        else:
            async with asyncio.timeout(self.read_timeout):
                form = await request.post()
        return check_one_click(form)

    def client(self, request: web.BaseRequest) -> str:
        """The real client: the TCP peer, or whom a trusted proxy forwards for."""
        peer = request.remote or "unknown"
        if not self.trusted:
            return peer
        return self.trusted.client(peer, request.headers.getall(hdrs.X_FORWARDED_FOR, []))

    async def _body(self, request: web.BaseRequest) -> bytes:
        content = request.content
        if not content.is_eof():
            async with asyncio.timeout(self.read_timeout):
                return await request.read()
        # All there already, the usual small ping: taken at once rather than
        # through read()'s loop of awaits, with the same cap.
        body = content.read_nowait()
        if len(body) > MAX_BODY:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_BODY, actual_size=len(body))
        return body

    def _answer(self, result: PingResult) -> bytes:
        """The JSON answer; those of one-proof pings (most) are made once per batch."""
        if len(result.outcomes) != 1 or result.batch_id is None:
            return _json_bytes(_body(result))
        key = (result.batch_id, result.outcomes[0], result.suppressed)
        answer = self._answers.get(key)
        if answer is None:
            if len(self._answers) >= MAX_CACHED_ANSWERS:
                self._answers.clear()
            answer = self._answers[key] = _json_bytes(_body(result))
        return answer

    async def key(self, _request: web.Request) -> web.Response:
        try:
            retired = await self._retired_keys()
        except StoreError:  # without them a responder would call old batches forged
            return _error(503, "database unavailable", retry=True)
        return web.json_response(
            {
                "scheme": scheme.SCHEME_NAME,
                "key": self.key_public,
                "fingerprint": self.key_fingerprint,
                "retired": retired,
            }
        )

    async def _retired_keys(self) -> list[dict[str, str]]:
        """Earlier keys still bound to unexpired batches (docs/scheme.md, Key
        endpoint); read at most once a minute, so the public endpoint cannot
        make the database work per request."""
        async with self._retired_lock:
            fresh = time.monotonic() - self._retired_at < RETIRED_KEYS_TTL
            if self._retired is None or not fresh:
                used = await self.keys_in_use() if self.keys_in_use else []
                self._retired = [_key_json(k) for k in used if k.key_public != self.key_public]
                self._retired_at = time.monotonic()
            return self._retired

    async def healthz(self, _request: web.Request) -> web.Response:
        try:
            await self.health()
        except StoreError:
            return _error(503, "database unavailable", retry=True)
        return web.json_response({"status": "ok"})

    async def openapi(self, _request: web.Request) -> web.Response:
        return web.Response(body=openapi_document(), content_type="application/yaml")

    async def metrics_text(self, _request: web.Request) -> web.Response:
        body, content_type = self.metrics.render()
        return web.Response(body=body, headers={"Content-Type": content_type})


def _key_json(used: KeyInUse) -> dict[str, str]:
    return {
        "key": used.key_public,
        "fingerprint": keys.fingerprint(keys.decode_public(used.key_public)),
        "until": used.until.strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


async def _expect(request: web.Request) -> web.Response | None:
    """``Expect: 100-continue``: a body announced over the cap is refused at once
    rather than invited and then timed out."""
    if request.headers.get(hdrs.EXPECT, "").lower() != "100-continue":
        return _error(417, "only Expect: 100-continue is understood")
    if (request.content_length or 0) > MAX_BODY:
        return _too_large()
    if request.version >= (1, 1):
        await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        request.writer.output_size = 0  # the answer proper has not started yet
    return None


class ClientErrorFilter(logging.Filter):
    """aiohttp logs a malformed request with a traceback quoting the client's
    bytes; a client's mistake is one line naming the error class instead."""

    def filter(self, record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info else None
        if isinstance(error, HttpProcessingError | web.RequestPayloadError | ConnectionError):
            record.msg = "event=bad-request error=%s"
            record.args = (type(error).__name__,)
            record.exc_info = record.exc_text = None
            record.levelno, record.levelname = logging.INFO, "INFO"
        return True


def protocol_logger() -> logging.Logger:
    """The logger given to aiohttp's connection handler (``AppRunner(logger=)``)."""
    logger = logging.getLogger("scrubber.listener.protocol")
    if not any(isinstance(f, ClientErrorFilter) for f in logger.filters):
        logger.addFilter(ClientErrorFilter())
    return logger


def _media_type(request: web.BaseRequest) -> str:
    """The body's media type; the usual bare header skips aiohttp's parsing
    (a few microseconds a request on the hot path)."""
    raw = request.headers.get(hdrs.CONTENT_TYPE, "")
    return raw if raw in _BARE_TYPES else request.content_type


def _body(result: PingResult) -> dict[str, Any]:
    return {
        "batch": result.batch_id,
        "counts": result.counts(),
        "outcomes": [outcome.value for outcome in result.outcomes],
        "suppressed": result.suppressed,
    }


def _json_bytes(data: dict[str, Any]) -> bytes:
    return json.dumps(data).encode()


def _rate_limited() -> web.Response:
    response = _error(429, "rate limited; try again later", retry=True)
    # Closed: the client's next connection is refused at the gate, before
    # any parsing (gate.py), and its unread body is not drained.
    response.force_close()
    return response


def _too_large() -> web.Response:
    response = _error(413, f"body over {MAX_BODY} bytes")
    response.force_close()  # the unread body would otherwise be taken for the next request
    return response


def _error(status: int, message: str, *, retry: bool = False) -> web.Response:
    headers = {"Retry-After": RETRY_AFTER} if retry else None
    return web.json_response({"error": message}, status=status, headers=headers)
