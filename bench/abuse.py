"""Benchmark: a registrant's valid pings while the listener is attacked (issue 13).

    .venv/bin/python bench/abuse.py [--seconds S] [--attacks NAME,...]

One `scrubber listen` (both channels, default limits) on loopback, on a
fresh SQLite workspace. Each attack runs for S seconds (default 8) in its
own process, from 127.0.x.y source addresses, while this process sends
valid pings: one HTTP ping every 50 ms and one SMTP message every 250 ms,
each on a new connection, each with a proof never sent before. Before the
attacks, a round without one is the baseline. Per attack: the valid pings'
p99 and failures, the database's growth (after a WAL checkpoint, so only
what was stored counts), the listener's RSS (and its writer child's).

Attacks: refused-flood (one client, 1,000-proof forged requests as fast as
20 connections go: nearly all refused), unknown-token (the same at random
tokens), forged-rotating (random proofs from 200 addresses, each within its
own limit at first), idle-connections (thousands of SMTP sessions kept
alive with NOOP and silent HTTP connections, from 200 addresses),
slow-clients (HTTP heads and SMTP DATA a byte a second).

The last line is
`abuse: worst valid-ping p99 X ms, db growth Y MB (goal < 100 ms, <= 1 MB)`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import resource
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import (  # noqa: E402
    DOMAIN,
    JSON_HEADERS,
    children,
    free_port,
    http_ping,
    make_workspace,
    p99,
    rss_mb,
    smtp_ping,
    start_listener,
    stop,
)

GOAL_P99_MS = 100.0
GOAL_GROWTH_MB = 1.0
ATTACKS = ("refused-flood", "unknown-token", "forged-rotating", "idle-connections", "slow-clients")
HTTP_EVERY = 0.05
SMTP_EVERY = 0.25


# -- the attacker process ---------------------------------------------------


def forged_body(rng: random.Random) -> bytes:
    proofs = [rng.randbytes(16).hex()[:22] for _ in range(1000)]  # base64url-shaped
    return json.dumps({"proofs": proofs}).encode()


async def flood(http_port: int, token: str, seconds: float, *, unknown: bool) -> int:
    import aiohttp

    rng = random.Random(7)
    body = forged_body(rng)
    source = "127.0.0.3" if unknown else "127.0.0.2"
    connector = aiohttp.TCPConnector(local_addr=(source, 0), limit=20)
    sent = 0
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            nonlocal sent
            while time.monotonic() < deadline:
                target = rng.randbytes(12).hex() if unknown else token
                url = f"http://127.0.0.1:{http_port}/dni/v1/ping/{target}"
                try:
                    async with http.post(url, data=body, headers=JSON_HEADERS) as response:
                        await response.read()
                except aiohttp.ClientError:
                    await asyncio.sleep(0.01)
                sent += 1

        await asyncio.gather(*(worker() for _ in range(20)))
    return sent


async def forged_rotating(http_port: int, token: str, seconds: float) -> int:
    import aiohttp

    rng = random.Random(11)
    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(f"127.0.1.{i}", 0), force_close=True)
        )
        for i in range(1, 201)
    ]
    url = f"http://127.0.0.1:{http_port}/dni/v1/ping/{token}"
    sent = 0
    deadline = time.monotonic() + seconds

    async def worker(number: int) -> None:
        nonlocal sent
        turn = number
        while time.monotonic() < deadline:
            turn += 7
            body = forged_body(rng)  # fresh random proofs every time
            try:
                async with sessions[turn % len(sessions)].post(
                    url, data=body, headers=JSON_HEADERS
                ) as response:
                    await response.read()
            except aiohttp.ClientError:
                await asyncio.sleep(0.01)
            sent += 1

    try:
        await asyncio.gather(*(worker(i) for i in range(50)))
    finally:
        for session in sessions:
            await session.close()
    return sent


def ready(ramp: float = 0.0) -> None:
    """Tell the bench the attack is in full swing (the registrant starts now)."""
    print(f"ready ramp={ramp:.1f}s", flush=True)


async def idle_connections(http_port: int, smtp_port: int, seconds: float) -> int:
    """25 connections from each of 200 addresses per channel, held open; the
    SMTP ones send NOOP every 2 s. The attack is in full swing once the
    listener has answered every SMTP connection (220 or 421): a connect
    completes in the kernel's backlog, long before the listener takes it."""
    started = time.monotonic()
    writers: list[asyncio.StreamWriter] = []
    smtp: list[asyncio.StreamWriter] = []

    async def open_one(port: int, source: str, is_smtp: bool) -> None:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(source, 0)
            )
            if is_smtp:
                await asyncio.wait_for(reader.readline(), 30)
        except (OSError, TimeoutError):
            return
        writers.append(writer)
        if is_smtp:
            smtp.append(writer)

    targets = [
        (port, f"127.0.{base}.{i}", is_smtp)
        for _ in range(25)
        for i in range(1, 201)
        for port, base, is_smtp in ((smtp_port, 2, True), (http_port, 3, False))
    ]
    for start in range(0, len(targets), 500):
        await asyncio.gather(*(open_one(*t) for t in targets[start : start + 500]))
    ready(time.monotonic() - started)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for writer in smtp:
            if not writer.is_closing():
                writer.write(b"NOOP\r\n")
        await asyncio.sleep(2)
    for writer in writers:
        writer.close()
    return len(writers)


