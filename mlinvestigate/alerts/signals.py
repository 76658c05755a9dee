"""Each signal's value per evaluation step and group, computed in DuckDB in one GROUP BY.

Evaluation steps are slots of `step` aligned to the epoch; the evaluation at the end of slot s
sees the request lines with ts in [end − window, end), the window being a whole number of
steps. Two query shapes, written once:

* **additive** signals (requests, errors, error_rate, throughput, slow_rate, mean, burn) are
  a numerator and a denominator summed per slot in SQL; numpy adds the slots of each window
  (a rolling sum), so a 3-day SLO window costs no more than a 1-minute one;
* **order statistics** (pNN, min, max) cannot be added up, so every line is counted in each
  of the `window / step` evaluations that see it (a join with `range(k)`), and
  `quantile_cont` (exact, the same interpolation as numpy and the rest of mlinv) runs once
  per slot and group.

psi comes from the drift code: bin counts per slot against the reference's bins
(:func:`mlinvestigate.drift.compare.run_scan`, as `mlinv drift --every`), added up over each
window and turned into PSI by the same binning, outside policy and smoothing as
:func:`~mlinvestigate.drift.compare.compare_feature` (only PSI: its other statistics would cost
milliseconds per evaluation).

A value is NaN when the window holds nothing to compute it from (no lines, no latencies).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from ..drift import stats
from ..errors import EmptyResult, UsageError
from ..investigations.filters import Filters, Grouping, run, where_sql
from .expr import ERROR_LABELS, LINE_LABELS, Matcher, Signal

if TYPE_CHECKING:
    import duckdb

    from ..drift.compare import GroupSide, ScanOutcome
    from ..drift.measures import Options

EPOCH = datetime(1970, 1, 1)

GroupKey = tuple[Any, ...]

COUNT_SIGNALS = frozenset({"requests", "errors", "throughput"})
"""Signals that are counts: 0 is a value, and min_requests does not apply."""


@dataclass(frozen=True)
class Grid:
    """Evaluation slots first_slot … first_slot + slots − 1 of step_us microseconds since
    the epoch; evaluation i happens at the end of its slot."""

    step_us: int
    first_slot: int
    slots: int

    def steps(self, span: timedelta) -> int:
        return span // timedelta(microseconds=self.step_us)

    def eval_time(self, i: int) -> datetime:
        return EPOCH + timedelta(microseconds=(self.first_slot + i + 1) * self.step_us)

    def slot_start(self, slot: int) -> datetime:
        return EPOCH + timedelta(microseconds=slot * self.step_us)


@dataclass
class Series:
    """One group's values over the grid (NaN: no value), and how many lines or values each
    rests on (for min_requests)."""

    values: np.ndarray
    support: np.ndarray


@dataclass
class Scope:
    """What every signal of a rule shares: the events (filters without a time range, the
    request-line condition) and the group-by columns."""

    filters: Filters
    lines_sql: str
    lines_params: dict[str, Any]
    by: tuple[Grouping, ...] = ()
    reference: str | None = None
    """psi's reference window text (START..END); None: the first quarter of the history."""
    notes: list[str] = field(default_factory=list)
    """Sentences for the output (signals without data, …)."""


ADDITIVE_SQL = """
SELECT {keys}
       epoch_us(ts) // $step_us AS slot,
       {terms}
FROM events
WHERE {where}
  AND ts >= $lo AND ts < $hi
  AND {lines}
GROUP BY ALL
"""
"""Numerators and denominators per slot and group of every additive signal selecting the same
lines (`{terms}`: `count(*) FILTER (…) AS t0, count(*) AS t1, …`): rules share one scan."""

ORDER_LINES_SQL = """
WITH lines AS (
    SELECT {keys}
           epoch_us(ts) // $step_us AS slot,
           {column} AS x
    FROM events
    WHERE {where}
      AND ts >= $lo AND ts < $hi
      AND {lines}
      AND {column} IS NOT NULL
)"""
"""The lines of an order statistic: their group, slot and value (both query shapes start here)."""

