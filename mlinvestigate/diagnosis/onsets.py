"""Where trouble starts: change points in every scope's signals, grouped into findings.

Signals per scope (a service's request lines for one model): the rate of each error category
and of all errors, the share of requests slower than the scope's own p95 (the tail, which is
what moves p99), mean confidence, and request lines per interval (a drop to half or less).
Each is segmented (:mod:`.changepoints`) and its episodes kept when the jump is large enough to
matter: error rates up by ≥ 1 point and ≥ 2× (the rule `mlinv loads` uses), the slow share up
by ≥ 2 points and ≥ 2×, confidence down by ≥ 0.05 and ≥ half a standard deviation, traffic
down to half or less from the segment before.

Episodes of one model (or of services that log no model) starting within a couple of intervals
of each other are one *finding*: the same trouble seen in several signals and hops.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np

from .changepoints import Episode, Rule, episodes, gaussian_variance, segment, two_proportion_z
from .series import Series

MIN_REQUESTS = 100
"""A scope with fewer request lines in the window is not analysed."""

ERROR_RULE = Rule("up", absolute=0.01, ratio=2.0)
SLOW_RULE = Rule("up", absolute=0.02, ratio=2.0)
TRAFFIC_RULE = Rule("down", absolute=0.0, ratio=2.0)
SLOW_QUANTILE = 0.95

BEFORE_INTERVALS = 15
"""Intervals after a recovery compared with the trouble before it, when its onset is not seen."""

KIND_ORDER = {"errors": 0, "slow": 1, "confidence": 2, "traffic": 3}


@dataclass
class Signal:
    """One episode of one signal of one scope."""

    scope: int
    metric: str
    """'errors', 'slow', 'confidence' or 'traffic'."""
    category: str | None
    """The error category for 'errors' (None: all errors)."""
    episode: Episode
    z: float
    """How far the trouble level is from the level before, in standard errors."""
    threshold_ms: float | None = None
    """For 'slow': the latency counted as slow."""

    @property
    def onset(self) -> int | None:
        return self.episode.onset

    def what(self) -> str:
        """A short name of the signal: "model_inference errors", "latency > 512 ms"."""
        if self.metric == "errors":
            return f"{self.category} errors" if self.category else "errors"
        if self.metric == "slow":
            return f"share slower than {self.threshold_ms:.0f} ms"
        if self.metric == "confidence":
            return "mean confidence"
        return "request lines per interval"


@dataclass
class Finding:
    number: int
    model_id: str | None
    signals: list[Signal]
    """Strongest first; the first is the primary symptom."""
    onset: int | None
    recovery: int | None
    peak: int
    scopes: list[int] = field(default_factory=list)

    @property
    def primary(self) -> Signal:
        return self.signals[0]


def detect(series: Series) -> list[Signal]:
    """Every episode of every signal of every scope with enough traffic."""
    found: list[Signal] = []
    exposure = (series.requests > 0).astype(float)
    # Intervals inside the data's span count as observed, even with no line (an outage).
    observed = np.zeros(series.size)
    active = np.nonzero(exposure.sum(axis=0))[0]
    if len(active):
        observed[active[0]:active[-1] + 1] = 1.0
    for s in range(len(series.scopes)):
        n = series.requests[s]
        if n.sum() < MIN_REQUESTS:
            continue
        categories = [(c, counts[s]) for c, counts in series.errors.items() if counts[s].sum() > 0]
        if len(categories) > 1:
            categories.append((None, sum((counts for _, counts in categories), np.zeros_like(n))))
        for category, k in categories:
            found += _binomial(s, "errors", category, k, n, ERROR_RULE)
        threshold = series.latency_quantile(s, SLOW_QUANTILE)
        if threshold is not None:
            slow, timed = series.slow_counts(s, threshold)
            if timed.sum() >= MIN_REQUESTS:
                found += _binomial(s, "slow", None, slow, timed, SLOW_RULE, threshold)
        if series.conf_n[s].sum() >= MIN_REQUESTS:
            found += _confidence(s, series)
        if n.sum() / max(observed.sum(), 1) >= 5:
            found += _traffic(s, n, observed)
    return found


def _binomial(scope: int, metric: str, category: str | None, k: np.ndarray, n: np.ndarray,
              rule: Rule, threshold: float | None = None) -> list[Signal]:
    rates = np.divide(k, n, out=np.full(len(n), np.nan), where=n > 0)
    out = []
    for ep in episodes(segment("binomial", k, n), rule, rates, n):
        (kb, nb), (ka, na) = _sides(ep, k, n)
        z = two_proportion_z(kb, nb, ka, na)
        if ep.onset is None:
            z = -z  # recovery: the later side is the better one
        if z >= 3:
            out.append(Signal(scope, metric, category, ep, z, threshold))
    return out


def _confidence(scope: int, series: Series) -> list[Signal]:
    s1, n = series.conf_sum[scope], series.conf_n[scope]
    sd = math.sqrt(gaussian_variance(s1, n))
    rule = Rule("down", absolute=max(0.05, 0.5 * sd), ratio=1.0)
    means = np.divide(s1, n, out=np.full(len(n), np.nan), where=n > 0)
    out = []
    for ep in episodes(segment("gaussian", s1, n), rule, means, n):
        (sb, nb), (sa, na) = _sides(ep, s1, n)
        if nb == 0 or na == 0:
            continue
        z = (sb / nb - sa / na) / (sd * math.sqrt(1 / nb + 1 / na))
        if ep.onset is None:
            z = -z
        if z >= 3:
            out.append(Signal(scope, "confidence", None, ep, z))
    return out


def _traffic(scope: int, n: np.ndarray, observed: np.ndarray) -> list[Signal]:
    rates = np.where(observed > 0, n, np.nan)
    out = []
    for ep in episodes(segment("poisson", n * observed, observed), TRAFFIC_RULE, rates, observed,
                       adjacent=True):
        (cb, eb), (ca, ea) = _sides(ep, n * observed, observed)
        if eb == 0 or ea == 0:
            continue
        z = (cb / eb - ca / ea) / math.sqrt(max(cb / eb**2 + ca / ea**2, 1e-12))
        if ep.onset is None:
            z = -z
        if z >= 4:
            out.append(Signal(scope, "traffic", None, ep, z))
    return out


def _sides(ep: Episode, a: np.ndarray, b: np.ndarray) -> tuple[tuple[float, float], tuple[float, float]]:
    """(sum a, sum b) before and during the episode (during and after, when its onset is not
    seen)."""
    if ep.onset is None:
        assert ep.recovery is not None
        during = slice(0, ep.recovery)
        after = slice(ep.recovery, min(len(a), ep.recovery + BEFORE_INTERVALS))
        return (float(a[during].sum()), float(b[during].sum())), \
            (float(a[after].sum()), float(b[after].sum()))
    before = slice(ep.since, ep.onset)
    during = slice(ep.onset, ep.recovery if ep.recovery is not None else len(a))
    return (float(a[before].sum()), float(b[before].sum())), \
        (float(a[during].sum()), float(b[during].sum()))


def group(signals: list[Signal], series: Series, tolerance: int) -> list[Finding]:
    """Findings: signals of the same model (services without a model join any) whose onsets
    are within `tolerance` intervals of the group's first onset."""
    def model_of(signal: Signal) -> str | None:
        return series.scopes[signal.scope].model_id

    ordered = sorted(signals, key=lambda s: (-1 if s.onset is None else s.onset, -s.z))
    groups: list[list[Signal]] = []
    for signal in ordered:
        home = None
        for members in groups:
            first = members[0]
            same_time = (signal.onset is None and first.onset is None) or (
                signal.onset is not None and first.onset is not None
                and signal.onset - first.onset <= tolerance)
            models = {model_of(m) for m in members} - {None}
            same_model = model_of(signal) is None or not models or model_of(signal) in models
            if same_time and same_model:
                home = members
                break
        if home is None:
            groups.append([signal])
        else:
            home.append(signal)
    findings = []
    for members in groups:
        members.sort(key=_strength, reverse=True)
        primary = members[0]
        onsets = [m.onset for m in members if m.onset is not None]
        recoveries = [m.episode.recovery for m in members]
        recovery = None if any(r is None for r in recoveries) else max(r for r in recoveries if r is not None)
        models = sorted({model_of(m) for m in members if model_of(m) is not None})
        findings.append(Finding(0, models[0] if models else None, members,
                                min(onsets) if onsets else None, recovery, primary.episode.peak,
                                sorted({m.scope for m in members})))
    findings.sort(key=lambda f: (-1 if f.onset is None else f.onset))
    for number, finding in enumerate(findings, 1):
        finding.number = number
    return findings


def _strength(signal: Signal) -> tuple[float, float]:
    # Errors and latency are what users feel; confidence and traffic are symptoms behind them.
    weight = {"errors": 1.0, "slow": 1.0, "confidence": 0.8, "traffic": 0.5}[signal.metric]
    specific = 1.0 if signal.metric != "errors" or signal.category else 0.9
    return (weight * specific * min(signal.z, 50.0), signal.z)


def tolerance_intervals(step: timedelta) -> int:
    """Onsets this many intervals apart or less are the same trouble: two intervals, and at
    least two minutes."""
    return max(2, math.ceil(timedelta(minutes=2) / step))


def interval_time(series: Series, index: int | None) -> datetime | None:
    return None if index is None else series.start_of(index)
