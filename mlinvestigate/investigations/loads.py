"""`mlinv loads`: every model load, and what followed it.

A load is an event whose name says load/loaded/loading/deploy (model_load_start, …_success,
…_failure). Starts are paired with the next outcome of the same service, model and version
(window function `lead`), giving the load duration (load_time_ms when logged, else outcome −
start) and memory_mb when logged. Then, for each load that finished (or has no outcome), the
requests of that model at that service in a window before and after the moment it was ready:
requests, error rate, p99, the error category that grew most, and when its first failure came.
Loads are ranked by impact: the extra failures after the load (failures above the rate before).

All of that is one SQL join of the loads with the request lines inside the loads' windows
(merged into a few disjoint time ranges first, so DuckDB can skip the row groups outside them).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..engines import DUCKDB, SPARK, Engine, as_engine, param, sql_for
from ..errors import UsageError
from ..result import Result
from .filters import (
    PERCENTILE_NOTE,
    Filters,
    event_kinds,
    ms_text,
    pct_text,
    percent,
    run,
    where_sql,
)

if TYPE_CHECKING:
    import duckdb

LOADS_SQL = """
WITH hits AS (
    -- Find the rows first without touching attrs; reading attrs for every row of the row
    -- groups that hold a load costs 10-50x more than fetching it for the few hits.
    SELECT rowid AS hit
    FROM events
    WHERE {where}
      AND {is_load}
),
loads AS (
    SELECT ts, event, service, model_id,
           coalesce(model_version, json_extract_string(attrs, '$.version'),
                    json_extract_string(attrs, '$.model_version')) AS version,
           CASE WHEN regexp_matches(event, '(?i)fail|error|abort|crash|oom') THEN 'failure'
                WHEN regexp_matches(event, '(?i)start|begin|loading|request|init')
                     THEN 'start'
                ELSE 'success' END AS kind,
           coalesce(TRY_CAST(json_extract_string(attrs, '$.load_time_ms') AS DOUBLE),
                    TRY_CAST(json_extract_string(attrs, '$.load_ms') AS DOUBLE),
                    latency_ms) AS load_ms,
           TRY_CAST(json_extract_string(attrs, '$.memory_mb') AS DOUBLE) AS memory_mb,
           coalesce(error_message, error_type, json_extract_string(attrs, '$.error'))
               AS error
    FROM events
    WHERE {load_rows}
),
ordered AS (
    SELECT *,
           lead(kind) OVER w AS next_kind,
           lead(ts) OVER w AS next_ts,
           lead(load_ms) OVER w AS next_load_ms,
           lead(memory_mb) OVER w AS next_memory_mb,
           lead(error) OVER w AS next_error,
           lag(kind) OVER w AS prev_kind
    FROM loads
    WINDOW w AS (PARTITION BY service, model_id, version ORDER BY ts)
)
-- A start with its outcome (the next event of the same load), or an outcome logged alone.
SELECT ts AS started,
       CASE WHEN next_kind IN ('success', 'failure') THEN next_ts END AS finished,
       service, model_id, version,
       CASE WHEN next_kind IN ('success', 'failure') THEN next_kind ELSE 'no outcome' END
           AS outcome,
       CASE WHEN next_kind IN ('success', 'failure')
            THEN coalesce(next_load_ms, epoch_ms(next_ts) - epoch_ms(ts)) END AS load_ms,
       coalesce(next_memory_mb, memory_mb) AS memory_mb,
       CASE WHEN next_kind = 'failure' THEN next_error END AS error
FROM ordered
WHERE kind = 'start'
UNION ALL
SELECT NULL, ts, service, model_id, version, kind, load_ms, memory_mb,
       CASE WHEN kind = 'failure' THEN error END
