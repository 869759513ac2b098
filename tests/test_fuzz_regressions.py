"""Every input the fuzzer (fuzz/run.py) crashed on, and the seed corpus,
replayed through its target: each must now be parsed or refused cleanly."""

from __future__ import annotations

from pathlib import Path

import pytest

from fuzz.targets import TARGETS

ROOT = Path(__file__).resolve().parent.parent
CASES = sorted(
    path
    for folder in (ROOT / "tests" / "fuzz_regressions", ROOT / "fuzz" / "corpus")
    for path in folder.glob("*/*")
    if path.is_file()
)


def test_there_are_cases_for_every_target() -> None:
    assert {path.parent.name for path in CASES} == set(TARGETS)


@pytest.mark.parametrize("case", CASES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_case_is_handled(case: Path) -> None:
    TARGETS[case.parent.name](case.read_bytes())