ORDER_SQL = ORDER_LINES_SQL + """
SELECT {key_names}
       slot + shift AS slot,
       count(*) AS den,
       {aggregate} AS num
FROM lines, range($width) AS r(shift)
WHERE slot + shift >= $first_slot AND slot + shift < $end_slot
GROUP BY ALL
"""
"""Each line stands in the `width` evaluations whose window holds it (slot … slot+width−1)."""

_AGGREGATES = {"quantile": "quantile_cont(x, $q)", "min": "min(x)", "max": "max(x)"}
ORDER_SIGNALS = frozenset(_AGGREGATES)


def compute(con: duckdb.DuckDBPyConnection, signal: Signal, grid: Grid, scope: Scope
            ) -> dict[GroupKey, Series]:
    """The signal's value per group over `grid`."""
    width = grid.steps(signal.window) if signal.window is not None else 1
    if signal.name == "psi":
        return _psi(con, signal, grid, scope, width)
    if signal.name in _AGGREGATES:
        return _order_statistic(con, signal, grid, scope, width)
    return compute_additive(con, [signal], grid, scope)[signal]


def _time_params(grid: Grid, width: int) -> dict[str, Any]:
    lo_slot = grid.first_slot - (width - 1)
    return {"step_us": grid.step_us, "lo": grid.slot_start(lo_slot),
            "hi": grid.slot_start(grid.first_slot + grid.slots)}


def _base(signal: Signal, scope: Scope) -> tuple[str, str, str, dict[str, Any]]:
    """(key select list, where, lines condition, params) shared by both query shapes."""
    where, params = where_sql(scope.filters)
    keys = "".join(f"{g.expression} AS g{i}, " for i, g in enumerate(scope.by))
    lines = [scope.lines_sql]
    params.update(scope.lines_params)
    for i, matcher in enumerate(_outer(signal).line_matchers()):
        lines.append(_match_sql(LINE_LABELS[matcher.label], matcher, f"l{i}", params))
    return keys, where, " AND ".join(lines), params


def _outer(signal: Signal) -> Signal:
    """The signal whose labels select lines: burn's inner ratio, else the signal itself."""
    return signal.inner if signal.name == "burn" and signal.inner is not None else signal


def _match_sql(column: str, matcher: Matcher, name: str, params: dict[str, Any]) -> str:
    params[name] = matcher.value
    # != keeps lines without the label (NULL), as a Prometheus matcher does.
    return f"{column} = ${name}" if matcher.op == "=" else f"{column} IS DISTINCT FROM ${name}"


def _ratio_terms(signal: Signal, params: dict[str, Any], prefix: str = "") -> tuple[str, str]:
    """(numerator, denominator) SQL of an additive signal; its parameters' names start with
    `prefix` (several signals share one statement)."""
    if signal.name == "burn":
        assert signal.inner is not None
        return _ratio_terms(signal.inner, params, prefix)
    if signal.name in ("errors", "error_rate"):
        conditions = ["error_category IS NOT NULL"]
        for i, matcher in enumerate(signal.error_matchers()):
            conditions.append(_match_sql(ERROR_LABELS[matcher.label], matcher, f"{prefix}e{i}", params))
        return f"count(*) FILTER (WHERE {' AND '.join(conditions)})", "count(*)"
    if signal.name == "slow_rate":
        params[f"{prefix}limit_ms"] = signal.limit_ms
        return f"count(*) FILTER (WHERE latency_ms > ${prefix}limit_ms)", "count(latency_ms)"
    if signal.name == "mean":
        return f"sum({signal.column})", f"count({signal.column})"
    return "count(*)", "count(*)"  # requests, throughput


def additive_batch_key(signal: Signal) -> tuple[Matcher, ...] | None:
    """Additive signals with the same key (the same lines) can share one scan; None: not
    an additive signal."""
    if signal.name == "psi" or signal.name in _AGGREGATES:
        return None
    return _outer(signal).line_matchers()


