"""Benchmark: durable HTTP pings/s of `scrubber listen` vs an aiohttp hello-world.

    .venv/bin/python bench/listen_http.py [--quick] [--rounds R] [--seconds S] [--addresses N]
                                          [--fleet N]

Same load generator for both (wrk, 50 connections, one proof per POST). The
listener runs as `python -m scrubber listen` on a fresh SQLite workspace
(WAL, synchronous=FULL) whose batch is made by the real `batch create` path
(with a cheap Argon2 cost, so setup is quick); every 200 it sends is a
committed ping. Proofs cycle through the batch: first accepted (suppression
written), then duplicates (a ping row written). The baseline is an aiohttp
app answering "Hello, world" in its own process, measured twice a round: on
uvloop's event loop, as the listener runs (the goal's baseline since
2026-12-07: what uvloop gives a hello-world is not scrubber's doing), and on
asyncio's default loop (the baseline before, printed for comparison). They
alternate with the listener for a few rounds, each listener round on a fresh
copy of the same workspace; a ratio is the median of the rounds' ratios
(each round's runs are back to back, so a noisy minute moves one round, not
the figure). The last line is `listen_http: ratio <x> (goal >= 0.5)`, the
median against the uvloop hello-world; the line before gives it against
asyncio's, and the one before that the worst round's p99 latency.

`--fleet N`: N listeners on one PostgreSQL database ($SCRUBBER_TEST_PG, a
fresh database per round copied from a template) behind Debian's nginx
($SCRUBBER_TEST_NGINX) running the configuration docs/deployment.md shows,
with N `server` lines, plain HTTP instead of TLS (wrk against the same
port scheme as the baseline) and without the `limit_req`/`limit_conn`
lines (wrk's connections all come from one address: the edge would
measure itself refusing them). The ratio is the fleet's durable pings/s
through nginx against the same hello-world baseline.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import free_port, make_workspace, serve_listener, stop, wait_port  # noqa: E402
from scrubber.store.models import Ping  # noqa: E402
from scrubber.workspace import load_workspace, open_store  # noqa: E402

GOAL_RATIO = 0.5
GOAL_P99_MS = 50.0
CONNECTIONS = 50
WRK = os.environ.get("SCRUBBER_BENCH_WRK") or "wrk"  # scripts/provision-wrk.sh

# argv: port, then "uvloop" for uvloop's event loop (as the listener runs) or
# "asyncio" for asyncio's default one (the baseline before 2026-12-07).
HELLO = """
import asyncio
import sys
from aiohttp import web
async def hello(request):
    return web.Response(text="Hello, world")
app = web.Application()
app.add_routes([web.post("/dni/v1/ping/{token}", hello)])
if sys.argv[2] == "uvloop":
    import uvloop
    loop = uvloop.new_event_loop()
