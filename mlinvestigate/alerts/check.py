"""`mlinv check`: alert rules replayed over the logged history, with Prometheus semantics.

Evaluations happen at the end of every `step` (aligned to the epoch, like `--every`) from the
first event (or --since) to the last (or --until). At each one, every rule's condition is
computed per group (signals.py, conditions.py) and fed to the alert state machine (state.py).

Missing data: a step where a comparison has no value — no request lines in its window, fewer
than the rule's `min_requests`, no baseline yet — leaves the condition unknown. With
`missing = "absent"` (the default) an unknown condition is false, exactly what Prometheus does
when the series is absent: a pending alert is dropped and a firing one resolves unless
`keep_firing_for` holds it. With `missing = "hold"` the last known condition holds instead.

With --since, the state machine starts earlier (by the rule's for + keep_firing_for and the
lookback of its baselines and changes), so an alert that was already firing at --since is
shown firing, as a running Prometheus would have it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EmptyResult, UsageError
from ..investigations.filters import (
    Filters,
    Grouping,
    clock_text,
    data_span,
    event_kinds,
    grouping,
    ms_text,
    pct_text,
)
from ..result import Result
from ..timeparse import format_duration
from . import state
from .conditions import Outcome, SeriesOf, evaluate
from .expr import DEFAULT_BASELINE, Baseline, Change, Signal, comparisons, duration_text
from .rules import Rule
from .signals import (
    COUNT_SIGNALS,
    EPOCH,
    ORDER_SIGNALS,
    PSI_KEYS,
    Grid,
    GroupKey,
    Scope,
    Series,
    additive_batch_key,
    compute,
    compute_additive,
    group_label,
)

if TYPE_CHECKING:
    import duckdb

DEFAULT_STEP = timedelta(minutes=1)
MAX_EVALUATIONS = 500_000
MAX_ORDER_STEPS = 60
"""Percentiles cannot be added up across steps, so each line is counted once per evaluation that
sees it: a window of k steps reads the lines k times (see signals.ORDER_SQL)."""
TIMELINE_WIDTH = 48

COLUMNS = ["rule", "severity", "group", "state", "firing_from", "firing_until", "firing_for", "worst",
           "threshold", "worst_at", "active_at"]
"""active_at is Prometheus' ActiveAt: when the condition turned true (pending)."""
_STATE, _FROM, _ACTIVE = COLUMNS.index("state"), COLUMNS.index("firing_from"), COLUMNS.index("active_at")
RULE_COLUMNS = ["rule", "kind", "for", "groups", "fired", "firing_now", "timeline", "expr"]

MISSING_NOTE = (
    "missing data: a step whose window has no value (no request lines, fewer than min_requests, no "
    "baseline yet) counts as false, like an absent series in Prometheus: a pending alert is dropped, a "
    "firing one resolves unless keep_firing_for holds it (rules with missing = \"hold\" keep their last "
    "known condition)"
)


