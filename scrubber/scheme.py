"""The published scheme: canonical form, hash, tag, proof; v2's items and GCS.

``dni-argon2id-v1`` publishes the first L octets of H as the tag, so every
batch of one salt epoch shows an address under the same tag. ``v2`` maps
H[0:16] through SHA-256 keyed by a per-batch nonce to a value in
[0, Total * M) and publishes the values as a Golomb-coded set (BIP158), so
two batches share no more values than chance and cost ~21 bits per address.

Pure: no I/O, no clock, no randomness. docs/scheme.md is the normative text;
this module is its reference implementation, and tests/test_scheme.py checks
both against the same vectors.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import enum
import functools
import hashlib
import itertools
import re
import struct
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import idna
from argon2.low_level import Type, hash_secret_raw

from scrubber.errors import Rejected, SchemeError
from scrubber.unicode14 import UNASSIGNED

SCHEME_NAME = "dni-argon2id-v1"
SCHEME_V2 = "dni-argon2id-v2"
NONCE_LEN = 16  # 128 bits, per batch
ITEM_LEN = 8  # a v2 value as published: 8 octets, big-endian
ITEM_DOMAIN = b"dni-argon2id-v2 item\x00"  # domain separation of the keyed hash
GCS_P, GCS_M = 19, 784931  # BIP158's defaults: false positives 1/M, ~P+2 bits per item
MAX_GCS_P, MAX_GCS_M = 32, 2**32 - 1
MAX_TOTAL = 2**32 - 1  # keeps Total * M below 2**64
HASH_LEN = 32
PROOF_SLICE = slice(16, 32)
SALT_LEN = 16
MIN_TAG_LEN, MAX_TAG_LEN, DEFAULT_TAG_LEN = 4, 16, 8
MAX_LOCAL_OCTETS = 64
MAX_ADDRESS_OCTETS = 254
GMAIL_DOMAINS = frozenset({"gmail.com", "googlemail.com"})
_HOST_LABEL = re.compile(r"^[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$")
# Unicode White_Space (stripped at the ends, rejected inside), control
# characters (Cc) and lone surrogates (text that was not valid UTF-8). An
# explicit set rather than str.isspace/str.strip, which differ from Unicode's
# White_Space property (they include U+001C..U+001F).
WHITE_SPACE = (
    "\t\n\x0b\x0c\r \x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005"
    "\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000"
)
_PLAIN = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]+@[A-Za-z0-9.-]+")
# canonicalize_block's plain lines: each one an ASCII address whose
# canonical form is its lower case without the +tag (and, at gmail.com or
# googlemail.com, without dots in the local part and at gmail.com). Not "#"
# first; a local part of 1-64 characters before any "+", not all dots (so
# never empty once the tag and gmail's dots are dropped); domain labels of
# letters and digits with single inner hyphens (so no "--": A-labels and the
# reserved positions are left to canonical_domain) and no final dot. The
# lengths canonicalize checks (local part, label, address) all hold for a
# form of at most _PLAIN_MAX characters, so longer forms are left over.
_PLAIN_LABEL = r"[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*"
_PLAIN_LINE = (
    r"(?!#)(?!\.+[+@])"
    r"[A-Za-z0-9!#$%&'*/=?^_`{|}~.-]{1,64}(?:\+[A-Za-z0-9!#$%&'*+/=?^_`{|}~.-]*)?"
    rf"@{_PLAIN_LABEL}(?:\.{_PLAIN_LABEL})*(?:\n|\Z)"
)
_GMAIL_ENDS = ("@gmail.com", "@googlemail.com")
# Plain lines one after another, from a line's start: the match ends where
# the first line that is not plain starts (possessive: no backtracking).
_PLAIN_LINES = re.compile(f"(?:{_PLAIN_LINE})*+")
_PLAIN_MAX = 64
_PLUS_TAG = re.compile(r"\+[^@\n]*(?=@)")  # from the first "+" to the "@"
_SUSPECT = re.compile(f'[{WHITE_SPACE}\x00-\x1f\x7f-\x9f\ud800-\udfff"]')
# Code points unassigned in Unicode 14.0.0, the version the canonical form is
# defined against: an interpreter with newer data would lower-case or
# IDNA-map some of them, so they are rejected on every interpreter.
_UNASSIGNED_STARTS = tuple(first for first, _ in UNASSIGNED)
_FIRST_UNASSIGNED = chr(UNASSIGNED[0][0])  # U+0378: most text never gets there


class Reject(enum.StrEnum):
    """Why an address has no canonical form. The values are the stable codes."""

    EMPTY = "empty"
    WHITESPACE = "whitespace"
    CONTROL = "control-character"
    INVALID = "invalid-character"
    UNASSIGNED = "unassigned-character"
    QUOTED = "quoted-local-part"
    NO_AT = "no-at-sign"
    MULTIPLE_AT = "multiple-at-signs"
    EMPTY_LOCAL = "empty-local-part"
    EMPTY_DOMAIN = "empty-domain"
    DOMAIN_LITERAL = "domain-literal"
    BAD_DOMAIN = "invalid-domain"
    LOCAL_TOO_LONG = "local-part-too-long"
    TOO_LONG = "address-too-long"


@dataclass(frozen=True, slots=True)
class Params:
    """Argon2id cost parameters and tag length of one salt epoch or batch."""

    t: int = 2
    m: int = 1024
    p: int = 1
    tag_length: int = DEFAULT_TAG_LEN

    def __post_init__(self) -> None:
        if self.t < 1 or self.p < 1 or self.m < 8 * self.p:
            raise SchemeError(f"invalid Argon2 parameters t={self.t} m={self.m} p={self.p}")
        if not MIN_TAG_LEN <= self.tag_length <= MAX_TAG_LEN:
            raise SchemeError(f"tag length must be {MIN_TAG_LEN}..{MAX_TAG_LEN} bytes")


@dataclass(frozen=True, slots=True)
class RespondTo:
    """Where a batch's registrants ping: its Respond-HTTP URL and Respond-SMTP mailbox."""

    http: str
    smtp: str

    @property
    def domain(self) -> str:
        """The response domain (the mailbox's), which Message-IDs also use."""
        return self.smtp.rpartition("@")[2]


