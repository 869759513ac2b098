"""Protocol 2 batches, sender side: unlinkable values, Golomb-coded parts, v1 on request."""

from __future__ import annotations

import dataclasses
import hashlib
from pathlib import Path

import pytest
from sqlalchemy import LargeBinary, literal, select

from scrubber import article, hashing, scheme
from scrubber.batch import create, parts
from scrubber.config import Settings
from scrubber.lists import import_files
from scrubber.store import Store
from scrubber.store.models import Batch, BatchEntry, BatchPart, CachedDigest
from scrubber.store.queries import get_list
from scrubber.store.types import utcnow
from scrubber.workspace import Workspace, init_workspace, load_key, open_store

CHEAP = Settings(argon2_t=1, argon2_m=64)


def listed_workspace(tmp_path: Path, count: int) -> Workspace:
    ws = init_workspace(tmp_path / "ws", CHEAP)
    source = tmp_path / "list.txt"
    source.write_text("".join(f"user.{n}@mail{n % 7}.example\n" for n in range(count)))
    store = open_store(ws)
    try:
        import_files(store, "customers", [source], rejects_path=tmp_path / "rejects.csv")
    finally:
        store.close()
    return ws


def make_batch(ws: Workspace, **options: object) -> tuple[Batch, list[bytes]]:
    """Create a batch of ``customers``; return its row and its parts' rendered bodies."""
    store = open_store(ws)
    key = load_key(ws)
    executor = hashing.ThreadExecutor(1)
    try:
        request = create.request_from_settings(ws.settings, ["customers"], **options)  # type: ignore[arg-type]
        batch = create.create_batch(store, ws.settings, key, request, executor).batch
        with store.read() as session:
            row = session.get(Batch, batch.id)
            assert row is not None
            rows = session.query(BatchPart).filter_by(batch_id=batch.id).order_by(BatchPart.part)
            total = parts.total_tags(session, row.id)
            bodies = [
                article.split_article(
                    parts.render(row, part.part, row.parts_total, total, tags, key, row.created_at)
                )[1]
                for part, tags in parts.pending_tags(session, row, list(rows))
            ]
        return row, bodies
    finally:
        executor.close()
        store.close()


def digests(ws: Workspace, batch: Batch) -> dict[int, bytes]:
    """address id -> H of the batch's epoch, from the sender's cache."""
    store = open_store(ws)
    try:
        with store.read() as session:
            from scrubber.store.models import CachedDigest

            return {
                d.address_id: d.h
                for d in session.query(CachedDigest).filter_by(epoch_id=batch.epoch_id)
            }
    finally:
        store.close()


def test_default_batch_is_v2_and_publishes_each_address_value(tmp_path: Path) -> None:
    ws = listed_workspace(tmp_path, 300)
    batch, bodies = make_batch(ws)
    assert (batch.protocol, batch.encoding, batch.gcs_p, batch.gcs_m) == (2, "yenc", 19, 784931)
    assert batch.nonce is not None and len(batch.nonce) == scheme.NONCE_LEN
    parsed = [article.parse_article(body) for body in bodies]
    assert all(p.meta.scheme == scheme.SCHEME_V2 and p.meta.total == 300 for p in parsed)
    published = sorted(t for p in parsed for t in p.tags)
    expected = sorted(set(scheme_values(digests(ws, batch), batch.nonce, 300).values()))
    assert published == expected
    # The proof is H[16:32], whatever the protocol: the listener looks it up in
    # the epoch's digests, for the batch's members, which are every address.
    store = open_store(ws)
    try:
        with store.read() as session:
            members = {e.address_id for e in session.query(BatchEntry).filter_by(batch_id=batch.id)}
            stored = {
                d.address_id: d.proof
                for d in session.query(CachedDigest).filter_by(epoch_id=batch.epoch_id)
            }
    finally:
        store.close()
    hashed = digests(ws, batch)
    assert members == set(hashed)
    assert stored == {a: h[scheme.PROOF_SLICE] for a, h in hashed.items()}


def test_two_batches_of_one_list_in_one_epoch_share_no_more_values_than_chance(
    tmp_path: Path,
) -> None:
    ws = listed_workspace(tmp_path, 3000)
    first, first_bodies = make_batch(ws)
    second, second_bodies = make_batch(ws)
    assert first.epoch_id == second.epoch_id and first.nonce != second.nonce
    one = {t for b in first_bodies for t in article.parse_article(b).tags}
    two = {t for b in second_bodies for t in article.parse_article(b).tags}
    assert len(one) > 2990 and len(two) > 2990
    # By chance about N / M = 3000 / 784931 values coincide; v1 shares all 3000.
    assert len(one & two) <= 2
    _, bodies_a = make_batch(ws, protocol=1)
    _, bodies_b = make_batch(ws, protocol=1)
    tags_a = {t for b in bodies_a for t in article.parse_article(b).tags}
    tags_b = {t for b in bodies_b for t in article.parse_article(b).tags}
    assert tags_a == tags_b and len(tags_a) == 3000


def test_protocol_1_still_writes_v1_articles(tmp_path: Path) -> None:
    ws = listed_workspace(tmp_path, 50)
    batch, bodies = make_batch(ws, protocol=1, tag_length=6)
    assert (batch.protocol, batch.nonce, batch.tag_length) == (1, None, 6)
    parsed = article.parse_article(bodies[0])
    assert parsed.meta.scheme == scheme.SCHEME_NAME and parsed.meta.v2 is None
    assert sorted(parsed.tags) == sorted(h[:6] for h in digests(ws, batch).values())


