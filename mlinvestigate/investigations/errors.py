"""`mlinv errors`: what is failing, where, and since when.

Counts per error_category, error_type, model_id, model_version and service (or the columns
given with `--by`), with the rate against the request lines of the same model/version/service
(and interval, with `--every`), first and last occurrence, an example message and example
request ids to hand to `mlinv trace`. A failed request is logged by every service it went
through (the gateway's request_failure and the model-server's prediction_failure), so rows
keep services apart; adding rows of different services counts such a request twice.

Two scans, both aggregated in DuckDB: the error lines (few) grouped by the keys, and the
request lines per model/version/service (and interval) for the rates.
"""

from __future__ import annotations

from datetime import timedelta
from typing import TYPE_CHECKING, Any

from ..engines import DUCKDB, SPARK, Engine, as_engine, sql_for
from ..errors import UsageError
from ..result import Result
from .filters import (
    Filters,
    bucket_sql,
    event_kinds,
    grouping,
    micros,
    percent,
    run,
    where_sql,
)

if TYPE_CHECKING:
    import duckdb

DEFAULT_KEYS = ("error_category", "error_type", "model_id", "model_version", "service")
DEFAULT_KEYS_OVER_TIME = ("error_category", "model_id", "service")
RATE_KEYS = ("model_id", "model_version", "service")
"""The denominator of a rate: request lines of the same model, version and service (those of
the keys that are shown)."""

EXAMPLE_IDS = 3

ERRORS_SQL = """
SELECT any_value({interval}) AS interval_start,
       {key_values},
       count(*) AS errors,
       min(ts) AS first_seen,
       max(ts) AS last_seen,
       arg_min(error_message, ts) FILTER (WHERE error_message IS NOT NULL) AS example_message,
       arg_min(request_id, ts, {example_ids})
           FILTER (WHERE request_id IS NOT NULL) AS example_request_ids
FROM events
WHERE {where}
  AND error_category IS NOT NULL
GROUP BY hash({interval}, {keys})
"""

REQUESTS_SQL = """
SELECT any_value({interval}) AS interval_start,
       {rate_values},
       count(*) AS requests
FROM events
WHERE {where}
  AND {request_line}
GROUP BY hash({interval}, {rate_keys})
"""
"""Both group on one hash of their keys, read back with any_value: text keys group 1.5-2x
slower on 10 M events."""

SPARK_ERRORS_SQL = """
SELECT interval_start,
       {key_names},
       count(*) AS errors,
       min(ts) AS first_seen,
       max(ts) AS last_seen,
       min_by(error_message, ts) FILTER (WHERE error_message IS NOT NULL) AS example_message,
       transform(slice(array_sort(collect_list(struct(ts, request_id))
                                  FILTER (WHERE request_id IS NOT NULL)), 1, {example_ids}),
                 pair -> pair.request_id) AS example_request_ids
FROM (SELECT {interval} AS interval_start, {keyed}, ts, error_message, request_id
      FROM events
      WHERE {where}
        AND error_category IS NOT NULL)
GROUP BY interval_start, {key_names}
"""
"""Spark has no arg_min(x, by, n): the first ids come from the (ts, request_id) pairs
sorted (ties in ts broken by id, where DuckDB takes any)."""

SPARK_REQUESTS_SQL = """
SELECT interval_start, {rate_names}, count(*) AS requests
FROM (SELECT {interval} AS interval_start, {rate_keyed}
      FROM events
      WHERE {where}
        AND {request_line})
GROUP BY interval_start, {rate_names}
"""

SQL = {
    "errors": {DUCKDB: ERRORS_SQL, SPARK: SPARK_ERRORS_SQL},
    "requests": {DUCKDB: REQUESTS_SQL, SPARK: SPARK_REQUESTS_SQL},
}


def _key_order(key: tuple[Any, ...]) -> tuple[tuple[bool, str], ...]:
    return tuple((value is None, str(value)) for value in key)


