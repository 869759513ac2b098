"""Batch articles: the writer and the verifying parser (docs/scheme.md, "Batch articles").

Published and pure like scheme.py, beside which it lives: the sender writes
these articles and the responder parses them, so neither owns the format.

A body is a metadata block (``Name: value`` lines), one blank line, the
tag block, then ``Signature:`` with the Ed25519 signature of every body byte
above that line. Lines end in LF; a parser first turns CRLF into LF (NNTP
transfers lines with CRLF). In v1 the tag block is the sorted tags as
standard base64 wrapped at 76 columns; in v2 it is the part's Golomb-coded
set in yEnc (8-bit, the Usenet binary encoding) or the same base64.
"""

from __future__ import annotations

import base64
import binascii
import email.utils
import hashlib
import itertools
import math
import re
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import sabctools

from scrubber import keys, scheme
from scrubber.errors import ArticleError
from scrubber.keys import OperatorKey
from scrubber.scheme import Params, RespondTo

MAX_PART_BYTES = 900_000
WRAP = 76
RAW_PER_LINE = WRAP // 4 * 3  # 57 raw bytes make one full base64 line
SIGNATURE_PREFIX = b"Signature: "
YENC_LINE = 128
ENCODINGS = ("yenc", "base64")
FIELDS_V1 = (
    "Scheme",
    "Batch",
    "Part",
    "Salt",
    "Argon2",
    "Tag-Length",
    "Count",
    "Total",
    "Range",
    "Respond-HTTP",
    "Respond-SMTP",
    "Expires",
    "Key",
    "Digest",
)
FIELDS_V2 = (
    "Scheme",
    "Batch",
    "Part",
    "Salt",
    "Argon2",
    "Nonce",
    "GCS",
    "Count",
    "Total",
    "Range",
    "Encoding",
    "Respond-HTTP",
    "Respond-SMTP",
    "Expires",
    "Key",
    "Digest",
)
FIELDS = {scheme.SCHEME_NAME: FIELDS_V1, scheme.SCHEME_V2: FIELDS_V2}
BATCH_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,39}")
_SUBJECT = re.compile(
    r"\[DNI\] batch (?P<batch>[A-Za-z0-9][A-Za-z0-9_-]{0,39}) "
    r"part (?P<part>[1-9][0-9]{0,5})/(?P<parts>[1-9][0-9]{0,5}) "
    r"range (?P<first>(?:[0-9a-f]{2}){4,16})-(?P<last>(?:[0-9a-f]{2}){4,16})"
)
_ARGON2 = re.compile(r"t=([1-9][0-9]{0,9}),m=([1-9][0-9]{0,9}),p=([1-9][0-9]{0,5})")
_PART = re.compile(r"([1-9][0-9]{0,5})/([1-9][0-9]{0,5})")
_COUNT = re.compile(r"[1-9][0-9]{0,9}")
_GCS = re.compile(r"P=([1-9][0-9]?),M=([1-9][0-9]{0,9})")
_YBEGIN = re.compile(rb"=ybegin line=128 size=([1-9][0-9]{0,8}) name=gcs")
_YEND = re.compile(rb"=yend size=([1-9][0-9]{0,8}) crc32=([0-9a-f]{8})")
_YENC_DECODE = bytes((i - 42) % 256 for i in range(256))
_EXPIRES = "%Y-%m-%dT%H:%M:%SZ"


@dataclass(frozen=True)
class V2Fields:
    """What a v2 batch adds: the nonce keying its values, the GCS parameters, the block encoding."""

    nonce: bytes
    gcs: scheme.Gcs
    encoding: str = "yenc"


@dataclass(frozen=True)
class ArticleMeta:
    scheme: str
    batch_id: str
    part: int
    parts: int
    salt: bytes
    params: Params  # Argon2 t, m, p and the tag length (v2: 8, a value's size)
    count: int
    total: int
    first_tag: bytes
    last_tag: bytes
    respond: RespondTo
    expires: datetime
    key: bytes
    digest: bytes
    v2: V2Fields | None = None  # None: a v1 article


