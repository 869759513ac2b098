"""scrubber demo: the pipeline on embedded defaults, in a scratch workspace."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from scrubber import hashing, lists
from scrubber.config import Workspace
from scrubber.workspace import init_workspace, open_store

SAMPLE = Path(__file__).resolve().parent.parent / "sample_lists"


@dataclass(frozen=True)
class DemoStep:
    title: str
    detail: str


def run_demo(root: Path, sample: Path, say: Callable[[DemoStep], None]) -> Workspace:
    """Run every stage that exists, reporting each through ``say``."""
    workspace = init_workspace(root)
    say(DemoStep("init", f"workspace {workspace.root} with a new Ed25519 key"))
    with open_store(workspace) as store:
        summary = lists.import_files(
            store, "demo", [sample], rejects_path=root / "rejects" / "demo.csv"
        )
        say(DemoStep("import", f"{summary.added:,} addresses, {summary.rejected:,} rejected"))
        with store.read() as session:
            list_id = lists.get_list(session, "demo").id
        settings = workspace.settings
        epoch = hashing.current_epoch(store, settings.params, settings.salt_epoch_days)
        executor = hashing.ThreadExecutor()
        try:
            hashed = hashing.HashEngine(store, executor).ensure(epoch, [list_id])
        finally:
            executor.close()
        say(DemoStep("hash", f"{hashed.computed:,} addresses hashed in salt epoch {epoch.id}"))
    return workspace
