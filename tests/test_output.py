"""Rendering a Result in every format, with the awkward values real logs contain."""

from __future__ import annotations

import csv
import io
import json
import math
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlinvestigate.errors import UsageError
from mlinvestigate.output import FORMATS, find_section, format_column, iso_utc, render, to_text
from mlinvestigate.result import Result

ESCAPED_RED = "fine\x1b[31m red"
MARKUP_LOOKALIKE = "[red]x[/red]"
PIPE = "a | b"
UNICODE = "ünïcödé ✓ 日本 😀"
MULTILINE = "line one\nline two"
BIDI = "admin\u202e resu"

COLUMNS = ["model_version", "ts", "requests", "p99", "error_rate", "verdict", "message"]


def awkward_result() -> Result:
    return Result(
        title="Latency by [bold]model_version[/bold]",
        columns=COLUMNS,
        rows=[
            (
                "v1",
                datetime(2024, 5, 1, 12, 0, 0, 123000),
                123456,
                812.345,
                0.0123,
                "ok",
                ESCAPED_RED,
            ),
            (MARKUP_LOOKALIKE, None, 7, math.nan, Decimal("0.5"), "critical", PIPE),
            (None, datetime(2024, 5, 1, 13), 0, math.inf, None, "moderate", UNICODE),
            ("v3", datetime(2024, 5, 1, 14), 1, 3.5, 0.25, None, MULTILINE + BIDI),
        ],
        notes=["Percentiles are exact.", "note with [red]markup[/red] and \x1b]0;title\x07"],
        units={"p99": "ms", "error_rate": "%"},
        sections=[
            Result(
                title="Slowest requests",
                columns=["request_id", "latency_ms"],
                rows=[("req-1", 9123.4), ("req-2", 12.0)],
                notes=["Top 2 of 4."],
            )
        ],
    )


def test_formats() -> None:
    assert FORMATS == ("table", "json", "csv", "markdown")


# ---------------------------------------------------------------- json


def test_json_is_one_array_of_row_objects() -> None:
    text = to_text(awkward_result(), "json")
    records = json.loads(text)
    assert isinstance(records, list)
    assert len(records) == 4
    assert all(list(record) == COLUMNS for record in records)
    first, second, third, fourth = records
    assert first["ts"] == "2024-05-01T12:00:00.123Z"
    assert first["requests"] == 123456
    assert first["message"] == ESCAPED_RED  # data unchanged, JSON escaping keeps it safe
    assert second["model_version"] == MARKUP_LOOKALIKE
    assert second["ts"] is None
    assert second["p99"] is None  # NaN
    assert second["error_rate"] == 0.5  # Decimal
    assert third["p99"] is None  # inf
    assert third["model_version"] is None
    assert third["message"] == UNICODE
    assert fourth["message"] == MULTILINE + BIDI
    assert fourth["verdict"] is None


def test_json_text_is_safe_on_a_terminal() -> None:
    text = to_text(awkward_result(), "json")
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert "NaN" not in text and "Infinity" not in text
    assert UNICODE in text  # readable, not \u-escaped


def test_json_has_no_sections_unless_one_is_chosen() -> None:
    result = awkward_result()
    assert "req-1" not in to_text(result, "json")
    records = json.loads(to_text(result, "json", section=0))
    assert records == [
        {"request_id": "req-1", "latency_ms": 9123.4},
        {"request_id": "req-2", "latency_ms": 12.0},
    ]


def test_json_of_no_rows_is_an_empty_array() -> None:
    assert json.loads(to_text(Result("Nothing", ["a"], []), "json")) == []


def test_json_keeps_repeated_column_names_apart() -> None:
    result = Result("Dupes", ["n", "n"], [(1, 2)])
    assert json.loads(to_text(result, "json")) == [{"n": 1, "n_2": 2}]


def test_json_converts_other_types() -> None:
    plus_two = timezone(timedelta(hours=2))
    result = Result(
        "Types",
        ["aware", "took", "tags", "attrs", "blob", "flag"],
        [
            (
                datetime(2024, 5, 1, 14, tzinfo=plus_two),
                timedelta(milliseconds=1500),
                ["a", float("nan")],
                {"k": Decimal("1.5")},
                b"raw",
                True,
            )
        ],
    )
    assert json.loads(to_text(result, "json")) == [
        {
            "aware": "2024-05-01T12:00:00Z",
            "took": 1.5,
            "tags": ["a", None],
            "attrs": {"k": 1.5},
            "blob": "raw",
            "flag": True,
        }
    ]


