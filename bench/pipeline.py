"""Benchmark: the whole pipeline on a synthetic list, stage by stage.

    .venv/bin/python bench/pipeline.py [--quick] [--addresses N] [--server nntp://HOST:PORT]
    .venv/bin/python bench/pipeline.py --import-post-only --addresses 3000000

N synthetic addresses (default 1,000,000; --quick 50,000) in the mix
sample_lists/generate.py makes (names, plus tags, gmail dots, Unicode
local parts, IDN domains, re-listed respellings, malformed lines), then:

  import        `list import` of the file (lists.import_files)
  hash          `batch create`'s hashing (HashEngine.ensure, one thread per core)
  batch         the rest of that `batch create`: entries, part plan
  post-spool    `batch post` to a spool directory
  post-inn      `batch post` of the same parts to the real INN2 ($SCRUBBER_TEST_NNTP)
  scan          a responder protecting 1,000 of the list's addresses (other
                spellings) scans the spool: overview, one body, its hashing,
                the parts that can hold its tags
  pings         its 1,000 proofs sent to `scrubber listen` (a subprocess,
                SQLite workspace), key binding checked first
  report        the batch's report, built, signed and rendered as JSON
  re-batch      a second `batch create` of the same list in the same epoch

Each stage runs in a fresh process (spawned, so its start-up is not timed)
and reports its wall time, CPU time and peak RSS (VmHWM of that process;
for pings the listener's and its writer's are counted too). The
hashing rate is given as a ratio to cores x the raw argon2-cffi rate (one
thread, same cost) measured in the same run. Goals: peak RSS <= 300 MB in
every stage; re-batch >= 50x faster than the first batch create (hash +
batch); all stages but hashing together <= 10 % of the hashing time. The
goal lines come before the last line, which is the last of those:
`pipeline: ratio <non-hashing / hashing> (goal <= 0.1)`.

--import-post-only runs import, batch and both posts alone (issue 17 point
2's 3,000,000 runs), the batch hashed at the cheapest cost; its last line
is the peak RSS goal.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._support import free_port, listen, raw_rate, wait_port  # noqa: E402

GOAL_RSS_MB = 300.0
GOAL_REBATCH = 50.0
GOAL_SHARE = 0.10
PROTECTED = 1_000
GROUP = "alt.dni.batches"
LIST = "customers"


@dataclass
class Stage:
    name: str
    wall: float
    cpu: float
    rss_mb: float
    note: str = ""


# ---- the stages, each run in its own process -------------------------------------


def _measured(work: Callable[[], str]) -> tuple[float, float, float, str]:
    wall, cpu = time.perf_counter(), time.process_time()
    note = work()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, peak_rss_mb(os.getpid()), note


def peak_rss_mb(pid: int) -> float:
    """VmHWM: the peak RSS of this process image. Not ru_maxrss, which Linux
    carries over fork and exec, so a spawned child would start at the bench's."""
    with open(f"/proc/{pid}/status") as status:
        hwm = next(line for line in status if line.startswith("VmHWM:"))
    return int(hwm.split()[1]) / 1024


def stage_import(ws_root: str, source: str) -> tuple[float, float, float, str]:
    from scrubber import lists
    from scrubber.workspace import load_workspace, open_store

    def work() -> str:
        with open_store(load_workspace(Path(ws_root))) as store:
            result = lists.import_files(
                store, LIST, [Path(source)], rejects_path=Path(ws_root) / "rejects.csv"
            )
        return f"{result.lines:,} lines, {result.added:,} added, {result.rejected:,} rejected"

    return _measured(work)


def stage_batch(ws_root: str) -> tuple[float, float, float, str, float, float, int]:
    """`batch create` with its hashing timed apart: (..., hash wall, hash CPU, hashed)."""
    from scrubber import hashing
    from scrubber.batch.create import create_batch, request_from_settings
    from scrubber.workspace import load_key, load_workspace, open_store

    timing = {"wall": 0.0, "cpu": 0.0, "computed": 0.0}
    ensure = hashing.HashEngine.ensure

    def timed_ensure(self: hashing.HashEngine, *args: Any, **kwargs: Any) -> hashing.HashSummary:
        wall, cpu = time.perf_counter(), time.process_time()
        summary = ensure(self, *args, **kwargs)
        timing["wall"] += time.perf_counter() - wall
        timing["cpu"] += time.process_time() - cpu
        timing["computed"] += summary.computed
        return summary

    hashing.HashEngine.ensure = timed_ensure  # type: ignore[method-assign]

    def work() -> str:
        ws = load_workspace(Path(ws_root))
        executor = hashing.ThreadExecutor(os.cpu_count() or 1)
        try:
            with open_store(ws) as store:
                request = request_from_settings(ws.settings, [LIST])
                made = create_batch(store, ws.settings, load_key(ws), request, executor)
        finally:
            executor.close()
        return f"{made.batch.id} {made.batch.count} entries {made.batch.parts_total} parts"

    wall, cpu, rss, note = _measured(work)
    return wall, cpu, rss, note, timing["wall"], timing["cpu"], int(timing["computed"])


