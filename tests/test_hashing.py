"""The hash engine: executors, the digest cache, salt epochs."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scrubber import hashing, lists, scheme
from scrubber.store import Store, queries
from scrubber.store.models import Address, CachedDigest
from scrubber.store.types import utcnow
from scrubber.workspace import Workspace, open_store

PARAMS = scheme.Params(t=1, m=64, p=1)  # cheap, so the tests hash hundreds quickly


@pytest.fixture
def store(workspace: Workspace) -> Iterator[Store]:
    with open_store(workspace) as opened:
        yield opened


@pytest.fixture
def executor() -> Iterator[hashing.ThreadExecutor]:
    pool = hashing.ThreadExecutor(2)
    yield pool
    pool.close()


def _import(store: Store, tmp_path: Path, name: str, addresses: list[str]) -> int:
    source = tmp_path / f"{name}-{len(addresses)}.txt"
    source.write_text("\n".join(addresses) + "\n", encoding="utf-8")
    lists.import_files(store, name, [source], rejects_path=tmp_path / "rejects.csv")
    with store.read() as session:
        return queries.get_list(session, name).id


def _cached(store: Store, epoch_id: int) -> dict[str, bytes]:
    with store.read() as session:
        rows = session.execute(
            select(Address.canonical, CachedDigest.h)
            .join(CachedDigest, CachedDigest.address_id == Address.id)
            .where(CachedDigest.epoch_id == epoch_id)
        ).all()
    return {canonical: h for canonical, h in rows}


def test_thread_executor_equals_scheme_digest(executor: hashing.ThreadExecutor) -> None:
    salt = bytes(range(16))
    canonicals = [f"user{n}@example.com" for n in range(40)] + ["josé@xn--bcher-kva.de"]
    futures = [executor.submit(canonicals[i : i + 7], salt, PARAMS) for i in range(0, 41, 7)]
    hashed = [h for future in futures for h in future.result()]
    assert hashed == [scheme.digest(c, salt, PARAMS).h for c in canonicals]


def test_second_hash_of_the_same_list_hashes_nothing(
    store: Store, tmp_path: Path, executor: hashing.ThreadExecutor
) -> None:
    list_id = _import(store, tmp_path, "l", [f"a{n}@example.com" for n in range(300)])
    epoch = hashing.current_epoch(store, PARAMS, days=30)
    engine = hashing.HashEngine(store, executor, page=128)
    progress: list[int] = []
    first = engine.ensure(epoch, [list_id], on_done=progress.append)
    assert (first.needed, first.cached, first.computed) == (300, 0, 300)
    assert sum(progress) == 300
    second = engine.ensure(epoch, [list_id])
    assert (second.needed, second.cached, second.computed) == (300, 300, 0)
    cached = _cached(store, epoch.id)
    assert len(cached) == 300
    for canonical in ("a0@example.com", "a299@example.com"):
        assert cached[canonical] == scheme.digest(canonical, epoch.salt, PARAMS).h


def test_only_new_addresses_are_hashed(
    store: Store, tmp_path: Path, executor: hashing.ThreadExecutor
) -> None:
    list_id = _import(store, tmp_path, "l", [f"a{n}@example.com" for n in range(100)])
    epoch = hashing.current_epoch(store, PARAMS, days=30)
    engine = hashing.HashEngine(store, executor)
    engine.ensure(epoch, [list_id])
    _import(store, tmp_path, "l", [f"a{n}@example.com" for n in range(90, 130)])
    other = _import(store, tmp_path, "other", ["a5@example.com", "new@example.com"])
    summary = engine.ensure(epoch, [list_id, other])
    assert (summary.needed, summary.cached, summary.computed) == (131, 100, 31)
    assert len(_cached(store, epoch.id)) == 131


def test_suppressed_addresses_are_not_hashed(
    store: Store, tmp_path: Path, executor: hashing.ThreadExecutor
) -> None:
    list_id = _import(store, tmp_path, "l", ["a@example.com", "b@example.com", "c@example.com"])
    lists.suppress(store, ["B@example.com"])
    epoch = hashing.current_epoch(store, PARAMS, days=30)
    summary = hashing.HashEngine(store, executor).ensure(epoch, [list_id])
    assert summary.computed == 2
    assert set(_cached(store, epoch.id)) == {"a@example.com", "c@example.com"}


def test_epoch_rotates_after_the_configured_days(
    store: Store, tmp_path: Path, executor: hashing.ThreadExecutor
) -> None:
    list_id = _import(store, tmp_path, "l", ["a@example.com", "b@example.com"])
    start = utcnow()
    epoch = hashing.current_epoch(store, PARAMS, days=7, now=start)
    same = hashing.current_epoch(store, PARAMS, days=7, now=start + timedelta(days=6, hours=23))
    assert same.id == epoch.id and same.salt == epoch.salt
    assert epoch.ends_at - epoch.started_at == timedelta(days=7)
    later = hashing.current_epoch(store, PARAMS, days=7, now=start + timedelta(days=7))
    assert later.id != epoch.id and later.salt != epoch.salt
    assert len(later.salt) == scheme.SALT_LEN
    engine = hashing.HashEngine(store, executor)
    engine.ensure(epoch, [list_id])
    # A new epoch has a new salt, so everything is hashed again, differently.
    assert engine.ensure(later, [list_id]).computed == 2
    assert _cached(store, later.id)["a@example.com"] != _cached(store, epoch.id)["a@example.com"]


def test_new_parameters_start_a_new_epoch(store: Store) -> None:
    now = utcnow()
    epoch = hashing.current_epoch(store, PARAMS, days=30, now=now)
    stronger = hashing.current_epoch(store, scheme.Params(t=2, m=64, p=1), days=30, now=now)
    assert stronger.id != epoch.id
    assert (stronger.t, stronger.m, stronger.p) == (2, 64, 1)
    assert hashing.current_epoch(store, PARAMS, days=30, now=now).id == epoch.id


def test_empty_list_hashes_nothing(store: Store, executor: hashing.ThreadExecutor) -> None:
    epoch = hashing.current_epoch(store, PARAMS, days=30)
    summary = hashing.HashEngine(store, executor).ensure(epoch, [])
    assert (summary.needed, summary.computed) == (0, 0)
    with store.read() as session:
        assert session.scalar(select(func.count()).select_from(CachedDigest)) == 0


def test_process_executor_equals_scheme_digest_and_fills_the_cache(
    store: Store, tmp_path: Path
) -> None:
    salt = bytes(range(16, 32))
    canonicals = [f"p{n}@example.com" for n in range(30)]
    pool = hashing.ProcessExecutor(2)
    try:
        futures = [pool.submit(canonicals[i : i + 8], salt, PARAMS) for i in range(0, 30, 8)]
        assert [h for f in futures for h in f.result()] == [
            scheme.digest(c, salt, PARAMS).h for c in canonicals
        ]
        list_id = _import(store, tmp_path, "l", canonicals)
        epoch = hashing.current_epoch(store, PARAMS, days=30)
        assert hashing.HashEngine(store, pool).ensure(epoch, [list_id]).computed == 30
    finally:
        pool.close()
    assert (
        _cached(store, epoch.id)["p7@example.com"]
        == scheme.digest("p7@example.com", epoch.salt, PARAMS).h
    )


def test_hash_lists_writes_nothing_until_names_and_executor_are_good(
    store: Store, tmp_path: Path
) -> None:
    from scrubber.errors import NotFoundError, UsageError
    from scrubber.store.models import SaltEpoch

    _import(store, tmp_path, "l", [f"u{n}@example.com" for n in range(30)])
    with pytest.raises(NotFoundError, match="no list named 'nope'"):
        lists.hash_lists(store, ["l", "nope"], PARAMS, 30)
    with pytest.raises(UsageError, match="unknown executor 'gpu'"):
        lists.hash_lists(store, ["l"], PARAMS, 30, executor="gpu")
    with store.read() as session:
        assert session.scalars(select(SaltEpoch)).all() == []
    totals: list[int] = []
    first = lists.hash_lists(store, ["l"], PARAMS, 30, workers=2, on_total=totals.append)
    again = lists.hash_lists(store, ["l"], PARAMS, 30, executor="processes", workers=1)
    assert (first.needed, first.computed, totals) == (30, 30, [30])
    assert (again.epoch_id, again.cached, again.computed) == (first.epoch_id, 30, 0)
    assert len(_cached(store, first.epoch_id)) == 30


def _steps_for_first_page(tmp_path: Path, size: int) -> int:
    """SQLite VM steps (in thousands) to fetch the first 100 addresses to hash
    of a list of ``size``."""
    from sqlalchemy import event

    store = Store(f"sqlite:///{tmp_path / f'db-{size}.sqlite'}")
    store.migrate()
    list_id = _import(store, tmp_path, "big", [f"user{n}@example.com" for n in range(size)])
    epoch = hashing.current_epoch(store, PARAMS, 30)
    steps = [0]

    def count(dbapi_conn: object, _record: object) -> None:
        dbapi_conn.set_progress_handler(lambda: steps.__setitem__(0, steps[0] + 1) or 0, 1000)  # type: ignore[attr-defined]

    store.engine.dispose()  # so every connection from here on is counted
    event.listen(store.engine, "connect", count)
    engine = hashing.HashEngine(store, hashing.ThreadExecutor(1), page=100)
    assert len(next(engine._missing_pages(epoch.id, [list_id]))) == 100
    store.close()
    return steps[0]


def test_a_page_of_addresses_to_hash_costs_the_same_on_any_list_size(tmp_path: Path) -> None:
    """Each page is its own rows' look-ups: with `IN (subquery)` SQLite built
    the list's whole id set for every page, and hashing 3M addresses spent
    most of its time there (docs/performance.md, pipeline)."""
    small = _steps_for_first_page(tmp_path, 2_000)
    large = _steps_for_first_page(tmp_path, 40_000)
    assert large < 2 * small + 5, (small, large)