@dataclass(frozen=True)
class ParsedArticle:
    meta: ArticleMeta
    tags: list[bytes]  # v2: the values, 8 octets big-endian each


@dataclass(frozen=True)
class SubjectInfo:
    batch_id: str
    part: int
    parts: int
    first_tag: bytes
    last_tag: bytes


@dataclass(frozen=True)
class BatchHeader:
    """What every part of one batch shares; the writer's input besides the tags."""

    batch_id: str
    salt: bytes
    params: Params
    total: int
    respond: RespondTo
    expires: datetime
    key: bytes
    v2: V2Fields | None = None  # None: write v1


def message_id(batch_id: str, part: int, domain: str) -> str:
    """Deterministic, so a re-post of the same part is a duplicate to the server."""
    return f"<dni.{batch_id}.{part}@{domain}>"


def subject(info: SubjectInfo) -> str:
    return (
        f"[DNI] batch {info.batch_id} part {info.part}/{info.parts} "
        f"range {info.first_tag.hex()}-{info.last_tag.hex()}"
    )


def parse_subject(text: str) -> SubjectInfo | None:
    """The batch id, part and tag range of a Subject; None if not a batch subject."""
    match = _SUBJECT.fullmatch(text.strip())
    if match is None:
        return None
    part, parts = int(match["part"]), int(match["parts"])
    first, last = bytes.fromhex(match["first"]), bytes.fromhex(match["last"])
    if part > parts or len(first) != len(last) or first > last:
        return None
    return SubjectInfo(match["batch"], part, parts, first, last)


def tags_per_part(tag_length: int, overhead: int) -> int:
    """How many tags fit in one part next to ``overhead`` bytes of headers and metadata."""
    lines = (MAX_PART_BYTES - overhead) // (WRAP + 1)
    return lines * RAW_PER_LINE // tag_length


def items_per_part(v2: V2Fields, overhead: int) -> int:
    """How many v2 values surely fit in one part next to ``overhead`` bytes.

    A value costs P + 1 + q bits, q the quotient (geometric, mean
    1 / (e^(2^P / M) - 1) at density 1/M); 3 % headroom covers the spread of
    a part's sum and the block encoding's growth (yEnc escapes ~1.6 %,
    LF per 128; base64 4/3 and LF per 76).
    """
    p, m = v2.gcs.p, v2.gcs.m
    bits = p + 1 + 1 / math.expm1(min(2**p / m, 50.0))
    growth = (1.025 * (YENC_LINE + 1) / YENC_LINE) if v2.encoding == "yenc" else (4 / 3 * 77 / 76)
    room = MAX_PART_BYTES - overhead - 200  # the =ybegin and =yend lines
    return max(1, int(room * 8 / (bits * growth * 1.03)))


def part_meta(header: BatchHeader, part: int, parts: int, tags: bytes) -> ArticleMeta:
    """The metadata of one part holding ``tags`` (sorted, concatenated)."""
    size = header.params.tag_length
    if not tags or len(tags) % size:
        raise ValueError("a part needs a whole, non-zero number of tags")
    return ArticleMeta(
        scheme=scheme.SCHEME_NAME if header.v2 is None else scheme.SCHEME_V2,
        batch_id=header.batch_id,
        part=part,
        parts=parts,
        salt=header.salt,
        params=header.params,
        count=len(tags) // size,
        total=header.total,
        first_tag=tags[:size],
        last_tag=tags[-size:],
        respond=header.respond,
        expires=header.expires,
        key=header.key,
        digest=hashlib.sha256(tags).digest(),
        v2=header.v2,
    )


