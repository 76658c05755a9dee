"""From SQL summaries to drift statistics and a verdict, for one feature and two groups.

Definitions (the command output repeats the ones in use):

* **PSI**: natural log, on the chosen binning (default ``quantile10``: reference deciles,
  open outer edges), smoothing ``clip1e-4`` (each bin share floored at 1e-4) by default.
* **JS**: Jensen–Shannon *distance*, base 2 (0 … 1), on the same bins as PSI.
* **TV**: total variation distance ½Σ|p − q| on the same bins (or categories).
* **KS**: two-sample Kolmogorov–Smirnov D and p-value, from the empirical CDFs evaluated at
  the reference quantile grid (201 points, min and max included). D is exact at those
  points; between two grid points either CDF can rise by at most that bucket's share, so the
  exact D is at most one bucket share (≈ 0.5 % of the reference, more where the current
  piles up) above the value shown. A feature with few distinct values has them all on the
  grid, and then D is exact.
* **Wasserstein**: W1 / max(reference std, 0.001) (Evidently's normed form). Beyond the
  reference min/max it is exact (from sums of the overshoot), and so it is in the two outer
  grid buckets on each side (from sums of their values) unless the CDFs cross there; in the
  other, narrow buckets the CDFs are linear between grid points.
* Categorical: PSI, JS, TV and Pearson chi-square on the union of categories; a category the
  reference never had is *unseen* and named.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from . import stats
from .features import Feature
from .profile import Buckets, Population, Profile

SEVERITY = {"significant": 3, "moderate": 2, "none": 1, "insufficient data": 0}

METHOD_THRESHOLDS: dict[str, tuple[float, float]] = {
    "psi": (stats.PSI_MODERATE, stats.PSI_SIGNIFICANT),
    "js": (0.1, 0.2),
    "tv": (0.1, 0.25),
    "wasserstein": (0.1, 0.25),
    "ks": (0.1, 0.2),
    "chi2": (0.05, 0.001),
}
"""(moderate, significant) per ``--method``. For psi/js/tv/wasserstein/ks the statistic (KS: D)
must reach the value; for chi2 the p-value must fall below it. PSI bands are the
credit-scorecard ones; the rest are our defaults (Evidently uses 0.1 for normed Wasserstein
and for JS, the latter in base e)."""

NUMERIC_ONLY = frozenset({"ks", "wasserstein"})
CATEGORICAL_ONLY = frozenset({"chi2"})

MISSING_MODERATE = 0.05
"""A missing rate that moves by 5 percentage points or more is at least a moderate change."""
MISSING_SIGNIFICANT = 0.20
"""… and by 20 points or more a significant one."""

VANISHED_MIN_ROWS = 20
"""A field is called vanished (or new) only when the window without it has at least this many
rows of the events that should log it."""


@dataclass(frozen=True)
class Options:
    """How statistics are computed and judged."""

    method: str = "psi"
    moderate: float | None = None
    significant: float | None = None
    binning: str = "quantile10"
    edges: tuple[float, ...] | None = None
    smoothing: stats.Smoothing = "clip1e-4"
    js_base: float = 2.0
    min_samples: int = stats.MIN_SAMPLES
    exact: bool = False
    """Read every row of big windows instead of evenly spread blocks (``--exact``)."""

    def thresholds(self, method: str) -> tuple[float, float]:
        moderate, significant = METHOD_THRESHOLDS[method]
        if method == self.method:
            moderate = self.moderate if self.moderate is not None else moderate
            significant = self.significant if self.significant is not None else significant
        return moderate, significant

    def method_for(self, feature: Feature) -> str:
        """The judged method for a feature: --method, or psi where it does not apply."""
        if feature.kind == "categorical" and self.method in NUMERIC_ONLY:
            return "psi"
        if feature.kind == "numeric" and self.method in CATEGORICAL_ONLY:
            return "psi"
        return self.method


# --------------------------------------------------------------------------- numeric bins


def _below(value: float) -> float:
    return float(np.nextafter(value, -np.inf))


@dataclass(frozen=True)
class NumericBins:
    """The PSI binning and the KS/Wasserstein grid of one numeric feature, both fixed by the
    reference, and the boundary list SQL counts over (their union; see profile.Buckets)."""

    binning: stats.Binning
    grid: tuple[float, ...]
    boundaries: tuple[float, ...]

    @classmethod
    def build(cls, binning: stats.Binning, grid: Sequence[float]) -> NumericBins:
        edges = binning.edges
        points: set[float] = {float(g) for g in grid}
        # PSI bins are left-closed, SQL buckets right-closed: x < e  <=>  x <= nextafter(e, -inf).
        for e in edges[:-1]:
            if math.isfinite(e):
                points.add(_below(e))
        if math.isfinite(edges[-1]):
            points.add(float(edges[-1]))  # the last PSI bin is closed on the right
        return cls(binning, tuple(float(g) for g in sorted(set(grid))), tuple(sorted(points)))

    @cached_property
    def _positions(self) -> tuple[np.ndarray, np.ndarray, int | None]:
        """Where the grid points, the PSI cut points (x < e) and the last PSI edge (x <= e)
        sit in `boundaries`: the per-window work is then one cumsum and a gather. -1 stands
        for "no value is below" (e = -inf), len(boundaries) for "all values" (e = +inf)."""
        position = {b: j for j, b in enumerate(self.boundaries)}
        everything = len(self.boundaries)
        grid = np.array([position[g] for g in self.grid], dtype=np.int64)
        cuts = np.array([-1 if e == -math.inf else everything if e == math.inf else position[_below(e)]
                         for e in self.binning.edges[:-1]], dtype=np.int64)
        last = self.binning.edges[-1]
        return grid, cuts, None if last == math.inf else position[float(last)]

    @property
    def tail_cuts(self) -> tuple[float, ...]:
        """Grid points 1, 2, -3 and -2: SQL sums the values at or below the first two and above
        the last two, which with the min/max overshoot sums gives the sum of the values in each
        of the two outer grid buckets on either side (see wasserstein_from_buckets). Empty
        when the grid has fewer than six points."""
        g = self.grid
        return (g[1], g[2], g[-3], g[-2]) if len(g) >= 6 else ()

    def _cumulative(self, buckets: Buckets) -> np.ndarray:
        """#{x <= b} for each boundary b, then -1 → 0 and len → n (see _positions)."""
        counts = np.asarray(buckets.counts, dtype=np.int64)
        return np.concatenate((np.cumsum(counts[:-1]), [int(counts.sum()), 0]))

    def psi_counts(self, buckets: Buckets) -> stats.BinCounts:
        """Counts over the PSI bins, with the values below the first / above the last edge."""
        _, cuts, last = self._positions
        at = self._cumulative(buckets)
        n = int(at[-2])
        up_to_last = n if last is None else int(at[last])
        starts = at[cuts]
        ends = np.append(starts[1:], up_to_last)
        return stats.BinCounts((ends - starts).astype(np.int64), int(starts[0]), n - up_to_last)

    def cdf_counts(self, buckets: Buckets) -> np.ndarray:
        """#{x <= g} at each grid point g."""
        grid, _, _ = self._positions
        return self._cumulative(buckets)[grid]

    def grid_counts(self, buckets: Buckets) -> np.ndarray:
        """Counts per grid bucket (x <= g0, (g0, g1], …, x > g_last), for KS."""
        cdf = self.cdf_counts(buckets)
        n = int(buckets.counts.sum())
        return np.diff(np.concatenate(([0], cdf, [n])))


