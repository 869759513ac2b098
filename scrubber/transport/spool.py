"""spool:DIR: one rnews-compatible file per article, the embedded default.

Each file is ``#! rnews <bytes>`` then the article, so ``rnews < FILE`` (or
the whole directory, concatenated) feeds it to a news server later.
Files appear atomically (write to a dot-file, then rename).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from scrubber.errors import TransportError
from scrubber.transport import PostStatus

_UNSAFE = re.compile(r"[^A-Za-z0-9._@-]")


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
        data = b"#! rnews %d\n" % len(article) + article
        try:
            self._write_atomically(target, data)
        except OSError as exc:
            raise TransportError(
                f"cannot write to spool {self.directory}: {exc.strerror}"
            ) from None
        return PostStatus.POSTED

    def _write_atomically(self, target: Path, data: bytes) -> None:
        fd, name = tempfile.mkstemp(prefix=".", suffix=".tmp", dir=self.directory)
        tmp = Path(name)
        try:
            with os.fdopen(fd, "wb") as handle:
                os.fchmod(handle.fileno(), 0o644)  # a feeder running as news must read it
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            tmp.replace(target)
        finally:
            tmp.unlink(missing_ok=True)

    def close(self) -> None:
        """Nothing to release."""
