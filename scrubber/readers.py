"""Streaming readers for address files: plain text, CSV, and .gz of either.

Pure parsing over file objects: nothing here touches the database. A reader
yields ``(line_number, text)`` tuples one row at a time, so a file of millions of
lines is never held in memory, and no line is read past ``MAX_LINE``
characters: a longer one is a reject (``line-too-long``), and one past
``MAX_RUN`` without a line end (a file that is not a list) ends the read.
Bulk imports read plain-text files a block of lines at a time instead
(:func:`read_address_blocks`): the same lines, split in C.

Real exports are taken as they are: the encoding is found from a byte-order
mark, UTF-16 without one, UTF-8, or else charset-normalizer's guess
(``encoding=`` overrides); the address column by the header names of common
exports, else by which column's values look like addresses; a
``Name <address>`` cell gives its address. ``Path("-")`` is standard input.
"""

from __future__ import annotations

import codecs
import contextlib
import csv
import gzip
import io
import itertools
import sys
from collections.abc import Callable, Iterator
from email.utils import parseaddr
from pathlib import Path
from typing import NamedTuple, Protocol, cast

from scrubber.errors import InputFileError

GZIP_MAGIC = b"\x1f\x8b"
STDIN = Path("-")
MAX_LINE = 4096  # characters; an address is at most 254
MAX_RUN = 1 << 20  # characters without a line end after which a file is not a list
LINE_TOO_LONG = "line-too-long"
# Header names, normalized (case-folded, letters and digits only), best first:
# Mailchimp, Sendinblue/Brevo, Mailjet, HubSpot, Outlook, Excel and French,
# Spanish, German, Dutch and Italian list managers. A bare "address" is last:
# in many exports it is the postal address.
ADDRESS_HEADERS = (
    "email",
    "emailaddress",
    "email1address",
    "emailaddr",
    "mail",
    "courriel",
    "adressecourriel",
    "adresseemail",
    "adressemail",
    "adresseelectronique",
    "adresseélectronique",
    "correo",
    "correoelectronico",
    "correoelectrónico",
    "emailadresse",
    "emailadres",
    "indirizzoemail",
    "postaelettronica",
    "subscriberemail",
    "contactemail",
    "primaryemail",
    "useremail",
    "workemail",
    "address",
)
_SNIFF_BYTES = 65536
_SNIFF_ROWS = 200  # rows looked at to find the column that holds addresses
_PROGRESS_EVERY = 4096  # rows between progress callbacks: tell() per row is costly
BLOCK_CHARS = 1 << 16  # characters the block reader takes at a time


# (line number, address cell): a plain tuple, because building a richer
# object per row costs more than everything else the reader does.
SourceLine = tuple[int, str]
OnReject = Callable[[int, str, str], None]  # line number, shown input, reason
RejectedLine = tuple[int, str, str]  # line number, shown input, reason


class LineBlock(NamedTuple):
    """Whole lines of a plain-text file, for canonicalizing a block at a time."""

    first: int  # the number of the first line
    text: str  # the lines without their ends, joined by "\n"; a refused line is empty
    lines: list[str]  # the same, split
    rejects: list[RejectedLine]  # lines the reader refused (too long), by number


class CellBlock(NamedTuple):
    """Rows as :func:`read_addresses` yields them (CSV, pipes), a few thousand at a time."""

    rows: list[SourceLine]
    rejects: list[RejectedLine]


class _LineSource(Protocol):
    def readline(self, size: int = -1, /) -> str: ...


def open_binary(path: Path) -> io.BufferedReader:
    # A buffer as large as the sample the encoding is detected on, for peek().
    if path == STDIN:
        return io.BufferedReader(io.FileIO(sys.stdin.fileno(), "rb", closefd=False), _SNIFF_BYTES)
    try:
        return io.BufferedReader(io.FileIO(path, "rb"), _SNIFF_BYTES)
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror}") from None


def read_addresses(
    path: Path,
    *,
    column: str | None = None,
    encoding: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_reject: OnReject | None = None,
    on_encoding: Callable[[str], None] | None = None,
) -> Iterator[SourceLine]:
    """Yield the address cells of ``path``; raise InputFileError on unusable input."""
    with _opened(path, column, encoding, on_encoding) as (raw, text, is_csv):
        rows = _rows(text, path, column, is_csv, on_reject)
        yield from _with_progress(rows, raw, on_bytes)


