"""spool:DIR: one rnews-compatible file per article, the embedded default.

Each file is ``#! rnews <bytes>`` then the article, so ``rnews < FILE`` (or
the whole directory, concatenated) feeds it to a news server later.
Files appear atomically (write to a dot-file, then rename). Posting is
:class:`SpoolTransport`; reading, with or without the framing, is
:class:`SpoolSource`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from scrubber.article import split_article
from scrubber.errors import ArticleError, ArticleGone, ResponderError, TransportError
from scrubber.private import AtomicFile
from scrubber.transport import DEFAULT_GROUP, Entry, PostStatus

_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]")
_RNEWS = b"#! rnews "
HEAD_BYTES = 64 * 1024  # the overview reads this much of a spool file: headers only


def spool_name(message_id: str) -> str:
    return _UNSAFE.sub("_", message_id.strip("<>")) + ".rnews"


class SpoolTransport:
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TransportError(f"cannot create spool {directory}: {exc.strerror}") from None
        if not directory.is_dir() or not os.access(directory, os.W_OK | os.X_OK):
            raise TransportError(f"spool {directory} is not a writable directory")

    @property
    def server(self) -> str:
        return f"spool:{self.directory}"

    def post(self, message_id: str, article: bytes) -> PostStatus:
        target = self.directory / spool_name(message_id)
        if target.exists():
            return PostStatus.DUPLICATE
        data = _RNEWS + b"%d\n" % len(article) + article
        try:
            self._write_atomically(target, data)
        except OSError as exc:
            raise TransportError(
                f"cannot write to spool {self.directory}: {exc.strerror}"
            ) from None
        return PostStatus.POSTED

    def _write_atomically(self, target: Path, data: bytes) -> None:
        # 0644: a feeder running as news must read it.
        with AtomicFile.binary(target, mode=0o644) as handle:
            handle.write(data)

    def close(self) -> None:
        """Nothing to release."""


class SpoolSource:
    """A spool directory: one article per file (optionally rnews-framed).

    The mark is ``<mtime_ns>:<relative path>``; files are read in that order,
    so files that appear later are read in a later scan.
    """

    def __init__(self, directory: Path, group: str = DEFAULT_GROUP) -> None:
        if not directory.is_dir():
            raise ResponderError(f"spool directory {directory} does not exist")
        self.directory = directory.resolve()
        self.group = group
        self.name = f"spool:{self.directory}/{group}"
        self.bodies_fetched = 0
        self._paths: dict[str, Path] = {}

    def overview(self, mark: str | None) -> tuple[list[Entry], str | None]:
        positions = sorted(self._positions())
        entries: list[Entry] = []
        for position, path in positions:
            if mark is not None and position <= mark:
                continue
            headers = self._headers(path)
            if headers is None or self.group not in _groups(headers):
                continue
            self._paths[position] = path
            entries.append(Entry(position, headers.get("subject", ""), headers["message-id"]))
        newest = positions[-1][0] if positions else None
        return entries, max(filter(None, (mark, newest)), default=None)

    def body(self, entry: Entry) -> bytes:
        raw = _read(self._paths[entry.key])
        if raw is None:
            raise ArticleGone(f"spool file for {entry.message_id} disappeared")
        self.bodies_fetched += 1
        return split_article(raw)[1]

    def close(self) -> None:
        self._paths.clear()

    def _positions(self) -> list[tuple[str, Path]]:
        found = []
        for root, dirs, names in os.walk(self.directory):
            dirs[:] = [d for d in dirs if not d.startswith(".")]
            for name in names:
                if name.startswith(".") or name.endswith((".tmp", "~")):
                    continue
                path = Path(root) / name
                try:
                    mtime = path.stat().st_mtime_ns
                except OSError:
                    continue
                found.append((f"{mtime:020d}:{path.relative_to(self.directory)}", path))
        return found

    def _headers(self, path: Path) -> dict[str, str] | None:
        raw = _read(path, HEAD_BYTES)
        if raw is None:
            return None
        try:
            headers = split_article(raw)[0]
        except ArticleError:
            return None
        return headers if headers.get("message-id") else None


def _read(path: Path, limit: int = -1) -> bytes | None:
    """The article in ``path`` (its first ``limit`` bytes), without rnews framing."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(limit)
    except OSError:
        return None
    if raw.startswith(_RNEWS):
        raw = raw.partition(b"\n")[2]
    return raw


def _groups(headers: dict[str, str]) -> list[str]:
    return [g.strip() for g in headers.get("newsgroups", "").split(",")]
