"""Markdown for tickets and wikis; the signed JSON rides along in a comment."""

from __future__ import annotations

import base64

import rfc8785

from scrubber.report.model import Document, as_json
from scrubber.report.sections import Section, sections, title

MD_MARKER = "<!-- scrubber-report:"


def render_markdown(document: Document) -> str:
    parts = [f"# {_cell(title(document))}\n"]
    parts += [_section(section) for section in sections(document)]
    if "signature" in document:
        parts.append(_embedded(document))
    return "\n".join(parts)


def _section(section: Section) -> str:
    lines = [f"## {_cell(section.title)}", ""]
    if section.note:
        lines += [f"_{_cell(section.note)}_", ""]
    if section.rows:
        header = ("", "") if section.keyvalue else section.columns
        lines.append("| " + " | ".join(_cell(c) for c in header) + " |")
        lines.append("|" + "|".join("---" for _ in header) + "|")
        lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in section.rows]
        lines.append("")
    return "\n".join(lines)


def _cell(text: str) -> str:
    # Pipes would split a table cell; angle brackets would start HTML.
    return (
        text.replace("\\", "\\\\")
        .replace("|", "\\|")
        .replace("<", "&lt;")
        .replace(">", "&gt;")
        .replace("\n", " ")
    )


def _embedded(document: Document) -> str:
    # base64, so nothing in the data can close the comment early.
    # The whole signed document in RFC 8785 form (docs/report.md, "Embeddings").
    data = rfc8785.dumps(as_json(document)).decode("utf-8")
    encoded = base64.b64encode(data.encode("utf-8")).decode("ascii")
    return f"{MD_MARKER}\n{encoded}\n-->\n"
