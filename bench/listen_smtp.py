"""Benchmark: SMTP pings/s of `scrubber listen` vs an aiosmtpd no-op handler.

    .venv/bin/python bench/listen_smtp.py [--quick] [--rounds R] [--seconds S] [--connections C]

The same load generator (an asyncio SMTP client in its own process, TCP_NODELAY
set so the figure is not the 40 ms delayed-ACK stall) drives both servers:
C connections, each sending one message per ping (MAIL, RCPT, DATA with one
`DNI-Proof:` line) as fast as the replies come. The listener runs as
`python -m scrubber listen` on a fresh SQLite workspace, and its 250 comes
only after the commit. The baseline is aiosmtpd answering 250 to everything,
in its own process. The two alternate for a few rounds, each listener round on
a fresh copy of the same workspace, and the ratio is the median of the
rounds' ratios (as in listen_http.py). The last line is
`listen_smtp: ratio <x> (goal >= 0.5)`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import free_port, make_workspace, serve_listener, stop, wait_port  # noqa: E402

GOAL_RATIO = 0.5

NOOP_SERVER = """
import asyncio, sys
from aiosmtpd.smtp import SMTP
class Noop:
    async def handle_DATA(self, server, session, envelope):
        return "250 OK"
async def main():
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: SMTP(Noop()), "127.0.0.1", int(sys.argv[1]))
    await server.serve_forever()
asyncio.run(main())
"""


async def _client(
    port: int, rcpt: str, proofs: list[str], offset: int, until: float, latencies: list[float]
) -> int:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    async def say(line: bytes) -> bytes:
        writer.write(line)
        reply = b""
        while True:  # multi-line replies end with "NNN " (a space after the code)
            got = await reader.readline()
            if not got:
                raise ConnectionError("server closed the connection")
            reply = got
            if got[3:4] != b"-":
                return reply

    await reader.readline()  # banner
    await say(b"EHLO loadgen.example\r\n")
    done = 0
    i = offset
    while time.monotonic() < until:
        proof = proofs[i % len(proofs)]
        i += 1
        started = time.perf_counter()
        await say(b"MAIL FROM:<ping@loadgen.example>\r\n")
        await say(f"RCPT TO:<{rcpt}>\r\n".encode())
        await say(b"DATA\r\n")
        reply = await say(f"Subject: ping\r\n\r\nDNI-Proof: {proof}\r\n.\r\n".encode())
        if reply.startswith(b"250"):
            done += 1
            latencies.append(time.perf_counter() - started)
    await say(b"QUIT\r\n")
    writer.close()
    return done


async def _load(port: int, rcpt: str, proofs: list[str], seconds: float, conns: int) -> None:
    until = time.monotonic() + seconds
    latencies: list[float] = []
    counts = await asyncio.gather(
        *(_client(port, rcpt, proofs, n * 7919, until, latencies) for n in range(conns))
    )
    latencies.sort()
    p99 = latencies[int(len(latencies) * 0.99)] * 1000 if latencies else float("nan")
    print(json.dumps({"rate": sum(counts) / seconds, "p99_ms": p99}))


def load(
    port: int, rcpt: str, proofs_file: Path, seconds: float, conns: int
) -> tuple[float, float]:
    """Run the load generator in its own process; (messages/s, p99 ms)."""
    out = subprocess.run(
        [
            sys.executable, __file__, "--loadgen", str(port), rcpt, str(proofs_file),
            str(seconds), str(conns),
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    data = json.loads(out.strip().splitlines()[-1])
    return float(data["rate"]), float(data["p99_ms"])


def serve_noop(port: int) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", NOOP_SERVER, str(port)])


def measure(
    server: subprocess.Popen[bytes],
    port: int,
    rcpt: str,
    proofs: Path,
    seconds: float,
    conns: int,
    ok_exits: tuple[int, ...] = (0,),
) -> tuple[float, float]:
    """One load run against a started server, which is stopped afterwards."""
    try:
        wait_port(port, server)
        return load(port, rcpt, proofs, seconds, conns)
    finally:
        stop(server, ok_exits)


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--loadgen":
        port, rcpt, proofs, seconds, conns = sys.argv[2:7]
        words = Path(proofs).read_text().split()
        asyncio.run(_load(int(port), rcpt, words, float(seconds), int(conns)))
        return
    from scrubber.workspace import load_workspace

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (< 30 s in all)")
    parser.add_argument("--seconds", type=float, default=None, help="run length per side")
    parser.add_argument("--rounds", type=int, default=None, help="no-op/listener pairs")
    parser.add_argument("--connections", type=int, default=20)
    parser.add_argument("--addresses", type=int, default=None)
    args = parser.parse_args()
    seconds = args.seconds or (4 if args.quick else 20)
    rounds = args.rounds or (2 if args.quick else 3)
    addresses = args.addresses or (5_000 if args.quick else 50_000)
    conns = args.connections
    ratios, p99s = [], []
    with tempfile.TemporaryDirectory(prefix="bench-listen-smtp-") as tmp:
        work = Path(tmp)
        token, proofs = make_workspace(work / "ws", addresses)
        proofs_file = work / "proofs.txt"
        proofs_file.write_text("\n".join(proofs) + "\n")
        domain = load_workspace(work / "ws").settings.response_domain
        rcpt = f"dni-{token}@{domain}"
        for number in range(1, rounds + 1):
            port = free_port()
            # The no-op server has no SIGTERM handler; the listener must exit 0.
            noop = serve_noop(port)
            base, base_p99 = measure(
                noop, port, rcpt, proofs_file, seconds, conns, ok_exits=(0, -signal.SIGTERM)
            )
            # Every round starts from the same fresh workspace: the same work.
            fresh = work / f"round{number}"
            shutil.copytree(work / "ws", fresh)
            port = free_port()
            listener = serve_listener(fresh, "smtp", port)
            rate, p99 = measure(listener, port, rcpt, proofs_file, seconds, conns)
            ratios.append(rate / base)
            p99s.append(p99)
            print(
                f"round {number}: aiosmtpd no-op {base:.0f} msg/s (p99 {base_p99:.1f} ms); "
                f"scrubber listen {rate:.0f} durable pings/s (p99 {p99:.1f} ms); "
                f"ratio {ratios[-1]:.2f}"
            )
    print(
        f"command: .venv/bin/python bench/listen_smtp.py{' --quick' if args.quick else ''}; "
        f"{conns} connections, {rounds} rounds of {seconds:g} s per side, {addresses} proofs"
    )
    print(f"listen_smtp: p99 {max(p99s):.1f} ms, worst round")
    print(f"listen_smtp: ratio {statistics.median(ratios):.2f} (goal >= {GOAL_RATIO:g})")


if __name__ == "__main__":
    main()
