"""Data-behaviour commands: drift (and its baselines), quality, outliers.

Heavy imports happen inside the commands so `mlinv --help` stays fast.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Annotated, Any

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
    open_database,
    open_engine,
)

METHODS = ("psi", "ks", "js", "wasserstein", "tv", "chi2")
BINNINGS = ("quantile10", "sturges-combined", "doane-ref", "fixed")
SMOOTHINGS = ("clip1e-4", "evidently", "laplace", "none")

ReferenceOption = Annotated[str | None, typer.Option(
    "--reference", help="Reference window START..END (ISO, epoch or relative: 4h..3h). "
    "Default: the first quarter of the time range.", show_default=False)]
CurrentOption = Annotated[str | None, typer.Option(
    "--current", help="Current window START..END. Default: the last quarter of the time range.",
    show_default=False)]
FeatureOption = Annotated[list[str] | None, typer.Option(
    "--feature", help="Only this field (repeatable): latency_ms, confidence, features.amount …",
    show_default=False)]


def _check_format(fmt: str) -> None:
    from ..output import FORMATS

    if fmt not in FORMATS:
        raise UsageError(f"unknown --format {fmt!r}", hint="table, json, csv or markdown")


def _parse_edges(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    try:
        edges = tuple(float(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise UsageError(f"--edges {text!r} must be numbers separated by commas, e.g. 0,10,100") from None
    if len(edges) < 2 or any(b <= a for a, b in zip(edges, edges[1:], strict=False)):
        raise UsageError(f"--edges {text!r} needs at least two strictly increasing numbers")
    return edges


def _options(method: str, binning: str, edges: str | None, smoothing: str, js_base: str,
             moderate: float | None, significant: float | None, min_samples: int,
             exact: bool = False):  # type: ignore[no-untyped-def]
    from ..drift.measures import Options

    if method not in METHODS:
        raise UsageError(f"unknown --method {method!r}", hint="one of " + ", ".join(METHODS))
    if binning not in BINNINGS:
        raise UsageError(f"unknown --binning {binning!r}", hint="one of " + ", ".join(BINNINGS))
    if smoothing not in SMOOTHINGS:
        raise UsageError(f"unknown --smoothing {smoothing!r}", hint="one of " + ", ".join(SMOOTHINGS))
    if js_base not in ("2", "e"):
        raise UsageError("--js-base must be 2 or e")
    parsed_edges = _parse_edges(edges)
    if binning == "fixed" and parsed_edges is None:
        raise UsageError("--binning fixed needs --edges, e.g. --edges 0,10,100")
    if parsed_edges is not None and binning not in ("quantile10", "fixed"):
        raise UsageError("--edges sets fixed bins; do not combine it with --binning " + binning)
    if min_samples < 1:
        raise UsageError("--min-samples must be at least 1")
    if moderate is not None and significant is not None:
        wrong = significant > moderate if method == "chi2" else significant < moderate
        if wrong:
            raise UsageError("--significant must be beyond --moderate"
                             + (" (smaller p-values for chi2)" if method == "chi2" else ""))
    import math

    return Options(method=method, moderate=moderate, significant=significant,
                   binning="fixed" if parsed_edges is not None else binning, edges=parsed_edges,
                   smoothing=smoothing,  # type: ignore[arg-type]
                   js_base=2.0 if js_base == "2" else math.e, min_samples=min_samples, exact=exact)


@app.command()
def drift(
    reference: ReferenceOption = None,
    current: CurrentOption = None,
    reference_version: Annotated[str | None, typer.Option(
        "--reference-version", help="Compare this model_version …", show_default=False)] = None,
    current_version: Annotated[str | None, typer.Option(
        "--current-version", help="… with this one.", show_default=False)] = None,
    baseline: Annotated[str | None, typer.Option(
        "--baseline", help="Use a saved baseline as the reference (see `mlinv baseline save`).",
        show_default=False)] = None,
    feature: FeatureOption = None,
    every: Annotated[str | None, typer.Option(
        "--every", help="Per interval (e.g. 5m, 10m, 1h) against the reference, with the onset.",
        show_default=False)] = None,
    method: Annotated[str, typer.Option(
        "--method", help="Statistic that decides the verdict: psi, ks (D), js, wasserstein, tv, "
        "chi2 (p-value, categorical).")] = "psi",
    binning: Annotated[str, typer.Option(
        "--binning", help="quantile10 (reference deciles), sturges-combined (Evidently), doane-ref "
        "(NannyML) or fixed (with --edges).")] = "quantile10",
    edges: Annotated[str | None, typer.Option(
        "--edges", help="Fixed bin edges, e.g. 0,10,100 (values outside go to a leftover bin).",
        show_default=False)] = None,
    smoothing: Annotated[str, typer.Option(
        "--smoothing", help="PSI zero handling: clip1e-4, evidently, laplace or none.")] = "clip1e-4",
    js_base: Annotated[str, typer.Option("--js-base", help="Jensen–Shannon log base: 2 or e.")] = "2",
    moderate: Annotated[float | None, typer.Option(
        "--moderate", help="Moderate threshold of the --method statistic (PSI default 0.1).",
        show_default=False)] = None,
    significant: Annotated[float | None, typer.Option(
        "--significant", help="Significant threshold (PSI default 0.25).", show_default=False)] = None,
    min_samples: Annotated[int, typer.Option(
        "--min-samples", help="Fewer usable values in a window gives 'insufficient data'.")] = 100,
    exact: Annotated[bool, typer.Option(
        "--exact", help="Read every row of big windows (by default windows over 1.5M rows are read "
        "from evenly spread blocks of rows; record fields over 200k). Implied by "
        "--binning sturges-combined and doane-ref.")] = False,
    db: DbOption = None,
    logs: LogsOption = None,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    wall_clock: WallClockOption = False,
    store: StoreOption = None,
    engine: EngineOption = "duckdb",
    spark_remote: SparkRemoteOption = None,
    format: FormatOption = "table",
    section: SectionOption = None,
) -> None:
    """Did the inputs or outputs change? Compare a reference window (or baseline, or model
    version) with a current one, per field: PSI, KS, Jensen–Shannon, Wasserstein, chi-square,
    missing values, new and vanished fields. With --every: when it started.

    Example:  mlinv drift --every 10m --model fraud
    """
    _check_format(format)
    options = _options(method, binning, edges, smoothing, js_base, moderate, significant, min_samples,
                       exact)
    from ..drift.compare import drift as compare
    from ..drift.timeline import timeline
    from ..drift.windows import Window, choose_windows, parse_user_window, time_range
    from ..investigations.filters import resolve_filters
    from ..timeparse import parse_every

    step = parse_every(every) if every is not None else None
    if baseline is not None and (reference is not None or reference_version is not None):
        raise UsageError("--baseline is the reference; leave out --reference/--reference-version")
    _check_spark_options(engine, spark_remote, baseline=baseline, every=every)
    with _open(db, logs, store, engine, spark_remote) as con:
        saved = None
        if baseline is not None:
            from ..drift.baseline import load_baseline

            saved, stored = load_baseline(con, baseline)
            if saved.binning != options.binning or (saved.edges != options.edges):
                if binning != "quantile10" or edges is not None:
                    raise UsageError(f"baseline {baseline!r} was saved with {saved.binning} bins",
                                     hint="save another baseline to compare with other bins")
                from dataclasses import replace as _replace

                options = _replace(options, binning=saved.binning, edges=saved.edges)
            model = model or stored.get("model")
            version = version or stored.get("version")
            service = service or stored.get("service")
            where = where or stored.get("where")
        filters = resolve_filters(con, model=model, version=version, service=service, where=where)
        if step is None:
            if saved is not None:
                choice = choose_windows(con, filters, current=current, wall_clock=wall_clock)
                result = compare(con, filters, choice, options, feature, baseline=saved,
                                 baseline_name=baseline)
            else:
                choice = choose_windows(con, filters, reference=reference, current=current,
                                        reference_version=reference_version,
                                        current_version=current_version, wall_clock=wall_clock)
                result = compare(con, filters, choice, options, feature)
        else:
            if reference_version is not None or current_version is not None:
                raise UsageError("--every compares time intervals; it cannot be combined with versions")
            first, last = time_range(con, filters)
            span = (parse_user_window(con, current, "current", wall_clock=wall_clock) if current
                    else Window("current", first, None))
            start = span.start or first
            end = span.end or last
            ref_window = None
            defaulted = False
            if saved is None:
                if reference is not None:
                    ref_window = parse_user_window(con, reference, "reference", wall_clock=wall_clock)
                else:
                    ref_window = choose_windows(con, filters, wall_clock=wall_clock).reference
                    defaulted = True
            result = timeline(con, filters, ref_window, span, start, end, step, options, feature,
                              baseline=saved, baseline_name=baseline, reference_defaulted=defaulted)
    emit(result, format, empty_message="no matching events", section=section)


def _check_spark_options(engine: str, spark_remote: str | None, **given: str | None) -> None:
    """Spark computes the two-window comparison only: say so before a JVM starts."""
    if engine != "spark" and not spark_remote:
        return
    flags = [f"--{name}" for name, value in given.items() if value is not None]
    if flags:
        raise UsageError(f"drift {' and '.join(flags)} does not run on Spark yet",
                         hint="run it on DuckDB, over the database: --db FILE")


def _open(db: str | None, logs: list[str] | None, store: str | None, engine: str,
          spark_remote: str | None) -> AbstractContextManager[Any]:
    """The database as before, or the store through Spark."""
    if engine == "duckdb" and not spark_remote:
        if store is not None:
            # DuckDB's drift reads row ids (its samples), which a view over Parquet lacks.
            raise UsageError("drift reads a Parquet store with --engine spark only",
                             hint="on DuckDB use the database: --db FILE")
        return open_database(db, logs)
    return open_engine(CommonOptions(db=db, logs=logs, store=store, engine=engine,
                                     spark_remote=spark_remote))


baseline_app = typer.Typer(
    name="baseline", help="Save, list and delete drift baselines (reference summaries kept in the "
    "database).\n\nExample:  mlinv baseline save fraud-jan --reference 2026-01-13T00:00..01:00",
    no_args_is_help=True, rich_markup_mode=None,
)
app.add_typer(baseline_app, name="baseline")


@baseline_app.command("save")
def baseline_save(
    name: Annotated[str, typer.Argument(help="Baseline name, e.g. fraud-week1.", show_default=False)],
    reference: ReferenceOption = None,
    feature: FeatureOption = None,
    binning: Annotated[str, typer.Option("--binning", help="quantile10, doane-ref or fixed.")] = "quantile10",
    edges: Annotated[str | None, typer.Option("--edges", help="Fixed bin edges, e.g. 0,10,100.",
                                              show_default=False)] = None,
    replace: Annotated[bool, typer.Option("--replace", help="Overwrite a baseline of that name.")] = False,
    db: DbOption = None,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    wall_clock: WallClockOption = False,
    format: FormatOption = "table",
) -> None:
    """Summarize a reference window and keep it in the database, so `mlinv drift --baseline NAME`
    needs no raw reference rows later (default window: the first quarter of the time range).

    Example:  mlinv baseline save fraud-jan --model fraud --reference 2026-01-13T00:00..2026-01-13T01:00
    """
    _check_format(format)
    options = _options("psi", binning, edges, "clip1e-4", "2", None, None, 100)
    from .. import store
    from ..drift.baseline import save_baseline
    from ..drift.windows import choose_windows
    from ..investigations.filters import resolve_filters

    con = store.connect(db, create=False)
    try:
        filters = resolve_filters(con, model=model, version=version, service=service, where=where)
        choice = choose_windows(con, filters, reference=reference, wall_clock=wall_clock)
        result = save_baseline(con, name, filters, choice.reference, options, feature, replace=replace)
    finally:
        con.close()
    emit(result, format)


@baseline_app.command("list")
def baseline_list(db: DbOption = None, format: FormatOption = "table") -> None:
    """The saved baselines.

    Example:  mlinv baseline list
    """
    _check_format(format)
    from ..drift.baseline import list_baselines

    with open_database(db, None) as con:
        result = list_baselines(con)
    emit(result, format, empty_message="no baselines saved (mlinv baseline save NAME)")


@baseline_app.command("delete")
def baseline_delete(
    name: Annotated[str, typer.Argument(help="Baseline name.", show_default=False)],
    db: DbOption = None,
    format: FormatOption = "table",
) -> None:
    """Delete a saved baseline.

    Example:  mlinv baseline delete fraud-jan
    """
    _check_format(format)
    from .. import store
    from ..drift.baseline import delete_baseline

    con = store.connect(db, create=False)
    try:
        result = delete_baseline(con, name)
    finally:
        con.close()
    emit(result, format)


@app.command()
def quality(
    feature: FeatureOption = None,
    every: Annotated[str | None, typer.Option(
        "--every", help="Interval for the over-time view (default: about 24 intervals).",
        show_default=False)] = None,
    range_: Annotated[list[str] | None, typer.Option(
        "--range", help="Expected range of a field, e.g. features.amount=0:10000 (repeatable; "
        "open ends allowed: latency_ms=0:).", show_default=False)] = None,
    reference: ReferenceOption = None,
    db: DbOption = None,
    logs: LogsOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    wall_clock: WallClockOption = False,
    format: FormatOption = "table",
    section: SectionOption = None,
) -> None:
    """Data quality per field: missing/null rate, type mismatches, NaN, out-of-range values
    (against the reference window's range or --range), over time, and when a field first went
    missing, appeared or changed type — per service and model version.

    Example:  mlinv quality --range features.amount=0:10000 --every 10m
    """
    _check_format(format)
    from ..investigations.filters import resolve_filters
    from ..quality import parse_ranges, quality_report
    from ..timeparse import parse_every

    ranges = parse_ranges(range_ or [])
    step = parse_every(every) if every is not None else None
    with open_database(db, logs) as con:
        filters = resolve_filters(con, since, until, wall_clock, model=model, version=version,
                                  service=service, where=where)
        result = quality_report(con, filters, wanted=feature, ranges=ranges, step=step,
                                reference=reference, wall_clock=wall_clock)
    emit(result, format, section=section)


@app.command()
def outliers(
    export: Annotated[str | None, typer.Option(
        "--export", help="Write the ranked requests as an annotation queue (JSON lines: request_id, "
        "ts, version, reason, score, input_hash).", show_default=False)] = None,
    reference: ReferenceOption = None,
    z: Annotated[float, typer.Option("--z", help="Robust z-score (median/MAD) counted as far out.")] = 5.0,
    db: DbOption = None,
    logs: LogsOption = None,
    since: SinceOption = None,
    until: UntilOption = None,
    model: ModelOption = None,
    version: VersionOption = None,
    service: ServiceOption = None,
    where: WhereOption = None,
    wall_clock: WallClockOption = False,
    limit: LimitOption = 50,
    format: FormatOption = "table",
) -> None:
    """Requests worth a human look, ranked, each with its reason: lowest confidence, highest
    entropy or smallest margin (when class probabilities are logged), inputs far outside the
    reference (robust z-score), rare categories.

    Example:  mlinv outliers --model fraud --limit 100 --export review.jsonl
    """
    _check_format(format)
    from ..investigations.filters import resolve_filters
    from ..outliers import find_outliers, write_queue

    with open_database(db, logs) as con:
        filters = resolve_filters(con, since, until, wall_clock, model=model, version=version,
                                  service=service, where=where, limit=limit)
        result = find_outliers(con, filters, reference=reference, z_threshold=z, wall_clock=wall_clock)
    if export is not None and result.rows:
        import sys

        count = write_queue(result, export)
        print(f"mlinv: wrote {count:,} requests to {export}", file=sys.stderr)
    emit(result, format, empty_message="no requests to rank")
