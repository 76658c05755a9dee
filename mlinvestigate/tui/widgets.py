"""The widgets of `mlinv tui`: small, and each draws one view object from `panels`.

Widgets keep UI state only. They never query: the screen hands them a view when a worker has
one, and they redraw from it at whatever size they have (so a resize needs no new query).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar

from rich.text import Text
from textual.widget import Widget
from textual.widgets import DataTable, Static

from ..investigations.filters import pct_text
from ..output import verdict_style
from .panels import (
    NOT_ENOUGH,
    NOT_ENOUGH_WHY,
    DriftView,
    ErrorsView,
    LatencyView,
    LoadMark,
    Point,
    RequestRow,
    ThroughputView,
    VersionRow,
    key_label,
)

GUTTER = 8
"""Columns left of a chart for the y-axis labels (and row names)."""

_SPARK = " ▁▂▃▄▅▆▇█"
_BRAILLE_BITS = ((0x01, 0x02, 0x04, 0x40), (0x08, 0x10, 0x20, 0x80))
"""Braille dot bits by [column within the cell][row within the cell, top first]."""

VERDICT_MARK = {"critical": "red", "fail": "red", "warn": "yellow", "ok": "green"}


def compact_number(value: float) -> str:
    """A number in at most ~5 characters: 950, 12.3k, 4.5M."""
    if value != value:  # NaN
        return "–"
    magnitude = abs(value)
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if magnitude >= limit:
            scaled = value / limit
            return f"{scaled:.1f}{suffix}" if abs(scaled) < 100 else f"{scaled:.0f}{suffix}"
    if magnitude >= 100 or value == int(value):
        return f"{value:.0f}"
    return f"{value:.1f}" if magnitude >= 1 else f"{value:.2f}"


def rate_text(value: float) -> str:
    return f"{compact_number(value)}/s"


def latency_text(ms: float | None) -> str:
    """Latencies in one unit down a column, so they compare at a glance: 9.8 ms, 876 ms,
    2,003 ms; seconds only from 10 s."""
    if ms is None or ms != ms:
        return "–"
    if ms < 100:
        return f"{ms:.1f} ms"
    if ms < 10_000:
        return f"{ms:,.0f} ms"
    return f"{ms / 1000:,.1f} s"


# ------------------------------------------------------------------------------ line chart


@dataclass(frozen=True)
class Series:
    name: str
    points: tuple[Point, ...]
    style: str


def _nice_ceiling(value: float) -> float:
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return step * power
    return 10 * power


class LineChart(Widget):
    """Several series over the same time axis, drawn in braille (2×4 dots per cell), with
    the y range on the left, a marker row (model loads) and the time axis underneath.

    Points are (x in 0…1, y). Consecutive points closer than `max_gap` are joined by a line;
    a gap (no data in a bucket) stays a gap. Where series share a cell, the later one's
    colour wins, so the list is ordered from least to most important (p50 … p99)."""

    DEFAULT_CSS = "LineChart { height: 1fr; }"

    def __init__(self, *, log_scale: bool = False, formatter: Callable[[float], str] = compact_number,
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.log_scale = log_scale
        self.formatter = formatter
        self.series: tuple[Series, ...] = ()
        self.marks: tuple[LoadMark, ...] = ()
        self.axis: tuple[datetime, datetime] | None = None
        self.max_gap = 0.05
        self.empty_text = "no data"

    def plot(self, series: Sequence[Series], axis: tuple[datetime, datetime], *, max_gap: float,
             marks: Sequence[LoadMark] = ()) -> None:
        self.series, self.axis, self.max_gap = tuple(series), axis, max_gap
        self.marks = tuple(marks)
        self.refresh()

    def mark(self, marks: Sequence[LoadMark]) -> None:
        self.marks = tuple(marks)
        self.refresh()

    def clear(self, message: str) -> None:
        self.series, self.empty_text = (), message
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        extra_rows = 2 if height >= 5 else (1 if height >= 3 else 0)
        rows = height - extra_rows
        cells = width - GUTTER
        values = [y for s in self.series for _, y in s.points if y is not None and math.isfinite(y)]
        if rows < 1 or cells < 4:
            return Text("")
        if not values:
            lines = [Text("")] * rows
            lines[rows // 2] = Text(" " * GUTTER + self.empty_text, style="dim")
            return Text("\n").join(lines + self._footer(cells, extra_rows))
        low, high, scale = self._scale(values)
        grid: list[list[int]] = [[0] * cells for _ in range(rows)]
        colour: list[list[str]] = [[""] * cells for _ in range(rows)]
        dots_x, dots_y = cells * 2, rows * 4
        for series in self.series:
            previous: tuple[int, int, float] | None = None
            for x, y in series.points:
                if y is None or not math.isfinite(y):
                    previous = None
                    continue
                px = min(dots_x - 1, max(0, round(x * (dots_x - 1))))
                py = min(dots_y - 1, max(0, round((1.0 - scale(y)) * (dots_y - 1))))
                if previous is not None and x - previous[2] <= self.max_gap:
                    dots = _line(previous[0], previous[1], px, py)
                else:
                    dots = [(px, py)]
                for dx, dy in dots:
                    cell_x, cell_y = dx // 2, dy // 4
                    grid[cell_y][cell_x] |= _BRAILLE_BITS[dx % 2][dy % 4]
                    colour[cell_y][cell_x] = series.style
                previous = (px, py, x)
        lines = []
        for row in range(rows):
            label = ""
            if row == 0:
                label = self.formatter(high)
            elif row == rows - 1:
                label = self.formatter(low)
            line = Text(label.rjust(GUTTER - 1)[: GUTTER - 1] + ("┤" if label else "│"), style="dim")
            for cell in range(cells):
                bits = grid[row][cell]
                line.append(chr(0x2800 + bits) if bits else " ", style=colour[row][cell] or None)
            lines.append(line)
        return Text("\n").join(lines + self._footer(cells, extra_rows))

    def _scale(self, values: list[float]) -> tuple[float, float, Callable[[float], float]]:
        if self.log_scale:
            positive = [v for v in values if v > 0] or [1.0]
            low = 10 ** math.floor(math.log10(min(positive)))
            high = 10 ** math.ceil(math.log10(max(positive)))
            if high <= low:
                high = low * 10
            span = math.log10(high) - math.log10(low)
            return low, high, lambda v: (math.log10(max(v, low)) - math.log10(low)) / span
        high = _nice_ceiling(max(values))
        return 0.0, high, lambda v: max(0.0, v) / high

    def _footer(self, cells: int, extra_rows: int) -> list[Text]:
        if extra_rows >= 2:
            return [marker_row(self.marks, self.axis, cells), axis_row(self.axis, cells)]
        if extra_rows == 1:  # short panel (80x24): the load markers share the axis row
            return [axis_row(self.axis, cells, self.marks)]
        return []


def _line(x0: int, y0: int, x1: int, y1: int) -> list[tuple[int, int]]:
    """The dots of a straight line (Bresenham)."""
    dots = []
    dx, dy = abs(x1 - x0), -abs(y1 - y0)
    sx, sy = (1 if x0 < x1 else -1), (1 if y0 < y1 else -1)
    error = dx + dy
    while True:
        dots.append((x0, y0))
        if x0 == x1 and y0 == y1:
            return dots
        doubled = 2 * error
        if doubled >= dy:
            error += dy
            x0 += sx
        if doubled <= dx:
            error += dx
            y0 += sy


def marker_row(marks: Sequence[LoadMark], axis: tuple[datetime, datetime] | None, cells: int) -> Text:
    """"loads ▲ … ▲": one ▲ per model load, coloured by what followed it (ok green, warn
    yellow, critical or failed red)."""
    line = Text("loads".rjust(GUTTER - 1) + " ", style="dim")
    slots = ["·"] * cells
    styles: list[str | None] = [None] * cells
    span = (axis[1] - axis[0]).total_seconds() if axis else 0.0
    for mark in marks:
        if axis is None or span <= 0:
            break
        x = (mark.at - axis[0]).total_seconds() / span
        if 0.0 <= x <= 1.0:
            cell = min(cells - 1, int(x * cells))
            slots[cell] = "▲"
            styles[cell] = VERDICT_MARK.get(mark.verdict, "cyan")
    for char, style in zip(slots, styles, strict=True):
        line.append(char, style=style or "dim")
    return line


def axis_row(axis: tuple[datetime, datetime] | None, cells: int,
             marks: Sequence[LoadMark] = ()) -> Text:
    """The time axis: start at the left, end at the right (event time, UTC); with `marks`,
    the load markers go in the space between."""
    if axis is None:
        return Text("")
    start, end = axis
    with_date = (end - start).total_seconds() > 86400
    fmt = "%m-%d %H:%M" if with_date else "%H:%M:%S"
    left, right = start.strftime(fmt), end.strftime(fmt)
    gap = max(1, cells - len(left) - len(right))
    line = Text(" " * GUTTER + left, style="dim")
    if marks:
        middle = marker_row(marks, axis, cells)[GUTTER + len(left):GUTTER + len(left) + gap]
        middle.plain = middle.plain.replace("·", " ")
        line.append_text(middle)
    else:
        line.append(" " * gap)
    line.append(right, style="dim")
    return line


# ------------------------------------------------------------------------------ panels


class Legend(Static):
    """One line of current values over a chart."""

    DEFAULT_CSS = "Legend { height: 1; }"


def latency_legend(view: LatencyView) -> Text:
    text = Text()
    for name, style in (("p50", "green"), ("p95", "yellow"), ("p99", "red")):
        text.append(f"{name} ", style=f"bold {style}")
        text.append(latency_text(view.current.get(name)) + "  ")
    text.append(key_label(view.focus), style="bold")
    if len(view.keys) > 1:
        text.append("  m:next", style="dim")
    for label, p99 in view.others[:2]:
        text.append(f"  {label} p99 {latency_text(p99)}", style="dim")
    return text


def latency_series(view: LatencyView) -> list[Series]:
    return [Series(name, view.series.get(name, ()), style)
            for name, style in (("p50", "green"), ("p95", "yellow"), ("p99", "red"))]


def throughput_legend(view: ThroughputView) -> Text:
    text = Text()
    for name, short, style in (("received", "recv", "cyan"), ("processed", "proc", "green"),
                               ("failed", "fail", "red")):
        text.append(f"{short} ", style=f"bold {style}")
        text.append(rate_text(view.current.get(name, 0.0)) + "  ")
    text.append(f"dropped {view.totals.get('dropped', 0):,}", style="dim")
    return text


def throughput_series(view: ThroughputView) -> list[Series]:
    return [Series(name, view.series.get(name, ()), style)
            for name, style in (("received", "cyan"), ("processed", "green"), ("failed", "red"))]


CATEGORY_STYLES = ("red", "magenta", "yellow", "bright_blue", "cyan", "white")


class ErrorStrips(Widget):
    """Errors by category over time: one sparkline row per category, busiest first."""

    DEFAULT_CSS = "ErrorStrips { height: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: ErrorsView | None = None
        self.message = "waiting for data"

    def show(self, view: ErrorsView) -> None:
        self.view = view
        self.refresh()

    def clear(self, message: str) -> None:
        self.view, self.message = None, message
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        if self.view is None:
            return Text(self.message, style="dim")
        if not self.view.strips:
            return Text("no errors in the window", style="green")
        longest = max((len(strip.name) for strip in self.view.strips), default=8)
        name_width = min(longest + 1, max(8, width // 3))
        tail_width = 16
        cells = max(4, width - name_width - tail_width)
        strips = list(self.view.strips)
        shown = strips[:height] if len(strips) <= height else strips[: max(1, height - 1)]
        lines = []
        for i, strip in enumerate(shown):
            style = CATEGORY_STYLES[i % len(CATEGORY_STYLES)]
            line = Text(strip.name[: name_width - 1].ljust(name_width), style=style)
            line.append(sparkline(strip.points, cells), style=style)
            line.append(f" {strip.total:>7,}", style="bold")
            line.append(f" {pct_text(strip.rate_pct):>7}", style="dim")
            lines.append(line)
        if len(shown) < len(strips):
            rest = sum(s.total for s in strips[len(shown):])
            lines.append(Text(f"+{len(strips) - len(shown)} more categories ({rest:,} errors)", style="dim"))
        return Text("\n").join(lines)


def sparkline(points: Sequence[Point], cells: int) -> str:
    """Sum the points falling in each cell; block height by the row's own maximum."""
    sums = [0.0] * cells
    for x, y in points:
        if 0.0 <= x <= 1.0:
            sums[min(cells - 1, int(x * cells))] += y
    top = max(sums) or 1.0
    return "".join(_SPARK[0] if v <= 0 else _SPARK[max(1, round(v / top * (len(_SPARK) - 1)))]
                   for v in sums)


