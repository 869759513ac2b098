"""Proof extraction from SMTP messages: the fast path for plain messages
must find exactly what the email parser finds, for any message."""

from __future__ import annotations

from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

from hypothesis import given
from hypothesis import strategies as st

from scrubber.listener.smtp import _plain_body, extract_proofs, parsed_proofs

PROOF = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1)
HEADER = st.sampled_from(
    [
        b"Subject: ping",
        b"From: someone@example.org",
        b"DNI-Proof: inheader",
        b"X-Folded: first",
        b"  continued",
        b"Content-Type: text/plain; charset=utf-8",
        b"Content-Transfer-Encoding: quoted-printable",
        b"MIME-Version: 1.0",
        b"not a header line",
        b"From mbox-style",
        b"",
    ]
)
BODY_LINE = st.one_of(
    PROOF.map(lambda p: f"DNI-Proof: {p}".encode()),
    PROOF.map(lambda p: f"dni-proof:\t{p} ".encode()),
    st.sampled_from([b"hello", b"DNI-Proof:", b"DNI-Proof: a b", b"caf\xc3\xa9", b"\xff\xfe", b""]),
)


@given(
    headers=st.lists(HEADER, max_size=5),
    body=st.lists(BODY_LINE, max_size=6),
    newline=st.sampled_from([b"\n", b"\r\n"]),
    separator=st.booleans(),
)
def test_fast_path_agrees_with_the_parser(
    headers: list[bytes], body: list[bytes], newline: bytes, separator: bool
) -> None:
    message = newline.join(headers) + (newline * 2 if separator else newline) + newline.join(body)
    assert extract_proofs(message) == parsed_proofs(message)


def test_plain_messages_take_the_fast_path() -> None:
    message = b"Subject: ping\r\n\r\nDNI-Proof: abc\r\nDNI-Proof: def\r\n"
    assert _plain_body(message) == b"DNI-Proof: abc\r\nDNI-Proof: def\r\n"
    assert extract_proofs(message) == ["abc", "def"]


def test_mime_messages_go_to_the_parser() -> None:
    quoted = MIMEText("DNI-Proof: " + "x" * 70 + "\n", "plain", "utf-8")
    quoted.replace_header("Content-Transfer-Encoding", "quoted-printable")
    quoted.set_payload("DNI-Proof: " + "x" * 70 + "=\n\n")
    multi = MIMEMultipart()
    multi.attach(MIMEText("DNI-Proof: inpart\n"))
    for message in (quoted.as_bytes(), multi.as_bytes()):
        assert _plain_body(message) is None
    assert extract_proofs(multi.as_bytes()) == ["inpart"]
