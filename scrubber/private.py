"""Files that hold addresses, hashes, keys or credentials: owner-only modes.

Any local user who can read the database can read the list and forge
opt-outs, so every such file is created 0600 and every directory 0700, and
a file found wider than that is tightened (database) or refused (key).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO, AnyStr, Generic
from urllib.parse import urlsplit, urlunsplit

from scrubber.errors import KeyFileError, UsageError

FILE_MODE = 0o600
DIR_MODE = 0o700
_WIDE = stat.S_IRWXG | stat.S_IRWXO


def private_dir(path: Path, *, tighten_existing: bool = True) -> Path:
    """Create ``path`` (and parents) if missing, ``path`` itself 0700.

    ``tighten_existing``: also make an existing ``path`` 0700 (a workspace's
    own directories; not a directory the user named for one output file).
    """
    path.mkdir(parents=True, exist_ok=True, mode=DIR_MODE)
    if tighten_existing and path.stat().st_mode & _WIDE:
        path.chmod(DIR_MODE)
    return path


def touch_private(path: Path) -> None:
    """Create ``path`` empty with mode 0600, or tighten it if it exists wider."""
    # O_RDONLY: a user who may only read the file can still open it.
    fd = os.open(path, os.O_RDONLY | os.O_CREAT, FILE_MODE)
    try:
        if os.fstat(fd).st_mode & _WIDE:
            with contextlib.suppress(PermissionError):  # not ours to change
                os.fchmod(fd, FILE_MODE)
    finally:
        os.close(fd)


def tighten(path: Path) -> None:
    """Make an existing file 0600 if it is wider; a missing file is left alone."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        if path.stat().st_mode & _WIDE:
            path.chmod(FILE_MODE)


class AtomicFile(Generic[AnyStr]):
    """A file that appears at ``path`` whole or not at all.

    The one way scrubber writes a file others may read while it is written
    (config, rejects, exports, reports, spool articles): into a temporary
    dot-file beside ``path`` (same directory, so the rename is atomic; a dot
    name, so spool readers pass over it), created 0600 and given ``mode``
    before the first byte, then on :meth:`commit` flushed, fsync'd and
    renamed over ``path``. :meth:`discard`, or an exception in a ``with``
    block, removes it. Open one with :meth:`text` or :meth:`binary`.
    """

    def __init__(self, path: Path, handle: IO[AnyStr], tmp: Path) -> None:
        self.path = path
        self.handle: IO[AnyStr] = handle
        self._tmp = tmp

    @classmethod
    def text(cls, path: Path, *, mode: int = FILE_MODE) -> AtomicFile[str]:
        fd, tmp = _temp_beside(path, mode)
        return AtomicFile(path, os.fdopen(fd, "w", encoding="utf-8", newline=""), tmp)

    @classmethod
    def binary(cls, path: Path, *, mode: int = FILE_MODE) -> AtomicFile[bytes]:
        fd, tmp = _temp_beside(path, mode)
        return AtomicFile(path, os.fdopen(fd, "wb"), tmp)

    def finish(self) -> None:
        """Flush, fsync and close, not yet in place: a write that cannot
        complete (disk full) fails here, before the caller commits anything
        else. Idempotent."""
        if not self.handle.closed:
            self.handle.flush()
            os.fsync(self.handle.fileno())
            self.handle.close()

    def commit(self) -> Path:
        try:
            self.finish()
            self._tmp.replace(self.path)
        except BaseException:
            self.discard()
            raise
        return self.path

    def commit_new(self) -> bool:
        """As :meth:`commit`, but only where ``path`` does not exist yet (a
        hard link, not a rename): of several processes making the same file
        at once, the first wins and each sees it whole. False, and nothing
        changed, for the others."""
        try:
            self.finish()
            os.link(self._tmp, self.path)
        except FileExistsError:
            return False
        finally:
            self.discard()  # the temporary name only; a link made stays
        return True

    def discard(self) -> None:
        with contextlib.suppress(OSError):  # what is unwritten goes anyway
            self.handle.close()
        self._tmp.unlink(missing_ok=True)

    def __enter__(self) -> IO[AnyStr]:
        return self.handle

    def __exit__(self, kind: type[BaseException] | None, *_: object) -> None:
        if kind is None:
            self.commit()
        else:
            self.discard()


def _temp_beside(path: Path, mode: int) -> tuple[int, Path]:
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=path.parent)
    try:
        if mode != FILE_MODE:
            # fchmod, not the open mode: the umask must not narrow what was asked for.
            os.fchmod(fd, mode)
    except BaseException:
        os.close(fd)
        Path(name).unlink(missing_ok=True)
        raise
    return fd, Path(name)


def write_private(path: Path, text: str, *, mode: int = FILE_MODE) -> None:
    """Write ``text`` to ``path`` atomically (:class:`AtomicFile`) with ``mode``."""
    with AtomicFile.text(path, mode=mode) as handle:
        handle.write(text)


def parse_mode(text: str) -> int:
    """An octal file mode such as ``640`` or ``0644`` (for ``--mode``)."""
    try:
        mode = int(text, 8)
    except ValueError:
        raise UsageError(f"--mode must be octal, such as 600 or 644 (got {text!r})") from None
    if not 0 <= mode <= 0o777:
        raise UsageError(f"--mode must be between 000 and 777 (got {text!r})")
    return mode


def check_key_file(path: Path) -> None:
    """Refuse a private key others may read, as ssh does, with the fix in the message."""
    try:
        mode = path.stat().st_mode
    except OSError as exc:
        raise KeyFileError(f"cannot read key {path}: {exc.strerror}") from None
    if mode & _WIDE:
        raise KeyFileError(
            f"key {path} is readable by others (mode {stat.S_IMODE(mode):04o}); "
            f"run 'chmod 600 {path}'"
        )


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``, for output and logs."""
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return "<invalid URL>"
    if not password:
        return url
    userinfo, _, host = parts.netloc.rpartition("@")
    user = userinfo.split(":", 1)[0]
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))
