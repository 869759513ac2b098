"""Batch article writer and parser: round trip, subject, tamper and truncation detection."""

from __future__ import annotations

import base64
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrubber import article, scheme
from scrubber.errors import ArticleError
from scrubber.keys import OperatorKey
from tests.batch_support import resign_body

KEY = OperatorKey.generate()
TOKEN = "A" * 32
DATE = datetime(2026, 11, 23, 20, 0, 0, tzinfo=UTC)


def header(tag_length: int, total: int, key: OperatorKey = KEY) -> article.BatchHeader:
    return article.BatchHeader(
        batch_id="20261123-0a1b2c3d",
        salt=bytes(range(16)),
        params=scheme.Params(t=2, m=1024, p=1, tag_length=tag_length),
        total=total,
        respond=scheme.RespondTo(
            http=f"http://127.0.0.1:8025/dni/v1/ping/{TOKEN}",
            smtp=f"dni-{TOKEN}@dni.example.test",
        ),
        expires=datetime(2026, 12, 23, 20, 0, 0, tzinfo=UTC),
        key=key.public_raw,
    )


def body_of(tags: list[bytes], tag_length: int = 8, part: int = 1, parts: int = 1) -> bytes:
    meta = article.part_meta(header(tag_length, len(tags)), part, parts, b"".join(tags))
    return article.render_body(meta, b"".join(tags), KEY.sign)


tag_sets = st.integers(min_value=4, max_value=16).flatmap(
    lambda n: st.lists(st.binary(min_size=n, max_size=n), min_size=1, max_size=300, unique=True)
)


@given(tags=tag_sets, part=st.integers(1, 50), extra=st.integers(0, 50))
def test_round_trip_gives_back_metadata_and_sorted_tags(
    tags: list[bytes], part: int, extra: int
) -> None:
    tags = sorted(tags)
    size = len(tags[0])
    meta = article.part_meta(header(size, len(tags) + extra), part, part + extra, b"".join(tags))
    parsed = article.parse_article(article.render_body(meta, b"".join(tags), KEY.sign))
    assert parsed.meta == meta
    assert parsed.tags == tags


@given(tags=tag_sets)
def test_crlf_line_ends_and_missing_final_newline_still_parse(tags: list[bytes]) -> None:
    body = body_of(sorted(tags), len(tags[0]))
    assert article.parse_article(body.replace(b"\n", b"\r\n")).tags == sorted(tags)
    assert article.parse_article(body[:-1]).tags == sorted(tags)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(tags=tag_sets, data=st.data())
def test_any_changed_byte_is_rejected(tags: list[bytes], data: st.DataObject) -> None:
    body = bytearray(body_of(sorted(tags), len(tags[0])))
    where = data.draw(st.integers(0, len(body) - 1))
    body[where] ^= data.draw(st.integers(1, 255))
    with pytest.raises(ArticleError):
        article.parse_article(bytes(body))


@given(tags=tag_sets, data=st.data())
def test_truncation_is_rejected(tags: list[bytes], data: st.DataObject) -> None:
    body = body_of(sorted(tags), len(tags[0]))
    cut = data.draw(st.integers(0, len(body) - 2))  # dropping only the final LF is harmless
    with pytest.raises(ArticleError):
        article.parse_article(body[:cut])


def test_signature_by_another_key_is_rejected_even_with_matching_key_field() -> None:
    other = OperatorKey.generate()
    tags = [bytes([i]) * 8 for i in range(10)]
    meta = article.part_meta(header(8, 10), 1, 1, b"".join(tags))
    body = article.render_body(meta, b"".join(tags), other.sign)
    with pytest.raises(ArticleError, match="signature does not verify"):
        article.parse_article(body)


def resign(body: bytes, mutate: bytes, replace: bytes) -> bytes:
    return resign_body(body, mutate, replace, KEY)


@pytest.mark.parametrize(
    ("mutate", "replace", "reason"),
    [
        (b"Count: 3", b"Count: 2", "Count says 2"),
        (b"Scheme: dni-argon2id-v1", b"Scheme: dni-argon2id-v9", "unknown scheme"),
        (b"Part: 1/1", b"Part: 2/1", "Part number"),
        (b"Tag-Length: 8", b"Tag-Length: 3", "Tag-Length 3"),
        (b"Batch: ", b"Batch: \x00", "Batch is not"),
        (b"Argon2: t=2", b"Argon2: t=0", "Argon2 is malformed"),
        # Well-formed numbers, but m < 8p: scheme.Params refuses them at parse.
        (b"Argon2: t=2,m=1024,p=1", b"Argon2: t=2,m=7,p=1", "Argon2: invalid Argon2 parameters"),
        (b"Argon2: t=2,m=1024,p=1", b"Argon2: t=1,m=15,p=2", "Argon2: invalid Argon2 parameters"),
        (b"Expires: 2026-12-23T20:00:00Z", b"Expires: tomorrow", "Expires"),
        (b"Salt: 00", b"Salt: ", "Salt must be"),
        (b"Respond-HTTP: http", b"Respond-HTTP: ftp", "Respond-HTTP"),
        (b"Key: ", b"Nonsense: x\nKey: ", "unexpected metadata line"),
        (b"\n\n", b"\nScheme: x\n\n", "appears twice"),
    ],
)
def test_semantic_errors_name_the_reason(mutate: bytes, replace: bytes, reason: str) -> None:
    body = body_of([b"a" * 8, b"b" * 8, b"c" * 8])
    with pytest.raises(ArticleError, match=reason):
        article.parse_article(resign(body, mutate, replace))


