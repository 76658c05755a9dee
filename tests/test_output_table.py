"""The fast table layout (output._print_simple_table) prints exactly what rich's Table prints,
character for character and style for style, whenever it takes over; otherwise it declines."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

from mlinvestigate import output
from mlinvestigate.investigations.errors import errors
from mlinvestigate.investigations.filters import Filters
from mlinvestigate.investigations.latency import latency
from mlinvestigate.investigations.loads import loads
from mlinvestigate.investigations.slow import slow
from mlinvestigate.investigations.summary import summary
from mlinvestigate.investigations.throughput import throughput
from mlinvestigate.result import Result

pytest_plugins = ["investigation_fixtures"]

SGR = re.compile(r"\x1b\[([0-9;]*)m")


def _console(terminal: bool, width: int = 4096) -> Console:
    console = Console(file=io.StringIO(), width=width, highlight=False, markup=False, emoji=False,
                      force_terminal=terminal, color_system="standard" if terminal else None)
    return console


def _printed(result: Result, *, simple: bool, terminal: bool, width: int = 4096,
             max_col_width: int | None = None, monkeypatch: pytest.MonkeyPatch) -> str:
    console = _console(terminal, width)
    with monkeypatch.context() as patched:
        if not simple:
            patched.setattr(output, "_print_simple_table", lambda *args: False)
        output._print_table(result, console, max_col_width)
    return console.file.getvalue()


def _styled_characters(text: str) -> list[tuple[str, str]]:
    """Each visible character with the SGR codes in force: equal lists look the same."""
    styled: list[tuple[str, str]] = []
    active = ""
    position = 0
    for match in SGR.finditer(text):
        styled.extend((char, active) for char in text[position:match.start()])
        active = "" if match.group(1) in ("", "0") else match.group(1)
        position = match.end()
    styled.extend((char, active) for char in text[position:])
    return styled


def _results(con) -> list[Result]:
    every = Filters(limit=100)
    return [summary(con, every), slow(con, every), latency(con, every, by="input_size"),
            latency(con, every, by="input_size", every=timedelta(minutes=30)), loads(con, every),
            errors(con, every), throughput(con, every, capacity_per_s=5.0)]


def test_every_investigation_prints_the_same_either_way(sample_con, monkeypatch):
    for result in _results(sample_con):
        plain = _printed(result, simple=True, terminal=False, monkeypatch=monkeypatch)
        assert plain == _printed(result, simple=False, terminal=False, monkeypatch=monkeypatch)
        coloured = _printed(result, simple=True, terminal=True, monkeypatch=monkeypatch)
        by_rich = _printed(result, simple=False, terminal=True, monkeypatch=monkeypatch)
        assert _styled_characters(coloured) == _styled_characters(by_rich), result.title
        assert "\x1b[2m" in coloured or "\x1b[1m" in coloured  # styles were compared


def test_it_declines_what_must_be_shrunk_or_cut(sample_con, monkeypatch):
    result = summary(sample_con, Filters())
    console = _console(False, width=80)
    assert not output._print_simple_table(console, "t", ["a"], [False], [[("x" * 81, "")]], None)
    assert not output._print_simple_table(console, "t", ["a"], [False], [[("two\nlines", "")]],
                                          None)
    assert not output._print_simple_table(console, "t", ["a"], [False], [[("x" * 30, "")]], 10)
    assert not output._print_simple_table(console, "a long title", ["a"], [False], [[("x", "")]],
                                          None)
    assert console.file.getvalue() == ""
    narrow = _printed(result, simple=True, terminal=False, width=80, monkeypatch=monkeypatch)
    assert narrow == _printed(result, simple=False, terminal=False, width=80,
                              monkeypatch=monkeypatch)


CELL = st.one_of(st.none(), st.integers(-10**9, 10**9), st.floats(allow_nan=True),
                 st.text(st.characters(blacklist_categories=("Cs",)), max_size=12))


@settings(max_examples=150, deadline=None)
@given(rows=st.lists(st.tuples(CELL, CELL, CELL), max_size=6),
       title=st.text(max_size=20), terminal=st.booleans())
def test_any_small_table_prints_the_same_either_way(rows, title, terminal) -> None:
    result = Result(title=title or "t", columns=["first", "second_ms", "verdict"], rows=rows)
    printed = []
    for simple in (True, False):
        with pytest.MonkeyPatch.context() as patched:
            if not simple:
                patched.setattr(output, "_print_simple_table", lambda *args: False)
            console = _console(terminal, width=120)
            output._print_table(result, console, None)
            printed.append(console.file.getvalue())
    if terminal:
        assert _styled_characters(printed[0]) == _styled_characters(printed[1])
    else:
        assert printed[0] == printed[1]