def read_address_blocks(
    path: Path,
    *,
    column: str | None = None,
    encoding: str | None = None,
    on_bytes: Callable[[int], None] | None = None,
    on_encoding: Callable[[str], None] | None = None,
) -> Iterator[LineBlock | CellBlock]:
    """What :func:`read_addresses` reads, a block at a time, for bulk imports.

    A plain-text regular file comes as :class:`LineBlock` s of its raw lines
    (the caller applies :func:`text_cell`), read and split in large pieces;
    CSV and pipes (whose rows must stream) as :class:`CellBlock` s. Each block
    carries the rejects of its lines, so callers can keep file order.
    """
    rejected: list[RejectedLine] = []

    def reject(number: int, shown: str, reason: str) -> None:
        rejected.append((number, shown, reason))

    def taken() -> list[RejectedLine]:
        out = rejected[:]
        rejected.clear()
        return out

    with _opened(path, column, encoding, on_encoding) as (raw, text, is_csv):
        if is_csv or not raw.seekable():
            rows = _with_progress(_rows(text, path, column, is_csv, reject), raw, on_bytes)
            while group := list(itertools.islice(rows, _PROGRESS_EVERY)):
                yield CellBlock(group, taken())
            return
        last = 0
        for first, block, lines in _line_blocks(text, path, reject):
            if on_bytes is not None:
                position = raw.tell()
                on_bytes(position - last)
                last = position
            yield LineBlock(first, block, lines, taken())
        if on_bytes is not None:
            on_bytes(raw.tell() - last)


@contextlib.contextmanager
def _opened(
    path: Path,
    column: str | None,
    encoding: str | None,
    on_encoding: Callable[[str], None] | None,
) -> Iterator[tuple[io.BufferedReader, io.TextIOWrapper, bool]]:
    """``path`` opened as text: (its raw file, the text, whether it is CSV);
    what goes wrong while it is read becomes one InputFileError."""
    raw = open_binary(path)
    with raw:
        # peek, not read + seek: pipes and FIFOs cannot seek.
        gzipped = raw.peek(2)[:2] == GZIP_MAGIC
        buffered = _ungzipped(raw) if gzipped else raw
        try:
            chosen = _check_encoding(encoding) if encoding else detect_encoding(buffered)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputFileError(f"cannot read {path}: {exc}") from None
        if on_encoding is not None:
            on_encoding(chosen)
        text = io.TextIOWrapper(buffered, encoding=chosen, errors="strict", newline="")
        stem = path.name.removesuffix(".gz") if gzipped else path.name
        is_csv = column is not None or stem.lower().endswith((".csv", ".tsv"))
        try:
            yield raw, text, is_csv
        except UnicodeDecodeError as exc:
            raise InputFileError(
                f"{path} is not {chosen.upper() if chosen.startswith('utf') else chosen} "
                f"text ({exc.reason}); pass --encoding "
                "(for example cp1252, latin-1 or utf-16)"
            ) from None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputFileError(f"cannot read {path}: {exc}") from None
        except csv.Error as exc:
            raise InputFileError(f"{path} is not valid CSV: {exc}") from None


def _rows(
    text: io.TextIOWrapper,
    path: Path,
    column: str | None,
    is_csv: bool,
    on_reject: OnReject | None,
) -> Iterator[SourceLine]:
    lines = _bounded_lines(text, path, on_reject)
    return _csv_cells(lines, path, column) if is_csv else _text_lines(lines)


def detect_file_encoding(path: Path) -> str | None:
    """The encoding :func:`read_addresses` would use for ``path`` (None for stdin)."""
    if path == STDIN:
        return None
    raw = open_binary(path)
    with raw:
        try:
            return detect_encoding(_ungzipped(raw) if raw.peek(2)[:2] == GZIP_MAGIC else raw)
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputFileError(f"cannot read {path}: {exc}") from None


def _ungzipped(raw: io.BufferedReader) -> io.BufferedReader:
    gz = gzip.GzipFile(fileobj=raw, mode="rb")
    return io.BufferedReader(cast(io.RawIOBase, gz), _SNIFF_BYTES)


def detect_encoding(stream: io.BufferedReader) -> str:
    """The encoding of ``stream`` from its first bytes (peeked, not consumed)."""
    sample = stream.peek(_SNIFF_BYTES)[:_SNIFF_BYTES]
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"  # the codec reads and drops the mark
    even, odd = sample[0:200:2], sample[1:200:2]
    if len(sample) >= 4 and odd.count(0) > len(odd) * 0.6 > even.count(0):
        return "utf-16-le"  # Excel's "Unicode Text" without a mark
    if len(sample) >= 4 and even.count(0) > len(even) * 0.6 > odd.count(0):
        return "utf-16-be"
    try:
        sample.decode("utf-8")
    except UnicodeDecodeError as exc:
        # A sequence cut at the end of the sample is still UTF-8.
        if exc.start < len(sample) - 3 or len(sample) < _SNIFF_BYTES:
            return _guess_legacy(sample) or "utf-8"
    return "utf-8"


