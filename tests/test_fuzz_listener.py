"""Malformed input against a running listener: every answer is a 4xx (or a
200 for a well-formed ping), never a 500, and the log has one line per bad
request, never a traceback or the client's bytes."""

from __future__ import annotations

import gzip
import re
import smtplib
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrubber.listener.http import MAX_BODY
from scrubber.workspace import init_workspace
from tests.listener_support import Listener, make_batch, proof_for, start_listener
from tests.support import wait_until

ADDRESS = "fuzz@example.org"
STATUS = re.compile(rb"^HTTP/1\.[01] (\d{3}) ")


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Listener, str, str]]:
    ws = init_workspace(tmp_path_factory.mktemp("fuzz") / "ws")
    batch = make_batch(ws, [ADDRESS])
    listener = start_listener(ws.root)
    yield listener, batch.token, ws.settings.response_domain
    assert listener.stop() == 0, listener.log()
    assert "Traceback" not in listener.log(), listener.log()


def exchange(listener: Listener, request: bytes, timeout: float = 10) -> bytes:
    """Send ``request`` and read until the server closes or the first answer is whole."""
    with socket.create_connection(("127.0.0.1", listener.ports["http"]), timeout=timeout) as sock:
        sock.sendall(request)
        answer = b""
        while b"\r\n\r\n" not in answer or _incomplete(answer):
            chunk = sock.recv(65536)
            if not chunk:
                break
            answer += chunk
    return answer


def _incomplete(answer: bytes) -> bool:
    head, _, body = answer.partition(b"\r\n\r\n")
    length = re.search(rb"(?im)^content-length: *(\d+)", head)
    return length is not None and len(body) < int(length.group(1))


def status(answer: bytes) -> int:
    found = STATUS.match(answer)
    assert found is not None, answer[:200]
    return int(found.group(1))


