"""Benchmark: `scrubber list import` of a 1M-line file against the floor of its SQL.

    .venv/bin/python bench/import.py [--quick] [--lines N] [--rounds N]

scrubber runs the real CLI (`python -m scrubber list import`) into a fresh
SQLite workspace, so its figure includes interpreter start, reading,
canonicalization, folding duplicates, the rejects file and the commit. The
baseline, the floor of this design, is the import's own SQL and nothing
else: the same statements (staging table, chunked staging inserts, the
fold into addresses and list_entries, the commit) on the same schema (a
fresh workspace), the same connection settings and pragmas, fed the
canonical pairs the import would stage, computed beforehand and not timed.
sqlite3's `.import` of the file into one unindexed table is printed too,
for comparison with earlier figures (the old goal was 4x it; the SQL floor
alone is 4.2-4.7x it, docs/performance.md).

Peak RSS and CPU time of the import are its process's own, with its
canonicalization worker's included (wait4 reports both: RSS the larger, CPU
the sum). The three alternate for a few rounds (the machine is shared); the
figure is the median of the rounds' import / floor ratios. The last line is
`import: ratio <x> (goal <= 1.5)`; the line before it states the peak RSS
(goal <= 300 MB).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# What every batch would advertise; a benchmark posts none.
LOCAL_RESPONSE = ("--response-domain", "dni.example.test", "--base-url", "http://127.0.0.1:8025")
sys.path.insert(0, str(ROOT))

from scrubber import lists  # noqa: E402
from scrubber.store.types import utcnow  # noqa: E402
from scrubber.workspace import load_workspace, open_store  # noqa: E402

GOAL_RATIO = 1.5
GOAL_RSS_MB = 300
# lists._stage's statement (SQLite spelling), copied: it is local to that function.
STAGING_INSERT = (
    "INSERT INTO import_staging (canonical, original) VALUES (?, ?) "
    "ON CONFLICT (canonical) DO NOTHING"
)
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


def fresh_workspace(ws: Path) -> None:
    shutil.rmtree(ws, ignore_errors=True)
    subprocess.run(
        [sys.executable, "-m", "scrubber", "init", str(ws), *LOCAL_RESPONSE],
        check=True,
        capture_output=True,
    )


def scrubber_import(data: Path, work: Path) -> tuple[float, float, int]:
    ws = work / "ws"
    fresh_workspace(ws)
    python = sys.executable
    return run_timed([python, "-m", "scrubber", "-w", str(ws), "list", "import", "big", str(data)])


def staged_rows(data: Path) -> list[list[tuple[str, str]]]:
    """The (canonical, original) rows the import stages, chunk by chunk, made ready."""
    return [
        list(zip(chunk.canonical, chunk.original, strict=True))
        for chunk in lists._canonical_chunks(lists.Sources.of([data], None, None))
        if chunk.canonical
    ]


def floor_child(data: Path, ws: Path) -> None:
    """In its own process (the rows take a few hundred MB, which a fork of the
    bench would count in the import's peak RSS): stage ``data``'s ready rows
    into the fresh workspace ``ws`` through the import's own SQL, timed.

    The library's own functions where it has them: the write connection,
    pragmas, staging table and fold of `lists.import_files`."""
    rows = staged_rows(data)
    store = open_store(load_workspace(ws))
    start, cpu = time.perf_counter(), time.process_time()
    with store.write_connection(check_foreign_keys=False, bulk=True) as conn:
        list_id = lists._ensure_list(conn, "big", utcnow(), new=False)
        lists._create_staging(conn)
        for chunk in rows:
            conn.exec_driver_sql(STAGING_INSERT, chunk)
        lists._fold_staging(conn, list_id)
    print(json.dumps({"wall": time.perf_counter() - start, "cpu": time.process_time() - cpu}))
    store.close()


def sql_floor(data: Path, work: Path) -> tuple[float, float]:
    ws = work / "floor"
    fresh_workspace(ws)
    child = [sys.executable, __file__, "--floor-child", str(data), str(ws)]
    result = json.loads(subprocess.run(child, check=True, capture_output=True).stdout)
    return result["wall"], result["cpu"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="200k lines, one round, under 30 s")
    parser.add_argument("--lines", type=int, help="lines in the file (default 1,000,000)")
    parser.add_argument("--rounds", type=int, help="rounds, best of each side (default 3)")
    parser.add_argument("--floor-child", nargs=2, type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.floor_child:
        floor_child(*args.floor_child)
        return
    lines = args.lines or (200_000 if args.quick else 1_000_000)
    rounds = args.rounds or (1 if args.quick else 3)
    print(f"cores: {os.cpu_count()}; load average before: {os.getloadavg()[0]:.2f}")
    ratios, rss = [], []
    with tempfile.TemporaryDirectory(prefix="bench-import-") as tmp:
        work = Path(tmp)
        data = work / "list.txt"
        write_list(data, lines)
        print(f"file: {lines:,} lines, {data.stat().st_size / 1e6:.1f} MB")
        for n in range(rounds):
            b_wall, b_cpu = sqlite_baseline(data, work)
            f_wall, f_cpu = sql_floor(data, work)
            s_wall, s_cpu, s_rss = scrubber_import(data, work)
            ratios.append(s_wall / f_wall)
            rss.append(s_rss / 1024)
            print(
                f"round {n + 1}: SQL floor {f_wall:.2f} s (CPU {f_cpu:.2f} s); "
                f"scrubber {s_wall:.2f} s (CPU {s_cpu:.2f} s, peak RSS {rss[-1]:.0f} MB): "
                f"ratio {ratios[-1]:.2f}; sqlite3 .import {b_wall:.2f} s (CPU {b_cpu:.2f} s), "
                f"scrubber / .import {s_wall / b_wall:.2f}"
            )
    rss_ok = "ok" if max(rss) <= GOAL_RSS_MB else "OVER"
    print(f"load average after: {os.getloadavg()[0]:.2f}")
    print(f"import: peak RSS {max(rss):.0f} MB (goal <= {GOAL_RSS_MB}, {rss_ok}); {lines:,} lines")
    print(f"import: ratio {statistics.median(ratios):.2f} (goal <= {GOAL_RATIO:g})")


if __name__ == "__main__":
    main()
