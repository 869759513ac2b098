"""Run the atheris fuzz targets for a bounded time; exit non-zero on a crash.

    python fuzz/run.py --seconds 60            # all targets, the time shared
    python fuzz/run.py --target http_ping --seconds 300

Each target runs in its own process (libFuzzer runs once per process), on a
scratch copy of its seed corpus (fuzz/corpus/TARGET) so the tree stays
clean. A crashing input is written to fuzz/crashes/; copy it to
tests/fuzz_regressions/TARGET/ (with a name saying what it is) and fix the
parser: tests/test_fuzz_regressions.py replays every file there.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
MAX_LEN = 70_000  # a little over the listener's 64 KiB body cap


def fuzz_one(name: str, seconds: int, scratch: str) -> None:
    """In the child process: hand the target to libFuzzer (never returns)."""
    import atheris

    with atheris.instrument_imports(include=["scrubber", "email"]):
        from fuzz.targets import TARGETS
    target = TARGETS[name]
    crashes = HERE / "crashes"
    crashes.mkdir(exist_ok=True)
    argv = [
        sys.argv[0],
        scratch,
        str(HERE / "corpus" / name),
        f"-max_total_time={seconds}",
        f"-max_len={MAX_LEN}",
        "-timeout=10",
        "-rss_limit_mb=2048",
        f"-artifact_prefix={crashes}/{name}-",
        "-print_final_stats=1",
    ]
    atheris.Setup(argv, target)
    atheris.Fuzz()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=60, help="total time for all targets")
    parser.add_argument("--target", help="only this target")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--scratch", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:  # before importing the targets: atheris instruments them as they load
        fuzz_one(args.child, args.seconds, args.scratch)
        return 0
    from fuzz.targets import TARGETS

    if args.target and args.target not in TARGETS:
        parser.error(f"--target must be one of {', '.join(TARGETS)}")
    names = [args.target] if args.target else list(TARGETS)
    each = max(1, args.seconds // len(names))
    failed = []
    for name in names:
        print(f"fuzz: {name} for {each} s", flush=True)
        with tempfile.TemporaryDirectory(prefix=f"fuzz-{name}-") as scratch:
            child = [sys.executable, str(HERE / "run.py"), "--child", name]
            child += ["--seconds", str(each), "--scratch", scratch]
            done = subprocess.run(child, cwd=ROOT, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            failed.append(name)
            print(done.stderr[-4000:], file=sys.stderr)
        else:
            print(_stats(done.stderr), flush=True)
    if failed:
        print(f"fuzz: crash in {', '.join(failed)} (inputs in fuzz/crashes/)", file=sys.stderr)
        return 1
    print(f"fuzz: {len(names)} targets, no crash")
    return 0


def _stats(log: str) -> str:
    """libFuzzer's closing figures, on one line."""
    wanted = ("stat::number_of_executed_units", "stat::peak_rss_mb", "cov:")
    lines = [line.strip() for line in log.splitlines() if line.startswith(wanted[:2])]
    done = [line for line in log.splitlines() if line.startswith("#") and "DONE" in line]
    return "  " + " ".join([*(done[-1:]), *lines])


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    sys.exit(main())
