"""Real exports import as they are, and no input costs unbounded memory.

Each fixture is the shape of a real export an operator brought (issue 18):
Mailchimp (BOM, CRLF, all quoted, `Email Address`), a French `Courriel`
column, a headerless-by-name `contact` column, Latin-1, Windows-1252 smart
quotes, Excel "Unicode Text" (UTF-16 TSV), Outlook `"Name" <address>`.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from scrubber import readers
from scrubber.errors import InputFileError
from scrubber.readers import LINE_TOO_LONG, read_address_blocks, read_addresses
from scrubber.workspace import Workspace
from tests.support import run_cli

MAILCHIMP = (
    '"Email Address","First Name","Last Name","Address","Phone Number"\r\n'
    '"jane.doe@acme.example","Jane","Doe","1 Main St, Springfield","555"\r\n'
    '"BOB@Example.org","Bob","","",""\r\n'
)


def _write(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path


def _cells(path: Path, **options: str) -> list[str]:
    return [cell for _, cell in read_addresses(path, **options)]  # type: ignore[arg-type]


def _import(workspace: Workspace, *args: str, stdin: str | None = None) -> dict[str, object]:
    result = run_cli("list", "import", *args, "--json", workspace=workspace.root, stdin=stdin)
    assert result.returncode == 0, result.stderr
    parsed: dict[str, object] = json.loads(result.stdout)
    return parsed


def test_mailchimp_export_needs_no_column(tmp_path: Path) -> None:
    path = _write(tmp_path / "audience.csv", b"\xef\xbb\xbf" + MAILCHIMP.encode())
    # "Email Address" wins over the postal "Address" column.
    assert _cells(path) == ["jane.doe@acme.example", "BOB@Example.org"]


@pytest.mark.parametrize(
    ("header", "delimiter"),
    [("Courriel", ";"), ("E-mail", ","), ("Adresse e-mail", ";"), ("EMAIL_ADDRESS", "\t")],
)
def test_common_header_names(tmp_path: Path, header: str, delimiter: str) -> None:
    rows = [f"Nom{delimiter}{header}", f"Dupont{delimiter}m.dupont@exemple.fr"]
    path = _write(tmp_path / "export.csv", "\n".join(rows).encode() + b"\n")
    assert _cells(path) == ["m.dupont@exemple.fr"]


def test_column_found_by_its_values(tmp_path: Path) -> None:
    rows = ["id,contact,note"] + [f"{i},user{i}@example.com,x@y" for i in range(5)]
    path = _write(tmp_path / "crm.csv", "\n".join(rows).encode())
    assert _cells(path) == [f"user{i}@example.com" for i in range(5)]


@pytest.mark.parametrize(
    ("encoding", "name"),
    [("latin-1", "José Müller"), ("cp1252", "“Jo” O’Neil – ok"), ("cp1252", "Zoë Brontë")],
)
def test_legacy_8_bit_files_are_detected(
    workspace: Workspace, tmp_path: Path, encoding: str, name: str
) -> None:
    rows = ["name,email"] + [f"{name} {i},p{i}@example.com" for i in range(20)]
    path = _write(tmp_path / "legacy.csv", "\r\n".join(rows).encode(encoding))
    summary = _import(workspace, "legacy", str(path))
    assert summary["added"] == 20
    # Windows-1252 reads Latin-1's letters the same way, and names the file.
    assert summary["encodings"] == {str(path): "cp1252"}


def test_excel_unicode_text_utf16_tsv(workspace: Workspace, tmp_path: Path) -> None:
    text = "Name\tE-mail\r\nZoë\tzoe@example.com\r\nAli\tali@example.com\r\n"
    for data in (text.encode("utf-16"), text.encode("utf-16-le")):  # with and without a BOM
        path = _write(tmp_path / "unicode.txt", data)
        assert _cells(path, column="E-mail") == ["zoe@example.com", "ali@example.com"]
    summary = _import(workspace, "u", str(path), "--column", "2")
    assert summary["added"] == 2
    assert summary["encodings"] == {str(path): "utf-16-le"}


def test_encoding_option_overrides_and_is_checked(workspace: Workspace, tmp_path: Path) -> None:
    path = _write(tmp_path / "l.txt", "a@example.com\nb@example.com\n".encode("latin-1"))
    assert _import(workspace, "l", str(path), "--encoding", "cp1252")["encodings"] == {
        str(path): "cp1252"
    }
    bad = run_cli(
        "list", "import", "l", str(path), "--encoding", "klingon", workspace=workspace.root
    )
    assert bad.returncode == 1
    assert bad.stderr == "error: unknown encoding 'klingon' (try utf-8, cp1252, latin-1)\n"


def test_outlook_name_and_address(tmp_path: Path) -> None:
    path = _write(
        tmp_path / "outlook.txt",
        b'"Jane Doe" <jane.doe@acme.example>\nBob Smith <bob@example.org>\nplain@example.net\n',
    )
    assert _cells(path) == ["jane.doe@acme.example", "bob@example.org", "plain@example.net"]


def test_stdin_and_suppress_file_take_the_same_options(
    workspace: Workspace, tmp_path: Path
) -> None:
    summary = _import(workspace, "news", "-", stdin="a@example.com\nJane <b@example.com>\n")
    assert summary["added"] == 2
    unsubscribes = _write(tmp_path / "unsub.csv", b"\xef\xbb\xbf" + MAILCHIMP.encode())
    result = run_cli(
        "list", "suppress", "--file", str(unsubscribes), "--json", workspace=workspace.root
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["added"] == 2
    named = run_cli(
        "list",
        "suppress",
        "--file",
        "-",
        "--column",
        "Courriel",
        workspace=workspace.root,
        stdin="Nom;Courriel\nX;a@example.com\n",
    )
    assert named.returncode == 0, named.stderr
    assert "suppressed 1 new, 0 already suppressed" in named.stdout


# -- bounded input -------------------------------------------------------------


def test_an_overlong_line_is_a_reject_with_its_own_reason(tmp_path: Path) -> None:
    path = _write(tmp_path / "l.txt", b"a@example.com\n" + b"x" * 100_000 + b"\nb@example.com\n")
    rejected: list[tuple[int, str, str]] = []
    cells = list(read_addresses(path, on_reject=lambda *r: rejected.append(r)))
    assert cells == [(1, "a@example.com"), (3, "b@example.com")]
    assert [(n, reason) for n, _, reason in rejected] == [(2, LINE_TOO_LONG)]


def _block_cells(path: Path) -> tuple[list[tuple[int, str]], list[tuple[int, str, str]]]:
    """The cells and rejects of ``path`` as the import reads them, in blocks."""
    cells, rejected = [], []
    for block in read_address_blocks(path):
        rejected += block.rejects
        if isinstance(block, readers.CellBlock):
            cells += block.rows
            continue
        assert block.lines == block.text.split("\n")
        for offset, line in enumerate(block.lines):
            cell = readers.text_cell(line)
            if cell is not None:
                cells.append((block.first + offset, cell))
    return cells, rejected


@pytest.mark.parametrize("block_chars", [5, 64, 1 << 16])
@pytest.mark.parametrize(
    "ending", ["\n", "\r\n", "mixed", "lone-cr", "long-line", "no-final-end", "nul"]
)
def test_the_block_reader_reads_what_the_line_reader_reads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, block_chars: int, ending: str
) -> None:
    """Pieces split anywhere (mid-line, between "\r" and "\n"); lines over
    MAX_LINE, lone "\r" ends and NUL bytes handed over to the line reader."""
    monkeypatch.setattr(readers, "BLOCK_CHARS", block_chars)
    rows = ["a@example.com", "  B@x.example ", "# note", "", "Name <n@x.example>", "c@d.example"]
    ends = {"mixed": ["\n", "\r\n"], "lone-cr": ["\n", "\r\n", "\r"]}.get(ending, ["\n"])
    text = "".join(row + ends[n % len(ends)] for n, row in enumerate(rows * 30))
    if ending == "\r\n":
        text = text.replace("\n", "\r\n")
    if ending == "long-line":
        text += "x" * (readers.MAX_LINE - 1) + "\n" + "y" * 9000 + "\r\nlast@example.com\n"
    if ending == "no-final-end":
        text += "last@example.com"
    if ending == "nul":
        text += "z@example.com\x00\n"
    path = _write(tmp_path / "l.txt", text.encode())
    expected: list[tuple[int, str, str]] = []
    if ending == "nul":
        with pytest.raises(InputFileError, match="NUL byte"):
            list(read_addresses(path))
        with pytest.raises(InputFileError, match="NUL byte"):
            _block_cells(path)
        return
    cells = list(read_addresses(path, on_reject=lambda *r: expected.append(r)))
    assert _block_cells(path) == (cells, expected)
    extra = {"long-line": 2, "no-final-end": 1}.get(ending, 0)  # the 4,095 x and last@
    assert len(cells) == 4 * 30 + extra


# Runs the command as its own child, so RUSAGE_CHILDREN sees that command
# (and its import worker) alone, not every process this test run started.
_MEASURE = (
    "import resource, subprocess, sys\n"
    "code = subprocess.run(sys.argv[1:]).returncode\n"
    "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, file=sys.stderr)\n"
    "sys.exit(code)\n"
)


def _peak_rss_mb(*args: str, workspace: Path) -> tuple[int, str, float]:
    """Exit code, stderr (without the measurement) and peak RSS in MB of the command."""
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("SCRUBBER_WORKSPACE", None)
    command = [sys.executable, "-m", "scrubber", "-w", str(workspace), *args]
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *command],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
        check=False,
    )
    *lines, peak_kib = proc.stderr.splitlines()
    return proc.returncode, "".join(line + "\n" for line in lines), int(peak_kib) / 1024


@pytest.mark.parametrize("kind", ["dev-zero", "no-newline", "sparse-2g", "no-newline-csv"])
def test_unbounded_inputs_end_in_one_line_with_bounded_memory(
    workspace: Workspace, tmp_path: Path, kind: str
) -> None:
    if kind == "dev-zero":
        path = Path("/dev/zero")
    elif kind == "sparse-2g":
        path = tmp_path / "sparse.txt"
        with path.open("wb") as handle:
            handle.truncate(2 << 30)  # no blocks on disk
    else:
        path = tmp_path / ("flat.csv" if kind.endswith("csv") else "flat.txt")
        path.write_bytes(b"a" * (20 << 20))
    code, stderr, peak_mb = _peak_rss_mb("list", "import", "l", str(path), workspace=workspace.root)
    assert code == 1, stderr
    assert stderr.startswith("error: "), stderr
    assert stderr.count("\n") == 1, stderr
    assert peak_mb <= 300, peak_mb
    assert run_cli("list", "ls", "--json", workspace=workspace.root).stdout.strip() == "[]"


# -- progress ------------------------------------------------------------------


def test_progress_off_a_terminal_gives_total_rate_and_time_left(
    workspace: Workspace, tmp_path: Path
) -> None:
    source = tmp_path / "l.txt"
    source.write_text("".join(f"p{i}@example.com\n" for i in range(300)))
    assert run_cli("list", "import", "l", str(source), workspace=workspace.root).returncode == 0
    env = {"SCRUBBER_PROGRESS_EVERY": "0"}
    result = run_cli("list", "hash", "l", workspace=workspace.root, env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stderr.splitlines()
    assert lines, "no progress line"
    assert all(line.startswith("hashing: ") for line in lines), lines
    assert "/300 addresses (" in lines[0]
    assert " addresses/s, " in lines[0]
    assert lines[0].endswith(" s left")
    assert "\x1b" not in result.stderr  # no control codes in a log
