"""The vectors of the published scheme, read from docs/scheme.md itself, so the
spec and the reference implementation cannot drift apart."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from tests.support import ROOT

SPEC = (ROOT / "docs" / "scheme.md").read_text(encoding="utf-8")


def _section(heading: str) -> str:
    start = SPEC.index(f"\n{heading}\n")
    following = re.search(r"\n#{1,3} ", SPEC[start + len(heading) + 2 :])
    end = start + len(heading) + 2 + following.start() if following else len(SPEC)
    return SPEC[start:end]


def _canonical_cases() -> list[tuple[str, str]]:
    rows = re.findall(r"^\| \d+ \| `(.*?)` \| `(.*?)` \|", _section("### Canonicalization"), re.M)
    return [(json.loads(given), expected) for given, expected in rows]


@dataclass(frozen=True)
class HashVector:
    input: str
    canonical: str
    salt: str
    t: int
    m: int
    p: int
    tag_length: int
    h: str
    tag: str
    proof: str


def _hash_vectors() -> list[HashVector]:
    blocks = re.findall(r"```text\n(.*?)```", _section("### Hash vectors"), re.S)
    vectors = []
    for block in blocks:
        fields = dict(line.split(":", 1) for line in block.strip().splitlines())
        v = {k.strip().replace("-", "_"): val.strip() for k, val in fields.items()}
        vectors.append(
            HashVector(
                input=json.loads(v["input"]),
                canonical=json.loads(v["canonical"]),
                salt=v["salt"],
                t=int(v["t"]),
                m=int(v["m"]),
                p=int(v["p"]),
                tag_length=int(v["tag_length"]),
                h=v["H"],
                tag=v["tag"],
                proof=v["proof"],
            )
        )
    return vectors


CANONICAL_CASES = _canonical_cases()
HASH_VECTORS = _hash_vectors()
