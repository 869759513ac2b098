"""The SMTP ping goes only to a domain that proved it is the key holder's:
a `_dni.<domain>` TXT record naming the key's fingerprint, served by a real
dnsmasq on loopback; delivery by MX (else A), never to loopback or private
addresses unless allowed. Every bad answer skips SMTP with a reason."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scrubber.keys import OperatorKey, fingerprint
from scrubber.responder.domain import DnsConfig, address_refusal, parse_record
from scrubber.responder.ping import PingConfig
from scrubber.responder.run import RunResult, run_once
from scrubber.responder.store import ResponderStore, add_addresses
from scrubber.transport.spool import SpoolSource
from tests.net_support import Dnsmasq, dni_record
from tests.responder_support import BatchSpec, SenderEndpoint, SmtpSink, batch_articles, write_spool
from tests.support import free_port, run_cli

ALICE = "alice@example.org"


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResponderStore]:
    opened = ResponderStore.open(tmp_path / "responder.db")
    yield opened
    opened.close()


@pytest.fixture
def sink() -> Iterator[SmtpSink]:
    started = SmtpSink().start()
    yield started
    started.stop()


@pytest.fixture
def dns(tmp_path: Path, key: OperatorKey) -> Iterator[Dnsmasq]:
    right = dni_record(fingerprint(key.public_raw))
    wrong = dni_record(fingerprint(OperatorKey.generate().public_raw))
    server = Dnsmasq(
        tmp_path,
        txt={
            "_dni.good.test": ["unrelated text", right],
            "_dni.nomx.test": [right],
            "_dni.wrong.test": [wrong],
            "_dni.junk.test": ["v=spf1 -all"],
        },
        mx={"good.test": ("mx.good.test", 10), "wrong.test": ("mx.good.test", 10)},
        a={"mx.good.test": "127.0.0.1", "nomx.test": "127.0.0.1"},
    )
    yield server
    server.stop()


def ping_via_smtp(
    store: ResponderStore,
    key: OperatorKey,
    sender: SenderEndpoint,
    tmp_path: Path,
    domain: str,
    config: PingConfig,
) -> RunResult:
    """One batch listing ALICE whose HTTP side always answers 503."""
    add_addresses(store, [ALICE])
    spec = BatchSpec(key, sender.base, smtp_domain=domain)
    write_spool(tmp_path / "spool", batch_articles(spec, [ALICE], parts=1))
    sender.fail_pings = 1_000
    return run_once(store, lambda: SpoolSource(tmp_path / "spool"), ping_config=config)


def smtp_config(server: Dnsmasq, sink: SmtpSink, **kwargs: object) -> PingConfig:
    settings: dict[str, object] = {
        "dns": DnsConfig("127.0.0.1", server.port, timeout=2),
        "smtp_port": sink.port,
        "allow_private_http": True,
        "allow_private_smtp": True,
        "retries": 0,
    }
    return PingConfig(**(settings | kwargs))  # type: ignore[arg-type]


@pytest.mark.parametrize("domain", ["good.test", "nomx.test"])
def test_smtp_ping_goes_to_the_mail_host_of_a_domain_naming_the_key(
    store: ResponderStore,
    key: OperatorKey,
    sender: SenderEndpoint,
    tmp_path: Path,
    dns: Dnsmasq,
    sink: SmtpSink,
    domain: str,
) -> None:
    result = ping_via_smtp(store, key, sender, tmp_path, domain, smtp_config(dns, sink))
    assert result.pings.delivered == 1 and result.pings.pending == 0
    ((_, rcpts, content),) = sink.messages
    assert rcpts[0].endswith(f"@{domain}")
    assert b"DNI-Proof: " in content
    assert b"responder.invalid" not in content  # the HELO name is not in the message


@pytest.mark.parametrize(
    ("domain", "config_change", "reason"),
    [
        ("wrong.test", {}, "the batch is signed by"),
        ("missing.test", {}, "_dni.missing.test has no TXT record"),
        ("junk.test", {}, "holds no v=DNI1 record"),
        ("good.test", {"allow_private_smtp": False}, "127.0.0.1, a loopback address"),
        ("127.0.0.1", {}, "127.0.0.1 is an IP literal"),
        ("good.test", {"dns": "unreachable"}, "DNS"),
    ],
)
def test_a_domain_that_did_not_prove_the_key_gets_no_smtp_ping(
    store: ResponderStore,
    key: OperatorKey,
    sender: SenderEndpoint,
    tmp_path: Path,
    dns: Dnsmasq,
    sink: SmtpSink,
    domain: str,
    config_change: dict[str, object],
    reason: str,
) -> None:
    if config_change.get("dns") == "unreachable":
        config_change = {"dns": DnsConfig("127.0.0.1", free_port(), timeout=1)}
    config = smtp_config(dns, sink, **config_change)
    result = ping_via_smtp(store, key, sender, tmp_path, domain, config)
    assert sink.messages == []
    assert result.pings.delivered == 0 and result.pings.pending == 1  # still owed
    (failure,) = result.pings.failures
    assert "SMTP skipped" in failure and reason in failure, failure


def test_a_relay_still_needs_the_domain_to_name_the_key(
    store: ResponderStore,
    key: OperatorKey,
    sender: SenderEndpoint,
    tmp_path: Path,
    dns: Dnsmasq,
    sink: SmtpSink,
) -> None:
    relay = smtp_config(dns, sink, smtp_server=("127.0.0.1", sink.port), allow_private_smtp=False)
    refused = ping_via_smtp(store, key, sender, tmp_path / "a", "wrong.test", relay)
    assert sink.messages == [] and "SMTP skipped" in refused.pings.failures[0]
    with ResponderStore.open(tmp_path / "other.db") as other:
        sent = ping_via_smtp(other, key, sender, tmp_path / "b", "good.test", relay)
    assert sent.pings.delivered == 1 and len(sink.messages) == 1


def test_record_syntax_and_address_classes() -> None:
    assert parse_record("v=DNI1; fp=ABC") == {"v": "DNI1", "fp": "ABC"}
    assert parse_record(" v = DNI1 ;fp=abc; ") == {"v": "DNI1", "fp": "abc"}
    assert parse_record("fp=abc; v=DNI1") is None  # the version comes first
    assert parse_record("v=DNI2; fp=abc") is None
    assert parse_record("v=DNI1; garbage") is None
    assert address_refusal("10.1.2.3") == "a private address"
    assert address_refusal("192.168.0.1") == "a private address"
    assert address_refusal("::1") == "a loopback address"
    assert address_refusal("fe80::1") == "a private address"
    assert address_refusal("100.64.0.1") == "not a public address"
    assert address_refusal("8.8.8.8") is None


def test_cli_scan_skips_smtp_with_a_reason_line_and_exit_0(
    key: OperatorKey, sender: SenderEndpoint, tmp_path: Path, dns: Dnsmasq, sink: SmtpSink
) -> None:
    sender.fail_pings = 1_000
    common = [
        "--retries", "0", "--dns-server", f"127.0.0.1:{dns.port}", "--smtp-port", str(sink.port),
        "--ping-delay", "0", "--allow-private",  # the sender and the sink are on loopback
    ]  # fmt: skip
    runs = {}
    for domain in ("wrong.test", "good.test"):
        spool = tmp_path / domain
        spec = BatchSpec(key, sender.base, smtp_domain=domain)
        write_spool(spool, batch_articles(spec, [ALICE], parts=1))
        env = {"SCRUBBER_RESPONDER_DB": str(tmp_path / f"{domain}.db")}
        assert run_cli("responder", "add", ALICE, env=env).returncode == 0
        runs[domain] = run_cli("responder", "scan", "--spool", str(spool), *common, env=env)
    skipped, sent = runs["wrong.test"], runs["good.test"]
    assert skipped.returncode == 0, skipped.stderr
    assert "SMTP skipped: _dni.wrong.test names key" in skipped.stderr
    assert "Traceback" not in skipped.stderr
    assert sent.returncode == 0, sent.stderr
    assert "pinged 1 proofs" in sent.stdout and len(sink.messages) == 1