def stage_post(ws_root: str, batch_id: str, server: str) -> tuple[float, float, float, str]:
    """Post every part of the batch to ``server`` (the parts, posted or not)."""
    from sqlalchemy import select

    from scrubber.batch import post
    from scrubber.store import queries
    from scrubber.store.models import BatchPart
    from scrubber.transport import open_transport, server_name
    from scrubber.workspace import load_key, load_workspace, open_store

    def work() -> str:
        ws = load_workspace(Path(ws_root))
        with open_store(ws) as store:
            with store.read() as session:
                batch = queries.get_batch(session, batch_id)
                parts = session.scalars(
                    select(BatchPart).where(BatchPart.batch_id == batch_id).order_by(BatchPart.part)
                ).all()
            summary = post.post_batch(
                store,
                post.PendingWork(batch, server_name(server, base=ws.root), list(parts)),
                load_key(ws),
                lambda: open_transport(server, newsgroup=ws.settings.newsgroup, base=ws.root),
            )
        sent = sum(r.size for r in summary.results)
        return f"{len(summary.results)} parts, {sent:,} bytes"

    return _measured(work)


def stage_scan(db: str, protected: str, spool: str) -> tuple[float, float, float, str]:
    from scrubber.responder.scan import scan
    from scrubber.responder.store import ResponderStore, add_addresses
    from scrubber.transport.spool import SpoolSource

    def work() -> str:
        store = ResponderStore.open(Path(db))
        try:
            add_addresses(store, Path(protected).read_text(encoding="utf-8").splitlines())
            source = SpoolSource(Path(spool), GROUP)
            try:
                report = scan(store, source)
            finally:
                source.close()
        finally:
            store.close()
        return f"{report.matches} matches"

    return _measured(work)


def stage_pings(db: str) -> tuple[float, float, float, str]:
    from scrubber.responder.ping import PingConfig, send_pending
    from scrubber.responder.store import ResponderStore

    def work() -> str:
        store = ResponderStore.open(Path(db))
        try:
            # The listener is on loopback: a lab network, as the CLI's --allow-private says.
            config = PingConfig(delay=0, allow_private_http=True, use_smtp=False)
            report = send_pending(store, config)
        finally:
            store.close()
        failures = "; ".join(report.failures)
        return f"{report.delivered} delivered in {report.requests} requests {failures}"

    return _measured(work)


def stage_report(ws_root: str, batch_id: str) -> tuple[float, float, float, str]:
    from scrubber.report import build, formats, sign
    from scrubber.workspace import load_key, load_workspace, open_store

    def work() -> str:
        ws = load_workspace(Path(ws_root))
        with open_store(ws) as store:
            document = build.build_report(store, batch_id)
        signed = sign.sign_report(document, load_key(ws))
        return f"{len(formats.render(signed, 'json'))} bytes of JSON"

    return _measured(work)


# ---- the driver -------------------------------------------------------------------


def in_child(function: Callable[..., Any], *args: Any) -> Any:
    """Run one stage in a fresh spawned process: its own peak RSS."""
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(function, *args).result()


def synthetic_list(path: Path, count: int) -> list[str]:
    """``count`` lines in generate.py's mix; returns the registrants' spellings
    of PROTECTED addresses on it (other spellings of the same mailboxes)."""
    spec = importlib.util.spec_from_file_location("generate", ROOT / "sample_lists" / "generate.py")
    assert spec is not None and spec.loader is not None
    generate = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(generate)
    rng = random.Random(17)
    lines: list[str] = []
    while len(lines) < count:
        n = len(lines)
        if rng.random() < 0.003:
            lines.append(rng.choice(generate.MALFORMED_LINES))
        elif rng.random() < 0.05 and n:
            lines.append(generate._respell(rng, lines[rng.randrange(n)]))
        else:
            lines.append(generate._person(rng, n)[1])
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    from scrubber import scheme

    picked = [a for a in rng.sample(lines, 3 * PROTECTED) if scheme.try_canonicalize(a)]
    return [generate._respell(rng, a) for a in picked[:PROTECTED]]


