"""Run every benchmark and collect each one's last line in one summary.

    .venv/bin/python bench/run_all.py [--quick] [--only NAME ...]

`make bench` provisions what the benchmarks need (the services, wrk) and
runs this. Each bench runs as its own process with the variables of
.services.env, its whole output goes to the terminal and to
bench/.data/logs/NAME.log, and the summary at the end (also written to
bench/.data/summary.txt) has the last line of each, whether its goal was
met, and how long it took. Exit status 1 if a bench failed to run or missed
its goal.
"""

from __future__ import annotations

import argparse
import operator
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "bench" / ".data"
BENCHES = (
    "hash", "import", "post", "responder_scan", "report", "listen_http", "listen_http_fleet",
    "listen_smtp", "pipeline",
)  # fmt: skip
# Benches that are another bench's script with arguments: name -> (script, arguments).
VARIANTS = {"listen_http_fleet": ("listen_http", ["--fleet", "2"])}
# The last line every bench prints: `<name>: ratio <x> (goal <op> <y>)`.
LAST_LINE = re.compile(
    r"^[\w-]+: ratio (?P<value>[\d.]+) \(goal (?P<op><=|>=|<|>) (?P<goal>[\d.]+)\)"
)
COMPARE: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
}


class Outcome(NamedTuple):
    name: str
    line: str
    met: bool | None  # None: no figure (the bench failed or printed no ratio)
    seconds: float


def services_env() -> dict[str, str]:
    """os.environ plus .services.env (KEY=VALUE lines), as the Makefile's pytest does."""
    env = dict(os.environ)
    path = ROOT / ".services.env"
    if path.exists():
        for line in path.read_text().splitlines():
            key, sep, value = line.partition("=")
            if sep and not line.startswith("#"):
                env.setdefault(key.strip(), value.strip())
    return env


def judge(last: str) -> bool | None:
    match = LAST_LINE.match(last)
    if match is None:
        return None
    value, goal = float(match["value"]), float(match["goal"])
    return COMPARE[match["op"]](value, goal)


def run_one(name: str, extra: list[str], env: dict[str, str]) -> Outcome:
    log = DATA / "logs" / f"{name}.log"
    script, arguments = VARIANTS.get(name, (name, []))
    command = [sys.executable, str(ROOT / "bench" / f"{script}.py"), *arguments, *extra]
    print(f"== {name}: {' '.join(command[1:])}", flush=True)
    start = time.monotonic()
    lines: list[str] = []
    with (
        log.open("w") as out,
        subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        ) as child,
    ):
        assert child.stdout is not None
        for line in child.stdout:
            sys.stdout.write(line)
            out.write(line)
            lines.append(line.rstrip("\n"))
    elapsed = time.monotonic() - start
    last = next((line for line in reversed(lines) if line.strip()), "(no output)")
    if child.returncode != 0:
        return Outcome(name, f"failed (exit {child.returncode}): {last}", None, elapsed)
    return Outcome(name, last, judge(last), elapsed)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="each bench's --quick size")
    parser.add_argument("--only", nargs="+", choices=BENCHES, help="run only these")
    args = parser.parse_args()
    (DATA / "logs").mkdir(parents=True, exist_ok=True)
    env = services_env()
    extra = ["--quick"] if args.quick else []
    load = os.getloadavg()
    outcomes = [run_one(name, extra, env) for name in args.only or BENCHES]
    after = os.getloadavg()
    summary = [
        f"benchmarks{' (--quick)' if args.quick else ''}, {os.cpu_count()} cores, "
        f"load average {load[0]:.2f} before, {after[0]:.2f} after",
    ]
    marks = {True: "met", False: "NOT MET", None: "NO FIGURE"}
    for o in outcomes:
        summary.append(f"  {marks[o.met]:8} {o.line}  [{o.seconds:.0f} s]")
    text = "\n".join(summary)
    (DATA / "summary.txt").write_text(text + "\n")
    print(f"\n{text}")
    sys.exit(0 if all(o.met for o in outcomes) else 1)


if __name__ == "__main__":
    main()