def median_from_buckets(bins: NumericBins, buckets: Buckets) -> str:
    """The median as text, from the grid CDF (linear inside a grid bucket, so within one bucket
    of the exact median); beyond the reference range only a bound can be given."""
    n = int(buckets.counts.sum())
    if n == 0:
        return "–"
    cdf = bins.cdf_counts(buckets) / n
    grid = np.asarray(bins.grid)
    if cdf[0] >= 0.5:
        return f"≤ {grid[0]:.4g}" if cdf[0] > 0.5 or len(grid) == 1 else f"{grid[0]:.4g}"
    if cdf[-1] < 0.5:
        return f"> {grid[-1]:.4g}"
    j = int(np.argmax(cdf >= 0.5))
    low, high = cdf[j - 1], cdf[j]
    share = (0.5 - low) / (high - low) if high > low else 1.0
    return f"{grid[j - 1] + share * (grid[j] - grid[j - 1]):.4g}"


def wasserstein_from_buckets(bins: NumericBins, ref: Buckets, cur: Buckets, ref_std: float) -> float:
    """Normed W1 = ∫|F_cur − F_ref| dx ÷ reference std, from the grid CDFs.

    Beyond the grid ends (the reference min and max) the area is exact, from the overshoot
    sums. Inside a grid bucket (a, b] the area of F_cur − F_ref is exact when both windows'
    sums of values in the bucket are known, by ∫ₐᵇ F = b·F(b) − a·F(a) − Σx/n, provided the
    CDFs do not cross inside; that holds for the two outer buckets on each side, the widest
    ones and where heavy tails put most of the area (linear guesses there made latency's W1
    55 % too high on the 10M benchmark). Elsewhere the CDFs are taken as linear between grid
    points, the buckets being narrow (0.5 % of the reference each)."""
    n, m = int(ref.counts.sum()), int(cur.counts.sum())
    cdf_ref, cdf_cur = bins.cdf_counts(ref), bins.cdf_counts(cur)
    f_ref, f_cur = cdf_ref / n, cdf_cur / m
    grid = np.asarray(bins.grid)
    difference = f_cur - f_ref
    d0, d1 = difference[:-1], difference[1:]
    widths = np.diff(grid)
    same_sign = d0 * d1 >= 0
    magnitude = np.abs(d0) + np.abs(d1)
    with np.errstate(invalid="ignore", divide="ignore"):
        crossing = np.where(magnitude > 0, (d0 * d0 + d1 * d1) / (2 * magnitude), 0.0)
    areas = widths * np.where(same_sign, magnitude / 2, crossing)
    sums_ref, sums_cur = _outer_bucket_sums(grid, ref, cdf_ref), _outer_bucket_sums(grid, cur, cdf_cur)
    if sums_ref and sums_cur:
        for j, (s_ref, s_cur) in zip((0, 1, len(grid) - 3, len(grid) - 2), zip(sums_ref, sums_cur,
                                                                            strict=True), strict=True):
            if same_sign[j]:
                a, b = grid[j], grid[j + 1]
                signed = b * difference[j + 1] - a * difference[j] - (s_cur / m - s_ref / n)
                areas[j] = abs(signed)
    inside = float(np.sum(areas))
    # Beyond the grid ends the reference CDF is 0 or 1, so the area is the mean overshoot of
    # each window; the reference's own overshoot is 0 unless the grid came from a subsample,
    # and the formula covers both.
    tails = abs(cur.below / m - ref.below / n) + abs(cur.above / m - ref.above / n)
    return (inside + tails) / max(ref_std, stats.WASSERSTEIN_STD_FLOOR)


