"""Benchmark: `scrubber listen` under steady mixed load for N minutes; RSS stays flat.

    .venv/bin/python bench/soak.py [--minutes N] [--rate R] [--addresses A]

One listener (both channels, default limits) on a fresh SQLite workspace
with a batch of A addresses (default 50,000; cheap Argon2 cost). The load, from
loopback source addresses: valid HTTP pings at R a second (default 200)
from 200 client addresses, each on a new connection (a proof is first
accepted, later repeated once the batch's proofs have all been sent); an
SMTP ping every 200 ms; forged 10-proof requests from one client 5 times a
second (most end up refused). Each minute: valid pings answered per second,
their p99, the listener's and its writer's RSS, the database size. RSS is
flat when the last minute's listener RSS is within 10 % of the first
minute's (warm-up). The last line is `soak: ratio <x> (goal <= 1.1)`, that
ratio.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import (  # noqa: E402
    JSON_HEADERS,
    children,
    free_port,
    make_workspace,
    p99,
    rss_mb,
    smtp_ping,
    start_listener,
    stop,
)

GOAL_RATIO = 1.1
ADDRESSES = 50_000


class Minute:
    def __init__(self) -> None:
        self.latencies: list[float] = []
        self.failures = 0


async def valid_http(port: int, token: str, proofs: list[str], rate: float, stop_at: float,
                     minutes: list[Minute]) -> None:  # fmt: skip
    import aiohttp

    sessions = [
        aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(local_addr=(f"127.0.6.{i}", 0), force_close=True),
            timeout=aiohttp.ClientTimeout(total=30),
        )
        for i in range(1, 201)
    ]
    url = f"http://127.0.0.1:{port}/dni/v1/ping/{token}"
    started = time.monotonic()
    sent = 0

    async def one(number: int) -> None:
        minute = minutes[-1]
        body = json.dumps({"proofs": [proofs[number % len(proofs)]]}).encode()
        begun = time.perf_counter()
        try:
            async with sessions[number % len(sessions)].post(
                url, data=body, headers=JSON_HEADERS
            ) as r:
                await r.read()
                ok = r.status == 200
        except (aiohttp.ClientError, TimeoutError):
            ok = False
        minute.latencies.append(time.perf_counter() - begun)
        minute.failures += 0 if ok else 1

    tasks: set[asyncio.Task[None]] = set()
    while time.monotonic() < stop_at:
        due = started + sent / rate
        if due > time.monotonic():
            await asyncio.sleep(due - time.monotonic())
        task = asyncio.create_task(one(sent))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        sent += 1
    await asyncio.gather(*tasks)
    for session in sessions:
        await session.close()


async def forger(port: int, token: str, stop_at: float) -> None:
    import aiohttp

    rng = random.Random(5)
    connector = aiohttp.TCPConnector(local_addr=("127.0.0.2", 0), force_close=True)
    async with aiohttp.ClientSession(connector=connector) as http:
        while time.monotonic() < stop_at:
            body = json.dumps({"proofs": [rng.randbytes(16).hex()[:22] for _ in range(10)]})
            try:
                async with http.post(
                    f"http://127.0.0.1:{port}/dni/v1/ping/{token}", data=body, headers=JSON_HEADERS
                ) as response:
                    await response.read()
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)


async def smtp_load(port: int, token: str, proofs: list[str], stop_at: float) -> None:
    number = 0
    while time.monotonic() < stop_at:
        number += 1
        await asyncio.to_thread(smtp_ping, port, token, proofs[-number % len(proofs)])
        await asyncio.sleep(0.2)


async def report(listener_pid: int, db: Path, stop_at: float, minutes: list[Minute],
                 rss: list[float]) -> None:  # fmt: skip
    number = 0
    while time.monotonic() < stop_at - 1:
        await asyncio.sleep(min(60.0, max(0.0, stop_at - time.monotonic())))
        number += 1
        minute, minutes[-1:] = minutes[-1], [Minute()]
        listener = rss_mb(listener_pid)
        writer = sum(rss_mb(c) for c in children(listener_pid))
        rss.append(listener)
        size = sum(p.stat().st_size for p in db.parent.glob("scrubber.db*")) / 1e6
        print(
            f"minute {number}: {len(minute.latencies) / 60:.0f} valid pings/s, "
            f"p99 {p99(minute.latencies):.1f} ms, failed {minute.failures}; "
            f"RSS listener {listener:.1f} MB, writer {writer:.1f} MB; db {size:.1f} MB",
            flush=True,
        )


async def soak(ports: tuple[int, int], token: str, proofs: list[str], args: argparse.Namespace,
               listener_pid: int, db: Path) -> list[float]:  # fmt: skip
    stop_at = time.monotonic() + args.minutes * 60
    minutes = [Minute()]
    rss: list[float] = []
    await asyncio.gather(
        valid_http(ports[0], token, proofs, args.rate, stop_at, minutes),
        forger(ports[0], token, stop_at),
        smtp_load(ports[1], token, proofs, stop_at),
        report(listener_pid, db, stop_at, minutes, rss),
    )
    return rss


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=200.0, help="valid HTTP pings a second")
    parser.add_argument(
        "--addresses", type=int, default=ADDRESSES, help="addresses in the batch (its proofs)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-soak-") as tmp:
        work = Path(tmp)
        token, proofs = make_workspace(work / "ws", args.addresses)
        ports = (free_port(), free_port())
        listener = start_listener(work / "ws", *ports, work / "listener.log")
        try:
            rss = asyncio.run(
                soak(ports, token, proofs, args, listener.pid, work / "ws" / "scrubber.db")
            )
        finally:
            stop(listener)
    load = os.getloadavg()
    print(
        f"command: .venv/bin/python bench/soak.py --minutes {args.minutes} --rate {args.rate:g} "
        f"--addresses {args.addresses}; "
        f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}"
    )
    ratio = rss[-1] / rss[0] if rss else float("nan")
    print(f"soak: ratio {ratio:.2f} (goal <= {GOAL_RATIO:g})")


if __name__ == "__main__":
    main()
