"""`mlinv latency --by input_size`: is a class of inputs slower than the rest?

Input sizes are bucketed on a log scale (powers of ten: 1–9, 10–99, 100–999, 1000–9999 …) or
at the edges given with `--buckets 0,100,1000,10000` (each bucket holds sizes from its edge up to
the next edge, excluded). Rows are bucket × model (× version); with `--every 5m` the same per
time interval, so "inputs over 1000 are 10× slower, and since 02:00 there are many more of them"
reads straight off the table. Any other `--by` column works too (no bucketing then).

Only lines that carry both a latency and the grouped value count: for input_size that is the
model-server's line (the gateway does not log input sizes), so no request is counted twice.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..engines import DUCKDB, SPARK, Engine, as_engine, param, sql_for
from ..errors import UsageError
from ..result import Result
from .filters import (
    PERCENTILE_NOTE,
    Filters,
    Grouping,
    bucket_sql,
    data_span,
    default_every,
    grouping,
    micros,
    run,
    where_sql,
)

if TYPE_CHECKING:
    import duckdb

LOG_BUCKET_SQL = "CASE WHEN input_size < 1 THEN -1 ELSE CAST(floor(log10(input_size)) AS INTEGER) END"
"""Bucket number k holds sizes 10^k … 10^(k+1)-1; -1 holds sizes below 1."""

LATENCY_SQL = """
SELECT any_value({interval}) AS interval_start,
       any_value({bucket}) AS bucket_no,
       any_value({group}) AS grp,
       any_value(model_id) AS model_id,
       any_value({version}) AS model_version,
       count(*) AS requests,
       quantile_cont(latency_ms, [0.5, 0.95, 0.99]) AS q,
       max(latency_ms) AS max_ms
FROM events
WHERE {where}
  AND latency_ms IS NOT NULL
  AND {present} IS NOT NULL
GROUP BY hash({interval}, {bucket}, {group}, model_id, {version})
ORDER BY interval_start, bucket_no, grp, model_id, model_version
"""
"""Grouped on one hash of the keys, read back with any_value (text keys group 1.5-2x
slower on 10 M events)."""

SPARK_LATENCY_SQL = """
SELECT interval_start, bucket_no, grp, model_id, model_version,
       count(*) AS requests,
       percentile(latency_ms, array(0.5, 0.95, 0.99)) AS q,
       max(latency_ms) AS max_ms
FROM (SELECT {interval} AS interval_start, {bucket} AS bucket_no, {group} AS grp, model_id,
             {version} AS model_version, latency_ms
      FROM events
      WHERE {where}
        AND latency_ms IS NOT NULL
        AND {present} IS NOT NULL)
