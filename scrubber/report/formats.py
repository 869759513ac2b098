"""Format names, rendering by name, writing files, and the --check verdict."""

from __future__ import annotations

from pathlib import Path

from scrubber.errors import ReportError, UsageError
from scrubber.private import write_private
from scrubber.report.model import (
    DeadlineCheck,
    Document,
    LedgerCheck,
    is_batch,
    is_ledger,
)
from scrubber.report.render_csv import render_csv
from scrubber.report.render_html import render_html
from scrubber.report.render_json import render_json
from scrubber.report.render_md import render_markdown
from scrubber.report.render_text import render_plain

FORMATS = ("text", "md", "json", "csv", "html")
SIGNED = ("json", "md", "html")
SUFFIXES = {
    ".txt": "text",
    ".text": "text",
    ".md": "md",
    ".markdown": "md",
    ".json": "json",
    ".csv": "csv",
    ".html": "html",
    ".htm": "html",
}


def format_for(output: Path | None, requested: str | None, *, terminal: bool) -> str:
    """The format asked for, else the output file's suffix, else text on a terminal."""
    if requested is not None:
        return requested
    if output is not None:
        suffix = output.suffix.lower()
        if suffix not in SUFFIXES:
            known = ", ".join(SUFFIXES)
            raise UsageError(f"{output}: unknown report suffix {suffix!r}; use {known} or --format")
        return SUFFIXES[suffix]
    return "text" if terminal else "json"


def render(document: Document, fmt: str) -> str:
    if fmt == "json":
        return render_json(document)
    if fmt == "md":
        return render_markdown(document)
    if fmt == "csv":
        return render_csv(document)
    if fmt == "html":
        return render_html(document)
    if fmt == "text":
        return render_plain(document)
    raise UsageError(f"unknown report format {fmt!r}; use one of {', '.join(FORMATS)}")


def write_file(path: Path, text: str) -> None:
    """Write atomically, so a failed write leaves no half report; 0644, as a
    report is meant to be shared."""
    try:
        write_private(path, text, mode=0o644)
    except OSError as exc:
        raise ReportError(f"cannot write {path}: {exc.strerror}") from None


def failures(document: Document) -> list[str]:
    """What makes ``report --check`` fail: missed deadlines and broken invariants
    (a summary's failing batches are its rows' business: see cli/reportcmd.py)."""
    checks: list[DeadlineCheck] | list[LedgerCheck]
    if is_ledger(document) or is_batch(document):
        checks = document["deadlines"]
    else:
        return []
    found = [
        f"{d['name']} deadline ({d['limit']}) missed for {d['late']} suppression(s)"
        for d in checks
        if not d["ok"]
    ]
    if is_batch(document):
        found += [
            f"invariant broken ({i['violations']} address(es)): {i['statement']}"
            for i in document["invariants"]
            if not i["ok"]
        ]
    return found
