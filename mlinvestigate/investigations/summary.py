"""`mlinv summary`: one row per model_id / model_version / service with traffic, latency
percentiles, errors and a health verdict — the first command at 3 AM.

Requests are request lines (see `filters`): each service's finishing line of a request. The
default rows are keyed by model_id, model_version *and* service because the gateway and the
model-server each log a line per request: keeping them apart is what stops a request from being
counted twice, and it shows both views — the model-server rows per version, the gateway row the
end-to-end view of every request to that model (including requests that never reached a
model-server, such as gateway timeouts). The gateway does not log a version, so its rows have
none.

One scan, aggregated inside DuckDB: latency percentiles, error counts per category and the
busiest minute of each row.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..engines import DUCKDB, SPARK, DuckDBEngine, Engine, as_engine, sql_for
from ..errors import UsageError
from ..result import Result
from ..schema import ERROR_CATEGORIES
from .filters import (
    PERCENTILE_NOTE,
    REQUEST_NOTE,
    Filters,
    bucket_sql,
    clock_text,
    event_kinds,
    grouping,
    ms_text,
    pct_text,
    percent,
    run,
    where_sql,
)

if TYPE_CHECKING:
    import duckdb

DEFAULT_KEYS = ("model_id", "model_version", "service")

SUMMARY_SQL = """
SELECT hash({keys}) AS group_key,
       {key_values},
       count(*) AS requests,
       quantile_cont(latency_ms, [0.5, 0.95, 0.99, 0.999]) AS q,
       max(latency_ms) AS max_ms,
       count(*) FILTER (WHERE latency_ms > $slow_ms) AS slow,
       count(latency_ms) AS timed,
       count(error_category) AS errors,
       date_trunc('second', min(ts)) AS first_seen,
       date_trunc('second', max(ts)) AS last_seen,
       histogram(error_category) AS errors_by_category,
       list_max(map_values(histogram(epoch_us(ts) // $minute_us))) AS peak_per_minute
FROM events
WHERE {where}
  AND {request_line}
GROUP BY group_key
"""
"""One scan for everything a row shows. Rows are grouped on one 64-bit hash of the key columns
and the keys read back with any_value: grouping on three text columns measured 1.5-2x slower on
10 M events. (A hash collision between two of a handful of rows has a probability around
1e-18.) The errors per category and the busiest minute come from histograms in the same
aggregate: 0.61 s against 0.79 s for a second scan grouped by minute and category (10 M
events)."""

SPARK_SUMMARY_SQL = """
WITH lines AS (
    SELECT {keyed}, ts, latency_ms, error_category, {minute} AS minute
    FROM events
    WHERE {where}
      AND {request_line}
),
per_row AS (
    SELECT {key_names},
           count(*) AS requests,
           percentile(latency_ms, array(0.5, 0.95, 0.99, 0.999)) AS q,
           max(latency_ms) AS max_ms,
           count(*) FILTER (WHERE latency_ms > :slow_ms) AS slow,
           count(latency_ms) AS timed,
           count(error_category) AS errors,
           CAST(date_trunc('SECOND', min(ts)) AS TIMESTAMP_NTZ) AS first_seen,
           CAST(date_trunc('SECOND', max(ts)) AS TIMESTAMP_NTZ) AS last_seen
    FROM lines
    GROUP BY {key_names}
),
per_category AS (
    SELECT {key_names}, map_from_entries(collect_list(struct(error_category, n))) AS errors_by_category
    FROM (SELECT {key_names}, error_category, count(*) AS n
          FROM lines
          WHERE error_category IS NOT NULL
          GROUP BY {key_names}, error_category)
    GROUP BY {key_names}
),
per_minute AS (
    SELECT {key_names}, max(n) AS peak_per_minute
    FROM (SELECT {key_names}, minute, count(*) AS n FROM lines GROUP BY {key_names}, minute)
    GROUP BY {key_names}
)
SELECT struct({row_key_names}) AS group_key,
       {row_key_names},
       r.requests, r.q, r.max_ms, r.slow, r.timed, r.errors, r.first_seen, r.last_seen,
       coalesce(c.errors_by_category, map()) AS errors_by_category,
       m.peak_per_minute
FROM per_row r
LEFT JOIN per_category c ON {category_join}
LEFT JOIN per_minute m ON {minute_join}
"""
"""Spark groups on the keys themselves: its hash() skips NULLs, so (a, NULL) and (NULL, a)
would collide; the joins compare keys with <=> for the same reason (a NULL key is a key).
`percentile` is exact with the same linear interpolation as quantile_cont; date_trunc returns a
zoned TIMESTAMP, cast back to TIMESTAMP_NTZ so that no zone shifts it."""

SQL = {DUCKDB: SUMMARY_SQL, SPARK: SPARK_SUMMARY_SQL}


LOG_SPAN_SQL = "SELECT min(ts), max(ts) FROM events"


@dataclass(frozen=True)
class HealthThresholds:
    """When a row is not healthy. Defaults from the seeds: "P99 latency > 500ms" pages; a
    spike in infrastructure errors at 2 % might be critical, input-validation errors at 5 %
    may just be a misbehaving client."""

    p99_ms: float = 500.0
    slow_ms: float = 500.0
    """A request over this latency counts in slow_pct."""
    error_pct: dict[str, float] = field(default_factory=lambda: {
        "infrastructure": 2.0,
        "input_validation": 5.0,
        "model_inference": 1.0,
        "timeout": 1.0,
        "business_logic": 5.0,
    })
    """Error rate per error_category (percent of requests) above which a row is critical."""
    min_requests: int = 20
    """Below this many requests no verdict is given: a rate over a handful is noise."""

    def with_error_limits(self, limits: dict[str, float]) -> HealthThresholds:
        unknown = sorted(set(limits) - set(ERROR_CATEGORIES))
        if unknown:
            raise UsageError(f"unknown error category {unknown[0]!r}",
                             hint=f"use one of {', '.join(ERROR_CATEGORIES)}")
        merged = dict(self.error_pct)
        merged.update(limits)
        return HealthThresholds(self.p99_ms, self.slow_ms, merged, self.min_requests)


COLUMNS_AFTER_KEYS = [
    "requests", "mean_per_min", "peak_per_min", "p50", "p95", "p99", "p99_9", "max",
    "error_pct", "top_error", "top_error_pct", "slow_pct", "first_seen", "last_seen",
    "change", "verdict", "reason",
]
UNITS = {
    "mean_per_min": "/min", "peak_per_min": "/min", "p50": "ms", "p95": "ms", "p99": "ms",
    "p99_9": "ms", "max": "ms", "error_pct": "%", "top_error_pct": "%", "slow_pct": "%",
}


def summary(
    con: duckdb.DuckDBPyConnection | Engine,
    filters: Filters,
    *,
    by: list[str] | None = None,
    thresholds: HealthThresholds | None = None,
) -> Result:
    """Health of every model version (and service) in the window. `by` lists the key columns
    (default model_id, model_version, service; e.g. ["service"] for one row per service)."""
    engine = as_engine(con)
    thresholds = thresholds or HealthThresholds()
    groupings = [grouping(name, engine=engine.name) for name in (by or DEFAULT_KEYS)]
    names = [g.column for g in groupings]
    if len(set(names)) != len(names):
        raise UsageError("--by names a column twice")
    keys = ", ".join(g.expression for g in groupings)
    key_values = ", ".join(f"any_value({g.expression}) AS {g.column}" for g in groupings)
    where, params = where_sql(filters, engine)
    request_line, kind_params = event_kinds(engine).request_line_sql(engine.name)
    params = {**params, **kind_params}
    n_keys = len(names)
    key_names = [f"k_{i}" for i in range(n_keys)]
    sql = sql_for(SQL, engine.name).format(
        keys=keys, key_values=key_values, where=where, request_line=request_line,
        minute=bucket_sql("minute_us", engine=engine.name),
        # Spark: the keys projected as k_0, k_1 … (a key may itself be ts or error_category,
        # which the subquery also carries), grouped by name, and joined null-safely.
        keyed=", ".join(f"{g.expression} AS {k}" for g, k in zip(groupings, key_names, strict=True)),
        key_names=", ".join(key_names),
        row_key_names=", ".join(f"r.{k}" for k in key_names),
        category_join=" AND ".join(f"r.{k} <=> c.{k}" for k in key_names),
        minute_join=" AND ".join(f"r.{k} <=> m.{k}" for k in key_names),
    )
    fetched = run(engine, sql, {**params, "slow_ms": thresholds.slow_ms, "minute_us": 60_000_000},
                  filters).fetchall()

    # "Appeared"/"gone" are judged against the window asked for, else the whole log (not the
    # rows shown: with --version v2 the only row would always span its own window).
    log_start, log_end = engine.execute(LOG_SPAN_SQL).fetchone() or (None, None)
    window_start = filters.since or log_start
    window_end = filters.until or log_end
    rows: list[tuple[Any, ...]] = []
    for row in fetched:
        key = tuple(row[1:1 + n_keys])
        (requests, q, max_ms, slow, timed, errors, first_seen, last_seen, by_category,
         peak) = row[1 + n_keys:]
        p50, p95, p99, p999 = q if q else (None, None, None, None)
        cats = {category: int(n) for category, n in (by_category or {}).items()}
        top_error, top_count = max(cats.items(), key=lambda kv: (kv[1], kv[0]),
                                   default=(None, 0))
        minutes = max(1.0, (last_seen - first_seen).total_seconds() / 60.0)
        error_pct = percent(errors, requests)
        verdict, reasons = _verdict(requests, p99, cats, thresholds)
        rows.append((
            *key, requests, requests / minutes, peak, p50, p95, p99, p999, max_ms,
            error_pct, top_error, percent(top_count, requests) if top_error else None,
            percent(slow, timed) if timed else None, first_seen, last_seen,
            _change(first_seen, last_seen, window_start, window_end), verdict,
            "; ".join(reasons),
        ))

    rows.sort(key=lambda r: tuple((k is None, str(k)) for k in r[:n_keys]))
    verdict_i = n_keys + COLUMNS_AFTER_KEYS.index("verdict")
    verdict_notes = [
        f"{' '.join(str(k) for k in r[:n_keys] if k is not None)}: {r[verdict_i]}: "
        f"{r[verdict_i + 1]}"
        for r in sorted(rows, key=lambda r: r[verdict_i] != "critical")
        if r[verdict_i] in ("critical", "warn")
    ]
    notes = [
        f"window: {filters.describe()}",
        REQUEST_NOTE,
        PERCENTILE_NOTE,
        f"verdict: critical when an error category's rate exceeds its limit "
        f"({_limits_text(thresholds)}), warn when p99 > {ms_text(thresholds.p99_ms)}; "
        f"no verdict under {thresholds.min_requests} requests",
        f"slow_pct: share of requests slower than {ms_text(thresholds.slow_ms)}; "
        "mean_per_min: over the minutes the row was active (first_seen to last_seen)",
    ]
    if "model_version" in names and any(r[names.index("model_version")] is None for r in rows):
        unversioned = ""
        if "service" in names:
            services = sorted({str(r[names.index("service")]) for r in rows
                               if r[names.index("model_version")] is None
                               and r[names.index("service")] is not None})
            unversioned = f" ({', '.join(services[:4])}{' …' if len(services) > 4 else ''})" \
                if services else ""
        notes.append(f"rows without a model_version come from lines that do not log one"
                     f"{unversioned}: a caller's end-to-end view of the requests to that model")
    notes.extend(verdict_notes)
    return Result(
        title="Summary by " + ", ".join(names),
        columns=[*names, *COLUMNS_AFTER_KEYS],
        rows=rows,
        notes=notes,
        units=UNITS,
        sections=_lagging_accuracy(engine, filters),
    )


def _lagging_accuracy(engine: Engine, filters: Filters) -> list[Result]:
    """Accuracy by version from delayed labels, when the logs carry any (a lagging signal:
    labels arrive after the predictions they judge). Database only: the label join reads attrs."""
    from ..diagnosis.labels import accuracy_by_version  # diagnosis builds on the investigations

    if not isinstance(engine, DuckDBEngine) or engine.partitioned:
        return []
    accuracy = accuracy_by_version(engine, filters)
    return [accuracy] if accuracy is not None else []


def _verdict(requests: int, p99: float | None, categories: dict[str, int],
             thresholds: HealthThresholds) -> tuple[str, list[str]]:
    if requests < thresholds.min_requests:
        return "few", [f"only {requests} requests"]
    critical: list[str] = []
    for category, count in sorted(categories.items(), key=lambda kv: -kv[1]):
        limit = thresholds.error_pct.get(category)
        rate = percent(count, requests) or 0.0
        if limit is not None and rate > limit:
            critical.append(f"{category} errors {pct_text(rate)} > {pct_text(limit)}")
    warn: list[str] = []
    if p99 is not None and p99 > thresholds.p99_ms:
        warn.append(f"p99 {ms_text(p99)} > {ms_text(thresholds.p99_ms)}")
    if critical:
        return "critical", critical + warn
    if warn:
        return "warn", warn
    return "ok", []


def _limits_text(thresholds: HealthThresholds) -> str:
    return ", ".join(f"{cat} {pct_text(limit)}" for cat, limit in thresholds.error_pct.items())


def _change(first_seen: datetime, last_seen: datetime, window_start: datetime | None,
            window_end: datetime | None) -> str | None:
    """'appeared 02:47:04' / 'gone after 03:20:04' when a row starts or stops well inside the
    window (more than 1 % of it, at least a minute, from its edges)."""
    if window_start is None or window_end is None:
        return None
    margin = max(timedelta(minutes=1), (window_end - window_start) / 100)
    with_date = window_start.date() != window_end.date()
    marks = []
    if first_seen - window_start > margin:
        marks.append(f"appeared {clock_text(first_seen, with_date=with_date)}")
    if window_end - last_seen > margin:
        marks.append(f"gone after {clock_text(last_seen, with_date=with_date)}")
    return ", ".join(marks) or None
