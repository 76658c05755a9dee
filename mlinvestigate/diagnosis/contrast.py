"""Before and after an onset, split by every dimension at once, and what explains the change.

One query per finding reads the request lines of the finding's model in a window around its
onset and aggregates them per interval and per value of each column *dimension*:
model_version, the input-size bucket (powers of ten, as `mlinv latency`) and error_type.
GROUPING SETS make that one scan of the window. When those do not explain the change, a second
read adds record fields found in a sample of the lines (a replica such as host/pod, a client,
a categorical input; numeric ones for drift), from about RECORD_ROWS lines at most. The
per-interval rows let numpy split the window anywhere afterwards (at the onset, or at a model
load a minute before it).

The change of a rate R (error rate, slow share, mean confidence) between the two sides is
split per value v of a dimension (a two-factor shift-share decomposition, exact when every
value's own rate change is significant; one that is not is set to the value's pooled rate):

    R_after − R_before = Σ_v (s_a − s_b)·(r̄_v − R̄)  +  Σ_v (r_a − r_b)·s̄_v
                         └──── mix: v's share moved ──┘   └─ rate: v itself got worse ─┘

with s the share of v's requests, r its rate, bars the mean of both sides (R̄ of the totals).
A mix term is large when a class that was always worse became more common (large inputs, a
new version taking the traffic); a rate term is large when one value got worse (one replica).
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from ..drift.features import FIELD_NAME, json_path_literal
from ..investigations.filters import EventKinds, Filters, run, where_sql
from ..investigations.latency import LOG_BUCKET_SQL
from .changepoints import two_proportion_z

if TYPE_CHECKING:
    import duckdb

MAX_RECORD_DIMENSIONS = 6
MAX_NUMERIC_FIELDS = 8
SAMPLE_ROWS = 1000
"""Request lines read (the first of the window) to find the record fields worth splitting by."""
RECORD_ROWS = 40_000
"""About this many request lines of a window are read for the record fields: reading `attrs`
is the most expensive thing a query here can do (10x a column)."""
MAX_CATEGORIES = 30
"""A record field with more distinct values than this in the sample is an id, not a class."""

REPLICA_NAME = re.compile(
    r"(^|[._])(host|hostname|host_name|pod|pod_name|instance|instance_id|replica|node|node_name|"
    r"container|container_id|worker|shard|zone|region|az|gpu|device)$", re.IGNORECASE)
NOT_A_CLASS = re.compile(r"(^|[._])(msg|message|error|exception|traceback|stack|hash|"
                         r"trace_id|span_id|parent_span_id|request_id|timestamp|time|ts)$",
                         re.IGNORECASE)

RATE_Z = 3.0
"""A value's rate change below this many standard errors counts as no change."""

FIELDS = ("n", "errors", "cat_errors", "slow", "timed", "conf_sum", "conf_n")

CONTRAST_SQL = """
WITH lines AS (
    SELECT epoch_us(ts) // $step_us AS k, service, model_id, {dimensions},
           error_category, latency_ms, confidence
    FROM events
    WHERE {where}
      AND ts >= $lo AND ts < $hi
      AND {scope}
      AND {request_line}
)
SELECT k, service, model_id, GROUPING({names}) AS g, {names},
       count(*) AS n,
       count(error_category) AS errors,
       count(*) FILTER (WHERE error_category = $category) AS cat_errors,
       count(*) FILTER (WHERE error_category IS NULL AND latency_ms > $slow_ms) AS slow,
       count(*) FILTER (WHERE error_category IS NULL AND latency_ms IS NOT NULL) AS timed,
       coalesce(sum(confidence), 0) AS conf_sum,
       count(confidence) AS conf_n
FROM lines
GROUP BY GROUPING SETS ((k, service, model_id), {sets})
"""


@dataclass(frozen=True)
class Dimension:
    name: str
    """As the user would pass it to --by: model_version, input_size, error_type, attrs.host."""
    kind: str
    """'version', 'input', 'replica', 'error' or 'category'."""
    sql: str


COLUMN_DIMENSIONS = (
    Dimension("model_version", "version", "model_version"),
    Dimension("input_size", "input", LOG_BUCKET_SQL),
    Dimension("error_type", "error", "error_type"),
)


