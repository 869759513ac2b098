"""The example exchanges of docs/scheme.md ("Example exchanges") against a real
listener: the requests are sent as written (with a real batch's token, proof
and id in place of the example's) and the answers must match byte for byte,
but for the Date and Server values and the greeting texts."""

from __future__ import annotations

import re
import socket
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scrubber.config import Settings
from scrubber.workspace import init_workspace
from tests.listener_support import Listener, make_batch, proof_for, start_listener

ROOT = Path(__file__).resolve().parent.parent
SPEC = (ROOT / "docs" / "scheme.md").read_text(encoding="utf-8")
DOMAIN = "dni.example.com"
EXAMPLE = {
    "token": "q7Xz0Jm4bS3uVw9YcLp2Ea",
    "proof": "g6Qcxk4ZXUgdnOij51xA6w",
    "batch": "20261123-0a1b2c3d",
}
VARYING = ("date", "server")


def blocks(kind: str) -> list[str]:
    return re.findall(rf"```{kind}\n(.*?)```", SPEC, re.DOTALL)


@dataclass
class Real:
    listener: Listener
    token: str
    proof: str
    batch: str
    other_proof: str  # of a second address, for the SMTP example

    def substitute(self, text: str, *, other: bool = False) -> str:
        for name, value in EXAMPLE.items():
            text = text.replace(
                value, getattr(self, "other_proof" if other and name == "proof" else name)
            )
        return text


@pytest.fixture(scope="module")
def real(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Real]:
    ws = init_workspace(
        tmp_path_factory.mktemp("exchanges") / "ws", Settings(response_domain=DOMAIN)
    )
    batch = make_batch(ws, ["Jane.Doe+promo@Example.COM", "john@example.com"])
    listener = start_listener(ws.root)
    proofs = [proof_for(address, batch) for address in ("jane.doe@example.com", "john@example.com")]
    yield Real(listener, batch.token, proofs[0], batch.id, proofs[1])
    assert listener.stop() == 0, listener.log()


def split_message(text: str) -> tuple[list[str], bytes]:
    """Head lines and body of a message as the spec writes it (LF, one final LF)."""
    head, _, body = text.partition("\n\n")
    return head.split("\n"), body.removesuffix("\n").encode()


def with_length(head: list[str], body: bytes) -> list[str]:
    """The head with the Content-Length the (substituted) body needs."""
    return [
        f"Content-Length: {len(body)}" if line.lower().startswith("content-length:") else line
        for line in head
    ]


def test_the_spec_has_the_examples() -> None:
    assert len(blocks("http-request")) == len(blocks("http-answer")) >= 2
    assert len(blocks("smtp-session")) == 1


def test_the_written_lengths_are_right() -> None:
    for text in blocks("http-request") + blocks("http-answer"):
        head, body = split_message(text)
        assert with_length(head, body) == head


@pytest.mark.parametrize("index", range(len(blocks("http-request"))))
def test_http_example(real: Real, index: int) -> None:
    head, body = split_message(real.substitute(blocks("http-request")[index]))
    request = "\r\n".join(with_length(head, body)).encode() + b"\r\n\r\n" + body
    with socket.create_connection(("127.0.0.1", real.listener.ports["http"]), timeout=30) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    got_head, _, got_body = answer.partition(b"\r\n\r\n")
    want_head, want_body = split_message(real.substitute(blocks("http-answer")[index]))
    assert got_body == want_body
    assert masked(got_head.decode().split("\r\n")) == masked(with_length(want_head, want_body))


def masked(head: list[str]) -> list[str]:
    return [
        line.split(":")[0] + ": *" if line.split(":")[0].lower() in VARYING else line
        for line in head
    ]


def test_smtp_example(real: Real) -> None:
    lines = real.substitute(blocks("smtp-session")[0], other=True).rstrip("\n").split("\n")
    with socket.create_connection(("127.0.0.1", real.listener.smtp_port), timeout=30) as sock:
        stream = sock.makefile("rwb")
        for line in lines:
            side, _, text = line.partition(":")
            text = text.removeprefix(" ")
            if side == "C":
                stream.write(text.encode() + b"\r\n")
                stream.flush()
                continue
            got = stream.readline().decode().removesuffix("\r\n")
            if text.startswith("220 "):  # the greeting's text after the host name is free
                assert got.split()[:2] == text.split()[:2], got
            else:
                assert got == text