def render_body(meta: ArticleMeta, tags: bytes, sign: Callable[[bytes], bytes]) -> bytes:
    """The signed body of one part; ``tags`` are its sorted tags, concatenated."""
    size = meta.params.tag_length
    if hashlib.sha256(tags).digest() != meta.digest or len(tags) != meta.count * size:
        raise ValueError("tags do not match the metadata")
    names = FIELDS[meta.scheme]
    lines = [f"{name}: {value}" for name, value in zip(names, _field_values(meta), strict=True)]
    head = ("\n".join(lines) + "\n\n").encode("ascii")
    if meta.v2 is None:
        block = base64_block(tags)
    else:
        values = struct.unpack(f">{len(tags) // scheme.ITEM_LEN}Q", tags)  # 8 octets each
        coded = scheme.gcs_encode(values, values[0], meta.v2.gcs.p)
        block = yenc_block(coded) if meta.v2.encoding == "yenc" else base64_block(coded)
    signed = head + block
    return signed + SIGNATURE_PREFIX + base64.b64encode(sign(signed)) + b"\n"


def base64_block(data: bytes) -> bytes:
    """Standard base64 wrapped at 76 columns, every line LF-terminated."""
    encoded = base64.b64encode(data)  # 57 raw bytes make exactly one 76-column line
    return b"".join(encoded[i : i + WRAP] + b"\n" for i in range(0, len(encoded), WRAP))


def yenc_block(data: bytes) -> bytes:
    """yEnc 1.3 single part: ``=ybegin``, 128-column lines (sabctools), ``=yend`` with CRC32."""
    encoded, crc = sabctools.yenc_encode(data)
    return (
        b"=ybegin line=%d size=%d name=gcs\n" % (YENC_LINE, len(data))
        + encoded.replace(b"\r\n", b"\n")
        + b"\n=yend size=%d crc32=%08x\n" % (len(data), crc)
    )


def render_article(
    meta: ArticleMeta,
    tags: bytes,
    key: OperatorKey,
    *,
    newsgroup: str,
    domain: str,
    date: datetime,
) -> bytes:
    """A whole article (headers, blank line, signed body), LF line ends."""
    if key.public_raw != meta.key:
        raise ValueError("the signing key is not the batch's key")
    info = SubjectInfo(meta.batch_id, meta.part, meta.parts, meta.first_tag, meta.last_tag)
    headers = [
        ("Path", "not-for-mail"),
        ("From", f"DNI batch <{meta.respond.smtp}>"),
        ("Newsgroups", newsgroup),
        ("Subject", subject(info)),
        ("Message-ID", message_id(meta.batch_id, meta.part, domain)),
        ("Date", email.utils.format_datetime(date.astimezone(UTC))),
        ("Expires", email.utils.format_datetime(meta.expires.astimezone(UTC))),
    ]
    if meta.v2 is None or meta.v2.encoding == "base64":
        headers.append(("Content-Type", "text/plain; charset=us-ascii"))
    head = "".join(f"{name}: {value}\n" for name, value in headers).encode("ascii")
    return head + b"\n" + render_body(meta, tags, key.sign)


def split_article(raw: bytes) -> tuple[dict[str, str], bytes]:
    """Headers (last wins, names lower-cased) and body of a whole article."""
    raw = raw.replace(b"\r\n", b"\n")
    head, sep, body = raw.partition(b"\n\n")
    if not sep:
        raise ArticleError("article has no blank line between headers and body")
    headers: dict[str, str] = {}
    name = ""
    for line in head.decode("utf-8", "replace").split("\n"):
        if line[:1] in (" ", "\t") and name:
            headers[name] += " " + line.strip()
            continue
        name, _, value = line.partition(":")
        name = name.strip().lower()
        headers[name] = value.strip()
    return headers, body