def check(con: duckdb.DuckDBPyConnection, filters: Filters, rules: Sequence[Rule], *,
          step: timedelta = DEFAULT_STEP, limit: int = 100, source: str = "") -> Result:
    """Replay `rules` over the events under `filters`; one row per alert that fired (or is
    pending at the end), firing ones first."""
    step_us = step // timedelta(microseconds=1)
    if step_us <= 0 or step_us % 1_000_000:
        raise UsageError("--step must be a whole number of seconds, not "
                         f"{format_duration(step.total_seconds())}")
    for rule in rules:
        _check_rule(con, rule, step)
    first_event, last_event = data_span(con, filters)
    if first_event is None or last_event is None:
        where = filters.describe()
        raise EmptyResult("no events to check" + (f" ({where})" if where != "all events" else
                                                  " (run `mlinv ingest FILE...` first, or pass --logs)"))
    start = filters.since or first_event
    end = filters.until or last_event + timedelta(microseconds=1)
    first_slot = _us(start) // step_us
    last_slot = (_us(end) - 1) // step_us
    # One grid for every rule, starting early enough for the longest warm-up and lookback.
    lookback = max(_lookback(rule, step) for rule in rules)
    grid = Grid(step_us, first_slot - lookback, last_slot - first_slot + 1 + lookback)
    if grid.slots > MAX_EVALUATIONS:
        raise UsageError(f"--step {duration_text(step)} makes {grid.slots:,} evaluations",
                         hint="use a longer --step or a shorter --since/--until")
    lines_sql, lines_params = event_kinds(con).request_line_sql()
    signals = _Signals(con, grid, replace(filters, since=None, until=None), lines_sql, lines_params)
    signals.prefetch(rules)
    reports = [_evaluate(rule, signals, grid, lookback) for rule in rules]
    rows = sorted((row for report in reports for row in report.rows),
                  key=lambda r: ({"firing": 0, "pending": 1}.get(r[_STATE], 2), r[_FROM] or r[_ACTIVE], r[0]))
    end_time = grid.eval_time(grid.slots - 1)
    notes = [_headline(rows, end_time), *[n for report in reports for n in report.firing_notes][:10],
             f"checked {len(rules)} rules{' from ' + source if source else ''} over "
             f"{clock_text(start, with_date=True)} to {clock_text(end_time, with_date=True)} UTC, "
             f"evaluated every {format_duration(step.total_seconds())} (at the end of each step; a signal's "
             "[window] is the time before it)",
             MISSING_NOTE, *signals.notes]
    if filters.describe() != "all events":
        notes.append(f"filters: {filters.describe()}")
    if len(rows) > limit:
        notes.append(f"{len(rows) - limit} more alerts not shown (--limit {limit})")
    per_mark = format_duration(_chunk(grid.slots - lookback) * step.total_seconds())
    rules_table = Result("Rules", list(RULE_COLUMNS), [report.summary for report in reports],
                         notes=[f"timeline: one character per {per_mark}: █ firing, ▄ pending, ▁ quiet, "
                                "· no data (in any group)"])
    return Result("Alerts" if rows else "Alerts: none fired", list(COLUMNS), rows[:limit], notes=notes,
                  sections=[rules_table])


class _Signals:
    """Signal values per rule scope, each computed once (rules often share a signal)."""

    def __init__(self, con: duckdb.DuckDBPyConnection, grid: Grid, filters: Filters, lines_sql: str,
                 lines_params: dict[str, Any]) -> None:
        self.con, self.grid, self.filters = con, grid, filters
        self.lines_sql, self.lines_params = lines_sql, lines_params
        self.cache: dict[tuple[Any, ...], dict[GroupKey, Series]] = {}
        self.notes: list[str] = []

    def scope(self, rule: Rule) -> Scope:
        return Scope(self.filters, self.lines_sql, self.lines_params, tuple(grouping(b) for b in rule.by),
                     rule.reference, self.notes)

    def prefetch(self, rules: Sequence[Rule]) -> None:
        """Compute the additive signals of all rules up front, those that read the same lines
        in one scan (the shipped rules' five error rates: one scan instead of five)."""
        batches: dict[tuple[Any, ...], tuple[Rule, list[Signal]]] = {}
        for rule in rules:
            for comparison in comparisons(rule.condition):
                signal = comparison.signal
                lines = additive_batch_key(signal)
                if lines is None or (signal, rule.by, rule.reference) in self.cache:
                    continue
                _, batch = batches.setdefault((rule.by, rule.reference, lines), (rule, []))
                if signal not in batch:
                    batch.append(signal)
        for (by, reference, _), (rule, batch) in batches.items():
            for signal, series in compute_additive(self.con, batch, self.grid, self.scope(rule)).items():
                self.cache[(signal, by, reference)] = series

    def of(self, rule: Rule) -> SeriesOf:
        scope = self.scope(rule)

        def series_of(signal: Signal) -> dict[GroupKey, Series]:
            key = (signal, rule.by, rule.reference)
            if key not in self.cache:
                self.cache[key] = compute(self.con, signal, self.grid, scope)
            if signal.name in COUNT_SIGNALS or rule.min_requests == 0:
                return self.cache[key]
            return {k: _masked(s, rule.min_requests) for k, s in self.cache[key].items()}

        return series_of


