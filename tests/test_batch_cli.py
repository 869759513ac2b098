"""batch create|post|ls|show through the CLI, with real hashing, to the spool transport."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from scrubber import scheme
from scrubber.article import parse_article, parse_subject, split_article
from scrubber.config import Settings
from scrubber.transport.spool import spool_name
from scrubber.workspace import Workspace, init_workspace
from tests.batch_support import batch_row, synthetic_batch
from tests.support import run_cli

ADDRESSES = [f"person{i}@example.com" for i in range(40)]


@pytest.fixture
def listed(workspace: Workspace, tmp_path: Path) -> Workspace:
    source = tmp_path / "customers.txt"
    source.write_text("\n".join(ADDRESSES) + "\n", encoding="utf-8")
    result = run_cli("list", "import", "customers", str(source), workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    return workspace


def create(ws: Workspace, *args: str) -> str:
    result = run_cli("batch", "create", "customers", *args, workspace=ws.root)
    assert result.returncode == 0, result.stderr
    listing = run_cli("batch", "ls", "--json", workspace=ws.root)
    return str(json.loads(listing.stdout)[-1]["id"])


def spool_article(ws: Workspace, message_id: str) -> bytes:
    data = (ws.root / "spool" / spool_name(message_id)).read_bytes()
    header, _, article = data.partition(b"\n")
    assert header == b"#! rnews %d" % len(article)
    return article


def test_create_then_post_to_the_default_spool_publishes_every_tag(listed: Workspace) -> None:
    batch_id = create(listed, "--protocol", "1", "--tag-length", "6", "--group", "alt.dni.test")
    batch = batch_row(listed, batch_id)
    assert (batch.count, batch.parts_total, batch.tag_length) == (40, 1, 6)

    result = run_cli("batch", "post", batch_id, workspace=listed.root)
    assert result.returncode == 0, result.stderr
    message_id = f"<dni.{batch_id}.1@{listed.settings.response_domain}>"
    headers, body = split_article(spool_article(listed, message_id))
    parsed = parse_article(body)

    params = scheme.Params(t=batch.t, m=batch.m, p=batch.p, tag_length=6)
    expected = sorted(
        scheme.digest(scheme.canonicalize(a), batch.salt, params).tag for a in ADDRESSES
    )
    assert parsed.tags == expected
    assert parsed.meta.respond == batch.respond
    assert headers["newsgroups"] == "alt.dni.test"
    info = parse_subject(headers["subject"])
    assert info is not None and (info.first_tag, info.last_tag) == (expected[0], expected[-1])

    again = run_cli("batch", "post", batch_id, workspace=listed.root)
    assert again.returncode == 0 and "already posted" in again.stdout


def test_suppressed_addresses_are_left_out(listed: Workspace) -> None:
    result = run_cli("list", "suppress", ADDRESSES[0], ADDRESSES[1], workspace=listed.root)
    assert result.returncode == 0, result.stderr
    batch_id = create(listed)
    assert batch_row(listed, batch_id).count == len(ADDRESSES) - 2


def test_show_and_ls_report_parts_and_status(listed: Workspace) -> None:
    batch_id = create(listed)
    shown = json.loads(run_cli("batch", "show", batch_id, "--json", workspace=listed.root).stdout)
    assert shown["id"] == batch_id and shown["parts_posted"] == 0
    assert [p["posts"] for p in shown["parts"]] == [[]] and shown["servers"] == {}
    run_cli("batch", "post", batch_id, workspace=listed.root)
    shown = json.loads(run_cli("batch", "show", batch_id, "--json", workspace=listed.root).stdout)
    assert shown["parts_posted"] == 1
    spool = f"spool:{listed.root / 'spool'}"
    assert [p["server"] for p in shown["parts"][0]["posts"]] == [spool]
    assert shown["servers"] == {spool: 1}
    table = run_cli("batch", "show", batch_id, workspace=listed.root)
    assert shown["parts"][0]["message_id"] in table.stdout
    listing = run_cli("batch", "ls", workspace=listed.root)
    assert batch_id in listing.stdout and "1/1 posted" in listing.stdout


def test_create_json_names_the_new_batch(listed: Workspace) -> None:
    result = run_cli("batch", "create", "customers", "--json", workspace=listed.root)
    assert result.returncode == 0, result.stderr
    created = json.loads(result.stdout)
    listing = json.loads(run_cli("batch", "ls", "--json", workspace=listed.root).stdout)
    assert [b["id"] for b in listing] == [created["id"]]
    assert created["addresses"] == len(ADDRESSES)
    assert created["parts_posted"] == 0


def test_unknown_batch_is_a_one_line_error(listed: Workspace) -> None:
    for command in (["post", "nope"], ["show", "nope"]):
        result = run_cli("batch", *command, workspace=listed.root)
        assert result.returncode != 0
        assert result.stderr.strip() == "error: no batch 'nope' (see 'scrubber batch ls')"


def test_list_empty_after_suppression_stores_nothing(listed: Workspace) -> None:
    assert run_cli("list", "suppress", *ADDRESSES, workspace=listed.root).returncode == 0
    result = run_cli("batch", "create", "customers", workspace=listed.root)
    assert result.returncode != 0
    assert "nothing to batch" in result.stderr and "Traceback" not in result.stderr
    assert json.loads(run_cli("batch", "ls", "--json", workspace=listed.root).stdout) == []


def test_spool_that_is_a_file_fails_and_marks_nothing_posted(
    listed: Workspace, tmp_path: Path
) -> None:
    batch_id = create(listed)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    result = run_cli(
        "batch", "post", batch_id, "--server", f"spool:{blocker}", workspace=listed.root
    )
    assert result.returncode != 0
    assert (
        result.stderr.startswith("error: cannot create spool") and "Traceback" not in result.stderr
    )
    shown = json.loads(run_cli("batch", "show", batch_id, "--json", workspace=listed.root).stdout)
    assert shown["parts_posted"] == 0


def test_bad_server_url_and_tag_length_are_usage_errors(listed: Workspace) -> None:
    batch_id = create(listed)
    result = run_cli(
        "batch", "post", batch_id, "--server", "http://u:secret@x", workspace=listed.root
    )
    assert result.returncode == 2 and "secret" not in result.stderr
    result = run_cli("batch", "create", "customers", "--tag-length", "3", workspace=listed.root)
    assert result.returncode == 2
    result = run_cli("batch", "create", "customers", "--tag-length", "6", workspace=listed.root)
    assert result.returncode == 2 and "--protocol 1 only" in result.stderr


@pytest.mark.postgres
def test_parts_post_from_postgresql(tmp_path: Path, pg_url: str) -> None:
    ws = init_workspace(tmp_path / "pg", Settings(database_url=pg_url))
    batch_id, tags = synthetic_batch(ws, 150_000, tag_length=12)
    result = run_cli("batch", "post", batch_id, workspace=ws.root)
    assert result.returncode == 0, result.stderr
    parts = batch_row(ws, batch_id).parts_total
    assert parts >= 2
    seen: list[bytes] = []
    for part in range(1, parts + 1):
        message_id = f"<dni.{batch_id}.{part}@{ws.settings.response_domain}>"
        seen.extend(parse_article(split_article(spool_article(ws, message_id))[1]).tags)
    assert seen == sorted(tags)
