"""The responder reads v2 batches beside v1: matching by value, one part fetched,
and every malformed v2 article rejected with its reason while the scan goes on."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from scrubber.keys import OperatorKey
from scrubber.responder.ping import PingConfig
from scrubber.responder.run import RunResult, run_once
from scrubber.responder.store import ResponderStore, add_addresses
from scrubber.transport.spool import SpoolSource
from tests.batch_support import resign_body
from tests.responder_support import (
    BatchSpec,
    SenderEndpoint,
    batch_articles,
    part_holding,
    write_spool,
)

ALICE = "alice@example.org"
NO_WAIT = PingConfig(retries=2, backoff=0.01, use_smtp=False, allow_private_http=True)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[ResponderStore]:
    opened = ResponderStore.open(tmp_path / "responder.db")
    yield opened
    opened.close()


def scan_spool(store: ResponderStore, spool: Path) -> RunResult:
    return run_once(store, lambda: SpoolSource(spool), ping_config=NO_WAIT)


@pytest.mark.parametrize("encoding", ["yenc", "base64"])
def test_v2_batch_is_matched_and_only_the_holding_part_fetched(
    store: ResponderStore,
    key: OperatorKey,
    sender: SenderEndpoint,
    tmp_path: Path,
    encoding: str,
) -> None:
    add_addresses(store, [ALICE])
    spec = BatchSpec(key, sender.base, protocol=2, encoding=encoding)
    articles = batch_articles(spec, [ALICE, "other@example.org"], filler=3000, parts=4)
    holder = part_holding(spec, articles, ALICE)
    write_spool(tmp_path / "spool", articles)

    result = scan_spool(store, tmp_path / "spool")

    assert result.error is None and result.scan is not None
    assert result.scan.skipped == []
    assert result.scan.bodies_fetched == (1 if holder == 1 else 2)
    assert result.scan.matches == 1
    assert sender.pings == [[spec.proof(ALICE)]]


def test_v1_and_v2_batches_of_one_sender_are_both_matched(
    store: ResponderStore, key: OperatorKey, sender: SenderEndpoint, tmp_path: Path
) -> None:
    add_addresses(store, [ALICE])
    old = BatchSpec(key, sender.base)
    new = BatchSpec(key, sender.base, salt=old.salt, protocol=2)
    write_spool(tmp_path / "spool", batch_articles(old, [ALICE], parts=1))
    write_spool(tmp_path / "spool", batch_articles(new, [ALICE], parts=2))

    result = scan_spool(store, tmp_path / "spool")

    assert result.scan is not None and result.scan.matches == 2
    # Same salt and parameters: H comes from the cache the second time.
    assert result.scan.hashed == 1
    # The proof is H[16:32] in both protocols; the second listing by one key escalates.
    assert old.proof(ALICE) == new.proof(ALICE)
    assert [p for ping in sender.pings for p in ping] == [old.proof(ALICE)] * 3


def resigned(raw: bytes, mutate: bytes, replace: bytes, key: OperatorKey) -> bytes:
    """A whole article with its body changed and signed again by the batch's key."""
    head, _, body = raw.partition(b"\n\n")
    return head + b"\n\n" + resign_body(body, mutate, replace, key)


def crc_flipped(raw: bytes) -> tuple[bytes, bytes]:
    at = raw.index(b"crc32=") + 6
    crc = raw[at : at + 8]
    return b"crc32=" + crc, b"crc32=" + (b"00000000" if crc != b"00000000" else b"00000001")


def first_data_line(raw: bytes) -> tuple[bytes, bytes]:
    start = raw.index(b"name=gcs\n") + 9
    line = raw[start : raw.index(b"\n", start)]
    return line, line[:-5]


def range_lowered(raw: bytes) -> tuple[bytes, bytes]:
    """The part's Range ending one below its last value: that value lies outside."""
    at = raw.index(b"\nRange: ") + 1
    line = raw[at : raw.index(b"\n", at)]
    first, last = line.removeprefix(b"Range: ").split(b"-")
    lower = (int(last, 16) - 1).to_bytes(8, "big").hex().encode()
    return line, b"Range: " + first + b"-" + lower


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda raw: (b"Nonce: ", b"Nonce: 00"), "Nonce must be 16 bytes"),
        (range_lowered, "beyond the part's Range"),
        (lambda raw: (b"Count: ", b"Count: 1"), "Count"),
        (lambda raw: (b"Encoding: yenc", b"Encoding: yenc2"), "unknown Encoding"),
        (crc_flipped, "CRC32"),
        (first_data_line, "yEnc block"),
    ],
)
def test_malformed_v2_article_is_rejected_with_its_reason_and_the_scan_goes_on(
    store: ResponderStore,
    key: OperatorKey,
    sender: SenderEndpoint,
    tmp_path: Path,
    damage: object,
    reason: str,
) -> None:
    add_addresses(store, [ALICE])
    bad = BatchSpec(key, sender.base, protocol=2)
    raw = batch_articles(bad, [ALICE], filler=50, parts=1)[0]
    mutate, replace = damage(raw)  # type: ignore[operator]
    good = BatchSpec(key, sender.base, protocol=2)
    write_spool(tmp_path / "spool", [resigned(raw, mutate, replace, key)])
    write_spool(tmp_path / "spool", batch_articles(good, [ALICE], filler=50, parts=1))

    result = scan_spool(store, tmp_path / "spool")

    assert result.error is None and result.scan is not None
    assert any(bad.batch_id in s and reason in s for s in result.scan.skipped), result.scan.skipped
    assert result.scan.matches == 1
    assert sender.pings == [[good.proof(ALICE)]]
