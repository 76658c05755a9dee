"""The per-interval signals of every service × model, from one scan of the events.

One GROUP BY of the request lines over (interval, service, model_id, latency bucket, error
category) gives, per interval and *scope* (a service's lines for one model): request lines,
errors per category, mean confidence, and a latency histogram of the
successful request lines in quarter-octave buckets (each 19 % wide; failures are counted as
errors, so a burst of timeouts is not also read as a slowdown). Everything diagnose detects is
computed from these arrays in numpy; the latency share over a threshold and approximate
quantiles come from the histogram, so no second scan is needed to pick a threshold. Exact
percentiles for the numbers that are reported come from later queries over the few minutes
around each onset.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from ..investigations.filters import EventKinds, Filters, run, where_sql

if TYPE_CHECKING:
    import duckdb

BUCKETS_PER_OCTAVE = 4
LATENCY_BUCKET_SQL = (
    f"CASE WHEN latency_ms > 0 THEN CAST(floor(log2(greatest(latency_ms, 0.001)) "
    f"* {BUCKETS_PER_OCTAVE}) AS INTEGER) END"
)
"""Bucket b holds latencies from 2^(b/4) ms up to 2^((b+1)/4) ms."""
NO_BUCKET = -(10**6)
"""Stands for NULL (no latency) in the fetched bucket column."""

SERIES_SQL = """
SELECT any_value(k) AS k,
       any_value(service) AS service,
       any_value(model_id) AS model_id,
       any_value(bucket) AS bucket,
       any_value(category) AS category,
       count(*) AS n,
       coalesce(sum(confidence), 0) AS conf_sum,
       count(confidence) AS conf_n