GROUP BY interval_start, bucket_no, grp, model_id, model_version
ORDER BY interval_start, bucket_no, grp, model_id, model_version
"""
"""Spark groups on the projected keys (its hash() lets NULLs collide)."""

SQL = {DUCKDB: LATENCY_SQL, SPARK: SPARK_LATENCY_SQL}


def parse_buckets(text: str) -> list[float]:
    """"0,100,1000,10000" → sorted, distinct edges. A bad list is a UsageError."""
    try:
        edges = [float(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise UsageError(f"cannot read --buckets {text!r}; e.g. 0,100,1000,10000") from None
    if len(edges) < 1 or edges != sorted(set(edges)):
        raise UsageError(f"--buckets {text!r} must be increasing numbers, e.g. 0,100,1000,10000")
    return edges


def latency(
    con: duckdb.DuckDBPyConnection | Engine,
    filters: Filters,
    *,
    by: str = "input_size",
    buckets: list[float] | None = None,
    every: timedelta | None = None,
    split_versions: bool | None = None,
) -> Result:
    """Latency percentiles per `by` value (input_size bucketed) and model version; with
    `every`, per time interval instead (versions pooled unless `split_versions`)."""
    engine = as_engine(con)
    params: dict[str, Any]
    where, params = where_sql(filters, engine)
    if by == "input_size":
        group = Grouping("input_size", "input_size", per_hop=False)
        size_bucket, bucket_params = _bucket_sql(buckets, engine.name)
        params = {**params, **bucket_params}
    else:
        if buckets:
            raise UsageError("--buckets applies to --by input_size only")
        group = grouping(by, engine=engine.name)
        size_bucket = "NULL"
    if split_versions is None:
        split_versions = every is None
    interval_sql = "NULL"
    if every is not None:
        if every <= timedelta(0):
            raise UsageError("--every must be longer than zero")
        interval_sql = bucket_sql("every_us", engine=engine.name)
        params["every_us"] = micros(every)
    sql = sql_for(SQL, engine.name).format(
        interval=interval_sql,
        bucket=size_bucket,
        group="NULL" if by == "input_size" else group.expression,
        present=group.expression,
        version="model_version" if split_versions else "NULL",
        where=where,
    )
    fetched = run(engine, sql, params, filters).fetchall()

    # Each row's share of its interval (or of all) requests of the same model: how common the
    # class is, which is what changes when "there are suddenly many big inputs".
    totals: dict[tuple[Any, Any, Any], int] = {}
    for interval_start, _, _, model_id, version, requests, _, _ in fetched:
        key = (interval_start, model_id, version)
        totals[key] = totals.get(key, 0) + requests

    rows: list[tuple[Any, ...]] = []
    for interval_start, bucket_no, grp, model_id, version, requests, q, max_ms in fetched:
        label = _bucket_label(bucket_no, buckets) if by == "input_size" else grp
        share = 100.0 * requests / totals[(interval_start, model_id, version)]
        p50, p95, p99 = q
        row: tuple[Any, ...] = (label, model_id)
        if split_versions:
            row += (version,)
        row += (requests, share, p50, p95, p99, max_ms)
        if every is not None:
            row = (interval_start, *row)
        rows.append(row)

    column = "input_size_bucket" if by == "input_size" else group.column
    columns = [column, "model_id"] + (["model_version"] if split_versions else []) + [
        "requests", "share_pct", "p50", "p95", "p99", "max"]
    if every is not None:
        columns = ["interval_start", *columns]
    notes = [f"window: {filters.describe()}", PERCENTILE_NOTE,
             "share_pct: the row's share of the requests of its model"
             + (" version" if split_versions else "")
             + (" in that interval" if every is not None else "")]
    if by == "input_size":
        notes.append("only lines with both latency_ms and input_size (usually the model "
                     "server's: callers seldom log input sizes); "
                     "buckets hold sizes from their lower edge up to the next edge, excluded")
    if every is None:
        notes.extend(_comparisons(rows, columns))
    title = f"Latency by {column}" + (f" every {_every_text(every)}" if every else "")
    return Result(title=title, columns=columns, rows=rows, notes=notes,
                  units={"p50": "ms", "p95": "ms", "p99": "ms", "max": "ms", "share_pct": "%"})


def _bucket_sql(buckets: list[float] | None, engine: str = DUCKDB) -> tuple[str, dict[str, Any]]:
    if not buckets:
        return LOG_BUCKET_SQL, {}
    # One CASE arm per edge, each edge a bound parameter; the SQL text only has their names.
    arms = " ".join(f"WHEN input_size < {param(engine, f'edge{i}')} THEN {i - 1}"
                    for i in range(len(buckets)))
    params = {f"edge{i}": edge for i, edge in enumerate(buckets)}
    return f"CASE {arms} ELSE {len(buckets) - 1} END", params


def _number(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else f"{value:g}"


def _bucket_label(bucket_no: int, buckets: list[float] | None) -> str:
    if not buckets:
        if bucket_no < 0:
            return "<1"
        return f"{10 ** bucket_no}–{10 ** (bucket_no + 1) - 1}"
    if bucket_no < 0:
        return f"<{_number(buckets[0])}"
    low = buckets[bucket_no]
    if bucket_no + 1 >= len(buckets):
        return f"≥{_number(low)}"
    high = buckets[bucket_no + 1]
    if float(low).is_integer() and float(high).is_integer():
        return f"{_number(low)}–{_number(high - 1)}"
    return f"{_number(low)}–<{_number(high)}"


def _comparisons(rows: list[tuple[Any, ...]], columns: list[str]) -> list[str]:
    """Per model (and version): how much slower its slowest group is than its most common one,
    at p50, quoting the two rows' exact p50s."""
    requests_i, p50_i = columns.index("requests"), columns.index("p50")
    key_columns = [i for i, name in enumerate(columns[:requests_i]) if i != 0]
    by_key: dict[tuple[Any, ...], list[tuple[Any, ...]]] = {}
    for row in rows:
        if row[requests_i] >= 30:  # a p50 over fewer is too noisy to compare
            by_key.setdefault(tuple(row[i] for i in key_columns), []).append(row)
    notes = []
    for key, group_rows in by_key.items():
        if len(group_rows) < 2:
            continue
        common = max(group_rows, key=lambda r: r[requests_i])
        slowest = max(group_rows, key=lambda r: r[p50_i])
        base, worst = common[p50_i], slowest[p50_i]
        if slowest is not common and base and worst / base >= 1.5:
            who = " ".join(str(k) for k in key if k is not None)
            notes.append(
                f"{who}: {columns[0]} {slowest[0]} is {worst / base:.1f}× slower at p50 "
                f"({worst:.0f} ms) than {common[0]} ({base:.0f} ms, the most common)"
            )
    return notes


def _every_text(every: timedelta) -> str:
    from ..timeparse import format_duration

    return format_duration(every.total_seconds())


def default_latency_every(con: duckdb.DuckDBPyConnection | Engine, filters: Filters) -> timedelta:
    start, end = data_span(con, filters)
    return default_every(start, end)
