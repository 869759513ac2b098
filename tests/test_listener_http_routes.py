"""The HTTP edge's hot path: which requests skip aiohttp's router (fast_path)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request

from scrubber.listener.http import HttpEdge
from scrubber.listener.metrics import ListenerMetrics
from scrubber.listener.ratelimit import Limits


async def _healthy() -> None:
    return None


class _Seen:
    """Which way each request went: straight to the ping, or to the router."""

    def __init__(self, prefix: str) -> None:
        self.edge = HttpEdge(
            committer=None,  # type: ignore[arg-type]  # never reached: ping_token is replaced
            metrics=ListenerMetrics(),
            limits=Limits.of(0, 0),
            key_public="",
            key_fingerprint="",
            health=_healthy,
            prefix=prefix,
        )
        self.ways: list[tuple[str, str]] = []

        async def ping_token(_request: web.BaseRequest, token: str) -> web.Response:
            self.ways.append(("ping", token))
            return web.Response()

        async def routed(request: web.BaseRequest) -> web.StreamResponse:
            self.ways.append(("router", request.path))
            return web.Response()

        self.edge.ping_token = ping_token  # type: ignore[method-assign]
        self.handle = self.edge.fast_path(routed)

    async def send(self, method: str, path: str, **headers: Any) -> tuple[str, str]:
        await self.handle(make_mocked_request(method, path, headers=headers))
        return self.ways[-1]


@pytest.mark.parametrize("prefix", ["", "/dni-proxy"])
def test_a_ping_skips_the_router_and_nothing_else_does(prefix: str) -> None:
    asyncio.run(_ways(prefix))


async def _ways(prefix: str) -> None:
    seen = _Seen(prefix)
    ping = f"{prefix}/dni/v1/ping"
    assert await seen.send("POST", f"{ping}/tok-EN_1") == ("ping", "tok-EN_1")
    assert await seen.send("POST", f"{ping}/t%41k") == ("ping", "tAk")  # decoded, as the router
    for method, path, headers in [
        ("POST", f"{ping}/tok", {"Expect": "100-continue"}),  # the router calls _expect
        ("GET", f"{ping}/tok", {}),
        ("POST", f"{ping}/", {}),
        ("POST", f"{ping}/a/b", {}),
        ("POST", f"{ping}/a%2Fb", {}),  # one segment to the router, two here
        ("POST", f"{prefix}/u/tok", {}),
        ("POST", f"{prefix}/dni/v1/pingx/tok", {}),
    ]:
        way = await seen.send(method, path, **headers)
        assert way[0] == "router", (method, path, headers)
    if prefix:
        assert (await seen.send("POST", "/dni/v1/ping/tok"))[0] == "router"