def parse_article(body: bytes) -> ParsedArticle:
    """Parse and verify one article body; raise ArticleError saying what is wrong."""
    body = body.replace(b"\r\n", b"\n")
    signed, signature = _split_signature(body)
    head, sep, block = signed.partition(b"\n\n")
    if not sep:
        raise ArticleError("no blank line after the metadata block")
    meta_fields = _parse_fields(head)
    key = _decode_b64(meta_fields["Key"], "Key")
    if len(key) != 32:
        raise ArticleError("Key is not a 32-byte Ed25519 public key")
    if not keys.verify(key, signed, signature):
        raise ArticleError("signature does not verify with the article's Key")
    meta = _build_meta(meta_fields, key)
    raw = _decode_tags(block, meta) if meta.v2 is None else _decode_values(block, meta, meta.v2)
    if hashlib.sha256(raw).digest() != meta.digest:
        raise ArticleError("Digest does not match the tag block")
    size = meta.params.tag_length
    tags = [raw[i : i + size] for i in range(0, len(raw), size)]
    if tags[0] != meta.first_tag or tags[-1] != meta.last_tag:
        raise ArticleError("Range does not match the first and last tag")
    return ParsedArticle(meta=meta, tags=tags)


def _field_values(meta: ArticleMeta) -> list[str]:
    head = [meta.scheme, meta.batch_id, f"{meta.part}/{meta.parts}", meta.salt.hex()]
    params = meta.params
    head.append(f"t={params.t},m={params.m},p={params.p}")
    counts = [str(meta.count), str(meta.total), f"{meta.first_tag.hex()}-{meta.last_tag.hex()}"]
    tail = [
        meta.respond.http,
        meta.respond.smtp,
        meta.expires.astimezone(UTC).strftime(_EXPIRES),
        keys.encode_public(meta.key),
        meta.digest.hex(),
    ]
    if meta.v2 is None:
        return [*head, str(params.tag_length), *counts, *tail]
    gcs = f"P={meta.v2.gcs.p},M={meta.v2.gcs.m}"
    return [*head, meta.v2.nonce.hex(), gcs, *counts, meta.v2.encoding, *tail]


def _split_signature(body: bytes) -> tuple[bytes, bytes]:
    text = body[:-1] if body.endswith(b"\n") else body
    cut = text.rfind(b"\n") + 1
    line = text[cut:]
    if not line.startswith(SIGNATURE_PREFIX):
        raise ArticleError("no Signature line at the end (truncated?)")
    signature = _decode_b64(line[len(SIGNATURE_PREFIX) :].decode("ascii", "replace"), "Signature")
    if len(signature) != 64:
        raise ArticleError("Signature is not 64 bytes")
    return text[:cut], signature


def _parse_fields(head: bytes) -> dict[str, str]:
    try:
        text = head.decode("ascii")
    except UnicodeDecodeError:
        raise ArticleError("metadata block is not ASCII") from None
    lines = text.split("\n")
    first, _, version = lines[0].partition(": ")
    if first != "Scheme":
        raise ArticleError("the metadata block does not start with Scheme")
    names = FIELDS.get(version)
    if names is None:
        raise ArticleError(f"unknown scheme {version[:40]!r}")
    found: dict[str, str] = {}
    for line in lines:
        name, sep, value = line.partition(": ")
        if not sep or name not in names:
            raise ArticleError(f"unexpected metadata line {line[:40]!r}")
        if name in found:
            raise ArticleError(f"metadata field {name} appears twice")
        found[name] = value
    missing = [name for name in names if name not in found]
    if missing:
        raise ArticleError(f"metadata field {missing[0]} is missing")
    # v1 readers never enforced the order; v2 has one spelling per article.
    if names is FIELDS_V2 and list(found) != list(names):
        raise ArticleError("metadata fields are not in the order of the v2 specification")
    return found


