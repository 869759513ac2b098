"""Benchmark: `list export --minus` against the obvious in-memory set, time and peak memory.

    .venv/bin/python bench/scrub.py [--quick] [--addresses N] [--lines M] [--rounds R]

A list of N addresses (default 1,000,000; one in ten spelled with capitals
or a +tag, so the canonical form differs) is scrubbed against an MD5 file of
M lines (default 10,000,000: random digests plus the digests of 5 % of the
list). Each method runs in its own child process, so its peak RSS is its
own: `scrubber.minus` (prefix set of the list, the file streamed twice) and
the baseline, a Python set of every line of the file and a lookup per
address. Rounds alternate, the figure is the median; both must keep the
same addresses. The database is left out: both methods read the same
(original, canonical) pairs, generated on the fly.
The last line is `scrub: ratio <x> (goal <= 1.5)`; the peak RSS of
`scrubber.minus` must stay at or under 300 MB.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from scrubber import minus, scheme

GOAL = 1.5
RSS_GOAL_MB = 300


def pairs(count: int) -> Iterator[tuple[str, str]]:
    for i in range(count):
        spelled = f"User{i}+x@Example.org" if i % 10 == 0 else f"user{i}@example.org"
        yield spelled, (f"user{i}@example.org" if i % 10 == 0 else spelled)


def make_file(path: Path, count: int, lines: int) -> None:
    """Random MD5-sized digests with every 20th address of the list among them."""
    listed = [hashlib.md5(f"user{i}@example.org".encode()).hexdigest() for i in range(0, count, 20)]
    noise = lines - len(listed)
    with path.open("w", encoding="ascii") as out:
        out.write("\n".join(listed) + "\n")
        while noise > 0:
            n = min(noise, 500_000)
            block = os.urandom(16 * n).hex()
            out.write("\n".join(block[k : k + 32] for k in range(0, 32 * n, 32)))
            out.write("\n")
            noise -= n


def run_minus(path: Path, count: int) -> int:
    scrubber = minus.Scrubber([path])
    found = scrubber.matches(lambda: pairs(count))
    summary = minus.MinusSummary()
    return sum(1 for _ in minus.scrub(pairs(count), found, summary))


def run_set(path: Path, count: int) -> int:
    with path.open("rb") as handle:
        digests = {line.strip().lower() for line in handle}
    kept = 0
    for original, canonical in pairs(count):
        lowered = original.strip().lower()
        if hashlib.md5(lowered.encode()).hexdigest().encode() in digests:
            continue
        if hashlib.md5(canonical.encode()).hexdigest().encode() in digests:
            continue
        kept += 1
    return kept


def child(method: str, path: Path, count: int) -> None:
    start = time.perf_counter()
    kept = (run_minus if method == "minus" else run_set)(path, count)
    seconds = time.perf_counter() - start
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": seconds, "rss_mb": rss_mb, "kept": kept}))


def measure(method: str, path: Path, count: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--child", method, str(path), str(count)],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--addresses", type=int, default=1_000_000)
    parser.add_argument("--lines", type=int, default=10_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        method, path, count = args.child
        child(method, Path(path), int(count))
        return
    count, lines = (100_000, 1_000_000) if args.quick else (args.addresses, args.lines)
    assert scheme.canonicalize("User0+x@Example.org") == "user0@example.org"
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "optout.md5"
        make_file(path, count, lines)
        print(f"{count:,} addresses against {lines:,} MD5 lines ({path.stat().st_size:,} bytes)")
        results: dict[str, list[dict[str, float]]] = {"minus": [], "set": []}
        for round_ in range(args.rounds):
            order = ("minus", "set") if round_ % 2 == 0 else ("set", "minus")
            for method in order:
                results[method].append(measure(method, path, count))
        kept = {r["kept"] for rs in results.values() for r in rs}
        assert len(kept) == 1, f"the methods disagree: {kept}"
        for method, found in results.items():
            seconds = statistics.median(r["seconds"] for r in found)
            rss = max(r["rss_mb"] for r in found)
            kept_here = int(found[0]["kept"])
            print(f"{method}: median {seconds:.2f} s, peak RSS {rss:.0f} MB, kept {kept_here:,}")
        ratio = statistics.median(r["seconds"] for r in results["minus"]) / statistics.median(
            r["seconds"] for r in results["set"]
        )
        peak = max(r["rss_mb"] for r in results["minus"])
        print(f"scrubber.minus peak RSS {peak:.0f} MB (goal <= {RSS_GOAL_MB})")
        print(f"scrub: ratio {ratio:.2f} (goal <= {GOAL})")


if __name__ == "__main__":
    main()