def start_listener(ws: Path, port: int) -> subprocess.Popen[bytes]:
    """`scrubber listen` on HTTP only, default limits, started."""
    proc = listen(ws, "--smtp", "off", "--http", f"127.0.0.1:{port}", "--log-level", "warning")
    wait_port(port, proc, timeout=60)
    return proc


def family_usage(pid: int) -> tuple[float, float]:
    """CPU seconds and the largest peak RSS (MB) of a process and its children."""
    import psutil

    top = psutil.Process(pid)
    cpu, rss = 0.0, 0.0
    for proc in [top, *top.children(recursive=True)]:
        try:
            times = proc.cpu_times()
            cpu += times.user + times.system
            rss = max(rss, peak_rss_mb(proc.pid))
        except (psutil.NoSuchProcess, FileNotFoundError):
            continue
    return cpu, rss


def pings_stage(ws: Path, db: Path, port: int) -> Stage:
    listener = start_listener(ws, port)
    try:
        before, _ = family_usage(listener.pid)
        wall, cpu, rss, note = in_child(stage_pings, str(db))
        after, listener_rss = family_usage(listener.pid)
        if note.startswith("0 delivered"):
            sys.exit(f"no ping delivered, not a valid run: {note}")
    finally:
        listener.send_signal(signal.SIGTERM)
        if listener.wait(60) != 0:
            sys.exit(f"listener exit {listener.returncode}: not a valid run")
    note += f"; listener {after - before:.1f} s CPU, peak {listener_rss:.0f} MB"
    return Stage("pings", wall, cpu + after - before, max(rss, listener_rss), note)


def run(count: int, server: str, tmp: Path) -> tuple[list[Stage], float, float]:
    """Every stage once; returns the stages, the raw argon2 rate and how many were hashed."""
    from scrubber.config import Settings
    from scrubber.workspace import init_workspace

    port = free_port()
    ws = init_workspace(
        tmp / "ws",
        Settings(newsgroup=GROUP, response_base_url=f"http://127.0.0.1:{port}", http_port=port),
    ).root
    source, protected = tmp / "list.txt", tmp / "protected.txt"
    protected.write_text("\n".join(synthetic_list(source, count)) + "\n", encoding="utf-8")
    raw = raw_rate(Settings(), 3.0)
    print(f"raw argon2-cffi, one thread: {raw:,.0f}/s", flush=True)
    stages = [Stage("import", *in_child(stage_import, str(ws), str(source)))]
    show(stages[-1])
    wall, cpu, rss, note, hash_wall, hash_cpu, hashed = in_child(stage_batch, str(ws))
    batch_id = note.split()[0]
    stages += [
        Stage("hash", hash_wall, hash_cpu, rss, f"{hashed:,} addresses hashed"),
        Stage("batch", wall - hash_wall, cpu - hash_cpu, rss, note),
    ]
    show(stages[-2], stages[-1])
    spool = tmp / "spool"
    stages.append(Stage("post-spool", *in_child(stage_post, str(ws), batch_id, f"spool:{spool}")))
    show(stages[-1])
    stages.append(Stage("post-inn", *in_child(stage_post, str(ws), batch_id, server)))
    show(stages[-1])
    db = tmp / "responder" / "responder.db"
    stages.append(Stage("scan", *in_child(stage_scan, str(db), str(protected), str(spool))))
    show(stages[-1])
    stages.append(pings_stage(ws, db, port))
    show(stages[-1])
    stages.append(Stage("report", *in_child(stage_report, str(ws), batch_id)))
    show(stages[-1])
    wall, cpu, rss, note, hash_wall, _, again = in_child(stage_batch, str(ws))
    note += f"; hashing {hash_wall:.2f} s for {again} new"
    stages.append(Stage("re-batch", wall, cpu, rss, note))
    show(stages[-1])
    size = sum(f.stat().st_size for f in ws.glob("scrubber.db*"))
    print(f"database: {size:,} bytes after two batches, {size / hashed:,.0f} bytes an address")
    return stages, raw, hashed


