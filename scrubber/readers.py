"""Streaming readers for address files: plain text, CSV, and .gz of either.

Pure parsing over file objects: nothing here touches the database. A reader
yields ``(line_number, text)`` tuples one row at a time, so a file of millions of
lines is never held in memory.
"""

from __future__ import annotations

import csv
import gzip
import io
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from scrubber.errors import InputFileError

GZIP_MAGIC = b"\x1f\x8b"
ADDRESS_HEADERS = ("email", "e-mail", "email_address", "emailaddress", "address", "mail")
_SNIFF_BYTES = 65536
_PROGRESS_EVERY = 4096  # rows between progress callbacks: tell() per row is costly


# (line number, address cell): a plain tuple, because building a richer
# object per row costs more than everything else the reader does.
SourceLine = tuple[int, str]


def open_binary(path: Path) -> io.BufferedReader:
    try:
        return path.open("rb")
    except OSError as exc:
        raise InputFileError(f"cannot read {path}: {exc.strerror}") from None


def read_addresses(
    path: Path, *, column: str | None = None, on_bytes: Callable[[int], None] | None = None
) -> Iterator[SourceLine]:
    """Yield the address cells of ``path``; raise InputFileError on unusable input."""
    raw = open_binary(path)
    with raw:
        # peek, not read + seek: pipes and FIFOs cannot seek.
        gzipped = raw.peek(2)[:2] == GZIP_MAGIC
        binary: BinaryIO = gzip.GzipFile(fileobj=raw, mode="rb") if gzipped else raw  # type: ignore[assignment]
        # utf-8-sig: spreadsheet exports often start with a byte-order mark.
        text = io.TextIOWrapper(binary, encoding="utf-8-sig", errors="strict", newline="")
        stem = path.name.removesuffix(".gz") if gzipped else path.name
        is_csv = column is not None or stem.lower().endswith((".csv", ".tsv"))
        rows = _csv_cells(text, path, column) if is_csv else _text_lines(text)
        try:
            yield from _with_progress(rows, raw, on_bytes)
        except UnicodeDecodeError:
            raise InputFileError(f"{path} is not UTF-8 text (binary data?)") from None
        except (OSError, EOFError, gzip.BadGzipFile) as exc:
            raise InputFileError(f"cannot read {path}: {exc}") from None
        except csv.Error as exc:
            raise InputFileError(f"{path} is not valid CSV: {exc}") from None


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


def _text_lines(text: io.TextIOWrapper) -> Iterator[SourceLine]:
    for number, line in enumerate(text, start=1):
        if "\x00" in line:
            raise UnicodeDecodeError("utf-8", b"\x00", 0, 1, "NUL byte")
        stripped = line.strip()
        if stripped and stripped[0] != "#":
            yield number, line.rstrip("\r\n")


def _csv_cells(text: io.TextIOWrapper, path: Path, column: str | None) -> Iterator[SourceLine]:
    # Sniff a sample that ends at a line end, then read on from the same stream.
    sample = text.read(_SNIFF_BYTES)
    sample += text.readline()
    if "\x00" in sample:
        raise UnicodeDecodeError("utf-8", b"\x00", 0, 1, "NUL byte")
    try:
        dialect: type[csv.Dialect] | csv.Dialect = csv.Sniffer().sniff(sample, delimiters=",;\t|")
    except csv.Error:
        dialect = csv.excel
    reader = csv.reader(itertools.chain(io.StringIO(sample, newline=""), text), dialect)
    header = next(reader, None)
    if header is None:
        return
    index, header_row = _address_column(header, column, path)
    if not header_row:
        yield 1, header[index]
    for row in reader:
        if len(row) > index and row[index].strip():
            yield reader.line_num, row[index]


def _address_column(header: list[str], column: str | None, path: Path) -> tuple[int, bool]:
    """Return (column index, whether row 1 is a header)."""
    names = [cell.strip().lower() for cell in header]
    if column is not None:
        if column.isdigit():
            index = int(column) - 1
            if not 0 <= index < len(header):
                raise InputFileError(f"{path} has no column {column} (it has {len(header)})")
            return index, "@" not in header[index]
        if column.lower() in names:
            return names.index(column.lower()), True
        raise InputFileError(f"{path} has no column named {column!r}")
    for wanted in ADDRESS_HEADERS:
        if wanted in names:
            return names.index(wanted), True
    with_at = [i for i, cell in enumerate(header) if "@" in cell]
    if len(with_at) == 1:
        return with_at[0], False
    raise InputFileError(
        f"{path}: no address column found (looked for a header named "
        f"{', '.join(ADDRESS_HEADERS[:3])}...); pass --column NAME or NUMBER"
    )
