"""Change points on small per-interval series, in numpy.

A series is a few hundred intervals of counts (k bad events out of n requests), of sums (mean
confidence), or of counts per interval (throughput). It is cut into segments of constant level by
*optimal partitioning*: the segmentation that minimises the summed negative log-likelihood of the
segments plus a penalty per segment (Jackson et al. 2005; PELT without the pruning, which a few
hundred intervals do not need). The likelihood is binomial, Gaussian (known variance) or
Poisson, each divided by a dispersion factor estimated from the series itself, because real
traffic is burstier than the textbook models and an underestimated variance cuts every wiggle.

The segments become *episodes*: a jump to a worse level (by a practical margin, not only a
significant one) opens one at the segment's start, the first later segment back near the level
before it closes it (the recovery), and the worst stretch in between is the peak.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

import numpy as np

Model = Literal["binomial", "gaussian", "poisson"]

MEDIAN_CHI2_1 = 0.454936
"""The median of a chi-square with one degree of freedom: a robust variance estimate divides
the median squared standardised difference by it."""

PENALTY_PER_LOG_INTERVAL = 2.5
"""Penalty per segment, in units of log(intervals) of negative log-likelihood. BIC would be
about 1; higher keeps noise from being cut, and the effect-size rules below do the rest."""

MIN_SEGMENT = 2
"""Intervals per segment at least: a single odd interval is noise more often than an incident."""


@dataclass(frozen=True)
class Segment:
    start: int
    """First interval (index into the series)."""
    end: int
    """One past the last interval."""
    level: float
    """Rate (k/n), mean, or count per interval."""
    weight: float
    """Trials (n), observations, or intervals behind the level."""
    events: float
    """k for a rate, the sum for a mean, the count for throughput."""


def _dispersion_binomial(k: np.ndarray, n: np.ndarray) -> float:
    """How much more than binomial the interval rates vary, from successive differences (a
    step between levels makes one large difference, which the median ignores)."""
    keep = n > 0
    k, n = k[keep], n[keep]
    if len(n) < 6 or k.sum() == 0:
        return 1.0
    pooled = k.sum() / n.sum()
    if pooled <= 0 or pooled >= 1:
        return 1.0
    p = k / n
    variance = pooled * (1 - pooled) * (1 / n[1:] + 1 / n[:-1])
    z2 = (p[1:] - p[:-1]) ** 2 / variance
    return float(np.clip(np.median(z2) / MEDIAN_CHI2_1, 1.0, 50.0))


def _dispersion_poisson(counts: np.ndarray) -> float:
    if len(counts) < 6 or counts.sum() == 0:
        return 1.0
    mean = max(float(np.mean(counts)), 1e-9)
    z2 = (counts[1:] - counts[:-1]) ** 2 / (2 * mean)
    return float(np.clip(np.median(z2) / MEDIAN_CHI2_1, 1.0, 1e6))


def gaussian_variance(s1: np.ndarray, n: np.ndarray) -> float:
    """Per-observation variance of a mean series from successive differences of the interval
    means (it includes between-interval noise, which is what a cut must rise above)."""
    keep = n > 0
    s1, n = s1[keep], n[keep]
    if len(n) < 3:
        return 1.0
    means = s1 / n
    z2 = (means[1:] - means[:-1]) ** 2 / (1 / n[1:] + 1 / n[:-1])
    variance = float(np.median(z2) / MEDIAN_CHI2_1)
    return variance if variance > 0 else float(np.var(means) or 1.0)


def _cost_matrix(model: Model, a: np.ndarray, b: np.ndarray, scale: float) -> np.ndarray:
    """cost[s, t] of the segment of intervals s..t-1, from cumulative sums (s < t)."""
    ca = np.concatenate([[0.0], np.cumsum(a)])
    cb = np.concatenate([[0.0], np.cumsum(b)])
    k = ca[None, :] - ca[:, None]  # [s, t] = sum over s..t-1
    n = cb[None, :] - cb[:, None]
    with np.errstate(divide="ignore", invalid="ignore"):
        if model == "binomial":
            p = np.where(n > 0, k / np.where(n > 0, n, 1), 0.0)
            cost = -(_xlogy(k, p) + _xlogy(n - k, 1 - p))
        elif model == "poisson":
            rate = np.where(n > 0, k / np.where(n > 0, n, 1), 0.0)
            cost = k - _xlogy(k, rate)
        else:
            # Sum of squares of the interval means around the segment mean, each weighted by
            # its count: Σ S1²/n − (Σ S1)²/Σ n. The spread inside intervals is the same for
            # every segmentation, so it is left out (no sum of squares needs to be scanned).
            per_interval = np.divide(a * a, b, out=np.zeros_like(a), where=b > 0)
            cc = np.concatenate([[0.0], np.cumsum(per_interval)])
            s2 = cc[None, :] - cc[:, None]
            cost = np.where(n > 0, s2 - np.where(n > 0, k * k / np.where(n > 0, n, 1), 0.0), 0.0) / 2
    return np.nan_to_num(cost, nan=0.0, posinf=0.0) / scale


def _xlogy(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(x > 0, x * np.log(np.where(y > 0, y, 1.0)), 0.0)


def segment(model: Model, a: np.ndarray, b: np.ndarray, *, penalty: float | None = None,
            min_len: int = MIN_SEGMENT) -> list[Segment]:
    """Optimal segmentation of one series.

    binomial: a = bad events, b = trials per interval; gaussian: a = sum, b = count (the
    variance per observation is estimated from the series); poisson: a = count, b = exposure
    (1 per interval, 0 where there was no data)."""
    a = np.asarray(a, dtype=float)
    b = np.asarray(b, dtype=float)
    size = len(a)
    if size == 0:
        return []
    if model == "binomial":
        scale = _dispersion_binomial(a, b)
    elif model == "poisson":
        scale = _dispersion_poisson(a[b > 0])
    else:
        scale = gaussian_variance(a, b)
    cost = _cost_matrix(model, a, b, scale)
    beta = penalty if penalty is not None else PENALTY_PER_LOG_INTERVAL * math.log(max(size, 3))
    best = np.full(size + 1, np.inf)
    best[0] = -beta
    previous = np.zeros(size + 1, dtype=int)
    for t in range(1, size + 1):
        last = t - min_len
        if last < 0:
            continue  # a prefix shorter than min_len ends no segment: best[t] stays infinite
        candidates = best[: last + 1] + cost[: last + 1, t] + beta
        s = int(np.argmin(candidates))
        best[t], previous[t] = candidates[s], s
    if not np.isfinite(best[size]):  # a series shorter than two segments: one segment
        previous[size] = 0
    bounds = [size]
    while bounds[-1] > 0:
        bounds.append(int(previous[bounds[-1]]))
    bounds.reverse()
    segments = []
    for start, end in zip(bounds[:-1], bounds[1:], strict=True):
        events = float(a[start:end].sum())
        weight = float(b[start:end].sum())
        level = events / weight if weight > 0 else math.nan
        segments.append(Segment(start, end, level, weight, events))
    return segments


# --------------------------------------------------------------------------- episodes

Direction = Literal["up", "down"]


@dataclass(frozen=True)
class Rule:
    """When a level is worse than a reference level by enough to call it trouble."""

    direction: Direction
    """'up' when higher is worse (error rate, slow share), 'down' when lower is (confidence,
    throughput)."""
    absolute: float = 0.0
    """At least this much worse (rate points for rates)."""
    ratio: float = 1.0
    """And at least this many times worse (for 'down': the level at most reference / ratio)."""

    def worse(self, level: float, reference: float) -> bool:
        if math.isnan(level) or math.isnan(reference):
            return False
        if self.direction == "up":
            return level - reference >= self.absolute and level >= reference * self.ratio
        return reference - level >= self.absolute and level * self.ratio <= reference


@dataclass(frozen=True)
class Episode:
    onset: int | None
    """First interval of the trouble; None when the series was already in trouble at its start
    (only its recovery is seen)."""
    recovery: int | None
    """First interval back near the level before; None when it lasts to the end."""
    peak: int
    """The worst interval (smoothed over its neighbours)."""
    before: float
    """The level before the onset (or after the recovery, when the onset is not seen)."""
    worst: float
    """The worst segment level in the episode."""
    peak_value: float
    """The smoothed per-interval value at the peak."""
    since: int = 0
    """Start of the stretch at the level before (the reference segment, and any segments
    after it that were not worse)."""


def episodes(segments: list[Segment], rule: Rule, per_interval: np.ndarray,
             weights: np.ndarray, *, adjacent: bool = False) -> list[Episode]:
    """Trouble in a segmented series: a worse jump opens an episode, a return near the level
    before it closes it. The level before only follows improvements (a slow creep upwards is
    still measured from where it started), or every level with `adjacent` (throughput, whose
    daily curve must not read as an outage). `per_interval` and `weights` give the peak."""
    valid = [s for s in segments if not math.isnan(s.level)]
    found: list[Episode] = []
    if len(valid) < 2:
        return found
    smooth = _smoothed(per_interval, weights)
    reference, since = valid[0].level, valid[0].start
    rest = valid[1:]
    if rule.worse(valid[0].level, valid[1].level):
        # Already in trouble when the series starts: only the recovery is seen.
        peak = _peak(rule, smooth, 0, valid[1].start)
        found.append(Episode(None, valid[1].start, peak, valid[1].level, valid[0].level,
                             float(smooth[peak])))
        reference, since, rest = valid[1].level, valid[1].start, valid[2:]
    opened: int | None = None
    worst = math.nan
    for segment in rest:
        level = segment.level
        if opened is None:
            if rule.worse(level, reference):
                opened, worst = segment.start, level
            elif adjacent or _better(rule, level, reference):
                reference, since = level, segment.start
            continue
        worst = _worst(rule, worst, level)
        if not rule.worse(level, reference):
            peak = _peak(rule, smooth, opened, segment.start)
            found.append(Episode(opened, segment.start, peak, reference, worst, float(smooth[peak]),
                                 since))
            opened, reference, since = None, level, segment.start
    if opened is not None:
        peak = _peak(rule, smooth, opened, len(per_interval))
        found.append(Episode(opened, None, peak, reference, worst, float(smooth[peak]), since))
    return found


def _better(rule: Rule, level: float, reference: float) -> bool:
    return level < reference if rule.direction == "up" else level > reference


def _worst(rule: Rule, a: float, b: float) -> float:
    if math.isnan(a):
        return b
    return max(a, b) if rule.direction == "up" else min(a, b)


def _smoothed(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Three-interval weighted average, so one lucky interval is not the peak."""
    kernel = np.ones(3)
    top = np.convolve(np.nan_to_num(values * weights), kernel, mode="same")
    bottom = np.convolve(weights, kernel, mode="same")
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(bottom > 0, top / np.where(bottom > 0, bottom, 1), np.nan)


def _peak(rule: Rule, smooth: np.ndarray, start: int, end: int) -> int:
    window = smooth[start:end]
    if len(window) == 0 or np.all(np.isnan(window)):
        return start
    pick = np.nanargmax(window) if rule.direction == "up" else np.nanargmin(window)
    return start + int(pick)


def two_proportion_z(k1: float, n1: float, k2: float, n2: float) -> float:
    """z of p2 − p1 under a pooled binomial (0 when either side is empty)."""
    if n1 <= 0 or n2 <= 0:
        return 0.0
    pooled = (k1 + k2) / (n1 + n2)
    if pooled <= 0 or pooled >= 1:
        return 0.0
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    return (k2 / n2 - k1 / n1) / se
