"""Text: rich tables for a terminal (or a plain-text file)."""

from __future__ import annotations

import io
from dataclasses import replace

from rich import box
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

from scrubber.report.model import Document
from scrubber.report.sections import Section, sections, title


def render_text(document: Document) -> RenderableType:
    """One renderable holding every section."""
    style = "bold green" if document["ok"] else "bold red"
    items: list[RenderableType] = [Text(title(document), style=style)]
    for section in sections(document):
        items.append(_table(_unsigned(section) if section.key == "signature" else section))
    return Group(*items)


def _unsigned(section: Section) -> Section:
    # Text cannot be checked against its data, so it must not claim a signature.
    rows = [
        ("text form", "not signed: it cannot be verified"),
        ("signed forms", "scrubber report BATCH --format json|md|html"),
        *[row for row in section.rows if row[0] == "key fingerprint"],
    ]
    return replace(section, title="Signature", rows=rows)


def render_plain(document: Document, width: int = 120) -> str:
    """The same tables as plain text without colour, for ``-o FILE``."""
    console = Console(width=width, record=True, color_system=None, file=io.StringIO())
    console.print(render_text(document))
    return console.export_text()


def _table(section: Section) -> RenderableType:
    table = Table(
        title=section.title,
        title_justify="left",
        title_style="bold",
        box=box.SIMPLE_HEAVY,
        show_header=not section.keyvalue,
        caption=section.note,
        caption_justify="left",
    )
    for i, column in enumerate(section.columns):
        table.add_column(column, style="bold" if section.keyvalue and i == 0 else None)
    for row in section.rows:
        table.add_row(*(_styled(cell) for cell in row))
    return table


def _styled(cell: str) -> Text:
    if cell in ("PASS", "met"):
        return Text(cell, style="green")
    if cell in ("FAIL", "late"):
        return Text(cell, style="bold red")
    return Text(cell)