_ANY_TEXT = st.text(st.characters(codec=None, categories=None), max_size=30) | st.sampled_from(
    ["\x1b[31m", "\x9b2J", "\u202e", "\u2028", "\ud800", "\x7f", "\\u001b"]
)


@given(st.lists(_ANY_TEXT, min_size=1, max_size=5))
def test_json_round_trips_any_string(values: list[str]) -> None:
    result = Result("Strings", [f"c{i}" for i in range(len(values))], [tuple(values)])
    text = to_text(result, "json")
    assert json.loads(text) == [dict(zip(result.columns, values, strict=True))]
    text.encode("utf-8")  # lone surrogates are escaped, so this never raises


# ---------------------------------------------------------------- csv


def test_csv_round_trips_through_csv_reader() -> None:
    text = to_text(awkward_result(), "csv")
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == COLUMNS
    assert len(rows) == 1 + 4  # header and the main rows only, no sections
    first, second, third, fourth = rows[1:]
    assert first == [
        "v1",
        "2024-05-01T12:00:00.123Z",
        "123456",
        "812.345",
        "0.0123",
        "ok",
        ESCAPED_RED,
    ]
    assert second == [MARKUP_LOOKALIKE, "", "7", "", "0.5", "critical", PIPE]
    assert third[0] == "" and third[3] == "" and third[6] == UNICODE
    assert fourth[6] == MULTILINE + BIDI  # a file gets the data as logged


def test_csv_section() -> None:
    rows = list(csv.reader(io.StringIO(to_text(awkward_result(), "csv", section=0))))
    assert rows == [["request_id", "latency_ms"], ["req-1", "9123.4"], ["req-2", "12.0"]]


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_csv_is_sanitized_on_a_terminal_only() -> None:
    terminal = FakeTerminal()
    render(awkward_result(), "csv", file=terminal)
    assert "\x1b" not in terminal.getvalue()
    assert "\u202e" not in terminal.getvalue()
    assert "fine red" in terminal.getvalue()
    piped = io.StringIO()
    render(awkward_result(), "csv", file=piped)
    assert ESCAPED_RED in piped.getvalue()


# ---------------------------------------------------------------- markdown


def test_markdown_pipe_table() -> None:
    text = to_text(awkward_result(), "markdown")
    lines = text.splitlines()
    assert lines[0] == "### Latency by [bold]model_version[/bold]"
    header = "| model_version | ts | requests | p99 (ms) | error_rate (%) | verdict | message |"
    assert header in lines
    assert lines[lines.index(header) + 1] == "|---|---|---:|---:|---:|---|---|"
    assert "a \\| b" in text  # the pipe in the data cannot split the cell
    assert MARKUP_LOOKALIKE in text
    assert UNICODE in text
    assert "\x1b" not in text and "\u202e" not in text
    assert "line one↵line two" in text  # one row stays one line
    assert "- Percentiles are exact." in lines
    assert "#### Slowest requests" in lines
    assert "| req-1 | 9,123.4 |" in lines
    # Every table row has as many cells as the header.
    for line in lines:
        if line.startswith("| ") and "request_id" not in line and "req-" not in line:
            assert line.replace("\\|", "").count("|") == len(COLUMNS) + 1


def test_markdown_of_no_rows_still_has_a_header() -> None:
    text = to_text(Result("Nothing", ["a", "b"], []), "markdown")
    assert "| a | b |" in text and "|---|---|" in text


def test_markdown_escapes_html_like_text() -> None:
    text = to_text(Result("Errors", ["error_type"], [("<class 'KeyError'>",)]), "markdown")
    assert "| \\<class 'KeyError'> |" in text


# ---------------------------------------------------------------- table


def test_table_is_plain_text_when_piped() -> None:
    text = to_text(awkward_result(), "table")
    assert "\x1b" not in text
    assert "\u202e" not in text
    assert MARKUP_LOOKALIKE in text  # shown as written, not interpreted
    assert "[bold]model_version[/bold]" in text
    assert "[red]markup[/red]" in text
    assert "p99 (ms)" in text and "error_rate (%)" in text
    assert "123,456" in text
    assert "812.3" in text
    assert "2024-05-01T12:00:00.123Z" in text
    assert "fine red" in text
    assert UNICODE in text
    assert "–" in text  # None
    assert "Percentiles are exact." in text
    assert "Slowest requests" in text and "9,123.4" in text and "Top 2 of 4." in text


def test_render_table_to_a_pipe_has_no_colour() -> None:
    buffer = io.StringIO()
    render(awkward_result(), "table", file=buffer)
    assert "\x1b" not in buffer.getvalue()
    assert MARKUP_LOOKALIKE in buffer.getvalue()


