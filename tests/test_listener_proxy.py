"""Behind the documented nginx: the listener keys its limits and its audit
trail on the real client, and believes X-Forwarded-For only from a trusted
proxy. Runs Debian's nginx (scripts/provision-nginx.sh) with the exact
configuration docs/deployment.md shows."""

from __future__ import annotations

import asyncio
import json
import os
import smtplib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from scrubber import scheme
from scrubber.store.models import Batch, Ping
from scrubber.workspace import Workspace, open_store
from tests.listener_support import Listener, make_batch, proof_for, start_listener
from tests.nginx_support import (
    documented_proxy_config,
    documented_tls_proxy,
    documented_with,
    nginx_binary,
    run_nginx,
)
from tests.support import free_port, require_service

ADDRESSES = [f"proxied{i}@example.org" for i in range(4)]


@pytest.fixture
def batch(workspace: Workspace) -> Batch:
    return make_batch(workspace, ADDRESSES)


@pytest.fixture
def listener(workspace: Workspace, batch: Batch) -> Iterator[Listener]:
    nginx_binary()  # skip (or fail under CI) before starting anything
    running = start_listener(
        workspace.root, "--trusted-proxy", "127.0.0.1", "--client-rate", "600", channels=("http",)
    )
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture
def proxy(tmp_path: Path, listener: Listener) -> Iterator[str]:
    port = free_port()
    # One listener: both of the documented fleet's upstreams are it.
    config = documented_tls_proxy(tmp_path, port, (listener.ports["http"],) * 2)
    with run_nginx(tmp_path / "nginx", config):
        yield f"https://127.0.0.1:{port}"


async def ping(base: str, source: str, token: str, proofs: list[str], **headers: str) -> int:
    connector = aiohttp.TCPConnector(local_addr=(source, 0), ssl=False)
    async with aiohttp.ClientSession(connector=connector) as http:
        body = json.dumps({"proofs": proofs}).encode()
        all_headers = {"Content-Type": "application/json", **headers}
        async with http.post(f"{base}/dni/v1/ping/{token}", data=body, headers=all_headers) as r:
            await r.read()
            return r.status


def peers(workspace: Workspace) -> list[Any]:
    with open_store(workspace) as store, store.read() as session:
        return list(session.scalars(select(Ping.peer).order_by(Ping.id)))


def test_clients_behind_the_proxy_keep_their_own_budgets(
    workspace: Workspace, batch: Batch, listener: Listener, proxy: str
) -> None:
    forged = [scheme.b64url(os.urandom(16)) for _ in range(1000)]

    async def scenario() -> list[int]:
        return [
            await ping(proxy, "127.0.0.5", batch.token, forged),  # worthless: charged
            await ping(proxy, "127.0.0.5", batch.token, forged),  # no room left
            await ping(proxy, "127.0.0.6", batch.token, [proof_for(ADDRESSES[0], batch)]),
            # A forged header is appended to, not believed: still 127.0.0.6.
            await ping(
                proxy,
                "127.0.0.6",
                batch.token,
                [proof_for(ADDRESSES[1], batch)],
                **{"X-Forwarded-For": "127.0.0.5"},
            ),
            # Straight to the listener, the header is ignored: 127.0.0.7 is no proxy.
            await ping(
                listener.http,
                "127.0.0.7",
                batch.token,
                [proof_for(ADDRESSES[2], batch)],
                **{"X-Forwarded-For": "192.0.2.99"},
            ),
        ]

    assert asyncio.run(scenario()) == [200, 429, 200, 200, 200]
    assert peers(workspace) == ["127.0.0.6", "127.0.0.6", "127.0.0.7"]


