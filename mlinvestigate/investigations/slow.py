"""`mlinv slow`: who is slow, and which requests exactly.

The main table is the latency distribution per group (default model_version; any event
column, `input_size_bucket` or `attrs.<field>`), split by service so a gateway line and a
model-server line of the same request never land in the same row. Then a section lists the
slowest requests, one row per request (its slowest line), enriched with the version and input
size that the request's other lines carry (the gateway does not log them), so the next command
is `mlinv trace <request_id>`.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..engines import DUCKDB, SPARK, Engine, as_engine, sql_for
from ..result import Result
from .filters import (
    INPUT_SIZE_BUCKET,
    PERCENTILE_NOTE,
    Filters,
    grouping,
    ms_text,
    percent,
    run,
    where_sql,
)

if TYPE_CHECKING:
    import duckdb

INPUT_SIZE_BUCKET_SQL = (
    "CASE WHEN input_size IS NULL THEN NULL WHEN input_size < 1 THEN '<1' "
    "ELSE CAST(CAST(pow(10, floor(log10(input_size))) AS BIGINT) AS VARCHAR) || '–' "
    "|| CAST(CAST(pow(10, floor(log10(input_size)) + 1) AS BIGINT) - 1 AS VARCHAR) END"
)
"""Powers of ten: '100–999', '1000–9999'."""

INPUT_SIZE_BUCKET_SQL_BY_ENGINE = {
    DUCKDB: INPUT_SIZE_BUCKET_SQL,
    SPARK: INPUT_SIZE_BUCKET_SQL.replace("AS VARCHAR", "AS STRING"),
}
"""Spark spells the text type STRING (VARCHAR needs a length there)."""

DISTRIBUTION_SQL = """
SELECT any_value({group}) AS grp,
       any_value({service}) AS service,
       count(*) AS requests,
       quantile_cont(latency_ms, [0.5, 0.9, 0.95, 0.99, 0.999]) AS q,
       max(latency_ms) AS max_ms,
       count(*) FILTER (WHERE latency_ms > $threshold_ms) AS over
FROM events
WHERE {where}
  AND latency_ms IS NOT NULL
GROUP BY hash({group}, {service})
ORDER BY {order} NULLS LAST, service NULLS LAST
"""
"""Grouped on one hash of the group and service values (text keys group 1.5-2x slower)."""

SPARK_DISTRIBUTION_SQL = """
SELECT grp, service,
       count(*) AS requests,
       percentile(latency_ms, array(0.5, 0.9, 0.95, 0.99, 0.999)) AS q,
       max(latency_ms) AS max_ms,
       count(*) FILTER (WHERE latency_ms > :threshold_ms) AS over
FROM (SELECT {group} AS grp, {service} AS service, latency_ms, input_size
      FROM events
      WHERE {where}
        AND latency_ms IS NOT NULL)
GROUP BY grp, service
ORDER BY {order} NULLS LAST, service NULLS LAST
"""
"""Spark groups on the projected values (its hash() lets NULLs collide)."""

SLOWEST_SQL = """
SELECT ts, request_id, service, model_id, model_version, input_size, latency_ms, status_code,
       error_type, error_message, source, line
FROM events
WHERE {where}
  AND latency_ms IS NOT NULL
ORDER BY latency_ms DESC
LIMIT $candidates
"""

REQUEST_DETAILS_SQL = """
SELECT request_id, max(model_id), max(model_version), max(input_size), max(status_code),
       arg_min(error_type, ts) FILTER (WHERE error_type IS NOT NULL),
       arg_min(error_message, ts) FILTER (WHERE error_message IS NOT NULL)
FROM events
WHERE ts BETWEEN $details_from AND $details_to
  AND list_contains($ids, request_id)
GROUP BY request_id
"""
"""What the request's other lines say (the model-server logs version and input size), looked
for from DETAILS_SLACK before the chosen lines' requests started to DETAILS_SLACK after their
last line: the time bound lets DuckDB skip row groups (the dashboard's 5-minute window: 60 ms
of 150 per refresh was this scan of all 2M events). A list_contains filter, not IN (SELECT
unnest(…)): the semi-join cost 0.20 s on 10M events, the filter 0.14 s."""

DETAILS_SLACK = timedelta(minutes=1)
"""How far from a chosen request's own line its other lines are looked for."""


def _as_duration(latency_ms: float | None) -> timedelta:
    """A logged latency as a time span, bounded: logs hold negative, NaN and absurd values."""
    if latency_ms is None or not math.isfinite(latency_ms):
        return timedelta(0)
    return timedelta(milliseconds=min(max(latency_ms, 0.0), 86_400_000.0))


def _shifted(moment: datetime, by: timedelta) -> datetime:
    """moment + by, held inside Python's datetime range (a log can say year 1 or 9999)."""
    try:
        return moment + by
    except OverflowError:
        return datetime.min if by < timedelta(0) else datetime.max