def compute_additive(con: duckdb.DuckDBPyConnection, batch: Sequence[Signal], grid: Grid, scope: Scope
                     ) -> dict[Signal, dict[GroupKey, Series]]:
    """Each additive signal's value per group over `grid`, all in one scan (the signals must
    share `additive_batch_key`): the numerators and denominators per slot, then a rolling sum
    over each signal's own window."""
    keys, where, lines, params = _base(batch[0], scope)
    aliases: dict[str, str] = {}
    columns: list[tuple[Signal, str, str, int]] = []  # signal, numerator alias, denominator alias, width
    for n, signal in enumerate(batch):
        terms = _ratio_terms(signal, params, prefix=f"s{n}_" if n else "")
        num, den = (aliases.setdefault(term, f"t{len(aliases)}") for term in terms)
        width = grid.steps(signal.window) if signal.window is not None else 1
        columns.append((signal, num, den, width))
    widest = max(width for _, _, _, width in columns)
    params.update(_time_params(grid, widest))
    terms = ",\n       ".join(f"{term} AS {alias}" for term, alias in aliases.items())
    sql = ADDITIVE_SQL.format(keys=keys, where=where, lines=lines, terms=terms)
    rows = run(con, sql, params, scope.filters).fetchall()
    at = {alias: len(scope.by) + 1 + i for i, alias in enumerate(aliases.values())}
    out: dict[Signal, dict[GroupKey, Series]] = {}
    for signal, num_alias, den_alias, width in columns:
        # Per-slot sums over the grid plus the width−1 slots before it, then a rolling sum.
        length = grid.slots + width - 1
        first = grid.first_slot - (width - 1)
        sums: dict[GroupKey, tuple[np.ndarray, np.ndarray]] = {}
        for row in rows:
            slot = row[len(scope.by)]
            if slot < first:
                continue  # read for a wider window of the batch
            key = tuple(row[: len(scope.by)])
            nums, dens = sums.setdefault(key, (np.zeros(length), np.zeros(length)))
            nums[slot - first] += float(row[at[num_alias]] or 0)
            dens[slot - first] += float(row[at[den_alias]] or 0)
        window_s = width * grid.step_us / 1e6
        series: dict[GroupKey, Series] = {}
        for key, (nums, dens) in sums.items():
            num, den = rolling_sum(nums, width), rolling_sum(dens, width)
            series[key] = Series(additive_value(signal, num, den, window_s), den)
        out[signal] = series
    return out


def rolling_sum(values: np.ndarray, width: int) -> np.ndarray:
    """Sums of `width` consecutive values: element i covers values[i : i + width]."""
    totals = np.concatenate(([0.0], np.cumsum(values)))
    return totals[width:] - totals[:-width]


def additive_value(signal: Signal, num: np.ndarray, den: np.ndarray, window_s: float) -> np.ndarray:
    """A signal's value from its window sums; NaN where a ratio has nothing under it."""
    if signal.name in ("requests", "errors"):
        return num.copy()
    if signal.name == "throughput":
        return num / window_s
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)
    if signal.name == "burn":
        assert signal.objective is not None
        return ratio / (1.0 - signal.objective)
    return ratio


ORDER_VALUES_PER_STATEMENT = 4_000_000
"""Values (lines × the windows each stands in) one order-statistic statement may hold. A
quantile keeps every value of its group in memory, and on 10M events p99 over 5-minute
windows held 33M of them: past the 1 GB memory limit. Longer histories are computed in time
chunks, each exact, so memory no longer grows with the history."""

SLOT_COUNTS_SQL = """
SELECT {keys}
       epoch_us(ts) // $step_us AS slot,
       count(*) AS n
FROM events
WHERE {where}
  AND ts >= $lo AND ts < $hi
  AND {lines}
  AND {column} IS NOT NULL
GROUP BY ALL
"""