@dataclass(frozen=True, slots=True)
class Gcs:
    """Golomb-Rice parameters of a v2 batch: P remainder bits, M the false-positive inverse."""

    p: int = GCS_P
    m: int = GCS_M

    def __post_init__(self) -> None:
        if not 1 <= self.p <= MAX_GCS_P or not 1 <= self.m <= MAX_GCS_M:
            raise SchemeError(f"invalid GCS parameters P={self.p} M={self.m}")


@dataclass(frozen=True, slots=True)
class Digest:
    """One address's Argon2id output with the two published slices."""

    h: bytes
    tag_length: int

    @property
    def tag(self) -> bytes:
        return self.h[: self.tag_length]

    @property
    def proof(self) -> bytes:
        return self.h[PROOF_SLICE]


def canonicalize(address: str) -> str:
    """Return the canonical form of ``address`` or raise :class:`Rejected`."""
    text = address.strip(WHITE_SPACE)
    # Plain ASCII addresses (the bulk of any list) skip the character scan
    # and Unicode normalisation, which cannot change them; same result.
    plain = _PLAIN.fullmatch(text) is not None
    if plain:
        local, _, domain = text.partition("@")
    else:
        _check_characters(text)
        local, _, domain = text.rpartition("@")
        if "@" in local:
            raise Rejected(Reject.MULTIPLE_AT)
        if not local:
            raise Rejected(Reject.EMPTY_LOCAL)
    domain = canonical_domain(domain)
    local = _canonical_local(local, domain, plain=plain)
    if domain in GMAIL_DOMAINS:
        domain = "gmail.com"
    if not local:
        raise Rejected(Reject.EMPTY_LOCAL)
    if len(local.encode()) > MAX_LOCAL_OCTETS:
        raise Rejected(Reject.LOCAL_TOO_LONG)
    result = f"{local}@{domain}"
    if len(result.encode()) > MAX_ADDRESS_OCTETS:
        raise Rejected(Reject.TOO_LONG)
    return result


