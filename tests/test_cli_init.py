"""`scrubber init`: no placeholder is ever advertised, asked on a terminal,
refused off one; --json."""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from scrubber.workspace import load_workspace
from tests.support import run_cli

PUBLIC = ("--response-domain", "dni.shop.example", "--base-url", "https://dni.shop.example")


@pytest.mark.parametrize(
    ("given", "fragment"),
    [
        ((), "init needs --response-domain and --base-url: every batch advertises them"),
        (PUBLIC[:2], "init needs --base-url: every batch advertises them"),
        (PUBLIC[2:], "init needs --response-domain: every batch advertises them"),
        (("--response-domain", "localhost", *PUBLIC[2:]), "is not a domain name"),
        ((*PUBLIC[:2], "--base-url", "dni.shop.example"), "is not an http(s) URL"),
        ((*PUBLIC[:2], "--base-url", "https://dni.shop.example/?x=1"), "query or fragment"),
    ],
)
def test_off_a_terminal_missing_or_bad_values_are_refused(
    tmp_path: Path, given: tuple[str, ...], fragment: str
) -> None:
    root = tmp_path / "ws"
    result = run_cli("init", str(root), *given, stdin="")
    assert result.returncode == 2, result.stdout
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert fragment in result.stderr
    assert not root.exists()


def test_init_json_says_what_was_created(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    result = run_cli("init", str(root), *PUBLIC, "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    public = (root / "keys" / "operator.pub").read_text().strip()
    assert data["workspace"] == str(root.resolve())
    assert data["public_key"] == public and len(data["key_fingerprint"]) > 8
    assert data["response_domain"] == "dni.shop.example"
    assert data["response_base_url"] == "https://dni.shop.example"
    assert data["database_url"] == "sqlite:///scrubber.db"


def test_on_a_terminal_init_asks_and_asks_again_after_a_bad_answer(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    primary, secondary = os.openpty()
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("SCRUBBER_WORKSPACE", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "scrubber", "init", str(root)],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=secondary,
        env=env,
    )
    os.close(secondary)
    try:
        seen = _answer(primary, "Response domain", "not a domain\n")
        seen += _answer(primary, "Response domain", "DNI.Shop.Example\n")
        seen += _answer(primary, "base URL", "https://dni.shop.example/scrubber\n")
        out, _ = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(primary)
    assert proc.returncode == 0, seen
    assert "is not a domain name" in seen
    assert "Created workspace" in out.decode()
    settings = load_workspace(root).settings
    assert settings.response_domain == "dni.shop.example"
    assert settings.response_base_url == "https://dni.shop.example/scrubber"


def _answer(fd: int, prompt: str, answer: str) -> str:
    """Read the terminal until ``prompt`` shows, then type ``answer``."""
    seen = ""
    deadline = time.monotonic() + 60
    while prompt not in seen.rsplit("\n", 1)[-1]:
        assert time.monotonic() < deadline, f"no prompt {prompt!r} in {seen!r}"
        ready, _, _ = select.select([fd], [], [], 1)
        if ready:
            seen += os.read(fd, 4096).decode(errors="replace")
    os.write(fd, answer.encode())
    return seen