SQL = {
    "distribution": {DUCKDB: DISTRIBUTION_SQL, SPARK: SPARK_DISTRIBUTION_SQL},
    "slowest": {DUCKDB: SLOWEST_SQL, SPARK: SLOWEST_SQL.replace("$candidates", ":candidates")},
    "request_details": {DUCKDB: REQUEST_DETAILS_SQL, SPARK: """
SELECT request_id, max(model_id), max(model_version), max(input_size), max(status_code),
       min_by(error_type, ts) FILTER (WHERE error_type IS NOT NULL),
       min_by(error_message, ts) FILTER (WHERE error_message IS NOT NULL)
FROM events
WHERE ts BETWEEN :details_from AND :details_to
  AND array_contains(:ids, request_id)
GROUP BY request_id
"""},
}


def slow(
    con: duckdb.DuckDBPyConnection | Engine,
    filters: Filters,
    *,
    by: str = "model_version",
    threshold_ms: float = 500.0,
) -> Result:
    engine = as_engine(con)
    group = grouping(by, extra={INPUT_SIZE_BUCKET: sql_for(INPUT_SIZE_BUCKET_SQL_BY_ENGINE,
                                                           engine.name)},
                     engine=engine.name)
    where, params = where_sql(filters, engine)
    # Splitting by service keeps hops apart; grouping by service itself needs no second key.
    service = "NULL" if group.column == "service" else "service"
    # Size buckets sort by size, not by their label ("10–99" before "100–999").
    order = "min(input_size)" if group.column == INPUT_SIZE_BUCKET else "grp"
    sql = sql_for(SQL["distribution"], engine.name).format(
        group=group.expression, service=service, where=where, order=order)
    rows: list[tuple[Any, ...]] = []
    total = total_over = 0
    for grp, svc, requests, q, max_ms, over in run(
        engine, sql, {**params, "threshold_ms": threshold_ms}, filters
    ).fetchall():
        p50, p90, p95, p99, p999 = q
        rows.append((grp, svc, requests, p50, p90, p95, p99, p999, max_ms, over,
                     percent(over, requests)))
        total += requests
        total_over += over
    columns = [group.column, "service", "requests", "p50", "p90", "p95", "p99", "p99_9", "max",
               "over_threshold", "over_pct"]
    notes = [f"window: {filters.describe()}", PERCENTILE_NOTE,
             f"over_threshold: lines slower than {ms_text(threshold_ms)}; each service's line "
             "of a request is counted in its own service's row"]
    if group.column == "service":
        columns.pop(1)
        rows = [row[:1] + row[2:] for row in rows]
    elif len({row[1] for row in rows}) == 1 and rows:
        notes.append(f"all lines from service {rows[0][1]}")
    if total:
        notes.append(f"{total_over:,} of {total:,} lines ({percent(total_over, total):.2f} %) "
                     f"are over {ms_text(threshold_ms)}")
    section = _slowest(engine, filters, where, params)
    if section.rows:
        notes.append(f"next: mlinv trace {section.rows[0][1]}")
    return Result(
        title=f"Latency by {group.column} (threshold {ms_text(threshold_ms)})",
        columns=columns,
        rows=rows,
        notes=notes,
        units={"p50": "ms", "p90": "ms", "p95": "ms", "p99": "ms", "p99_9": "ms", "max": "ms",
               "over_pct": "%"},
        sections=[section],
    )


def _slowest(engine: Engine, filters: Filters, where: str, params: dict[str, Any]) -> Result:
    """The slowest requests: each request's slowest line, the top `filters.limit` of them."""
    # A request has a few lines (gateway + model-server), so 4× the limit in candidates is
    # enough to fill the table with distinct requests after de-duplication.
    candidates = run(engine, sql_for(SQL["slowest"], engine.name).format(where=where),
                     {**params, "candidates": filters.limit * 4}, filters).fetchall()
    chosen: list[tuple[Any, ...]] = []
    seen: set[str] = set()
    for row in candidates:
        request_id = row[1]
        if request_id is not None:
            if request_id in seen:
                continue
            seen.add(request_id)
        chosen.append(row)
        if len(chosen) == filters.limit:
            break
    with_id = [row for row in chosen if row[1] is not None]
    details = {}
    if with_id:
        ids = [row[1] for row in with_id]
        span = {  # row[0] is the line's ts, row[6] its latency_ms
            "details_from": _shifted(min(row[0] for row in with_id),
                                     -(max(_as_duration(row[6]) for row in with_id) + DETAILS_SLACK)),
            "details_to": _shifted(max(row[0] for row in with_id), DETAILS_SLACK),
        }
        details = {r[0]: r[1:] for r in
                   engine.execute(SQL["request_details"], {"ids": ids, **span}).fetchall()}
    rows = []
    for (ts, request_id, service, model_id, version, input_size, latency_ms, status_code,
         error_type, error_message, source, line) in chosen:
        extra = details.get(request_id, (None,) * 6)
        error_type = error_type or extra[4]
        error_message = error_message or extra[5]
        error = ": ".join(part for part in (error_type, error_message) if part) or None
        rows.append((
            ts, request_id, service, model_id or extra[0], version or extra[1],
            input_size if input_size is not None else extra[2], latency_ms,
            status_code if status_code is not None else extra[3], error,
            f"{source}:{line}" if source else None,
        ))
    return Result(
        title=f"Slowest {len(rows)} requests",
        columns=["ts", "request_id", "service", "model_id", "model_version", "input_size",
                 "latency_ms", "status_code", "error", "source_line"],
        rows=rows,
        units={"latency_ms": "ms"},
    )
