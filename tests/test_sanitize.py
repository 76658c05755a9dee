"""clean() must leave nothing a terminal would act on, and touch nothing else."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlinvestigate.sanitize import LINE_BREAK_MARKER, clean

BIDI_CONTROLS = set("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")


def forbidden_characters(text: str) -> list[str]:
    """Characters that must never reach the terminal: C0, DEL, C1, bidi, lone surrogates."""
    return [
        char
        for char in text
        if ord(char) < 0x20
        or 0x7F <= ord(char) <= 0x9F
        or char in BIDI_CONTROLS
        or 0xD800 <= ord(char) <= 0xDFFF
        or char in "\u2028\u2029"
    ]


@pytest.mark.parametrize(
    ("dirty", "expected"),
    [
        ("\x1b[31mred\x1b[0m", "red"),
        ("\x1b[1;38;2;255;0;0mbold\x1b[m", "bold"),
        ("\x1b[2J\x1b[Hcleared", "cleared"),  # clear screen, cursor home
        ("\x1b[?25lhidden cursor", "hidden cursor"),
        ("cut \x1b[31", "cut "),  # a CSI truncated by the logger
        ("\x1b]8;;https://evil.example\x1b\\click\x1b]8;;\x1b\\", "click"),  # OSC 8, ST
        ("\x1b]8;;https://evil.example\x07click\x1b]8;;\x07", "click"),  # OSC 8, BEL
        ("\x1b]0;pwned title\x07after", "after"),  # window title
        ("\x1b]2;title\x9cafter", "after"),  # C1 string terminator
        ("\x1bPqdata\x1b\\after", "after"),  # DCS
        ("\x1b_apc\x1b\\after", "after"),  # APC
        ("\x1b]0;unterminated title", "0;unterminated title"),  # body stays visible
        ("\x1b(Bcharset", "charset"),
        ("\x1b7saved\x1b8", "saved"),
        ("\x1bc reset", " reset"),
        ("lone \x1b", "lone "),
        ("\x9b31mc1 csi", "c1 csi"),
        ("\x9d0;title\x07c1 osc", "c1 osc"),
        ("a\tb", "a b"),
        ("a\nb", f"a{LINE_BREAK_MARKER}b"),
        ("a\r\nb", f"a{LINE_BREAK_MARKER}b"),
        ("a\rb", f"a{LINE_BREAK_MARKER}b"),
        ("a\u2028b", f"a{LINE_BREAK_MARKER}b"),
        ("nul\x00bell\x07bs\x08del\x7f", "nulbellbsdel"),
        ("c1\x85nel", f"c1{LINE_BREAK_MARKER}nel"),
        ("c1\x80\x9f", "c1"),
        ("access = \u202euser\u2066 admin\u2069", "access = user admin"),
        ("lrm\u200e rlm\u200f", "lrm rlm"),
        ("half \ud800 surrogate", "half \ufffd surrogate"),
    ],
)
def test_removes_control_sequences(dirty: str, expected: str) -> None:
    assert clean(dirty) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "plain ascii",
        "[red]x[/red] looks like markup but is data",
        "ünïcödé ✓ 日本語 😀 emoji",
        "zero\u200bwidth space and e\u0301 combining",
        "model=v2 | p99=812ms",
    ],
)
def test_printable_text_is_unchanged(text: str) -> None:
    assert clean(text) == text


def test_plain_ascii_takes_the_fast_path() -> None:
    text = "request-0001 model_v2 success"
    assert clean(text) is text


# An alphabet biased towards the pieces escape sequences are made of, so hypothesis builds
# plenty of complete, nested and truncated sequences rather than only random code points.
_SEQUENCE_PIECES = st.sampled_from(
    "\x1b[]PX^_\\\x07\x9b\x9c\x9d\x90;08m?(B\r\n\t\x00\x7f\x85"
    "\u202e\u2066\u2069\u200f\u2028\ud800\udfff a\u00e9"
)
awkward_text = st.text(alphabet=st.one_of(_SEQUENCE_PIECES, st.characters(codec=None)), max_size=60)


@given(awkward_text)
def test_output_is_safe_idempotent_and_encodable(text: str) -> None:
    # One property test rather than three: each example is cheap, the start-up is not.
    once = clean(text)
    assert forbidden_characters(once) == []
    assert clean(once) == once
    once.encode("utf-8")  # lone surrogates would raise here


@given(st.text(st.characters(codec=None)))
def test_printable_text_is_never_changed(text: str) -> None:
    if text.isprintable():
        assert clean(text) == text
