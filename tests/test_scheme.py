"""The published scheme: vectors read from docs/scheme.md, plus properties.

The vectors are parsed from the normative document itself, so the spec and
the reference implementation cannot drift apart.
"""

from __future__ import annotations

import json
import re
import unicodedata
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from scrubber import errors, scheme
from tests.spec_support import CANONICAL_CASES, HASH_VECTORS, SPEC, HashVector


def test_spec_has_the_required_vectors() -> None:
    assert len(CANONICAL_CASES) >= 15
    assert len(HASH_VECTORS) >= 5
    reasons = {e.removeprefix("REJECT ") for _, e in CANONICAL_CASES if e.startswith("REJECT ")}
    # Every reject code is illustrated by at least one case.
    assert reasons == {r.value for r in scheme.Reject}


@pytest.mark.parametrize(("address", "expected"), CANONICAL_CASES)
def test_canonicalization_vector(address: str, expected: str) -> None:
    result = scheme.try_canonicalize(address)
    if expected.startswith("REJECT "):
        assert isinstance(result, scheme.Reject)
        assert result.value == expected.removeprefix("REJECT ")
    else:
        assert not isinstance(result, scheme.Reject)
        assert result == json.loads(expected)


@pytest.mark.parametrize("vector", HASH_VECTORS, ids=lambda v: v.canonical)
def test_hash_vector(vector: HashVector) -> None:
    canonical = scheme.canonicalize(vector.input)
    assert canonical == vector.canonical
    params = scheme.Params(vector.t, vector.m, vector.p, vector.tag_length)
    digest = scheme.digest(canonical, scheme.parse_salt(vector.salt), params)
    assert digest.h.hex() == vector.h
    assert digest.tag.hex() == vector.tag
    assert scheme.b64url(digest.proof) == vector.proof
    assert scheme.from_b64url(vector.proof) == bytes.fromhex(vector.h)[16:32]


def test_rejected_carries_its_code() -> None:
    with pytest.raises(errors.Rejected) as info:
        scheme.canonicalize("no-at-sign")
    assert info.value.reason is scheme.Reject.NO_AT
    assert str(info.value) == "no-at-sign"


@pytest.mark.parametrize(
    "bad",
    ["", "00", "0" * 30, "0" * 34, "zz" * 16],
)
def test_parse_salt_rejects_bad_salts(bad: str) -> None:
    with pytest.raises(ValueError):
        scheme.parse_salt(bad)


@pytest.mark.parametrize(
    ("t", "m", "p", "tag_length"),
    [
        (0, 1024, 1, 8),
        (2, 1024, 0, 8),
        (2, 7, 1, 8),
        (2, 15, 2, 8),
        (2, 1024, 1, 3),
        (2, 1024, 1, 17),
    ],
)
def test_params_reject_bad_values(t: int, m: int, p: int, tag_length: int) -> None:
    with pytest.raises(ValueError):
        scheme.Params(t, m, p, tag_length)


def test_b64url_has_no_padding_and_round_trips() -> None:
    for size in range(0, 20):
        data = bytes(range(size))
        text = scheme.b64url(data)
        assert "=" not in text and "+" not in text and "/" not in text
        assert scheme.from_b64url(text) == data
        assert scheme.from_b64url(text + "=" * (-len(text) % 4)) == data


@pytest.mark.parametrize("bad", ["a+b/", "ab cd", "é", "abc==="])
def test_from_b64url_rejects_other_alphabets(bad: str) -> None:
    with pytest.raises(ValueError):
        scheme.from_b64url(bad)


def test_mask_hides_the_local_part() -> None:
    assert scheme.mask("jane.doe@example.com") == "j***@example.com"
    assert scheme.mask("garbage") == "***"


# -- properties -------------------------------------------------------------