async def slow_clients(http_port: int, smtp_port: int, token: str, seconds: float) -> int:
    """500 HTTP heads and 500 SMTP DATA sections, a byte a second each."""
    started = time.monotonic()
    writers: list[asyncio.StreamWriter] = []

    async def slow_http(source: str) -> None:
        try:
            _, writer = await asyncio.open_connection(
                "127.0.0.1", http_port, local_addr=(source, 0)
            )
        except OSError:
            return
        writer.write(f"POST /dni/v1/ping/{token} HTTP/1.1\r\nHost: x\r\n".encode())
        writers.append(writer)

    async def slow_smtp(source: str) -> None:
        commands = [b"EHLO slow.example", b"MAIL FROM:<s@slow.example>"]
        commands += [f"RCPT TO:<dni-{token}@{DOMAIN}>".encode(), b"DATA"]
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", smtp_port, local_addr=(source, 0)
            )
            await reader.readline()
            for command in commands:
                writer.write(command + b"\r\n")
                while (await reader.readline())[3:4] == b"-":
                    pass
        except (OSError, asyncio.IncompleteReadError):
            return
        writers.append(writer)

    tasks = [slow_http(f"127.0.4.{i % 200 + 1}") for i in range(500)]
    tasks += [slow_smtp(f"127.0.5.{i % 200 + 1}") for i in range(500)]
    await asyncio.gather(*tasks)
    ready(time.monotonic() - started)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for writer in writers:
            if not writer.is_closing():
                writer.write(b"X")
        await asyncio.sleep(1)
    for writer in writers:
        writer.close()
    return len(writers)


def attacker(name: str, http_port: int, smtp_port: int, token: str, seconds: float) -> None:
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    runs = {
        "refused-flood": lambda: flood(http_port, token, seconds, unknown=False),
        "unknown-token": lambda: flood(http_port, token, seconds, unknown=True),
        "forged-rotating": lambda: forged_rotating(http_port, token, seconds),
        "idle-connections": lambda: idle_connections(http_port, smtp_port, seconds),
        "slow-clients": lambda: slow_clients(http_port, smtp_port, token, seconds),
    }
    if name not in ("idle-connections", "slow-clients"):
        ready()  # a flood is in full swing from its first request
    count = asyncio.run(runs[name]())
    print(f"  {name}: {count} requests or connections", flush=True)


# -- the registrant and the measurements -------------------------------------