def errors(
    con: duckdb.DuckDBPyConnection | Engine,
    filters: Filters,
    *,
    by: list[str] | None = None,
    every: timedelta | None = None,
) -> Result:
    """Errors grouped by `by` (default category, type, model, version, service), optionally
    per `every` interval. Rows with the most errors first (in time order with `every`)."""
    engine = as_engine(con)
    names = list(by or (DEFAULT_KEYS_OVER_TIME if every else DEFAULT_KEYS))
    groupings = [grouping(name, engine=engine.name) for name in names]
    columns = [g.column for g in groupings]
    if len(set(columns)) != len(columns):
        raise UsageError("--by names a column twice")
    keys_sql = ", ".join(g.expression for g in groupings)
    key_values = ", ".join(f"any_value({g.expression}) AS {g.column}" for g in groupings)
    rate_keys = [name for name in RATE_KEYS if name in columns]
    rate_keys_sql = ", ".join(rate_keys) if rate_keys else "NULL"
    rate_values = (", ".join(f"any_value({name}) AS {name}" for name in rate_keys)
                   if rate_keys else "NULL AS no_key")

    # Spark: keys projected as k_0, k_1 … (a key may be ts or request_id, which the subquery
    # also carries), grouped by those names.
    keyed = ", ".join(f"{g.expression} AS k_{i}" for i, g in enumerate(groupings))
    key_names = ", ".join(f"k_{i}" for i in range(len(groupings)))
    rate_keyed = ", ".join(rate_keys) if rate_keys else "NULL AS no_key"
    rate_names = ", ".join(rate_keys) if rate_keys else "no_key"

    where, params = where_sql(filters, engine)
    request_line, kind_params = event_kinds(engine).request_line_sql(engine.name)
    interval = "NULL"
    if every is not None:
        if every <= timedelta(0):
            raise UsageError("--every must be longer than zero")
        interval = bucket_sql("every_us", engine=engine.name)
        params = {**params, "every_us": micros(every)}
    error_rows = run(engine, sql_for(SQL["errors"], engine.name).format(
        interval=interval, keys=keys_sql, key_values=key_values, where=where,
        example_ids=EXAMPLE_IDS, keyed=keyed, key_names=key_names,
    ), params, filters).fetchall()
    request_counts: dict[tuple[Any, ...], int] = {}
    for row in run(engine, sql_for(SQL["requests"], engine.name).format(
        interval=interval, rate_keys=rate_keys_sql, rate_values=rate_values, where=where,
        request_line=request_line, rate_keyed=rate_keyed, rate_names=rate_names,
    ), {**params, **kind_params}, filters).fetchall():
        request_counts[tuple(row[:-1])] = row[-1]

    rate_positions = [columns.index(name) for name in rate_keys]
    rows: list[tuple[Any, ...]] = []
    for row in error_rows:
        interval_start, key = row[0], row[1:1 + len(columns)]
        n, first_seen, last_seen, message, ids = row[1 + len(columns):]
        lookup = (interval_start, *(key[i] for i in rate_positions)) if rate_keys \
            else (interval_start, None)
        requests = request_counts.get(lookup)
        out = (*key, n, percent(n, requests) if requests else None, first_seen, last_seen,
               message, ", ".join(ids or []))
        rows.append((interval_start, *out) if every is not None else out)

    total = len(rows)
    # Ties end on the keys, so the order never depends on how the engine returned the groups.
    if every is not None:
        rows.sort(key=lambda r: (r[0], -r[1 + len(columns)], _key_order(r[1:1 + len(columns)])))
    else:
        rows.sort(key=lambda r: (-r[len(columns)], r[len(columns) + 2],
                                 _key_order(r[:len(columns)])))
        rows = rows[:filters.limit]
    out_columns = [*columns, "errors", "rate_pct", "first_seen", "last_seen", "example_message",
                   "example_request_ids"]
    if every is not None:
        out_columns = ["interval_start", *out_columns]
    notes = [
        f"window: {filters.describe()}",
        "rate_pct: errors / request lines of "
        + ("the same " + "/".join(rate_keys) if rate_keys else "the whole window")
        + (" in the same interval" if every is not None else ""),
    ]
    if "service" in columns:
        at = columns.index("service")
        services = sorted({row[at] for row in rows if row[at] is not None})
        if len(services) > 1:
            # Fix: this note named the sample's services (gateway, model-server) whatever the logs.
            shown = ", ".join(services[:4]) + (" …" if len(services) > 4 else "")
            notes.append(f"a failed request is logged by each service it passed ({shown}): rows "
                         "of different services can be the same requests seen from several hops")
    if every is None and total > len(rows):
        notes.append(f"{total - len(rows)} more groups not shown (raise --limit)")
    ids_column = out_columns.index("example_request_ids")
    first_ids = next((r[ids_column] for r in rows if r[ids_column]), None)
    if first_ids:
        notes.append(f"next: mlinv trace {first_ids.split(', ')[0]}")
    title = "Errors by " + ", ".join(columns)
    if every is not None:
        from ..timeparse import format_duration

        title += f" every {format_duration(every.total_seconds())}"
    return Result(title=title, columns=out_columns, rows=rows, notes=notes,
                  units={"rate_pct": "%"})