_LOCAL_CHARS = st.characters(blacklist_categories=("Cs", "Cc", "Zs", "Zl", "Zp"))
_TRICKY = 'İIıißẞΣσςǅǄKΩÅ\u0345\u0301\u0308\u0307\u0327ΑΙᾼᾳ.+aAeE@"\u00a0'
_LABEL_CHARS = st.characters(whitelist_categories=("Ll", "Lu", "Lo", "Mn", "Nd"))
_DOMAINS = st.one_of(
    st.lists(st.text(_LABEL_CHARS, min_size=1, max_size=12), min_size=1, max_size=3).map(".".join),
    st.sampled_from(
        [
            "gmail.com",
            "GoogleMail.COM",
            "example.com.",
            "bücher.de",
            "xn--bcher-kva.de",
            "例え.jp。",
        ]
    ),
)
_LOCALS = st.one_of(
    st.text(_LOCAL_CHARS, min_size=1, max_size=24), st.text(_TRICKY, min_size=1, max_size=10)
)
ADDRESSES = st.one_of(st.builds(lambda lo, do: f"{lo}@{do}", _LOCALS, _DOMAINS), st.text())
_PROPERTY_SETTINGS = settings(
    max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


@_PROPERTY_SETTINGS
@given(ADDRESSES)
def test_canonicalization_is_idempotent(address: str) -> None:
    first = scheme.try_canonicalize(address)
    if isinstance(first, scheme.Reject):
        return
    assert scheme.canonicalize(first) == first


@_PROPERTY_SETTINGS
@given(ADDRESSES)
def test_accepted_form_is_well_formed(address: str) -> None:
    result = scheme.try_canonicalize(address)
    if isinstance(result, scheme.Reject):
        return
    local, _, domain = result.partition("@")
    assert "@" not in local and "@" not in domain
    assert domain.isascii() and domain == domain.lower() and not domain.endswith(".")
    assert unicodedata.is_normalized("NFC", local)
    assert len(local.encode()) <= scheme.MAX_LOCAL_OCTETS
    assert len(result.encode()) <= scheme.MAX_ADDRESS_OCTETS
    assert not any(c in scheme.WHITE_SPACE or c == '"' for c in result)
    assert domain not in scheme.GMAIL_DOMAINS or ("." not in local and domain == "gmail.com")


@_PROPERTY_SETTINGS
@given(ADDRESSES)
def test_nfd_input_has_the_same_canonical_form(address: str) -> None:
    decomposed = unicodedata.normalize("NFD", address)
    assert scheme.try_canonicalize(decomposed) == scheme.try_canonicalize(address)


@_PROPERTY_SETTINGS
@given(ADDRESSES, st.sampled_from(["", " ", "\t", "\u3000 "]))
def test_surrounding_white_space_is_ignored(address: str, pad: str) -> None:
    assert scheme.try_canonicalize(pad + address + pad) == scheme.try_canonicalize(address)


@_PROPERTY_SETTINGS
@given(st.emails())
def test_ascii_case_does_not_matter(address: str) -> None:
    assert scheme.try_canonicalize(address.upper()) == scheme.try_canonicalize(address.lower())


@_PROPERTY_SETTINGS
@given(ADDRESSES)
def test_canonicalize_never_raises_anything_but_rejected(address: str) -> None:
    try:
        scheme.canonicalize(address)
    except errors.Rejected as exc:
        assert isinstance(exc.reason, scheme.Reject)


@given(st.text(min_size=1, max_size=30))
@settings(max_examples=200, deadline=None)
def test_undecodable_bytes_are_rejected_not_crashing(text: str) -> None:
    raw = text.encode() + b"\xff@example.com"
    assert scheme.try_canonicalize(raw.decode("utf-8", "surrogateescape")) in (
        scheme.Reject.INVALID,
        scheme.Reject.WHITESPACE,
        scheme.Reject.CONTROL,
        scheme.Reject.QUOTED,
    )


_ASCII_ADDRESSES = st.text(
    alphabet="abcXYZ019.+-_!#'@\"[] \t", min_size=1, max_size=24
) | st.emails().map(lambda a: a.upper() if len(a) % 2 else a)


@_PROPERTY_SETTINGS
@given(_ASCII_ADDRESSES)
def test_plain_ascii_fast_path_equals_the_general_path(address: str) -> None:
    fast = scheme.try_canonicalize(address)
    never = re.compile(r"(?!)")
    with mock.patch.object(scheme, "_PLAIN", never):
        general = scheme.try_canonicalize(address)
    assert fast == general


# Local parts at gmail's two domains in any case: the block path drops their dots.
_GMAIL_LINES = st.builds(
    "{}@{}".format,
    st.text(alphabet="aZ09.+-_#", min_size=0, max_size=70),
    st.sampled_from(["gmail.com", "GoogleMail.COM", "gmail.com.", "GMAIL.com"]),
)
_BLOCK_LINES = st.one_of(
    _ASCII_ADDRESSES,
    ADDRESSES,
    _GMAIL_LINES,
    st.sampled_from(
        [
            "User.1+Tag@Mail.Example",
            "+tag@example.com",
            "a+@example.com",
            "#a@example.com",
            "a@example.com.",
            "a@ex--ample.com",
            "a@xn--bcher-kva.example",
            "A@GMail.COM",
            "a.b@GoogleMail.com",
            "A.B.C+x.y@GMAIL.COM",
            "...@gmail.com",
            ".+a@gmail.com",
            "..@example.com",
            "a.+b@googlemail.com",
            "a@gmail.com.",
            "a@gmail.co",
            "a@mail.gmail.com",
            "a@xgmail.com",
            "a@googlemail.com.example",
            "a." * 32 + "@gmail.com",
            "a." * 33 + "@gmail.com",
            "\u212a@example.com",  # KELVIN SIGN: lower-cases to ASCII "k"
            "a" * 64 + "@example.com",
            "a" * 65 + "@example.com",
            "a@" + "b" * 63 + ".com",
            "a@" + "b" * 64 + ".com",
            "a@" + ".".join(["label"] * 50),
            "a@-x.com",
            "a@x-.com",
            "a@b_c.com",
            "",
        ]
    ),
).filter(lambda line: "\n" not in line)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_BLOCK_LINES, min_size=1, max_size=8))
def test_block_canonicalization_equals_the_per_line_one(lines: list[str]) -> None:
    forms, leftover = scheme.canonicalize_block("\n".join(lines))
    assert len(forms) == len(lines)
    assert leftover == sorted(set(leftover))
    for index, line in enumerate(lines):
        if index in leftover:
            continue
        assert forms[index] == scheme.try_canonicalize(line), line
        # What a text list would take as the line's cell and spelling.
        assert line.strip() == line and not line.startswith("#") and "<" not in line


