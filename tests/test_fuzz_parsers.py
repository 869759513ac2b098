"""Property tests: the parsers of untrusted bytes (HTTP ping body, SMTP message,
batch article) return or raise their own error for ANY input, never anything
else, and find what a well-formed input holds."""

from __future__ import annotations

import base64
import json
import re
from email.message import EmailMessage
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fuzz.targets import EXAMPLE_KEY, TARGETS, article_signed
from scrubber import article
from scrubber.errors import ArticleError, BadPing
from scrubber.listener.http import parse_proofs
from scrubber.listener.ping import MAX_PROOFS
from scrubber.listener.smtp import extract_proofs

ROOT = Path(__file__).resolve().parent.parent
PROOF = st.binary(min_size=16, max_size=16).map(
    lambda raw: base64.urlsafe_b64encode(raw).rstrip(b"=").decode()
)
MEDIA_TYPES = st.sampled_from(["application/json", "text/plain", "text/html", ""])
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=20,
)


def _example_article() -> bytes:
    doc = (ROOT / "docs" / "scheme.md").read_text(encoding="utf-8")
    found = re.search(r"```article\n(.*?)```", doc, re.DOTALL)
    assert found is not None
    return found.group(1).encode()


EXAMPLE = _example_article()
EXAMPLE_BODY = article.split_article(EXAMPLE)[1]


@given(media_type=MEDIA_TYPES, body=st.binary(max_size=2000))
def test_any_ping_body_is_proofs_or_a_client_error(media_type: str, body: bytes) -> None:
    try:
        proofs = parse_proofs(media_type, body)
    except BadPing as error:
        assert error.status in (400, 415)
    else:
        assert 1 <= len(proofs) <= MAX_PROOFS


@given(data=JSON_VALUES, depth=st.integers(0, 100_000))
def test_any_json_document_is_proofs_or_400(data: object, depth: int) -> None:
    # Nesting deeper than the interpreter's stack was a 500 (RecursionError).
    body = "[" * depth + json.dumps({"proofs": data}) + "]" * depth
    try:
        proofs = parse_proofs("application/json", body.encode())
    except BadPing as error:
        assert error.status == 400
    else:
        assert depth == 0 and proofs == data


@given(proofs=st.lists(PROOF, min_size=1, max_size=50), crlf=st.booleans())
def test_well_formed_bodies_give_their_proofs_in_both_forms(proofs: list[str], crlf: bool) -> None:
    assert parse_proofs("application/json", json.dumps({"proofs": proofs}).encode()) == proofs
    newline = "\r\n" if crlf else "\n"
    assert parse_proofs("text/plain", newline.join(proofs).encode()) == proofs


@given(
    proof=st.text(alphabet='abcXYZ019_-\\"]} ', min_size=0, max_size=70),
    spacing=st.sampled_from(['{"proofs": ["%s"]}', '{"proofs":["%s"]}', '{"proofs": ["%s"] }']),
)
def test_the_one_proof_fast_path_agrees_with_the_json_parser(proof: str, spacing: str) -> None:
    """One-proof bodies skip json.loads (http._ONE_PROOF); whatever the
    proof's text, the answer is the parser's."""
    body = (spacing % proof).encode()
    try:
        expected: object = json.loads(body)["proofs"]
    except ValueError:
        expected = BadPing
    try:
        got: object = parse_proofs("application/json", body)
    except BadPing:
        got = BadPing
    assert got == expected


@given(content=st.binary(max_size=3000))
def test_any_smtp_message_gives_a_list_of_proofs(content: bytes) -> None:
    proofs = extract_proofs(content)
    assert all(isinstance(proof, str) for proof in proofs)


CHARSETS = st.sampled_from(
    ["utf-8", "us-ascii", "iso-8859-1", "utf-16", "idna", "x-unknown", "utf-7", "koi8-r", "a\x00b"]
)
ENCODINGS = st.sampled_from(["7bit", "8bit", "base64", "quoted-printable", "x-bogus"])