FROM ordered
WHERE kind <> 'start' AND prev_kind IS DISTINCT FROM 'start'
ORDER BY coalesce(started, finished)
"""

IMPACT_SQL = """
WITH anchors AS (
    SELECT unnest($load_no) AS load_no,
           unnest($model_id) AS model_id,
           unnest($service) AS service,
           unnest($at) AS at
),
lines AS (
    SELECT ts, model_id, service, latency_ms, error_category, error_type
    FROM events
    WHERE ({ranges})
      AND {request_line}
      AND list_contains($models, model_id)
)
SELECT a.load_no,
       l.ts >= a.at AS after,
       GROUPING(l.error_category) = 1 AS is_total,
       l.error_category,
       count(*) AS requests,
       count(l.error_category) AS errors,
       quantile_cont(l.latency_ms, 0.99) AS p99,
       min(l.ts) FILTER (WHERE l.error_category IS NOT NULL) AS first_error,
       mode(l.error_type) AS error_type
FROM anchors a
JOIN lines l
  ON l.model_id = a.model_id
 AND l.service IS NOT DISTINCT FROM a.service
 AND l.ts >= a.at - $window
 AND l.ts < a.at + $window
GROUP BY GROUPING SETS ((a.load_no, after), (a.load_no, after, l.error_category))
"""
"""Per load and side (before/after): totals (error_category NULL in the grouping), then per
error category; `ranges` are disjoint ts ranges as bound parameters ($lo0 … $hi0 …)."""

SPARK_LOADS_SQL = """
WITH loads AS (
    SELECT ts, event, service, model_id,
           coalesce(model_version, get_json_object(attrs, '$.version'),
                    get_json_object(attrs, '$.model_version')) AS version,
           CASE WHEN event RLIKE '(?i)fail|error|abort|crash|oom' THEN 'failure'
                WHEN event RLIKE '(?i)start|begin|loading|request|init' THEN 'start'
                ELSE 'success' END AS kind,
           coalesce(try_cast(get_json_object(attrs, '$.load_time_ms') AS DOUBLE),
                    try_cast(get_json_object(attrs, '$.load_ms') AS DOUBLE),
                    latency_ms) AS load_ms,
           try_cast(get_json_object(attrs, '$.memory_mb') AS DOUBLE) AS memory_mb,
           coalesce(error_message, error_type, get_json_object(attrs, '$.error')) AS error
    FROM events
    WHERE {where}
      AND {is_load}
),
ordered AS (
    SELECT *,
           lead(kind) OVER w AS next_kind,
           lead(ts) OVER w AS next_ts,
           lead(load_ms) OVER w AS next_load_ms,
           lead(memory_mb) OVER w AS next_memory_mb,
           lead(error) OVER w AS next_error,
           lag(kind) OVER w AS prev_kind
    FROM loads
    WINDOW w AS (PARTITION BY service, model_id, version ORDER BY ts)
)
SELECT ts AS started,
       CASE WHEN next_kind IN ('success', 'failure') THEN next_ts END AS finished,
       service, model_id, version,
       CASE WHEN next_kind IN ('success', 'failure') THEN next_kind ELSE 'no outcome' END
           AS outcome,
       CASE WHEN next_kind IN ('success', 'failure')
            THEN coalesce(next_load_ms, CAST(unix_millis(CAST(next_ts AS TIMESTAMP))
                                             - unix_millis(CAST(ts AS TIMESTAMP)) AS DOUBLE))
       END AS load_ms,
       coalesce(next_memory_mb, memory_mb) AS memory_mb,
       CASE WHEN next_kind = 'failure' THEN next_error END AS error
FROM ordered
WHERE kind = 'start'
UNION ALL
SELECT CAST(NULL AS TIMESTAMP_NTZ), ts, service, model_id, version, kind, load_ms, memory_mb,
       CASE WHEN kind = 'failure' THEN error END
