"""The hash engine: salt epochs, the digest cache and the executors that hash.

Argon2id dominates the cost of a batch, so hashing runs on an executor
(threads by default: argon2-cffi releases the GIL) and every digest is cached
per (address, salt epoch): hashing again in the same epoch only hashes
addresses that were not hashed before.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import Select, exists, func, insert, select

from scrubber import scheme
from scrubber.errors import ExecutorError, UsageError
from scrubber.store import Store
from scrubber.store.models import Address, CachedDigest, ListEntry, SaltEpoch, Suppression
from scrubber.store.types import utcnow

if TYPE_CHECKING:
    import distributed

__all__ = [
    "DaskExecutor",
    "HashEngine",
    "ProcessExecutor",
    "ThreadExecutor",
    "current_epoch",
    "open_executor",
    "utcnow",
]

log = logging.getLogger(__name__)

CHUNK = 256  # addresses per task: large enough to amortise the task overhead
EXECUTOR_KINDS = ("threads", "processes")
DASK_SCHEMES = ("tcp://", "tls://", "ws://", "wss://", "inproc://", "ucx://")


class HashFuture(Protocol):
    """What the engine needs of a submitted chunk: its result, or its error."""

    def result(self, timeout: float | None = None) -> list[bytes]: ...


class Executor(Protocol):
    """Runs hash chunks somewhere: threads here, a cluster elsewhere."""

    workers: int

    def submit(
        self, canonicals: Sequence[str], salt: bytes, params: scheme.Params
    ) -> HashFuture: ...

    def close(self) -> None: ...


def hash_chunk(canonicals: Sequence[str], salt: bytes, params: scheme.Params) -> list[bytes]:
    return [scheme.digest(c, salt, params).h for c in canonicals]


class ThreadExecutor:
    """One thread per core by default."""

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="argon2")

    def submit(
        self, canonicals: Sequence[str], salt: bytes, params: scheme.Params
    ) -> Future[list[bytes]]:
        return self._pool.submit(hash_chunk, canonicals, salt, params)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class ProcessExecutor:
    """Worker processes, one per core by default.

    Threads are the default because argon2-cffi releases the GIL; processes
    are for an Argon2 binding that does not, or to keep the hashing off a
    busy interpreter. Workers are spawned (not forked), so they never inherit
    the parent's database connections or threads.
    """

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or os.cpu_count() or 1
        context = multiprocessing.get_context("spawn")
        self._pool = ProcessPoolExecutor(self.workers, mp_context=context)

    def submit(
        self, canonicals: Sequence[str], salt: bytes, params: scheme.Params
    ) -> Future[list[bytes]]:
        return self._pool.submit(hash_chunk, list(canonicals), salt, params)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


class DaskExecutor:
    """Chunks hashed on a Dask ``distributed`` cluster, for lists one machine
    cannot hash in time.

    Each task names :func:`hash_chunk` by reference, so every worker must
    have scrubber installed (the same version). The cluster decides the
    parallelism; ``workers`` is its thread count, used to bound the chunks
    in flight.
    """

    def __init__(self, address: str, *, timeout: float = 10.0) -> None:
        try:
            from distributed import Client
        except ImportError:
            raise ExecutorError(
                "the Dask executor needs the 'distributed' package: pip install 'scrubber[dask]'"
            ) from None
        # distributed's Client is untyped; Any keeps mypy --strict meaningful here.
        client_class: Any = Client
        try:
            self._client: Any = client_class(address, timeout=timeout, set_as_default=False)
        except (OSError, TimeoutError, ValueError) as error:
            raise ExecutorError(f"cannot reach the Dask scheduler at {address}: {error}") from None
        try:
            self._client.wait_for_workers(1, timeout=timeout)
        except TimeoutError:
            self._client.close()
            raise ExecutorError(
                f"no Dask worker joined the scheduler at {address} within {timeout:g} s"
            ) from None
        self.workers = max(1, sum(self._client.nthreads().values()))
        self._check_malloc_trim()

    def _check_malloc_trim(self) -> None:
        """Dask's nanny starts workers with MALLOC_TRIM_THRESHOLD_=65536, which
        turns off glibc's adaptive mmap threshold: every Argon2 call then maps,
        faults in and unmaps its memory afresh, and a worker hashes about a
        third slower (docs/performance.md, hash). Say how to start them."""
        trimmed = self._client.run(_malloc_trim_threshold).values()
        if any(value is not None for value in trimmed):
            log.warning(
                "Dask workers run with MALLOC_TRIM_THRESHOLD_ set, which slows Argon2 "
                "by about a third; start them with "
                "DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON='{\"MALLOC_TRIM_THRESHOLD_\": None}' "
                "(docs/deployment.md)"
            )

    def submit(self, canonicals: Sequence[str], salt: bytes, params: scheme.Params) -> _DaskResult:
        task = self._client.submit(hash_chunk, list(canonicals), salt, params, pure=False)
        return _DaskResult(task)

    def close(self) -> None:
        self._client.close()


def _malloc_trim_threshold() -> str | None:
    """Run on each Dask worker (by reference: workers have scrubber)."""
    return os.environ.get("MALLOC_TRIM_THRESHOLD_")


class _DaskResult:
    """A Dask future whose failure reads as one line (a worker's traceback
    is about its own environment, such as scrubber missing there)."""

    def __init__(self, task: distributed.Future[list[bytes]]) -> None:
        self._task = task

    def result(self, timeout: float | None = None) -> list[bytes]:
        try:
            return self._task.result(timeout)
        except Exception as error:
            raise ExecutorError(
                f"a Dask worker failed to hash: {type(error).__name__}: {error}"
            ) from error


def open_executor(kind: str = "threads", workers: int | None = None) -> Executor:
    """The executor named by ``kind``: threads, processes, or a Dask scheduler
    address such as ``tcp://scheduler:8786``."""
    if kind == "threads":
        return ThreadExecutor(workers)
    if kind == "processes":
        return ProcessExecutor(workers)
    if kind.startswith(DASK_SCHEMES):
        if workers is not None:
            raise UsageError("--workers does not apply to a Dask cluster: its workers decide")
        return DaskExecutor(kind)
    raise UsageError(
        f"unknown executor {kind!r}: use threads, processes or a Dask scheduler "
        "address (tcp://host:8786)"
    )


