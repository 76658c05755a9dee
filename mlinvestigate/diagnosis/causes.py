"""What a candidate cause is, and what every kind of them shares: the finding's window and
measure, the score, the evidence tables. The kinds are found in .candidates (deploys, versions,
input classes, replicas, services, traffic), .error_causes and .drift_causes.

score = prior(kind) × (0.4 + 0.6 × explained) × timing, where explained ∈ [0, 1] is the share
of the change the cause accounts for, and timing (deploys only) falls from 1 within five
minutes before the onset to 0.5 at fifteen.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..investigations.filters import EventKinds, Filters, ms_text, pct_text
from ..result import Result
from .contrast import Contrast, Decomposition, Dimension
from .onsets import Finding, Signal
from .series import Series

if TYPE_CHECKING:
    import duckdb

PRIOR = {"deploy": 1.0, "version": 0.9, "input": 0.9, "replica": 0.85, "traffic": 0.7,
         "drift": 0.75, "error": 0.6, "service": 0.5}
LOOKBACK = timedelta(minutes=15)
"""Loads up to this long before an onset are candidates."""
NEAR = timedelta(minutes=5)
"""A load this close before the onset has full timing weight."""
WINDOW_INTERVALS = 15
"""Intervals on each side of the onset read for the contrast, at least (fewer after it when it
recovers sooner)."""
MIN_EXPLAINED = 0.3


@dataclass
class Load:
    at: datetime
    model_id: str | None
    version: str | None
    service: str | None
    outcome: str
    verdict: str
    what_followed: str


@dataclass
class Cause:
    kind: str
    title: str
    detail: str
    explained: float | None
    score: float
    next_command: str
    at: datetime | None = None
    evidence: Result | None = None
    examples: list[str] = field(default_factory=list)
    subject: Any = None
    """The value the cause is about (a version, an input class, an error type)."""
    dimension: str | None = None
    """The dimension the subject is a value of (model_version, input_size, attrs.host)."""
    scope: tuple[str | None, str | None] | None = None
    """(service, model_id) the cause was measured at."""
    split_at: datetime | None = None
    """Where its evidence splits before from after (the onset, or the load)."""
    values: list[Any] = field(default_factory=list)
    """The raw dimension value of each evidence row but the last ("(all)")."""


@dataclass
class Context:
    con: duckdb.DuckDBPyConnection
    filters: Filters
    kinds: EventKinds
    series: Series
    loads: list[Load]
    consumed: set[str]


@dataclass
class Measure:
    """What got worse, as the contrast reads it."""

    name: str
    """'category', 'errors', 'slow', 'confidence' or 'traffic'."""
    sign: float
    """+1 when higher is worse, −1 when lower is."""
    label: str
    sd: float | None = None

    def text(self, value: float | None) -> str:
        if value is None or math.isnan(value):
            return "–"
        return f"{value:.3f}" if self.name == "confidence" else pct_text(100 * value)


@dataclass
class Analysis:
    finding: Finding
    contrast: Contrast
    measure: Measure
    onset_at: datetime
    split: int
    end: int
    bad_after: bool
    """False when only the recovery is seen: the bad side is the one before the split."""
    side: int = WINDOW_INTERVALS
    """Intervals on each side of the split."""

    @property
    def before(self) -> slice:
        return slice(max(0, self.split - self.side), self.split)

    @property
    def after(self) -> slice:
        return slice(self.split, self.end)


def measure_of(signal: Signal, series: Series) -> Measure:
    if signal.metric == "errors":
        if signal.category:
            return Measure("category", 1.0, f"{signal.category} error rate")
        return Measure("errors", 1.0, "error rate")
    if signal.metric == "slow":
        return Measure("slow", 1.0, f"share slower than {ms_text(signal.threshold_ms)}")
    if signal.metric == "confidence":
        from .changepoints import gaussian_variance

        s = signal.scope
        return Measure("confidence", -1.0, "mean confidence",
                       sd=math.sqrt(gaussian_variance(series.conf_sum[s], series.conf_n[s])))
    return Measure("traffic", -1.0, "request lines")


def scope_key(series: Series, index: int) -> tuple[str | None, str | None]:
    scope = series.scopes[index]
    return (scope.service, scope.model_id)


def window_text(analysis: Analysis, lo: int | None = None, hi: int | None = None) -> str:
    contrast = analysis.contrast
    start = contrast.start_of(analysis.before.start if lo is None else lo)
    end = contrast.start_of(analysis.end if hi is None else hi)
    return f"--since {iso(start)} --until {iso(end)}"


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds") + "Z"


def gap_text(gap: timedelta) -> str:
    return ms_text(abs(gap.total_seconds()) * 1000)


def of_model(model: str | None) -> str:
    """"fraud " to put before a noun, or nothing for lines that log no model."""
    return f"{model} " if model else ""


def share_of(part: float, change: float) -> float:
    if change <= 0:
        return 0.0
    return float(min(1.0, max(0.0, part / change)))


def cause_score(kind: str, explained: float, timing: float = 1.0) -> float:
    return round(PRIOR[kind] * (0.4 + 0.6 * explained) * timing, 3)


def value_text(dimension: Dimension, value: Any) -> str:
    if dimension.name == "input_size":
        bucket = int(value)
        return "<1" if bucket < 0 else f"{10 ** bucket}–{10 ** (bucket + 1) - 1}"
    return str(value)


def by_option(dimension: Dimension) -> str:
    return dimension.name


def every(analysis: Analysis) -> str:
    """A round interval of about five of the diagnosis' intervals, for --every."""
    from ..timeparse import format_duration

    wanted = max(analysis.contrast.step.total_seconds() * 5, 60)
    seconds = next((s for s in (60, 120, 300, 600, 900, 1800, 3600, 7200, 21600, 86400) if s >= wanted),
                   86400)
    return format_duration(seconds).replace(" ", "")


def shown_values(dec: Decomposition) -> list[Any]:
    """The raw values of the rows _share_table shows, in its order."""
    return [s.value for s in sorted(dec.shares, key=lambda s: -(s.n_before + s.n_after))[:12]]


def share_table(title: str, dec: Decomposition, measure: Measure,
                 dimension: Dimension | None = None) -> Result:
    rows = []
    for share in sorted(dec.shares, key=lambda s: -(s.n_before + s.n_after))[:12]:
        value = value_text(dimension, share.value) if dimension and share.value is not None \
            else share.value
        rows.append((value, int(share.n_before), int(share.n_after), 100 * share.share_before,
                     100 * share.share_after, shown(share.rate_before, measure),
                     shown(share.rate_after, measure), 100 * measure.sign * (share.mix + share.rate)
                     / (measure.sign * dec.change) if dec.change else None))
    rows.append(("(all)", int(dec.n_before), int(dec.n_after), 100.0, 100.0,
                 shown(dec.total_before, measure), shown(dec.total_after, measure), 100.0))
    unit = "" if measure.name == "confidence" else "%"
    name = "mean_confidence" if measure.name == "confidence" else (
        "slow_pct" if measure.name == "slow" else "error_pct")
    return Result(title, [dec.dimension.name.removeprefix("attrs."), "requests_before",
                          "requests_after", "share_before", "share_after", f"{name}_before",
                          f"{name}_after", "of_change_pct"], rows,
                  units={"share_before": "%", "share_after": "%", f"{name}_before": unit,
                         f"{name}_after": unit, "of_change_pct": "%"})


def shown(value: float | None, measure: Measure) -> float | None:
    if value is None:
        return None
    return value if measure.name == "confidence" else 100 * value
