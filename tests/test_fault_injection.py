"""Faults injected with real processes: the news server going away mid-post, the
disk under the spool full (a small tmpfs)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from scrubber.article import ParsedArticle, parse_article, split_article
from scrubber.transport.spool import spool_name
from scrubber.workspace import Workspace
from tests.batch_support import (
    part_numbers_on,
    parts_of,
    servers_of,
    synthetic_batch,
)
from tests.support import require_service, run_cli

pytestmark = pytest.mark.inn
RELAY = Path(__file__).with_name("tcp_relay.py")


@pytest.fixture
def nntp() -> str:
    return require_service("SCRUBBER_TEST_NNTP", "INN2")


@pytest.fixture
def dying_server(nntp: str) -> Iterator[Callable[[int], tuple[str, subprocess.Popen[str]]]]:
    """Start a relay to the INN2 that dies once clients sent it ``cut`` bytes;
    gives its nntp:// URL and process."""
    target = urlsplit(nntp)
    started: list[subprocess.Popen[str]] = []

    def start(cut: int) -> tuple[str, subprocess.Popen[str]]:
        command = [sys.executable, str(RELAY), target.hostname or "", str(target.port or 119)]
        relay = subprocess.Popen([*command, str(cut)], stdout=subprocess.PIPE, text=True)
        started.append(relay)
        assert relay.stdout is not None
        ready = relay.stdout.readline().split()
        assert ready[0] == "ready", ready
        return f"nntp://127.0.0.1:{ready[1]}", relay

    yield start
    for relay in started:
        relay.kill()
        relay.wait()
        assert relay.stdout is not None
        relay.stdout.close()


def sizes(ws: Workspace, batch_id: str) -> list[int]:
    return [p.size for p in parts_of(ws, batch_id)]


def test_server_gone_mid_post_is_one_line_and_a_rerun_posts_only_the_rest(
    workspace: Workspace,
    nntp: str,
    dying_server: Callable[[int], tuple[str, subprocess.Popen[str]]],
) -> None:
    batch_id, _ = synthetic_batch(workspace, 90_000, tag_length=16)
    first, second, *_ = sizes(workspace, batch_id)
    url, relay = dying_server(first + second // 2)  # dies half-way through part 2
    cut = run_cli(
        "batch", "post", batch_id, "--server", url, "--retries", "1", workspace=workspace.root
    )
    assert relay.wait(timeout=60) == 0  # it did die
    assert cut.returncode == 1
    lines = cut.stderr.strip().splitlines()
    assert lines == [f"error: cannot reach {url}: Connection refused (gave up after 2 attempts)"]
    marked = [bool(servers) for servers in servers_of(workspace, batch_id)]
    assert marked[0] and not any(marked[1:]) and len(marked) >= 3

    # Straight to the INN2 the relay fed: another server name, so part 1
    # is not marked there, but the server says it has it already.
    rerun = run_cli("batch", "post", batch_id, "--server", nntp, workspace=workspace.root)
    assert rerun.returncode == 0, rerun.stderr
    assert f"{len(marked) - 1} posted, 1 already on the server, 0 posted earlier" in rerun.stdout
    # Each part exactly once.
    assert part_numbers_on(nntp, batch_id) == list(range(1, len(marked) + 1))


def test_spool_disk_full_is_one_line_keeps_whole_files_and_resumes(
    workspace: Workspace, small_disk: Callable[[int], Path]
) -> None:
    batch_id, tags = synthetic_batch(workspace, 90_000, tag_length=16)
    first, second, third = sizes(workspace, batch_id)
    disk = small_disk(first + second + third // 2)  # two parts fit, the third does not
    spool = disk / "spool"
    full = run_cli(
        "batch", "post", batch_id, "--server", f"spool:{spool}", workspace=workspace.root
    )
    assert full.returncode == 1
    assert full.stderr.strip().splitlines() == [
        f"error: cannot write to spool {spool}: No space left on device"
    ]
    written = sorted(spool.iterdir())
    marks = zip(parts_of(workspace, batch_id), servers_of(workspace, batch_id), strict=True)
    marked = [p for p, servers in marks if servers]
    assert len(written) == len(marked) == 2  # whole files only, no temporary left behind
    assert [w.name for w in written] == sorted(spool_name(p.message_id) for p in marked)

    subprocess.run(["mount", "-o", "remount,size=8m", str(disk)], check=True)
    again = run_cli(
        "batch", "post", batch_id, "--server", f"spool:{spool}", workspace=workspace.root
    )
    assert again.returncode == 0, again.stderr
    assert "1 posted, 0 already on the server, 2 posted earlier" in again.stdout
    seen = [
        tag
        for path in sorted(spool.iterdir(), key=lambda p: parse_spooled(p).meta.part)
        for tag in parse_spooled(path).tags
    ]
    assert seen == sorted(tags)  # every article whole and verified, each tag once


def parse_spooled(path: Path) -> ParsedArticle:
    raw = path.read_bytes().partition(b"\n")[2]  # drop "#! rnews N"
    return parse_article(split_article(raw)[1])