def _build_meta(fields: dict[str, str], key: bytes) -> ArticleMeta:
    if not BATCH_ID.fullmatch(fields["Batch"]):
        raise ArticleError("Batch is not a valid batch id")
    part, parts = _match_ints(_PART, fields["Part"], "Part")
    if part > parts:
        raise ArticleError("Part number is above the part count")
    t, m, p = _match_ints(_ARGON2, fields["Argon2"], "Argon2")
    count, total = (_match_ints(_COUNT, fields[name], name)[0] for name in ("Count", "Total"))
    if count > total:
        raise ArticleError("Count is above Total")
    v2 = _v2_fields(fields, total) if fields["Scheme"] == scheme.SCHEME_V2 else None
    size = _tag_length(fields) if v2 is None else scheme.ITEM_LEN
    first, last = _parse_range(fields["Range"], size)
    if v2 is not None and last >= scheme.item_bytes(total * v2.gcs.m):
        raise ArticleError("Range reaches beyond Total * M (items out of range)")
    return ArticleMeta(
        scheme=fields["Scheme"],
        batch_id=fields["Batch"],
        part=part,
        parts=parts,
        salt=_parse_hex(fields["Salt"], scheme.SALT_LEN, "Salt"),
        params=_params(t, m, p, size),
        count=count,
        total=total,
        first_tag=first,
        last_tag=last,
        respond=RespondTo(
            http=_parse_url(fields["Respond-HTTP"]),
            smtp=_parse_mailbox(fields["Respond-SMTP"]),
        ),
        expires=_parse_expires(fields["Expires"]),
        key=key,
        digest=_parse_hex(fields["Digest"], 32, "Digest"),
        v2=v2,
    )


def _params(t: int, m: int, p: int, tag_length: int) -> Params:
    """The scheme's one check of the parameters (m >= 8p among them)."""
    try:
        return Params(t=t, m=m, p=p, tag_length=tag_length)
    except ValueError as exc:
        raise ArticleError(f"Argon2: {exc}") from None


def _tag_length(fields: dict[str, str]) -> int:
    size = _match_ints(_COUNT, fields["Tag-Length"], "Tag-Length")[0]
    if not scheme.MIN_TAG_LEN <= size <= scheme.MAX_TAG_LEN:
        raise ArticleError(
            f"Tag-Length {size} is outside {scheme.MIN_TAG_LEN}..{scheme.MAX_TAG_LEN}"
        )
    return size


def _v2_fields(fields: dict[str, str], total: int) -> V2Fields:
    nonce = _parse_hex(fields["Nonce"], scheme.NONCE_LEN, "Nonce")
    p, m = _match_ints(_GCS, fields["GCS"], "GCS")
    try:
        gcs = scheme.Gcs(p=p, m=m)
    except ValueError as exc:
        raise ArticleError(f"GCS: {exc}") from None
    if total > scheme.MAX_TOTAL:
        raise ArticleError(f"Total is above {scheme.MAX_TOTAL}")
    if fields["Encoding"] not in ENCODINGS:
        raise ArticleError(f"unknown Encoding {fields['Encoding'][:40]!r}")
    return V2Fields(nonce=nonce, gcs=gcs, encoding=fields["Encoding"])


def _decode_tags(block: bytes, meta: ArticleMeta) -> bytes:
    """v1: the base64 tag block, checked for Count and sort order."""
    raw = _unwrap_base64(block)
    size = meta.params.tag_length
    if len(raw) != meta.count * size:
        raise ArticleError(f"tag block holds {len(raw) // size} tags, Count says {meta.count}")
    tags = [raw[i : i + size] for i in range(0, len(raw), size)]
    if any(a >= b for a, b in itertools.pairwise(tags)):
        raise ArticleError("tags are not strictly sorted")
    return raw


def _decode_values(block: bytes, meta: ArticleMeta, v2: V2Fields) -> bytes:
    """v2: the Golomb-coded set, decoded from Range's first value, as 8-octet values."""
    coded = _unyenc(block) if v2.encoding == "yenc" else _unwrap_base64(block)
    start = int.from_bytes(meta.first_tag, "big")
    try:
        values = scheme.gcs_decode(coded, meta.count, start, v2.gcs.p)
    except ValueError as exc:
        raise ArticleError(str(exc)) from None
    if values[-1] > int.from_bytes(meta.last_tag, "big"):
        raise ArticleError("a GCS value lies beyond the part's Range (items out of range)")
    return b"".join(scheme.item_bytes(v) for v in values)