def test_block_canonicalization_takes_plain_lines_whole() -> None:
    lines = [
        "Jane.Doe+news@Example.COM",
        "bob@mail.example.org",
        "X.Y+z@GoogleMail.com",
        "  c@d.example",
        ".@gmail.com",
    ]
    forms, leftover = scheme.canonicalize_block("\n".join(lines))
    assert forms[:3] == ["jane.doe@example.com", "bob@mail.example.org", "xy@gmail.com"]
    assert leftover == [3, 4]


def _v2_blocks(kind: str) -> list[dict[str, str]]:
    blocks = re.findall(rf"```{kind}\n(.*?)```", SPEC, re.S)
    return [dict(line.split(":", 1) for line in b.strip().splitlines()) for b in blocks]


def test_v2_value_vectors() -> None:
    blocks = _v2_blocks("v2-value")
    assert blocks
    for raw in blocks:
        v = {k.strip(): x.strip() for k, x in raw.items()}
        h, nonce = bytes.fromhex(v["H"]), bytes.fromhex(v["nonce"])
        gcs = scheme.Gcs(p=int(v["P"]), m=int(v["M"]))
        assert scheme.item_hash(h, nonce) == int(v["item-hash"], 16)
        value = scheme.item_value(h, nonce, int(v["total"]), gcs)
        assert scheme.item_bytes(value).hex() == v["value"]