DRIFT_STYLES = {"significant": "bold red", "moderate": "yellow", "none": "green",
                "insufficient data": "dim"}


class DriftBars(Widget):
    """PSI of the top features against the reference, coloured none / moderate / significant."""

    DEFAULT_CSS = "DriftBars { height: 1fr; }"

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.view: DriftView | None = None

    def show(self, view: DriftView) -> None:
        self.view = view
        self.refresh()

    def render(self) -> Text:
        width, height = self.size.width, self.size.height
        view = self.view
        if view is None:
            return Text("drift: computing…", style="dim")
        if view.message:
            text = Text(view.message, style="bold" if view.message == NOT_ENOUGH else "dim")
            if view.message == NOT_ENOUGH:
                text.append("\n" + NOT_ENOUGH_WHY, style="dim")
            return text
        lines = [Text(f"vs {view.reference}"[:width], style="dim")]
        name_width = min(20, max(10, width // 3))
        bar_width = max(3, width - name_width - 7 - 12)
        for row in view.rows[: max(0, height - 1)]:
            style = DRIFT_STYLES.get(row.verdict, "")
            line = Text(row.feature[: name_width - 1].ljust(name_width))
            psi = row.psi
            line.append("     –" if psi is None or math.isnan(psi) else f"{psi:6.3f}", style=style)
            filled = 0 if psi is None or math.isnan(psi) else round(min(psi / 0.5, 1.0) * bar_width)
            line.append(" " + "█" * filled + "·" * (bar_width - filled), style=style)
            line.append(f" {row.verdict[:11]}", style=style)
            lines.append(line)
        return Text("\n").join(lines)


# ------------------------------------------------------------------------------ tables


def _layout(width: int, full: int, medium: int) -> str:
    return "full" if width >= full else ("medium" if width >= medium else "small")


class VersionTable(DataTable[Text]):
    """summary() rows: one per model version and service. Enter filters every panel to it.

    Three column sets by width, so the verdict is always visible without scrolling: all
    columns; "fraud v2.1.0" (or "fraud gateway" for rows without a version) with requests,
    p99, errors, verdict; and at 80 columns the same without requests, verdict as a dot."""

    LAYOUTS: ClassVar[dict[str, tuple[str, ...]]] = {
        "full": ("model", "version", "service", "requests", "p99", "err %", "verdict"),
        "medium": ("version", "req", "p99", "err", "verdict"),
        "small": ("version", "p99", "err", ""),
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.rows_shown: tuple[VersionRow, ...] = ()
        self.chosen: str | None = None
        self._layout: str | None = None

    def show(self, rows: Sequence[VersionRow], chosen: str | None) -> None:
        layout = _layout(self.size.width, 78, 50)
        if layout != self._layout:
            self.clear(columns=True)
            self.add_columns(*self.LAYOUTS[layout])
            self._layout = layout
        keep = self.selected()
        self.rows_shown, self.chosen = tuple(rows), chosen
        self.clear()
        for row in rows:
            self.add_row(*self._cells(row, layout), key=row.key)
        if keep is not None:
            keys = [r.key for r in rows]
            if keep.key in keys:
                self.move_cursor(row=keys.index(keep.key), animate=False)

    def _cells(self, row: VersionRow, layout: str) -> list[Text]:
        mark = "▶ " if row.key == self.chosen else ""
        style = verdict_style(row.verdict) or ""
        requests = Text(f"{row.requests:,}", justify="right")
        p99 = Text(latency_text(row.p99), justify="right")
        errors = Text(pct_text(row.error_pct), justify="right")
        if layout == "full":
            return [Text(mark + (row.model or "–")), Text(row.version or "–"), Text(row.service or "–"),
                    requests, p99, errors, Text(row.verdict, style=style)]
        what = Text(mark + f"{row.model or ''} {row.version or row.service or '?'}".strip())
        if layout == "medium":
            return [what, requests, p99, errors, Text(row.verdict, style=style)]
        return [what, p99, errors, Text("●", style=style or "dim")]

    def selected(self) -> VersionRow | None:
        if 0 <= self.cursor_row < len(self.rows_shown):
            return self.rows_shown[self.cursor_row]
        return None


class RequestTable(DataTable[Text]):
    """The slow or failed requests of the window, newest first. Enter opens the trace."""

    LAYOUTS: ClassVar[dict[str, tuple[str, ...]]] = {
        "full": ("time", "request", "service", "version", "latency", "error"),
        "medium": ("time", "request", "latency", "error"),
        "small": ("request", "latency", "error"),
    }

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.rows_shown: tuple[RequestRow, ...] = ()
        self._layout: str | None = None

    def show(self, rows: Sequence[RequestRow]) -> None:
        layout = _layout(self.size.width, 90, 50)
        if layout != self._layout:
            self.clear(columns=True)
            self.add_columns(*self.LAYOUTS[layout])
            self._layout = layout
        keep = self.selected()
        self.rows_shown = tuple(rows)
        self.clear()
        # The error text takes what the other columns leave (no horizontal scrolling).
        cells = [self._cells(row, layout) for row in rows]
        used = sum(max((len(c[i].plain) for c in cells), default=0) + 2
                   for i in range(len(self.LAYOUTS[layout]) - 1))
        room = max(8, self.size.width - used - 4)  # 1 column for the scrollbar, 1 spare
        for i, (row, texts) in enumerate(zip(rows, cells, strict=True)):
            texts[-1].truncate(room, overflow="ellipsis")
            self.add_row(*texts, key=f"{i}:{row.request_id}")
        if keep is not None:
            ids = [r.request_id for r in rows]
            if keep.request_id in ids:
                self.move_cursor(row=ids.index(keep.request_id), animate=False)

    @staticmethod
    def _cells(row: RequestRow, layout: str) -> list[Text]:
        slow = row.latency_ms is not None and row.latency_ms > 500
        latency = Text(latency_text(row.latency_ms), justify="right", style="yellow" if slow else "")
        error = Text(row.error or "", style="red")
        request = Text(row.request_id or "–")
        if layout == "small":
            return [request, latency, error]
        when = Text(f"{row.ts:%H:%M:%S}", style="dim")
        if layout == "medium":
            return [when, request, latency, error]
        return [when, request, Text(row.service or "–"), Text(row.version or "–"), latency, error]

    def selected(self) -> RequestRow | None:
        if 0 <= self.cursor_row < len(self.rows_shown):
            return self.rows_shown[self.cursor_row]
        return None


class StatusBar(Static):
    """Bottom line: live/paused, source, events, rejected lines, lag, window."""

    DEFAULT_CSS = "StatusBar { height: 1; }"


class AlertBanner(Static):
    """The alerts firing at the end of the window (panels.firing_alerts); hidden when none."""

    DEFAULT_CSS = "AlertBanner { height: auto; display: none; }"

    def show_alerts(self, alerts: Sequence[str]) -> None:
        self.display = bool(alerts)
        self.update(Text("  ".join(alerts), style="bold white on red"))
