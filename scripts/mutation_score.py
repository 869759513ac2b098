"""Print the mutation score per pure module from mutmut's results (`make mutate`).

Score = (killed + timed out) / (mutants - equivalent), where the equivalent mutants (a
change no test can observe, because the behaviour is the same) are listed
with the reason in scripts/mutation_equivalents.txt. Exits 1 when a module
is below the goal (95 %), naming its surviving mutants (`mutmut show NAME`).
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

GOAL = 0.95
HERE = Path(__file__).resolve().parent
_LINE = re.compile(r"^\s*(?P<name>\S+__mutmut_\d+): (?P<status>.+)$")


def module_of(name: str) -> str:
    """`scrubber.scheme.x_mask__mutmut_3` -> `scrubber.scheme`."""
    return re.split(r"\.x[_ǁ]", name, maxsplit=1)[0]


def equivalents() -> set[str]:
    path = HERE / "mutation_equivalents.txt"
    lines = path.read_text(encoding="utf-8").splitlines() if path.exists() else []
    return {line.split()[0] for line in lines if line.strip() and not line.startswith("#")}


def main() -> int:
    mutmut = Path(sys.executable).with_name("mutmut")
    out = subprocess.run(
        [str(mutmut), "results", "--all", "true"], capture_output=True, text=True, check=True
    ).stdout
    same = equivalents()
    by_module: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for line in out.splitlines():
        found = _LINE.match(line)
        if found:
            name, status = found["name"], found["status"].strip()
            # A listed mutant that a test kills is not equivalent after all.
            equivalent = name in same and status != "killed"
            by_module[module_of(name)]["equivalent" if equivalent else status].append(name)
    worst = 1.0
    for module, statuses in sorted(by_module.items()):
        # A mutant that makes the tests hang (an endless loop) is detected too.
        killed = len(statuses["killed"]) + len(statuses["timeout"])
        counted = sum(len(v) for k, v in statuses.items() if k != "equivalent")
        score = killed / counted if counted else 1.0
        worst = min(worst, score)
        print(
            f"{module}: {score:.1%} killed ({killed} of {counted};"
            f" {len(statuses['equivalent'])} equivalent not counted)"
        )
        for status, names in sorted(statuses.items()):
            if status not in ("killed", "timeout", "equivalent"):
                for name in names:
                    print(f"  {status}: {name}")
    print(f"mutate: worst module {worst:.1%} (goal >= {GOAL:.0%})")
    return 0 if worst >= GOAL else 1


if __name__ == "__main__":
    sys.exit(main())