@dataclass
class _Report:
    rows: list[tuple[Any, ...]] = field(default_factory=list)
    firing_notes: list[str] = field(default_factory=list)
    summary: tuple[Any, ...] = ()


def _evaluate(rule: Rule, signals: _Signals, grid: Grid, report_from: int) -> _Report:
    """One rule's alerts: its condition per group, replayed through the state machine."""
    outcomes = evaluate(rule.condition, signals.of(rule), grid)
    by = signals.scope(rule).by
    replayed = {key: _replay(rule, outcome, grid) for key, outcome in outcomes.items()}
    report = _Report()
    fired = 0
    for key in sorted(replayed, key=_sortable):
        for episode in state.episodes(replayed[key]):
            if episode.ended is not None and (episode.fired is None or episode.ended <= report_from):
                continue  # dropped while pending (no notification), or over before the checked window
            fired += episode.fired is not None
            row = _row(rule, by, key, episode, outcomes[key], grid)
            report.rows.append(row)
            if row[_STATE] == state.FIRING:
                report.firing_notes.append(_firing_note(rule, by, key, episode, outcomes[key], grid))
    report.summary = _rule_row(rule, replayed, outcomes, fired, report_from)
    return report


def firing_at_end(result: Result) -> bool:
    """True when some alert is firing at the last evaluation (the CLI exits 1)."""
    return any(row[_STATE] == state.FIRING for row in result.rows)


# --------------------------------------------------------------------------- helpers


def _us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def _spans(rule: Rule) -> list[tuple[str, timedelta]]:
    """Every duration of a rule that must be a whole number of steps, with what it is."""
    spans: list[tuple[str, timedelta]] = []
    for comparison in comparisons(rule.condition):
        signal = comparison.signal
        if signal.window is not None:
            spans.append((f"window [{duration_text(signal.window)}]", signal.window))
        if isinstance(comparison, Baseline):
            window = comparison.window or DEFAULT_BASELINE
            spans.append((f"baseline window {duration_text(window)}", window))
        if isinstance(comparison, Change):
            spans.append((f"within {duration_text(comparison.within)}", comparison.within))
    return spans


def _check_rule(con: duckdb.DuckDBPyConnection, rule: Rule, step: timedelta) -> None:
    """What a rule file cannot know by itself: its windows against --step, and psi's needs."""
    for what, span in _spans(rule):
        if span % step:
            raise UsageError(f"{rule.origin}: rule {rule.name!r}: {what} is not a whole number of steps of "
                             f"{duration_text(step)}", hint="change --step or the rule")
    for comparison in comparisons(rule.condition):
        window = comparison.signal.window
        ordered = comparison.signal.name in ORDER_SIGNALS
        if ordered and window is not None and window // step > MAX_ORDER_STEPS:
            raise UsageError(f"{rule.origin}: rule {rule.name!r}: {comparison.signal.text()} spans "
                             f"{window // step} steps of {duration_text(step)}; a percentile, min or max "
                             f"window may span at most {MAX_ORDER_STEPS}", hint="use a longer --step")
    if not any(c.signal.name == "psi" for c in comparisons(rule.condition)):
        return
    odd = [name for name in rule.by if name not in PSI_KEYS]
    if odd:
        raise UsageError(f"{rule.origin}: rule {rule.name!r}: psi() groups by model_id, model_version or "
                         f"service only, not {odd[0]}")
    if rule.reference:
        from ..drift.windows import parse_user_window

        try:
            parse_user_window(con, rule.reference, "reference")
        except UsageError as exc:
            raise UsageError(f"{rule.origin}: rule {rule.name!r}: reference: {exc}") from None


