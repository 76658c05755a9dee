"""`mlinv throughput`: per interval, what was asked for, what was handled, what was lost.

* received: request start lines (request_start …) at the entry services — the services that
  log start lines (the gateway). Without any start lines, received = request lines.
* processed / failed: the entry services' request lines without / with an error_category.
* dropped: started, but no request line of the same request_id at the same service within
  `timeout` after the start. Starts closer than `timeout` to the end of the log cannot be
  judged yet: they are counted as open at the end, not as dropped.
  So received ≈ processed + failed + dropped + open, interval by interval (a request belongs to
  the interval it started in for `dropped`, to the one it finished in for processed/failed).
* in_flight_peak: started-but-unfinished requests, rebuilt as the running sum of starts minus
  finishes, sampled at fine steps (1 s for 5-minute intervals; 1/300 of the interval at most).
* in_flight_mean: by Little's law, the summed latency of the requests that finished in the
  interval divided by its length.
* saturation_pct (with `capacity`): the received rate against the capacity; peak_saturation_pct
  uses the busiest step.

Two queries: one scan grouped by service and fine step (then everything else on those few
thousand rows, in SQL), and the dropped check. The dropped check reads the starts the ingest
already matched with their finish (request_starts.py) when the filters are on time and service
only; otherwise it is an anti-join of starts with finishes on (request_id, service).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..engines import DUCKDB, SPARK, Engine, as_engine, sql_for
from ..errors import UsageError
from ..result import Result
from .filters import (
    Filters,
    bucket_sql,
    data_span,
    default_every,
    event_kinds,
    from_micros_spark,
    micros,
    micros_spark,
    run,
    where_sql,
)

if TYPE_CHECKING:
    import duckdb

MAX_STEPS_PER_INTERVAL = 300

FLOW_SQL = """
WITH steps AS MATERIALIZED (
    -- Two aggregations rather than one with a CASE per row: the start lines are found by
    -- the event dictionary alone, and the CASE version measured 2-3x slower on 10 M events.
    SELECT service, {step_bucket} AS step_start, count(*) AS starts, 0 AS finished,
           0 AS failed, 0.0 AS busy_ms
    FROM {start_lines}
    GROUP BY ALL
    UNION ALL
    SELECT service, {step_bucket}, 0, count(*), count(error_category), sum(latency_ms)
    FROM events
    WHERE {where}
      AND {request_line}
      {at_entry}
    GROUP BY ALL
),
entry AS (
    SELECT service FROM steps GROUP BY service HAVING sum(starts) > 0
),
chosen AS (
    SELECT *
    FROM steps
    -- Fix: NULL-safe, or logs without a service field (one service, unnamed) had no rows.
    WHERE EXISTS (SELECT 1 FROM entry WHERE entry.service IS NOT DISTINCT FROM steps.service)
       OR NOT EXISTS (SELECT 1 FROM entry)
),
per_step AS (
    SELECT step_start, sum(starts) AS starts, sum(finished) AS finished,
           sum(failed) AS failed, sum(busy_ms) AS busy_ms
    FROM chosen
    GROUP BY step_start
),
flow AS (
    SELECT *,
           sum(starts - finished) OVER (ORDER BY step_start ROWS UNBOUNDED PRECEDING)
               AS open_after
    FROM per_step
)
SELECT {interval_bucket} AS interval_start,
       sum(starts) AS received,
       sum(finished) - sum(failed) AS processed,
       sum(failed) AS failed,
       sum(finished) AS finished,
       max(starts) AS peak_step_starts,
       max(finished) AS peak_step_finished,
       greatest(max(open_after), 0) AS in_flight_peak,
       sum(busy_ms) AS busy_ms,
       (SELECT list(service ORDER BY service) FROM entry) AS entry_services