def post(token: str, body: bytes, *headers: str) -> bytes:
    lines = [
        f"POST /dni/v1/ping/{token} HTTP/1.1",
        "Host: localhost",
        f"Content-Length: {len(body)}",
        "Connection: close",
        *headers,
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_corrupt_gzip_body_is_400(served: tuple[Listener, str, str]) -> None:
    listener, token, _ = served
    corrupt = b"\x1f\x8b\x08\x00garbagegarbage"  # a gzip header, then no valid deflate data
    answer = exchange(
        listener, post(token, corrupt, "Content-Type: text/plain", "Content-Encoding: gzip")
    )
    assert status(answer) == 400
    assert b"could not be decoded" in answer


def test_gzip_body_that_decodes_is_a_ping(served: tuple[Listener, str, str]) -> None:
    listener, token, _ = served
    body = gzip.compress(b"g6Qcxk4ZXUgdnOij51xA6w\n")
    answer = exchange(
        listener, post(token, body, "Content-Type: text/plain", "Content-Encoding: gzip")
    )
    assert status(answer) == 200 and b'"invalid": 1' in answer


def test_deeply_nested_json_is_400(served: tuple[Listener, str, str]) -> None:
    listener, token, _ = served
    body = b'{"proofs": ' + b"[" * 20000 + b"]" * 20000 + b"}"
    answer = exchange(listener, post(token, body, "Content-Type: application/json"))
    assert status(answer) == 400


def test_announced_oversize_body_is_413_before_any_byte_is_sent(
    served: tuple[Listener, str, str],
) -> None:
    listener, token, _ = served
    head = post(token, b"", "Content-Type: text/plain", "Expect: 100-continue")
    head = head.replace(b"Content-Length: 0", f"Content-Length: {10 * 1024 * 1024}".encode())
    answer = exchange(listener, head)  # the body is never sent: the answer must not wait for it
    assert status(answer) == 413
    without_expect = head.replace(b"Expect: 100-continue\r\n", b"")
    assert status(exchange(listener, without_expect)) == 413


def test_small_body_with_expect_gets_100_continue_then_the_answer(
    served: tuple[Listener, str, str],
) -> None:
    listener, token, _ = served
    with socket.create_connection(("127.0.0.1", listener.ports["http"]), timeout=10) as sock:
        body = b"g6Qcxk4ZXUgdnOij51xA6w\n"
        sock.sendall(
            post(token, b"", "Content-Type: text/plain", "Expect: 100-continue").replace(
                b"Content-Length: 0", f"Content-Length: {len(body)}".encode()
            )
        )
        assert sock.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        assert status(sock.recv(4096)) == 200


PROTOCOL_ERRORS = [
    b"GET /\x00\x01secret-bytes HTTP/1.1\r\nHost: x\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: secret-bytes\r\n\r\n",
    b"GET / HTTP/1.1\r\nBad Header secret-bytes\r\n\r\n",
    b"POST /dni/v1/ping/x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz secret-bytes\r\n",
]


@pytest.mark.parametrize("request_bytes", PROTOCOL_ERRORS)
def test_protocol_errors_are_400_and_one_log_line(
    served: tuple[Listener, str, str], request_bytes: bytes
) -> None:
    listener, _, _ = served
    before = bad_requests(listener)
    assert status(exchange(listener, request_bytes)) == 400
    assert wait_until(lambda: bad_requests(listener) == before + 1, timeout=10)
    assert "Traceback" not in listener.log() and "secret-bytes" not in listener.log()


def test_non_http_bytes_are_400_and_logged_at_debug_only(
    served: tuple[Listener, str, str],
) -> None:
    """What scanners send to any open port: aiohttp logs it at debug level."""
    listener, _, _ = served
    assert status(exchange(listener, b"secret-bytes\r\n\r\n")) == 400
    assert (
        status(exchange(listener, b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"))
        == 200
    )
    assert "Traceback" not in listener.log() and "secret-bytes" not in listener.log()


def bad_requests(listener: Listener) -> int:
    return sum("event=bad-request" in line for line in list(listener.lines))


def test_smtp_part_with_idna_charset_is_stored_not_500(
    served: tuple[Listener, str, str],
) -> None:
    listener, token, domain = served
    message = (
        b"MIME-Version: 1.0\r\nContent-Type: text/plain; charset=idna\r\n\r\n"
        b"DNI-Proof: " + b"\xff" * 80 + b"\r\n"
    )
    with smtplib.SMTP("127.0.0.1", listener.smtp_port, timeout=30) as client:
        client.ehlo()
        client.mail("someone@example.net")
        assert client.rcpt(f"dni-{token}@{domain}")[0] == 250
        code, reply = client.data(message)
    assert code == 250, reply


METHODS = st.sampled_from(["GET", "POST", "PUT", "HEAD", "OPTIONS", "DELETE", "PATCH"])
PATHS = st.sampled_from(
    [
        "/dni/v1/ping/{token}",
        "/dni/v1/ping/",
        "/dni/v1/key",
        "/healthz",
        "/metrics",
        "/dni/v1/ping/{token}/x",
        "/%00",
        "/dni/v1/ping/../key",
    ]
)
HEADERS = st.lists(
    st.sampled_from(
        [
            "Content-Type: application/json",
            "Content-Type: text/plain",
            "Content-Type: text/plain; charset=latin-1",
            "Content-Type: multipart/form-data; boundary=x",
            "Content-Type: application/json; charset=idna",
            "Content-Encoding: gzip",
            "Content-Encoding: deflate",
            "Content-Encoding: br",
            "Content-Encoding: x-unknown",
            "Transfer-Encoding: chunked",
            "Expect: 100-continue",
            "Expect: something-else",
        ]
    ),
    max_size=3,
    unique=True,
)
BODIES = st.one_of(
    st.binary(max_size=300),
    st.just(b'{"proofs": ["g6Qcxk4ZXUgdnOij51xA6w"]}'),
    st.just(gzip.compress(b'{"proofs": ["g6Qcxk4ZXUgdnOij51xA6w"]}')),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(method=METHODS, path=PATHS, headers=HEADERS, body=BODIES)
def test_any_request_is_answered_without_a_500(
    served: tuple[Listener, str, str], method: str, path: str, headers: list[str], body: bytes
) -> None:
    listener, token, _ = served
    lines = [f"{method} {path.format(token=token)} HTTP/1.1", "Host: localhost", *headers]
    # Framing always matches the body: a body shorter than announced is a slow
    # client, which waits out the read timeout (tested elsewhere).
    if "Transfer-Encoding: chunked" in headers:
        body = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n" if body else b"0\r\n\r\n"
    else:
        lines.append(f"Content-Length: {len(body)}")
    lines.append("Connection: close")
    answer = exchange(listener, ("\r\n".join(lines) + "\r\n\r\n").encode() + body)
    if answer.startswith(b"HTTP/1.1 100 Continue\r\n\r\n"):
        answer = answer[len(b"HTTP/1.1 100 Continue\r\n\r\n") :]
    if answer:  # the server may close on a body it cannot frame
        assert status(answer) < 500, answer[:300]


def test_proofs_of_a_real_registrant_still_work(tmp_path: Path) -> None:
    """The hardening refuses nothing valid: a ping in a gzip body suppresses."""
    ws = init_workspace(tmp_path / "ws")
    batch = make_batch(ws, [ADDRESS])
    listener = start_listener(ws.root, channels=("http",))
    try:
        body = gzip.compress(proof_for(ADDRESS, batch).encode())
        answer = exchange(
            listener, post(batch.token, body, "Content-Type: text/plain", "Content-Encoding: gzip")
        )
        assert status(answer) == 200 and b'"suppressed": 1' in answer
        assert MAX_BODY == 64 * 1024
    finally:
        assert listener.stop() == 0