async def registrant(
    ports: tuple[int, int], token: str, proofs: list[str], seconds: float
) -> tuple[list[float], Counter[str]]:
    """Valid pings on both channels at a steady pace; latencies and failures."""
    latencies: list[float] = []
    by_channel: dict[str, list[float]] = {"http": [], "smtp": []}
    failures: Counter[str] = Counter()
    deadline = time.monotonic() + seconds

    async def pace(every: float, send: Any, port: int) -> None:
        nonlocal failures
        tasks = []
        while time.monotonic() < deadline and proofs:
            tasks.append(asyncio.create_task(asyncio.to_thread(send, port, token, proofs.pop())))
            await asyncio.sleep(every)
        for latency, failure in await asyncio.gather(*tasks):
            latencies.append(latency)
            by_channel["http" if send is http_ping else "smtp"].append(latency)
            if failure:
                failures[failure] += 1

    await asyncio.gather(
        pace(HTTP_EVERY, http_ping, ports[0]), pace(SMTP_EVERY, smtp_ping, ports[1])
    )
    print(
        "  p99 by channel: "
        + ", ".join(f"{name} {p99(values):.1f} ms" for name, values in by_channel.items()),
        flush=True,
    )
    return latencies, failures


def db_bytes(db: Path) -> int:
    """The database's size once its WAL is checkpointed into it."""
    conn = sqlite3.connect(db, timeout=30)
    try:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    finally:
        conn.close()
    return db.stat().st_size


def round_of(
    attack: str | None, ports: tuple[int, int], token: str, proofs: list[str], seconds: float
) -> tuple[float, Counter[str], list[float]]:
    """One attack (or none) with the registrant alongside; its p99, failures, latencies."""
    process = None
    if attack is not None:
        process = subprocess.Popen(
            [sys.executable, __file__, "--attacker", attack, *map(str, ports), token, str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert process.stdout is not None
        line = process.stdout.readline()  # "ready ...": the attack is in full swing
        print(f"  {attack}: {line.strip()}", flush=True)
    latencies, failures = asyncio.run(registrant(ports, token, proofs, seconds))
    if process is not None:
        assert process.stdout is not None
        print(process.stdout.read().rstrip(), flush=True)
        process.wait()
    return p99(latencies), failures, latencies


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=8.0, help="each attack's length")
    parser.add_argument("--attacks", default=",".join(ATTACKS))
    parser.add_argument("--attacker", nargs=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.attacker:
        name, http_port, smtp_port, token, seconds = args.attacker
        attacker(name, int(http_port), int(smtp_port), token, float(seconds))
        return
    attacks = [a for a in args.attacks.split(",") if a]
    per_round = int(args.seconds / HTTP_EVERY + args.seconds / SMTP_EVERY) + 50
    with tempfile.TemporaryDirectory(prefix="bench-abuse-") as tmp:
        work = Path(tmp)
        token, proofs = make_workspace(work / "ws", per_round * (len(attacks) + 1))
        random.Random(3).shuffle(proofs)
        ports = (free_port(), free_port())
        log = work / "listener.log"
        listener = start_listener(work / "ws", *ports, log)
        db = work / "ws" / "scrubber.db"
        worst_p99 = worst_growth = 0.0
        failed = 0
        try:
            for attack in [None, *attacks]:
                before = db_bytes(db)
                p99_ms, failures, latencies = round_of(attack, ports, token, proofs, args.seconds)
                growth = (db_bytes(db) - before) / 1e6
                rss = rss_mb(listener.pid)
                writer = sum(rss_mb(c) for c in children(listener.pid))
                name = attack or "none (baseline)"
                print(
                    f"{name}: valid pings {len(latencies)}, failed {sum(failures.values())} "
                    f"{dict(failures) or ''}, "
                    f"median {statistics.median(latencies) * 1000:.1f} ms, p99 {p99_ms:.1f} ms; "
                    f"db growth {growth:.3f} MB; RSS listener {rss:.0f} MB, writer {writer:.0f} MB",
                    flush=True,
                )
                if attack is not None:
                    worst_p99 = max(worst_p99, p99_ms)
                    failed += sum(failures.values())
                    worst_growth = max(worst_growth, growth)
        finally:
            stop(listener)
        print(f"listener log: {log.stat().st_size / 1e3:.0f} kB")
    load = os.getloadavg()
    print(
        f"command: .venv/bin/python bench/abuse.py --seconds {args.seconds:g}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    print(f"valid pings failed under attack: {failed}")
    print(
        f"abuse: worst valid-ping p99 {worst_p99:.0f} ms, db growth {worst_growth:.2f} MB "
        f"(goal < {GOAL_P99_MS:g} ms, <= {GOAL_GROWTH_MB:g} MB)"
    )


if __name__ == "__main__":
    main()
