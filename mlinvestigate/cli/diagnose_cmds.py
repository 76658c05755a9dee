"""`mlinv diagnose` and `mlinv report`: when trouble started and what most likely caused it,
as a table or as a postmortem draft. Heavy imports happen inside the commands."""

from __future__ import annotations

import re
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from . import app
from .common import (
    CommonOptions,
    DbOption,
    FormatOption,
    LogsOption,
    ModelOption,
    SectionOption,
    ServiceOption,
    SinceOption,
    UntilOption,
    VersionOption,
    WallClockOption,
    WhereOption,
    emit,
    open_database,
)

if TYPE_CHECKING:
    import duckdb

    from ..diagnosis.diagnose import Diagnosis

AtOption = Annotated[
    str | None,
    typer.Option("--at", help="Explain the trouble at this time: ISO, epoch, relative (30m), or "
                 "a clock time such as 02:50 on the day of the newest event. Looks 2 h before "
                 "and 1 h after it.", show_default=False),
]
IntervalOption = Annotated[
    str | None,
    typer.Option("--interval", help="Interval of the signals, e.g. 30s, 1m (default: the shortest "
                 "round one giving at most 360 intervals over the window).", show_default=False),
]
_CLOCK = re.compile(r"^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$")


@app.command()
def diagnose(
    at: AtOption = None,
    causes: Annotated[bool, typer.Option(
        "--causes", help="One row per candidate cause of every finding (for json/csv), instead "
        "of one row per finding.")] = False,
    interval: IntervalOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    wall_clock: WallClockOption = False,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    fmt: FormatOption = "table",
    section: SectionOption = None,
    db: DbOption = None,
    logs: LogsOption = None,
) -> None:
    """When did trouble start, and what most likely caused it: change points in error rates,
    latency, confidence and traffic, each with its candidate causes ranked (a model load, an
    input class, one version or replica, an error type, a drifted feature) and the command to
    dig further.

    Example:  mlinv diagnose          (or --at 02:50, or --since 2h)
    """
    options = CommonOptions(db, logs, since, until, wall_clock, model, version, service, where,
                            20, fmt)
    options.check_format()
    from ..diagnosis.diagnose import causes_table, to_result

    with open_database(options.db, options.logs) as con:
        diagnosis = _diagnosis(con, options, at, interval)
    result = causes_table(diagnosis) if causes else to_result(diagnosis)
    emit(result, options.format, empty_message=_nothing_found(diagnosis), section=section)


@app.command()
def report(
    out: Annotated[Path | None, typer.Option(
        "--out", "-o", help="Write the markdown to this file instead of stdout.",
        show_default=False)] = None,
    traces: Annotated[int, typer.Option(
        "--traces", help="Example request traces per finding.", min=0)] = 1,
    at: AtOption = None,
    interval: IntervalOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    wall_clock: WallClockOption = False,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    db: DbOption = None,
    logs: LogsOption = None,
) -> None:
    """A postmortem draft in markdown: timeline (onset, peak, recovery, model loads), the ranked
    causes with their evidence, numbers per interval, example request traces, the ingest
    accounting, and the commands that reproduce every number.

    Example:  mlinv report --since 2026-01-13T01:30 --until 2026-01-13T04:00 -o postmortem.md
    """
    options = CommonOptions(db, logs, since, until, wall_clock, model, version, service, where)
    from ..diagnosis.report import ReportOptions, build_report

    with open_database(options.db, options.logs) as con:
        diagnosis = _diagnosis(con, options, at, interval)
        if not diagnosis.findings:
            print(f"mlinv: {_nothing_found(diagnosis)}; no report written", file=sys.stderr)
            raise typer.Exit(1)
        text = build_report(con, diagnosis, ReportOptions(
            command=_diagnose_command(options, at, interval), traces=traces,
            database=None if logs else (db or None)))
    if out is None:
        sys.stdout.write(text)
        return
    out.write_text(text, encoding="utf-8")
    print(f"mlinv: wrote {out} ({len(diagnosis.findings)} findings)", file=sys.stderr)


def _diagnosis(con: duckdb.DuckDBPyConnection, options: CommonOptions, at: str | None,
               interval: str | None) -> Diagnosis:
    from ..diagnosis.diagnose import run_diagnosis
    from ..errors import EmptyResult
    from ..investigations.filters import newest_event_time, resolve_filters
    from ..timeparse import parse_every

    filters = resolve_filters(con, options.since, options.until, options.wall_clock,
                              model=options.model, version=options.version,
                              service=options.service, where=options.where)
    step = parse_every(interval) if interval else None
    moment = _parse_at(at, newest_event_time(con), options.wall_clock) if at else None
    try:
        return run_diagnosis(con, filters, at=moment, step=step)
    except EmptyResult as exc:
        if newest_event_time(con) is None:
            raise EmptyResult("no events in the database (run `mlinv ingest FILE...` or pass "
                              "--logs)") from None
        raise exc


def _parse_at(text: str, newest: datetime | None, wall_clock: bool) -> datetime:
    from ..timeparse import parse_time_bound

    stripped = text.strip()
    if _CLOCK.match(stripped):
        # A bare clock time at 3 AM means "today", the day of the newest event.
        if newest is None:
            raise UsageError("--at with a clock time needs events to take the day from")
        parts = [float(p) for p in stripped.split(":")]
        seconds = parts[0] * 3600 + parts[1] * 60 + (parts[2] if len(parts) > 2 else 0)
        if parts[0] >= 24 or parts[1] >= 60:
            raise UsageError(f"cannot read --at {text!r} as a clock time")
        return newest.replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(seconds=seconds)
    return parse_time_bound(stripped, newest=newest, wall_clock=wall_clock)


def _nothing_found(diagnosis: Diagnosis) -> str:
    series = diagnosis.series
    return (f"no trouble found: no error rate, latency, confidence or traffic signal of "
            f"{len(series.scopes)} service/model scopes changed enough ({diagnosis.filters.describe()}, "
            f"{series.size} intervals)")


def _diagnose_command(options: CommonOptions, at: str | None, interval: str | None) -> str:
    """The `mlinv diagnose` command with the same options, for the report's Reproduce list."""
    import shlex

    words = ["mlinv", "diagnose"]
    for flag, value in (("--at", at), ("--interval", interval), ("--since", options.since),
                        ("--until", options.until), ("--model", options.model),
                        ("--version", options.version), ("--service", options.service),
                        ("--where", options.where), ("--db", options.db)):
        if value:
            words += [flag, value]
    for path in options.logs or []:
        words += ["--logs", path]
    if options.wall_clock:
        words.append("--wall-clock")
    return shlex.join(words)