def _outer_bucket_sums(grid: np.ndarray, buckets: Buckets, cdf: np.ndarray) -> tuple[float, ...]:
    """Σx over the grid buckets 1, 2, -2 and -1 ((g0, g1], (g1, g2], (g-3, g-2], (g-2, g-1]) of
    one window, from its tail sums and overshoot sums; () when it has no tail sums."""
    if len(buckets.tail_sums) != 4 or len(grid) < 6:
        return ()
    le1, le2, gt3, gt2 = buckets.tail_sums
    total = int(buckets.counts.sum())
    lo, hi = float(grid[0]), float(grid[-1])
    le0 = lo * float(cdf[0]) - buckets.below          # Σx over x <= min: each x is min − (min − x)
    gt1 = hi * float(total - cdf[-1]) + buckets.above  # Σx over x > max: each x is max + (x − max)
    return (le1 - le0, le2 - le1, gt3 - gt2, gt2 - gt1)


def reference_bins(
    options: Options, ref: Profile, cur: Profile | None
) -> NumericBins:
    """The bins of one numeric feature from its reference profile (and the current one for
    sturges-combined)."""
    summary_ref = stats.WindowSummary(
        n=ref.n, minimum=float(ref.minimum), maximum=float(ref.maximum), deciles=ref.deciles,
        skewness=ref.skewness_g1, std=ref.std,
    )
    summary_cur = None
    if cur is not None and cur.n > 0 and cur.minimum is not None:
        summary_cur = stats.WindowSummary(n=cur.n, minimum=float(cur.minimum),
                                          maximum=float(cur.maximum))
    if options.edges is not None:
        binning = stats.binning_from_summaries("fixed", summary_ref, edges=options.edges)
    else:
        binning = stats.binning_from_summaries(options.binning, summary_ref, summary_cur)
    grid = list(ref.grid) if ref.grid else []
    # The grid ends are the exact min and max even when the quantiles were subsampled.
    grid = [g for g in grid if ref.minimum <= g <= ref.maximum]
    grid = sorted({float(ref.minimum), float(ref.maximum), *grid})
    return NumericBins.build(binning, grid)


