"""v2 yEnc parts through the real INN2, byte for byte: posted over NNTP, and
spooled then fed with rnews; read back over NNTP and by the responder's source."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from scrubber import article
from scrubber.batch import parts
from scrubber.store.models import Batch, BatchPart
from scrubber.transport.nntp import NntpSource
from scrubber.transport.spool import spool_name
from scrubber.workspace import Workspace, load_key, open_store
from tests.batch_support import TEST_GROUP, fetch_article, nntp_connect, synthetic_batch
from tests.support import require_service, run_cli

pytestmark = pytest.mark.inn


@pytest.fixture
def nntp() -> str:
    return require_service("SCRUBBER_TEST_NNTP", "INN2")


def rendered_bodies(ws: Workspace, batch_id: str) -> dict[str, bytes]:
    """Message-ID -> body of every part, as the sender renders it."""
    store, key = open_store(ws), load_key(ws)
    try:
        with store.read() as session:
            batch = session.get(Batch, batch_id)
            assert batch is not None
            rows = session.query(BatchPart).filter_by(batch_id=batch_id).order_by(BatchPart.part)
            total = parts.total_tags(session, batch_id)
            return {
                row.message_id: article.split_article(
                    parts.render(
                        batch, row.part, batch.parts_total, total, tags, key, batch.created_at
                    )
                )[1]
                for row, tags in parts.pending_tags(session, batch, list(rows))
            }
    finally:
        store.close()


def assert_served_exactly(nntp: str, expected: dict[str, bytes]) -> None:
    conn = nntp_connect(nntp)
    source = NntpSource(nntp, TEST_GROUP)
    try:
        for message_id, body in expected.items():
            _, served = fetch_article(conn, message_id)
            assert served + b"\n" == body, message_id
            entry = next(e for e in source.overview(None)[0] if e.message_id == message_id)
            assert source.body(entry) == body
            assert article.parse_article(source.body(entry)).meta.v2 is not None
    finally:
        source.close()
        conn.quit()


def test_yenc_parts_posted_over_nntp_come_back_byte_exact(workspace: Workspace, nntp: str) -> None:
    batch_id, _ = synthetic_batch(workspace, 30_000, protocol=2)
    expected = rendered_bodies(workspace, batch_id)
    assert all(b"=ybegin" in body and not body.isascii() for body in expected.values())
    result = run_cli("batch", "post", batch_id, "--server", nntp, workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    assert_served_exactly(nntp, expected)


def test_yenc_parts_fed_from_the_spool_with_rnews_come_back_byte_exact(
    workspace: Workspace, nntp: str, tmp_path: Path
) -> None:
    rnews = shutil.which("rnews") or require_service("SCRUBBER_TEST_RNEWS", "INN2's rnews")
    batch_id, _ = synthetic_batch(workspace, 30_000, protocol=2)
    expected = rendered_bodies(workspace, batch_id)
    spool = tmp_path / "spool"
    result = run_cli(
        "batch", "post", batch_id, "--server", f"spool:{spool}", workspace=workspace.root
    )
    assert result.returncode == 0, result.stderr
    for message_id in expected:
        with (spool / spool_name(message_id)).open("rb") as handle:
            fed = subprocess.run(
                [rnews, "-r", "127.0.0.1"], stdin=handle, capture_output=True, timeout=60
            )
        assert fed.returncode == 0, fed.stderr
    assert_served_exactly(nntp, expected)
