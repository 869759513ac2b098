"""Registrant privacy: pings through a real SOCKS5 proxy (microsocks whose
outgoing side is 127.0.0.2, so the sender's end sees the proxy's address,
not ours at 127.0.0.1), and a random delay before each proof is sent."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from scrubber.config import Settings
from scrubber.keys import OperatorKey
from scrubber.responder.domain import DnsConfig
from scrubber.responder.models import Match
from scrubber.responder.ping import PingConfig
from scrubber.responder.proxy import parse_proxy
from scrubber.responder.run import RunResult, run_once
from scrubber.responder.store import ResponderStore, add_addresses
from scrubber.store.models import Ping
from scrubber.store.types import utcnow
from scrubber.transport.spool import SpoolSource
from scrubber.workspace import init_workspace, load_workspace, open_store
from tests.listener_support import make_batch, start_listener
from tests.net_support import Dnsmasq, Microsocks, dni_record
from tests.responder_support import BatchSpec, SenderEndpoint, SmtpSink, batch_articles, write_spool
from tests.support import free_port, run_cli

ALICE = "alice@example.org"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResponderStore]:
    opened = ResponderStore.open(tmp_path / "responder.db")
    yield opened
    opened.close()


@pytest.fixture
def socks() -> Iterator[Microsocks]:
    proxy = Microsocks(bind="127.0.0.2")
    yield proxy
    proxy.stop()


def one_batch(store: ResponderStore, key: OperatorKey, base: str, spool: Path) -> BatchSpec:
    add_addresses(store, [ALICE])
    spec = BatchSpec(key, base, smtp_domain="good.test")
    write_spool(spool, batch_articles(spec, [ALICE], parts=1))
    return spec


def run(store: ResponderStore, spool: Path, config: PingConfig) -> RunResult:
    return run_once(store, lambda: SpoolSource(spool), ping_config=config)


def test_key_check_and_http_ping_reach_the_sender_from_the_proxy(
    store: ResponderStore,
    key: OperatorKey,
    sender: SenderEndpoint,
    tmp_path: Path,
    socks: Microsocks,
) -> None:
    spec = one_batch(store, key, sender.base, tmp_path / "spool")
    config = PingConfig(
        proxy=parse_proxy(socks.url), retries=0, use_smtp=False, allow_private_http=True
    )
    result = run(store, tmp_path / "spool", config)
    assert result.pings.delivered == 1, result.pings.failures
    assert sender.pings == [[spec.proof(ALICE)]]
    assert sender.peers == ["127.0.0.2", "127.0.0.2"]  # GET /dni/v1/key, then the ping
    # Without the proxy the sender sees us.
    with ResponderStore.open(tmp_path / "direct.db") as direct:
        one_batch(direct, key, sender.base, tmp_path / "spool2")
        run(
            direct,
            tmp_path / "spool2",
            PingConfig(retries=0, use_smtp=False, allow_private_http=True),
        )
    assert sender.peers[2:] == ["127.0.0.1", "127.0.0.1"]


def test_smtp_ping_reaches_the_mail_host_from_the_proxy(
    store: ResponderStore,
    key: OperatorKey,
    sender: SenderEndpoint,
    tmp_path: Path,
    socks: Microsocks,
) -> None:
    names = Dnsmasq(
        tmp_path,
        txt={"_dni.good.test": [dni_record(key.fingerprint)]},
        mx={"good.test": ("mx.good.test", 10)},
        a={"mx.good.test": "127.0.0.1"},
        log_queries=True,
    )
    sink = SmtpSink().start()
    try:
        one_batch(store, key, sender.base, tmp_path / "spool")
        sender.fail_pings = 1_000
        config = PingConfig(
            proxy=parse_proxy(socks.url),
            dns=DnsConfig("127.0.0.1", names.port),
            smtp_port=sink.port,
            allow_private_http=True,
            allow_private_smtp=True,
            retries=0,
        )
        result = run(store, tmp_path / "spool", config)
    finally:
        sink.stop()
        names.stop()
    assert result.pings.delivered == 1, result.pings.failures
    assert sink.peers == ["127.0.0.2"]
    assert set(sender.peers) == {"127.0.0.2"}
    # The _dni and MX lookups went through the proxy too (DNS over TCP).
    asked = [line for line in names.log.splitlines() if "query[" in line and "probe" not in line]
    assert any("_dni.good.test from 127.0.0.2" in line for line in asked), names.log
    assert asked and all("from 127.0.0.2" in line for line in asked), asked


def test_with_a_proxy_but_no_dns_server_smtp_is_skipped_not_leaked(
    store: ResponderStore,
    key: OperatorKey,
    sender: SenderEndpoint,
    tmp_path: Path,
    socks: Microsocks,
) -> None:
    one_batch(store, key, sender.base, tmp_path / "spool")
    sender.fail_pings = 1_000
    config = PingConfig(proxy=parse_proxy(socks.url), retries=0, allow_private_http=True)
    result = run(store, tmp_path / "spool", config)
    assert result.pings.pending == 1
    assert "SMTP skipped: with --proxy, SMTP pings need --dns-server" in result.pings.failures[0]


def test_a_proxy_that_is_down_keeps_the_proof_owed(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    one_batch(store, key, sender.base, tmp_path / "spool")
    dead = parse_proxy(f"socks5h://127.0.0.1:{free_port()}")
    result = run(
        store,
        tmp_path / "spool",
        PingConfig(proxy=dead, retries=0, use_smtp=False, allow_private_http=True),
    )
    assert result.pings.delivered == 0 and result.pings.pending == 1
    assert sender.peers == []  # nothing went around the proxy
    assert "through socks5h://127.0.0.1:" in result.pings.failures[0]


def test_each_proof_waits_its_random_delay_drawn_once(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    one_batch(store, key, sender.base, tmp_path / "spool")
    start = utcnow()
    config = PingConfig(
        delay=3600, retries=0, use_smtp=False, clock=lambda: start, allow_private_http=True
    )
    first = run(store, tmp_path / "spool", config)
    assert first.pings.delivered == 0 and first.pings.requests == 0
    assert first.pings.pending == 1 and first.pings.waiting == 1
    due = first.pings.next_due
    assert due is not None and start - timedelta(seconds=5) < due <= start + timedelta(hours=1)
    again = run(store, tmp_path / "spool", config)
    assert again.pings.next_due == due and sender.pings == []  # drawn once, kept
    later = PingConfig(
        delay=3600, retries=0, use_smtp=False, clock=lambda: due, allow_private_http=True
    )
    sent = run(store, tmp_path / "spool", later)
    assert sent.pings.delivered == 1 and sent.pings.waiting == 0
    with store.read() as session:
        assert session.scalar(select(Match.not_before)) == due


def test_cli_proxy_and_delay(key: OperatorKey, sender: SenderEndpoint, tmp_path: Path) -> None:
    env = {"SCRUBBER_RESPONDER_DB": str(tmp_path / "r.db")}
    spool = tmp_path / "spool"
    write_spool(spool, batch_articles(BatchSpec(key, sender.base), [ALICE], parts=1))
    assert run_cli("responder", "add", ALICE, env=env).returncode == 0
    scan = ["responder", "scan", "--spool", str(spool), "--no-smtp"]
    for bad, says in [
        (["--proxy", "http://127.0.0.1:8080"], "--proxy must be socks5h://HOST:PORT"),
        (["--proxy", "socks5h://127.0.0.1"], "--proxy must be socks5h://HOST:PORT"),
        (["--ping-delay", "25"], "--ping-delay"),
        (["--dns-server", "dns.example"], "--dns-server must be an IP address"),
        (["--dns-server", "127.0.0.1:99999"], "--dns-server must be HOST:PORT"),
    ]:
        refused = run_cli(*scan, *bad, env=env)
        assert refused.returncode == 2 and says in refused.stderr, refused.stderr
        assert "Traceback" not in refused.stderr
    waited = run_cli(*scan, env=env)  # the default delay: up to 6 hours
    assert waited.returncode == 0, waited.stderr
    assert "1 proofs wait for their random delay" in waited.stdout
    assert sender.pings == []


def test_the_real_listener_records_the_proxy_as_the_pinging_peer(
    tmp_path: Path, socks: Microsocks
) -> None:
    port = free_port()
    init_workspace(tmp_path / "ws", Settings(response_base_url=f"http://127.0.0.1:{port}"))
    ws = load_workspace(tmp_path / "ws")
    batch = make_batch(ws, [ALICE, "bob@example.com"])
    spool = tmp_path / "spool"
    posted = run_cli("batch", "post", batch.id, "--server", f"spool:{spool}", workspace=ws.root)
    assert posted.returncode == 0, posted.stderr
    listener = start_listener(ws.root, "--http", f"127.0.0.1:{port}", channels=("http",))
    try:
        with ResponderStore.open(tmp_path / "responder.db") as store:
            add_addresses(store, [ALICE])
            config = PingConfig(
                proxy=parse_proxy(socks.url), retries=0, use_smtp=False, allow_private_http=True
            )
            result = run(store, spool, config)
    finally:
        assert listener.stop() == 0
    assert result.pings.delivered == 1, result.pings.failures
    with open_store(ws) as operator, operator.read() as session:
        peers = list(session.scalars(select(Ping.peer)))
    assert peers and all(peer.startswith("127.0.0.2") for peer in peers), peers