def test_unsorted_tags_are_rejected_even_when_signed() -> None:
    tags = [b"a" * 8, b"c" * 8, b"b" * 8, b"d" * 8]
    meta = article.part_meta(header(8, 4), 1, 1, b"".join(tags))
    body = article.render_body(meta, b"".join(tags), KEY.sign)
    with pytest.raises(ArticleError, match="not strictly sorted"):
        article.parse_article(body)


def test_whole_article_has_subject_message_id_and_parses() -> None:
    tags = sorted(bytes([i, 255 - i, 7, 9]) for i in range(200))
    meta = article.part_meta(header(4, 1000), 2, 5, b"".join(tags))
    raw = article.render_article(
        meta, b"".join(tags), KEY, newsgroup="alt.dni.batches", domain="ex.test", date=DATE
    )
    headers, body = article.split_article(raw)
    assert headers["message-id"] == "<dni.20261123-0a1b2c3d.2@ex.test>"
    assert headers["newsgroups"] == "alt.dni.batches"
    assert headers["date"] == "Mon, 23 Nov 2026 20:00:00 +0000"
    info = article.parse_subject(headers["subject"])
    assert info == article.SubjectInfo("20261123-0a1b2c3d", 2, 5, tags[0], tags[-1])
    assert article.parse_article(body).tags == tags


@pytest.mark.parametrize(
    "text",
    [
        "Re: hello",
        "[DNI] batch x part 3/2 range 00000000-ffffffff",
        "[DNI] batch x part 1/2 range ffffffff-00000000",
        "[DNI] batch x part 1/2 range 0000000000-ffffffff",
        "[DNI] batch x part 0/2 range 00000000-ffffffff",
    ],
)
def test_parse_subject_returns_none_for_other_subjects(text: str) -> None:
    assert article.parse_subject(text) is None


def test_render_refuses_a_key_that_is_not_the_batch_key() -> None:
    tags = b"a" * 8
    meta = article.part_meta(header(8, 1), 1, 1, tags)
    with pytest.raises(ValueError, match="not the batch's key"):
        article.render_article(
            meta, tags, OperatorKey.generate(), newsgroup="g", domain="d", date=DATE
        )


def test_a_full_part_stays_under_the_size_limit() -> None:
    overhead = 4096
    n = article.tags_per_part(8, overhead)
    tags = b"".join(i.to_bytes(8, "big") for i in range(n))
    meta = article.part_meta(header(8, n), 1, 1, tags)
    raw = article.render_article(
        meta, tags, KEY, newsgroup="alt.dni.batches", domain="dni.example.test", date=DATE
    )
    assert article.MAX_PART_BYTES - overhead < len(raw) <= article.MAX_PART_BYTES
    assert len(article.parse_article(article.split_article(raw)[1]).tags) == n


def test_signature_spelled_with_unused_base64_bits_is_rejected() -> None:
    body = body_of([b"a" * 8])
    line_start = body.rindex(article.SIGNATURE_PREFIX)
    encoded = body[line_start + len(article.SIGNATURE_PREFIX) : -1]
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    last = alphabet.index(encoded[-3:-2])  # "XY==": Y carries 4 unused low bits
    respelled = encoded[:-3] + alphabet[last ^ 1 : (last ^ 1) + 1] + b"=="
    assert base64.b64decode(respelled) == base64.b64decode(encoded)
    with pytest.raises(ArticleError, match="not canonical"):
        article.parse_article(body[:line_start] + article.SIGNATURE_PREFIX + respelled + b"\n")


def test_the_example_in_the_spec_verifies_and_is_reproduced_byte_for_byte() -> None:
    spec = (Path(__file__).resolve().parent.parent / "docs" / "scheme.md").read_text("utf-8")
    example = re.search(r"```article\n(.*?)```", spec, re.S)
    assert example is not None
    raw = example.group(1).encode("ascii")
    headers, body = article.split_article(raw)
    parsed = article.parse_article(body)
    key = OperatorKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
    assert parsed.meta.key == key.public_raw
    assert [t.hex() for t in parsed.tags] == ["0a1b2c3d", "1f2e3d4c", "7cd9d615"]
    assert article.parse_subject(headers["subject"]) == article.SubjectInfo(
        "20261123-0a1b2c3d", 1, 2, parsed.tags[0], parsed.tags[-1]
    )
    again = article.render_article(
        parsed.meta,
        b"".join(parsed.tags),
        key,
        newsgroup="alt.dni.batches",
        domain="dni.example.com",
        date=datetime(2026, 11, 23, 12, 0, 0, tzinfo=UTC),
    )
    assert again == raw
