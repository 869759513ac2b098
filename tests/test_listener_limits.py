"""Connection and session limits of a live listener, over real sockets from
127.0.0.x source addresses (loopback only)."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import gzip
import json
import logging
import socket
import sys
import time
import weakref
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import pytest

from scrubber.listener.committer import GroupCommitter
from scrubber.listener.gate import ConnectionGate
from scrubber.listener.http import MAX_BODY
from scrubber.listener.ingestor import Ingestor, ThreadRecorder
from scrubber.listener.logs import NoTraceback, Repeats
from scrubber.listener.ratelimit import Limits
from scrubber.listener.smtp import GatedSMTP, SessionLimits, SmtpHandler, smtp_door
from scrubber.store.models import Batch, PingTally
from scrubber.workspace import Workspace, open_store
from tests.listener_support import Listener, make_batch, proof_for, start_listener
from tests.support import wait_until_async

ADDRESSES = [f"limited{i}@example.org" for i in range(6)]


def connect(port: int, source: str, timeout: float = 10) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(timeout)
    sock.bind((source, 0))
    sock.connect(("127.0.0.1", port))
    return sock


def read_until_closed(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(4096):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def http_ping(listener: Listener, token: str, proof: str, source: str = "127.0.0.1") -> int:
    body = json.dumps({"proofs": [proof]}).encode()
    sock = connect(listener.ports["http"], source)
    head = (
        f"POST /dni/v1/ping/{token} HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    sock.sendall(head.encode() + body)
    answer = read_until_closed(sock)
    sock.close()
    return int(answer.split(b" ", 2)[1])


@pytest.fixture
def batch(workspace: Workspace) -> Batch:
    return make_batch(workspace, ADDRESSES)


@pytest.fixture
def listener(workspace: Workspace, batch: Batch) -> Iterator[Listener]:
    running = start_listener(
        workspace.root,
        "--max-connections", "30",
        "--max-client-connections", "10",
        "--smtp-idle-timeout", "1.5",
        "--smtp-session-timeout", "4",
        "--read-timeout", "2",
    )  # fmt: skip
    yield running
    assert running.stop() == 0, running.log()


def test_connection_caps_per_client_and_per_channel(
    workspace: Workspace, batch: Batch, listener: Listener
) -> None:
    smtp, http = listener.smtp_port, listener.ports["http"]
    held = [connect(smtp, "127.0.0.2") for _ in range(10)]
    assert all(s.recv(4096).startswith(b"220 ") for s in held)
    over = connect(smtp, "127.0.0.2")
    assert over.recv(4096).startswith(b"421 4.7.0")  # the client's cap
    others = [connect(smtp, f"127.0.0.{3 + i // 10}") for i in range(20)]
    assert all(s.recv(4096).startswith(b"220 ") for s in others)
    # The channel is full (30): a newcomer gets in, the biggest holder's
    # oldest session makes room for it.
    full = connect(smtp, "127.0.0.9")
    assert full.recv(4096).startswith(b"220 ")
    assert held[0].recv(4096).startswith(b"421 ")
    assert read_until_closed(held[0]) == b""
    # The other channel is not starved: a ping over HTTP, then its own client cap.
    assert http_ping(listener, batch.token, proof_for(ADDRESSES[0], batch)) == 200
    idle = [connect(http, "127.0.0.10") for _ in range(10)]
    refused = connect(http, "127.0.0.10")
    assert read_until_closed(refused).startswith(b"HTTP/1.1 503 ")  # before any request
    assert http_ping(listener, batch.token, proof_for(ADDRESSES[1], batch)) == 200
    for sock in [*held, over, *others, full, *idle, refused]:
        sock.close()
    assert 'scrubber_connections_refused_total{channel="smtp"} 1.0' in metrics(listener)
    assert 'scrubber_connections_refused_total{channel="http"} 1.0' in metrics(listener)
    log = listener.log()
    assert "Traceback" not in log
    assert 1 <= log.count("event=connection-refused") <= 3  # at most one a second


def metrics(listener: Listener) -> str:
    sock = connect(listener.ports["http"], "127.0.0.1")
    sock.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    text = read_until_closed(sock).decode()
    sock.close()
    return text


def test_noop_does_not_keep_an_smtp_session(listener: Listener) -> None:
    # The session's clocks start when it is accepted, so ours starts before the
    # connects: taken after the greetings, a slow machine saw the cut "early".
    started = time.monotonic()
    noop = connect(listener.smtp_port, "127.0.0.2")
    busy = connect(listener.smtp_port, "127.0.0.2")
    assert noop.recv(4096).startswith(b"220 ") and busy.recv(4096).startswith(b"220 ")
    idle_cut = total_cut = None
    while (idle_cut is None or total_cut is None) and time.monotonic() - started < 15:
        for sock, command in ((noop, b"NOOP\r\n"), (busy, b"EHLO responder.example\r\n")):
            try:
                sock.sendall(command)
                reply = sock.recv(4096)
            except OSError:
                reply = b""
            if reply.startswith(b"421 4.4.2") or reply == b"":
                if sock is noop and idle_cut is None:
                    idle_cut = time.monotonic() - started
                if sock is busy and total_cut is None:
                    total_cut = time.monotonic() - started
        time.sleep(0.2)  # the client's pace, not synchronisation
    assert idle_cut is not None and 1.5 <= idle_cut < 4  # NOOPs kept coming
    assert total_cut is not None and 4 <= total_cut < 8  # EHLO moves on, but not forever
    noop.close()
    busy.close()


def test_slow_http_head_is_cut(listener: Listener) -> None:
    """A head sent a byte at a time is closed at the read timeout (2 s here)."""
    sock = connect(listener.ports["http"], "127.0.0.2", timeout=0.25)
    started = time.monotonic()
    sock.sendall(b"POST /dni/v1/ping/x HTTP/1.1\r\n")
    closed_after = None
    while closed_after is None and time.monotonic() - started < 10:
        try:
            sock.sendall(b"X")  # never a whole head
            if sock.recv(4096) == b"":
                closed_after = time.monotonic() - started
        except TimeoutError:
            continue  # still open: the client's pace
        except OSError:
            closed_after = time.monotonic() - started
    assert closed_after is not None and closed_after < 5
    sock.close()


@pytest.mark.parametrize("expect", [True, False])
def test_announced_body_over_the_cap_is_refused_at_once(
    batch: Batch, listener: Listener, expect: bool
) -> None:
    sock = connect(listener.ports["http"], "127.0.0.2", timeout=1.5)
    head = (
        f"POST /dni/v1/ping/{batch.token} HTTP/1.1\r\nHost: x\r\n"
        "Content-Type: application/json\r\nContent-Length: 10000000\r\n"
    )
    if expect:
        head += "Expect: 100-continue\r\n"
    sock.sendall(head.encode() + b"\r\n")
    answer = sock.recv(4096)  # within the 1.5 s timeout: no body was sent
    assert answer.startswith(b"HTTP/1.1 413 "), answer
    sock.close()


@pytest.mark.parametrize("encoding", ["chunked", "gzip"])
def test_unannounced_body_over_the_cap_is_refused(
    workspace: Workspace, batch: Batch, listener: Listener, encoding: str
) -> None:
    """A body with no length to refuse it by, sent whole (chunked, or gzip
    inflating past the cap): refused once read, 413, nothing stored."""
    body = b"\n" * (MAX_BODY + 1)
    if encoding == "chunked":
        framing, data = "Transfer-Encoding: chunked", b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    else:
        data = gzip.compress(body)
        framing = f"Content-Encoding: gzip\r\nContent-Length: {len(data)}"
    sock = connect(listener.ports["http"], "127.0.0.2", timeout=5)
    sock.sendall(
        f"POST /dni/v1/ping/{batch.token} HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: text/plain\r\n{framing}\r\n\r\n".encode()
        + data
    )
    assert read_until_closed(sock).startswith(b"HTTP/1.1 413 ")
    sock.close()
    assert http_ping(listener, batch.token, "AAAAAAAAAAAAAAAAAAAAAA", "127.0.0.3") == 200
    store = open_store(workspace)
    with store.read() as session:  # the refused body: no tally row for its client
        assert [t.peer for t in session.query(PingTally)] == ["127.0.0.3"]
    store.close()


def test_garbage_requests_log_no_traceback(listener: Listener) -> None:
    for _ in range(50):
        sock = connect(listener.ports["http"], "127.0.0.2")
        sock.sendall(b"\x16\x03\x01 NOT HTTP AT ALL\r\n\r\n")
        assert read_until_closed(sock).startswith(b"HTTP/1.0 400")
        sock.close()
    assert http_ping(listener, "x", "y") == 404
    log = listener.log()
    assert "Traceback" not in log
    assert "NOT HTTP" not in log


def test_open_file_limit_raised_to_hard(workspace: Workspace, batch: Batch) -> None:
    raised = start_listener(workspace.root, prefix=("prlimit", "--nofile=256:4096", "--"))
    try:
        limits = Path(f"/proc/{raised.proc.pid}/limits").read_text()
    finally:
        assert raised.stop() == 0
    assert "nofile-low" not in raised.log()
    line = next(x for x in limits.splitlines() if x.startswith("Max open files"))
    assert line.split()[3:5] == ["4096", "4096"]
    low = start_listener(workspace.root, prefix=("prlimit", "--nofile=256:256", "--"))
    assert low.stop() == 0
    assert "event=nofile-low limit=256" in low.log()


def test_repeated_warnings_are_held_back_with_a_count() -> None:
    now = [0.0]
    repeats = Repeats(clock=lambda: now[0])

    def record(msg: str, level: int = logging.WARNING) -> logging.LogRecord:
        return logging.LogRecord("aiohttp.server", level, __file__, 1, msg, ("x",), None)

    assert repeats.filter(record("event=a peer=%s"))
    assert not any(repeats.filter(record("event=a peer=%s")) for _ in range(500))
    assert repeats.filter(record("event=b peer=%s"))  # another line is not held back
    assert all(repeats.filter(record("event=c", logging.INFO)) for _ in range(3))
    now[0] += 1.0
    later = record("event=a peer=%s")
    assert repeats.filter(later) and later.getMessage() == "event=a peer=x repeated=500"
    try:
        raise OSError(24, "Too many open files")
    except OSError:
        failed = logging.LogRecord(
            "asyncio", logging.ERROR, __file__, 1, "accept failed", None, sys.exc_info()
        )
    assert NoTraceback().filter(failed) and failed.exc_info is None
    assert failed.getMessage() == "accept failed error=OSError: [Errno 24] Too many open files"


def test_a_newcomer_evicts_the_biggest_holder_until_holders_are_even() -> None:
    gate = ConnectionGate("http", total=6, per_client=32)
    closed: list[str] = []

    def closer(name: str) -> Callable[[], None]:
        return lambda: closed.append(name)

    slots = {f"a{i}": closer(f"a{i}") for i in range(4)} | {"b0": closer("b0")}
    for name in ("a0", "a1", "a2", "a3"):
        assert gate.enter("192.0.2.1", slots[name]) is None
    assert gate.enter("192.0.2.2", slots["b0"]) is None
    assert gate.enter("192.0.2.3", closer("c0")) is None  # full now: 6
    assert gate.enter("192.0.2.4", closer("d0")) is None  # evicts 192.0.2.1's oldest
    assert closed == ["a0"]
    gate.leave("192.0.2.1", slots["a0"])  # its connection_lost: already counted
    assert gate.open == 6
    assert gate.enter("192.0.2.4", closer("d1")) is None  # 192.0.2.1 still holds 3 > 2
    assert gate.enter("192.0.2.4", closer("d2")) == "total"  # even now: 2, 1, 1, 2
    gate.leave("192.0.2.2", slots["b0"])
    assert gate.open == 5 and gate.enter("192.0.2.5", closer("e0")) is None


def test_a_client_holding_fewer_than_the_biggest_holder_is_admitted() -> None:
    """At the cap, a registrant whose pings overlap (4 open) is not refused
    while another client holds more (5): that client's oldest makes room
    (bench/abuse.py saw a valid ping refused 503 there)."""
    gate = ConnectionGate("http", total=9, per_client=32)
    closed: list[str] = []
    for number in range(5):
        assert gate.enter("192.0.2.1", lambda n=number: closed.append(f"a{n}")) is None
    for number in range(4):
        assert gate.enter("192.0.2.2", lambda n=number: closed.append(f"r{n}")) is None
    assert gate.enter("192.0.2.2", lambda: closed.append("r4")) is None
    assert closed == ["a0"] and gate.open == 9
    # Now it holds the most (5 to 4): it is refused, the other gets one back.
    assert gate.enter("192.0.2.2", lambda: closed.append("r5")) == "total"
    assert gate.enter("192.0.2.1", lambda: closed.append("a5")) is None
    assert closed == ["a0", "r0"]


def test_closed_smtp_sessions_are_freed(workspace: Workspace) -> None:
    """Each SMTP connection's session is forgotten when it closes (it was
    kept until 1,000 had piled up: 9 MB of the soak's RSS growth); only the
    open ones stay known, for the shutdown."""
    asyncio.run(_sessions_after_clients(workspace, clients=40))


async def _sessions_after_clients(workspace: Workspace, clients: int) -> None:
    async with _smtp_server(workspace) as (port, gate, sessions):
        seen: weakref.WeakSet[GatedSMTP] = weakref.WeakSet()
        kept_open = await _smtp_client(port, "EHLO x\r\n")
        for number in range(clients):
            # Polite clients QUIT; the others just go (a reset, half-way through).
            words = "EHLO x\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<x@elsewhere.example>\r\n"
            closed = await _smtp_client(port, words + ("QUIT\r\n" if number % 2 else ""))
            seen.update(sessions)
            closed.close()
            await closed.wait_closed()
        # connection_lost runs on the loop's next turns; the assertion below says what is left.
        await wait_until_async(lambda: len(sessions) <= 1, timeout=5)
        gc.collect()
        assert len(sessions) == 1 and gate.open == 1  # the open one, for the shutdown
        assert len(seen) == 1, f"{len(seen) - 1} closed sessions still alive"
        kept_open.close()
        await kept_open.wait_closed()


async def _smtp_client(port: int, words: str) -> asyncio.StreamWriter:
    """A client that says ``words`` and reads every answer to them."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    await reader.readline()  # the greeting
    writer.write(words.encode())
    for command in words.splitlines():
        while (line := await reader.readline())[3:4] == b"-":
            pass  # a multi-line answer (EHLO)
        assert line[:1] in b"2345", (command, line)
    return writer