def canonicalize_block(text: str) -> tuple[list[str], list[int]]:
    """Canonical forms of the lines of ``text`` (joined by "\\n"), a block at a time.

    Returns ``(forms, leftover)``: ``forms`` has one entry per line, and for
    every line whose index is not in ``leftover`` (ascending) it is exactly
    :func:`canonicalize` of that line. Those are the lines most lists are
    made of: a plain ASCII address as it stands, whose canonical form is its
    lower case without the ``+tag``, found by one regex pass over the block
    and transformed by whole-block string operations, not line by line.
    Lines at gmail.com and googlemail.com are plain too: one more
    substitution drops their local part's dots and names gmail.com.
    Every other line (white space, non-ASCII, "--" in the domain, a local
    part of dots, a form over 64 characters, blank, or "#" first: a comment
    in a text list) is left over, for the caller to canonicalize (or skip)
    one by one.
    """
    # Non-ASCII characters only occur in leftover lines: "?" for each keeps
    # the lines apart and lets lower() take its fast ASCII path.
    ascii_text = text if text.isascii() else text.encode("ascii", "replace").decode("ascii")
    lowered = _PLUS_TAG.sub("", ascii_text.lower())
    forms = lowered.split("\n")
    for domain in _GMAIL_ENDS:  # found by str.find: a regex per line costs more
        _gmail_forms(lowered, forms, domain)
    leftover = _unplain_lines(text)
    if max(map(len, forms)) > _PLAIN_MAX:
        long = [index for index, form in enumerate(forms) if len(form) > _PLAIN_MAX]
        leftover = sorted(set(leftover).union(long))
    return forms, leftover


def _gmail_forms(lowered: str, forms: list[str], domain: str) -> None:
    """The forms of the lines of ``lowered`` ending in ``domain`` (gmail's):
    the local part without dots, at gmail.com."""
    index = line_start = 0
    position = lowered.find(domain)
    while position >= 0:
        end = position + len(domain)
        if end == len(lowered) or lowered[end] == "\n":
            index += lowered.count("\n", line_start, position)
            line_start = position
            forms[index] = (
                lowered[lowered.rfind("\n", 0, position) + 1 : position].replace(".", "")
                + "@gmail.com"
            )
        position = lowered.find(domain, end)


def _unplain_lines(text: str) -> list[int]:
    """Indices of the lines of ``text`` that are not plain (_PLAIN_LINE)."""
    leftover: list[int] = []
    index = position = 0
    end = len(text)
    while True:
        # A run of plain lines, then the start of one that is not (if any).
        run = _PLAIN_LINES.match(text, position)
        assert run is not None  # a starred pattern matches, if only the empty string
        start = run.end()
        if start == end and start and text[start - 1] != "\n":
            return leftover  # the run took the last line
        index += text.count("\n", position, start)
        leftover.append(index)
        position = text.find("\n", start) + 1
        if not position:
            return leftover
        index += 1


def try_canonicalize(address: str) -> str | Reject:
    """Like :func:`canonicalize` but returns the reject code instead of raising."""
    try:
        return canonicalize(address)
    except Rejected as exc:
        return Reject(exc.reason)


def _check_characters(text: str) -> None:
    if not text:
        raise Rejected(Reject.EMPTY)
    # One regex pass finds the first offending character (the common case
    # is none); its kind decides the reason.
    found = _SUSPECT.search(text)
    if found is not None:
        char = found.group()
        if char in WHITE_SPACE:
            raise Rejected(Reject.WHITESPACE)
        if char == '"':
            raise Rejected(Reject.QUOTED)
        if "\ud800" <= char <= "\udfff":
            raise Rejected(Reject.INVALID)
        raise Rejected(Reject.CONTROL)
    if any(char >= _FIRST_UNASSIGNED and _unassigned(ord(char)) for char in text):
        raise Rejected(Reject.UNASSIGNED)
    if "@" not in text:
        raise Rejected(Reject.NO_AT)


def _unassigned(code_point: int) -> bool:
    # A bisection: a regex class of these 698 ranges scans them linearly.
    index = bisect.bisect_right(_UNASSIGNED_STARTS, code_point) - 1
    return index >= 0 and code_point <= UNASSIGNED[index][1]


def _canonical_local(local: str, domain: str, *, plain: bool = False) -> str:
    lowered = local.lower() if plain else unicodedata.normalize("NFC", local).lower()
    base, plus, _ = lowered.partition("+")
    result = base if plus and base else lowered
    if domain in GMAIL_DOMAINS:
        result = result.replace(".", "")
    if plain:
        return result
    # NFC last: lowering or dropping dots can leave a sequence NFC would
    # recompose ("A.\u0301" -> "a\u0301"), and the result must be a fixed point.
    return unicodedata.normalize("NFC", result)


