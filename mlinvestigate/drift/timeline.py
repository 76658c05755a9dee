"""``mlinv drift --every 10m``: each feature's drift per interval against the reference, and
when it started.

One SQL pass groups the rows by interval (and one more reads the reference); every interval is
compared with the same reference bins, so the statistics are comparable down the column.

Onset rule: an interval *crosses* when its verdict is moderate or significant (the judged
method's moderate threshold, or a missing-rate / schema change). The onset is the first
interval of the last run of crossing intervals that lasts to the end of the range (intervals
with too few values neither break nor start a run), and the run must hold at least
:data:`MIN_RUN` intervals with data. Its precision is the interval. The statistics reported
for it are over all rows from the onset to the end, pooled, against the reference.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..errors import EmptyResult, UsageError
from ..investigations.filters import Filters
from ..result import Result
from ..timeparse import format_duration
from .compare import (
    GroupSide,
    ReferenceSide,
    compare_feature,
    definitions,
    run_scan,
    sampling_notes,
)
from .measures import FeatureDrift, Options, describe_value
from .profile import Buckets, Part, Population
from .windows import Window

if TYPE_CHECKING:
    import duckdb

MIN_RUN = 2
"""A drift onset needs at least this many crossing intervals (with data) up to the end."""

MAX_INTERVALS = 2_000

_SPARK = "▁▂▃▄▅▆▇█"

COLUMNS = ["feature", "kind", "verdict", "onset", "psi", "ks", "peak_psi", "peak_at",
           "crossed", "intervals", "trend", "reason"]

INTERVAL_COLUMNS = ["interval_start", "feature", "n", "missing_pct", "psi", "ks", "js",
                    "wasserstein", "verdict"]


@dataclass
class FeatureTimeline:
    drift: FeatureDrift
    """The pooled comparison since the onset, or the peak interval's when there is none."""
    onset: datetime | None
    peak: FeatureDrift | None
    peak_at: datetime | None
    crossed: int
    with_data: int
    per_interval: list[tuple[datetime, FeatureDrift]]
    transient: tuple[datetime, datetime] | None = None


MAX_INTERVAL_ROWS = 200
"""Without --feature, the per-interval table is shown when it has at most this many rows."""


def _us(moment: datetime) -> int:
    return (moment - datetime(1970, 1, 1)) // timedelta(microseconds=1)


