"""The NNTP wire format the transport sends in one write (CRLF ends, dot-stuffing)
and the one parser of server URLs."""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from scrubber.errors import UsageError
from scrubber.transport import open_transport
from scrubber.transport.nntp import NntpSource, NntpTarget, wire_format

lines = st.lists(
    st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
    min_size=1,
    max_size=30,
)


def unstuff(wire: bytes) -> list[bytes]:
    """What a server reads back (RFC 3977 3.1.1), the terminating dot not included."""
    assert wire.endswith(b"\r\n")
    received = wire[:-2].split(b"\r\n")
    assert all(not line.startswith(b".") or line.startswith(b"..") for line in received)
    return [line[1:] if line.startswith(b".") else line for line in received]


@given(lines)
def test_wire_format_round_trips_any_lines(body: list[bytes]) -> None:
    article = b"\n".join(body) + b"\n"
    assert unstuff(wire_format(article)) == body


@given(lines)
def test_crlf_input_and_missing_final_newline_give_the_same_wire(body: list[bytes]) -> None:
    assume(body[-1] != b"")  # else dropping the final LF drops a whole empty line
    lf = b"\n".join(body) + b"\n"
    assert wire_format(lf.replace(b"\n", b"\r\n")) == wire_format(lf) == wire_format(lf[:-1])


def test_a_lone_dot_line_cannot_end_the_article_early() -> None:
    assert wire_format(b"a\n.\nb\n") == b"a\r\n..\r\nb\r\n"


@pytest.mark.parametrize(
    ("url", "target"),
    [
        ("nntp://news.example", NntpTarget("news.example", 119, False, None, None)),
        ("nntps://news.example", NntpTarget("news.example", 563, True, None, None)),
        ("nntp://u%40x:p%3Aw@h:1119", NntpTarget("h", 1119, False, "u@x", "p:w")),
        ("http://news.example", None),
        ("spool:out", None),
        ("nntp://", None),
    ],
)
def test_one_parser_reads_every_server_url(url: str, target: NntpTarget | None) -> None:
    assert NntpTarget.parse(url) == target


def test_a_bad_port_is_a_usage_error_for_posting_and_reading() -> None:
    for attempt in (
        lambda: open_transport("nntp://h:99999", newsgroup="g"),
        lambda: NntpSource("nntp://h:x"),
    ):
        with pytest.raises(UsageError, match="bad port in server URL h"):
            attempt()