def test_base64_encoding_is_7_bit(tmp_path: Path) -> None:
    ws = listed_workspace(tmp_path, 200)
    batch, bodies = make_batch(ws, encoding="base64")
    assert batch.encoding == "base64"
    assert all(body.isascii() for body in bodies)
    assert article.parse_article(bodies[0]).meta.v2 == article.V2Fields(
        nonce=batch.nonce or b"", gcs=scheme.Gcs(), encoding="base64"
    )


def test_values_computed_by_sqlite_match_the_scheme_in_a_re_batch(tmp_path: Path) -> None:
    """The re-batch path: digests cached, every value computed inside SQLite."""
    ws = listed_workspace(tmp_path, 200)
    make_batch(ws)
    again, _ = make_batch(ws)
    assert again.nonce is not None
    assert stored_values(ws, again.id) == scheme_values(digests(ws, again), again.nonce, 200)


def scheme_values(digests: dict[int, bytes], nonce: bytes, total: int) -> dict[int, bytes]:
    """address id -> its v2 value by the scheme itself (default GCS parameters)."""
    gcs = scheme.Gcs()
    return {
        a: scheme.item_bytes(scheme.item_value(h, nonce, total, gcs)) for a, h in digests.items()
    }


def stored_values(ws: Workspace, batch_id: str) -> dict[int, bytes]:
    with open_store(ws) as store, store.read() as session:
        rows = session.query(BatchEntry).filter_by(batch_id=batch_id)
        return {e.address_id: e.tag for e in rows}


@pytest.mark.postgres
def test_a_v2_batch_on_postgresql_stores_the_scheme_values(pg_url: str, tmp_path: Path) -> None:
    ws = init_workspace(tmp_path / "ws", dataclasses.replace(CHEAP, database_url=pg_url))
    source = tmp_path / "list.txt"
    source.write_text("".join(f"user.{n}@mail{n % 7}.example\n" for n in range(150)))
    with open_store(ws) as store:
        import_files(store, "customers", [source], rejects_path=tmp_path / "rejects.csv")
    batch, bodies = make_batch(ws)
    assert batch.nonce is not None
    expected = scheme_values(digests(ws, batch), batch.nonce, 150)
    assert stored_values(ws, batch.id) == expected
    published = sorted(t for b in bodies for t in article.parse_article(b).tags)
    assert published == sorted(set(expected.values()))


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("total", "m"), [(1, 1), (150, scheme.GCS_M), (scheme.MAX_TOTAL, scheme.MAX_GCS_M)]
)
def test_postgresql_value_arithmetic_matches_the_scheme(pg_url: str, total: int, m: int) -> None:
    """Down to the last bit, including products of 2**63 and more (the
    largest Total * M), which a signed bigint would get wrong."""
    nonce, gcs = bytes(range(16)), scheme.Gcs(m=m)
    hs = [hashlib.sha256(bytes([i])).digest() for i in range(64)]
    with Store(pg_url) as store, store.read() as session:
        got = [
            session.scalar(
                select(create.value_sql_postgresql(literal(h, LargeBinary), nonce, total, gcs))
            )
            for h in hs
        ]
    values = [scheme.item_value(h, nonce, total, gcs) for h in hs]
    assert got == [scheme.item_bytes(v) for v in values]
    if total == scheme.MAX_TOTAL:
        assert any(v >= 2**63 for v in values) and any(v < 2**63 for v in values)


def test_values_are_computed_again_when_the_count_changed_since_hashing(tmp_path: Path) -> None:
    """The insert computes values for the count the hash engine saw; if the
    lists changed in between, the rows are computed again for the real Total."""
    ws = listed_workspace(tmp_path, 120)
    first, _ = make_batch(ws)
    key = load_key(ws)
    with open_store(ws) as store:
        request = create.request_from_settings(ws.settings, ["customers"])
        with store.read() as session:
            list_ids = [get_list(session, "customers").id]
        epoch = hashing.current_epoch(store, ws.settings.params, ws.settings.salt_epoch_days)
        with store.write() as session:
            batch = create.new_batch(ws.settings, key, epoch, request, utcnow())
            session.add(batch)
            session.flush()
            count = create._insert_values(session, batch, epoch.id, list_ids, expected=119)
            batch_id, nonce = batch.id, batch.nonce
            batch.count = count
    assert count == 120 and nonce is not None
    assert stored_values(ws, batch_id) == scheme_values(digests(ws, first), nonce, 120)


def test_a_part_folds_addresses_that_share_a_tag(tmp_path: Path) -> None:
    """Two addresses with one tag are one item of the part (its Count), as before."""
    ws = listed_workspace(tmp_path, 40)
    batch, _ = make_batch(ws, protocol=1)
    key = load_key(ws)
    with open_store(ws) as store, store.write() as session:
        row = session.get(Batch, batch.id)
        assert row is not None
        tags = sorted(e.tag for e in session.query(BatchEntry).filter_by(batch_id=batch.id))
        session.query(BatchEntry).filter_by(batch_id=batch.id, tag=tags[1]).update({"tag": tags[0]})
        session.query(BatchPart).filter_by(batch_id=batch.id).delete()
        (part,) = parts.plan_parts(session, row, key)
    assert (part.count, part.first_tag, part.last_tag) == (39, tags[0], tags[-1])