FROM (
    SELECT epoch_us(ts) // $step_us AS k, service, model_id,
           CASE WHEN error_category IS NULL THEN {latency_bucket} END AS bucket,
           error_category AS category, confidence
    FROM events
    WHERE {where}
      AND {request_line}
)
GROUP BY hash(k, service, model_id, bucket, category)
"""
"""Grouped on one hash of the keys and read back with any_value, like the investigations (text
keys group 1.5-2x slower on 10 M events). Only request lines: traffic is read from them too,
which saves the scan of the start lines."""


@dataclass(frozen=True)
class Scope:
    service: str | None
    model_id: str | None

    @property
    def label(self) -> str:
        if self.model_id is None:
            return f"{self.service or '?'}"
        return f"{self.model_id} @ {self.service or '?'}"


@dataclass
class Series:
    origin_k: int
    """Interval number (epoch µs // step µs) of index 0."""
    step: timedelta
    scopes: list[Scope]
    requests: np.ndarray
    """[scope, interval] request lines."""
    errors: dict[str, np.ndarray]
    """error category → [scope, interval] request lines with that category."""
    histogram: np.ndarray
    """[scope, interval, bucket] request lines per latency bucket."""
    bucket0: int
    """Latency bucket number of histogram index 0."""
    conf_n: np.ndarray
    conf_sum: np.ndarray

    @property
    def size(self) -> int:
        return self.requests.shape[1]

    def start_of(self, index: int) -> datetime:
        step_us = self.step // timedelta(microseconds=1)
        return datetime(1970, 1, 1) + timedelta(microseconds=(self.origin_k + index) * step_us)

    def index_of(self, moment: datetime) -> int:
        step_us = self.step // timedelta(microseconds=1)
        us = (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)
        return us // step_us - self.origin_k

    def all_errors(self) -> np.ndarray:
        total = np.zeros_like(self.requests)
        for counts in self.errors.values():
            total = total + counts
        return total

    def bucket_edge_ms(self, index: int) -> float:
        """Lower edge (ms) of histogram column `index`."""
        return float(2.0 ** ((self.bucket0 + index) / BUCKETS_PER_OCTAVE))

    def latency_quantile(self, scope: int, q: float, intervals: slice = slice(None)) -> float | None:
        """Approximate quantile (upper edge of the bucket holding it) of a scope's latencies."""
        counts = self.histogram[scope, intervals].sum(axis=0)
        total = counts.sum()
        if total == 0:
            return None
        index = int(np.searchsorted(np.cumsum(counts), q * total))
        return self.bucket_edge_ms(min(index + 1, len(counts)))

    def slow_counts(self, scope: int, threshold_ms: float) -> tuple[np.ndarray, np.ndarray]:
        """Per interval: request lines above the bucket edge at or above `threshold_ms`, and
        the request lines with a latency."""
        hist = self.histogram[scope]
        edges = np.array([self.bucket_edge_ms(i) for i in range(hist.shape[1])])
        first = int(np.searchsorted(edges, threshold_ms - 1e-9))
        return hist[:, first:].sum(axis=1), hist.sum(axis=1)


def load_series(con: duckdb.DuckDBPyConnection, filters: Filters, kinds: EventKinds,
                step: timedelta, start: datetime, end: datetime) -> Series:
    """Scan the events once and shape the per-interval arrays of every scope."""
    where, params = where_sql(filters)
    request_line, kind_params = kinds.request_line_sql()
    step_us = max(1, step // timedelta(microseconds=1))
    sql = SERIES_SQL.format(where=where, request_line=request_line, latency_bucket=LATENCY_BUCKET_SQL)
    columns = run(con, sql, {**params, **kind_params, "step_us": step_us}, filters).fetchnumpy()
    origin = _us(start) // step_us
    size = max(1, _us(end) // step_us - origin + 1)
    k = np.asarray(columns["k"], dtype=np.int64) - origin
    inside = (k >= 0) & (k < size)
    services = _objects(columns["service"])
    models = _objects(columns["model_id"])
    scope_keys = sorted({(s, m) for s, m, keep in zip(services, models, inside, strict=True) if keep},
                        key=lambda sm: (sm[1] is None, str(sm[1]), str(sm[0])))
    scope_index = {key: i for i, key in enumerate(scope_keys)}
    scopes = [Scope(s, m) for s, m in scope_keys]
    n_scopes = len(scopes)
    buckets = _masked_ints(columns["bucket"])
    categories = _objects(columns["category"])
    counts = np.asarray(columns["n"], dtype=np.float64)
    present = buckets[inside & (buckets > NO_BUCKET)]
    bucket0 = int(present.min()) if len(present) else 0
    width = int(present.max()) - bucket0 + 1 if len(present) else 1

    shape = (n_scopes, size)
    requests = np.zeros(shape)
    conf_n, conf_sum = np.zeros(shape), np.zeros(shape)
    histogram = np.zeros((n_scopes, size, width))
    errors: dict[str, np.ndarray] = {}
    scope_of = np.array([scope_index.get((s, m), -1) for s, m in zip(services, models, strict=True)],
                        dtype=np.int64)
    rows = np.nonzero(inside & (scope_of >= 0))[0]
    sc, kk = scope_of[rows], k[rows]
    np.add.at(requests, (sc, kk), counts[rows])
    np.add.at(conf_n, (sc, kk), np.asarray(columns["conf_n"], dtype=np.float64)[rows])
    np.add.at(conf_sum, (sc, kk), np.asarray(columns["conf_sum"], dtype=np.float64)[rows])
    timed = buckets[rows] > NO_BUCKET
    np.add.at(histogram, (sc[timed], kk[timed], buckets[rows][timed] - bucket0), counts[rows][timed])
    for category in sorted({c for c in categories[rows] if c is not None}):
        mask = categories[rows] == category
        counts_c = np.zeros(shape)
        np.add.at(counts_c, (sc[mask], kk[mask]), counts[rows][mask])
        errors[str(category)] = counts_c
    return Series(origin, step, scopes, requests, errors, histogram, bucket0,
                  conf_n, conf_sum)


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def _objects(values: Any) -> np.ndarray:
    """A fetched text column as an object array with None for NULL."""
    if isinstance(values, np.ma.MaskedArray):
        out = values.astype(object)
        out[values.mask] = None
        return np.asarray(out, dtype=object)
    return np.asarray(values, dtype=object)


def _masked_ints(values: Any) -> np.ndarray:
    """A fetched integer column with NULL as NO_BUCKET."""
    if isinstance(values, np.ma.MaskedArray):
        return values.astype(np.int64).filled(NO_BUCKET)
    return np.asarray(values, dtype=np.int64)
