"""A rule's condition per group and evaluation step, from its signals' values.

Truth is three-valued, as float arrays: 1 true, 0 false, NaN unknown (no value in the step).
`and`/`or` follow Kleene logic (false and unknown = false; true or unknown = true), so a
composite is unknown only when the known parts cannot decide it. What an unknown step does to
the alert is the rule's `missing` policy (see check.py), applied after this module.

Alongside the truth every outcome carries the value and the threshold it was compared with,
per step: for a composite those of its first comparison, as PromQL's `a > x and b > y`
returns a's value.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .expr import DEFAULT_BASELINE, Baseline, Both, Change, Condition, Either, Signal, Threshold
from .signals import Grid, GroupKey, Series

BASELINE_MIN_POINTS = 3
"""A baseline needs at least this many values, and at least half of its window's steps."""


@dataclass
class Outcome:
    truth: np.ndarray
    value: np.ndarray
    limit: np.ndarray
    """The threshold compared with, per step (it moves for baseline and change)."""
    unit: str
    higher_is_worse: bool


SeriesOf = Callable[[Signal], dict[GroupKey, Series]]


def evaluate(condition: Condition, series_of: SeriesOf, grid: Grid) -> dict[GroupKey, Outcome]:
    """The condition's outcome for every group that has any of its signals."""
    if isinstance(condition, Both | Either):
        left = evaluate(condition.left, series_of, grid)
        right = evaluate(condition.right, series_of, grid)
        combine = _and if isinstance(condition, Both) else _or
        out: dict[GroupKey, Outcome] = {}
        for key in left.keys() | right.keys():
            a = left.get(key) or _unknown(grid, left, right)
            b = right.get(key) or _unknown(grid, right, left)
            out[key] = Outcome(combine(a.truth, b.truth), a.value, a.limit, a.unit, a.higher_is_worse)
        return out
    return {key: _compare(condition, series.values, grid)
            for key, series in series_of(condition.signal).items()}


def _unknown(grid: Grid, side: dict[GroupKey, Outcome], other: dict[GroupKey, Outcome]) -> Outcome:
    """A group one side of a composite has no data for: unknown throughout."""
    template = next(iter(side.values()), None) or next(iter(other.values()))
    nothing = np.full(grid.slots, np.nan)
    return Outcome(nothing, nothing, nothing, template.unit, template.higher_is_worse)


def _and(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    result = np.where((a == 0) | (b == 0), 0.0, np.nan)
    return np.where((a == 1) & (b == 1), 1.0, result)


def _or(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    result = np.where((a == 1) | (b == 1), 1.0, np.nan)
    return np.where((a == 0) & (b == 0), 0.0, result)


_OPERATORS: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    ">": np.greater, ">=": np.greater_equal, "<": np.less, "<=": np.less_equal,
}


def _truth(value: np.ndarray, op: str, limit: np.ndarray) -> np.ndarray:
    known = ~np.isnan(value) & ~np.isnan(limit)
    with np.errstate(invalid="ignore"):
        return np.where(known, _OPERATORS[op](value, limit).astype(float), np.nan)


def _compare(condition: Threshold | Baseline | Change, values: np.ndarray, grid: Grid) -> Outcome:
    unit = condition.signal.unit
    if isinstance(condition, Threshold):
        limit = np.full(grid.slots, condition.value)
        return Outcome(_truth(values, condition.op, limit), values, limit, unit, condition.op[0] == ">")
    if isinstance(condition, Baseline):
        window = condition.signal.window
        width = grid.steps(window) if window is not None else 1
        mean, std = trailing_stats(values, grid.steps(condition.window or DEFAULT_BASELINE), width)
        limit = mean + condition.sigmas * std
        return Outcome(_truth(values, condition.op, limit), values, limit, unit, condition.op[0] == ">")
    return _change(condition, values, grid)


def trailing_stats(values: np.ndarray, length: int, gap: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and sample standard deviation (ddof 1) of the values at steps i−gap−length+1 …
    i−gap, for each step i: the `length` steps before the current window (`gap` steps long),
    so an incident is not part of its own baseline. NaN with too few values."""
    padded = np.concatenate((np.full(length + gap - 1, np.nan), values))
    windows = np.lib.stride_tricks.sliding_window_view(padded, length)[: len(values)]
    mean = np.full(len(values), np.nan)
    std = np.full(len(values), np.nan)
    needed = max(BASELINE_MIN_POINTS, math.ceil(length / 2))
    # Two passes over chunks of rows: exact enough for values that differ in the 7th digit,
    # and memory stays bounded for long histories.
    for start in range(0, len(values), _CHUNK):
        chunk = windows[start: start + _CHUNK]
        known = ~np.isnan(chunk)
        n = known.sum(axis=1)
        enough = n >= needed
        with np.errstate(divide="ignore", invalid="ignore"):
            m = np.where(known, chunk, 0.0).sum(axis=1) / n
            deviations = np.where(known, chunk - m[:, None], 0.0)
            s = np.sqrt((deviations * deviations).sum(axis=1) / (n - 1))
        mean[start: start + _CHUNK] = np.where(enough, m, np.nan)
        std[start: start + _CHUNK] = np.where(enough, s, np.nan)
    return mean, std


_CHUNK = 8192


def _change(condition: Change, values: np.ndarray, grid: Grid) -> Outcome:
    """`rises P% within D`: the value now against the value D earlier (PromQL's `offset D`).
    A rise from 0 to anything above 0 counts as a rise of any size; nothing falls from 0."""
    lag = grid.steps(condition.within)
    before = np.full(grid.slots, np.nan)
    if lag < grid.slots:
        before[lag:] = values[: grid.slots - lag]
    if condition.direction == "rises":
        limit = before * (1 + condition.percent / 100)
        hit = (values >= limit) & (values > before)
    else:
        limit = before * (1 - condition.percent / 100)
        hit = (values <= limit) & (values < before)
    known = ~np.isnan(values) & ~np.isnan(before)
    truth = np.where(known, hit.astype(float), np.nan)
    return Outcome(truth, values, limit, condition.signal.unit, condition.direction == "rises")
