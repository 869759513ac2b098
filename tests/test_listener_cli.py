"""`scrubber listen` bad usage: one-line errors, no traceback; rate limiter."""

from __future__ import annotations

import socket

from scrubber.listener import server
from scrubber.listener.ratelimit import RateLimiter
from scrubber.workspace import Workspace
from tests.support import run_cli


def test_bad_endpoint_is_a_usage_error(workspace: Workspace) -> None:
    result = run_cli("listen", "--http", "nonsense", workspace=workspace.root)
    assert result.returncode == 2
    assert result.stderr.startswith("error: --http wants HOST:PORT")
    assert "Traceback" not in result.stderr


def test_port_in_use_is_a_clear_error(workspace: Workspace) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = run_cli(
            "listen", "--smtp", "off", "--http", f"127.0.0.1:{port}", workspace=workspace.root
        )
    assert result.returncode == 1
    assert f"error: cannot listen for HTTP on 127.0.0.1:{port}" in result.stderr
    assert "Traceback" not in result.stderr


def test_both_channels_off(workspace: Workspace) -> None:
    result = run_cli("listen", "--smtp", "off", "--http", "off", workspace=workspace.root)
    assert result.returncode == 2
    assert "nothing to listen on" in result.stderr


def test_rate_limiter_refills_and_forgets() -> None:
    now = [0.0]
    limiter = RateLimiter(per_minute=60, clock=lambda: now[0])
    assert limiter.allow("a", 1000)  # one full request fits
    assert not limiter.allow("a", 1)
    now[0] += 10  # 10 s at 1 proof/s
    assert limiter.allow("a", 10)
    assert not limiter.allow("a", 1)
    assert limiter.allow("b", 1)  # keys are independent
    assert RateLimiter(per_minute=0).allow("x", 10**6)  # 0 = no limit


def test_the_listener_runs_on_uvloop_where_installed() -> None:
    """The event loop is the listener's bottleneck; uvloop's costs less a request
    (docs/performance.md, listen_http). uvloop is a dependency on POSIX."""
    import uvloop

    factory = server.event_loop_factory()
    assert factory is not None
    loop = factory()
    try:
        assert isinstance(loop, uvloop.Loop)
    finally:
        loop.close()
