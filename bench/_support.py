"""What several benches share, in one home: ports, a `scrubber listen` child,
a workspace with one batch, a registrant's valid pings, the raw argon2
baseline (hash and pipeline), process figures.

A bench runs as a script (`.venv/bin/python bench/x.py`), so it puts the
repository root on `sys.path` and imports this as `bench._support`; no bench
imports another bench's module (tests/test_layout.py holds that).
"""

from __future__ import annotations

import http.client
import json
import os
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, TYPE_CHECKING

from argon2.low_level import Type, hash_secret_raw

if TYPE_CHECKING:
    from scrubber.config import Settings

ROOT = Path(__file__).resolve().parent.parent
DOMAIN = "dni.example.test"  # the workspace default response domain
JSON_HEADERS = {"Content-Type": "application/json"}


# -- ports and server processes ------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    """Poll until something accepts on ``port``; exit the bench if ``proc`` dies first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    proc.kill()
    sys.exit(f"server on port {port} did not start")


def stop(server: subprocess.Popen[bytes], ok_exits: tuple[int, ...] = (0,)) -> None:
    """SIGTERM the server; any exit code but ``ok_exits`` makes the run invalid."""
    server.terminate()
    code = server.wait()
    if code not in ok_exits:
        sys.exit(f"server exit {code}: not a valid run")


def listen(workspace: Path, *args: str, stderr: IO[bytes] | None = None) -> subprocess.Popen[bytes]:
    """`python -m scrubber --workspace W listen ARGS` from the checkout (not started-checked)."""
    return subprocess.Popen(
        [sys.executable, "-m", "scrubber", "--workspace", str(workspace), "listen", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stderr=stderr,
    )


def serve_listener(
    workspace: Path, channel: str, port: int, *extra: str
) -> subprocess.Popen[bytes]:
    """`scrubber listen` on one channel ("http" or "smtp"), the other off, no
    rate limits (the load generator's connections all come from one address)."""
    other = "smtp" if channel == "http" else "http"
    return listen(
        workspace,
        f"--{other}", "off", f"--{channel}", f"127.0.0.1:{port}",
        "--client-rate", "0", "--token-rate", "0", "--log-level", "warning",
        "--max-client-connections", "1000", *extra,
    )  # fmt: skip


def start_listener(
    workspace: Path, http_port: int, smtp_port: int, log: Path
) -> subprocess.Popen[bytes]:
    """`scrubber listen` on both channels with the default limits, started."""
    proc = listen(
        workspace,
        "--http", f"127.0.0.1:{http_port}", "--smtp", f"127.0.0.1:{smtp_port}",
        "--log-level", "warning",
        stderr=log.open("wb"),
    )  # fmt: skip
    wait_port(http_port, proc)
    wait_port(smtp_port, proc)
    return proc


# -- a workspace with one batch ------------------------------------------------


def make_workspace(
    root: Path, addresses: int, database_url: str | None = None
) -> tuple[str, list[str]]:
    """A workspace with one batch (cheap Argon2 cost); returns its token and the proofs."""
    from sqlalchemy import select

    from scrubber import scheme
    from scrubber.batch.create import create_batch, request_from_settings
    from scrubber.config import Settings
    from scrubber.hashing import ThreadExecutor
    from scrubber.lists import import_files
    from scrubber.store.models import BatchEntry, CachedDigest
    from scrubber.workspace import init_workspace, load_key, open_store

    settings = Settings(argon2_t=1, argon2_m=8)
    if database_url is not None:
        settings = Settings(argon2_t=1, argon2_m=8, database_url=database_url)
    ws = init_workspace(root, settings)
    source = root / "list.txt"
    source.write_text("".join(f"bench{i}@example.com\n" for i in range(addresses)))
    store = open_store(ws)
    executor = ThreadExecutor(2)
    import_files(store, "bench", [source], rejects_path=root / "rejects.csv")
    request = request_from_settings(ws.settings, ["bench"])
    batch = create_batch(store, ws.settings, load_key(ws), request, executor).batch
    executor.close()
    with store.read() as session:
        proofs = [
            scheme.b64url(p)
            for (p,) in session.execute(
                select(CachedDigest.proof)
                .join(BatchEntry, BatchEntry.address_id == CachedDigest.address_id)
                .where(BatchEntry.batch_id == batch.id, CachedDigest.epoch_id == batch.epoch_id)
            )
        ]
    store.close()
    return batch.token, proofs


# -- a registrant's valid pings -------------------------------------------------


def http_ping(port: int, token: str, proof: str) -> tuple[float, str]:
    """A valid HTTP ping: its latency and "" or why it failed."""
    started = time.perf_counter()
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        body = json.dumps({"proofs": [proof]})
        conn.request("POST", f"/dni/v1/ping/{token}", body, JSON_HEADERS)
        response = conn.getresponse()
        answer = response.read()
        failure = (
            ""
            if response.status == 200 and b"accepted" in answer
            else f"http {response.status} {answer[:40].decode(errors='replace')}"
        )
        conn.close()
    except (OSError, http.client.HTTPException) as error:
        failure = f"http {type(error).__name__}"
    return time.perf_counter() - started, failure


def smtp_ping(port: int, token: str, proof: str) -> tuple[float, str]:
    """A valid SMTP ping, one message on a new connection: its latency and "" or why it failed."""
    started = time.perf_counter()
    try:
        with smtplib.SMTP("127.0.0.1", port, timeout=30) as client:
            client.sendmail(
                "ping@responder.example",
                [f"dni-{token}@{DOMAIN}"],
                f"Subject: ping\r\n\r\nDNI-Proof: {proof}\r\n",
            )
        failure = ""
    except smtplib.SMTPResponseException as error:
        failure = f"smtp {error.smtp_code}"
    except (OSError, smtplib.SMTPException) as error:
        failure = f"smtp {type(error).__name__}"
    return time.perf_counter() - started, failure


# -- figures ----------------------------------------------------------------------


def raw_rate(params: Settings, seconds: float) -> float:
    """Single-thread hash_secret_raw rate (hashes/s) over at least ``seconds``."""
    salt = os.urandom(16)
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        for _ in range(50):
            hash_secret_raw(
                f"user{count}@example.com".encode(),
                salt,
                time_cost=params.argon2_t,
                memory_cost=params.argon2_m,
                parallelism=params.argon2_p,
                hash_len=32,
                type=Type.ID,
                version=0x13,
            )
            count += 1
    return count / elapsed


def p99(values: list[float]) -> float:
    """The 99th percentile of latencies in seconds, in milliseconds (0 for none)."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000 if ordered else 0.0


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        found += [int(child) for child in text]
    return found