# --------------------------------------------------------------------------- results


@dataclass
class FeatureDrift:
    """Everything reported about one feature for one pair of groups."""

    feature: Feature
    ref: Population
    cur: Population
    psi: float | None = None
    ks: float | None = None
    p_value: float | None = None
    """KS p-value for numeric features, chi-square p-value for categorical ones."""
    js: float | None = None
    wasserstein: float | None = None
    tv: float | None = None
    n_bins: int | None = None
    unseen: tuple[tuple[str, float], ...] = ()
    """Categories the reference never had, with their share of the current window."""
    vanished: tuple[tuple[str, float], ...] = ()
    """Reference categories absent from the current window, with their reference share."""
    type_change: tuple[str, str] | None = None
    verdict: str = "insufficient data"
    reasons: list[str] = field(default_factory=list)
    judged_by: str = "psi"

    @property
    def severity(self) -> int:
        return SEVERITY[self.verdict]

    def statistic(self, method: str) -> float | None:
        return {"psi": self.psi, "js": self.js, "tv": self.tv, "ks": self.ks,
                "wasserstein": self.wasserstein, "chi2": self.p_value}.get(method)

    def sort_key(self) -> tuple[int, float, str]:
        value = self.statistic(self.judged_by)
        if value is None or math.isnan(value):
            value = -math.inf
        elif self.judged_by == "chi2":
            value = -value  # a smaller p-value is more drift
        return (-self.severity, -value, self.feature.name)


def enough(ref: Population, cur: Population, options: Options) -> bool:
    return stats.has_enough_samples(ref.valid, cur.valid, options.min_samples)


def ks_statistic(ref_counts: np.ndarray, cur_counts: np.ndarray) -> float:
    """KS D alone from counts over a shared ascending grid (no p-value: per-interval use)."""
    n, m = int(ref_counts.sum()), int(cur_counts.sum())
    return float(np.max(np.abs(np.cumsum(ref_counts) / n - np.cumsum(cur_counts) / m), initial=0.0))


KS_ASYMPTOTIC_BELOW = 1e-6
"""KS p-values the asymptotic law puts below this are reported from it: the exact lattice
computation costs up to half a second per feature near 10⁴ values and would only refine a
number that already says "certainly different"."""


def kolmogorov_pvalue(d: float, n: int, m: int) -> float:
    """Asymptotic two-sample KS p-value Q_KS((√nₑ + 0.12 + 0.11/√nₑ)·D), nₑ = nm/(n + m)
    (Stephens' correction, as in Numerical Recipes)."""
    root = math.sqrt(n * m / (n + m))
    lam = (root + 0.12 + 0.11 / root) * d
    if lam < 0.2:
        return 1.0
    terms = [2.0 * (-1) ** (k - 1) * math.exp(-2.0 * k * k * lam * lam) for k in range(1, 101)]
    return min(max(sum(terms), 0.0), 1.0)


