"""Generate the synthetic sample lists in this directory (fixed seed).

    python sample_lists/generate.py

Writes, byte for byte the same on every run:

- customers.csv.gz  10,000 unique people as a CSV export (id, name, email,
                    signup date), plus re-listed duplicates in other spellings
                    (case, plus tags, gmail dots, googlemail, trailing dot,
                    NFD), Unicode local parts, IDN domains and a few hundred
                    malformed lines.
- newsletter.txt    plain text, one address a line: 3,000 of the customers in
                    other spellings plus 1,000 people of its own.
- unsubscribes.txt  opt-outs from other channels, for `list suppress --file`.

All names and domains are made up; the domains use reserved or invented TLDs
where possible, so no real mailbox is named.
"""

from __future__ import annotations

import csv
import gzip
import io
import random
import unicodedata
from pathlib import Path

SEED = 20261123
HERE = Path(__file__).resolve().parent
PEOPLE = 10_000
MALFORMED = 300

FIRST = [
    "anna", "ben", "chloe", "david", "emma", "felix", "grace", "hugo", "ines", "jack",
    "karin", "liam", "mia", "noah", "olivia", "paul", "quinn", "rosa", "sam", "tara",
    "ugo", "vera", "will", "xena", "yusuf", "zoe", "maria", "jose", "li", "wei",
]  # fmt: skip
LAST = [
    "smith", "jones", "brown", "garcia", "miller", "davis", "martin", "lopez", "wilson",
    "moore", "taylor", "thomas", "white", "harris", "clark", "lewis", "young", "walker",
    "hall", "allen", "king", "wright", "scott", "green", "baker", "adams", "nelson",
]  # fmt: skip
UNICODE_LOCALS = [
    "josé", "zoë", "björn", "françois", "søren", "łukasz", "müller", "ἀλέξανδρος",
    "дмитрий", "李娜", "さくら", "محمد", "đorđe", "ingrid.ødegård", "ñandú",
]  # fmt: skip
DOMAINS = [f"shop{i}.example" for i in range(40)] + [
    "mail.example.com", "post.example.org", "inbox.example.net", "corp.example",
    "gmail.com", "googlemail.com", "uni-muenchen.example", "kunden.example.de",
]  # fmt: skip
IDN_DOMAINS = ["bücher.example", "例え.jp", "пример.рф", "mañana.example", "ελλάδα.example"]
MALFORMED_LINES = [
    "no-at-sign.example.com", "two@@example.com", "a@b@example.com", "@example.com",
    "user@", '"quoted"@example.com', "has space@example.com", "user@[192.0.2.1]",
    "user@exa_mple.com", "user@-bad.example", "user@xn--abc.example", "x" * 70 + "@example.com",
    "user@example..com", "\tuser@\x07bell.example",
]  # fmt: skip


def _person(rng: random.Random, n: int) -> tuple[str, str]:
    first, last = rng.choice(FIRST), rng.choice(LAST)
    name = f"{first.title()} {last.title()}"
    if rng.random() < 0.06:
        local = rng.choice(UNICODE_LOCALS) + str(n)
        domain = rng.choice(IDN_DOMAINS + DOMAINS)
    else:
        style = rng.randrange(4)
        local = [f"{first}.{last}", f"{first[0]}{last}", f"{first}{n}", f"{last}.{first}"][style]
        local += str(n) if style != 2 else ""
        domain = rng.choice(IDN_DOMAINS) if rng.random() < 0.04 else rng.choice(DOMAINS)
    return name, f"{local}@{domain}"


def _respell(rng: random.Random, address: str) -> str:
    """Another spelling of the same mailbox under the scheme's canonical form."""
    local, _, domain = address.rpartition("@")
    choice = rng.randrange(6)
    if choice == 0:
        return f"{local.upper()}@{domain.upper()}"
    if choice == 1:
        return f"{local}+{rng.choice(['news', 'shop', 'x1', 'promo'])}@{domain}"
    if choice == 2:
        return f"{local}@{domain}."
    if choice == 3:
        return unicodedata.normalize("NFD", f"{local.title()}@{domain}")
    if choice == 4 and domain in ("gmail.com", "googlemail.com"):
        dotted = ".".join(local.replace(".", ""))
        return f"{dotted}@{rng.choice(['gmail.com', 'googlemail.com'])}"
    return f"  {local}@{domain.title()}  "


def _customers_csv(rng: random.Random, people: list[tuple[str, str]]) -> bytes:
    rows: list[list[str]] = []
    for n, (name, address) in enumerate(people, start=1):
        rows.append(
            [str(n), name, address, f"2025-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"]
        )
    for n in rng.sample(range(len(people)), 1500):
        name, address = people[n]
        rows.append([str(len(rows) + 1), name, _respell(rng, address), "2026-01-15"])
    for _ in range(MALFORMED):
        rows.append([str(len(rows) + 1), "Broken Row", rng.choice(MALFORMED_LINES), "2026-02-01"])
    rng.shuffle(rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["id", "name", "email", "signup_date"])
    writer.writerows(rows)
    return out.getvalue().encode("utf-8")


def _newsletter(rng: random.Random, people: list[tuple[str, str]]) -> str:
    lines = [_respell(rng, people[n][1]) for n in rng.sample(range(len(people)), 3000)]
    lines += [_person(rng, PEOPLE + n)[1] for n in range(1000)]
    lines += rng.sample(MALFORMED_LINES, 5)
    rng.shuffle(lines)
    return "# newsletter subscribers, exported 2026-03-01\n" + "\n".join(lines) + "\n"


def main() -> None:
    rng = random.Random(SEED)
    people = [_person(rng, n) for n in range(PEOPLE)]
    csv_bytes = _customers_csv(rng, people)
    with (
        (HERE / "customers.csv.gz").open("wb") as raw,
        gzip.GzipFile(filename="customers.csv", mode="wb", fileobj=raw, mtime=0) as gz,
    ):
        gz.write(csv_bytes)
    (HERE / "newsletter.txt").write_text(_newsletter(rng, people), encoding="utf-8")
    opt_outs = [_respell(rng, people[n][1]) for n in rng.sample(range(PEOPLE), 50)]
    (HERE / "unsubscribes.txt").write_text("\n".join(opt_outs) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
