"""The incident investigations: summary, slow, latency, trace, loads, errors, throughput.

Each command parses its options, opens the database (or an in-memory one fed by --logs),
resolves the shared filters, makes one core call and renders the Result. Heavy imports
(duckdb, numpy, the investigations) happen inside the commands so `mlinv --help` stays fast.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from . import app
from .common import (
    CommonOptions,
    DbOption,
    EngineOption,
    FormatOption,
    LimitOption,
    LogsOption,
    ModelOption,
    SectionOption,
    ServiceOption,
    SinceOption,
    SparkRemoteOption,
    StoreOption,
    UntilOption,
    VersionOption,
    WallClockOption,
    WhereOption,
    emit,
    open_engine,
)

if TYPE_CHECKING:
    from datetime import timedelta

    import duckdb

    from ..engines import Engine
    from ..investigations.filters import Filters
    from ..result import Result

EveryOption = Annotated[
    str | None,
    typer.Option("--every", help="Also per time interval, e.g. 1m, 5m, 1h.", show_default=False),
]
ThresholdOption = Annotated[
    str, typer.Option("--threshold", help="Latency counted as slow, e.g. 500ms, 0.5s, 2s.")
]


def _investigate(options: CommonOptions,
                 call: Callable[[duckdb.DuckDBPyConnection | Engine, Filters], Result],
                 *, empty_message: str | None = None) -> None:
    """Open the database, resolve the shared filters, run one investigation, print it."""
    options.check_format()
    from ..investigations.filters import resolve_filters

    with open_engine(options) as con, _working():
        filters = resolve_filters(
            con, options.since, options.until, options.wall_clock, model=options.model,
            version=options.version, service=options.service, where=options.where,
            limit=options.limit,
        )
        result = call(con, filters)
        message = (empty_message or _empty_message(con, filters)) if not result.rows else None
    emit(result, options.format, empty_message=message, section=options.section)


def _empty_message(con: duckdb.DuckDBPyConnection | Engine, filters: Filters) -> str:
    from ..investigations.filters import clock_text, newest_event_time

    message = f"no matching events ({filters.describe()})"
    newest = newest_event_time(con)
    if newest is None:
        return "no events in the database (run `mlinv ingest FILE...` or pass --logs)"
    if filters.since and filters.since > newest:
        message += f"; the newest event is at {clock_text(newest, with_date=True)} UTC"
        return message
    events, request_lines = _window_counts(con, filters)
    if events and not request_lines:
        # Events, but none an investigation can count as a request: say why, not "no events".
        message = (f"none of the {events:,} events ({filters.describe()}) is a request line: "
                   "one with a latency (latency_ms, duration_ms … or a field mapped with "
                   "`mlinv ingest --map latency_ms=PATH`) or a finishing event name "
                   "(…_success, …_failure, prediction …)")
    return message


def _window_counts(con: duckdb.DuckDBPyConnection | Engine, filters: Filters) -> tuple[int, int]:
    """Events in the window, and how many of them are request lines."""
    from ..engines import as_engine
    from ..investigations.filters import event_kinds, run, where_sql

    engine = as_engine(con)
    where, params = where_sql(filters, engine)
    request_line, line_params = event_kinds(engine).request_line_sql(engine.name)
    row = run(engine, f"SELECT count(*), count(*) FILTER (WHERE {request_line}) FROM events "
                      f"WHERE {where}", {**params, **line_params}, filters).fetchone()
    return int(row[0]), int(row[1])


@contextmanager
def _working() -> Iterator[None]:
    """A spinner on stderr while the query runs, only when stderr is a terminal."""
    if not sys.stderr.isatty():
        yield
        return
    from rich.console import Console

    with Console(stderr=True).status("querying…", spinner="dots"):
        yield


def _duration(text: str | None) -> timedelta | None:
    from ..timeparse import parse_every

    return parse_every(text) if text else None


def _names(text: str | None) -> list[str] | None:
    if text is None:
        return None
    names = [part.strip() for part in text.split(",") if part.strip()]
    if not names:
        raise UsageError("--by needs at least one column name")
    return names


@app.command()
def summary(
    by: Annotated[str | None, typer.Option(
        "--by", help="Row keys, comma-separated (default model_id,model_version,service); "
        "e.g. service.", show_default=False)] = None,
    p99: Annotated[str, typer.Option(
        "--p99", help="A p99 above this makes a row 'warn'.")] = "500ms",
    threshold: ThresholdOption = "500ms",
    max_error: Annotated[list[str] | None, typer.Option(
        "--max-error", help="CATEGORY=PERCENT above which a row is 'critical' (repeatable); "
        "defaults: infrastructure=2, input_validation=5, model_inference=1, timeout=1, "
        "business_logic=5.", show_default=False)] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    wall_clock: WallClockOption = False,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    limit: LimitOption = 20,
    fmt: FormatOption = "table",
    section: SectionOption = None,
    db: DbOption = None,
    logs: LogsOption = None,
    store: StoreOption = None,
    engine: EngineOption = "duckdb",
    spark_remote: SparkRemoteOption = None,
) -> None:
    """Health per model version and service: traffic, latency percentiles, errors, verdict.

    Example:  mlinv summary --since 2h        (or --by service)
    """
    from ..investigations.summary import HealthThresholds
    from ..investigations.summary import summary as run_summary
    from ..timeparse import parse_latency_ms

    thresholds = HealthThresholds(p99_ms=parse_latency_ms(p99),
                                  slow_ms=parse_latency_ms(threshold))
    thresholds = thresholds.with_error_limits(_error_limits(max_error or []))
    keys = _names(by)
    _investigate(CommonOptions(db, logs, since, until, wall_clock, model, version, service,
                                where, limit, fmt, store, engine, spark_remote, section),
                 lambda con, f: run_summary(con, f, by=keys, thresholds=thresholds))


def _error_limits(items: list[str]) -> dict[str, float]:
    limits: dict[str, float] = {}
    for item in items:
        category, sep, value = item.partition("=")
        try:
            limits[category.strip()] = float(value.strip().rstrip("%"))
        except ValueError:
            sep = ""
        if not sep:
            raise UsageError(f"cannot read --max-error {item!r}; e.g. infrastructure=2")
    return limits


@app.command()
def slow(
    by: Annotated[str, typer.Option(
        "--by", help="Group by an event column, input_size_bucket or attrs.<field>.")
    ] = "model_version",
    threshold: ThresholdOption = "500ms",
    since: SinceOption = None,
    until: UntilOption = None,
    wall_clock: WallClockOption = False,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    limit: LimitOption = 20,
    fmt: FormatOption = "table",
    section: SectionOption = None,
    db: DbOption = None,
    logs: LogsOption = None,
    store: StoreOption = None,
    engine: EngineOption = "duckdb",
    spark_remote: SparkRemoteOption = None,
) -> None:
    """Latency distribution by a grouping, and the slowest requests (--limit of them).

    Example:  mlinv slow --by input_size_bucket --threshold 500ms --limit 10
    """
    from ..investigations.slow import slow as run_slow
    from ..timeparse import parse_latency_ms

    threshold_ms = parse_latency_ms(threshold)
    _investigate(CommonOptions(db, logs, since, until, wall_clock, model, version, service,
                                where, limit, fmt, store, engine, spark_remote, section),
                 lambda con, f: run_slow(con, f, by=by, threshold_ms=threshold_ms))


@app.command()
def latency(
    by: Annotated[str, typer.Option(
        "--by", help="input_size (bucketed), another event column or attrs.<field>.")
    ] = "input_size",
    buckets: Annotated[str | None, typer.Option(
        "--buckets", help="Input size bucket edges, e.g. 0,100,1000,10000 (default: powers "
        "of ten).", show_default=False)] = None,
    every: EveryOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    wall_clock: WallClockOption = False,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    limit: LimitOption = 20,
    fmt: FormatOption = "table",
    db: DbOption = None,
    logs: LogsOption = None,
    store: StoreOption = None,
    engine: EngineOption = "duckdb",
    spark_remote: SparkRemoteOption = None,
) -> None:
    """Latency percentiles per input size bucket and model version, or over time.

    Example:  mlinv latency --by input_size --every 15m --model recsys
    """
    from ..investigations.latency import latency as run_latency
    from ..investigations.latency import parse_buckets

    edges = parse_buckets(buckets) if buckets else None
    step = _duration(every)
    _investigate(CommonOptions(db, logs, since, until, wall_clock, model, version, service,
                                where, limit, fmt, store, engine, spark_remote),
                 lambda con, f: run_latency(con, f, by=by, buckets=edges, every=step))


@app.command()
def trace(
    request_id: Annotated[str, typer.Argument(
        help="A request id (or trace id), or a unique prefix of one.", show_default=False)],
    fmt: FormatOption = "table",
    section: SectionOption = None,
    db: DbOption = None,
    logs: LogsOption = None,
    store: StoreOption = None,
    engine: EngineOption = "duckdb",
    spark_remote: SparkRemoteOption = None,
) -> None:
    """Every event of one request across services and files, as a waterfall.

    Example:  mlinv trace req-3c8ba48de7      (a unique prefix such as req-3c8b works too)
    """
    from ..investigations.trace import trace as run_trace

    options = CommonOptions(db=db, logs=logs, format=fmt, store=store, engine=engine,
                            spark_remote=spark_remote)
    options.check_format()
    with open_engine(options) as con, _working():
        result = run_trace(con, request_id)
    emit(result, fmt, empty_message=f"no events with a request_id or trace_id starting with "
         f"{request_id!r}", section=section)


@app.command()
def loads(
    window: Annotated[str, typer.Option(
        "--window", help="Traffic compared this long before and after each load.")] = "10m",
    since: SinceOption = None,
    until: UntilOption = None,
    wall_clock: WallClockOption = False,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    limit: LimitOption = 20,
    fmt: FormatOption = "table",
    db: DbOption = None,
    logs: LogsOption = None,
    store: StoreOption = None,
    engine: EngineOption = "duckdb",
    spark_remote: SparkRemoteOption = None,
) -> None:
    """Every model load, ranked by what followed: error rate and p99 before vs after.

    Example:  mlinv loads --model fraud --window 5m
    """
    from ..investigations.loads import loads as run_loads

    span = _duration(window)
    assert span is not None
    _investigate(CommonOptions(db, logs, since, until, wall_clock, model, version, service,
                                where, limit, fmt, store, engine, spark_remote),
                 lambda con, f: run_loads(con, f, window=span),
                 empty_message="no model load events (names with load/loaded/loading/deploy)")


@app.command()
def errors(
    by: Annotated[str | None, typer.Option(
        "--by", help="Row keys, comma-separated (default error_category,error_type,model_id,"
        "model_version,service; with --every error_category,model_id,service).",
        show_default=False)] = None,
    every: EveryOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    wall_clock: WallClockOption = False,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    limit: LimitOption = 20,
    fmt: FormatOption = "table",
    db: DbOption = None,
    logs: LogsOption = None,
    store: StoreOption = None,
    engine: EngineOption = "duckdb",
    spark_remote: SparkRemoteOption = None,
) -> None:
    """Errors by category, type, version and service, with rates, examples and request ids.

    Example:  mlinv errors --every 5m --since 1h
    """
    from ..investigations.errors import errors as run_errors

    keys = _names(by)
    step = _duration(every)
    _investigate(CommonOptions(db, logs, since, until, wall_clock, model, version, service,
                                where, limit, fmt, store, engine, spark_remote),
                 lambda con, f: run_errors(con, f, by=keys, every=step),
                 empty_message="no errors in the selected events")


@app.command()
def throughput(
    every: EveryOption = None,
    timeout: Annotated[str, typer.Option(
        "--timeout", help="A request with no finishing line this long after its start is "
        "dropped.")] = "30s",
    capacity: Annotated[str | None, typer.Option(
        "--capacity", help="Capacity for the saturation columns, e.g. 200/s or 12000/m.",
        show_default=False)] = None,
    since: SinceOption = None,
    until: UntilOption = None,
    wall_clock: WallClockOption = False,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    limit: LimitOption = 20,
    fmt: FormatOption = "table",
    db: DbOption = None,
    logs: LogsOption = None,
    store: StoreOption = None,
    engine: EngineOption = "duckdb",
    spark_remote: SparkRemoteOption = None,
) -> None:
    """Received, processed, failed and dropped requests per interval; in-flight; saturation.

    Example:  mlinv throughput --every 1m --capacity 200/s --since 30m
    """
    from ..investigations.throughput import throughput as run_throughput
    from ..timeparse import parse_rate_per_s

    step = _duration(every)
    wait = _duration(timeout)
    assert wait is not None
    rate = parse_rate_per_s(capacity) if capacity else None
    _investigate(CommonOptions(db, logs, since, until, wall_clock, model, version, service,
                                where, limit, fmt, store, engine, spark_remote),
                 lambda con, f: run_throughput(con, f, every=step, timeout=wait, capacity_per_s=rate))

