"""The two windows a drift comparison looks at, and how they are chosen.

A window is a time range (start inclusive, end exclusive, either side open) and/or one model
version, on top of the command's filters. The default, stated in the output, is the first
quarter of the filtered time range as reference against the last quarter as current.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..engines import DUCKDB, SPARK, Engine, as_engine, param
from ..errors import EmptyResult, UsageError
from ..investigations.filters import Filters, newest_event_time, where_sql
from ..timeparse import parse_window

if TYPE_CHECKING:
    import duckdb


@dataclass(frozen=True)
class Window:
    """Rows with ``start <= ts < end`` (open sides allowed) and, if set, this model_version."""

    label: str
    start: datetime | None = None
    end: datetime | None = None
    version: str | None = None

    def condition(self, prefix: str, engine: str = DUCKDB) -> tuple[str, dict[str, Any]]:
        """SQL condition on the events columns ts/model_version, and its parameters, in
        `engine`'s dialect."""
        clauses: list[str] = []
        params: dict[str, Any] = {}
        if self.start is not None:
            clauses.append(f"ts >= {param(engine, prefix + '_start')}")
            params[f"{prefix}_start"] = self.start
        if self.end is not None:
            clauses.append(f"ts < {param(engine, prefix + '_end')}")
            params[f"{prefix}_end"] = self.end
        if engine == SPARK:
            # The store's dt partitions outside the window are then never opened; the day of
            # the end is kept whole (ts < end on that day can still hold rows).
            if self.start is not None:
                clauses.append(f"dt >= {param(engine, prefix + '_start_dt')}")
                params[f"{prefix}_start_dt"] = self.start.date()
            if self.end is not None:
                clauses.append(f"dt <= {param(engine, prefix + '_end_dt')}")
                params[f"{prefix}_end_dt"] = self.end.date()
        if self.version is not None:
            clauses.append(f"model_version = {param(engine, prefix + '_version')}")
            params[f"{prefix}_version"] = self.version
        return (" AND ".join(clauses) if clauses else "true"), params

    def describe(self) -> str:
        parts: list[str] = []
        if self.start is not None or self.end is not None:
            start = _clock(self.start) if self.start else "start"
            end = _clock(self.end) if self.end else "end"
            parts.append(f"{start} to {end}")
        if self.version is not None:
            parts.append(f"model_version {self.version}")
        return ", ".join(parts) if parts else "all events"


def _clock(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


def time_range(con: duckdb.DuckDBPyConnection | Engine, filters: Filters) -> tuple[datetime, datetime]:
    """First and last event time under the filters; EmptyResult when nothing matches."""
    engine = as_engine(con)
    where, params = where_sql(filters, engine)
    row = engine.execute(f"SELECT min(ts), max(ts) FROM events WHERE {where}", params).fetchone()
    if row is None or row[0] is None:
        raise EmptyResult(f"no events match ({filters.describe()})")
    return row[0], row[1]


def _round_second(moment: datetime) -> datetime:
    whole = moment.replace(microsecond=0)
    return whole + timedelta(seconds=1) if moment.microsecond >= 500_000 else whole


def parse_user_window(
    con: duckdb.DuckDBPyConnection | Engine, text: str, label: str, *, wall_clock: bool = False
) -> Window:
    """``--reference``/``--current`` text "START..END" as a Window (relative forms allowed)."""
    start, end = parse_window(text, newest_event_time(con), wall_clock=wall_clock)
    if start is not None and end is not None and start >= end:
        raise UsageError(f"--{label} window {text!r} is empty (start equals end)")
    return Window(label, start, end)


@dataclass(frozen=True)
class WindowChoice:
    reference: Window
    current: Window
    defaulted: bool
    """True when the first/last-quarter default was used for at least one window."""


def choose_windows(
    con: duckdb.DuckDBPyConnection | Engine,
    filters: Filters,
    *,
    reference: str | None = None,
    current: str | None = None,
    reference_version: str | None = None,
    current_version: str | None = None,
    wall_clock: bool = False,
) -> WindowChoice:
    """The reference and current windows from the options.

    Versions alone compare all events of one version with all of the other. Without
    versions, a missing window defaults to the first (reference) or last (current) quarter of
    the filtered time range."""
    if (reference_version is None) != (current_version is None):
        raise UsageError("give both --reference-version and --current-version")
    if reference_version is not None and filters.version is not None:
        raise UsageError("--version cannot be combined with --reference-version/--current-version")
    by_version = reference_version is not None
    ref = parse_user_window(con, reference, "reference", wall_clock=wall_clock) if reference else None
    cur = parse_user_window(con, current, "current", wall_clock=wall_clock) if current else None
    defaulted = False
    if not by_version and (ref is None or cur is None):
        first, last = time_range(con, filters)
        quarter = (last - first) / 4
        if quarter <= timedelta(0):
            raise EmptyResult("all matching events have the same time; there is nothing to compare",
                              hint="give --reference and --current windows")
        # Whole seconds read better in the output and lose nothing at this scale.
        if ref is None:
            ref = Window("reference", first, _round_second(first + quarter))
        if cur is None:
            cur = Window("current", _round_second(last - quarter), None)
        defaulted = True
    ref = ref or Window("reference")
    cur = cur or Window("current")
    if by_version:
        ref = Window("reference", ref.start, ref.end, reference_version)
        cur = Window("current", cur.start, cur.end, current_version)
    return WindowChoice(ref, cur, defaulted)
