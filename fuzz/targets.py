"""Fuzz targets: each takes arbitrary bytes and must either return or raise the
parser's own documented error; anything else is a crash.

The targets are plain functions so that tests/test_fuzz_regressions.py can
replay every input the fuzzer ever crashed on without atheris.
"""

from __future__ import annotations

import base64
from collections.abc import Callable

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from scrubber import article
from scrubber.errors import ArticleError
from scrubber.keys import OperatorKey
from scrubber.listener.http import BadPing, parse_proofs
from scrubber.listener.smtp import extract_proofs, parsed_proofs

# The key of the example article in docs/scheme.md (seed bytes 0..31), so that
# the seed corpus's articles verify once re-signed and the fuzzer gets past
# the signature check into the metadata and tag-block checks.
EXAMPLE_KEY = OperatorKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))
_MEDIA_TYPES = ("application/json", "text/plain", "application/octet-stream")


def http_ping(data: bytes) -> None:
    """First byte picks the media type, the rest is the body."""
    media_type = _MEDIA_TYPES[data[0] % len(_MEDIA_TYPES)] if data else "text/plain"
    try:
        proofs = parse_proofs(media_type, data[1:])
    except BadPing as error:
        assert 400 <= error.status < 500
        return
    assert proofs and all(isinstance(proof, str) for proof in proofs)


def smtp_message(data: bytes) -> None:
    """A DATA payload: the fast path must agree with the email parser."""
    proofs = extract_proofs(data)
    assert all(isinstance(proof, str) for proof in proofs)
    assert proofs == parsed_proofs(data)


def article_signed(data: bytes) -> None:
    """``data`` is an article body up to its signature; signed here with the
    example key so that every check after the signature is reached."""
    signed = data.replace(b"\r\n", b"\n")
    if not signed.endswith(b"\n"):
        signed += b"\n"
    signature = base64.b64encode(EXAMPLE_KEY.sign(signed))
    _parse(signed + article.SIGNATURE_PREFIX + signature + b"\n")


def article_raw(data: bytes) -> None:
    """A whole article as read from a news server or a spool file."""
    try:
        _headers, body = article.split_article(data)
    except ArticleError:
        body = data
    _parse(body)


def _parse(body: bytes) -> None:
    try:
        parsed = article.parse_article(body)
    except ArticleError:
        return
    assert parsed.tags and parsed.meta.count == len(parsed.tags)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "http_ping": http_ping,
    "smtp_message": smtp_message,
    "article_signed": article_signed,
    "article_raw": article_raw,
}
