"""A fake batch cannot aim the responder's HTTP requests (key check, pings) at
loopback or a private network: the host is resolved with the real dnsmasq,
every address is judged, and a refused host gets no request at all, the
batch is refused with its reason. ``--allow-private`` lets tests through."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from scrubber.keys import OperatorKey, fingerprint
from scrubber.responder.domain import DnsConfig
from scrubber.responder.models import SeenBatch
from scrubber.responder.ping import PingConfig
from scrubber.responder.run import RunResult, run_once
from scrubber.responder.store import ResponderStore, add_addresses
from scrubber.transport.spool import SpoolSource
from tests.net_support import Dnsmasq, dni_record
from tests.responder_support import BatchSpec, SenderEndpoint, SmtpSink, batch_articles, write_spool
from tests.support import run_cli

ALICE = "alice@example.org"


@pytest.fixture
def dns(tmp_path: Path, key: OperatorKey) -> Iterator[Dnsmasq]:
    server = Dnsmasq(
        tmp_path,
        txt={"_dni.good.test": [dni_record(fingerprint(key.public_raw))]},
        mx={"good.test": ("mx.good.test", 10)},
        # mixed.test: a public A record, a loopback AAAA (both given to --host-record).
        a={"mx.good.test": "127.0.0.1", "loop.test": "127.0.0.1", "mixed.test": "8.8.8.8,::1"},
    )
    yield server
    server.stop()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    started = SmtpSink().start()
    yield started
    started.stop()


def scan_batch_at(
    host: str, tmp_path: Path, key: OperatorKey, sender: SenderEndpoint, config: PingConfig
) -> tuple[RunResult, SeenBatch]:
    """Scan one batch listing ALICE whose Respond-HTTP names ``host`` at the sender's port."""
    spec = BatchSpec(key, f"http://{host}:{sender.port}", smtp_domain="good.test")
    write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=1))
    with ResponderStore.open(tmp_path / "responder.db") as store:
        add_addresses(store, [ALICE])
        result = run_once(store, lambda: SpoolSource(tmp_path / "spool"), ping_config=config)
        with store.read() as session:
            batch = session.scalars(select(SeenBatch)).one()
            session.expunge(batch)
    return result, batch


def config_for(dns: Dnsmasq, sink: SmtpSink, **changes: bool) -> PingConfig:
    """SMTP to the sink allowed, so only the HTTP check can stop the ping."""
    return PingConfig(
        dns=DnsConfig("127.0.0.1", dns.port, timeout=2),
        smtp_port=sink.port,
        allow_private_smtp=True,
        retries=0,
        **changes,
    )


@pytest.mark.parametrize(
    ("host", "reason"),
    [
        ("127.0.0.1", "127.0.0.1 is a loopback address"),
        ("0.0.0.0", "0.0.0.0 is a private address"),
        ("[::ffff:127.0.0.1]", "::ffff:127.0.0.1 is a private address"),
        ("[::1]", "::1 is a loopback address"),
        ("10.1.2.3", "10.1.2.3 is a private address"),
        ("169.254.169.254", "169.254.169.254 is a private address"),  # cloud metadata
        ("loop.test", "loop.test is 127.0.0.1, a loopback address"),
        ("mixed.test", "mixed.test is ::1, a loopback address"),  # every address judged
    ],
)
def test_a_batch_naming_a_non_public_http_host_gets_no_request(
    host: str,
    reason: str,
    tmp_path: Path,
    key: OperatorKey,
    sender: SenderEndpoint,
    dns: Dnsmasq,
    sink: SmtpSink,
) -> None:
    result, batch = scan_batch_at(host, tmp_path, key, sender, config_for(dns, sink))
    assert sender.peers == [] and sink.messages == []  # no key check, no ping, no SMTP
    assert result.pings.delivered == 0 and result.pings.requests == 0
    assert result.pings.refused == 1 and result.pings.pending == 0
    (failure,) = result.pings.failures
    assert "no ping, no request to" in failure and reason in failure, failure
    assert "give --allow-private to permit it" in failure
    assert batch.status == "refused" and batch.reason is not None and reason in batch.reason


@pytest.mark.parametrize("host", ["127.0.0.1", "loop.test"])
def test_allow_private_lets_the_same_batch_reach_a_local_sender(
    host: str,
    tmp_path: Path,
    key: OperatorKey,
    sender: SenderEndpoint,
    dns: Dnsmasq,
    sink: SmtpSink,
) -> None:
    config = config_for(dns, sink, allow_private_http=True)
    result, batch = scan_batch_at(host, tmp_path, key, sender, config)
    assert result.pings.delivered == 1, result.pings.failures
    assert batch.status == "bound" and len(sender.peers) == 2  # the key check, the ping


def test_a_host_without_an_address_stays_owed(
    tmp_path: Path, key: OperatorKey, sender: SenderEndpoint, dns: Dnsmasq, sink: SmtpSink
) -> None:
    result, batch = scan_batch_at("missing.test", tmp_path, key, sender, config_for(dns, sink))
    assert result.pings.pending == 1 and result.pings.refused == 0
    assert "missing.test has no address" in result.pings.failures[0]
    assert batch.status == "ok" and sender.peers == []  # a later run checks it again


def test_cli_refuses_a_loopback_sender_with_a_reason_unless_allowed(
    key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    spec = BatchSpec(key, sender.base)
    write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=1))
    scan = ["responder", "scan", "--spool", str(tmp_path / "spool"), "--ping-delay", "0"]
    for db in ("refused.db", "allowed.db"):
        env = {"SCRUBBER_RESPONDER_DB": str(tmp_path / db)}
        assert run_cli("responder", "add", ALICE, env=env).returncode == 0
    refused = run_cli(*scan, env={"SCRUBBER_RESPONDER_DB": str(tmp_path / "refused.db")})
    assert refused.returncode == 0, refused.stderr
    assert "127.0.0.1 is a loopback address (give --allow-private" in refused.stderr
    assert "pinged 0 proofs in 0 requests, 1 refused" in refused.stdout
    assert sender.peers == [] and "Traceback" not in refused.stderr
    allowed = run_cli(
        *scan, "--allow-private", env={"SCRUBBER_RESPONDER_DB": str(tmp_path / "allowed.db")}
    )
    assert allowed.returncode == 0, allowed.stderr
    assert "pinged 1 proofs" in allowed.stdout and sender.pings == [[spec.proof(ALICE)]]
