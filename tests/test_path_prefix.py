"""A base URL with a path works end to end: `init --base-url http://host:port/prefix`
publishes Respond-HTTP under the prefix, the listener serves every route
there, and the responder finds the key endpoint under the prefix too."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scrubber.listener.http import path_prefix
from scrubber.responder.ping import PingConfig, key_url
from scrubber.responder.run import run_once
from scrubber.responder.store import ResponderStore, add_addresses
from scrubber.store.models import Suppression
from scrubber.transport.spool import SpoolSource
from scrubber.workspace import load_workspace, open_store
from tests.listener_support import make_batch, start_listener
from tests.support import free_port, run_cli


@pytest.mark.parametrize(
    ("base", "prefix"),
    [
        ("https://dni.example.com", ""),
        ("https://dni.example.com/", ""),
        ("https://dni.example.com/dni-proxy", "/dni-proxy"),
        ("https://dni.example.com/a/b/", "/a/b"),
        ("http://127.0.0.1:8025/x", "/x"),
    ],
)
def test_the_listener_prefix_is_the_path_of_the_base_url(base: str, prefix: str) -> None:
    assert path_prefix(base) == prefix


@pytest.mark.parametrize(
    ("respond_http", "key"),
    [
        ("https://h.example/dni/v1/ping/TOKEN", "https://h.example/dni/v1/key"),
        ("https://h.example:8443/p/q/dni/v1/ping/TOKEN", "https://h.example:8443/p/q/dni/v1/key"),
        # Only the final /ping/ counts, even if the prefix holds one.
        ("http://h.example/ping/dni/v1/ping/TOKEN", "http://h.example/ping/dni/v1/key"),
    ],
)
def test_the_key_endpoint_is_derived_from_respond_http(respond_http: str, key: str) -> None:
    assert key_url(respond_http) == key


def status_of(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=30) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code


def test_prefix_end_to_end_from_init_to_suppression(tmp_path: Path) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}/dni-proxy"
    created = run_cli(
        "init", str(tmp_path / "ws"), "--base-url", base, "--response-domain", "dni.example.test"
    )
    assert created.returncode == 0, created.stderr
    ws = load_workspace(tmp_path / "ws")
    batch = make_batch(ws, ["reader@example.com", "other@example.com"])
    assert batch.respond_http == f"{base}/dni/v1/ping/{batch.token}"
    spool = tmp_path / "spool"
    posted = run_cli("batch", "post", batch.id, "--server", f"spool:{spool}", workspace=ws.root)
    assert posted.returncode == 0, posted.stderr

    listener = start_listener(ws.root, "--http", f"127.0.0.1:{port}", channels=())
    store = ResponderStore.open(tmp_path / "responder.db")
    try:
        with urllib.request.urlopen(f"{base}/dni/v1/key", timeout=30) as response:
            assert json.loads(response.read())["key"]
        assert status_of(f"{base}/healthz") == 200
        assert status_of(f"http://127.0.0.1:{port}/dni/v1/key") == 404  # not at the root
        add_addresses(store, ["reader@example.com"])
        config = PingConfig(use_smtp=False, retries=1, backoff=0.01, allow_private_http=True)
        result = run_once(store, lambda: SpoolSource(spool), ping_config=config)
        assert result.pings.delivered == 1, result.pings.failures
    finally:
        store.close()
        assert listener.stop() == 0, listener.log()
    sender = open_store(ws)
    try:
        with sender.read() as session:
            assert session.scalar(select(func.count()).select_from(Suppression)) == 1
    finally:
        sender.close()
