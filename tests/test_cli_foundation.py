"""The foundation commands as a user runs them: init, workspace discovery,
scheme tools, list import/export/ls/show/suppress/hash, bad input, interrupts."""

from __future__ import annotations

import contextlib
import gzip
import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from scrubber.workspace import Workspace
from tests.spec_support import CANONICAL_CASES, HASH_VECTORS
from tests.support import ROOT, CliResult, run_cli, wait_until

SAMPLES = ROOT / "sample_lists"
PUBLIC = ("--response-domain", "dni.example.test", "--base-url", "http://127.0.0.1:8025")


def _run_in(cwd: Path, *args: str, env: dict[str, str] | None = None) -> CliResult:
    """Like run_cli, but from a directory and with SCRUBBER_WORKSPACE under control."""
    full_env = {k: v for k, v in os.environ.items() if k != "SCRUBBER_WORKSPACE"}
    full_env.update(env or {})
    proc = subprocess.run(
        [sys.executable, "-m", "scrubber", *args],
        cwd=cwd,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def _dump(workspace: Workspace) -> str:
    """Every row of the workspace database, to prove a command changed nothing."""
    conn = sqlite3.connect(workspace.root / "scrubber.db")
    try:
        return "\n".join(conn.iterdump())
    finally:
        conn.close()


def _assert_one_line_error(result: CliResult, fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ") and fragment in lines[0], lines[0]


def _ls(workspace: Workspace) -> dict[str, int]:
    result = run_cli("list", "ls", "--json", workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    return {row["name"]: row["addresses"] for row in json.loads(result.stdout)}


# -- init and workspace discovery ---------------------------------------------


def test_init_creates_a_complete_workspace(tmp_path: Path) -> None:
    root = tmp_path / "shop"
    result = run_cli(
        "init",
        str(root),
        "--response-domain",
        "dni.shop.example",
        "--base-url",
        "https://dni.shop.example",
    )
    assert result.returncode == 0, result.stderr
    assert "Created workspace" in result.stdout
    config = (root / "scrubber.toml").read_text()
    for key in (
        "database_url",
        "newsgroup",
        "response_domain",
        "response_base_url",
        "smtp_port",
        "http_port",
        "argon2_t",
        "argon2_m",
        "argon2_p",
        "salt_epoch_days",
        "tag_length",
    ):
        assert f"{key} =" in config
    assert 'response_domain = "dni.shop.example"' in config
    private = root / "keys" / "operator.key"
    assert private.stat().st_mode & 0o777 == 0o600
    assert private.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    assert len((root / "keys" / "operator.pub").read_text().strip()) == 44
    conn = sqlite3.connect(root / "scrubber.db")
    try:
        version = conn.execute("SELECT version_num FROM alembic_version").fetchall()
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()
    assert len(version) == 1
    assert {"lists", "addresses", "list_entries", "suppressions", "digests"} <= tables


def test_init_refuses_an_existing_workspace_and_keeps_the_key(workspace: Workspace) -> None:
    private = workspace.root / "keys" / "operator.key"
    before = private.read_bytes()
    result = run_cli("init", str(workspace.root))
    _assert_one_line_error(result, "already a workspace")
    assert private.read_bytes() == before


def test_init_never_overwrites_a_stray_key(tmp_path: Path) -> None:
    root = tmp_path / "half"
    (root / "keys").mkdir(parents=True)
    (root / "keys" / "operator.key").write_bytes(b"precious")
    result = run_cli("init", str(root))
    _assert_one_line_error(result, "refusing to overwrite a key")
    assert (root / "keys" / "operator.key").read_bytes() == b"precious"
    assert not (root / "scrubber.toml").exists()


def test_workspace_found_by_option_env_and_cwd(workspace: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("a@example.com\n")
    assert run_cli("list", "import", "l", str(source), workspace=workspace.root).returncode == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    by_option = _run_in(elsewhere, "--workspace", str(workspace.root), "list", "ls")
    by_env = _run_in(elsewhere, "list", "ls", env={"SCRUBBER_WORKSPACE": str(workspace.root)})
    by_cwd = _run_in(workspace.root, "list", "ls")
    for result in (by_option, by_env, by_cwd):
        assert result.returncode == 0, result.stderr
        assert "l " in result.stdout or "│ l" in result.stdout
    # --workspace wins over the environment.
    wrong = _run_in(
        elsewhere,
        "--workspace",
        str(workspace.root),
        "list",
        "ls",
        env={"SCRUBBER_WORKSPACE": str(elsewhere)},
    )
    assert wrong.returncode == 0, wrong.stderr


def test_missing_workspace_is_one_line(tmp_path: Path) -> None:
    _assert_one_line_error(_run_in(tmp_path, "list", "ls"), "no workspace")
    result = _run_in(tmp_path, "list", "ls", env={"SCRUBBER_WORKSPACE": str(tmp_path / "no")})
    _assert_one_line_error(result, "no workspace")


# -- scheme interop tools ------------------------------------------------------


def test_scheme_canonicalize_matches_the_spec_vectors() -> None:
    # Inputs with line breaks inside cannot travel one a line.
    cases = [(a, e) for a, e in CANONICAL_CASES if "\n" not in a and "\r" not in a]
    stdin = "".join(a + "\n" for a, _ in cases).encode("utf-8", "surrogateescape")
    proc = subprocess.run(
        [sys.executable, "-m", "scrubber", "scheme", "canonicalize"],
        input=stdin,
        capture_output=True,
        check=True,
    )
    out = proc.stdout.decode("utf-8").split("\n")
    assert out[-1] == "" and len(out) - 1 == len(cases)
    for line, (_, expected) in zip(out, cases, strict=False):
        if expected.startswith("REJECT "):
            assert line == "REJECT\t" + expected.removeprefix("REJECT ")
        else:
            assert line == json.loads(expected)


def test_scheme_hash_matches_the_spec_vectors() -> None:
    for v in HASH_VECTORS:
        result = run_cli(
            "scheme",
            "hash",
            "--salt",
            v.salt,
            "--t",
            str(v.t),
            "--m",
            str(v.m),
            "--p",
            str(v.p),
            "--tag-length",
            str(v.tag_length),
            stdin=v.input + "\nnot-an-address\n",
        )
        assert result.returncode == 0, result.stderr
        assert result.stdout == (f"{v.canonical}\t{v.h}\t{v.tag}\t{v.proof}\nREJECT\tno-at-sign\n")


def test_scheme_hash_bad_salt_is_one_line() -> None:
    _assert_one_line_error(run_cli("scheme", "hash", "--salt", "abcd", stdin="a@b.c\n"), "salt")


# -- list commands --------------------------------------------------------------


def test_import_text_csv_gz_and_column(workspace: Workspace, tmp_path: Path) -> None:
    text = tmp_path / "a.txt"
    text.write_text("Ann@Example.com\nann+x@example.com\nbroken\n")
    result = run_cli("list", "import", "mix", str(text), workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    assert "added" in result.stdout and "rejected lines:" in result.stdout
    rejects = Path(result.stdout.split("rejected lines:")[1].split()[0])
    assert rejects.read_text().splitlines()[1].endswith(",3,broken,no-at-sign")
    csv_gz = tmp_path / "b.csv.gz"
    csv_gz.write_bytes(gzip.compress(b"name,mail_to\nBob,bob@example.org\nAnn,ann@example.com\n"))
    result = run_cli(
        "list", "import", "mix", str(csv_gz), "--column", "mail_to", workspace=workspace.root
    )
    assert result.returncode == 0, result.stderr
    assert _ls(workspace) == {"mix": 2}
    result = run_cli(
        "list", "import", "customers", str(SAMPLES / "customers.csv.gz"), workspace=workspace.root
    )
    assert result.returncode == 0, result.stderr
    assert _ls(workspace) == {"customers": 10_000, "mix": 2}


def test_reimport_via_cli_adds_nothing(workspace: Workspace) -> None:
    sample = str(SAMPLES / "newsletter.txt")
    assert run_cli("list", "import", "news", sample, workspace=workspace.root).returncode == 0
    before = _ls(workspace)
    again = run_cli("list", "import", "news", sample, workspace=workspace.root)
    assert again.returncode == 0
    assert "│ added               │ 0" in again.stdout or " 0 " in again.stdout.split("added")[-1]
    assert _ls(workspace) == before


def test_export_show_suppress(workspace: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("Ann@Example.com\nbob@example.org\ncarol@example.net\n")
    run_cli("list", "import", "l", str(source), workspace=workspace.root)
    other = tmp_path / "b.txt"
    other.write_text("ann+other@example.com\ndave@example.com\n")
    run_cli("list", "import", "other", str(other), workspace=workspace.root)
    result = run_cli("list", "suppress", "ANN@example.com", workspace=workspace.root)
    assert result.returncode == 0 and "suppressed 1 new" in result.stdout
    opt_outs = tmp_path / "unsub.txt"
    opt_outs.write_text("carol@example.net\nann@example.com\n")
    result = run_cli("list", "suppress", "--file", str(opt_outs), workspace=workspace.root)
    assert "suppressed 1 new, 1 already suppressed" in result.stdout
    exported = run_cli("list", "export", "l", workspace=workspace.root)
    assert exported.stdout == "bob@example.org\n"
    out = tmp_path / "clean.txt"
    result = run_cli("list", "export", "other", "-o", str(out), workspace=workspace.root)
    assert result.returncode == 0 and out.read_text() == "dave@example.com\n"
    show = run_cli("list", "show", "l", workspace=workspace.root)
    assert "3 addresses, 2 suppressed" in show.stdout and str(source) in show.stdout
    ls = run_cli("list", "ls", workspace=workspace.root)
    for header in ("name", "addresses", "suppressed", "last import"):
        assert header in ls.stdout
    # No full address is echoed in the suppress output.
    assert "@example" not in result.stdout + result.stderr


def test_list_hash_second_run_hashes_nothing(workspace: Workspace, tmp_path: Path) -> None:
    source = tmp_path / "a.txt"
    source.write_text("".join(f"u{n}@example.com\n" for n in range(20)))
    run_cli("list", "import", "l", str(source), workspace=workspace.root)
    first = run_cli("list", "hash", "l", workspace=workspace.root)
    assert first.returncode == 0, first.stderr
    assert "20 addresses: 0 cached, 20 hashed" in first.stdout
    second = run_cli("list", "hash", "l", workspace=workspace.root)
    assert "20 addresses: 20 cached, 0 hashed" in second.stdout
    source.write_text("".join(f"u{n}@example.com\n" for n in range(25)))
    run_cli("list", "import", "l", str(source), workspace=workspace.root)
    third = run_cli("list", "hash", "l", "--executor", "processes", workspace=workspace.root)
    assert "25 addresses: 20 cached, 5 hashed" in third.stdout, third.stderr


# -- bad input: one line, non-zero, database unchanged ------------------------------


@pytest.fixture
def seeded(workspace: Workspace, tmp_path: Path) -> Workspace:
    source = tmp_path / "seed.txt"
    source.write_text("ann@example.com\nbob@example.org\n")
    assert run_cli("list", "import", "l", str(source), workspace=workspace.root).returncode == 0
    return workspace


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["list", "import", "l", "{tmp}/missing.txt"], "no such file"),
        (["list", "import", "l", "{tmp}"], "directory"),
        (["list", "import", "l", "{tmp}/ok.txt", "{tmp}/garbage.bin"], "not UTF-8"),
        (["list", "import", "l", "{tmp}/ok.txt", "{tmp}/nocolumn.csv"], "no address column"),
        (["list", "import", "new", "{tmp}/ok.csv", "--column", "nope"], "no column named"),
        (["list", "export", "nope"], "no list named"),
        (["list", "export", "nope", "-o", "{tmp}/out.txt"], "no list named"),
        (["list", "show", "nope"], "no list named"),
        (["list", "hash", "nope"], "no list named"),
        (["list", "suppress", "--file", "{tmp}/missing.txt"], "cannot read"),
        (["list", "suppress", "--file", "{tmp}/garbage.bin"], "not UTF-8"),
    ],
)
def test_bad_input_leaves_the_database_unchanged(
    seeded: Workspace, tmp_path: Path, argv: list[str], fragment: str
) -> None:
    (tmp_path / "ok.txt").write_text("new@example.com\n")
    (tmp_path / "ok.csv").write_text("email\nnew@example.com\n")
    (tmp_path / "garbage.bin").write_bytes(os.urandom(4096) + b"\xff\xfe")
    (tmp_path / "nocolumn.csv").write_text("name,city\nAnn,Paris\nBob,Rome\n")
    before = _dump(seeded)
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    result = run_cli(*args, workspace=seeded.root)
    _assert_one_line_error(result, fragment)
    assert _dump(seeded) == before
    assert not (tmp_path / "out.txt").exists() and not list(tmp_path.glob("*.part"))


# -- interrupted imports: before or after, never half ----------------------------


def _big_list(path: Path, lines: int) -> Path:
    with path.open("w") as out:
        for n in range(lines):
            out.write(f"user.{n}@mail{n % 500}.example\n" if n % 97 else f"bad line {n}\n")
    return path


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["SIGKILL", "SIGINT"])
def test_interrupted_import_leaves_the_list_as_it_was(
    seeded: Workspace, tmp_path: Path, sig: signal.Signals
) -> None:
    big = _big_list(tmp_path / "big.txt", 600_000)
    before = _dump(seeded)
    rejects_dir = seeded.root / "rejects"
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrubber", "-w", str(seeded.root), "list", "import", "l", str(big)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )

    # Rejected lines reach the rejects file chunk by chunk, each chunk's before
    # its rows are staged: once the file holds some, the import's transaction
    # is open with rows in it (its buffer is flushed about 3 % into this list).
    def staging() -> bool:
        if proc.poll() is not None:
            return True
        with contextlib.suppress(FileNotFoundError):  # moved into place meanwhile
            return any(p.stat().st_size > 0 for p in rejects_dir.glob(".l-*.part"))
        return False

    assert wait_until(staging, timeout=60), "the import did not begin"
    assert proc.poll() is None, "import ended before it could be interrupted"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    if sig == signal.SIGINT:
        assert proc.returncode == 130
        assert "Traceback" not in stderr
        assert stderr.strip() in ("aborted", "interrupted; nothing partial was stored")
        assert not list(rejects_dir.glob(".*"))
    else:
        assert proc.returncode == -signal.SIGKILL
    assert _dump(seeded) == before
    assert _ls(seeded) == {"l": 2}
    # The interrupted import can simply be run again.
    again = run_cli("list", "import", "l", str(big), workspace=seeded.root, timeout=300)
    assert again.returncode == 0, again.stderr
    assert _ls(seeded) == {"l": 2 + 600_000 - len(range(0, 600_000, 97))}


def test_init_with_a_bad_database_url_leaves_no_key(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    result = run_cli("init", str(root), "--database-url", "nosuchdialect://x", *PUBLIC)
    _assert_one_line_error(result, "cannot use database URL")
    assert not (root / "keys").exists() and not (root / "scrubber.toml").exists()
    assert run_cli("init", str(root), *PUBLIC).returncode == 0


@pytest.mark.parametrize(
    ("config", "fragment"),
    [
        ("[scrubber\n", "not valid TOML"),
        ("[other]\nx = 1\n", "no [scrubber] table"),
        ("[scrubber]\nfoo = 1\n", "unknown setting 'foo'"),
        ('[scrubber]\nargon2_t = "two"\n', "must be int"),
        ("[scrubber]\nargon2_m = 4\n", "invalid Argon2 parameters"),
        ("[scrubber]\ntag_length = 40\n", "tag length"),
    ],
)
def test_broken_config_is_one_line(tmp_path: Path, config: str, fragment: str) -> None:
    (tmp_path / "scrubber.toml").write_text(config)
    _assert_one_line_error(run_cli("list", "ls", workspace=tmp_path), fragment)