def _lookback(rule: Rule, step: timedelta) -> int:
    """Steps evaluated before the checked window, so that the state at its start is right."""
    warm = math.ceil((rule.for_ + rule.keep_firing_for) / step) + 1
    extra = 0
    for comparison in comparisons(rule.condition):
        width = comparison.signal.window // step if comparison.signal.window is not None else 1
        if isinstance(comparison, Baseline):
            extra = max(extra, width - 1 + (comparison.window or DEFAULT_BASELINE) // step)
        elif isinstance(comparison, Change):
            extra = max(extra, comparison.within // step)
    return warm + extra


def _masked(series: Series, min_requests: int) -> Series:
    return Series(np.where(series.support >= min_requests, series.values, np.nan), series.support)


def _replay(rule: Rule, outcome: Outcome, grid: Grid) -> list[str]:
    truth = outcome.truth
    if rule.missing == "hold":
        truth = _forward_fill(truth)
    step_s = grid.step_us / 1e6
    times = [i * step_s for i in range(grid.slots)]
    return state.replay((truth == 1).tolist(), times, rule.for_.total_seconds(),
                        rule.keep_firing_for.total_seconds())


def _forward_fill(truth: np.ndarray) -> np.ndarray:
    known = ~np.isnan(truth)
    index = np.where(known, np.arange(len(truth)), -1)
    np.maximum.accumulate(index, out=index)
    return np.where(index >= 0, truth[np.clip(index, 0, None)], 0.0)


def _sortable(key: GroupKey) -> tuple[str, ...]:
    return tuple("" if v is None else str(v) for v in key)


def format_value(value: float | None, unit: str) -> str | None:
    """A signal value for people: 812 ms, 13.2 %, 14.7×, 0.31."""
    if value is None or not math.isfinite(value):
        return None
    if unit == "ms":
        return ms_text(value)
    if unit == "ratio":
        return pct_text(value * 100)
    if unit == "count":
        return f"{value:,.0f}"
    if unit == "/s":
        return f"{value:.3g}/s"
    if unit == "×":
        return f"{value:.3g}×"
    return f"{value:.3g}"


def _worst(outcome: Outcome, first: int, last: int) -> int | None:
    """The step in [first, last] where the value was furthest past its threshold's side."""
    values = outcome.value[first: last + 1]
    hits = (outcome.truth[first: last + 1] == 1) & ~np.isnan(values)
    if not hits.any():
        return None
    candidates = np.where(hits, values, -np.inf if outcome.higher_is_worse else np.inf)
    offset = int(np.argmax(candidates) if outcome.higher_is_worse else np.argmin(candidates))
    return first + offset


def _row(rule: Rule, by: Sequence[Grouping], key: GroupKey, episode: state.Episode, outcome: Outcome,
         grid: Grid) -> tuple[Any, ...]:
    last = grid.slots - 1 if episode.ended is None else episode.ended - 1
    if episode.fired is None:
        status = state.PENDING
    else:
        status = state.FIRING if episode.ended is None else "resolved"
    fired_at = grid.eval_time(episode.fired) if episode.fired is not None else None
    until = grid.eval_time(episode.ended) if episode.ended is not None else None
    firing_for = ((until or grid.eval_time(last)) - fired_at) if fired_at is not None else None
    worst = _worst(outcome, episode.active, last)
    return (rule.name, rule.severity, group_label(by, key), status, fired_at, until, firing_for,
            format_value(float(outcome.value[worst]), outcome.unit) if worst is not None else None,
            format_value(float(outcome.limit[worst]), outcome.unit) if worst is not None else None,
            grid.eval_time(worst) if worst is not None else None, grid.eval_time(episode.active))


def _headline(rows: Sequence[tuple[Any, ...]], end: datetime) -> str:
    firing = [r for r in rows if r[_STATE] == state.FIRING]
    pending = [r for r in rows if r[_STATE] == state.PENDING]
    resolved = len(rows) - len(firing) - len(pending)
    at = clock_text(end)
    if firing:
        head = f"{len(firing)} alert{'s' * (len(firing) != 1)} FIRING at the end ({at})"
    else:
        head = f"nothing firing at the end ({at})"
    extra = []
    if pending:
        extra.append(f"{len(pending)} pending")
    extra.append(f"{resolved} fired and resolved earlier")
    return f"{head}; " + ", ".join(extra)


_FILTER_OPTIONS = {"model_id": "--model", "model_version": "--version", "service": "--service"}


def next_command(rule: Rule, by: Sequence[Grouping], key: GroupKey, since: datetime) -> str:
    """The mlinv command that digs into an alert of this rule and group."""
    signals = [c.signal for c in comparisons(rule.condition)]
    first = signals[0].inner if signals[0].name == "burn" and signals[0].inner else signals[0]
    options = [f"--since {since.isoformat(timespec='seconds')}Z"]
    for grouping_, value in zip(by, key, strict=True):
        option = _FILTER_OPTIONS.get(grouping_.column)
        if option and value is not None:
            options.append(f"{option} {value}")
    if first.name == "psi":
        return f"mlinv drift --every 10m --feature {first.column} " + " ".join(options[1:])
    if first.name in ("errors", "error_rate"):
        return "mlinv errors --every 5m " + " ".join(options)
    if first.name in ("requests", "throughput"):
        return "mlinv throughput --every 1m " + " ".join(options)
    return "mlinv latency --by input_size --every 5m " + " ".join(options)


def _firing_note(rule: Rule, by: Sequence[Grouping], key: GroupKey, episode: state.Episode,
                 outcome: Outcome, grid: Grid) -> str:
    assert episode.fired is not None
    fired_at = grid.eval_time(episode.fired)
    now = float(outcome.value[-1])
    value = format_value(now, outcome.unit)
    value_text = f", now {value}" if value else ""
    summary = f" — {rule.summary}" if rule.summary else ""
    since = grid.eval_time(episode.active) - timedelta(minutes=15)
    return (f"FIRING {rule.name} [{group_label(by, key)}] since {clock_text(fired_at)}{value_text}"
            f"{summary}; next: {next_command(rule, by, key, since.replace(second=0, microsecond=0))}")


def _chunk(slots: int) -> int:
    return max(1, math.ceil(slots / TIMELINE_WIDTH))


def _rule_row(rule: Rule, replayed: dict[GroupKey, list[str]], outcomes: dict[GroupKey, Outcome], fired: int,
              report_from: int) -> tuple[Any, ...]:
    firing_now = sum(1 for states in replayed.values() if states and states[-1] == state.FIRING)
    return (rule.name, rule.kind, rule.for_, len(replayed), fired, firing_now,
            _timeline(replayed, outcomes, report_from), rule.expr)


def _timeline(replayed: dict[GroupKey, list[str]], outcomes: dict[GroupKey, Outcome], start: int) -> str:
    if not replayed:
        return "·"
    length = len(next(iter(replayed.values()))) - start
    rank = np.zeros(length, dtype=int)  # 0 no data, 1 quiet, 2 pending, 3 firing
    for key, states in replayed.items():
        known = ~np.isnan(outcomes[key].truth[start:])
        level = np.array([{state.FIRING: 3, state.PENDING: 2}.get(s, 1) for s in states[start:]])
        rank = np.maximum(rank, np.where(known | (level > 1), level, 0))
    chunk = _chunk(length)
    marks = "·▁▄█"
    return "".join(marks[int(rank[i: i + chunk].max())] for i in range(0, length, chunk))