def test_a_noop_at_the_prompt_costs_the_loop_one_callback(
    workspace: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Idle sessions' NOOPs arrive together (1,000 at once in bench/abuse.py);
    each is answered where its bytes arrive, without a trip through the
    session's task (through aiosmtpd's command loop: two callbacks or more,
    about 0.08 ms of the loop each), so a burst does not hold up others."""
    ran = [0]
    run = asyncio.events.Handle._run

    def counted(handle: asyncio.events.Handle) -> None:
        ran[0] += 1
        run(handle)

    monkeypatch.setattr(asyncio.events.Handle, "_run", counted)
    callbacks, answers = asyncio.run(_noop_round(workspace, 40, ran))
    assert answers == [b"250 OK\r\n"] * 40
    assert callbacks <= 40 * 1.5, callbacks


async def _noop_round(
    workspace: Workspace, sessions: int, ran: list[int]
) -> tuple[int, list[bytes]]:
    """Loop callbacks (``ran``) run while ``sessions`` greeted clients (in a
    thread) each send one NOOP and read its answer."""
    async with _smtp_server(workspace) as (port, _, _):
        socks = [await asyncio.to_thread(connect, port, "127.0.0.2") for _ in range(sessions)]
        for sock in socks:
            assert (await asyncio.to_thread(sock.recv, 4096)).startswith(b"220 ")
        await asyncio.sleep(0.1)  # every session's task is waiting for a command

        def round_trip() -> list[bytes]:
            for sock in socks:
                sock.sendall(b"NOOP\r\n")
            return [sock.recv(4096) for sock in socks]

        before = ran[0]
        answers = await asyncio.to_thread(round_trip)
        callbacks = ran[0] - before
        for sock in socks:
            sock.close()
        return callbacks, answers


def test_noops_answered_either_way_share_one_limit(workspace: Workspace) -> None:
    """Six NOOPs alone, then five in one packet (aiosmtpd parses those): the
    eleventh of the session is refused and the session closed, as before."""
    asyncio.run(_noops_alone_then_pipelined(workspace))


async def _noops_alone_then_pipelined(workspace: Workspace) -> None:
    async with _smtp_server(workspace) as (port, _, _):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        assert (await reader.readline()).startswith(b"220 ")
        for _ in range(6):
            writer.write(b"noop\r\n")
            assert await reader.readline() == b"250 OK\r\n"
        writer.write(b"NOOP\r\n" * 5)
        answers = [await reader.readline() for _ in range(5)]
        assert answers[:4] == [b"250 OK\r\n"] * 4
        assert answers[4].startswith(b"421 ") and await reader.read() == b""
        writer.close()


@contextlib.asynccontextmanager
async def _smtp_server(
    workspace: Workspace,
) -> AsyncIterator[tuple[int, ConnectionGate, set[GatedSMTP]]]:
    """The listener's SMTP door and sessions on a loopback port, in this loop:
    (port, its gate, its set of open sessions)."""
    store = open_store(workspace)
    handler = SmtpHandler(
        GroupCommitter(ThreadRecorder(Ingestor(store))),
        Ingestor(store),
        "dni.example",
        Limits.of(600, 60_000),
        lambda *_: None,
        lambda *_: None,
    )
    gate = ConnectionGate("smtp", 100, 100)
    sessions: set[GatedSMTP] = set()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: smtp_door(handler, "dni.example", gate, SessionLimits(), sessions), "127.0.0.1", 0
    )
    try:
        yield server.sockets[0].getsockname()[1], gate, sessions
    finally:
        server.close()
        for session in list(sessions):
            if session.transport is not None:
                session.transport.close()
        await server.wait_closed()
        store.close()


def test_a_noop_inside_a_message_is_its_text(
    workspace: Workspace, batch: Batch, listener: Listener
) -> None:
    """A line "NOOP" sent on its own while a message is being sent is part of
    the message, not a command: the one answer is the message's."""
    sock = connect(listener.smtp_port, "127.0.0.2")
    assert sock.recv(4096).startswith(b"220 ")
    rcpt = f"dni-{batch.token}@{workspace.settings.response_domain}"
    for command, code in ((b"HELO x", b"250"), (b"MAIL FROM:<r@x.example>", b"250")):
        sock.sendall(command + b"\r\n")
        assert sock.recv(4096).startswith(code)
    sock.sendall(f"RCPT TO:<{rcpt}>\r\n".encode())
    assert sock.recv(4096).startswith(b"250")
    sock.sendall(b"DATA\r\n")
    assert sock.recv(4096).startswith(b"354")
    sock.sendall(b"Subject: ping\r\n\r\n")
    time.sleep(0.1)  # each its own packet, as a NOOP would come
    sock.sendall(b"NOOP\r\n")
    time.sleep(0.1)
    proof = proof_for(ADDRESSES[2], batch)
    sock.sendall(f"DNI-Proof: {proof}\r\n.\r\n".encode())
    assert sock.recv(4096).startswith(b"250 2.0.0 Stored: accepted=1")
    sock.close()