TAIL_SQL = ORDER_LINES_SQL + """,
per_slot AS (
    SELECT {key_names}
           slot,
           count(*) AS n,
           {end}(x, $keep) AS kept
    FROM lines
    GROUP BY ALL
),
windows AS (
    SELECT {key_names}
           slot + shift AS slot,
           sum(n) AS den,
           list_sort(flatten(list(kept)), '{order}') AS kept,
           (sum(n) - 1) * $q AS h
    FROM per_slot, range($width) AS r(shift)
    WHERE slot + shift >= $first_slot AND slot + shift < $end_slot
    GROUP BY ALL
),
ends AS (
    SELECT {key_names}
           slot,
           den,
           kept[{lower}] AS lower,
           kept[{upper}] AS upper,
           h - floor(h) AS fraction
    FROM windows
)
SELECT {key_names}
       slot,
       den,
       CASE WHEN fraction = 0 THEN lower ELSE lower + (upper - lower) * fraction END AS num
FROM ends
"""
"""An order statistic near one end of the values (p90 and up, p10 and down, min, max) from
the `$keep` values nearest that end in each slot: every one of a window's k highest values
is among the k highest of its own slot. So only those stand in each window (p99 over 10
minutes: a tenth of the lines instead of ten times them), and the value at rank (n − 1)·q of
the whole window is read from the kept list with `quantile_cont`'s interpolation."""

TAIL_POSITIONS = {
    # (aggregate keeping the values nearest the end, sort order, 1-based list index of the
    # lower and upper neighbours of rank h, counted from that end)
    "top": ("max", "DESC", "CAST(den - floor(h) AS BIGINT)", "CAST(den - ceil(h) AS BIGINT)"),
    "bottom": ("min", "ASC", "CAST(floor(h) AS BIGINT) + 1", "CAST(ceil(h) AS BIGINT) + 1"),
}

TAIL_SHARE = 0.5
"""The tail path is taken when it holds at most this share of the values the plain path would
(for a median it would hold them all, and list sorting is slower than quantile_cont)."""


def _quantile_of(signal: Signal) -> float:
    if signal.name == "min":
        return 0.0
    if signal.name == "max":
        return 1.0
    return (signal.percentile or 0) / 100


def _tail_keep(counts: dict[GroupKey, np.ndarray], q: float, width: int) -> int:
    """Values to keep per slot so that every window's rank (n − 1)·q and its neighbour are
    among them, counted from the nearer end."""
    keep = 1
    for per_slot in counts.values():
        n = rolling_sum(per_slot, width)
        n = n[n > 0]
        if not len(n):
            continue
        h = (n - 1) * q
        need = n - np.floor(h) if q >= 0.5 else np.ceil(h) + 1
        keep = max(keep, int(need.max()))
    return keep


