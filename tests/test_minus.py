"""Scrubbing a list export against hashed suppression files (--minus)."""

from __future__ import annotations

import gzip
import hashlib
import zipfile
from pathlib import Path

import pytest

from scrubber import lists, minus
from scrubber.errors import InputFileError
from scrubber.workspace import Workspace, open_store
from tests.support import run_cli

LIST = ["Ann@Example.com", "bob+news@gmail.com", "b.o.b@gmail.com", "  Cy@example.com", "dee@x.org"]


def _hex(algorithm: str, text: str) -> str:
    return hashlib.new(algorithm, text.encode()).hexdigest()


@pytest.fixture
def listed(workspace: Workspace) -> Workspace:
    source = workspace.root / "list.txt"
    source.write_text("\n".join(LIST) + "\n")
    with open_store(workspace) as store:
        lists.import_files(store, "l", [source], rejects_path=workspace.root / "r.csv")
    return workspace


def _export(ws: Workspace, *files: Path) -> tuple[list[str], minus.MinusSummary]:
    with open_store(ws) as store:
        scrubber = minus.Scrubber(files)
        found = scrubber.matches(lambda: lists.iter_export_rows(store, "l"))
        summary = minus.MinusSummary()
        kept = list(minus.scrub(lists.iter_export_rows(store, "l"), found, summary))
    return kept, summary


def test_matches_by_spelling_and_by_canonical_form(listed: Workspace, tmp_path: Path) -> None:
    # ann@example.com (lower+trim of the spelling), bob@gmail.com (only the
    # canonical form of bob+news@ and b.o.b@), and noise.
    path = tmp_path / "optout.md5"
    lines = [_hex("md5", "ann@example.com"), _hex("md5", "bob@gmail.com"), _hex("md5", "zz@q.org")]
    path.write_text("\n".join(lines).upper() + "\n")
    kept, summary = _export(listed, path)
    assert sorted(kept) == ["Cy@example.com", "dee@x.org"]
    assert (summary.left_out, summary.by_original, summary.by_canonical) == (2, 1, 1)


@pytest.mark.parametrize("algorithm", ["sha1", "sha256", "sha512"])
def test_each_algorithm_by_length_and_compressed_forms(
    listed: Workspace, tmp_path: Path, algorithm: str
) -> None:
    text = (_hex(algorithm, "dee@x.org") + "\r\n").encode()
    gz = tmp_path / "a.gz"
    gz.write_bytes(gzip.compress(text))
    zipped = tmp_path / "b.zip"
    with zipfile.ZipFile(zipped, "w") as archive:
        archive.writestr("optout.txt", _hex("md5", "cy@example.com") + "\n")
    kept, summary = _export(listed, gz, zipped)
    assert "dee@x.org" not in kept and len(kept) == 2
    assert summary.left_out == 2
    assert minus.Scrubber([gz, zipped]).algorithms == {str(gz): algorithm, str(zipped): "md5"}


def test_many_blocks_and_prefix_collisions_are_confirmed(
    listed: Workspace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(minus, "BLOCK_LINES", 4)
    real = _hex("sha256", "ann@example.com")
    # Same 64-bit prefix, different digest: must not match.
    fake = real[:16] + ("0" if real[16] != "0" else "1") + real[17:]
    path = tmp_path / "f.sha256"
    path.write_text("\n".join([_hex("sha256", f"n{i}@q.org") for i in range(50)] + [fake]) + "\n")
    kept, summary = _export(listed, path)
    assert summary.left_out == 0 and len(kept) == 4  # bob+news@ and b.o.b@ are one


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("a" * 32 + "\n" + "b" * 64 + "\n", r"f.txt:2: 64 characters, not 32"),
        ("a" * 32 + "\n" + "g" * 32 + "\n", r"f.txt:2: not hex"),
        ("x" * 31 + "\n", r"f.txt:1: a digest of 31 characters"),
        ("a" * 32 + "\n\n" + "b" * 32 + "\n", r"f.txt:2: 0 characters"),
        ("", r"holds no digests"),
    ],
)
def test_bad_files_are_refused_with_the_line(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "f.txt"
    path.write_text(content)
    with pytest.raises(InputFileError, match=message):
        minus.Scrubber([path])


def test_cli_minus_prints_counts_and_refuses_bad_files(listed: Workspace, tmp_path: Path) -> None:
    good = tmp_path / "good.md5"
    good.write_text(_hex("md5", "dee@x.org") + "\n")
    out = tmp_path / "out.txt"
    done = run_cli(
        "list", "export", "l", "--minus", str(good), "-o", str(out), workspace=listed.root
    )
    assert done.returncode == 0, done.stderr
    assert "left out 1 (1 by spelling, 0 only by canonical form)" in done.stderr
    assert "dee@x.org" not in out.read_text() and len(out.read_text().split()) == 3
    bad = tmp_path / "bad.md5"
    bad.write_text(_hex("md5", "x") + "\nnot-hex\n")
    refused = run_cli(
        "list", "export", "l", "--minus", str(good), "--minus", str(bad), workspace=listed.root
    )
    assert refused.returncode == 1
    assert refused.stdout == ""
    assert refused.stderr.strip().endswith(
        "bad.md5:2: 7 characters, not 32 (one md5 digest a line)"
    )
