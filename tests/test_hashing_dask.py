"""Hashing on a real Dask cluster: a `dask scheduler` and a `dask worker`
process on loopback, driven through the CLI as an operator would."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import func, select

from scrubber import hashing, scheme
from scrubber.errors import ExecutorError
from scrubber.store import queries
from scrubber.store.models import Address, CachedDigest, SaltEpoch
from scrubber.workspace import Workspace, open_store
from tests.support import free_port, run_cli, wait_until

DASK = Path(sys.executable).parent / "dask"


# docs/deployment.md starts workers with this: no MALLOC_TRIM_THRESHOLD_.
AS_DOCUMENTED = {"DASK_DISTRIBUTED__NANNY__PRE_SPAWN_ENVIRON": '{"MALLOC_TRIM_THRESHOLD_": None}'}


def _start(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    env = {**os.environ, **AS_DOCUMENTED}
    with log.open("wb") as out:
        return subprocess.Popen([str(DASK), *args], stdout=out, stderr=subprocess.STDOUT, env=env)


def _worker_answers(address: str) -> bool:
    """Whether the scheduler answers with a worker (DaskExecutor waits up to 2 s for one)."""
    try:
        hashing.DaskExecutor(address, timeout=2).close()
    except ExecutorError:
        return False
    return True


def _wait_for_worker(address: str, log: Path, timeout: float = 60) -> None:
    if not wait_until(lambda: _worker_answers(address), timeout, every=0.1):
        pytest.fail(f"the Dask cluster did not come up: {log.read_text()[-2000:]}")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    logs = tmp_path_factory.mktemp("dask")
    address = f"tcp://127.0.0.1:{free_port()}"
    port = address.rsplit(":", 1)[1]
    scheduler = _start(
        ["scheduler", "--host", "127.0.0.1", "--port", port, "--dashboard-address", ":0"],
        logs / "scheduler.log",
    )
    worker = _start(
        ["worker", address, "--nthreads", "2", "--nworkers", "1", "--no-dashboard"],
        logs / "worker.log",
    )
    try:
        _wait_for_worker(address, logs / "worker.log")
        yield address
    finally:
        for proc in (worker, scheduler):
            proc.terminate()
        for proc in (worker, scheduler):
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _list(workspace: Workspace, count: int) -> None:
    source = workspace.root / "list.txt"
    source.write_text("".join(f"User{n}+x@Example{n % 9}.com\n" for n in range(count)))
    assert run_cli("list", "import", "l", str(source), workspace=workspace.root).returncode == 0


def _digests(workspace: Workspace) -> tuple[bytes, scheme.Params, dict[str, bytes]]:
    with open_store(workspace) as store, store.read() as session:
        epoch = session.scalars(select(SaltEpoch)).one()
        rows = session.execute(
            select(Address.canonical, CachedDigest.h).join(
                CachedDigest, CachedDigest.address_id == Address.id
            )
        ).all()
    params = scheme.Params(t=epoch.t, m=epoch.m, p=epoch.p)
    return epoch.salt, params, {canonical: h for canonical, h in rows}


def test_list_hash_on_a_dask_cluster_matches_the_scheme(cluster: str, workspace: Workspace) -> None:
    _list(workspace, 300)
    result = run_cli("list", "hash", "l", "--executor", cluster, workspace=workspace.root)
    assert result.returncode == 0, result.stderr
    assert "300 addresses: 0 cached, 300 hashed" in result.stdout
    salt, params, digests = _digests(workspace)
    assert len(digests) == 300
    assert all(scheme.digest(c, salt, params).h == h for c, h in digests.items())
    # The cache is the same whichever executor filled it.
    again = run_cli("list", "hash", "l", workspace=workspace.root)
    assert "300 addresses: 300 cached, 0 hashed" in again.stdout


def test_batch_create_on_a_dask_cluster(cluster: str, workspace: Workspace) -> None:
    _list(workspace, 120)
    result = run_cli(
        "batch",
        "create",
        "l",
        "--json",
        workspace=workspace.root,
        env={"SCRUBBER_EXECUTOR": cluster},  # the environment variable works too
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["addresses"] == 120
    salt, params, digests = _digests(workspace)
    assert len(digests) == 120
    assert all(scheme.digest(c, salt, params).h == h for c, h in digests.items())


def test_a_failing_task_is_one_executor_error(cluster: str) -> None:
    executor = hashing.DaskExecutor(cluster)
    try:
        task = executor.submit(["a@example.com"], b"short", scheme.Params())
        with pytest.raises(ExecutorError, match="a Dask worker failed to hash") as caught:
            task.result(timeout=30)
        assert "\n" not in caught.value.message
    finally:
        executor.close()


def test_unreachable_scheduler_is_a_one_line_error(workspace: Workspace) -> None:
    _list(workspace, 10)
    dead = f"tcp://127.0.0.1:{free_port()}"
    result = run_cli("list", "hash", "l", "--executor", dead, workspace=workspace.root)
    assert result.returncode == 1
    assert result.stderr.startswith(f"error: cannot reach the Dask scheduler at {dead}")
    assert len(result.stderr.strip().splitlines()) == 1
    with open_store(workspace) as store, store.read() as session:
        assert session.scalars(select(SaltEpoch)).all() == []  # nothing was started


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--executor", "gpu"], "unknown executor 'gpu'"),
        (["--executor", "tcp://127.0.0.1:1", "--workers", "2"], "--workers does not apply"),
    ],
)
def test_bad_executor_options(workspace: Workspace, args: list[str], message: str) -> None:
    _list(workspace, 3)
    result = run_cli("list", "hash", "l", *args, workspace=workspace.root)
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_a_worker_killed_mid_run_is_replaced_and_every_address_hashed_once(
    cluster: str, workspace: Workspace
) -> None:
    from distributed import Client

    _list(workspace, 1200)
    with Client(cluster, timeout=10, set_as_default=False) as client:
        pids = list(client.run(os.getpid).values())
    killed: list[int] = []

    def kill_the_workers_once(done: int) -> None:
        if not killed:  # the first chunk is in: the others are queued or running
            for pid in pids:
                os.kill(pid, signal.SIGKILL)
            killed.extend(pids)

    with open_store(workspace) as store:
        with store.read() as session:
            list_id = queries.get_list(session, "l").id
        settings = workspace.settings
        epoch = hashing.current_epoch(store, settings.params, settings.salt_epoch_days)
        executor = hashing.DaskExecutor(cluster)
        try:
            engine = hashing.HashEngine(store, executor, page=512)
            summary = engine.ensure(epoch, [list_id], on_done=kill_the_workers_once)
        finally:
            executor.close()
        with store.read() as session:
            rows = session.scalar(select(func.count()).select_from(CachedDigest))
    assert killed and summary.computed == 1200
    assert rows == 1200  # each address once
    salt, params, digests = _digests(workspace)
    assert len(digests) == 1200
    assert all(scheme.digest(c, salt, params).h == h for c, h in digests.items())
    with Client(cluster, timeout=10, set_as_default=False) as client:
        client.wait_for_workers(1, timeout=30)  # the nanny starts a new one
        replaced = list(client.run(os.getpid).values())
    assert replaced and not set(replaced) & set(killed)


def test_workers_started_as_documented_draw_no_warning(
    cluster: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="scrubber.hashing"):
        hashing.DaskExecutor(cluster).close()
    assert not [r for r in caplog.records if "MALLOC_TRIM_THRESHOLD_" in r.getMessage()]


def test_workers_with_dasks_malloc_trim_threshold_are_warned_about(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Dask's default worker environment slows Argon2 by about a third; the
    executor says so, naming the fix. (Workers in this process: they see
    its environment.)"""
    from distributed import LocalCluster

    monkeypatch.setenv("MALLOC_TRIM_THRESHOLD_", "65536")
    with (
        LocalCluster(n_workers=1, processes=False, dashboard_address=None) as local,
        caplog.at_level(logging.WARNING, logger="scrubber.hashing"),
    ):
        hashing.DaskExecutor(local.scheduler_address).close()
    warned = [r.getMessage() for r in caplog.records if "MALLOC_TRIM_THRESHOLD_" in r.getMessage()]
    assert len(warned) == 1
    assert """PRE_SPAWN_ENVIRON='{"MALLOC_TRIM_THRESHOLD_": None}'""" in warned[0]
