"""Ed25519 signatures over a report's canonical JSON, and verification of files.

Canonical JSON is ``json.dumps(sort_keys=True, separators=(",", ":"),
ensure_ascii=False)`` of the report without its ``signature`` member, UTF-8
encoded. A signed file verifies when the signature matches *and* the file is
byte for byte what scrubber renders from the signed data, so a change to the
visible part of an HTML or Markdown report is caught too.
"""

from __future__ import annotations

import base64
import binascii
import json
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

from scrubber import __version__, keys
from scrubber.errors import ReportError, VerificationFailed
from scrubber.report.render_html import SCRIPT_ID, render_html
from scrubber.report.render_json import render_json
from scrubber.report.render_md import MD_MARKER, render_markdown

ALGORITHM = "ed25519"
GENERATOR = f"scrubber {__version__}"


def canonical_json(data: dict[str, Any]) -> bytes:
    unsigned = {k: v for k, v in data.items() if k != "signature"}
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def sign_report(data: dict[str, Any], key: keys.OperatorKey) -> dict[str, Any]:
    """A copy of ``data`` with its ``signature`` member."""
    signature = key.sign(canonical_json(data))
    return {
        **data,
        "signature": {
            "algorithm": ALGORITHM,
            "key": key.public_b64,
            "key_fingerprint": key.fingerprint,
            "value": base64.b64encode(signature).decode("ascii"),
        },
    }


@dataclass(frozen=True)
class Verified:
    """What a valid signed file says about itself."""

    format: str
    kind: str
    subject: str
    key_fingerprint: str
    key_checked: bool


def check_signature(document: dict[str, Any], expected_key: bytes | None = None) -> bytes:
    """The signing key's raw bytes; raises VerificationFailed on any mismatch."""
    block = document.get("signature")
    if not isinstance(block, dict) or block.get("algorithm") != ALGORITHM:
        raise VerificationFailed("the report carries no Ed25519 signature")
    try:
        public = keys.decode_public(str(block.get("key", "")))
        value = base64.b64decode(str(block.get("value", "")), validate=True)
    except (ValueError, binascii.Error):
        raise VerificationFailed("the report's signature block is malformed") from None
    if not keys.verify(public, canonical_json(document), value):
        raise VerificationFailed("INVALID: the signature does not match the report's data")
    if block.get("key_fingerprint") != keys.fingerprint(public):
        raise VerificationFailed("INVALID: the signature block names the wrong key fingerprint")
    if expected_key is not None and public != expected_key:
        raise VerificationFailed(
            f"INVALID: signed by key {keys.fingerprint(public)}, "
            f"not by the expected key {keys.fingerprint(expected_key)}"
        )
    return public


def verify_file(path: Path, expected_key: bytes | None = None) -> Verified:
    """Check a json, html or md report file; raises VerificationFailed if changed."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ReportError(f"cannot read {path}: {reason}") from None
    fmt, embedded = extract(text)
    try:
        document = json.loads(embedded)
    except json.JSONDecodeError:
        raise VerificationFailed(f"INVALID: {path} holds no readable report data") from None
    if not isinstance(document, dict) or not isinstance(document.get("report"), dict):
        raise VerificationFailed(f"INVALID: {path} holds no scrubber report")
    public = check_signature(document, expected_key)
    if _render(fmt, document) != text:
        made_by = document["report"].get("generator")
        hint = "" if made_by == GENERATOR else f"; it was made by {made_by}, this is {GENERATOR}"
        raise VerificationFailed(
            f"INVALID: {path} was changed after signing (it differs from its signed data{hint})"
        )
    batch = document.get("batch")
    return Verified(
        format=fmt,
        kind=str(document["report"].get("format")),
        subject=str(batch.get("id")) if isinstance(batch, dict) else "all batches",
        key_fingerprint=keys.fingerprint(public),
        key_checked=expected_key is not None,
    )


def _render(fmt: str, document: dict[str, Any]) -> str:
    if fmt == "json":
        return render_json(document)
    if fmt == "md":
        return render_markdown(document)
    return render_html(document)


def extract(text: str) -> tuple[str, str]:
    """(format, embedded JSON text) of a signed report file."""
    if text.lstrip().startswith("{"):
        return "json", text
    if MD_MARKER in text:
        encoded = text.split(MD_MARKER, 1)[1].split("-->", 1)[0].strip()
        try:
            return "md", base64.b64decode(encoded, validate=True).decode("utf-8")
        except (binascii.Error, ValueError):
            raise VerificationFailed("INVALID: the embedded report data is damaged") from None
    finder = _ScriptFinder()
    finder.feed(text)
    finder.close()
    if finder.found is None:
        raise ReportError(
            "the file embeds no signed scrubber report (json, md and html reports do)"
        )
    return "html", finder.found


class _ScriptFinder(HTMLParser):
    """Collects the text of <script type="application/json" id=SCRIPT_ID>."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.found: str | None = None
        self._inside = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "script" and dict(attrs).get("id") == SCRIPT_ID and self.found is None:
            self._inside = True
            self.found = ""

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._inside = False

    def handle_data(self, data: str) -> None:
        if self._inside and self.found is not None:
            self.found += data
