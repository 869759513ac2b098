"""Scrubbing a list against hashed suppression files (OPTIZMO, UnsubCentral).

Such a file is one hex digest a line of each address lower-cased and
trimmed; the algorithm follows from the digest length (32 MD5, 40 SHA-1,
64 SHA-256, 128 SHA-512). An address is left out when the digest of its
original spelling (lower case, trimmed) or of its canonical form is in a
file; the summary counts each.

Memory is bounded by the list, not the file (a Python set of 10M digests
is near 1 GB): the list's digests are kept as a set of their 64-bit
prefixes, the file is streamed once in blocks, each block's prefixes are
intersected with that set in C (``struct.iter_unpack``), and only the lines
whose prefix matched are kept, as full digests: an address is left out only
when its full digest is among them.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import operator
import struct
import zipfile
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from itertools import compress
from pathlib import Path
from typing import BinaryIO

from scrubber.errors import InputFileError
from scrubber.readers import GZIP_MAGIC

ALGORITHMS = {32: "md5", 40: "sha1", 64: "sha256", 128: "sha512"}
BLOCK_LINES = 1 << 16  # lines per block read from a suppression file
_HEX = b"0123456789abcdefABCDEF"
_PREFIX = struct.Struct("<Q")


@dataclass
class MinusSummary:
    left_out: int = 0
    by_original: int = 0  # matched by the original spelling, lower case and trimmed
    by_canonical: int = 0  # matched only by the canonical form


@dataclass(frozen=True)
class HashedFile:
    path: Path
    algorithm: str
    hex_length: int


def _open(path: Path) -> BinaryIO:
    """The file's bytes: plain, gzip, or the members of a zip, one after another."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                names = [i.filename for i in archive.infolist() if not i.is_dir()]
                return io.BytesIO(b"\n".join(archive.read(n).rstrip(b"\r\n") for n in names))
        raw = path.open("rb")
        if raw.peek(2)[:2] != GZIP_MAGIC:
            return raw
        raw.close()
        return gzip.open(path, "rb")  # type: ignore[return-value]
    except (OSError, zipfile.BadZipFile) as exc:
        raise InputFileError(f"cannot read {path}: {exc}") from None


def _blocks(path: Path) -> Iterator[tuple[int, list[bytes]]]:
    """(first line number, lines) of ``path``, a block at a time, line ends removed."""
    handle = _open(path)
    number = 1
    try:
        with handle:
            while True:
                data = handle.read(BLOCK_LINES * 33)
                if not data:
                    return
                data += handle.readline()  # end the block at a line end
                # C-level splitting: a per-line loop cost more than the rest.
                lines = data.replace(b"\r", b"").split(b"\n")
                if data.endswith(b"\n"):
                    lines.pop()
                yield number, lines
                number += len(lines)
    except (OSError, EOFError, gzip.BadGzipFile) as exc:
        raise InputFileError(f"cannot read {path}: {exc}") from None


def _check(path: Path, number: int, lines: list[bytes], length: int | None) -> int:
    """The digest length of a valid block; InputFileError naming the first bad line.

    The whole block is checked with C-level calls; only a bad block is
    walked line by line to name the line.
    """
    if length is None:
        length = len(lines[0]) if lines else 32
    if (
        length in ALGORITHMS
        and set(map(len, lines)) <= {length}
        and not b"".join(lines).translate(None, _HEX)
    ):
        return length
    for offset, line in enumerate(lines):
        if length not in ALGORITHMS or len(line) != length or line.translate(None, _HEX):
            bad = number + offset
            break
    if length not in ALGORITHMS:
        raise InputFileError(
            f"{path}:{bad}: a digest of {length} characters (32, 40, 64 or 128 expected)"
        )
    what = "not hex" if len(line) == length else f"{len(line)} characters, not {length}"
    raise InputFileError(f"{path}:{bad}: {what} (one {ALGORITHMS[length]} digest a line)")