FROM flow
GROUP BY 1
ORDER BY 1
"""
"""One scan grouped by service and fine step; the rest runs on those few thousand rows.
`start_lines` is the events' start lines, or request_starts (the same lines, 0.11 s instead of
0.18 s on 10 M events); `at_entry` limits the request lines to the entry services when they are
known beforehand (from request_starts), which saves a third of that scan."""

START_LINES_FROM_EVENTS = """events
    WHERE {where}
      AND {is_start}"""
START_LINES_FROM_STARTS = """request_starts
    WHERE {where}"""
ENTRY_SERVICES_SQL = "SELECT list(DISTINCT service) FROM request_starts WHERE {where}"

DROPPED_SQL = """
WITH starts AS (
    SELECT hash(request_id, service) AS request_key, ts
    FROM events
    WHERE {where}
      AND {is_start}
      AND {at_entry}
      AND request_id IS NOT NULL
),
finishes AS (
    SELECT hash(request_id, service) AS request_key
    FROM events
    WHERE {finish_where}
      AND {request_line}
      AND {at_entry}
      AND request_id IS NOT NULL
),
never_finished AS (
    SELECT ts FROM starts ANTI JOIN finishes USING (request_key)
),
{late_and_count}"""
"""Starts with no finishing line of the same request at the same service (a plain anti-join:
a time condition in it made it 2.6x slower), plus finishing lines whose own latency exceeds the
timeout. The join is on a 64-bit hash of (request_id, service): 12 % faster than on the text on
10 M events, and a start wrongly taken as finished needs a collision with one of its window's
finishes (about 3e-7 for 2.5 M of each). `finish_where` is the filter with its end moved
`timeout` later, so a request started just before --until still finds its finish."""

DROPPED_FROM_STARTS_SQL = """
WITH starts AS (
    SELECT ts, service, request_id, finished_at
    FROM request_starts
    WHERE {where}
      AND {at_entry}
      AND request_id IS NOT NULL
),
open_starts AS (
    -- Not finished inside the finishes' window by what the ingest matched. A finishing line
    -- without time (-infinity) is inside only a window without bounds.
    SELECT * FROM starts
    WHERE finished_at IS NULL
       OR finished_at < $finish_from
       OR finished_at >= $finish_until
       OR (finished_at = '-infinity'::TIMESTAMP
           AND ($finish_from IS NOT NULL OR $finish_until IS NOT NULL))
),
units AS (
    SELECT request_id, count(*) AS units
    FROM request_index
    WHERE request_id IN (SELECT request_id FROM open_starts)
    GROUP BY request_id
),
judged AS (
    -- Seen in its own unit only, where the ingest saw every finishing line: nothing else can
    -- finish it. Otherwise the events decide.
    SELECT o.ts, hash(o.request_id, o.service) AS request_key,
           coalesce(u.units, 0) = 1
               AND (o.finished_at IS NULL
                    OR o.finished_at >= coalesce($finish_until, 'infinity'::TIMESTAMP)) AS sure
    FROM open_starts o
    LEFT JOIN units u USING (request_id)
),
finishes AS (
    SELECT DISTINCT hash(request_id, service) AS request_key
    FROM events
    WHERE {finish_where}
      AND {request_line}
      AND {at_entry}
      AND hash(request_id, service) IN (SELECT request_key FROM judged WHERE NOT sure)
),
never_finished AS (
    SELECT ts FROM judged WHERE sure
    UNION ALL
    SELECT ts FROM (SELECT * FROM judged WHERE NOT sure) ANTI JOIN finishes USING (request_key)
),
{late_and_count}"""
"""The same count from the starts the ingest matched with their finish (request_starts.py):
only the starts left open are looked at, and the events are read only for those the ingest
could not settle (a request seen in several units, a window that cuts it)."""

_LATE_AND_COUNT = """finished_late AS (
    -- Finished, but later than the timeout: dropped as far as the caller is concerned.
    -- Attributed to the interval it started in (its finish time minus its latency).
    SELECT ts - to_microseconds(CAST(latency_ms * 1000 AS BIGINT)) AS ts
    FROM events
    WHERE {where}
      AND {request_line}
      AND {at_entry}
      AND latency_ms > $timeout_ms
)
SELECT {interval_bucket} AS interval_start,
       count(*) FILTER (WHERE late OR ts + $timeout <= $log_end) AS dropped,
       count(*) FILTER (WHERE NOT late AND ts + $timeout > $log_end) AS open_at_end
FROM (SELECT ts, false AS late FROM never_finished
      UNION ALL
      SELECT ts, true FROM finished_late)