def interval_parts(
    reference: Window | None, span: Window, start: datetime, step: timedelta
) -> tuple[list[Part], int, int]:
    """Parts for the reference (key 0, unless from a baseline) and the intervals (1 + index),
    with the interval origin aligned to whole multiples of the step since the epoch."""
    step_us = step // timedelta(microseconds=1)
    origin_us = (_us(start) // step_us) * step_us
    parts: list[Part] = []
    if reference is not None:
        sql, params = reference.condition("w0")
        parts.append(Part("0", sql, params))
    sql, params = span.condition("w1")
    # Integers we computed, not user text: safe to write into the SQL.
    key = f"1 + CAST(floor((epoch_us(ts) - {origin_us}) / {step_us}) AS BIGINT)"
    parts.append(Part(key, sql, params))
    return parts, origin_us, step_us


def _pool(groups: Sequence[GroupSide], name: str) -> GroupSide:
    pooled = GroupSide()
    population = Population()
    buckets: Buckets | None = None
    categories: dict[str, int] = {}
    for group in groups:
        if name in group.populations:
            population.add(group.populations[name])
        if name in group.buckets:
            b = group.buckets[name]
            buckets = b if buckets is None else Buckets(
                buckets.counts + b.counts, buckets.above + b.above, buckets.below + b.below,
                buckets.n + b.n, tuple(x + y for x, y in zip(buckets.tail_sums, b.tail_sums, strict=False)))
        for key, count in group.categories.get(name, {}).items():
            categories[key] = categories.get(key, 0) + count
    pooled.populations[name] = population
    if buckets is not None:
        pooled.buckets[name] = buckets
    if categories:
        pooled.categories[name] = categories
    return pooled


def _trend_value(d: FeatureDrift, method: str) -> float | None:
    value = d.statistic(method if method not in ("chi2",) else "psi")
    if d.verdict == "insufficient data":
        return None
    return value


def _sparkline(values: Sequence[float | None], significant: float) -> str:
    characters = []
    for value in values:
        if value is None or math.isnan(value):
            characters.append("·")
            continue
        level = min(value / (2 * significant), 1.0) if significant > 0 else 0.0
        characters.append(_SPARK[min(int(level * (len(_SPARK) - 1) + 0.5), len(_SPARK) - 1)])
    return "".join(characters)


def timeline(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    reference: Window | None,
    span: Window,
    range_start: datetime,
    range_end: datetime,
    step: timedelta,
    options: Options,
    wanted: Sequence[str] | None = None,
    *,
    baseline: ReferenceSide | None = None,
    baseline_name: str | None = None,
    reference_defaulted: bool = False,
) -> Result:
    """Per-feature onset and per-interval drift against the reference."""
    if options.binning == "sturges-combined" and options.edges is None:
        raise UsageError("--binning sturges-combined depends on each current window; it cannot be "
                         "used with --every", hint="use quantile10, doane-ref or --edges")
    if (range_end - range_start) / step > MAX_INTERVALS:
        raise UsageError(f"--every {format_duration(step.total_seconds())} makes more than "
                         f"{MAX_INTERVALS} intervals", hint="choose a longer interval or a shorter range")
    parts, origin_us, step_us = interval_parts(None if baseline is not None else reference, span,
                                               range_start, step)
    intervals = max(int((range_end - range_start) / step) + 1, 1)
    outcome = run_scan(con, filters, parts, options, wanted, baseline, interval_count=intervals)
    keys = sorted(k for k in outcome.groups if k >= 1)
    if not keys:
        raise EmptyResult(f"no events in {span.describe()}")
    if baseline is None and not any(p.rows for p in outcome.reference.populations.values()):
        raise EmptyResult(f"no events in the reference window ({reference.describe() if reference else ''})")
    first, last = keys[0], keys[-1]
    all_keys = list(range(first, last + 1))
    starts = {k: datetime(1970, 1, 1) + timedelta(microseconds=origin_us + (k - 1) * step_us)
              for k in all_keys}
    empty = GroupSide()
    timelines: list[FeatureTimeline] = []
    for feature in outcome.features:
        per_interval = []
        for k in all_keys:
            group = outcome.groups.get(k, empty)
            per_interval.append((starts[k], compare_feature(feature, outcome.reference, group, options,
                                                            outcome.current_families, p_value=False,
                                                            everything=False)))
        timelines.append(_summarize(feature.name, per_interval, outcome, options, keys, starts))
    timelines.sort(key=lambda t: (t.drift.sort_key()[0], t.onset or datetime.max, t.drift.sort_key()[1:]))
    rows = [_row(t, options) for t in timelines]
    notes = _notes(timelines, reference, span, step, options, filters, baseline_name, reference_defaulted,
                   outcome)
    chosen = set(wanted or ())
    detailed = [t for t in timelines if t.drift.feature.name in chosen]
    if not detailed:
        changed = [t for t in timelines if t.drift.verdict not in ("none", "insufficient data")]
        if len(changed) * len(all_keys) <= MAX_INTERVAL_ROWS:
            detailed = changed
        elif changed:
            # Hundreds of rows would bury the summary above; the trend column draws them.
            notes.append(f"Per-interval values of the {len(changed)} changed features "
                         f"({len(changed) * len(all_keys):,} rows) are left out: choose features with "
                         f"--feature, e.g. --feature {changed[0].drift.feature.name}.")
    interval_rows = []
    for t in detailed:
        # The intervals shown get every statistic (the first pass computed what the onset needs).
        for k, (start, _) in zip(all_keys, t.per_interval, strict=True):
            d = compare_feature(t.drift.feature, outcome.reference, outcome.groups.get(k, empty), options,
                                outcome.current_families, p_value=False)
            interval_rows.append((start, d.feature.name, d.cur.valid, _pct(d.cur.missing_rate()), d.psi,
                                  d.ks, d.js, d.wasserstein, d.verdict))
    sections = []
    if interval_rows:
        sections.append(Result("Per interval (features chosen with --feature, or that changed)",
                               list(INTERVAL_COLUMNS), interval_rows, units={"missing_pct": "%"}))
    return Result(f"Drift every {format_duration(step.total_seconds())} against "
                  + (f"baseline {baseline_name!r}" if baseline_name else "the reference"),
                  list(COLUMNS), rows, notes=notes, sections=sections)


def _pct(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 3)


def _summarize(
    name: str,
    per_interval: list[tuple[datetime, FeatureDrift]],
    outcome: Any,
    options: Options,
    keys: Sequence[int],
    starts: dict[int, datetime],
) -> FeatureTimeline:
    judged = [(start, d) for start, d in per_interval if d.verdict != "insufficient data"]
    crossed_flags = [d.verdict in ("moderate", "significant") for _, d in judged]
    run = 0
    for flag in reversed(crossed_flags):
        if not flag:
            break
        run += 1
    # After the last judged interval, intervals with too few values say nothing: one (a
    # partial last interval) is tolerated, more mean persistence cannot be shown.
    last_judged = judged[-1][0] if judged else None
    trailing = sum(1 for start, _ in per_interval if last_judged is not None and start > last_judged)
    if trailing > 1:
        run = 0
    method = per_interval[0][1].judged_by if per_interval else options.method
    peak: FeatureDrift | None = None
    peak_at: datetime | None = None
    for start, d in judged:
        value = _trend_value(d, method)
        best = _trend_value(peak, method) if peak is not None else None
        if value is not None and (best is None or value > best):
            peak, peak_at = d, start
    onset: datetime | None = None
    transient = None
    if run >= MIN_RUN:
        onset = judged[len(judged) - run][0]
        since = [outcome.groups[k] for k in keys if starts[k] >= onset]
        pooled = _pool(since, name)
        drift = compare_feature(per_interval[0][1].feature, outcome.reference, pooled, options,
                                outcome.current_families)
        if drift.verdict in ("none", "insufficient data"):
            drift.verdict = "moderate"
    else:
        drift = peak if peak is not None else per_interval[-1][1]
        crossed_at = [start for (start, _), flag in zip(judged, crossed_flags, strict=True) if flag]
        if crossed_at:
            transient = (crossed_at[0], crossed_at[-1])
            if trailing > 1 and crossed_flags[-1]:
                drift.reasons = [*drift.reasons, f"then too few values for {trailing} intervals"]
            drift = FeatureDrift(drift.feature, drift.ref, drift.cur, psi=drift.psi, ks=drift.ks,
                                 p_value=drift.p_value, js=drift.js, wasserstein=drift.wasserstein,
                                 tv=drift.tv, n_bins=drift.n_bins, verdict="moderate",
                                 reasons=list(drift.reasons), judged_by=drift.judged_by)
        elif not judged:
            drift = per_interval[-1][1]
    return FeatureTimeline(drift, onset, peak, peak_at, sum(crossed_flags), len(judged),
                           per_interval, transient)


def _clock(moment: datetime | None) -> str:
    return "–" if moment is None else moment.strftime("%H:%M:%S")


def _row(t: FeatureTimeline, options: Options) -> tuple[Any, ...]:
    d = t.drift
    _, significant = options.thresholds(d.judged_by if d.judged_by != "chi2" else "psi")
    if d.judged_by == "chi2":
        significant = options.thresholds("psi")[1]
    trend = _sparkline([_trend_value(x, d.judged_by) for _, x in t.per_interval], significant)
    reasons = list(d.reasons)
    if t.onset is None and t.transient is not None:
        first, last = t.transient
        reasons.insert(0, f"crossed in {t.crossed} of {t.with_data} intervals ({_clock(first)}–"
                          f"{_clock(last)}), not persistently")
    psi = d.psi if t.onset is not None else None
    ks = d.ks if t.onset is not None else None
    peak_psi = t.peak.psi if t.peak is not None else None
    return (d.feature.name, d.feature.kind, d.verdict, t.onset, psi, ks, peak_psi, t.peak_at,
            t.crossed, t.with_data, trend, "; ".join(reasons))


def _notes(
    timelines: Sequence[FeatureTimeline], reference: Window | None, span: Window, step: timedelta,
    options: Options, filters: Filters, baseline_name: str | None, reference_defaulted: bool,
    outcome: Any,
) -> list[str]:
    notes: list[str] = []
    onsets = [t for t in timelines if t.onset is not None]
    for t in onsets:
        d = t.drift
        figures = ", ".join(x for x in (
            f"PSI {describe_value(d.psi)}" if d.psi is not None else "",
            f"KS {describe_value(d.ks)}" if d.ks is not None else "") if x)
        because = "" if figures else f" ({'; '.join(d.reasons[:2])})"
        notes.append(f"{d.feature.name} drifted from {_clock(t.onset)}"
                     + (f" ({figures})" if figures else because) + ".")
    transient = [t for t in timelines if t.onset is None and t.transient is not None]
    for t in transient:
        first, last = t.transient or (None, None)
        notes.append(f"{t.drift.feature.name} crossed the threshold between {_clock(first)} and "
                     f"{_clock(last)} but not persistently.")
    if not onsets and not transient:
        notes.append(f"No drift in {len(timelines)} features over any interval.")
    ref_text = f"baseline {baseline_name!r}" if baseline_name else (reference.describe() if reference else "")
    default = " (first quarter of the time range, the default)" if reference_defaulted else ""
    notes.append(f"Reference: {ref_text}{default}; intervals of {format_duration(step.total_seconds())} "
                 f"over {span.describe()}. Filters: {filters.describe()}.")
    notes.append(f"Onset: first interval of the final run of intervals whose verdict is moderate or "
                 f"worse, lasting to the end (at least {MIN_RUN} intervals; precision = one interval). "
                 "psi/ks: all rows from the onset on, pooled, against the reference. "
                 "Trend: one character per interval (· = too few values).")
    notes += definitions(options)
    notes += sampling_notes(outcome)
    return notes
