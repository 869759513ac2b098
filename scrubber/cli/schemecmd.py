"""scrubber scheme canonicalize|hash: interop tools for responder authors.

Output formats are part of the published interface (docs/scheme.md): keep
them stable.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

import click
from argon2.exceptions import HashingError

from scrubber import scheme
from scrubber.errors import UsageError


@click.group("scheme")
def scheme_group() -> None:
    """The published scheme dni-argon2id-v1, for building compatible tools."""


@scheme_group.command()
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line (JSON Lines).")
def canonicalize(as_json: bool) -> None:
    """Canonicalize addresses read from stdin, one per line.

    Prints the canonical form, or REJECT<TAB><reason>, one line per input
    line, in order; with --json, {"canonical": ...} or {"reject": ...}.

    \b
    Example:
      printf 'John.Doe+news@Example.COM\\n' | scrubber scheme canonicalize
    """
    for line in _stdin_lines():
        result = scheme.try_canonicalize(line)
        if isinstance(result, scheme.Reject):
            _emit(as_json, {"reject": result.value}, f"REJECT\t{result.value}")
        else:
            _emit(as_json, {"canonical": result}, result)


@scheme_group.command("hash")
@click.option("--salt", required=True, help="The batch salt, 32 hex digits.")
# The upper bounds are Argon2's own (32-bit costs, 24-bit lanes).
@click.option("--t", "t", default=2, show_default=True, type=click.IntRange(1, 2**32 - 1))
@click.option(
    "--m", "m", default=1024, show_default=True, type=click.IntRange(8, 2**32 - 1), help="KiB."
)
@click.option("--p", "p", default=1, show_default=True, type=click.IntRange(1, 2**24 - 1))
@click.option(
    "--tag-length",
    default=scheme.DEFAULT_TAG_LEN,
    show_default=True,
    type=click.IntRange(scheme.MIN_TAG_LEN, scheme.MAX_TAG_LEN),
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line (JSON Lines).")
def hash_(salt: str, t: int, m: int, p: int, tag_length: int, as_json: bool) -> None:
    """Hash addresses read from stdin, one per line.

    Prints canonical<TAB>H hex<TAB>tag hex<TAB>proof base64url, or
    REJECT<TAB><reason>, one line per input line, in order; with --json,
    {"canonical", "h", "tag", "proof"} or {"reject": ...}.

    \b
    Example:
      echo jane@example.com | scrubber scheme hash --salt 000102030405060708090a0b0c0d0e0f
    """
    try:
        salt_bytes = scheme.parse_salt(salt)
        params = scheme.Params(t=t, m=m, p=p, tag_length=tag_length)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for line in _stdin_lines():
        result = scheme.try_canonicalize(line)
        if isinstance(result, scheme.Reject):
            _emit(as_json, {"reject": result.value}, f"REJECT\t{result.value}")
            continue
        try:
            d = scheme.digest(result, salt_bytes, params)
        except HashingError as exc:  # e.g. more memory than the machine can give
            raise UsageError(f"cannot hash with t={t} m={m} p={p}: {exc}") from None
        proof = scheme.b64url(d.proof)
        values = {"canonical": result, "h": d.h.hex(), "tag": d.tag.hex(), "proof": proof}
        _emit(as_json, values, "\t".join(values.values()))


def _emit(as_json: bool, values: dict[str, str], line: str) -> None:
    text = json.dumps(values, ensure_ascii=False) if as_json else line
    sys.stdout.write(text + "\n")


def _stdin_lines() -> Iterator[str]:
    # Bytes, not sys.stdin: its error handler depends on the locale, and a
    # line that is not UTF-8 must become a reject (invalid-character), not a crash.
    for raw in sys.stdin.buffer:
        yield raw.decode("utf-8", "surrogateescape").rstrip("\r\n")


COMMANDS = [scheme_group]