def _order_statistic(con: duckdb.DuckDBPyConnection, signal: Signal, grid: Grid, scope: Scope, width: int
                     ) -> dict[GroupKey, Series]:
    keys, where, lines, params = _base(signal, scope)
    q = _quantile_of(signal)
    if signal.name == "quantile":
        params["q"] = q
    key_names = "".join(f"g{i}, " for i in range(len(scope.by)))
    spans = _time_params(grid, width)
    counting = {k: v for k, v in params.items() if k != "q"} | {"step_us": grid.step_us, "lo": spans["lo"],
                                                                "hi": spans["hi"]}
    counts: dict[GroupKey, np.ndarray] = {}
    first = grid.first_slot - (width - 1)
    for row in run(con, SLOT_COUNTS_SQL.format(keys=keys, where=where, lines=lines, column=signal.column),
                   counting, scope.filters).fetchall():
        per_slot = counts.setdefault(tuple(row[: len(scope.by)]), np.zeros(grid.slots + width - 1))
        per_slot[row[len(scope.by)] - first] += row[-1]
    total = int(sum(c.sum() for c in counts.values()))
    plain_values = total * width
    keep = _tail_keep(counts, q, width)
    tail_values = int(sum(np.minimum(c, keep).sum() for c in counts.values())) * width
    if tail_values <= TAIL_SHARE * plain_values:
        end, order, lower, upper = TAIL_POSITIONS["top" if q >= 0.5 else "bottom"]
        sql = TAIL_SQL.format(keys=keys, key_names=key_names, where=where, lines=lines, column=signal.column,
                              end=end, order=order, lower=lower, upper=upper)
        params.update(keep=keep, q=q)
        held = tail_values
    else:
        sql = ORDER_SQL.format(keys=keys, key_names=key_names, where=where, lines=lines,
                               column=signal.column, aggregate=_AGGREGATES[signal.name])
        held = plain_values
    chunks = max(1, min(grid.slots, -(-held // ORDER_VALUES_PER_STATEMENT)))
    out: dict[GroupKey, Series] = {}
    for k in range(chunks):
        # Slots [start, end) of this chunk; its lines reach back width − 1 slots before it.
        start = grid.first_slot + grid.slots * k // chunks
        end_slot = grid.first_slot + grid.slots * (k + 1) // chunks
        chunk = Grid(grid.step_us, start, end_slot - start)
        chunk_params = dict(params) | _time_params(chunk, width)
        chunk_params.update(width=width, first_slot=start, end_slot=end_slot)
        for row in run(con, sql, chunk_params, scope.filters).fetchall():
            key = tuple(row[: len(scope.by)])
            slot, den, value = row[len(scope.by):]
            series = out.setdefault(key, Series(np.full(grid.slots, np.nan), np.zeros(grid.slots)))
            series.values[slot - grid.first_slot] = value
            series.support[slot - grid.first_slot] = den
    return out


# --------------------------------------------------------------------------- psi

PSI_KEYS = {"model_id": "model", "model_version": "version", "service": "service"}
"""Group-by columns psi accepts, and the Filters field each becomes."""

PSI_GROUPS_SQL = """
SELECT DISTINCT {columns}
FROM events
WHERE {where}
  AND ts >= $lo AND ts < $hi
  AND {present}
"""
"""The groups a psi rule compares, each then scanned with its own reference (drift's scan
takes one reference per call)."""


def _psi(con: duckdb.DuckDBPyConnection, signal: Signal, grid: Grid, scope: Scope, width: int
         ) -> dict[GroupKey, Series]:
    by = [g.column for g in scope.by]
    filters = scope.filters
    for matcher in signal.matchers:
        field_name = PSI_KEYS[LINE_LABELS[matcher.label]]
        if getattr(filters, field_name) not in (None, matcher.value):
            return {}  # the command's filters exclude these events
        filters = replace(filters, **{field_name: matcher.value})
    out: dict[GroupKey, Series] = {}
    for key in _psi_groups(con, grid, scope, filters, width):
        group = replace(filters, **{PSI_KEYS[c]: v for c, v in zip(by, key, strict=True)})
        try:
            series = _psi_series(con, signal, grid, group, scope.reference, width)
        except (EmptyResult, UsageError) as exc:
            label = " ".join(str(v) for v in key)
            scope.notes.append(f"{signal.text()}{' for ' + label if label else ''}: no value ({exc})")
            continue
        out[key] = series
    return out


def _psi_groups(con: duckdb.DuckDBPyConnection, grid: Grid, scope: Scope, filters: Filters, width: int
                ) -> list[GroupKey]:
    if not scope.by:
        return [()]
    where, params = where_sql(filters)
    times = _time_params(grid, width)
    params.update(lo=times["lo"], hi=times["hi"])
    sql = PSI_GROUPS_SQL.format(columns=", ".join(g.expression for g in scope.by), where=where,
                                present=" AND ".join(f"{g.expression} IS NOT NULL" for g in scope.by))
    return [tuple(row) for row in run(con, sql, params, filters).fetchall()]


def _psi_series(con: duckdb.DuckDBPyConnection, signal: Signal, grid: Grid, filters: Filters,
                reference_text: str | None, width: int) -> Series:
    from ..drift.compare import run_scan
    from ..drift.measures import Options
    from ..drift.timeline import interval_parts
    from ..drift.windows import Window, choose_windows, parse_user_window

    assert signal.column is not None
    reference = (parse_user_window(con, reference_text, "reference") if reference_text
                 else choose_windows(con, filters).reference)
    first = grid.first_slot - (width - 1)
    length = grid.slots + width - 1
    span = Window("current", grid.slot_start(first), grid.slot_start(grid.first_slot + grid.slots))
    assert span.start is not None
    parts, _, _ = interval_parts(reference, span, span.start, timedelta(microseconds=grid.step_us))
    options = Options()
    outcome = run_scan(con, filters, parts, options, [signal.column], interval_count=length)
    feature = next(f for f in outcome.features if f.name == signal.column)
    # Scan group k (1-based) is slot first + k − 1; evaluation i sees slots i … i + width − 1.
    slots = [outcome.groups.get(k + 1) for k in range(length)]
    valid = rolling_sum(np.array([g.populations[feature.name].valid if g and feature.name in g.populations
                                  else 0 for g in slots], dtype=float), width)
    psi = (_numeric_psi if feature.kind == "numeric" else _categorical_psi)(feature.name, outcome, slots,
                                                                             width, options)
    ref_valid = outcome.reference.populations[feature.name].valid
    enough = np.array([stats.has_enough_samples(ref_valid, int(n), options.min_samples) for n in valid])
    return Series(np.where(enough, psi, np.nan), valid)


def _numeric_psi(name: str, outcome: ScanOutcome, slots: list[GroupSide | None], width: int,
                 options: Options) -> np.ndarray:
    """PSI of each window against the reference, from the per-slot bucket counts, by the
    same steps as the drift command (reference bins, outside policy, smoothing)."""
    bins = outcome.reference.bins[name]
    n_bins = bins.binning.n_bins
    per_slot = np.zeros((len(slots), n_bins + 2))
    for k, group in enumerate(slots):
        if group is not None and name in group.buckets:
            counts = bins.psi_counts(group.buckets[name])
            per_slot[k, :n_bins] = counts.inside
            per_slot[k, n_bins:] = (counts.below, counts.above)
    totals = np.vstack([rolling_sum(per_slot[:, j], width) for j in range(n_bins + 2)]).T
    ref = bins.psi_counts(outcome.reference.buckets[name])
    values = np.full(len(totals), np.nan)
    for i, row in enumerate(totals):
        if row.sum() > 0:
            cur = stats.BinCounts(row[:n_bins].astype(np.int64), int(row[n_bins]), int(row[n_bins + 1]))
            values[i] = stats.psi(*bins.binning.pair(ref, cur), options.smoothing)
    return values


def _categorical_psi(name: str, outcome: ScanOutcome, slots: list[GroupSide | None], width: int,
                     options: Options) -> np.ndarray:
    ref_counts = outcome.reference.categories.get(name, {})
    values = np.full(len(slots) - width + 1, np.nan)
    for i in range(len(values)):
        current: dict[str, int] = {}
        for group in slots[i: i + width]:
            for key, count in (group.categories.get(name, {}) if group else {}).items():
                current[key] = current.get(key, 0) + count
        if current and ref_counts:
            _, r, c = stats.align_categories(ref_counts, current)
            keep = (r > 0) | (c > 0)
            values[i] = stats.psi(r[keep], c[keep], options.smoothing)
    return values


def group_label(by: Sequence[Grouping], key: GroupKey) -> str:
    """"fraud v2.1.0 model-server": the group's values, – for none."""
    return " ".join("–" if v is None else str(v) for v in key) if by else "all"
