"""Language-neutral report signatures: RFC 8785 vectors, v1 reports, verifying without scrubber."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from scrubber import keys
from scrubber.errors import VerificationFailed
from scrubber.keys import OperatorKey
from scrubber.report import sign
from tests.report_support import Seeded
from tests.support import run_cli

ROOT = Path(__file__).resolve().parent.parent
DOC = (ROOT / "docs" / "report.md").read_text(encoding="utf-8")
V1 = Path(__file__).parent / "fixtures" / "report_v1"
V1_KEY = (V1 / "operator.pub").read_text(encoding="ascii").strip()


def vector(name: str) -> str:
    """The indented line after ``<!-- vector:NAME -->`` in docs/report.md."""
    match = re.search(rf"<!-- vector:{name} -->\n    (.*)\n", DOC)
    assert match, name
    return match.group(1)


def snippet(name: str) -> str:
    match = re.search(rf"<!-- snippet:{name} -->\n```python\n(.*?)```\n", DOC, re.S)
    assert match, name
    return match.group(1)


def vector_key() -> OperatorKey:
    return OperatorKey(Ed25519PrivateKey.from_private_bytes(bytes(range(32))))


def test_documented_vectors_hold() -> None:
    document: dict[str, Any] = json.loads(vector("document"))
    assert sign.canonical_json(document).decode("utf-8") == vector("canonical")
    key = vector_key()
    assert vector("key") == f"{key.public_b64} {key.fingerprint}"
    signed = sign.sign_report(document, key)
    assert signed["signature"]["value"] == vector("signature")
    assert signed["signature"]["canonicalization"] == "rfc8785"
    assert sign.check_signature(signed) == key.public_raw


def test_canonical_form_ignores_key_order_and_number_spelling() -> None:
    a = json.loads('{"b": 90.0, "a": [1, 2.50]}')
    b = json.loads('{"a": [1.0, 2.5], "b": 90}')
    assert sign.canonical_json(a) == sign.canonical_json(b) == b'{"a":[1,2.5],"b":90}'


@pytest.mark.parametrize("name", ["report.json", "report.md", "report.html", "summary.json"])
def test_v1_reports_made_before_jcs_still_verify(name: str) -> None:
    result = run_cli("report", "verify", str(V1 / name), "--key", V1_KEY)
    assert result.returncode == 0, result.stderr
    assert "valid" in result.stdout and "version 1" in result.stdout


def test_a_changed_v1_report_fails(tmp_path: Path) -> None:
    changed = tmp_path / "report.json"
    text = (V1 / "report.json").read_text(encoding="utf-8")
    changed.write_text(text.replace('"addresses_hashed": 12', '"addresses_hashed": 13'))
    assert text != changed.read_text()
    with pytest.raises(VerificationFailed):
        sign.verify_file(changed, {keys.decode_public(V1_KEY): "v1"})


def test_v1_canonical_form_is_not_accepted_as_v2() -> None:
    document = json.loads((V1 / "report.json").read_text(encoding="utf-8"))
    document["signature"]["canonicalization"] = "rfc8785"
    with pytest.raises(VerificationFailed, match="does not match"):
        sign.check_signature(document)


def test_verify_without_scrubber_runs_the_documented_lines(
    seeded: Seeded,
    tmp_path: Path,
) -> None:
    ws = seeded.workspace
    report = tmp_path / "report.json"
    made = run_cli("report", seeded.batch_id, "-o", str(report), workspace=ws.root)
    assert made.returncode == 0, made.stderr
    script = tmp_path / "verify.py"
    script.write_text(snippet("verify"), encoding="utf-8")
    public = (ws.root / "keys" / "operator.pub").read_text(encoding="ascii").strip()
    ok = subprocess.run([sys.executable, str(script), str(report), public], capture_output=True)
    assert ok.returncode == 0 and ok.stdout.startswith(b"valid, signed by"), ok.stderr
    other = base64.b64encode(OperatorKey.generate().public_raw).decode("ascii")
    wrong = subprocess.run([sys.executable, str(script), str(report), other], capture_output=True)
    assert wrong.returncode != 0 and b"signed by another key" in wrong.stderr
    data = json.loads(report.read_text(encoding="utf-8"))
    data["addresses_hashed"] += 1
    report.write_text(json.dumps(data), encoding="utf-8")
    bad = subprocess.run([sys.executable, str(script), str(report), public], capture_output=True)
    assert bad.returncode != 0 and b"InvalidSignature" in bad.stderr


def test_embeddings_are_the_documented_rfc8785_form(seeded: Seeded, tmp_path: Path) -> None:
    ws = seeded.workspace
    for fmt in ("md", "html"):
        out = tmp_path / f"r.{fmt}"
        assert run_cli("report", seeded.batch_id, "-o", str(out), workspace=ws.root).returncode == 0
        text = out.read_text(encoding="utf-8")
        if fmt == "md":
            lines = text.splitlines()
            at = len(lines) - 1 - lines[::-1].index("<!-- scrubber-report:")
            embedded = base64.b64decode(lines[at + 1]).decode("utf-8")
            assert lines[at + 2] == "-->"
        else:
            start = text.index('<script type="application/json" id="scrubber-report">')
            embedded = text[text.index(">", start) + 1 : text.index("</script>", start)]
            assert "<" not in embedded
        document = json.loads(embedded)
        assert embedded.replace("\\u003c", "<").encode("utf-8") == _jcs_whole(document)


def _jcs_whole(document: dict[str, Any]) -> bytes:
    import rfc8785

    return rfc8785.dumps(document)


def test_text_report_does_not_claim_a_signature(seeded: Seeded, tmp_path: Path) -> None:
    out = tmp_path / "r.txt"
    made = run_cli("report", seeded.batch_id, "-o", str(out), workspace=seeded.workspace.root)
    assert "(text, unsigned format)" in made.stderr
    text = out.read_text(encoding="utf-8")
    assert "not signed" in text and "report verify" not in text


def test_unknown_suffix_is_an_error_and_writes_nothing(seeded: Seeded, tmp_path: Path) -> None:
    for name in ("r.pdf", "r"):
        target = tmp_path / name
        result = run_cli(
            "report", seeded.batch_id, "-o", str(target), workspace=seeded.workspace.root
        )
        assert result.returncode == 2
        assert "unknown report suffix" in result.stderr and not target.exists()
    for name, probe in (("r.htm", "<!DOCTYPE html>"), ("r.markdown", "# ")):
        target = tmp_path / name
        result = run_cli(
            "report", seeded.batch_id, "-o", str(target), workspace=seeded.workspace.root
        )
        assert result.returncode == 0, result.stderr
        assert target.read_text("utf-8").startswith(probe)


def test_one_call_writes_several_formats_of_one_document(seeded: Seeded, tmp_path: Path) -> None:
    names = ["r.json", "r.html", "r.md", "r.csv", "r.txt"]
    args = [a for n in names for a in ("-o", str(tmp_path / n))]
    result = run_cli("report", seeded.batch_id, *args, workspace=seeded.workspace.root)
    assert result.returncode == 0, result.stderr
    documents = []
    for name in ("r.json", "r.html", "r.md"):
        assert (
            run_cli(
                "report", "verify", str(tmp_path / name), workspace=seeded.workspace.root
            ).returncode
            == 0
        )
        documents.append(json.loads(sign.extract((tmp_path / name).read_text("utf-8"))[1]))
    assert documents[0] == documents[1] == documents[2]  # same time, same signature
    stamp = documents[0]["report"]["generated_at"][:19].replace("T", " ")
    assert stamp in (tmp_path / "r.txt").read_text("utf-8")
    both = run_cli("report", seeded.batch_id, "-f", "json", *args, workspace=seeded.workspace.root)
    assert both.returncode == 2