def _guess_legacy(sample: bytes) -> str | None:
    if b"\x00" in sample:
        return None  # binary: let UTF-8 decoding name the problem
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        return None
    # Where Windows-1252 reads the bytes the same way (é, ü: cp1250 and
    # latin-1 agree), name it: it is what Western spreadsheets write.
    with contextlib.suppress(UnicodeDecodeError):
        if sample.decode("cp1252") == str(best):
            return "cp1252"
    return best.encoding


def _check_encoding(name: str) -> str:
    try:
        return codecs.lookup(name).name
    except LookupError:
        raise InputFileError(f"unknown encoding {name!r} (try utf-8, cp1252, latin-1)") from None


def _bounded_lines(
    text: _LineSource, path: Path, on_reject: OnReject | None, first: int = 1
) -> Iterator[str]:
    """The lines of ``text``, none longer than MAX_LINE: longer ones are rejected.

    ``first``: the number of the first line (the rest of a file)."""
    number = first - 1
    while True:
        line = text.readline(MAX_LINE + 1)
        if not line:
            return
        number += 1
        if "\x00" in line:
            raise UnicodeDecodeError("utf-8", b"\x00", 0, 1, "NUL byte: binary data?")
        if len(line) <= MAX_LINE or line.endswith("\n"):
            yield line
            continue
        _skip_rest(text, path, number)
        if on_reject is not None:
            on_reject(number, line[:40] + "...", LINE_TOO_LONG)
        yield "\n"  # keeps the line numbers of what follows


def _line_blocks(
    text: io.TextIOWrapper, path: Path, on_reject: OnReject | None
) -> Iterator[tuple[int, str, list[str]]]:
    """The lines :func:`_bounded_lines` gives, as (number of the first, the
    lines without their ends joined by "\n", the same split), read
    BLOCK_CHARS at a time and split in C while every line is ordinary: it
    ends in "\n" or "\r\n", is shorter than MAX_LINE and holds no NUL. From
    the first piece that is not, the rest of the file goes through
    :func:`_bounded_lines` itself, so its rejects and errors are the same."""
    first, carry = 1, ""
    while True:
        piece = text.read(BLOCK_CHARS)
        while piece.endswith("\r") and (more := text.read(1)):
            piece += more  # keeps a "\r\n" whole
        buffer = carry + piece
        cut = buffer.rfind("\n") + 1 if piece else len(buffer)
        body, carry = buffer[:cut], buffer[cut:]
        if "\r" in body:
            body = body.replace("\r\n", "\n")
        body = body.removesuffix("\n")
        lines = body.split("\n") if cut else []
        ordinary = "\x00" not in buffer and "\r" not in body and len(carry) < MAX_LINE
        if not ordinary or (lines and max(map(len, lines)) >= MAX_LINE):
            rest = _bounded_lines(_Prefixed(buffer, text), path, on_reject, first)
            yield from _line_groups(rest, first)
            return
        if lines:
            yield first, body, lines
            first += len(lines)
        if not piece:
            return


def _line_groups(lines: Iterator[str], first: int) -> Iterator[tuple[int, str, list[str]]]:
    """:func:`_line_blocks`' blocks made of lines read one by one."""
    while group := [line.rstrip("\r\n") for line in itertools.islice(lines, _PROGRESS_EVERY)]:
        yield first, "\n".join(group), group
        first += len(group)


class _Prefixed:
    """Text already read (``head``, not ending in a "\r" unless the file
    does) followed by the rest of ``stream``, read line by line as the
    stream would be (newline="": "\n", "\r\n" and "\r" end a line)."""

    def __init__(self, head: str, stream: io.TextIOWrapper) -> None:
        self._head: io.StringIO | None = io.StringIO(head, newline="")
        self._stream = stream

    def readline(self, size: int = -1, /) -> str:
        if self._head is None:
            return self._stream.readline(size)
        line = self._head.readline(size)
        if line.endswith(("\n", "\r")) or len(line) == size:
            return line
        self._head = None  # a line the head ends in the middle of goes on in the stream
        return line + self._stream.readline(size - len(line) if size >= 0 else -1)


