"""v2 articles: Golomb-coded sets, yEnc and base64 tag blocks, and every bad input named."""

from __future__ import annotations

import random
import re
import zlib
from datetime import UTC, datetime
from pathlib import Path

import pytest
import sabctools
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from scrubber import article, scheme
from scrubber.errors import ArticleError
from scrubber.keys import OperatorKey
from tests.batch_support import resign_body

KEY = OperatorKey.generate()
TOKEN = "A" * 32
NONCE = bytes(range(16))


def header(total: int, encoding: str = "yenc") -> article.BatchHeader:
    return article.BatchHeader(
        batch_id="20261201-0a1b2c3d",
        salt=bytes(range(16)),
        params=scheme.Params(t=2, m=1024, p=1, tag_length=scheme.ITEM_LEN),
        total=total,
        respond=scheme.RespondTo(
            http=f"http://127.0.0.1:8025/dni/v1/ping/{TOKEN}",
            smtp=f"dni-{TOKEN}@dni.example.test",
        ),
        expires=datetime(2026, 12, 31, 20, 0, 0, tzinfo=UTC),
        key=KEY.public_raw,
        v2=article.V2Fields(nonce=NONCE, gcs=scheme.Gcs(), encoding=encoding),
    )


def values_for(total: int, count: int, seed: int = 1) -> list[int]:
    rng = random.Random(seed)
    return sorted(set(rng.randrange(total * scheme.GCS_M) for _ in range(count)))


def body_of(values: list[int], total: int, encoding: str = "yenc") -> bytes:
    tags = b"".join(scheme.item_bytes(v) for v in values)
    meta = article.part_meta(header(total, encoding), 1, 1, tags)
    return article.render_body(meta, tags, KEY.sign)


def resign(body: bytes, mutate: bytes, replace: bytes) -> bytes:
    return resign_body(body, mutate, replace, KEY)


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.integers(0, 1000 * scheme.GCS_M - 1), min_size=1, max_size=400, unique=True),
    encoding=st.sampled_from(article.ENCODINGS),
)
def test_round_trip_gives_back_the_values(values: list[int], encoding: str) -> None:
    values.sort()
    parsed = article.parse_article(body_of(values, 1000, encoding))
    assert [int.from_bytes(t, "big") for t in parsed.tags] == values
    assert parsed.meta.v2 == article.V2Fields(NONCE, scheme.Gcs(), encoding)


@given(values=st.lists(st.integers(0, 2**20), min_size=1, max_size=300, unique=True))
def test_gcs_decodes_what_it_encodes(values: list[int]) -> None:
    values.sort()
    for p in (12, 19, 32):
        coded = scheme.gcs_encode(values, values[0], p)
        assert scheme.gcs_decode(coded, len(values), values[0], p) == values


@given(data=st.binary(min_size=1, max_size=3000))
def test_yenc_block_matches_sabctools_and_decodes(data: bytes) -> None:
    block = article.yenc_block(data)
    encoded, crc = sabctools.yenc_encode(data)
    lines = block.split(b"\n")
    assert b"\n".join(lines[1:-2]) == encoded.replace(b"\r\n", b"\n")
    assert lines[-2] == b"=yend size=%d crc32=%08x" % (
        len(data),
        zlib.crc32(data),
    ) and crc == zlib.crc32(data)
    assert article._unyenc(block) == data


def test_yenc_decoder_accepts_any_escaping() -> None:
    data = bytes(range(256))
    # Escape every byte: a valid yEnc spelling another encoder may use.
    # Escape every byte that may be escaped: a valid spelling another encoder may use.
    pairs = [
        bytes((0x3D, (b + 106) % 256))
        if (b + 106) % 256 not in (0, 10, 13)
        else bytes(((b + 42) % 256,))
        for b in data
    ]
    lines = [b"".join(pairs[i : i + 64]) for i in range(0, len(pairs), 64)]
    block = (
        b"=ybegin line=128 size=256 name=gcs\n"
        + b"\n".join(lines)
        + b"\n=yend size=256 crc32=%08x\n" % zlib.crc32(data)
    )
    assert article._unyenc(block) == data


def test_a_1m_address_part_plan_fits_and_is_nearly_full() -> None:
    for encoding in article.ENCODINGS:
        v2 = article.V2Fields(NONCE, scheme.Gcs(), encoding)
        per_part = article.items_per_part(v2, 1500)
        # One part of a 1M batch: its values are as dense as the whole batch's.
        values = values_for(per_part, per_part, seed=7)
        raw = article.render_article(
            article.part_meta(
                header(1_000_000, encoding), 1, 1, b"".join(map(scheme.item_bytes, values))
            ),
            b"".join(map(scheme.item_bytes, values)),
            KEY,
            newsgroup="alt.dni.test",
            domain="dni.example.test",
            date=datetime(2026, 12, 1, tzinfo=UTC),
        )
        assert 0.9 * article.MAX_PART_BYTES < len(raw) <= article.MAX_PART_BYTES, encoding


VALUES = values_for(100, 50)