FROM ordered
WHERE kind <> 'start' AND prev_kind IS DISTINCT FROM 'start'
ORDER BY coalesce(started, finished)
"""
"""Spark: the same, with get_json_object, RLIKE (Java regex, same patterns) and epoch
milliseconds; no rowid, so the load lines are found and read in one pass."""

SPARK_IMPACT_SQL = """
WITH anchors AS (
    -- Parallel arrays bound as parameters, zipped by position. A NULL service travels as
    -- service_known = false: Spark binds no array literal holding a NULL.
    SELECT element_at(:load_no, pos + 1) AS load_no,
           element_at(:model_id, pos + 1) AS model_id,
           CASE WHEN element_at(:service_known, pos + 1) THEN element_at(:service, pos + 1) END
               AS service,
           at
    FROM (SELECT posexplode(:at) AS (pos, at))
),
lines AS (
    SELECT ts, model_id, service, latency_ms, error_category, error_type
    FROM events
    WHERE ({ranges})
      AND {request_line}
      AND array_contains(:models, model_id)
),
sides AS (
    -- A range join: Spark has no as-of join; the equality on model_id keeps it a hash join.
    SELECT a.load_no, l.ts >= a.at AS after, l.error_category, l.latency_ms, l.ts,
           l.error_type
    FROM anchors a
    JOIN lines l
      ON l.model_id = a.model_id
     AND l.service <=> a.service
     AND l.ts >= a.at - :window
     AND l.ts < a.at + :window
)
SELECT load_no,
       after,
       GROUPING(error_category) = 1 AS is_total,
       error_category,
       count(*) AS requests,
       count(error_category) AS errors,
       percentile(latency_ms, 0.99) AS p99,
       min(ts) FILTER (WHERE error_category IS NOT NULL) AS first_error,
       mode(error_type, true) AS error_type