def _valid_blocks(path: Path) -> Iterator[tuple[int, list[bytes]]]:
    """The blocks of ``path`` after checking them; the first yields the length."""
    length: int | None = None
    for number, lines in _blocks(path):
        # A blank last line is a trailing newline, not a digest.
        while lines and not lines[-1]:
            lines.pop()
        length = _check(path, number, lines, length)
        yield length, lines


def digest(algorithm: str, text: str) -> bytes:
    found: bytes = _CONSTRUCTORS[algorithm](text.encode("utf-8")).digest()
    return found


# hashlib.new(name) looks the name up per call; the constructors do not.
_CONSTRUCTORS = {name: getattr(hashlib, name) for name in ALGORITHMS.values()}


def _prefixes(lines: list[bytes], length: int) -> Iterator[int]:
    """The 64-bit prefix of each hex digest in ``lines``, computed in C."""
    raw = bytes.fromhex(b"".join(lines).decode("ascii"))
    fmt = struct.Struct(f"<Q{length // 2 - 8}x")
    return map(operator.itemgetter(0), fmt.iter_unpack(raw))


def prefix(value: bytes) -> int:
    return int(_PREFIX.unpack_from(value)[0])


class Scrubber:
    """The digests of a list found in one or more hashed suppression files."""

    def __init__(self, paths: Iterable[Path]) -> None:
        self.paths = list(paths)
        # Checked now, so a bad file fails before anything is written.
        self.lengths = {path: self._length(path) for path in self.paths}

    @property
    def algorithms(self) -> dict[str, str]:
        return {str(path): ALGORITHMS[n] for path, n in self.lengths.items()}

    def matches(self, pairs: Callable[[], Iterable[tuple[str, str]]]) -> dict[str, set[bytes]]:
        """Per algorithm, the full digests in some file whose 64-bit prefix is
        that of a digest of the list; ``pairs()`` gives the list's (original,
        canonical) pairs and is called once per algorithm."""
        found: dict[str, set[bytes]] = {}
        for length in sorted(set(self.lengths.values())):
            algorithm = ALGORITHMS[length]
            wanted = {prefix(d) for d in _list_digests(pairs(), algorithm)}
            same = [path for path, n in self.lengths.items() if n == length]
            found[algorithm] = set()
            for path in same:
                for _, lines in _valid_blocks(path):
                    found[algorithm] |= _full_matches(lines, length, wanted)
        return found

    @staticmethod
    def _length(path: Path) -> int:
        for length, _ in _valid_blocks(path):
            return length
        raise InputFileError(f"{path} holds no digests")


def _list_digests(pairs: Iterable[tuple[str, str]], algorithm: str) -> Iterator[bytes]:
    for original, canonical in pairs:
        lowered = original.strip().lower()
        yield digest(algorithm, lowered)
        if canonical != lowered:
            yield digest(algorithm, canonical)


def _full_matches(lines: list[bytes], length: int, wanted: set[int]) -> set[bytes]:
    """The digests of ``lines`` whose 64-bit prefix is wanted (all in C but the
    matches themselves): the list's full digests are checked against these."""
    prefixes = list(_prefixes(lines, length))
    if wanted.isdisjoint(prefixes):
        return set()
    hit = wanted.intersection(prefixes)
    return {
        bytes.fromhex(line.decode("ascii"))
        for line in compress(lines, map(hit.__contains__, prefixes))
    }


def scrub(
    pairs: Iterable[tuple[str, str]], found: dict[str, set[bytes]], summary: MinusSummary
) -> Iterator[str]:
    """The original spellings of ``pairs`` whose digests ``found`` does not hold."""
    for original, canonical in pairs:
        lowered = original.strip().lower()
        if any(digest(a, lowered) in hits for a, hits in found.items()):
            summary.by_original += 1
        elif canonical != lowered and any(digest(a, canonical) in h for a, h in found.items()):
            summary.by_canonical += 1
        else:
            yield original
            continue
        summary.left_out += 1