def ks_test(ref_counts: np.ndarray, cur_counts: np.ndarray) -> tuple[float, float]:
    """KS D over the shared grid and its p-value (exact unless tiny; see KS_ASYMPTOTIC_BELOW)."""
    d = ks_statistic(ref_counts, cur_counts)
    n, m = int(ref_counts.sum()), int(cur_counts.sum())
    quick = kolmogorov_pvalue(d, n, m)
    if quick < KS_ASYMPTOTIC_BELOW:
        return d, quick
    result = stats.ks_from_counts(ref_counts, cur_counts)
    return result.statistic, result.pvalue


def numeric_statistics(
    drift: FeatureDrift, bins: NumericBins, ref: Buckets, cur: Buckets, ref_std: float,
    options: Options, *, p_value: bool = True, everything: bool = True,
) -> None:
    """Fill PSI, JS, TV, KS and Wasserstein of a numeric feature from its bucket counts.

    Without `p_value` only the KS statistic is computed (the exact p-value costs up to a
    few tenths of a second for windows of ~10⁴ values, too much per interval). Without
    `everything` only PSI and the statistic the verdict is made of (per interval, where the
    others are shown only for a few features)."""
    wanted = options.method_for(drift.feature)
    r, c = bins.binning.pair(bins.psi_counts(ref), bins.psi_counts(cur))
    drift.n_bins = len(r)
    drift.psi = stats.psi(r, c, options.smoothing)
    if everything or wanted == "js":
        drift.js = stats.js_distance(r, c, options.js_base)
    if everything or wanted == "tv":
        drift.tv = stats.total_variation(r, c)
    if p_value:
        drift.ks, drift.p_value = ks_test(bins.grid_counts(ref), bins.grid_counts(cur))
    elif everything or wanted == "ks":
        drift.ks = ks_statistic(bins.grid_counts(ref), bins.grid_counts(cur))
    if everything or wanted == "wasserstein":
        drift.wasserstein = wasserstein_from_buckets(bins, ref, cur, ref_std)


def categorical_statistics(
    drift: FeatureDrift, ref: Mapping[str, int], cur: Mapping[str, int], options: Options,
    *, p_value: bool = True, everything: bool = True,
) -> None:
    """Fill PSI, JS, TV and (with `p_value`) chi-square of a categorical feature from its value
    counts, over the union of the categories either window has."""
    keys, r, c = stats.align_categories(ref, cur)
    keep = (r > 0) | (c > 0)
    keys = tuple(k for k, kept in zip(keys, keep, strict=True) if kept)
    r, c = r[keep], c[keep]
    if not keys or r.sum() == 0 or c.sum() == 0:
        return
    drift.n_bins = len(keys)
    drift.psi = stats.psi(r, c, options.smoothing)
    wanted = options.method_for(drift.feature)
    if everything or wanted == "js":
        drift.js = stats.js_distance(r, c, options.js_base)
    if everything or wanted == "tv":
        drift.tv = stats.total_variation(r, c)
    if p_value:
        drift.p_value = stats.chi2_contingency(r, c).pvalue
    total_ref, total_cur = float(r.sum()), float(c.sum())
    drift.unseen = tuple(sorted(((k, cv / total_cur) for k, rv, cv in zip(keys, r, c, strict=True)
                                 if rv == 0 and cv > 0), key=lambda item: -item[1]))
    drift.vanished = tuple(sorted(((k, rv / total_ref) for k, rv, cv in zip(keys, r, c, strict=True)
                                   if rv > 0 and cv == 0), key=lambda item: -item[1]))


def _band(value: float | None, moderate: float, significant: float, *, lower_is_worse: bool) -> str:
    if value is None or math.isnan(value):
        return "none"
    if lower_is_worse:
        return "significant" if value < significant else "moderate" if value < moderate else "none"
    return "significant" if value >= significant else "moderate" if value >= moderate else "none"


def _percent(rate: float | None) -> str:
    if rate is None:
        return "–"
    return f"{rate * 100:.1f}%" if rate * 100 >= 0.1 or rate == 0 else f"{rate * 100:.2f}%"