def test_one_click_through_the_documented_proxy(
    workspace: Workspace, listener: Listener, proxy: str
) -> None:
    """The documented configuration passes /u/ on: a one-click POST through
    nginx is answered 200 with an empty body and recorded for its client."""
    from scrubber import ledger, unsubscribe

    secret = unsubscribe.load_secret(workspace.root)
    with open_store(workspace) as store:
        who = unsubscribe.subscriber(store, ADDRESSES[3], "customers", secret=secret)
    url = f"{proxy}/u/{unsubscribe.make_token(secret, who)}"

    async def post() -> tuple[int, bytes]:
        connector = aiohttp.TCPConnector(local_addr=("127.0.0.8", 0), ssl=False)
        async with aiohttp.ClientSession(connector=connector) as http:
            form = {"Content-Type": "application/x-www-form-urlencoded"}
            async with http.post(url, data=b"List-Unsubscribe=One-Click", headers=form) as r:
                return r.status, await r.read()

    assert asyncio.run(post()) == (200, b"")
    with open_store(workspace) as store:
        (row,) = ledger.rows(store)
    assert (row.canonical, row.channel, row.client) == (ADDRESSES[3], "one-click", "127.0.0.0/24")


@pytest.fixture
def smtp_listener(workspace: Workspace, batch: Batch) -> Iterator[Listener]:
    require_service("SCRUBBER_TEST_NGINX_STREAM", "nginx's stream module")
    running = start_listener(
        workspace.root,
        "--trusted-proxy", "127.0.0.1", "--smtp-proxy-protocol", "--client-rate", "600",
        channels=("smtp",),
    )  # fmt: skip
    yield running
    assert running.stop() == 0, running.log()


@pytest.fixture
def smtp_proxy(tmp_path: Path, smtp_listener: Listener) -> Iterator[int]:
    port = free_port()
    config = documented_with(
        documented_proxy_config("nginx stream for SMTP"),
        ("listen 25;", f"listen 127.0.0.1:{port};"),
        ("proxy_pass 127.0.0.1:2525;", f"proxy_pass 127.0.0.1:{smtp_listener.smtp_port};"),
    )
    module = os.environ["SCRUBBER_TEST_NGINX_STREAM"]
    with run_nginx(tmp_path / "nginx", "", top=f"load_module {module};\n{config}"):
        yield port


def smtp_send(port: int, source: str, rcpt: str, proofs: list[str]) -> int:
    """The answer to RCPT if it refused, else to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=30, source_address=(source, 0)) as client:
        client.ehlo()
        client.mail("")
        code, _ = client.rcpt(rcpt)
        if code != 250:
            return code
        lines = "".join(f"DNI-Proof: {p}\r\n" for p in proofs)
        code, _ = client.data(f"Subject: opt-out\r\n\r\n{lines}".encode())
        return code


def test_smtp_behind_nginx_with_proxy_protocol_sees_the_real_client(
    workspace: Workspace, batch: Batch, smtp_listener: Listener, smtp_proxy: int
) -> None:
    rcpt = f"dni-{batch.token}@{workspace.settings.response_domain}"
    forged = [scheme.b64url(os.urandom(16)) for _ in range(1000)]
    answers = [
        smtp_send(smtp_proxy, "127.0.0.5", rcpt, forged),  # worthless: charged to 127.0.0.5
        smtp_send(smtp_proxy, "127.0.0.5", rcpt, forged),  # no room left
        smtp_send(smtp_proxy, "127.0.0.6", rcpt, [proof_for(ADDRESSES[0], batch)]),
        # Straight to the listener: 127.0.0.7 is no proxy, served as ever.
        smtp_send(smtp_listener.smtp_port, "127.0.0.7", rcpt, [proof_for(ADDRESSES[1], batch)]),
    ]
    assert answers == [250, 451, 250, 250]  # 451 4.7.1: 127.0.0.5 is rate limited, alone
    assert peers(workspace) == ["127.0.0.6", "127.0.0.7"]  # the audit trail: not nginx's 127.0.0.1


def test_a_trusted_proxy_without_a_proxy_header_is_not_served(
    workspace: Workspace, batch: Batch, smtp_listener: Listener
) -> None:
    rcpt = f"dni-{batch.token}@{workspace.settings.response_domain}"
    with pytest.raises(smtplib.SMTPServerDisconnected):
        smtp_send(smtp_listener.smtp_port, "127.0.0.1", rcpt, [proof_for(ADDRESSES[0], batch)])
    assert peers(workspace) == []