GROUP BY 1
"""
DROPPED_SQL = DROPPED_SQL.replace("{late_and_count}", _LATE_AND_COUNT)
DROPPED_FROM_STARTS_SQL = DROPPED_FROM_STARTS_SQL.replace("{late_and_count}", _LATE_AND_COUNT)

STARTS_USABLE_SQL = "SELECT count(*) FROM sources WHERE starts_indexed IS NOT TRUE"

LOG_END_SQL = "SELECT max(ts) FROM events"

SPARK_FLOW_SQL = """
WITH steps AS (
    SELECT service, {step_bucket} AS step_start, count(*) AS starts, 0L AS finished,
           0L AS failed, CAST(0 AS DOUBLE) AS busy_ms
    FROM events
    WHERE {where}
      AND {is_start}
    GROUP BY service, step_start
    UNION ALL
    SELECT service, {step_bucket} AS step_start, 0L, count(*), count(error_category),
           sum(latency_ms)
    FROM events
    WHERE {where}
      AND {request_line}
    GROUP BY service, step_start
),
entry AS (
    SELECT service FROM steps GROUP BY service HAVING sum(starts) > 0
),
chosen AS (
    -- A join instead of `IN (subquery) OR NOT EXISTS (…)`, which Spark does not plan.
    SELECT s.*
    FROM steps s
    CROSS JOIN (SELECT count(*) AS entries FROM entry) c
    LEFT JOIN (SELECT service, true AS is_entry FROM entry) e ON s.service <=> e.service
    WHERE e.is_entry OR c.entries = 0
),
per_step AS (
    SELECT step_start, sum(starts) AS starts, sum(finished) AS finished,
           sum(failed) AS failed, sum(busy_ms) AS busy_ms
    FROM chosen
    GROUP BY step_start
),
flow AS (
    SELECT *,
           sum(starts - finished) OVER (ORDER BY step_start
                                        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
               AS open_after
    FROM per_step
)
SELECT {interval_bucket} AS interval_start,
       sum(starts) AS received,
       sum(finished) - sum(failed) AS processed,
       sum(failed) AS failed,
       sum(finished) AS finished,
       max(starts) AS peak_step_starts,
       max(finished) AS peak_step_finished,
       greatest(max(open_after), 0) AS in_flight_peak,
       sum(busy_ms) AS busy_ms,
       -- collect_list skips NULL: an unnamed entry service goes last, as in DuckDB's list.
       (SELECT CASE WHEN count_if(service IS NULL) > 0
                    THEN array_append(array_sort(collect_list(service)), CAST(NULL AS STRING))
                    ELSE array_sort(collect_list(service)) END
        FROM entry) AS entry_services
FROM flow
GROUP BY 1
ORDER BY 1
"""

SPARK_DROPPED_SQL = """
WITH starts AS (
    SELECT request_id, service, ts
    FROM events
    WHERE {where}
      AND {is_start}
      AND {at_entry}
      AND request_id IS NOT NULL
),
finishes AS (
    SELECT request_id, service
    FROM events
    WHERE {finish_where}
      AND {request_line}
      AND {at_entry}
      AND request_id IS NOT NULL
),
never_finished AS (
    SELECT s.ts FROM starts s LEFT ANTI JOIN finishes f
        ON s.request_id = f.request_id AND s.service <=> f.service
),
finished_late AS (
    SELECT {started_at} AS ts
    FROM events
    WHERE {where}
      AND {request_line}
      AND {at_entry}
      AND latency_ms > :timeout_ms
)
SELECT {interval_bucket} AS interval_start,
       count(*) FILTER (WHERE late OR ts + :timeout <= :log_end) AS dropped,
       count(*) FILTER (WHERE NOT late AND ts + :timeout > :log_end) AS open_at_end
FROM (SELECT ts, false AS late FROM never_finished
      UNION ALL
      SELECT ts, true AS late FROM finished_late)
GROUP BY 1
"""
"""Spark: epoch arithmetic for the start of a late request (DuckDB rounds a double cast to
BIGINT; Spark truncates unless told to round)."""

SQL = {
    "flow": {DUCKDB: FLOW_SQL, SPARK: SPARK_FLOW_SQL},
    "dropped": {DUCKDB: DROPPED_SQL, SPARK: SPARK_DROPPED_SQL},
}


def step_for(every: timedelta) -> timedelta:
    """The sampling step: 1 s, or every/300 for long intervals, dividing `every` exactly."""
    every_us = round(every.total_seconds() * 1e6)
    steps = max(1, min(MAX_STEPS_PER_INTERVAL, every_us // 1_000_000))
    while every_us % steps:
        steps -= 1
    return timedelta(microseconds=every_us // steps)


def throughput(
    con: duckdb.DuckDBPyConnection | Engine,
    filters: Filters,
    *,
    every: timedelta | None = None,
    timeout: timedelta = timedelta(seconds=30),
    capacity_per_s: float | None = None,
) -> Result:
    if timeout <= timedelta(0):
        raise UsageError("--timeout must be longer than zero")
    if capacity_per_s is not None and capacity_per_s <= 0:
        raise UsageError("--capacity must be more than zero")
    engine = as_engine(con)
    dialect = engine.name
    first_ts, last_ts = data_span(engine, filters)
    if every is None:
        every = default_every(first_ts, last_ts)
    if every <= timedelta(0):
        raise UsageError("--every must be longer than zero")
    step = step_for(every)
    kinds = event_kinds(engine)
    is_start, start_params = kinds.start_sql(engine=dialect)
    request_line, line_params = kinds.request_line_sql(dialect)
    where, where_params = where_sql(filters, engine)
    params = {**where_params, **start_params, **line_params, "every_us": micros(every)}
    interval_bucket = bucket_sql("every_us", "step_start", engine=dialect)
    from_starts = _starts_usable(engine, filters)
    flow_params = {**params, "step_us": micros(step)}
    start_lines, at_entry = START_LINES_FROM_EVENTS.format(where=where, is_start=is_start), ""
    if from_starts:
        start_lines = START_LINES_FROM_STARTS.format(where=where)
        flow_params = {name: value for name, value in flow_params.items()
                       if name not in start_params}
        known_entry = run(engine, ENTRY_SERVICES_SQL.format(where=where), where_params,
                          filters).fetchone()[0]
        if known_entry:
            hint, hint_params = _at_entry("entry_hint", known_entry, dialect)
            at_entry = f"AND {hint}"
            flow_params.update(hint_params)
    flow = run(engine, sql_for(SQL["flow"], dialect).format(
        is_start=is_start, request_line=request_line, where=where, start_lines=start_lines,
        at_entry=at_entry, step_bucket=bucket_sql("step_us", engine=dialect),
        interval_bucket=interval_bucket,
    ), flow_params, filters).fetchall()
    if not flow:
        return Result(title="Throughput", columns=COLUMNS, rows=[])
    entry = list(flow[0][-1] or [])

    dropped: dict[datetime, tuple[int, int]] = {}
    if entry:
        log_end = engine.execute(LOG_END_SQL).fetchone()[0]
        later = replace(filters, until=filters.until + timeout) if filters.until else filters
        finish_where, finish_params = where_sql(later, engine)
        # The finishes' filter has its own parameter names so both can be bound at once.
        finish_where, finish_params = _renamed(finish_where, finish_params, "g_",
                                               ":" if dialect == SPARK else "$")
        started_at = from_micros_spark(
            f"{micros_spark('ts')} - CAST(round(latency_ms * 1000) AS BIGINT)")
        text = SQL["dropped"]
        dropped_params = {**params, **finish_params}
        if from_starts:
            text = DROPPED_FROM_STARTS_SQL
            for name in start_params:  # the ingest already told the starts apart
                del dropped_params[name]
            dropped_params.update(
                finish_from=filters.since,
                finish_until=filters.until + timeout if filters.until else None)
        at_entry, entry_params = _at_entry("entry", entry, dialect)
        rows = run(engine, sql_for(text, dialect).format(
            where=where, finish_where=finish_where, is_start=is_start, request_line=request_line,
            interval_bucket=bucket_sql("every_us", engine=dialect), started_at=started_at,
            at_entry=at_entry,
        ), {**dropped_params, **entry_params, "timeout": timeout,
            "timeout_ms": timeout.total_seconds() * 1000.0, "log_end": log_end},
            filters).fetchall()
        dropped = {row[0]: (row[1], row[2]) for row in rows}

    # Rates use the part of each interval inside the window: the first and last interval are
    # usually cut by --since/--until or by the ends of the log.
    window_start = filters.since or first_ts
    window_end = filters.until or last_ts
    step_seconds = step.total_seconds()
    out: list[tuple[Any, ...]] = []
    totals = {"received": 0, "processed": 0, "failed": 0, "dropped": 0, "open": 0, "untimed": 0}
    for (interval_start, received, processed, failed, finished, peak_starts, peak_finished,
         in_flight_peak, busy_ms, _) in flow:
        if interval_start is None:  # fix: lines with no time at all crashed the command
            totals["untimed"] = (received if entry else 0) + finished
            continue
        if not entry:  # no start lines: what was received is what finished
            received, peak_starts, in_flight_peak = finished, peak_finished, None
        lost, still_open = dropped.get(interval_start, (0, 0)) if entry else (None, None)
        seconds = _covered_seconds(interval_start, every, window_start, window_end)
        rate = received / seconds
        peak = peak_starts / step_seconds
        row: tuple[Any, ...] = (
            interval_start, received, processed, failed, lost, rate, peak,
            (busy_ms or 0.0) / 1000.0 / seconds, in_flight_peak,
        )
        if capacity_per_s is not None:
            row += (100.0 * rate / capacity_per_s, 100.0 * peak / capacity_per_s)
        out.append(row)
        totals["received"] += received
        totals["processed"] += processed
        totals["failed"] += failed
        totals["dropped"] += lost or 0
        totals["open"] += still_open or 0

    columns = list(COLUMNS)
    units = dict(UNITS)
    if capacity_per_s is not None:
        columns += ["saturation_pct", "peak_saturation_pct"]
        units.update({"saturation_pct": "%", "peak_saturation_pct": "%"})
    notes = _notes(filters, entry, every, step, timeout, totals, out, capacity_per_s)
    return Result(title=f"Throughput every {_duration(every)}", columns=columns, rows=out,
                  notes=notes, units=units)


def _at_entry(name: str, services: list[str | None], dialect: str) -> tuple[str, dict[str, Any]]:
    """`service` is one of `services`, NULL included (a log without a service field)."""
    named = [service for service in services if service is not None]
    contains = (f"array_contains(:{name}, service)" if dialect == SPARK
                else f"list_contains(${name}, service)")
    if not named:
        return "service IS NULL", {}
    if len(named) < len(services):
        return f"({contains} OR service IS NULL)", {name: named}
    return contains, {name: named}


def _starts_usable(engine: Engine, filters: Filters) -> bool:
    """Whether the dropped count can come from request_starts: DuckDB's own database, filters
    on time and service only (the ingest matched starts with finishes whatever their model,
    version or other fields), and every source written by an mlinv that fills the table."""
    if engine.name != DUCKDB or getattr(engine, "partitioned", False):
        return False
    if filters.model or filters.version or filters.where:
        return False
    from ..duckdb_core import duckdb

    try:
        return engine.execute(STARTS_USABLE_SQL).fetchone()[0] == 0
    except (duckdb.CatalogException, duckdb.BinderException):
        return False


def _covered_seconds(start: datetime, every: timedelta, window_start: datetime | None,
                     window_end: datetime | None) -> float:
    """Seconds of [start, start + every) inside the window (at least one step's worth)."""
    low = max(start, window_start) if window_start else start
    high = min(start + every, window_end) if window_end else start + every
    return max((high - low).total_seconds(), 1e-3, min(1.0, every.total_seconds()))


COLUMNS = ["interval_start", "received", "processed", "failed", "dropped", "received_per_s",
           "peak_per_s", "in_flight_mean", "in_flight_peak"]
UNITS = {"received_per_s": "/s", "peak_per_s": "/s"}


def _renamed(sql: str, params: dict[str, Any], prefix: str, marker: str = "$"
             ) -> tuple[str, dict[str, Any]]:
    for name in sorted(params, key=len, reverse=True):
        sql = sql.replace(f"{marker}{name}", f"{marker}{prefix}{name}")
    return sql, {f"{prefix}{name}": value for name, value in params.items()}


def _duration(every: timedelta) -> str:
    from ..timeparse import format_duration

    return format_duration(every.total_seconds())


def _notes(filters: Filters, entry: list[str], every: timedelta, step: timedelta,
           timeout: timedelta, totals: dict[str, int], rows: list[tuple[Any, ...]],
           capacity_per_s: float | None) -> list[str]:
    notes = [f"window: {filters.describe()}"]
    if totals["untimed"]:
        notes.append(f"{totals['untimed']:,} start/finishing line(s) without any time are in no "
                     "interval")
    if entry:
        notes.append(
            f"received = start lines at the entry service(s) "
            f"{', '.join(name or '(unnamed)' for name in entry)}; processed/"
            f"failed = their finishing lines; dropped = started with no finishing line at the "
            f"same service within {_duration(timeout)} (--timeout)"
        )
        notes.append(
            f"total: {totals['received']:,} received, {totals['processed']:,} processed, "
            f"{totals['failed']:,} failed, {totals['dropped']:,} dropped, "
            f"{totals['open']:,} still open at the end of the log"
        )
    else:
        notes.append("no start lines (request_start …) in the logs: received = request lines; "
                     "dropped and in-flight peaks need start lines")
    notes.append(f"peak_per_s and in_flight_peak from {_duration(step)} steps; in_flight_mean "
                 "by Little's law (summed latency / interval)")
    if rows:
        busiest = max(rows, key=lambda r: r[6])
        notes.append(f"busiest: {busiest[6]:,.1f}/s in the interval from "
                     f"{busiest[0].isoformat(sep=' ')}")
        if capacity_per_s is not None:
            over = [r for r in rows if r[-1] > 100.0]
            if over:
                notes.append(f"{len(over)} interval(s) peaked above the capacity of "
                             f"{capacity_per_s:g}/s")
    return notes