@pytest.mark.parametrize(
    ("mutate", "replace", "reason"),
    [
        (b"Nonce: 000102", b"Nonce: 0102", "Nonce must be 16 bytes"),
        (b"Nonce: 000102", b"Nonce: 00000102", "Nonce must be 16 bytes"),
        (b"Count: 50", b"Count: 49", "more than Count=49"),
        (b"Count: 50", b"Count: 51", "Count=51"),
        (b"Encoding: yenc", b"Encoding: uuencode", "unknown Encoding"),
        (b"GCS: P=19", b"GCS: P=33", "invalid GCS parameters"),
        (b"GCS: P=19", b"GCS: P=019", "GCS is malformed"),
        (b"Total: 100", b"Total: 50", "beyond Total"),
        (b"Total: 100", b"Total: 0100", "Total is malformed"),
        (b"Scheme: dni-argon2id-v2", b"Scheme: dni-argon2id-v3", "unknown scheme"),
        (b"Count: 50\nTotal: 100", b"Total: 100\nCount: 50", "not in the order"),
        (b"Encoding: yenc\n", b"", "Encoding is missing"),
        (b"=ybegin line=128", b"=ybegin line=64", "lacks its =ybegin"),
        (b"name=gcs\n", b"name=gcs\n\n", "truncated line"),
    ],
)
def test_semantic_errors_name_the_reason(mutate: bytes, replace: bytes, reason: str) -> None:
    body = resign(body_of(VALUES, 100), mutate, replace)
    with pytest.raises(ArticleError, match=reason):
        article.parse_article(body)


def test_bad_crc_and_truncated_line_are_named() -> None:
    body = body_of(VALUES, 100)
    crc = body[body.index(b"crc32=") : body.index(b"crc32=") + 14]
    bad = crc[:-1] + (b"0" if crc[-1:] != b"0" else b"1")
    with pytest.raises(ArticleError, match="CRC32"):
        article.parse_article(resign(body, crc, bad))
    start = body.index(b"name=gcs\n") + len(b"name=gcs\n")
    line = body[start : body.index(b"\n", start)]
    with pytest.raises(ArticleError, match=r"decodes to|CRC32|truncated"):
        article.parse_article(resign(body, line, line[:-3]))


def test_range_beyond_the_values_and_values_beyond_range() -> None:
    body = body_of(VALUES, 100)
    last = scheme.item_bytes(VALUES[-1]).hex().encode()
    lower = scheme.item_bytes(VALUES[-1] - 1).hex().encode()
    with pytest.raises(ArticleError, match="beyond the part's Range"):
        article.parse_article(resign(body, b"-" + last, b"-" + lower))
    higher = scheme.item_bytes(VALUES[-1] + 1).hex().encode()
    with pytest.raises(ArticleError, match="Range does not match"):
        article.parse_article(resign(body, b"-" + last, b"-" + higher))


def test_gcs_with_nonzero_padding_or_extra_bytes_is_rejected() -> None:
    coded = scheme.gcs_encode([5, 9, 12], 5, 19)  # 60 bits: 4 bits of padding
    assert scheme.gcs_decode(coded, 3, 5, 19) == [5, 9, 12]
    with pytest.raises(ValueError, match="more than Count"):
        scheme.gcs_decode(coded + b"\x00", 3, 5, 19)
    with pytest.raises(ValueError, match="more than Count"):
        scheme.gcs_decode(coded[:-1] + bytes([coded[-1] | 1]), 3, 5, 19)
    with pytest.raises(ValueError, match="too short"):
        scheme.gcs_decode(coded, 4, 5, 19)
    with pytest.raises(ValueError, match="strictly ascending"):
        scheme.gcs_decode(scheme.gcs_encode([5, 5], 5, 19), 2, 5, 19)


@settings(max_examples=200, deadline=None)
@given(data=st.data())
def test_any_changed_byte_is_rejected(data: st.DataObject) -> None:
    body = bytearray(body_of(VALUES, 100, data.draw(st.sampled_from(article.ENCODINGS))))
    where = data.draw(st.integers(0, len(body) - 1))
    body[where] ^= data.draw(st.integers(1, 255))
    with pytest.raises(ArticleError):
        article.parse_article(bytes(body))


def test_v1_articles_still_parse_beside_v2() -> None:
    v1 = article.BatchHeader(**{**header(3).__dict__, "v2": None})
    tags = b"".join(bytes([i]) * 8 for i in (1, 2, 3))
    meta = article.part_meta(v1, 1, 1, tags)
    parsed = article.parse_article(article.render_body(meta, tags, KEY.sign))
    assert parsed.meta.scheme == scheme.SCHEME_NAME and parsed.meta.v2 is None


def test_the_v2_example_in_the_spec_verifies_and_is_reproduced_byte_for_byte() -> None:
    spec = (Path(__file__).resolve().parent.parent / "docs" / "scheme.md").read_text("utf-8")
    example = re.search(r"```article-v2\n(.*?)```", spec, re.S)
    assert example is not None
    raw = example.group(1).encode("ascii")
    _, body = article.split_article(raw)
    parsed = article.parse_article(body)
    key = OperatorKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    assert parsed.meta.key == key.public_raw and parsed.meta.v2 is not None
    salt, nonce = parsed.meta.salt, parsed.meta.v2.nonce
    addresses = ["jane.doe@example.com", "john@gmail.com", "alice@example.org"]
    digests = [scheme.digest(a, salt, scheme.Params()).h for a in addresses]
    values = sorted(scheme.item_value(h, nonce, 3, scheme.Gcs()) for h in digests)
    assert parsed.tags == [scheme.item_bytes(v) for v in values]
    again = article.render_article(
        parsed.meta,
        b"".join(parsed.tags),
        key,
        newsgroup="alt.dni.batches",
        domain="dni.example.com",
        date=datetime(2026, 12, 1, 12, 0, 0, tzinfo=UTC),
    )
    assert again == raw