@dataclass
class Counts:
    """Per-interval sums of one group (a scope, or one value of a dimension in a scope)."""

    arrays: dict[str, np.ndarray]

    def total(self, name: str, part: slice) -> float:
        return float(self.arrays[name][part].sum())


@dataclass
class Contrast:
    origin_k: int
    step: timedelta
    size: int
    dimensions: list[Dimension]
    scopes: dict[tuple[str | None, str | None], Counts]
    values: dict[tuple[tuple[str | None, str | None], str], dict[Any, Counts]]
    """(scope, dimension name) → value → counts."""
    category: str | None
    slow_ms: float | None
    lo: datetime
    hi: datetime

    def index_of(self, moment: datetime) -> int:
        step_us = self.step // timedelta(microseconds=1)
        us = (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)
        return max(0, min(self.size, us // step_us - self.origin_k))

    def start_of(self, index: int) -> datetime:
        step_us = self.step // timedelta(microseconds=1)
        return datetime(1970, 1, 1) + timedelta(microseconds=(self.origin_k + index) * step_us)


@dataclass
class RecordFields:
    """Record fields found in a sample of a window's request lines."""

    categorical: list[Dimension]
    numeric: list[str]
    """Dotted paths of numeric leaves (features.amount), for drift."""


def record_fields(con: duckdb.DuckDBPyConnection, filters: Filters, scope_sql: str,
                  scope_params: dict[str, Any], request_line: tuple[str, dict[str, Any]],
                  lo: datetime, hi: datetime, consumed: set[str]) -> RecordFields:
    """Categorical record fields (replicas first, then those with the fewest distinct values)
    and numeric ones, from the first SAMPLE_ROWS request lines of the window."""
    where, params = where_sql(filters)
    line_sql, line_params = request_line
    sql = (f"SELECT attrs FROM events WHERE {where} AND ts >= $lo AND ts < $hi AND {scope_sql} "
           f"AND {line_sql} LIMIT $rows")
    texts = run(con, sql, {**params, **scope_params, **line_params, "lo": lo, "hi": hi,
                           "rows": SAMPLE_ROWS}, filters).fetchall()
    seen: dict[str, set[str]] = {}
    numbers: dict[str, int] = {}
    rows = 0
    for (text,) in texts:
        try:
            record = json.loads(text) if text else None
        except ValueError:
            continue
        if not isinstance(record, dict):
            continue
        rows += 1
        for path, value in _leaves(record, consumed):
            if isinstance(value, float):
                numbers[path] = numbers.get(path, 0) + 1
                continue
            values = seen.setdefault(path, set())
            if len(values) <= MAX_CATEGORIES:
                values.add(value)
    chosen = []
    for path, values in seen.items():
        if not 2 <= len(values) <= MAX_CATEGORIES or NOT_A_CLASS.search(path) or not _usable(path):
            continue
        kind = "replica" if REPLICA_NAME.search(path) else "category"
        chosen.append((kind != "replica", len(values), path, kind))
    chosen.sort()
    categorical = [Dimension(f"attrs.{path}", kind,
                             f"json_extract_string(attrs, {json_path_literal(path)})")
                   for _, _, path, kind in chosen[:MAX_RECORD_DIMENSIONS]]
    numeric = sorted(path for path, count in numbers.items()
                     if count >= max(20, rows // 10) and _usable(path) and not NOT_A_CLASS.search(path))
    return RecordFields(categorical, numeric[:MAX_NUMERIC_FIELDS])


def _usable(path: str) -> bool:
    return bool(FIELD_NAME.fullmatch(path)) and path.count(".") < 4


def _leaves(record: dict[str, Any], consumed: set[str], prefix: str = "", depth: int = 0
            ) -> list[tuple[str, str | float]]:
    """(dotted path, value) of the text, boolean and number leaves, skipping column-mapped
    top-level keys. Numbers come back as floats, everything else as text."""
    out: list[tuple[str, str | float]] = []
    for key, value in record.items():
        if depth == 0 and key in consumed:
            continue
        path = f"{prefix}{key}"
        if isinstance(value, dict) and depth < 2:
            out += _leaves(value, consumed, path + ".", depth + 1)
        elif isinstance(value, bool):
            out.append((path, str(value).lower()))
        elif isinstance(value, int | float) and math.isfinite(value):
            out.append((path, float(value)))
        elif isinstance(value, str):
            out.append((path, value))
    return out


def load_contrast(con: duckdb.DuckDBPyConnection, filters: Filters, kinds: EventKinds,
                  scope_sql: str, scope_params: dict[str, Any], dimensions: list[Dimension],
                  lo: datetime, hi: datetime, step: timedelta, category: str | None,
                  slow_ms: float | None) -> Contrast:
    where, params = where_sql(filters)
    request_line, line_params = kinds.request_line_sql()
    names = [f"d{i}" for i in range(len(dimensions))]
    sql = CONTRAST_SQL.format(
        dimensions=", ".join(f"{d.sql} AS {name}" for d, name in zip(dimensions, names, strict=True)),
        names=", ".join(names), sets=", ".join(f"(k, service, model_id, {n})" for n in names),
        where=where, scope=scope_sql, request_line=request_line,
    )
    step_us = max(1, step // timedelta(microseconds=1))
    fetched = run(con, sql, {
        **params, **scope_params, **line_params, "step_us": step_us, "lo": lo, "hi": hi,
        "category": category or "", "slow_ms": slow_ms if slow_ms is not None else math.inf,
    }, filters).fetchall()
    origin = (lo - datetime(1970, 1, 1)) // step
    size = max(1, (hi - datetime(1970, 1, 1)) // step - origin + 1)
    scopes: dict[tuple[str | None, str | None], Counts] = {}
    values: dict[tuple[tuple[str | None, str | None], str], dict[Any, Counts]] = {}
    width = len(dimensions)
    for row in fetched:
        k, service, model_id, g = row[0] - origin, row[1], row[2], row[3]
        if not 0 <= k < size:
            continue
        keys = row[4:4 + width]
        sums = row[4 + width:4 + width + len(FIELDS)]
        scope = (service, model_id)
        if g == (1 << width) - 1:  # every dimension rolled up: the scope's own totals
            counts = scopes.setdefault(scope, _empty(size))
        else:
            # GROUPING's bits are set for rolled-up columns; the one clear bit is the dimension.
            index = next(i for i in range(width) if not g & (1 << (width - 1 - i)))
            by_value = values.setdefault((scope, dimensions[index].name), {})
            counts = by_value.setdefault(keys[index], _empty(size))
        for name, value in zip(FIELDS, sums, strict=True):
            counts.arrays[name][k] += value or 0
    return Contrast(origin, step, size, dimensions, scopes, values, category, slow_ms, lo, hi)


def _empty(size: int) -> Counts:
    return Counts({name: np.zeros(size) for name in FIELDS})


# --------------------------------------------------------------------------- decomposition

MEASURES = {
    "errors": ("errors", "n"),
    "category": ("cat_errors", "n"),
    "slow": ("slow", "timed"),
    "confidence": ("conf_sum", "conf_n"),
}


@dataclass
class Share:
    """One value of a dimension on the two sides of a split."""

    value: Any
    n_before: float
    n_after: float
    x_before: float
    x_after: float
    share_before: float
    share_after: float
    rate_before: float | None
    rate_after: float | None
    mix: float
    rate: float
    share_z: float
    rate_z: float


@dataclass
class Decomposition:
    dimension: Dimension
    scope: tuple[str | None, str | None]
    total_before: float
    total_after: float
    n_before: float
    n_after: float
    shares: list[Share] = field(default_factory=list)

    @property
    def change(self) -> float:
        return self.total_after - self.total_before

    @property
    def mix(self) -> float:
        return sum(s.mix for s in self.shares)


def decompose(contrast: Contrast, scope: tuple[str | None, str | None], dimension: Dimension,
              measure: str, before: slice, after: slice, sd: float | None = None
              ) -> Decomposition | None:
    """Split the change of `measure` between the two sides over the values of `dimension`.
    `sd` is the per-request standard deviation for a mean (confidence); rates are binomial."""
    by_value = contrast.values.get((scope, dimension.name))
    if not by_value:
        return None
    x_name, n_name = MEASURES[measure]
    sides = {v: (c.total(n_name, before), c.total(n_name, after), c.total(x_name, before),
                 c.total(x_name, after)) for v, c in by_value.items()}
    nb = sum(s[0] for s in sides.values())
    na = sum(s[1] for s in sides.values())
    if nb <= 0 or na <= 0:
        return None
    total_b = sum(s[2] for s in sides.values()) / nb
    total_a = sum(s[3] for s in sides.values()) / na
    mean_total = (total_b + total_a) / 2
    out = Decomposition(dimension, scope, total_b, total_a, nb, na)
    for value, (vb, va, xb, xa) in sides.items():
        if vb <= 0 and va <= 0:
            continue  # only outside the two sides (before a load, say)
        rb = xb / vb if vb > 0 else None
        ra = xa / va if va > 0 else None
        rb_, ra_ = (rb if rb is not None else ra), (ra if ra is not None else rb)
        assert rb_ is not None and ra_ is not None
        if sd is None:
            rate_z = two_proportion_z(xb, vb, xa, va)
        elif vb > 0 and va > 0 and sd > 0:
            rate_z = (ra_ - rb_) / (sd * math.sqrt(1 / vb + 1 / va))
        else:
            rate_z = 0.0
        if abs(rate_z) < RATE_Z:
            # A value's own change that noise could make (8 large inputs before, none slow by
            # chance) is not credited: both sides get its pooled rate, so the shift of its
            # share carries the change.
            rb_ = ra_ = (xb + xa) / (vb + va)
        sb, sa = vb / nb, va / na
        mix = (sa - sb) * ((rb_ + ra_) / 2 - mean_total)
        rate = (ra_ - rb_) * (sb + sa) / 2
        out.shares.append(Share(value, vb, va, xb, xa, sb, sa, rb, ra, mix, rate,
                                two_proportion_z(vb, nb, va, na), rate_z))
    out.shares.sort(key=lambda s: -abs(s.mix + s.rate))
    return out


# --------------------------------------------------------------------------- record fields

RECORD_SQL = """
SELECT k, service, model_id, error_category, latency_ms, confidence, {columns}
FROM (
    SELECT epoch_us(ts) // $step_us AS k, service, model_id, error_category, latency_ms,
           confidence, json_extract_string(attrs, [{paths}]) AS v
    FROM events
    WHERE {where}
      AND ({slices})
      AND {scope}
      AND {request_line}
)
"""
SLICES_PER_SIDE = 8


def time_slices(lo: datetime, split: datetime, hi: datetime, expected_rows: float
                ) -> list[tuple[datetime, datetime]]:
    """Short stretches spread over each side of the split holding about RECORD_ROWS lines in
    all, or the whole window when it holds fewer. Time ranges, not a row sample: DuckDB skips
    whole blocks outside them without decompressing their records, which a filter on rowid
    does not (1/24 of the rows by rowid cost as much as a quarter)."""
    if expected_rows <= RECORD_ROWS:
        return [(lo, hi)]
    seconds = (hi - lo).total_seconds()
    width = seconds * RECORD_ROWS / expected_rows / (2 * SLICES_PER_SIDE)
    slices = []
    for start, end in ((lo, split), (split, hi)):
        span = (end - start).total_seconds()
        if span <= 0:
            continue
        for i in range(SLICES_PER_SIDE):
            middle = start + timedelta(seconds=span * (i + 0.5) / SLICES_PER_SIDE)
            half = timedelta(seconds=min(width, span / SLICES_PER_SIDE) / 2)
            slices.append((max(start, middle - half), min(end, middle + half)))
    return slices


@dataclass
class RecordSample:
    """The record fields of (a sample of) a window's request lines, per line."""

    k: np.ndarray
    """Interval index within the contrast window."""
    fields: dict[str, np.ndarray]
    """Path → object array of the text values (None where absent)."""
    sliced: bool
    """True when only short stretches of the window were read (see time_slices)."""
    rows: int


def add_record_fields(con: duckdb.DuckDBPyConnection, filters: Filters, kinds: EventKinds,
                      contrast: Contrast, scope_sql: str, scope_params: dict[str, Any],
                      fields: RecordFields, split: datetime, expected_rows: float
                      ) -> RecordSample | None:
    """Read the record fields of the contrast window (short stretches of it when it holds more
    than RECORD_ROWS request lines), add the categorical ones to `contrast` as dimensions, and
    return the values (numeric fields are for drift)."""
    paths = [d.name.removeprefix("attrs.") for d in fields.categorical] + fields.numeric
    if not paths:
        return None
    where, params = where_sql(filters)
    request_line, line_params = kinds.request_line_sql()
    slices = time_slices(contrast.lo, split, contrast.hi, expected_rows)
    n_text = len(fields.categorical)
    sql = RECORD_SQL.format(
        columns=", ".join(f"v[{i + 1}] AS f{i}" if i < n_text else f"TRY_CAST(v[{i + 1}] AS DOUBLE) AS f{i}"
                          for i in range(len(paths))),
        paths=", ".join(json_path_literal(p) for p in paths), where=where, scope=scope_sql,
        request_line=request_line,
        slices=" OR ".join(f"(ts >= $s_lo{i} AND ts < $s_hi{i})" for i in range(len(slices))),
    )
    bind = {**params, **scope_params, **line_params,
            "step_us": max(1, contrast.step // timedelta(microseconds=1))}
    for i, (low, high) in enumerate(slices):
        bind[f"s_lo{i}"], bind[f"s_hi{i}"] = low, high
    columns = run(con, sql, bind, filters).fetchnumpy()
    k = np.asarray(columns["k"], dtype=np.int64) - contrast.origin_k
    keep = (k >= 0) & (k < contrast.size)
    rows = int(keep.sum())
    if rows == 0:
        return None
    k = k[keep]
    category = _text(columns["error_category"])[keep]
    latency = _floats(columns["latency_ms"])[keep]
    confidence = _floats(columns["confidence"])[keep]
    scope = list(zip(_text(columns["service"])[keep], _text(columns["model_id"])[keep], strict=True))
    is_error = category != None  # noqa: E711  (elementwise on an object array)
    measures = {
        "n": np.ones(rows),
        "errors": is_error.astype(float),
        "cat_errors": (category == contrast.category).astype(float),
        "slow": ((~is_error) & (latency > (contrast.slow_ms if contrast.slow_ms is not None
                                           else math.inf))).astype(float),
        "timed": ((~is_error) & ~np.isnan(latency)).astype(float),
        "conf_sum": np.nan_to_num(confidence),
        "conf_n": (~np.isnan(confidence)).astype(float),
    }
    values = {path: (_text(columns[f"f{i}"]) if i < n_text else _floats(columns[f"f{i}"]))[keep]
              for i, path in enumerate(paths)}
    scopes = sorted(set(scope), key=str)
    position = {s: i for i, s in enumerate(scopes)}
    scope_ids = np.array([position[s] for s in scope])
    for dimension in fields.categorical:
        column = values[dimension.name.removeprefix("attrs.")]
        names, codes = np.unique(np.array([_NONE if v is None else v for v in column], dtype=str),
                                 return_inverse=True)
        cells = len(names) * contrast.size
        for s_id, s_key in enumerate(scopes):
            in_scope = scope_ids == s_id
            index = codes[in_scope] * contrast.size + k[in_scope]
            # One bincount per measure gives every value × interval sum at once.
            sums = {name: np.bincount(index, weights=measures[name][in_scope], minlength=cells)
                    .reshape(len(names), contrast.size) for name in FIELDS}
            by_value: dict[Any, Counts] = {}
            for code in np.unique(codes[in_scope]):
                value = None if names[code] == _NONE else str(names[code])
                by_value[value] = Counts({name: sums[name][code] for name in FIELDS})
            if len(by_value) > 1 or None not in by_value:
                contrast.values[(s_key, dimension.name)] = by_value
        contrast.dimensions.append(dimension)
    return RecordSample(k, values, len(slices) > 1, rows)


_NONE = "\x00"
"""Stands for an absent value while values are sorted as text."""


def _text(values: Any) -> np.ndarray:
    if isinstance(values, np.ma.MaskedArray):
        out = np.asarray(values.astype(object))
        out[np.ma.getmaskarray(values)] = None
        return out
    return np.asarray(values, dtype=object)


def _floats(values: Any) -> np.ndarray:
    if isinstance(values, np.ma.MaskedArray):
        return values.astype(float).filled(np.nan)
    return np.asarray(values, dtype=float)