def run_import_post(count: int, server: str, tmp: Path) -> list[Stage]:
    """Issue 17 point 2's large sizes: import and post only. The batch in
    between is hashed at the cheapest Argon2 cost (t=1, m=8 KiB): what is
    posted has the same size and shape at any cost, and hashing 3,000,000
    addresses at the default cost would take most of an hour here."""
    from scrubber.config import Settings
    from scrubber.workspace import init_workspace

    settings = Settings(newsgroup=GROUP, argon2_t=1, argon2_m=8)
    ws = init_workspace(tmp / "ws", settings).root
    source = tmp / "list.txt"
    synthetic_list(source, count)
    stages = [Stage("import", *in_child(stage_import, str(ws), str(source)))]
    show(stages[-1])
    wall, cpu, rss, note, hash_wall, hash_cpu, hashed = in_child(stage_batch, str(ws))
    batch_id = note.split()[0]
    cheap = Stage("hash", hash_wall, hash_cpu, rss, f"{hashed:,} at t=1 m=8 KiB (not timed)")
    stages += [cheap, Stage("batch", wall - hash_wall, cpu - hash_cpu, rss, note)]
    show(stages[-2], stages[-1])
    spool = f"spool:{tmp / 'spool'}"
    stages.append(Stage("post-spool", *in_child(stage_post, str(ws), batch_id, spool)))
    show(stages[-1])
    stages.append(Stage("post-inn", *in_child(stage_post, str(ws), batch_id, server)))
    show(stages[-1])
    return stages


def show(*stages: Stage) -> None:
    for s in stages:
        print(
            f"  {s.name:10} wall {s.wall:8.2f} s  CPU {s.cpu:8.2f} s  "
            f"peak RSS {s.rss_mb:6.0f} MB  {s.note}",
            flush=True,
        )


def summary(stages: list[Stage], raw: float, hashed_count: int) -> None:
    by = {s.name: s for s in stages}
    cores = os.cpu_count() or 1
    hashed = by["hash"]
    rate = hashed_count / hashed.wall
    print(
        f"hashing: {rate:,.0f} addresses/s against {cores} cores x {raw:,.0f}/s raw, "
        f"ratio {rate / (cores * raw):.2f}"
    )
    others = sum(s.wall for s in stages if s.name not in ("hash", "re-batch"))
    first = by["hash"].wall + by["batch"].wall
    worst = max(stages, key=lambda s: s.rss_mb)
    print(f"pipeline_rss: {worst.rss_mb:.0f} MB in {worst.name} (goal <= {GOAL_RSS_MB:g} MB)")
    print(
        f"pipeline_rebatch: ratio {first / by['re-batch'].wall:.1f} "
        f"(goal >= {GOAL_REBATCH:g}; first {first:.1f} s, again {by['re-batch'].wall:.2f} s)"
    )
    print(f"non-hashing stages: {others:.1f} s against {hashed.wall:.1f} s of hashing")
    print(f"pipeline: ratio {others / hashed.wall:.3f} (goal <= {GOAL_SHARE:g})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="50,000 addresses")
    parser.add_argument("--addresses", type=int, help="list size (default 1,000,000)")
    parser.add_argument("--server", default=os.environ.get("SCRUBBER_TEST_NNTP"))
    parser.add_argument(
        "--import-post-only",
        action="store_true",
        help="only import, batch (hashed at the cheapest cost) and post: the 3M growth runs",
    )
    args = parser.parse_args()
    count = args.addresses or (50_000 if args.quick else 1_000_000)
    if not args.server:
        sys.exit("no news server: set SCRUBBER_TEST_NNTP or --server (make services)")
    load = os.getloadavg()[0]
    print(f"{count:,} addresses; {os.cpu_count()} cores; load average {load:.2f}", flush=True)
    if args.import_post_only:
        with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
            stages = run_import_post(count, args.server, Path(tmp))
        worst = max(stages, key=lambda s: s.rss_mb)
        print(f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after")
        print(f"pipeline_rss: {worst.rss_mb:.0f} MB in {worst.name} (goal <= {GOAL_RSS_MB:g} MB)")
        return
    with tempfile.TemporaryDirectory(prefix="bench-pipeline-") as tmp:
        stages, raw, hashed = run(count, args.server, Path(tmp))
    print(
        f"command: .venv/bin/python bench/pipeline.py"
        f"{' --quick' if args.quick else f' --addresses {count}'}; "
        f"load average {load:.2f} before, {os.getloadavg()[0]:.2f} after"
    )
    summary(stages, raw, hashed)


if __name__ == "__main__":
    main()
