"""Ed25519 signatures over a report's canonical JSON, and verification of files.

Version 2 reports are signed over the RFC 8785 (JCS) form of the report
without its ``signature`` member, which any language can reproduce; the
signature block says so with ``"canonicalization": "rfc8785"``. Version 1
reports (no such member) were signed over Python's ``json.dumps(sort_keys=True,
separators=(",", ":"), ensure_ascii=False)`` and still verify. A signed file
verifies when the signature matches *and* (for the current version) the file
is byte for byte what scrubber renders from the signed data, so a change to
the visible part of an HTML or Markdown report is caught too.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from html.parser import HTMLParser
from pathlib import Path
from typing import Any, cast

import rfc8785

from scrubber import __version__, keys
from scrubber.errors import ReportError, UntrustedKey, VerificationFailed
from scrubber.report.build import VERSION
from scrubber.report.model import (
    LEDGER_FORMAT,
    Document,
    Signature,
    as_json,
)
from scrubber.report.render_html import SCRIPT_ID, render_html
from scrubber.report.render_json import render_json
from scrubber.report.render_md import MD_MARKER, render_markdown

ALGORITHM = "ed25519"
JCS = "rfc8785"
GENERATOR = f"scrubber {__version__}"


def canonical_json(data: Mapping[str, object]) -> bytes:
    """RFC 8785 (JCS) bytes of ``data`` without its ``signature`` member."""
    unsigned = as_json({k: v for k, v in data.items() if k != "signature"})
    try:
        return rfc8785.dumps(unsigned)
    except rfc8785.CanonicalizationError as exc:
        raise VerificationFailed(f"INVALID: the report data has no canonical form: {exc}") from None


def canonical_json_v1(data: Mapping[str, object]) -> bytes:
    """The version 1 signed bytes: Python's sorted, compact json.dumps."""
    unsigned = {k: v for k, v in data.items() if k != "signature"}
    text = json.dumps(unsigned, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8")


def signature_block(key: keys.OperatorKey, data: bytes) -> Signature:
    """The members every scrubber signature carries, over ``data``."""
    return {
        "algorithm": ALGORITHM,
        "key": key.public_b64,
        "key_fingerprint": key.fingerprint,
        "value": base64.b64encode(key.sign(data)).decode("ascii"),
    }


def sign_report(data: Document, key: keys.OperatorKey) -> Document:
    """A copy of ``data`` with its ``signature`` member (JCS canonicalization)."""
    block = signature_block(key, canonical_json(data))
    block["canonicalization"] = JCS
    signed = data.copy()
    signed["signature"] = block
    return signed


@dataclass(frozen=True)
class Verified:
    """What a valid signed file says about itself."""

    format: str
    kind: str
    subject: str
    key_fingerprint: str
    trusted_as: str
    layout_checked: bool


def check_signature(document: dict[str, Any]) -> bytes:
    """The signing key's raw bytes; raises VerificationFailed on any mismatch."""
    block = document.get("signature")
    if not isinstance(block, dict) or block.get("algorithm") != ALGORITHM:
        raise VerificationFailed("the report carries no Ed25519 signature")
    try:
        public = keys.decode_public(str(block.get("key", "")))
        value = base64.b64decode(str(block.get("value", "")), validate=True)
    except (ValueError, binascii.Error):
        raise VerificationFailed("the report's signature block is malformed") from None
    signed = _signed_bytes(document, block.get("canonicalization"))
    if not keys.verify(public, signed, value):
        raise VerificationFailed("INVALID: the signature does not match the report's data")
    if block.get("key_fingerprint") != keys.fingerprint(public):
        raise VerificationFailed("INVALID: the signature block names the wrong key fingerprint")
    return public


def trusted_label(public: bytes, trusted: Mapping[bytes, str]) -> str:
    """How ``public`` is trusted; raises UntrustedKey when it is not."""
    if public in trusted:
        return trusted[public]
    known = ", ".join(keys.fingerprint(k) for k in trusted) or "none"
    raise UntrustedKey(
        f"UNTRUSTED: signed by key {keys.fingerprint(public)}, which is not a trusted key "
        f"(trusted: {known}); pass --key with the operator's public key"
    )


def _signed_bytes(document: dict[str, Any], canonicalization: object) -> bytes:
    if canonicalization == JCS:
        return canonical_json(document)
    if canonicalization is None:
        return canonical_json_v1(document)
    raise VerificationFailed(f"INVALID: unknown canonicalization {canonicalization!r}")


def verify_file(path: Path, trusted: Mapping[bytes, str]) -> Verified:
    """Check a json, html or md report file against the ``trusted`` keys (key -> label)."""
    text = _read(path)
    fmt, embedded = extract(text)
    try:
        document = json.loads(embedded)
    except json.JSONDecodeError:
        raise VerificationFailed(f"INVALID: {path} holds no readable report data") from None
    if not isinstance(document, dict) or not isinstance(document.get("report"), dict):
        raise VerificationFailed(f"INVALID: {path} holds no scrubber report")
    public = check_signature(document)
    label = trusted_label(public, trusted)
    current = document["report"].get("version") == VERSION
    # Version 1 files were laid out by older renderers: their signed data is
    # checked, their visible part cannot be re-rendered byte for byte.
    if current and _render(fmt, document) != text:
        made_by = document["report"].get("generator")
        hint = "" if made_by == GENERATOR else f"; it was made by {made_by}, this is {GENERATOR}"
        raise VerificationFailed(
            f"INVALID: {path} was changed after signing (it differs from its signed data{hint})"
        )
    return Verified(
        format=fmt,
        kind=str(document["report"].get("format")),
        subject=_subject(document),
        key_fingerprint=keys.fingerprint(public),
        trusted_as=label,
        layout_checked=current,
    )


def _subject(document: dict[str, Any]) -> str:
    """What a report is about, for the success line."""
    batch = document.get("batch")
    if isinstance(batch, dict):
        return str(batch.get("id"))
    if document["report"].get("format") == LEDGER_FORMAT:
        return "the suppression ledger"
    return "all batches"


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ReportError(f"cannot read {path}: {reason}") from None


def _render(fmt: str, data: dict[str, Any]) -> str:
    if fmt == "json":
        return render_json(data)
    # Parsed from the file: a document of this or an earlier version, which
    # the renderers show alike (later members are NotRequired in the model).
    document = cast(Document, data)
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
