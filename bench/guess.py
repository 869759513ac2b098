"""Benchmark: what one dictionary guess against a published batch costs, per core.

    .venv/bin/python bench/guess.py [--seconds S] [--rounds N]

Someone holding a batch (salt, parameters, tags) and a list of candidate
addresses learns which are listed at one Argon2id evaluation per candidate
and per salt epoch (docs/security.md). This measures that evaluation on one
thread with argon2-cffi (the same call scheme.digest makes) at the default
cost (t=2, m=1024 KiB, p=1, the baseline) and at costs an operator may pick
up to the responders' caps (t <= 4, m <= 65536 KiB), in alternating rounds,
and prints the median guesses/s per core and the slowdown each buys. The
last line is `guess: ratio <x> (goal >= 10)`: the slowdown of the highest
cost responders accept by default against the default cost, so an operator
can raise the cost tenfold or more without responders refusing the batch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

from argon2.low_level import Type, hash_secret_raw

BASELINE = (2, 1024)
COSTS = [BASELINE, (3, 4096), (2, 16384), (4, 65536)]
GOAL = 10.0
CANDIDATES_DEFAULT = 10**9  # a large harvested list


def rate(t: int, m: int, seconds: float) -> float:
    """Single-thread Argon2id evaluations per second over at least ``seconds``."""
    salt = os.urandom(16)
    count = 0
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds or count < 3:
        hash_secret_raw(
            f"guess{count}@example.com".encode(),
            salt,
            time_cost=t,
            memory_cost=m,
            parallelism=1,
            hash_len=32,
            type=Type.ID,
            version=0x13,
        )
        count += 1
    return count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=2.0, help="per cost and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--candidates", type=int, default=CANDIDATES_DEFAULT)
    args = parser.parse_args()
    rates: dict[tuple[int, int], list[float]] = {cost: [] for cost in COSTS}
    for _ in range(args.rounds):  # alternate costs within each round: load hits all alike
        for t, m in COSTS:
            rates[(t, m)].append(rate(t, m, args.seconds))
    base = statistics.median(rates[BASELINE])
    for (t, m), found in rates.items():
        per_core = statistics.median(found)
        core_days = args.candidates / per_core / 86400
        print(
            f"t={t} m={m:>5} KiB: {per_core:8.1f} guesses/s per core, "
            f"{1000 / per_core:7.2f} ms each, x{base / per_core:6.1f} the default; "
            f"{args.candidates:.0e} candidates = {core_days:,.0f} core-days per salt epoch"
        )
    top = statistics.median(rates[COSTS[-1]])
    print(f"guess: ratio {base / top:.1f} (goal >= {GOAL:g})")


if __name__ == "__main__":
    main()