@functools.lru_cache(maxsize=65536)
def canonical_domain(domain: str) -> str:
    """Canonical (A-label, lower-case) domain; cached because lists repeat domains."""
    if not domain:
        raise Rejected(Reject.EMPTY_DOMAIN)
    if domain.startswith("[") or domain.endswith("]"):
        raise Rejected(Reject.DOMAIN_LITERAL)
    if domain.isascii():
        ascii_domain = domain.removesuffix(".").lower()
    else:
        # NFC first so that canonically equivalent inputs map alike: UTS-46
        # maps some combining marks (U+0345) to base letters, so the order
        # of marks in the input would otherwise matter.
        nfc = unicodedata.normalize("NFC", domain)
        try:
            ascii_domain = idna.encode(nfc, uts46=True).decode("ascii").lower()
        except (idna.IDNAError, UnicodeError):
            raise Rejected(Reject.BAD_DOMAIN) from None
        # UTS-46 maps other full stops (U+3002...) to ".", so the one
        # trailing dot to drop may only show up after the mapping.
        ascii_domain = ascii_domain.removesuffix(".")
    if not ascii_domain:
        raise Rejected(Reject.EMPTY_DOMAIN)
    labels = ascii_domain.split(".")
    if not all(_HOST_LABEL.match(label) for label in labels):
        raise Rejected(Reject.BAD_DOMAIN)
    # "--" in positions 3-4 is reserved for A-labels (RFC 5891 4.2.3.1); the
    # idna package enforces it on IDN domains, so ASCII ones must match.
    if any(label[2:4] == "--" and not label.startswith("xn--") for label in labels):
        raise Rejected(Reject.BAD_DOMAIN)
    if any(label.startswith("xn--") for label in labels):
        _check_a_labels(ascii_domain)
    return ascii_domain


def _check_a_labels(ascii_domain: str) -> None:
    # An A-label given directly must decode to a valid U-label, or two
    # spellings of the same domain could hash differently.
    try:
        unicode_form = idna.decode(ascii_domain)
        if idna.encode(unicode_form, uts46=True).decode("ascii") != ascii_domain:
            raise Rejected(Reject.BAD_DOMAIN)
    except (idna.IDNAError, UnicodeError):
        raise Rejected(Reject.BAD_DOMAIN) from None


def digest(canonical: str, salt: bytes, params: Params) -> Digest:
    """Argon2id of a canonical address (the caller canonicalizes first)."""
    h = hash_secret_raw(
        secret=canonical.encode("utf-8"),
        salt=salt,
        time_cost=params.t,
        memory_cost=params.m,
        parallelism=params.p,
        hash_len=HASH_LEN,
        type=Type.ID,
        version=0x13,
    )
    return Digest(h=h, tag_length=params.tag_length)


def item_hash(h: bytes, nonce: bytes) -> int:
    """v2: the 64-bit keyed hash of H[0:16]; a new nonce gives unrelated values.

    SHA-256 over fixed-length fields (domain, 16-octet nonce, 16 octets of H),
    first 8 octets big-endian. Cheap, so a batch reuses the cached Argon2
    output; H[16:32], the proof, never enters it.
    """
    if len(nonce) != NONCE_LEN or len(h) != HASH_LEN:
        raise SchemeError(f"nonce must be {NONCE_LEN} and H {HASH_LEN} octets")
    return int.from_bytes(hashlib.sha256(ITEM_DOMAIN + nonce + h[:16]).digest()[:8], "big")


def item_value(h: bytes, nonce: bytes, total: int, gcs: Gcs) -> int:
    """v2: the published value, ``item_hash * (Total * M) >> 64`` (BIP158's fast range)."""
    if not 1 <= total <= MAX_TOTAL:
        raise SchemeError(f"Total must be 1..{MAX_TOTAL}")
    return (item_hash(h, nonce) * (total * gcs.m)) >> 64


def item_bytes(value: int) -> bytes:
    """A v2 value as 8 octets big-endian, so byte order is numeric order."""
    return value.to_bytes(ITEM_LEN, "big")


