"""Helpers any test (or bench) may import: the CLI as a user runs it, free
ports, services that must be there under CI, and waiting for a condition by
polling it (never by a guessed sleep). Fixtures live in conftest.py."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def end_process(proc: subprocess.Popen[Any], timeout: float = 10) -> None:
    """SIGTERM, then SIGKILL if it is still there after ``timeout`` seconds; reaped."""
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def wait_until(condition: Callable[[], object], timeout: float = 30, every: float = 0.02) -> bool:
    """Poll ``condition`` until it is true (True) or ``timeout`` seconds pass
    (False): the caller asserts, with its own message."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        time.sleep(every)
    return True


async def wait_until_async(
    condition: Callable[[], object], timeout: float = 30, every: float = 0.01
) -> bool:
    """``wait_until`` inside an event loop: the loop runs between the polls."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(every)
    return True


def require_service(env_var: str, what: str) -> str:
    """The service URL from the environment; skip locally, fail under CI."""
    value = os.environ.get(env_var)
    if value:
        return value
    message = f"{what} not available: set {env_var} (run 'make services')"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(message)
    pytest.skip(message)


@dataclass
class CliResult:
    returncode: int
    stdout: str
    stderr: str


def run_cli(
    *args: str,
    workspace: Path | None = None,
    stdin: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 120,
) -> CliResult:
    """Run `python -m scrubber ARGS` in a subprocess, as a user would."""
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    full_env.pop("SCRUBBER_WORKSPACE", None)
    command = [sys.executable, "-m", "scrubber"]
    if workspace is not None:
        command += ["--workspace", str(workspace)]
    proc = subprocess.run(
        [*command, *args],
        input=stdin,
        capture_output=True,
        text=True,
        env=full_env,
        timeout=timeout,
        check=False,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr)
