"""Benchmark: `scrubber list import` of a 1M-line file against sqlite3's `.import`.

    .venv/bin/python bench/import.py [--quick] [--lines N]

Both sides read the same plain-text file in the same run: the baseline is the
sqlite3 command-line shell importing it into a one-column table; scrubber runs
the real CLI (`python -m scrubber list import`) into a fresh SQLite workspace,
so the figure includes canonicalization, folding duplicates, the rejects file
and the commit. Peak RSS is the import process's own maximum resident set.
The last line is `import: ratio <x> (goal <= 4)`; it also states the peak RSS.
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


def run_timed(command: list[str], cwd: Path | None = None) -> tuple[float, int]:
    """Run a command; return (wall seconds, peak RSS in KiB of that process)."""
    start = time.perf_counter()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    stderr = proc.stderr.read().decode() if proc.stderr else ""
    if proc.returncode != 0:
        sys.exit(f"{command[0]} failed ({proc.returncode}): {stderr}")
    return elapsed, usage.ru_maxrss


def sqlite_baseline(data: Path, work: Path) -> float:
    db = work / "baseline.db"
    # The table exists, so every line (no commas or quotes in it) is a row.
    commands = f"CREATE TABLE t (line TEXT);\n.mode csv\n.import '{data}' t\n"
    script = work / "import.sql"
    script.write_text(commands)
    elapsed, _ = run_timed([SQLITE, str(db), f".read {script}"])
    return elapsed


def scrubber_import(data: Path, work: Path) -> tuple[float, int]:
    ws = work / "ws"
    python = sys.executable
    subprocess.run([python, "-m", "scrubber", "init", str(ws)], check=True, capture_output=True)
    return run_timed([python, "-m", "scrubber", "-w", str(ws), "list", "import", "big", str(data)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k lines, under 30 s")
    parser.add_argument("--lines", type=int, help="lines in the file (default 1,000,000)")
    args = parser.parse_args()
    lines = args.lines or (200_000 if args.quick else 1_000_000)
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        data = work / "list.txt"
        write_list(data, lines)
        size_mb = data.stat().st_size / 1e6
        print(f"file: {lines:,} lines, {size_mb:.1f} MB; cores: {os.cpu_count()}")
        baseline = sqlite_baseline(data, work)
        print(f"sqlite3 .import: {baseline:.2f} s")
        elapsed, rss_kib = scrubber_import(data, work)
        rss_mb = rss_kib / 1024
        print(f"scrubber list import: {elapsed:.2f} s, peak RSS {rss_mb:.0f} MB")
    ratio = elapsed / baseline
    rss_ok = "ok" if rss_mb <= GOAL_RSS_MB else "OVER"
    print(
        f"import: peak RSS {rss_mb:.0f} MB (goal <= {GOAL_RSS_MB}, {rss_ok}); "
        f"{lines:,} lines; scrubber {elapsed:.2f} s vs sqlite3 {baseline:.2f} s"
    )
    print(f"import: ratio {ratio:.2f} (goal <= {GOAL_RATIO:g})")


if __name__ == "__main__":
    main()