def item_values(nonce: bytes, total: int, gcs: Gcs) -> Callable[[bytes], bytes]:
    """v2: one batch's ``H -> item_bytes(item_value(H, nonce, total, gcs))``,
    for computing a whole batch's values (a SQL function on SQLite).

    The same bytes, cheaper per H: the arguments are checked once, and
    SHA-256 starts from a copy of its state after the fixed prefix
    (domain and nonce) instead of hashing a fresh concatenation.
    """
    if len(nonce) != NONCE_LEN:
        raise SchemeError(f"nonce must be {NONCE_LEN} octets")
    if not 1 <= total <= MAX_TOTAL:
        raise SchemeError(f"Total must be 1..{MAX_TOTAL}")
    prefix, scale = hashlib.sha256(ITEM_DOMAIN + nonce), total * gcs.m
    octets = struct.Struct(">Q")  # 8 octets big-endian, as item_hash and item_bytes

    def value(h: bytes) -> bytes:
        if len(h) != HASH_LEN:
            raise SchemeError(f"H must be {HASH_LEN} octets")
        state = prefix.copy()
        state.update(h[:16])
        return octets.pack((octets.unpack_from(state.digest())[0] * scale) >> 64)

    return value


_UNARY = tuple("1" * q + "0" for q in range(64))  # quotients of a GCS are mostly 0-2


def gcs_encode(values: Sequence[int], start: int, p: int) -> bytes:
    """Golomb-Rice code of ascending ``values``: deltas from ``start``, then from
    the previous value; each delta as ``delta >> p`` one-bits, a zero-bit, and
    the low ``p`` bits MSB first; the bit string padded with zero-bits to octets."""
    mask, fmt = (1 << p) - 1, f"0{p}b"
    deltas = [value - previous for previous, value in itertools.pairwise([start, *values])]
    if deltas and min(deltas) < 0:
        raise SchemeError("values must be ascending and not below start")
    # One list comprehension, the unary prefixes from a table: a batch part
    # codes ~100,000 values, and this loop is most of rendering one.
    bits = "".join(
        [
            (_UNARY[d >> p] if d >> p < len(_UNARY) else "1" * (d >> p) + "0")
            + format(d & mask, fmt)
            for d in deltas
        ]
    )
    bits += "0" * (-len(bits) % 8)
    return int(bits, 2).to_bytes(len(bits) // 8, "big") if bits else b""


def gcs_decode(data: bytes, count: int, start: int, p: int) -> list[int]:
    """The ``count`` values coded in ``data`` (see :func:`gcs_encode`).

    Raises ValueError unless ``data`` holds exactly ``count`` strictly
    ascending values (the first may equal ``start``) and zero padding of
    fewer than 8 bits, so one set has exactly one encoding.
    """
    if count < 1 or count * (p + 1) > 8 * len(data):
        raise SchemeError(f"GCS is too short for Count={count}")
    bits = format(int.from_bytes(data, "big"), f"0{8 * len(data)}b")
    values, position, previous = [], 0, start
    for index in range(count):
        stop = bits.find("0", position)
        if stop < 0 or stop + 1 + p > len(bits):
            raise SchemeError(f"GCS ends after {index} of Count={count} values")
        delta = ((stop - position) << p) | int(bits[stop + 1 : stop + 1 + p], 2)
        if index and not delta:
            raise SchemeError("GCS values are not strictly ascending")
        previous += delta
        values.append(previous)
        position = stop + 1 + p
    rest = bits[position:]
    if len(rest) >= 8 or "1" in rest:
        raise SchemeError(f"GCS holds more than Count={count} values")
    return values


def b64url(data: bytes) -> str:
    """base64url without padding, the scheme's text encoding for proofs."""
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def from_b64url(text: str) -> bytes:
    """Decode unpadded (or padded) base64url; raises ValueError on anything else."""
    text = text.strip()
    if not re.fullmatch(r"[A-Za-z0-9_-]*={0,2}", text):
        raise SchemeError("not base64url")
    text = text.rstrip("=")
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise SchemeError("not base64url") from None


def parse_salt(text: str) -> bytes:
    """A salt given as hex; the scheme fixes 16 bytes."""
    try:
        salt = bytes.fromhex(text)
    except ValueError:
        raise SchemeError("salt must be hex") from None
    if len(salt) != SALT_LEN:
        raise SchemeError(f"salt must be {SALT_LEN} bytes ({2 * SALT_LEN} hex digits)")
    return salt


def mask(address: str) -> str:
    """Mask an address for logs and reports: ``j***@example.com``."""
    local, at, domain = address.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"