def test_v2_batch_value_function_gives_the_vector_bytes() -> None:
    """item_values (a whole batch's values, SHA-256 state copied per H) is
    byte for byte item_bytes(item_value(...)): the spec's vectors, and the
    extremes of Total and M."""
    for raw in _v2_blocks("v2-value"):
        v = {k.strip(): x.strip() for k, x in raw.items()}
        gcs = scheme.Gcs(p=int(v["P"]), m=int(v["M"]))
        value = scheme.item_values(bytes.fromhex(v["nonce"]), int(v["total"]), gcs)
        assert value(bytes.fromhex(v["H"])).hex() == v["value"]


@settings(max_examples=200)
@given(
    h=st.binary(min_size=32, max_size=32),
    nonce=st.binary(min_size=16, max_size=16),
    total=st.sampled_from([1, 2, 5_000, scheme.MAX_TOTAL]),
    m=st.sampled_from([1, scheme.GCS_M, scheme.MAX_GCS_M]),
)
def test_v2_batch_value_function_equals_item_value(
    h: bytes, nonce: bytes, total: int, m: int
) -> None:
    gcs = scheme.Gcs(m=m)
    expected = scheme.item_bytes(scheme.item_value(h, nonce, total, gcs))
    assert scheme.item_values(nonce, total, gcs)(h) == expected


def test_v2_batch_value_function_refuses_what_item_value_refuses() -> None:
    nonce = bytes(16)
    for bad in (
        lambda: scheme.item_values(bytes(15), 1, scheme.Gcs()),
        lambda: scheme.item_values(nonce, 0, scheme.Gcs()),
        lambda: scheme.item_values(nonce, scheme.MAX_TOTAL + 1, scheme.Gcs()),
        lambda: scheme.item_values(nonce, 1, scheme.Gcs())(bytes(31)),
    ):
        with pytest.raises(errors.SchemeError):
            bad()


@settings(max_examples=200)
@given(
    st.lists(st.integers(min_value=0, max_value=5_000), max_size=60, unique=True),
    st.integers(min_value=1, max_value=24),
)
def test_gcs_encode_round_trips(values: list[int], p: int) -> None:
    """Quotients up to thousands (past the encoder's table of unary codes)."""
    values.sort()
    start = values[0] if values else 0
    coded = scheme.gcs_encode(values, start, p)
    if values:
        assert scheme.gcs_decode(coded, len(values), start, p) == values
    else:
        assert coded == b""


def test_v2_gcs_vectors() -> None:
    blocks = _v2_blocks("v2-gcs")
    assert blocks
    for raw in blocks:
        v = {k.strip(): x.strip() for k, x in raw.items()}
        values, p = [int(x) for x in v["values"].split(",")], int(v["P"])
        assert scheme.gcs_encode(values, values[0], p).hex() == v["gcs"]
        assert scheme.gcs_decode(bytes.fromhex(v["gcs"]), len(values), values[0], p) == values


def test_the_unicode_and_idna_versions_the_spec_names_are_the_ones_used() -> None:
    import idna.idnadata

    from scrubber import unicode14

    versions = SPEC  # the "Versions" paragraph of "Canonical form"
    unicode = re.search(r"that of \*\*Unicode\s+(\S+)\*\*", versions)
    assert unicode is not None and unicode[1] == unicode14.VERSION
    tables = re.search(r"mapping table of \*\*Unicode\s+(\S+)\*\*", versions)
    assert tables is not None and tables[1] == idna.idnadata.__version__


def test_the_unassigned_table_is_unicode_14() -> None:
    """Exact on an interpreter with Unicode 14.0.0 data (3.11); on a newer one,
    everything assigned in 14.0.0 is still assigned (Unicode never unassigns)."""
    import unicodedata

    from scrubber import unicode14

    unassigned = set()
    for first, last in unicode14.UNASSIGNED:
        unassigned.update(range(first, last + 1))
    live = {cp for cp in range(0x110000) if unicodedata.category(chr(cp)) == "Cn"}
    if unicodedata.unidata_version == unicode14.VERSION:
        assert live == unassigned
    else:
        assert live <= unassigned
    assert all(
        scheme.try_canonicalize(f"{chr(cp)}@example.com") == scheme.Reject.UNASSIGNED
        for cp in (0x0378, 0xA7CB, 0x11F04, 0xFDD0, 0x10FFFF)
    )