def judge(drift: FeatureDrift, options: Options) -> None:
    """Set the verdict and the reasons: the distribution statistic of the judged method, the
    change of the missing rate, new or vanished fields and type changes."""
    method = options.method_for(drift.feature)
    drift.judged_by = method
    moderate, significant = options.thresholds(method)
    verdicts: list[str] = []
    reasons: list[str] = []
    ref, cur = drift.ref, drift.cur
    if enough(ref, cur, options):
        value = drift.statistic(method)
        band = _band(value, moderate, significant, lower_is_worse=method == "chi2")
        if method == "ks" and band != "none" and (drift.p_value or 0.0) >= 0.05:
            band = "none"  # a large D that is not significant is noise from a small window
        verdicts.append(band)
        if band != "none":
            label = "chi-square p" if method == "chi2" else method.upper() if method != "wasserstein" \
                else "Wasserstein"
            reasons.append(f"{label} {_number(value)}")
    else:
        short = []
        if ref.valid < options.min_samples:
            short.append(f"reference {ref.valid}")
        if cur.valid < options.min_samples:
            short.append(f"current {cur.valid}")
        reasons.append(f"too few values ({', '.join(short)}; need {options.min_samples})")
    rate_ref, rate_cur = ref.missing_rate(), cur.missing_rate()
    if ref.rows and cur.rows:
        if ref.valid > 0 and cur.valid == 0 and cur.rows >= VANISHED_MIN_ROWS:
            verdicts.append("significant")
            reasons.insert(0, f"vanished: no usable value in current (missing {_percent(rate_cur)})")
        elif ref.valid == 0 and cur.valid > 0 and ref.rows >= VANISHED_MIN_ROWS:
            verdicts.append("moderate")
            reasons.insert(0, f"new field: absent from reference, {cur.valid:,} values in current")
        elif rate_ref is not None and rate_cur is not None:
            change = abs(rate_cur - rate_ref)
            if change >= MISSING_MODERATE and min(ref.rows, cur.rows) >= options.min_samples:
                verdicts.append("significant" if change >= MISSING_SIGNIFICANT else "moderate")
                reasons.append(f"missing {_percent(rate_ref)} → {_percent(rate_cur)}")
    elif cur.rows and not ref.rows:
        verdicts.append("moderate")
        reasons.insert(0, "new: the events that log it are not in the reference")
    elif ref.rows and not cur.rows:
        # No rows of the events that log it (no model loads in this interval, say): no
        # evidence either way, which is not the same as the field having vanished.
        reasons = [r for r in reasons if not r.startswith("too few")]
        reasons.insert(0, "no events that log it in current")
    if drift.type_change is not None:
        verdicts.append("significant")
        reasons.append(f"type changed {drift.type_change[0]} → {drift.type_change[1]}")
    if drift.unseen and enough(ref, cur, options):
        named = ", ".join(f"'{k}' {_percent(share)}" for k, share in drift.unseen[:3])
        more = f" and {len(drift.unseen) - 3} more" if len(drift.unseen) > 3 else ""
        reasons.append(f"unseen {named}{more}")
    if drift.vanished and enough(ref, cur, options):
        named = ", ".join(f"'{k}' {_percent(share)}" for k, share in drift.vanished[:3])
        more = f" and {len(drift.vanished) - 3} more" if len(drift.vanished) > 3 else ""
        reasons.append(f"gone {named}{more}")
    if ref.nonfinite or cur.nonfinite:
        reasons.append(f"NaN/inf: {ref.nonfinite:,} → {cur.nonfinite:,}")
    if ref.unusable or cur.unusable:
        reasons.append(f"unusable values: {ref.unusable:,} → {cur.unusable:,}")
    if any(r.startswith(("vanished", "new")) for r in reasons):
        reasons = [r for r in reasons if not r.startswith("too few")]
    confident = [v for v in verdicts if v != "insufficient data"]
    drift.verdict = max(confident, key=SEVERITY.__getitem__) if confident else "insufficient data"
    drift.reasons = reasons


def _number(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0 or 0.001 <= abs(value) < 1000:
        return f"{value:.3g}" if abs(value) < 1 else f"{value:.2f}"
    return f"{value:.2e}"


def describe_value(value: float | None) -> str:
    """A statistic for a sentence: 3 significant digits below 1, 2 decimals above."""
    return _number(value)