@given(charset=CHARSETS, encoding=ENCODINGS, proof=PROOF, noise=st.binary(max_size=200))
def test_mime_parts_with_any_charset_and_encoding_never_crash(
    charset: str, encoding: str, proof: str, noise: bytes
) -> None:
    """Part headers say anything (idna was a 500: its codec refuses errors=replace)."""
    payload = f"DNI-Proof: {proof}\n".encode() + noise
    if encoding == "base64":
        payload = base64.encodebytes(payload)
    content = (
        b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n--XX\r\n"
        + f"Content-Type: text/plain; charset={charset}\r\n".encode()
        + f"Content-Transfer-Encoding: {encoding}\r\n\r\n".encode()
        + payload
        + b"\r\n--XX--\r\n"
    )
    assert all(isinstance(p, str) for p in extract_proofs(content))


@given(proof=PROOF, charset=st.sampled_from(["utf-8", "us-ascii", "iso-8859-1", "utf-16"]))
def test_a_proof_in_an_encoded_text_part_is_found(proof: str, charset: str) -> None:
    message = EmailMessage()
    message["Subject"] = "opt out"
    message.set_content(f"Hello\nDNI-Proof: {proof}\n", charset=charset, cte="base64")
    assert extract_proofs(message.as_bytes()) == [proof]


@given(data=st.data())
@settings(suppress_health_check=[HealthCheck.too_slow])
def test_any_edit_of_a_signed_article_is_parsed_or_rejected(data: st.DataObject) -> None:
    """Edits re-signed with the article's key reach every check after the signature."""
    signed = EXAMPLE_BODY[: EXAMPLE_BODY.rindex(article.SIGNATURE_PREFIX)]
    start = data.draw(st.integers(0, len(signed)))
    end = data.draw(st.integers(start, min(len(signed), start + 40)))
    insert = data.draw(st.binary(max_size=40) | st.text("0123456789abcdef-=:, \n").map(str.encode))
    article_signed(signed[:start] + insert + signed[end:])


@given(raw=st.binary(max_size=3000))
def test_any_bytes_are_an_article_or_article_error(raw: bytes) -> None:
    TARGETS["article_raw"](raw)


def test_the_example_article_still_parses_through_both_article_targets() -> None:
    """The targets are not vacuous: the seed article is accepted by both."""
    TARGETS["article_raw"](EXAMPLE)
    signed = EXAMPLE_BODY[: EXAMPLE_BODY.rindex(article.SIGNATURE_PREFIX)]
    body = signed + article.SIGNATURE_PREFIX + base64.b64encode(EXAMPLE_KEY.sign(signed)) + b"\n"
    assert len(article.parse_article(body).tags) == 3
    with pytest.raises(ArticleError):
        article.parse_article(body.replace(b"Count: 3", b"Count: 03"))


_SECRET = bytes(range(32))
_B32 = "abcdefghijklmnopqrstuvwxyz234567ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@given(
    st.one_of(
        st.text(max_size=80),
        st.text(alphabet=_B32, min_size=47, max_size=47),
        st.text(alphabet=_B32, min_size=52, max_size=52),
    )
)
def test_unsubscribe_tokens_from_strangers_are_refused_in_one_way(token: str) -> None:
    """Whatever a client puts in /u/<token> or unsubscribe-<token>@: a
    subscriber only for a token made with the secret, else UnsubscribeTokenError."""
    from scrubber import unsubscribe
    from scrubber.errors import UnsubscribeTokenError
    from scrubber.listener.smtp import unsubscribe_token_of

    try:
        unsubscribe.parse_token(_SECRET, token)
    except UnsubscribeTokenError:
        pass
    else:
        raise AssertionError(f"a token not made with the secret was accepted: {token!r}")
    found = unsubscribe_token_of(f"unsubscribe-{token}@shop.example", "shop.example")
    assert found == token.lower()
