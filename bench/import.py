"""Benchmark: `scrubber list import` of a 1M-line file against sqlite3's `.import`.

    .venv/bin/python bench/import.py [--quick] [--lines N]

Both sides read the same plain-text file in the same run: the baseline is the
sqlite3 command-line shell importing it into a one-column table; scrubber runs
the real CLI (`python -m scrubber list import`) into a fresh SQLite workspace,
so the figure includes canonicalization, folding duplicates, the rejects file
and the commit. Peak RSS and CPU time are the import process's own, with
its canonicalization worker's included (wait4 reports both: RSS the larger,
CPU the sum), so using a second core is not free in the CPU figure.
Both sides alternate for a few rounds and the best wall time of each counts
(the machine is shared); CPU time is printed too. The last line is
`import: ratio <x> (goal <= 4)`; the line before it states the peak RSS.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
GOAL_RATIO = 4.0
GOAL_RSS_MB = 300
SQLITE = shutil.which("sqlite3") or "/usr/bin/sqlite3"


def write_list(path: Path, lines: int, seed: int = 7) -> None:
    """A realistic list: many domains, mixed case, plus tags, duplicates, junk."""
    rng = random.Random(seed)
    domains = [f"mail{i}.example" for i in range(2000)] + ["gmail.com", "bücher.example"]
    with path.open("w", encoding="utf-8") as out:
        for n in range(lines):
            r = rng.random()
            if r < 0.01:
                out.write(f"broken line {n}\n")
                continue
            person = rng.randrange(int(lines * 0.9)) if r < 0.06 else n
            local = f"user.{person}" if person % 3 else f"User{person}+tag"
            out.write(f"{local}@{domains[person % len(domains)]}\n")


def run_timed(command: list[str], cwd: Path | None = None) -> tuple[float, float, int]:
    """Run a command; return (wall s, CPU s, peak RSS in KiB) of that process."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        sys.exit(f"{command[0]} failed ({proc.returncode}): {stderr}")
    return elapsed, usage.ru_utime + usage.ru_stime, usage.ru_maxrss


def sqlite_baseline(data: Path, work: Path) -> tuple[float, float]:
    db = work / "baseline.db"
    db.unlink(missing_ok=True)
    # The table exists, so every line (no commas or quotes in it) is a row.
    commands = f"CREATE TABLE t (line TEXT);\n.mode csv\n.import '{data}' t\n"
    script = work / "import.sql"
    script.write_text(commands)
    elapsed, cpu, _ = run_timed([SQLITE, str(db), f".read {script}"])
    return elapsed, cpu


def scrubber_import(data: Path, work: Path) -> tuple[float, float, int]:
    ws = work / "ws"
    shutil.rmtree(ws, ignore_errors=True)
    python = sys.executable
    subprocess.run([python, "-m", "scrubber", "init", str(ws)], check=True, capture_output=True)
    return run_timed([python, "-m", "scrubber", "-w", str(ws), "list", "import", "big", str(data)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k lines, one round, under 30 s")
    parser.add_argument("--lines", type=int, help="lines in the file (default 1,000,000)")
    parser.add_argument("--rounds", type=int, help="rounds, best of each side (default 3)")
    args = parser.parse_args()
    lines = args.lines or (200_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 3)
    print(f"cores: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.2f}")
    base_wall, base_cpu, wall, cpu, rss = [], [], [], [], []
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        data = work / "list.txt"
        write_list(data, lines)
        print(f"file: {lines:,} lines, {data.stat().st_size / 1e6:.1f} MB")
        # Alternate the sides and keep the best of each: the machine is shared.
        for n in range(rounds):
            b_wall, b_cpu = sqlite_baseline(data, work)
            s_wall, s_cpu, s_rss = scrubber_import(data, work)
            base_wall.append(b_wall)
            base_cpu.append(b_cpu)
            wall.append(s_wall)
            cpu.append(s_cpu)
            rss.append(s_rss / 1024)
            print(
                f"round {n + 1}: sqlite3 .import {b_wall:.2f} s (CPU {b_cpu:.2f} s); "
                f"scrubber {s_wall:.2f} s (CPU {s_cpu:.2f} s), peak RSS {rss[-1]:.0f} MB"
            )
    ratio = min(wall) / min(base_wall)
    rss_ok = "ok" if max(rss) <= GOAL_RSS_MB else "OVER"
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"CPU-time ratio (less sensitive to load): {min(cpu) / min(base_cpu):.2f}")
    print(
        f"import: peak RSS {max(rss):.0f} MB (goal <= {GOAL_RSS_MB}, {rss_ok}); "
        f"{lines:,} lines; scrubber {min(wall):.2f} s vs sqlite3 {min(base_wall):.2f} s"
    )
    print(f"import: ratio {ratio:.2f} (goal <= {GOAL_RATIO:g})")


if __name__ == "__main__":
    main()