FROM sides
GROUP BY GROUPING SETS ((load_no, after), (load_no, after, error_category))
"""
"""Spark's mode(…, true) breaks ties by the smallest value; DuckDB's mode takes the first
value it met, so a tie between two error types may name a different one."""

SQL = {
    "loads": {DUCKDB: LOADS_SQL, SPARK: SPARK_LOADS_SQL},
    "impact": {DUCKDB: IMPACT_SQL, SPARK: SPARK_IMPACT_SQL},
}


MIN_REQUESTS_FOR_P99 = 2000
"""A p99 over fewer requests per side moves by 2x from noise alone (a 10-min window of a
200k-line sample has ~1,200): no latency verdict below this."""


@dataclass
class _Load:
    started: datetime | None
    finished: datetime | None
    service: str | None
    model_id: str | None
    version: str | None
    outcome: str
    load_ms: float | None
    memory_mb: float | None
    error: str | None

    @property
    def at(self) -> datetime:
        """When the load took effect: its outcome, or its start when none was logged."""
        return self.finished or self.started  # type: ignore[return-value]


@dataclass
class _Side:
    requests: int = 0
    errors: int = 0
    p99: float | None = None
    categories: dict[str, tuple[int, datetime | None, str | None]] | None = None

    @property
    def error_pct(self) -> float | None:
        return percent(self.errors, self.requests)


COLUMNS = [
    "rank", "loaded_at", "model_id", "version", "service", "outcome", "load_ms", "memory_mb",
    "requests_before", "requests_after", "error_pct_before", "error_pct_after", "p99_before",
    "p99_after", "first_failure_after", "top_error_after", "extra_failures", "verdict",
    "what_followed",
]
UNITS = {"load_ms": "ms", "memory_mb": "MB", "error_pct_before": "%", "error_pct_after": "%",
         "p99_before": "ms", "p99_after": "ms"}


def loads(
    con: duckdb.DuckDBPyConnection | Engine,
    filters: Filters,
    *,
    window: timedelta = timedelta(minutes=10),
) -> Result:
    """Every model load in the filters, with the traffic `window` before and after it."""
    if window <= timedelta(0):
        raise UsageError("--window must be longer than zero")
    engine = as_engine(con)
    kinds = event_kinds(engine)
    is_load, load_params = kinds.load_sql(engine=engine.name)
    where, params = where_sql(filters, engine)
    # Over a table, the load lines are found by rowid first (see LOADS_SQL); a view over
    # Parquet files has no rowid, so they are filtered and read in one pass.
    load_rows = "rowid IN (SELECT hit FROM hits)" if engine.has_rowid else f"{where} AND {is_load}"
    fetched = run(engine, sql_for(SQL["loads"], engine.name).format(
        where=where, is_load=is_load, load_rows=load_rows),
                  {**params, **load_params}, filters).fetchall()
    found = [_Load(*row) for row in fetched]
    sides = _impact(engine, kinds.request_line_sql(engine.name), found, window)

    rows: list[tuple[Any, ...]] = []
    for number, load in enumerate(found):
        before = sides.get((number, False), _Side())
        after = sides.get((number, True), _Side())
        top, first, top_type = _grown_category(before, after)
        extra = _extra_failures(before, after)
        verdict, sentence = _verdict(load, before, after, top, first, top_type)
        rows.append((
            load.at, load.model_id, load.version, load.service, load.outcome, load.load_ms,
            load.memory_mb, before.requests, after.requests, before.error_pct, after.error_pct,
            before.p99, after.p99, (first - load.at) if first else None,
            f"{top} ({top_type})" if top and top_type else top, extra, verdict, sentence,
        ))
    # Impact first: extra failures, then how much p99 grew, then time.
    rows.sort(key=lambda r: (-(r[15] or 0), -_ratio(r[12], r[11]), r[0]))
    ranked = [(i + 1, *row) for i, row in enumerate(rows)]
    notes = [
        f"window: {filters.describe()}; traffic compared {ms_text(window.total_seconds() * 1e3)}"
        " before and after each load took effect (its success/failure line, else its start), "
        "for the same model at the loading service",
        "extra_failures: failures after the load beyond the error rate before it",
        PERCENTILE_NOTE,
    ]
    if ranked and ranked[0][16]:
        notes.append(f"top: {ranked[0][-1]}")
    return Result(title="Model loads, by impact", columns=COLUMNS, rows=ranked, notes=notes,
                  units=UNITS)


def _impact(engine: Engine, request_line: tuple[str, dict[str, Any]],
            found: list[_Load], window: timedelta) -> dict[tuple[int, bool], _Side]:
    anchored = [(i, load) for i, load in enumerate(found) if load.at is not None]
    if not anchored:
        return {}
    ranges = _merged_ranges([load.at for _, load in anchored], window)
    dialect = engine.name
    range_sql = " OR ".join(
        f"(ts >= {param(dialect, f'lo{i}')} AND ts < {param(dialect, f'hi{i}')}"
        # On a Parquet store each range also names its days, so other days stay unread.
        + (f" AND dt >= {param(dialect, f'lo_dt{i}')} AND dt <= {param(dialect, f'hi_dt{i}')}"
           if engine.partitioned else "")
        + ")"
        for i in range(len(ranges)))
    line_sql, line_params = request_line
    params: dict[str, Any] = {
        "load_no": [i for i, _ in anchored],
        "model_id": [load.model_id for _, load in anchored],
        "service": [load.service for _, load in anchored],
        "at": [load.at for _, load in anchored],
        "models": sorted({load.model_id for _, load in anchored if load.model_id}),
        "window": window,
        **line_params,
    }
    for i, (low, high) in enumerate(ranges):
        params[f"lo{i}"], params[f"hi{i}"] = low, high
        if engine.partitioned:
            params[f"lo_dt{i}"], params[f"hi_dt{i}"] = low.date(), high.date()
    if dialect == SPARK:
        params["service_known"] = [service is not None for service in params["service"]]
        params["service"] = [service or "" for service in params["service"]]
        params["model_id"] = [model or "" for model in params["model_id"]]
    if not params["models"]:
        return {}
    sql = sql_for(SQL["impact"], dialect).format(ranges=range_sql, request_line=line_sql)
    sides: dict[tuple[int, bool], _Side] = {}
    for load_no, after, is_total, category, requests, errors, p99, first_error, error_type in \
            engine.execute(sql, params).fetchall():
        side = sides.setdefault((load_no, after), _Side(categories={}))
        if is_total:
            side.requests, side.errors, side.p99 = requests, errors, p99
        elif category is not None:
            assert side.categories is not None
            side.categories[category] = (requests, first_error, error_type)
    return sides


def _merged_ranges(moments: list[datetime], window: timedelta) -> list[tuple[datetime, datetime]]:
    ranges: list[tuple[datetime, datetime]] = []
    for moment in sorted(moments):
        low, high = moment - window, moment + window
        if ranges and low <= ranges[-1][1]:
            ranges[-1] = (ranges[-1][0], max(high, ranges[-1][1]))
        else:
            ranges.append((low, high))
    return ranges


def _grown_category(before: _Side, after: _Side
                    ) -> tuple[str | None, datetime | None, str | None]:
    """The error category whose rate grew most after the load, its first failure after the
    load, and its most common error_type."""
    best: tuple[float, str] | None = None
    for category, (count, _, _) in (after.categories or {}).items():
        rate_after = count / after.requests if after.requests else 0.0
        count_before = (before.categories or {}).get(category, (0, None, None))[0]
        rate_before = count_before / before.requests if before.requests else 0.0
        growth = rate_after - rate_before
        if best is None or growth > best[0]:
            best = (growth, category)
    if best is None:
        return None, None, None
    _, first, error_type = (after.categories or {})[best[1]]
    return best[1], first, error_type


def _extra_failures(before: _Side, after: _Side) -> int:
    if not before.requests:  # no traffic before (a first load): nothing to compare with
        return 0
    rate_before = before.errors / before.requests
    return max(0, round(after.errors - rate_before * after.requests))


def _ratio(after: float | None, before: float | None) -> float:
    return after / before if after and before else 0.0


def _verdict(load: _Load, before: _Side, after: _Side, top: str | None,
             first: datetime | None, top_type: str | None) -> tuple[str, str]:
    name = f"{load.model_id or '?'} {load.version or ''}".strip()
    if load.outcome == "failure":
        took = f" after {ms_text(load.load_ms)}" if load.load_ms else ""
        return "fail", f"load of {name} failed{took}: {load.error or 'no error logged'}"
    if load.outcome == "no outcome":
        prefix = f"{name} load started, no success or failure logged; "
    else:
        prefix = ""
    rates = f"error rate {pct_text(before.error_pct)} → {pct_text(after.error_pct)}"
    latency = f"p99 {ms_text(before.p99)} → {ms_text(after.p99)}"
    b, a = before.error_pct or 0.0, after.error_pct or 0.0
    if not before.requests:
        if not after.requests:
            return "ok", f"{prefix}no requests of {load.model_id} around the load"
        return "ok", (f"{prefix}first traffic after {name} loaded (none before to compare): "
                      f"error rate {pct_text(after.error_pct)}, p99 {ms_text(after.p99)}")
    if after.requests and a > 2 * b and a - b >= 1.0:
        delay = ms_text((first - load.at).total_seconds() * 1e3) if first else "?"
        kind = f" ({top}: {top_type})" if top and top_type else (f" ({top})" if top else "")
        return "critical", (f"{prefix}failures started {delay} after {name} loaded: "
                            f"{rates}{kind}")
    # A p99 needs a few hundred requests on each side before its change means anything.
    if (min(before.requests, after.requests) >= MIN_REQUESTS_FOR_P99 and after.p99
            and before.p99 and after.p99 > 1.5 * before.p99 and after.p99 - before.p99 > 20):
        return "warn", f"{prefix}latency rose after {name} loaded: {latency}; {rates}"
    if before.requests and b > 2 * a and b - a >= 1.0:
        return "ok", f"{prefix}recovery after {name} loaded: {rates}"
    if not after.requests:
        return "ok", f"{prefix}no requests of {load.model_id} within the window after the load"
    if min(before.requests, after.requests) < MIN_REQUESTS_FOR_P99:
        latency += " (too few requests to judge p99)"
    return "ok", f"{prefix}no clear change after {name} loaded: {rates}, {latency}"