@dataclass(frozen=True)
class HashSummary:
    epoch_id: int
    needed: int
    cached: int
    computed: int


def current_epoch(
    store: Store, params: scheme.Params, days: int, now: datetime | None = None
) -> SaltEpoch:
    """The salt epoch in force now for these parameters; starts a new one if none."""
    now = now or utcnow()
    with store.write() as session:
        epoch = session.scalars(
            select(SaltEpoch)
            .where(SaltEpoch.started_at <= now, SaltEpoch.ends_at > now)
            .where(SaltEpoch.t == params.t, SaltEpoch.m == params.m, SaltEpoch.p == params.p)
            .order_by(SaltEpoch.started_at.desc())
        ).first()
        if epoch is None:
            epoch = SaltEpoch(
                salt=os.urandom(scheme.SALT_LEN),
                t=params.t,
                m=params.m,
                p=params.p,
                started_at=now,
                ends_at=now + timedelta(days=days),
            )
            session.add(epoch)
            session.flush()
        return epoch


class HashEngine:
    """Fills the digest cache for lists in an epoch, streaming in pages."""

    def __init__(self, store: Store, executor: Executor, page: int = 8192) -> None:
        self.store = store
        self.executor = executor
        self.page = page

    def ensure(
        self,
        epoch: SaltEpoch,
        list_ids: Sequence[int],
        on_done: Callable[[int], None] | None = None,
        on_total: Callable[[int], None] | None = None,
    ) -> HashSummary:
        """Hash every unsuppressed address of ``list_ids`` not yet cached in ``epoch``;
        ``on_total`` hears how many will be hashed, ``on_done`` each chunk hashed."""
        needed, missing = self._count(epoch.id, list_ids)
        if on_total is not None:
            on_total(missing)
        params = scheme.Params(t=epoch.t, m=epoch.m, p=epoch.p)
        computed = 0
        for page in self._missing_pages(epoch.id, list_ids) if missing else ():
            results = self._hash_page(page, epoch.salt, params, on_done)
            with self.store.write_connection() as conn:
                conn.execute(
                    insert(CachedDigest),
                    [
                        {
                            "epoch_id": epoch.id,
                            "address_id": i,
                            "h": h,
                            "proof": h[scheme.PROOF_SLICE],
                        }
                        for i, h in results
                    ],
                )
            computed += len(results)
        return HashSummary(epoch.id, needed, needed - missing, computed)

    def _hash_page(
        self,
        page: list[tuple[int, str]],
        salt: bytes,
        params: scheme.Params,
        on_done: Callable[[int], None] | None,
    ) -> list[tuple[int, bytes]]:
        # Keep at most 2 chunks per worker in flight, so memory stays flat.
        pending: deque[tuple[list[int], HashFuture]] = deque()
        results: list[tuple[int, bytes]] = []
        limit = 2 * self.executor.workers
        for start in range(0, len(page), CHUNK):
            chunk = page[start : start + CHUNK]
            ids = [i for i, _ in chunk]
            pending.append((ids, self.executor.submit([c for _, c in chunk], salt, params)))
            if len(pending) >= limit:
                results.extend(_collect(pending.popleft(), on_done))
        while pending:
            results.extend(_collect(pending.popleft(), on_done))
        return results

    def _count(self, epoch_id: int, list_ids: Sequence[int]) -> tuple[int, int]:
        """(needed, missing). A re-batch has nothing missing: one anti-join
        that stops at the first address without a digest says so, and the
        needed addresses are counted from the lists alone."""
        wanted = _wanted_ids(list_ids).subquery()
        cached = (CachedDigest.address_id == wanted.c.address_id) & (
            CachedDigest.epoch_id == epoch_id
        )
        uncached = ~select(CachedDigest.address_id).where(cached).exists()
        with self.store.read() as session:
            if not session.scalar(select(select(wanted).where(uncached).exists())):
                return int(session.scalar(select(func.count()).select_from(wanted)) or 0), 0
            needed, done = session.execute(
                select(func.count(), func.count(CachedDigest.address_id))
                .select_from(wanted)
                .outerjoin(CachedDigest, cached)
            ).one()
        return int(needed), int(needed) - int(done)

    def _missing_pages(
        self, epoch_id: int, list_ids: Sequence[int]
    ) -> Iterator[list[tuple[int, str]]]:
        # Correlated EXISTS, not IN (subquery): SQLite builds an IN list anew
        # for every page, which made a page cost O(list size) and hashing
        # quadratic (3M addresses at the cheapest cost: 547 s, against 100 s
        # for 1M); this way a page is its own rows' index look-ups.
        listed = exists().where(ListEntry.address_id == Address.id, ListEntry.list_id.in_(list_ids))
        suppressed = exists().where(Suppression.address_id == Address.id)
        cached = exists().where(
            CachedDigest.address_id == Address.id, CachedDigest.epoch_id == epoch_id
        )
        last = 0
        while True:
            with self.store.read() as session:
                rows = session.execute(
                    select(Address.id, Address.canonical)
                    .where(Address.id > last, listed, ~suppressed, ~cached)
                    .order_by(Address.id)
                    .limit(self.page)
                ).all()
            if not rows:
                return
            yield [(int(i), str(c)) for i, c in rows]
            last = rows[-1][0]


def _wanted_ids(list_ids: Sequence[int]) -> Select[tuple[int]]:
    """The ids of the unsuppressed addresses on any of the lists, each once,
    from the lists alone (the addresses table is not read)."""
    query = (
        select(ListEntry.address_id)
        .where(ListEntry.list_id.in_(list_ids))
        .where(~ListEntry.address_id.in_(select(Suppression.address_id)))
    )
    # One list's primary key (list, address) already makes them distinct.
    return query.distinct() if len(set(list_ids)) > 1 else query


def _collect(
    item: tuple[list[int], HashFuture], on_done: Callable[[int], None] | None
) -> list[tuple[int, bytes]]:
    ids, future = item
    hashes = future.result()
    if on_done is not None:
        on_done(len(ids))
    return list(zip(ids, hashes, strict=True))