def _unwrap_base64(block: bytes) -> bytes:
    lines = block.split(b"\n")
    if lines[-1] != b"" or len(lines) < 2:
        raise ArticleError("tag block is empty or not line-terminated")
    lines.pop()
    if any(len(line) != WRAP for line in lines[:-1]) or not 0 < len(lines[-1]) <= WRAP:
        raise ArticleError(f"tag block lines are not wrapped at {WRAP} columns")
    return _decode_b64(b"".join(lines).decode("ascii", "replace"), "tag block")


def _unyenc(block: bytes) -> bytes:
    """Decode a single-part yEnc block; any escaping is accepted, size and CRC32 must hold."""
    lines = block.split(b"\n")
    if len(lines) < 4 or lines.pop() != b"":
        raise ArticleError("yEnc block is empty or not line-terminated")
    begin, end = _YBEGIN.fullmatch(lines[0]), _YEND.fullmatch(lines[-1])
    if begin is None or end is None:
        raise ArticleError("yEnc block lacks its =ybegin or =yend line")
    data = lines[1:-1]
    if any(not line or line.endswith(b"=") or b"\r" in line or b"\0" in line for line in data):
        raise ArticleError("yEnc block has an empty, broken or truncated line")
    raw = _yenc_decode(b"".join(data))
    size = int(begin[1])
    if not size == int(end[1]) == len(raw):
        raise ArticleError(f"yEnc block decodes to {len(raw)} bytes, its header says {size}")
    if zlib.crc32(raw) != int(end[2], 16):
        raise ArticleError("yEnc block fails its CRC32 (damaged or truncated)")
    return raw


def _yenc_decode(text: bytes) -> bytes:
    """Each ``=`` escapes the next byte (decoded 64 lower); the rest is 42 lower.

    No line ends in ``=`` (checked), so the escaped byte is on the same line.
    """
    out, position = bytearray(), 0
    while (escape := text.find(b"=", position)) >= 0:
        out += text[position:escape].translate(_YENC_DECODE)
        out.append((text[escape + 1] - 106) % 256)
        position = escape + 2
    out += text[position:].translate(_YENC_DECODE)
    return bytes(out)


def _decode_b64(text: str, what: str) -> bytes:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise ArticleError(f"{what} is not valid base64") from None
    # Unused low bits of the last character would let one value have many spellings.
    if base64.b64encode(raw).decode("ascii") != text:
        raise ArticleError(f"{what} is not canonical base64")
    return raw


def _match_ints(pattern: re.Pattern[str], text: str, what: str) -> list[int]:
    match = pattern.fullmatch(text)
    if match is None:
        raise ArticleError(f"{what} is malformed: {text[:40]!r}")
    return [int(g) for g in match.groups()] if match.groups() else [int(match[0])]


def _parse_hex(text: str, length: int, what: str) -> bytes:
    if not re.fullmatch(f"[0-9a-f]{{{2 * length}}}", text):
        raise ArticleError(f"{what} must be {length} bytes of lower-case hex")
    return bytes.fromhex(text)


def _parse_range(text: str, size: int) -> tuple[bytes, bytes]:
    first, sep, last = text.partition("-")
    if not sep:
        raise ArticleError("Range is malformed")
    low, high = _parse_hex(first, size, "Range"), _parse_hex(last, size, "Range")
    if low > high:
        raise ArticleError("Range is reversed")
    return low, high


def _parse_url(text: str) -> str:
    if not re.fullmatch(r"https?://[!-~]+/dni/v1/ping/[A-Za-z0-9_-]{22,}", text):
        raise ArticleError("Respond-HTTP is not a .../dni/v1/ping/<token> URL")
    return text


def _parse_mailbox(text: str) -> str:
    if not re.fullmatch(r"dni-[A-Za-z0-9_-]{22,}@[A-Za-z0-9.-]+", text):
        raise ArticleError("Respond-SMTP is not a dni-<token>@<domain> address")
    return text


def _parse_expires(text: str) -> datetime:
    try:
        return datetime.strptime(text, _EXPIRES).replace(tzinfo=UTC)
    except ValueError:
        raise ArticleError("Expires is not YYYY-MM-DDTHH:MM:SSZ") from None
