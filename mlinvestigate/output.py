"""Render a `Result` as a terminal table, JSON, CSV or markdown.

* json: exactly the rows, as one array of objects keyed by column name, one object per line
  (still a single valid JSON document, and greppable). Datetimes are ISO-8601 UTC with "Z",
  NaN/inf become null, Decimal becomes a float, durations (timedelta) become seconds.
  Strings are not altered, but characters that a terminal would act on even inside a JSON
  string (DEL, C1 controls, bidi controls, line separators, lone surrogates) are written as
  \\u0000-style escapes, so the text is safe on a terminal and parses back to the same strings.
* csv: header plus the rows, with the same value forms as json (null is an empty field).
  Strings are sanitized only when the output is a terminal; a file gets the data as logged.
* markdown: a GitHub pipe table under a "### title" heading, notes as a list, sections after.
* table: a rich table with units in the headers, human number formats, notes and sections.

json and csv carry only one table's rows; `section=` selects a section instead of the main
rows (`find_section` turns the CLI's --section, a number or a word of a title, into it).
table and markdown show everything. Only table and markdown shorten cells to `max_col_width`;
json and csv are data and are never truncated.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
import sys
from collections.abc import Sequence
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import IO, TYPE_CHECKING, Any

from mlinvestigate.errors import UsageError
from mlinvestigate.result import Result
from mlinvestigate.sanitize import clean
from mlinvestigate.timeparse import format_duration

if TYPE_CHECKING:
    from rich.console import Console

FORMATS = ("table", "json", "csv", "markdown")

MISSING = "–"
"""Shown for None in table and markdown cells."""

# Piped table output is not wrapped at any width, so one row stays one line for grep (COLUMNS is
# ignored there: test runners and CI set it, and a wrapped row is useless to a pipe).
_PIPED_TABLE_WIDTH = 4096

# Characters json.dumps(ensure_ascii=False) leaves raw that a terminal still acts on.
_JSON_UNSAFE = re.compile(
    "[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]"
)

# Integers in these columns are identifiers, not counts: no thousands separators.
_IDENTIFIER_COLUMN = re.compile(r"(?:^|_)(?:id|code|line|record|port|pid|year|version)$")

_VERDICT_STYLES: dict[str, str] = {
    "ok": "green",
    "none": "green",
    "pass": "green",
    "negligible": "green",
    "warn": "yellow",
    "warning": "yellow",
    "moderate": "yellow",
    "bad": "red",
    "critical": "red",
    "significant": "red",
    "fail": "red",
}
_FIRST_WORD = re.compile(r"[a-z]+")


def render(
    result: Result,
    fmt: str,
    *,
    file: IO[str] | None = None,
    max_col_width: int | None = None,
    section: int | None = None,
) -> None:
    """Write `result` to `file` (default: stdout) in format `fmt` (one of FORMATS).

    `section` is a 0-based index into `result.sections`: that table is rendered instead of
    the main one (the way to get a section as json or csv)."""
    _check_format(fmt)
    chosen = _choose_section(result, section)
    target = file if file is not None else sys.stdout
    if fmt == "table":
        _print_table(chosen, _make_console(target), max_col_width)
        return
    target.write(_format_text(chosen, fmt, max_col_width, sanitize=_is_terminal(target)))
    target.flush()


def to_text(
    result: Result,
    fmt: str,
    *,
    max_col_width: int | None = None,
    section: int | None = None,
    width: int | None = None,
) -> str:
    """What `render` would write to a pipe, as a string (tables have no colour)."""
    _check_format(fmt)
    chosen = _choose_section(result, section)
    if fmt != "table":
        return _format_text(chosen, fmt, max_col_width, sanitize=False)
    from rich.console import Console

    buffer = io.StringIO()
    console = Console(
        file=buffer,
        width=width or _PIPED_TABLE_WIDTH,
        color_system=None,
        force_terminal=False,
        highlight=False,
        emoji=False,
        markup=False,
    )
    _print_table(chosen, console, max_col_width)
    return buffer.getvalue()


def _check_format(fmt: str) -> None:
    if fmt not in FORMATS:
        raise UsageError(f"unknown output format {fmt!r}; choose one of {', '.join(FORMATS)}")


def _choose_section(result: Result, section: int | None) -> Result:
    if section is None:
        return result
    if not 0 <= section < len(result.sections):
        if not result.sections:
            raise UsageError(f"{result.title!r} has no sections; leave out the section choice")
        available = ", ".join(f"{i} ({s.title})" for i, s in enumerate(result.sections))
        raise UsageError(f"no section {section} in {result.title!r}; sections are {available}")
    return result.sections[section]


def find_section(result: Result, text: str) -> int:
    """The 0-based index of the section of `result` that `text` (the CLI's --section) names: a
    number N is the N-th section (1 = the first), anything else a case-insensitive part of
    exactly one title (or the whole of one). Anything else is a UsageError listing the sections."""
    wanted = text.strip()
    if not result.sections:
        raise UsageError(f"the result ({result.title!r}) has no extra tables to choose from; "
                         "leave out --section")
    available = ", ".join(f"{i} ({s.title})" for i, s in enumerate(result.sections, start=1))
    if wanted.isdigit():
        number = int(wanted)
        if 1 <= number <= len(result.sections):
            return number - 1
        raise UsageError(f"no extra table {number} under {result.title!r}; the tables are {available}")
    matches = [i for i, s in enumerate(result.sections) if wanted and wanted.lower() in s.title.lower()]
    exact = [i for i in matches if result.sections[i].title.lower() == wanted.lower()]
    if len(matches) == 1 or len(exact) == 1:
        return (exact or matches)[0]
    if matches:
        raise UsageError(f"--section {text!r} matches {len(matches)} tables; give a longer part of "
                         f"a title, or the number: the tables are {available}")
    raise UsageError(f"no extra table under {result.title!r} matches --section {text!r}; "
                     f"the tables are {available}")


def _format_text(result: Result, fmt: str, max_col_width: int | None, *, sanitize: bool) -> str:
    if fmt == "json":
        return _json_text(result) + "\n"
    if fmt == "csv":
        return _csv_text(result, sanitize=sanitize)
    return _markdown_text(result, max_col_width)


def _is_terminal(file: IO[str]) -> bool:
    try:
        return bool(file.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed file
        return False


# ---------------------------------------------------------------- data values (json, csv)


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with "Z": milliseconds when they are whole, else microseconds."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    if moment.microsecond == 0:
        timespec = "seconds"
    elif moment.microsecond % 1000 == 0:
        timespec = "milliseconds"
    else:
        timespec = "microseconds"
    return moment.isoformat(timespec=timespec) + "Z"


def json_value(value: Any) -> Any:
    """`value` as something json.dumps writes as valid JSON (no NaN, no custom types)."""
    if value is None or isinstance(value, bool | int | str):
        return value
    if isinstance(value, float | Decimal):
        number = float(value)
        return number if math.isfinite(number) else None
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date | time):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, list | tuple):
        return [json_value(item) for item in value]
    if isinstance(value, dict):
        return {str(key): json_value(item) for key, item in value.items()}
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value).decode("utf-8", "backslashreplace")
    plain = _plain_value(value)
    return str(value) if plain is value else json_value(plain)


def _unique_keys(columns: Sequence[str]) -> list[str]:
    """Column names as JSON keys; a repeated name gets _2, _3 so no value is dropped."""
    seen: dict[str, int] = {}
    keys: list[str] = []
    for name in columns:
        count = seen.get(name, 0) + 1
        seen[name] = count
        keys.append(name if count == 1 else f"{name}_{count}")
    return keys


def _escape_json_unsafe(match: re.Match[str]) -> str:
    return f"\\u{ord(match.group()):04x}"


def _json_text(result: Result) -> str:
    keys = _unique_keys(result.columns)
    if not result.rows:
        return "[]"
    lines = [
        json.dumps(
            {key: json_value(value) for key, value in zip(keys, row, strict=True)},
            ensure_ascii=False,
            allow_nan=False,
        )
        for row in result.rows
    ]
    # The unsafe characters can only occur inside JSON strings, where a \u escape means the same.
    return _JSON_UNSAFE.sub(_escape_json_unsafe, "[\n" + ",\n".join(lines) + "\n]")


def _csv_field(value: Any) -> str:
    converted = json_value(value)
    if converted is None:
        return ""
    if isinstance(converted, bool):
        return "true" if converted else "false"
    if isinstance(converted, list | dict):
        return json.dumps(converted, ensure_ascii=False)
    return str(converted)


def _csv_text(result: Result, *, sanitize: bool) -> str:
    buffer = io.StringIO()
    # "\n" rather than the RFC's "\r\n": the output mostly goes to Unix pipes and files.
    writer = csv.writer(buffer, lineterminator="\n")
    tidy = clean if sanitize else _unchanged
    writer.writerow([tidy(name) for name in result.columns])
    for row in result.rows:
        writer.writerow([tidy(_csv_field(value)) for value in row])
    return buffer.getvalue()


def _unchanged(text: str) -> str:
    return text


# ---------------------------------------------------------------- human values (table, md)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float | Decimal) and not isinstance(value, bool)


def _is_numeric_column(values: Sequence[Any]) -> bool:
    present = [value for value in values if value is not None]
    return bool(present) and all(
        _is_number(value) or isinstance(value, timedelta) for value in present
    )


def _float_decimals(numbers: Sequence[float]) -> int:
    """Decimals for a whole float column, so the decimal points line up."""
    finite = [abs(number) for number in numbers if math.isfinite(number)]
    if not finite:
        return 0
    largest = max(finite)
    if largest >= 100_000 or (largest >= 1 and all(n.is_integer() for n in finite)):
        return 0
    if largest >= 100:
        return 1
    if largest >= 1:
        return 2
    return 3


def _format_float(number: float, decimals: int) -> str:
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "inf" if number > 0 else "-inf"
    if number == 0:
        return "0" if decimals == 0 else f"{0:.{decimals}f}"
    text = f"{number:,.{decimals}f}"
    if float(text.replace(",", "")) == 0:
        # Small next to the rest of the column but not zero: show it rather than "0.0".
        return f"{number:.3f}" if abs(number) >= 0.001 else f"{number:.2e}"
    return text


def format_column(values: Sequence[Any], name: str = "") -> list[str]:
    """Human-readable text for one column's values: thousands separators for counts, the
    same number of decimals down a float column, ISO UTC times, durations as "4 m 30 s".

    Returned strings are not sanitized; callers that print them pass them through clean()."""
    floats = [float(v) for v in values if isinstance(v, float | Decimal)]
    decimals = _float_decimals(floats)
    separators = not _IDENTIFIER_COLUMN.search(name)
    texts: list[str] = []
    for value in values:
        if value is None:
            texts.append(MISSING)
        elif isinstance(value, bool):
            texts.append("true" if value else "false")
        elif isinstance(value, int):
            texts.append(f"{value:,}" if separators else str(value))
        elif isinstance(value, float | Decimal):
            texts.append(_format_float(float(value), decimals))
        elif isinstance(value, datetime):
            texts.append(iso_utc(value))
        elif isinstance(value, timedelta):
            texts.append(format_duration(value.total_seconds()))
        elif isinstance(value, str):
            texts.append(value)
        else:
            converted = json_value(value)
            texts.append(
                converted
                if isinstance(converted, str)
                else json.dumps(converted, ensure_ascii=False)
            )
    return texts


_PLAIN_TYPES = (str, int, float, Decimal, datetime, date, time, timedelta, list, tuple, dict)


def _plain_value(value: Any) -> Any:
    """numpy and similar scalars as the Python value they stand for, so they are formatted
    (and aligned) like ints and floats."""
    if value is None or isinstance(value, _PLAIN_TYPES):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return value


def _columns_of(result: Result) -> list[tuple[Any, ...]]:
    """The values of each column (rows transposed); empty tuples when there are no rows."""
    if not result.rows:
        return [()] * len(result.columns)
    return [tuple(map(_plain_value, column)) for column in zip(*result.rows, strict=True)]


def _header(result: Result, name: str) -> str:
    unit = result.units.get(name)
    return f"{name} ({unit})" if unit else name


def _shorten(text: str, max_width: int | None) -> str:
    if max_width is None or len(text) <= max_width:
        return text
    return text[: max(max_width - 1, 0)] + "…"


def _is_verdict_column(name: str) -> bool:
    return name == "verdict" or name.endswith("_verdict")


def verdict_style(value: Any) -> str | None:
    """The colour for a verdict such as "ok", "moderate" or "critical: p99 3x baseline"."""
    if not isinstance(value, str):
        return None
    word = _FIRST_WORD.match(value.strip().lower())
    return _VERDICT_STYLES.get(word.group()) if word else None


# ---------------------------------------------------------------- markdown


def _markdown_cell(text: str, max_width: int | None) -> str:
    text = _shorten(clean(text), max_width)
    # Backslash first so the escapes added next are not doubled; "<" so that text such as
    # "<class 'KeyError'>" is shown instead of being swallowed as an HTML tag.
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("<", "\\<")


def _markdown_text(result: Result, max_col_width: int | None, level: int = 3) -> str:
    lines = [f"{'#' * min(level, 6)} {_markdown_cell(result.title, None)}", ""]
    if result.columns:
        columns = _columns_of(result)
        numeric = [_is_numeric_column(values) for values in columns]
        lines.append(
            "| "
            + " | ".join(_markdown_cell(_header(result, name), None) for name in result.columns)
            + " |"
        )
        lines.append("|" + "|".join("---:" if right else "---" for right in numeric) + "|")
        texts = [
            format_column(values, name)
            for values, name in zip(columns, result.columns, strict=True)
        ]
        for row in zip(*texts, strict=True):
            lines.append("| " + " | ".join(_markdown_cell(t, max_col_width) for t in row) + " |")
        lines.append("")
    if result.notes:
        lines.extend(f"- {_markdown_cell(note, None)}" for note in result.notes)
        lines.append("")
    text = "\n".join(lines)
    for section in result.sections:
        text += "\n" + _markdown_text(section, max_col_width, level + 1)
    return text


# ---------------------------------------------------------------- rich table


def _make_console(file: IO[str]) -> Console:
    from rich.console import Console

    # markup/emoji off: nothing printed here is meant as rich markup, and log data that looks
    # like "[red]" or ":smile:" must show as written.
    console = Console(file=file, highlight=False, markup=False, emoji=False)
    if not console.is_terminal:
        console.width = _PIPED_TABLE_WIDTH
    return console


def _print_table(result: Result, console: Console, max_col_width: int | None) -> None:
    from rich.text import Text

    columns = _columns_of(result)
    headers = [clean(_header(result, name)) for name in result.columns]
    right = [_is_numeric_column(values) for values in columns]
    cells: list[list[tuple[str, str]]] = []  # per column: (text, style)
    for name, values in zip(result.columns, columns, strict=True):
        verdicts = _is_verdict_column(name)
        column: list[tuple[str, str]] = []
        for value, text in zip(values, format_column(values, name), strict=True):
            if value is None or (isinstance(value, float) and math.isnan(value)):
                style = "dim"
            elif verdicts:
                style = verdict_style(value) or ""
            else:
                style = ""
            column.append((clean(text), style))
        cells.append(column)
    title = clean(result.title)
    if not _print_simple_table(console, title, headers, right, cells, max_col_width):
        _print_rich_table(console, title, headers, right, cells, max_col_width)
    for note in result.notes:
        console.print(Text(clean(note)))
    for section in result.sections:
        console.print()
        _print_table(section, console, max_col_width)


def _print_rich_table(console: Console, title: str, headers: list[str], right: list[bool],
                      cells: list[list[tuple[str, str]]], max_col_width: int | None) -> None:
    """rich's Table: it shrinks, folds and cuts columns to fit the width."""
    from rich import box
    from rich.table import Table
    from rich.text import Text

    table = Table(
        title=Text(title, style="bold"),
        box=box.SIMPLE_HEAD,
        show_edge=False,
        header_style="bold",
    )
    for header, is_right in zip(headers, right, strict=True):
        table.add_column(
            Text(header),
            justify="right" if is_right else "left",
            # Headers are our own short names: never cut them, whatever the cell limit.
            max_width=max(max_col_width, len(header)) if max_col_width else None,
            # Without a width limit a long token (a hash, a URL) is folded, never cut off.
            overflow="ellipsis" if max_col_width else "fold",
            no_wrap=bool(max_col_width),
        )
    for row in zip(*cells, strict=True):
        table.add_row(*(Text(text, style=style) for text, style in row))
    console.print(table)


def _print_simple_table(console: Console, title: str, headers: list[str], right: list[bool],
                        cells: list[list[tuple[str, str]]], max_col_width: int | None) -> bool:
    """The same table as _print_rich_table, character for character and style for style, when
    nothing has to be shrunk, folded or cut; False (nothing printed) otherwise. rich lays out
    a cell at about 200 µs: 0.4 s for the 2,000 cells of `latency --every`."""
    from rich.cells import cell_len
    from rich.text import Text

    widths: list[int] = []
    for header, column in zip(headers, cells, strict=True):
        width = cell_len(header)
        for text, _ in column:
            if "\n" in text or (max_col_width and cell_len(text) > max(max_col_width, len(header))):
                return False
            width = max(width, cell_len(text))
        widths.append(width)
    # Each cell has one space of padding either side, and columns one space between them.
    total = sum(widths) + 3 * len(widths) - 1
    if not cells or not cells[0] or total > console.width or cell_len(title) > total \
            or title != title.strip():
        return False  # rich would shrink or fold something, or re-space the title

    def line(row: list[tuple[str, str]], pad_style: str) -> Text:
        out = Text()
        for i, ((text, style), width, is_right) in enumerate(zip(row, widths, right, strict=True)):
            gap = " " * (width - cell_len(text))
            if i:
                out.append(" ")
            out.append(" ", pad_style)
            out.append(gap + text if is_right else text + gap, style)
            out.append(" ", pad_style)
        return out

    space = total - cell_len(title)
    lines = [Text(" " * (space // 2) + title + " " * (space - space // 2), "bold")] if title \
        else []  # rich prints no line for an empty title
    lines += [line([(header, "bold") for header in headers], "bold"), Text("─" * total)]
    lines.extend(line(list(row), "") for row in zip(*cells, strict=True))
    console.print(Text("\n").join(lines), no_wrap=True, overflow="ignore", crop=False)
    return True