else:
    loop = asyncio.new_event_loop()
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None, loop=loop)
"""
BASELINES = ("uvloop", "asyncio")  # the goal's baseline first

LUA = """
local proofs = {}
for line in io.lines("%(proofs)s") do proofs[#proofs + 1] = line end
local counter = 0
local offset = 0
function setup(thread)
  thread:set("offset", counter * 7919)
  counter = counter + 1
end
local i = 0
request = function()
  i = i + 1
  local proof = proofs[((offset + i) %% #proofs) + 1]
  return wrk.format("POST", "/dni/v1/ping/%(token)s",
    {["Content-Type"] = "application/json"}, '{"proofs": ["' .. proof .. '"]}')
end
"""


class Run(NamedTuple):
    rps: float
    p99_ms: float
    bad: int  # answers other than 2xx/3xx


def run_wrk(port: int, script: Path, seconds: int) -> Run:
    out = subprocess.run(
        [
            WRK, "-t2", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", "--timeout", "10s",
            "-s", str(script), f"http://127.0.0.1:{port}",
        ],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors: .*", out)
    if errors:
        print(f"  wrk: {errors.group(0)}")
    return Run(rps, float(p99.group(1)) * scale, int(bad.group(1)) if bad else 0)


def serve_hello(port: int, loop: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-c", HELLO, str(port), loop])


def measure(server: subprocess.Popen[bytes], port: int, script: Path, seconds: int) -> Run:
    """One wrk run against a started server, which is stopped afterwards."""
    try:
        wait_port(port, server)
        return run_wrk(port, script, seconds)
    finally:
        stop(server)


def stored_pings(workspace: Path) -> int:
    store = open_store(load_workspace(workspace))
    with store.read() as session:
        count = session.query(Ping).count()
    store.close()
    return count


def fleet_config(port: int, upstreams: list[int]) -> str:
    """The documented nginx config: plain HTTP on ``port``, N upstreams, no edge limits."""
    from tests.nginx_support import documented_proxy_config

    servers = "".join(
        f"        server 127.0.0.1:{u} max_fails=1 fail_timeout=10s;\n" for u in upstreams
    )
    lines = []
    for line in documented_proxy_config().splitlines(keepends=True):
        if "server 127.0.0.1:8025" in line:
            lines.append(servers)
        elif re.search(r"server 127\.0\.0\.1:\d+|ssl_certificate|limit_(req|conn)", line):
            continue
        else:
            lines.append(line.replace("listen 443 ssl http2", f"listen 127.0.0.1:{port}"))
    return "".join(lines)


class FleetDatabase:
    """A template database holding the batch, and a fresh copy of it per round."""

    def __init__(self, base_url: str) -> None:
        from sqlalchemy import create_engine
        from sqlalchemy.engine import make_url

        self.base = make_url(base_url)
        self.admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
        self.names: list[str] = []
        self.template = self.create()

    def url(self, name: str) -> str:
        return self.base.set(database=name).render_as_string(hide_password=False)

    def create(self, template: str | None = None) -> str:
        from sqlalchemy import text

        name = f"scrubber_bench_{os.getpid()}_{len(self.names)}"
        copy = f' TEMPLATE "{template}"' if template else ""
        with self.admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"{copy}'))
        self.names.append(name)
        return name

    def close(self) -> None:
        from sqlalchemy import text

        with self.admin.connect() as conn:
            for name in reversed(self.names):
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.admin.dispose()


def fleet_round(
    work: Path, number: int, db: FleetDatabase, size: int, script: Path, seconds: int
) -> Run:
    """One fleet measurement on a fresh copy of the template database."""
    from tests.nginx_support import run_nginx

    fresh = work / f"round{number}"
    shutil.copytree(work / "ws", fresh)
    config = fresh / "scrubber.toml"
    url = db.url(db.create(template=db.template))
    config.write_text(config.read_text().replace(db.url(db.template), url))
    ports = [free_port() for _ in range(size)]
    servers = [serve_listener(fresh, "http", p, "--trusted-proxy", "127.0.0.1") for p in ports]
    try:
        for port, server in zip(ports, servers, strict=True):
            wait_port(port, server)
        front = free_port()
        with run_nginx(work / f"nginx{number}", fleet_config(front, ports)):
            return run_wrk(front, script, seconds)
    finally:
        for server in servers:
            stop(server)


def single_round(work: Path, number: int, script: Path, seconds: int) -> Run:
    """One listener on a fresh copy of the SQLite workspace: the same work every round."""
    fresh = work / f"round{number}"
    shutil.copytree(work / "ws", fresh)
    port = free_port()
    return measure(serve_listener(fresh, "http", port), port, script, seconds)


def fleet_database(size: int) -> FleetDatabase | None:
    if size < 2:
        return None
    url = os.environ.get("SCRUBBER_TEST_PG")
    if not url or not os.environ.get("SCRUBBER_TEST_NGINX"):
        sys.exit(
            "--fleet needs PostgreSQL and nginx: set SCRUBBER_TEST_PG and "
            "SCRUBBER_TEST_NGINX (make services; make bench reads .services.env)"
        )
    return FleetDatabase(url)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (< 30 s in all)")
    parser.add_argument("--seconds", type=int, default=None, help="wrk run length per side")
    parser.add_argument("--rounds", type=int, default=None, help="hello/listener pairs")
    parser.add_argument("--addresses", type=int, default=None)
    parser.add_argument(
        "--fleet",
        type=int,
        default=1,
        metavar="N",
        help="N listeners on PostgreSQL behind nginx (default 1: one, no proxy)",
    )
    args = parser.parse_args()
    seconds = args.seconds or (4 if args.quick else 20)
    rounds = args.rounds or (2 if args.quick else 3)
    addresses = args.addresses or (5_000 if args.quick else 50_000)
    if shutil.which(WRK) is None:
        sys.exit("wrk not found: run scripts/provision-wrk.sh (or make bench)")
    db = fleet_database(args.fleet)
    what = f"a fleet of {args.fleet} behind nginx" if db else "scrubber listen"
    ratios: dict[str, list[float]] = {loop: [] for loop in BASELINES}
    p99s = []
    with tempfile.TemporaryDirectory(prefix="bench-listen-http-") as tmp:
        work = Path(tmp)
        try:
            template = db.url(db.template) if db else None
            token, proofs = make_workspace(work / "ws", addresses, template)
            (work / "proofs.txt").write_text("\n".join(proofs) + "\n")
            script = work / "ping.lua"
            script.write_text(LUA % {"proofs": work / "proofs.txt", "token": token})
            for number in range(1, rounds + 1):
                bases = {}
                for loop in BASELINES:
                    port = free_port()
                    bases[loop] = measure(serve_hello(port, loop), port, script, seconds)
                if db:
                    run = fleet_round(work, number, db, args.fleet, script, seconds)
                else:
                    run = single_round(work, number, script, seconds)
                if run.bad:
                    sys.exit(f"{run.bad} non-2xx answers from {what}: not a valid run")
                stored = stored_pings(work / f"round{number}")
                for loop, base in bases.items():
                    ratios[loop].append(run.rps / base.rps)
                p99s.append(run.p99_ms)
                hellos = "; ".join(
                    f"{loop} {base.rps:.0f} req/s (p99 {base.p99_ms:.1f} ms)"
                    for loop, base in bases.items()
                )
                print(
                    f"round {number}: aiohttp hello-world on {hellos}; {what} {run.rps:.0f} "
                    f"durable pings/s (p99 {run.p99_ms:.1f} ms, {stored} stored); ratio "
                    + " / ".join(f"{ratios[loop][-1]:.2f}" for loop in BASELINES)
                )
        finally:
            if db:
                db.close()
    flags = (" --quick" if args.quick else "") + (f" --fleet {args.fleet}" if db else "")
    print(
        f"command: .venv/bin/python bench/listen_http.py{flags}; "
        f"{CONNECTIONS} connections, {rounds} rounds of {seconds} s per side, {addresses} proofs"
    )
    name = "listen_http_fleet" if db else "listen_http"
    print(f"{name}: p99 {max(p99s):.1f} ms, worst round (goal < {GOAL_P99_MS:g} ms)")
    print(
        f"{name}: against the hello-world on asyncio's default loop (the baseline "
        f"before 2026-12-07): ratio {statistics.median(ratios['asyncio']):.2f}"
    )
    print(f"{name}: ratio {statistics.median(ratios['uvloop']):.2f} (goal >= {GOAL_RATIO:g})")


if __name__ == "__main__":
    main()