@pytest.fixture
def colour_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TERM", "xterm-256color")
    monkeypatch.setenv("COLUMNS", "200")  # wide enough that no cell wraps


@pytest.mark.usefixtures("colour_terminal")
def test_table_on_a_terminal_colours_verdicts_but_never_passes_data_escapes() -> None:
    terminal = FakeTerminal()
    render(awkward_result(), "table", file=terminal)
    text = terminal.getvalue()
    assert "\x1b[32mok" in text  # green
    assert "\x1b[31mcritical" in text  # red
    assert "\x1b[33mmoderate" in text  # yellow
    assert "fine\x1b" not in text  # the ESC from the log line is gone
    assert "\x1b]" not in text  # no OSC (title, hyperlink) from the notes
    assert MARKUP_LOOKALIKE in text


def test_max_col_width_shortens_human_formats_only() -> None:
    result = Result("Long", ["message"], [("x" * 100,)])
    assert "x" * 100 not in to_text(result, "table", max_col_width=20)
    assert "x" * 19 + "…" in to_text(result, "markdown", max_col_width=20)
    assert json.loads(to_text(result, "json", max_col_width=20)) == [{"message": "x" * 100}]


def test_long_tokens_are_folded_not_cut_without_a_limit() -> None:
    token = "f" * 300
    text = to_text(Result("Hash", ["input_hash"], [(token,)]), "table", width=80)
    assert text.count("f") == 300


# ---------------------------------------------------------------- errors and helpers


def test_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="choose one of table, json, csv, markdown"):
        to_text(awkward_result(), "yaml")


def test_missing_section_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="no section 3"):
        to_text(awkward_result(), "json", section=3)
    with pytest.raises(UsageError, match="has no sections"):
        to_text(Result("Flat", ["a"], [(1,)]), "json", section=0)


def test_find_section_by_number_or_a_word_of_its_title() -> None:
    result = Result("Main", ["a"], [(1,)], sections=[
        Result("Slowest requests", ["a"], []), Result("Requests per interval", ["a"], []),
        Result("Requests", ["a"], [])])
    assert find_section(result, "1") == 0
    assert find_section(result, " 2 ") == 1
    assert find_section(result, "SLOWEST") == 0
    assert find_section(result, "interval") == 1
    assert find_section(result, "requests") == 2  # the whole of one title wins over parts of others
    for text, message in (("0", "no extra table 0"), ("4", "no extra table 4"), ("nosuch", "matches"),
                          ("", "matches"), ("quest", "matches 3 tables")):
        with pytest.raises(UsageError, match=message) as raised:
            find_section(result, text)
        assert "1 (Slowest requests), 2 (Requests per interval), 3 (Requests)" in str(raised.value)
    with pytest.raises(UsageError, match="no extra tables"):
        find_section(Result("Flat", ["a"], [(1,)]), "1")


def test_format_column_numbers() -> None:
    assert format_column([1234567, None, 0]) == ["1,234,567", "–", "0"]
    assert format_column([1234567], "request_id") == ["1234567"]
    assert format_column([503], "status_code") == ["503"]
    assert format_column([812.345, 3.5, math.nan]) == ["812.3", "3.5", "NaN"]
    assert format_column([47.25, 3.1]) == ["47.25", "3.10"]
    assert format_column([0.947, 0.05]) == ["0.947", "0.050"]
    assert format_column([250_000.4, 1.5]) == ["250,000", "2"]
    assert format_column([12000.0, 5.0]) == ["12,000", "5"]  # float counts
    assert format_column([1e-12, 0.3]) == ["1.00e-12", "0.300"]  # a tiny p-value is not 0
    assert format_column([0.04, 800.0]) == ["0.040", "800.0"]
    assert format_column([True, False]) == ["true", "false"]
    assert format_column([timedelta(seconds=270)]) == ["4 m 30 s"]
    assert format_column([Decimal("2.50")]) == ["2.50"]


def test_iso_utc() -> None:
    assert iso_utc(datetime(2024, 5, 1)) == "2024-05-01T00:00:00Z"
    assert iso_utc(datetime(2024, 5, 1, 0, 0, 0, 5)) == "2024-05-01T00:00:00.000005Z"
    aware = datetime(2024, 5, 1, 2, tzinfo=timezone(timedelta(hours=2)))
    assert iso_utc(aware) == "2024-05-01T00:00:00Z"


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_format_handles_an_empty_result(fmt: str) -> None:
    to_text(Result("Nothing", ["a", "b"], []), fmt)
