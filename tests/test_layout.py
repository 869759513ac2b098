"""Tests, benches and fuzz targets import test code one way: ``from tests.<module>``.

A support module imported both as ``listener_support`` and as
``tests.listener_support`` is two module objects of one file (two sets of
globals, isinstance failing across them). So: tests is a package; fixtures
come from conftest.py through pytest, never by import; helpers from a
``tests.*_support`` module or ``tests.support``; no test module imports
another test module. Benches likewise share helpers one way: from
``bench._support``, never from another bench's script.
"""

from __future__ import annotations

import ast
from pathlib import Path

from tests.support import ROOT

TESTS = ROOT / "tests"


def _imports(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module) of each import; relative ones keep their dots."""
    found: list[tuple[int, str]] = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.lineno, "." * node.level + (node.module or "")))
    return found


def _wrong(module: str, own_modules: set[str]) -> str | None:
    if module.startswith("."):
        return "a relative import"
    head, _, rest = module.partition(".")
    name = rest.partition(".")[0] if head == "tests" else head
    if name == "conftest":
        return "an import of conftest (fixtures come through pytest; helpers: tests.support)"
    if name.startswith("test_") and (head == "tests" or name in own_modules):
        return "an import of a test module (shared code belongs in a tests.*_support module)"
    if head in own_modules:
        return f"a bare import of tests/{head}.py; write tests.{module}"
    return None


def test_test_code_is_imported_one_way() -> None:
    assert (TESTS / "__init__.py").is_file()
    own = {p.stem for p in TESTS.glob("*.py")}
    files = [*TESTS.glob("*.py"), *(ROOT / "bench").glob("*.py"), *(ROOT / "fuzz").glob("*.py")]
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {why}"
        for path in files
        for line, module in _imports(path)
        if (why := _wrong(module, own)) is not None
    ]
    assert wrong == []


def _wrong_in_bench(module: str, benches: set[str]) -> str | None:
    head, _, rest = module.partition(".")
    name = rest.partition(".")[0] if head == "bench" else head
    if head == "bench" and not rest:
        return "an import of the bench package (helpers: bench._support)"
    if name == "_support" and head != "bench":
        return "a bare import of bench/_support.py; write bench._support"
    if name in benches and (head == "bench" or head in benches):
        return "an import of another bench (shared code belongs in bench._support)"
    return None


def test_benches_share_code_only_through_bench_support() -> None:
    bench = ROOT / "bench"
    assert (bench / "__init__.py").is_file()
    benches = {p.stem for p in bench.glob("*.py")} - {"__init__", "_support"}
    wrong = [
        f"{path.relative_to(ROOT)}:{line}: {why}"
        for path in bench.glob("*.py")
        for line, module in _imports(path)
        if (why := _wrong_in_bench(module, benches)) is not None
    ]
    assert wrong == []


def test_the_bench_check_sees_each_way_it_forbids() -> None:
    benches = {"listen_http", "abuse"}
    for module in ("listen_http", "bench.abuse", "bench.listen_http.x", "_support", "bench"):
        assert _wrong_in_bench(module, benches) is not None, module
    for module in ("bench._support", "scrubber.lists", "tests.batch_support", "json"):
        assert _wrong_in_bench(module, benches) is None, module


def test_the_check_sees_each_way_it_forbids() -> None:
    own = {"conftest", "listener_support", "test_lists"}
    for module in ("conftest", "listener_support", "test_lists", "tests.conftest"):
        assert _wrong(module, own) is not None, module
    assert _wrong("tests.test_lists", own) is not None
    assert _wrong(".listener_support", own) is not None
    for module in ("tests.listener_support", "tests.support", "scrubber.lists", "pytest"):
        assert _wrong(module, own) is None, module