def _skip_rest(text: _LineSource, path: Path, number: int) -> None:
    skipped = MAX_LINE
    while True:
        chunk = text.readline(MAX_LINE)
        if "\x00" in chunk:
            raise UnicodeDecodeError("utf-8", b"\x00", 0, 1, "NUL byte: binary data?")
        skipped += len(chunk)
        if not chunk or chunk.endswith("\n"):
            return
        if skipped > MAX_RUN:
            raise InputFileError(
                f"{path}: line {number} runs past {MAX_RUN // 1024} KiB without a line end; "
                "not an address list"
            )


def _with_progress(
    rows: Iterator[SourceLine], raw: io.BufferedReader, on_bytes: Callable[[int], None] | None
) -> Iterator[SourceLine]:
    if on_bytes is None or not raw.seekable():  # a pipe has no position to report
        yield from rows
        return
    last = 0
    for count, row in enumerate(rows):
        if count % _PROGRESS_EVERY == 0:
            position = raw.tell()
            on_bytes(position - last)
            last = position
        yield row
    on_bytes(raw.tell() - last)


def unwrap(cell: str) -> str:
    """``"Jane Doe" <jane@example.com>`` -> ``jane@example.com``; other text unchanged."""
    if ">" not in cell or "<" not in cell:
        return cell
    _, address = parseaddr(cell)
    return address or cell


def text_cell(line: str) -> str | None:
    """The address cell of a line of a plain-text list (its end dropped), or
    None for a blank line or a comment."""
    stripped = line.strip()
    if stripped and stripped[0] != "#":
        return unwrap(line)
    return None


def _text_lines(lines: Iterator[str]) -> Iterator[SourceLine]:
    for number, line in enumerate(lines, start=1):
        cell = text_cell(line.rstrip("\r\n"))
        if cell is not None:
            yield number, cell


def _csv_cells(lines: Iterator[str], path: Path, column: str | None) -> Iterator[SourceLine]:
    # Sniff the dialect on a sample of whole lines, then read on from the same stream.
    sample: list[str] = []
    size = 0
    for line in lines:
        sample.append(line)
        size += len(line)
        if size >= _SNIFF_BYTES:
            break
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(
            "".join(sample), delimiters=",;\t|"
        )
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(itertools.chain(sample, lines), dialect)
    head = list(itertools.islice(reader, _SNIFF_ROWS))
    if not head:
        return
    index, header_row = _address_column(head, column, path)
    numbered = itertools.chain(enumerate(head, start=1), ((reader.line_num, r) for r in reader))
    for number, row in numbered:
        if number == 1 and header_row:
            continue
        if len(row) > index and row[index].strip():
            yield number, unwrap(row[index])


def _address_column(rows: list[list[str]], column: str | None, path: Path) -> tuple[int, bool]:
    """Return (column index, whether row 1 is a header)."""
    header = rows[0]
    names = [_normal(cell) for cell in header]
    if column is not None:
        return _named_column(header, names, column, path)
    for wanted in ADDRESS_HEADERS:
        if wanted in names:
            return names.index(wanted), True
    index = _sniff_column(rows)
    if index is None:
        raise InputFileError(
            f"{path}: no address column found (no header such as Email, Email Address, "
            "E-mail or Courriel, and no column of addresses); pass --column NAME or NUMBER"
        )
    return index, not _looks_like_address(header[index] if index < len(header) else "")


def _named_column(header: list[str], names: list[str], column: str, path: Path) -> tuple[int, bool]:
    if column.isdigit():
        index = int(column) - 1
        if not 0 <= index < len(header):
            raise InputFileError(f"{path} has no column {column} (it has {len(header)})")
        return index, not _looks_like_address(header[index])
    if _normal(column) in names:
        return names.index(_normal(column)), True
    shown = ", ".join(repr(h) for h in header[:8])
    raise InputFileError(f"{path} has no column named {column!r} (it has {shown})")


def _sniff_column(rows: list[list[str]]) -> int | None:
    """The column whose values are mostly addresses, if one is."""
    width = max(len(r) for r in rows)
    best, best_share = None, 0.5
    for index in range(width):
        values = [r[index] for r in rows if len(r) > index and r[index].strip()]
        if values:
            share = sum(_looks_like_address(v) for v in values) / len(values)
            if share > best_share:
                best, best_share = index, share
    return best


def _looks_like_address(cell: str) -> bool:
    local, at, domain = unwrap(cell).strip().rpartition("@")
    return bool(at and local and "." in domain and " " not in domain)


def _normal(name: str) -> str:
    return "".join(ch for ch in name.casefold() if ch.isalnum())
