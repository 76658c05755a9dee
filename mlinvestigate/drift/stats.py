"""Drift statistics on small arrays: bin edges, bin counts, per-value counts, quantile grids.

Division of labour
------------------
DuckDB scans up to ~10 M rows and returns *summaries*: counts per bin, counts per category,
min/max/n, quantiles, standard deviation, skewness. This module turns those summaries into
statistics with numpy. It never needs the raw rows, so every statistic has a form that takes
counts (or quantiles). Functions that take raw samples exist for small inputs and for tests;
they give the same numbers as the count-based forms fed with what SQL would return.

No scipy at runtime (scipy is the test-time reference), no duckdb/rich imports.

Conventions used throughout
---------------------------
* ``ref`` is the reference window (size n), ``cur`` the current window (size m).
* Counts never include missing values: SQL filters ``NULL``/NaN and reports them separately
  (see :func:`missing_rate`). Raw-sample functions raise :class:`DriftInputError` on NaN or
  ±inf instead of silently dropping them; :func:`drop_missing` drops them *and counts them*.
* Bins are left-closed ``[e_b, e_{b+1})`` except the last, which is closed ``[e_{B-1}, e_B]``;
  this is ``np.histogram``'s rule. In SQL: ``bin = (number of edges <= x) - 1``, with
  ``x = e_B`` put in the last bin.
* ``ln`` is the natural log. PSI and KL are in nats; JS defaults to base 2 (bits) and says so.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import numpy as np
import numpy.typing as npt

from mlinvestigate.errors import MLInvestigateError

__all__ = [
    "BINNINGS",
    "DECILES",
    "KS_EXACT_MAX_N",
    "METHODS",
    "MIN_SAMPLES",
    "PSI_MODERATE",
    "PSI_SIGNIFICANT",
    "SMOOTHINGS",
    "WASSERSTEIN_STD_FLOOR",
    "BinCounts",
    "Binning",
    "BinningStrategy",
    "CategoricalDrift",
    "Chi2Result",
    "DriftInputError",
    "DriftMethod",
    "DriftScore",
    "KSResult",
    "OutsidePolicy",
    "Smoothing",
    "WindowSummary",
    "align_categories",
    "binning_from_samples",
    "binning_from_summaries",
    "categorical_drift",
    "chi2_contingency",
    "chi2_sf",
    "doane_edges",
    "drop_missing",
    "g1_from_duckdb_skewness",
    "has_enough_samples",
    "hellinger",
    "js_distance",
    "js_divergence",
    "kl_divergence",
    "ks_2samp",
    "ks_from_counts",
    "ks_pvalue",
    "ks_pvalue_method",
    "missing_rate",
    "proportions",
    "psi",
    "psi_noise_floor",
    "psi_verdict",
    "quantile_edges",
    "quantile_grid",
    "skewness_from_power_sums",
    "smoothed_proportions",
    "sturges_edges",
    "summarize",
    "total_variation",
    "wasserstein_distance",
    "wasserstein_normed",
    "wasserstein_normed_from_quantiles",
]

FloatArray = npt.NDArray[np.float64]

# --------------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------------

MIN_SAMPLES = 100
"""Fewest non-missing values per window before any verdict is given ("insufficient data").

Why 100: the default binning has 10 reference-decile bins, so 100 values put 10 in each
reference bin, and the chi-square/KS approximations want expected counts of at least ~5 per
bin. It is a floor, not a guarantee of quiet statistics: with no drift at all PSI is about
``(B - 1)(1/n + 1/m)`` (see :func:`psi_noise_floor`), 0.18 for 10 bins at n = m = 100, which
is already above the 0.1 band. Reports should show that noise floor next to small-window PSI.
"""

PSI_MODERATE = 0.1
"""PSI at or above this is a "moderate" shift (credit-scorecard practice; Evidently's cut-off)."""

PSI_SIGNIFICANT = 0.25
"""PSI at or above this is a "significant" shift (credit-scorecard practice)."""

DECILES: tuple[float, ...] = tuple(k / 10 for k in range(1, 10))
"""Cut points of the default ``quantile10`` binning: reference quantiles 0.1 … 0.9."""

KS_EXACT_MAX_N = 10_000
"""KS p-values are exact when ``max(n, m)`` is at most this (scipy's ``method='auto'`` rule)."""

WASSERSTEIN_STD_FLOOR = 0.001
"""Evidently divides Wasserstein-1 by ``max(std_ref, 0.001)``; we use the same floor."""


class DriftInputError(MLInvestigateError, ValueError):
    """Input a drift statistic cannot be computed from (NaN, empty window, mismatched bins)."""


# --------------------------------------------------------------------------------------------
# Input checking and missing values
# --------------------------------------------------------------------------------------------


def _as_sample(values: npt.ArrayLike, name: str) -> FloatArray:
    """A 1-D float array of finite values, or DriftInputError.

    NaN/±inf are an error rather than dropped: a tool that drops them silently can turn a
    window full of NULLs into "no drift" (alibi-detect returns is_drift=0 on NaN input).
    """
    x = np.asarray(values, dtype=np.float64)
    if x.ndim != 1:
        raise DriftInputError(f"{name} must be one-dimensional, got shape {x.shape}")
    if x.size == 0:
        raise DriftInputError(f"{name} has no values")
    bad = int(np.count_nonzero(~np.isfinite(x)))
    if bad:
        raise DriftInputError(
            f"{name} has {bad} missing or infinite values out of {x.size}",
            hint="drop them with drop_missing() and report the missing rate",
        )
    return x


def _as_counts(counts: npt.ArrayLike, name: str) -> FloatArray:
    """A 1-D float array of finite, non-negative counts with a positive total."""
    c = np.asarray(counts, dtype=np.float64)
    if c.ndim != 1 or c.size == 0:
        raise DriftInputError(f"{name} must be a non-empty 1-D array of counts")
    if not np.all(np.isfinite(c)) or np.any(c < 0):
        raise DriftInputError(f"{name} must be finite and non-negative")
    if c.sum() <= 0:
        raise DriftInputError(f"{name} has no values (all counts are zero)")
    return c


def _as_count_pair(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[FloatArray, FloatArray]:
    r, c = _as_counts(ref, "reference counts"), _as_counts(cur, "current counts")
    if r.shape != c.shape:
        raise DriftInputError(
            f"reference and current counts cover different bins ({r.size} vs {c.size})"
        )
    return r, c


def _as_integer_counts(counts: FloatArray, name: str) -> npt.NDArray[np.int64]:
    if not np.all(counts == np.floor(counts)):
        raise DriftInputError(f"{name} must be whole numbers for this test")
    return counts.astype(np.int64)


def drop_missing(values: npt.ArrayLike) -> tuple[FloatArray, int]:
    """Split a raw sample into its finite values and the number of NaN/±inf values removed.

    The count is returned so the caller can report it (with :func:`missing_rate`); never
    drop missing values without saying how many.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    keep = np.isfinite(x)
    return x[keep], int(x.size - np.count_nonzero(keep))


def missing_rate(n_missing: int, n_total: int) -> float:
    """Fraction of rows in a window whose value is missing: ``n_missing / n_total``.

    ``n_total`` counts every row of the window, missing or not. An empty window has no rate
    (DriftInputError) rather than a rate of 0, which would read as "nothing missing".
    """
    if n_total <= 0:
        raise DriftInputError("the window has no rows, so it has no missing rate")
    if not 0 <= n_missing <= n_total:
        raise DriftInputError(f"missing count {n_missing} is outside 0..{n_total}")
    return n_missing / n_total


def proportions(counts: npt.ArrayLike) -> FloatArray:
    """Counts divided by their total (each bin's share of the window)."""
    c = _as_counts(counts, "counts")
    return c / c.sum()


# --------------------------------------------------------------------------------------------
# Binning
# --------------------------------------------------------------------------------------------

OutsidePolicy = Literal["leftover", "drop", "clip"]
"""What happens to values below the first edge or above the last edge.

``leftover``: one extra bin holding both tails is appended to *both* windows, but only when
some window has values outside (NannyML's rule; a new region shows up as a bin the reference
never had). ``drop``: outside values are not counted (``np.histogram``, certifiable-monitor).
``clip``: values below go to the first bin and values above to the last.
"""


@dataclass(frozen=True)
class WindowSummary:
    """What SQL computes for one window of one numeric feature; enough to choose bin edges.

    Every field maps to one DuckDB aggregate over the non-missing values.
    """

    n: int
    """``count(x)``: non-missing values in the window."""
    minimum: float
    """``min(x)``."""
    maximum: float
    """``max(x)``."""
    deciles: tuple[float, ...] = ()
    """``quantile_cont(x, [0.1, …, 0.9])``: linear interpolation (numpy ``linear``, type 7)."""
    skewness: float | None = None
    """Population skewness g1 = m3 / m2^1.5 (numpy's Doane estimator). DuckDB's ``skewness()``
    is the adjusted G1; convert with :func:`g1_from_duckdb_skewness`."""
    std: float | None = None
    """``stddev_pop(x)`` (ddof = 0, numpy's ``np.std``)."""


def summarize(values: npt.ArrayLike) -> WindowSummary:
    """The :class:`WindowSummary` of a raw sample, computed the way the SQL side does."""
    x = _as_sample(values, "sample")
    sigma = float(np.std(x))
    g1: float | None = None
    if sigma > 0.0:
        # Same arithmetic as numpy's doane estimator, so doane edges match it bit for bit.
        g1 = float(np.mean(((x - np.mean(x)) / sigma) ** 3))
    return WindowSummary(
        n=int(x.size),
        minimum=float(x.min()),
        maximum=float(x.max()),
        deciles=tuple(float(q) for q in np.quantile(x, DECILES)),
        skewness=g1,
        std=sigma,
    )


def skewness_from_power_sums(n: int, s1: float, s2: float, s3: float) -> float | None:
    """Population skewness g1 from ``n`` and the sums of ``(x - c)``, ``(x - c)²``, ``(x - c)³``.

    Any shift ``c`` gives the same g1; choose ``c`` near the mean (e.g. a rough mean from a
    previous query) because raw power sums of data far from zero lose precision to
    cancellation. Returns None when the variance is zero (g1 undefined).
    """
    if n <= 0:
        raise DriftInputError("skewness needs at least one value")
    mu = s1 / n
    m2 = s2 / n - mu * mu
    m3 = s3 / n - 3.0 * mu * s2 / n + 2.0 * mu**3
    if m2 <= 0.0:
        return None
    return m3 / m2**1.5


def g1_from_duckdb_skewness(skewness: float, n: int) -> float:
    """Convert DuckDB's ``skewness()`` (adjusted Fisher–Pearson G1) to population g1.

    DuckDB returns ``G1 = g1 · sqrt(n(n-1)) / (n-2)`` (checked against duckdb 2.0), so
    ``g1 = G1 · (n-2) / sqrt(n(n-1))``.
    """
    if n <= 2:
        raise DriftInputError("skewness needs more than two values")
    return skewness * (n - 2) / math.sqrt(n * (n - 1))


def quantile_edges(cut_points: Sequence[float] | npt.ArrayLike) -> FloatArray:
    """Edges ``[-inf, q_1, …, q_k, +inf]`` from reference quantiles, duplicates collapsed.

    A value equal to a cut point belongs to the bin on its right (left-closed bins).

    Heavy ties make several quantiles coincide (half the values are 0; a constant
    reference). Repeating a cut point would only add empty zero-width bins, so repeats are
    collapsed, and because a repeated cut point means about 10 % or more of the reference
    sits exactly on that value, an extra edge is put just above it (the next float), giving the
    tied value a bin of its own. Without it, ``[c, next cut)`` would mix the point mass at c
    with the values above it, and a constant reference could not see any upward shift.
    Continuous data have no repeats, so their edges are exactly the quantiles.
    """
    q = np.asarray(cut_points, dtype=np.float64).ravel()
    if q.size == 0 or not np.all(np.isfinite(q)):
        raise DriftInputError("quantile cut points must be finite and non-empty")
    if np.any(np.diff(q) < 0):
        raise DriftInputError("quantile cut points must be non-decreasing")
    values, repeats = np.unique(q, return_counts=True)
    point_masses = np.nextafter(values[repeats > 1], np.inf)
    inner = np.union1d(values, point_masses)
    return np.concatenate(([-np.inf], inner, [np.inf]))


def _equal_width_edges(lo: float, hi: float, width: float) -> FloatArray:
    """numpy's ``histogram_bin_edges`` once an estimator has given a bin width."""
    if lo == hi:  # numpy widens a degenerate range to one unit-wide bin
        lo, hi = lo - 0.5, hi + 0.5
    n_bins = int(np.ceil((hi - lo) / width)) if width else 1
    return np.linspace(lo, hi, n_bins + 1)


def sturges_edges(n: int, minimum: float, maximum: float) -> FloatArray:
    """Equal-width edges over ``[minimum, maximum]`` with Sturges' bin count.

    Width = (max − min) / (log2(n) + 1); bins = ceil((max − min) / width); identical to
    ``np.histogram_bin_edges(x, bins="sturges")`` for a sample of size n with that range.
    """
    if n <= 0 or not (math.isfinite(minimum) and math.isfinite(maximum)) or minimum > maximum:
        raise DriftInputError("sturges binning needs n > 0 and a finite min <= max")
    ptp = maximum - minimum
    width = ptp / (np.log2(n) + 1.0)
    return _equal_width_edges(minimum, maximum, float(width))


def doane_edges(
    n: int,
    minimum: float,
    maximum: float,
    skewness: float | None,
    std: float | None = None,
) -> FloatArray:
    """Equal-width edges over ``[minimum, maximum]`` with Doane's bin count.

    Width = (max − min) / (1 + log2(n) + log2(1 + |g1| / σ_g1)) with
    σ_g1 = sqrt(6(n − 2) / ((n + 1)(n + 3))) and g1 the population skewness; one bin when
    n ≤ 2 or the population std is 0 (as numpy: constant values, or a spread so small the
    std underflows). Identical to ``np.histogram_bin_edges(x, "doane")``.
    """
    if n <= 0 or not (math.isfinite(minimum) and math.isfinite(maximum)) or minimum > maximum:
        raise DriftInputError("doane binning needs n > 0 and a finite min <= max")
    ptp = maximum - minimum
    width = 0.0
    if n > 2 and ptp > 0 and (std is None or std > 0):
        if skewness is None or not math.isfinite(skewness):
            raise DriftInputError("doane binning needs the reference skewness")
        sg1 = np.sqrt(6.0 * (n - 2) / ((n + 1.0) * (n + 3)))
        width = float(ptp / (1.0 + np.log2(n) + np.log2(1.0 + np.absolute(skewness) / sg1)))
    return _equal_width_edges(minimum, maximum, width)


def _checked_edges(edges: npt.ArrayLike) -> FloatArray:
    e = np.asarray(edges, dtype=np.float64).ravel()
    if e.size < 2 or np.any(np.isnan(e)):
        raise DriftInputError("bin edges need at least two values and no NaN")
    if np.any(np.diff(e) <= 0):
        raise DriftInputError("bin edges must be strictly increasing")
    return e


class BinCounts(NamedTuple):
    """Counts of one window over a binning: per bin, plus the values outside the edges."""

    inside: npt.NDArray[np.int64]
    below: int
    above: int

    @property
    def total(self) -> int:
        return int(self.inside.sum()) + self.below + self.above


@dataclass(frozen=True)
class Binning:
    """Concrete bin edges plus what to do with values outside them."""

    strategy: str
    edges: tuple[float, ...]
    outside: OutsidePolicy

    @property
    def n_bins(self) -> int:
        return len(self.edges) - 1

    def histogram(self, values: npt.ArrayLike) -> BinCounts:
        """Count a raw sample the way SQL must: ``np.histogram`` closure plus tail counts."""
        x = _as_sample(values, "sample")
        e = np.asarray(self.edges)
        b = self.n_bins
        idx = np.searchsorted(e, x, side="right") - 1
        idx[x == e[-1]] = b - 1  # the last bin is closed on the right
        below = int(np.count_nonzero(idx < 0))
        above = int(np.count_nonzero(idx >= b))
        inside = np.bincount(idx[(idx >= 0) & (idx < b)], minlength=b).astype(np.int64)
        return BinCounts(inside, below, above)

    def pair(self, ref: BinCounts, cur: BinCounts) -> tuple[FloatArray, FloatArray]:
        """Aligned count vectors for both windows after applying the outside policy."""
        for counts in (ref, cur):
            if len(counts.inside) != self.n_bins:
                raise DriftInputError(
                    f"expected {self.n_bins} bin counts, got {len(counts.inside)}"
                )
        r = np.asarray(ref.inside, dtype=np.float64).copy()
        c = np.asarray(cur.inside, dtype=np.float64).copy()
        if self.outside == "clip":
            r[0] += ref.below
            r[-1] += ref.above
            c[0] += cur.below
            c[-1] += cur.above
        elif self.outside == "leftover":
            r_out, c_out = ref.below + ref.above, cur.below + cur.above
            if r_out or c_out:  # only when needed, so an unused bin never adds a term
                r, c = np.append(r, r_out), np.append(c, c_out)
        return r, c

    def counts(
        self, ref_values: npt.ArrayLike, cur_values: npt.ArrayLike
    ) -> tuple[FloatArray, FloatArray]:
        """:meth:`histogram` both raw samples and :meth:`pair` the results."""
        return self.pair(self.histogram(ref_values), self.histogram(cur_values))


@dataclass(frozen=True)
class BinningStrategy:
    """A named way of choosing bin edges from window summaries."""

    name: str
    edges: Callable[[WindowSummary, WindowSummary | None], FloatArray] | None
    """Edges from the reference (and, for combined strategies, current) summary; None when
    the user supplies the edges."""
    outside: OutsidePolicy
    description: str


def _quantile10(ref: WindowSummary, cur: WindowSummary | None) -> FloatArray:
    if len(ref.deciles) != len(DECILES):
        raise DriftInputError("quantile10 binning needs the reference deciles 0.1 … 0.9")
    return quantile_edges(ref.deciles)


def _sturges_combined(ref: WindowSummary, cur: WindowSummary | None) -> FloatArray:
    if cur is None:
        raise DriftInputError("sturges-combined binning needs the current window's summary")
    return sturges_edges(
        ref.n + cur.n, min(ref.minimum, cur.minimum), max(ref.maximum, cur.maximum)
    )


def _doane_ref(ref: WindowSummary, cur: WindowSummary | None) -> FloatArray:
    return doane_edges(ref.n, ref.minimum, ref.maximum, ref.skewness, ref.std)


BINNINGS: dict[str, BinningStrategy] = {
    s.name: s
    for s in (
        BinningStrategy(
            "quantile10",
            _quantile10,
            "leftover",
            "Default. Cut points at the reference quantiles 0.1 … 0.9 (linear interpolation, "
            "DuckDB quantile_cont), outer edges -inf/+inf; a repeated cut point (a value "
            "holding >= 10 % of the reference) becomes one edge plus a bin of its own. "
            "Nothing can fall outside. Textbook PSI and Phoenix (legacy) binning.",
        ),
        BinningStrategy(
            "sturges-combined",
            _sturges_combined,
            "leftover",
            "Evidently: equal-width bins over min..max of reference ∪ current, Sturges count "
            "from n_ref + n_cur (12 bins for 1000 + 800). Nothing falls outside by "
            "construction. Evidently uses it only when the reference has > 20 distinct "
            "values; otherwise each distinct value is a bin.",
        ),
        BinningStrategy(
            "doane-ref",
            _doane_ref,
            "leftover",
            "NannyML: equal-width bins over the reference min..max with Doane's count; current "
            "values outside the reference range go to one leftover bin (reference share 0).",
        ),
        BinningStrategy(
            "fixed",
            None,
            "leftover",
            "User-supplied strictly increasing edges. Values outside go to a leftover bin by "
            "default; pass outside='drop' (np.histogram, certifiable-monitor) or 'clip'.",
        ),
    )
}


def binning_from_summaries(
    strategy: str,
    ref: WindowSummary,
    cur: WindowSummary | None = None,
    *,
    edges: npt.ArrayLike | None = None,
    outside: OutsidePolicy | None = None,
) -> Binning:
    """Choose bin edges from what SQL returned (see :data:`BINNINGS` for each strategy)."""
    try:
        spec = BINNINGS[strategy]
    except KeyError:
        known = ", ".join(BINNINGS)
        raise DriftInputError(f"unknown binning {strategy!r}", hint=f"use one of {known}") from None
    if spec.edges is None:
        if edges is None:
            raise DriftInputError("fixed binning needs edges")
        e = _checked_edges(edges)
    else:
        if edges is not None:
            raise DriftInputError(f"{strategy} binning computes its own edges")
        e = spec.edges(ref, cur)
    return Binning(spec.name, tuple(float(v) for v in e), outside or spec.outside)


def binning_from_samples(
    strategy: str,
    ref: npt.ArrayLike,
    cur: npt.ArrayLike | None = None,
    *,
    edges: npt.ArrayLike | None = None,
    outside: OutsidePolicy | None = None,
) -> Binning:
    """Convenience for small inputs and tests: summarise raw samples, then choose edges."""
    cur_summary = summarize(cur) if cur is not None else None
    return binning_from_summaries(
        strategy, summarize(ref), cur_summary, edges=edges, outside=outside
    )


# --------------------------------------------------------------------------------------------
# Smoothing and divergences on count vectors
# --------------------------------------------------------------------------------------------

Smoothing = Literal["clip1e-4", "clip", "evidently", "laplace", "none"]

SMOOTHINGS: dict[str, str] = {
    "clip1e-4": "p̃ = max(p, 1e-4) on each proportion, no renormalisation (textbook; default).",
    "clip": "p̃ = max(p, epsilon) with a caller-given epsilon (certifiable-monitor: 2**-32).",
    "evidently": "Zero proportions replaced by min_nonzero/1e6 if min_nonzero <= 1e-4, else by "
    "1e-4; each window separately, no renormalisation (Evidently get_binned_data).",
    "laplace": "Additive smoothing on counts: p̃ = (x + 1) / (N + d), d = number of bins "
    "(Phoenix legacy AdditiveSmoothing(pseudocount=1)).",
    "none": "Plain proportions; a bin empty in one window only makes PSI/KL infinite.",
}


def smoothed_proportions(
    counts: npt.ArrayLike, smoothing: Smoothing = "clip1e-4", *, epsilon: float | None = None
) -> FloatArray:
    """Proportions of one window after the named smoothing (see :data:`SMOOTHINGS`)."""
    return _smoothed(_as_counts(counts, "counts"), smoothing, epsilon)


def _smoothed(c: FloatArray, smoothing: Smoothing, epsilon: float | None) -> FloatArray:
    """smoothed_proportions on counts already checked by _as_counts (checked once per call)."""
    p = c / c.sum()
    if smoothing == "clip1e-4":
        return np.maximum(p, 1e-4)
    if smoothing == "clip":
        if epsilon is None or not epsilon > 0:
            raise DriftInputError("smoothing='clip' needs a positive epsilon")
        return np.maximum(p, epsilon)
    if smoothing == "evidently":
        smallest = float(p[p > 0].min())
        fill = smallest / 1e6 if smallest <= 1e-4 else 1e-4
        return np.where(p == 0, fill, p)
    if smoothing == "laplace":
        return (c + 1.0) / (c.sum() + c.size)
    if smoothing == "none":
        return p
    known = ", ".join(SMOOTHINGS)
    raise DriftInputError(f"unknown smoothing {smoothing!r}", hint=f"use one of {known}")


def psi(
    ref_counts: npt.ArrayLike,
    cur_counts: npt.ArrayLike,
    smoothing: Smoothing = "clip1e-4",
    *,
    epsilon: float | None = None,
) -> float:
    """Population stability index, natural log: PSI = Σ_b (c̃_b − r̃_b) · ln(c̃_b / r̃_b).

    ``r̃``/``c̃`` are each window's bin proportions after ``smoothing`` (default ``clip1e-4``:
    max(p, 1e-4)); see :data:`SMOOTHINGS`. PSI is symmetric in the two windows and
    equals KL(c‖r) + KL(r‖c) when both sum to 1. Every term is ≥ 0, so PSI ≥ 0. Bins empty
    in both windows add nothing; with ``smoothing="none"`` a bin empty in one window only gives
    ``inf``. Bands: < 0.1 none, 0.1–0.25 moderate, ≥ 0.25 significant (:func:`psi_verdict`).
    """
    r, c = _as_count_pair(ref_counts, cur_counts)
    pr = _smoothed(r, smoothing, epsilon)
    pc = _smoothed(c, smoothing, epsilon)
    used = (pr > 0) | (pc > 0)
    pr, pc = pr[used], pc[used]
    with np.errstate(divide="ignore"):
        terms = (pc - pr) * np.log(pc / pr)
    # Only smoothing="none" can meet p = 0 here; (c - 0)·ln(c/0) is +inf for either side.
    terms[(pr == 0) | (pc == 0)] = np.inf
    return float(np.sum(terms))


def _rel_entr(x: FloatArray, y: FloatArray) -> FloatArray:
    """x·ln(x/y) elementwise, 0 where x = 0, +inf where x > 0 = y (scipy.special.rel_entr)."""
    out = np.zeros_like(x)
    pos = x > 0
    with np.errstate(divide="ignore"):
        out[pos] = x[pos] * np.log(x[pos] / y[pos])
    return out


def kl_divergence(
    p_counts: npt.ArrayLike,
    q_counts: npt.ArrayLike,
    smoothing: Smoothing = "none",
    *,
    epsilon: float | None = None,
) -> float:
    """Kullback–Leibler divergence KL(p‖q) = Σ p_b ln(p_b / q_b), natural log (nats).

    Not symmetric. After smoothing both vectors are renormalised to sum to 1, as
    ``scipy.stats.entropy`` does (Evidently's ``kl_div`` is ``entropy(ref, cur)`` after its
    zero fill, so ``kl_divergence(ref, cur, "evidently")`` reproduces it). ``inf`` when q has
    an empty bin where p has mass and no smoothing is used.
    """
    pc, qc = _as_count_pair(p_counts, q_counts)
    p = _smoothed(pc, smoothing, epsilon)
    q = _smoothed(qc, smoothing, epsilon)
    p, q = p / p.sum(), q / q.sum()
    return float(np.sum(_rel_entr(p, q)))


def js_divergence(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike, base: float = 2.0) -> float:
    """Jensen–Shannon divergence ½KL(r‖m) + ½KL(c‖m), m = (r + c)/2, in log base ``base``.

    Base 2 by default (bits, bounded by 1). No smoothing is needed: m > 0 wherever r or c is.
    Tiny negative rounding results are clipped to 0.
    """
    r, c = _as_count_pair(ref_counts, cur_counts)
    p, q = r / r.sum(), c / c.sum()
    m = (p + q) / 2.0
    js = (np.sum(_rel_entr(p, m)) + np.sum(_rel_entr(q, m))) / 2.0
    return max(float(js / np.log(base)), 0.0)


def js_distance(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike, base: float = 2.0) -> float:
    """Jensen–Shannon *distance*: sqrt of :func:`js_divergence`, **base 2 by default**.

    Base 2 (NannyML, certifiable-monitor) is bounded by 1; pass ``base=math.e`` for
    Evidently's and scipy's default (base e, bounded by sqrt(ln 2) ≈ 0.833). The base-2
    value is the base-e value divided by sqrt(ln 2), i.e. about 1.2011 times larger.
    """
    return math.sqrt(js_divergence(ref_counts, cur_counts, base))


def total_variation(p_counts: npt.ArrayLike, q_counts: npt.ArrayLike) -> float:
    """Total variation distance ½ Σ_b |p_b − q_b| over proportions; 0 … 1."""
    pc, qc = _as_count_pair(p_counts, q_counts)
    return float(0.5 * np.sum(np.abs(pc / pc.sum() - qc / qc.sum())))


def hellinger(p_counts: npt.ArrayLike, q_counts: npt.ArrayLike) -> float:
    """Hellinger distance sqrt(½ Σ_b (√p_b − √q_b)²) over proportions; 0 … 1.

    Written as a sum of squares (NannyML's and Evidently's form) rather than
    sqrt(1 − Σ√(pq)), which loses precision for nearby distributions.
    """
    pc, qc = _as_count_pair(p_counts, q_counts)
    d = np.sqrt(pc / pc.sum()) - np.sqrt(qc / qc.sum())
    return float(np.sqrt(np.sum(d * d)) / np.sqrt(2.0))


# --------------------------------------------------------------------------------------------
# Kolmogorov–Smirnov
# --------------------------------------------------------------------------------------------


class KSResult(NamedTuple):
    """Two-sample KS statistic D = sup |F_ref − F_cur| and its two-sided p-value."""

    statistic: float
    pvalue: float


def ks_pvalue_method(n: int, m: int) -> Literal["exact", "asymptotic"]:
    """Which p-value :func:`ks_pvalue` uses for sample sizes n and m (scipy's auto rule)."""
    return "exact" if max(n, m) <= KS_EXACT_MAX_N else "asymptotic"


def _ks_outside_square(n: int, h: int) -> float:
    """P(D_{n,n} ≥ h/n), equal sample sizes, by the reflection formula.

    P = 2 Σ_{k≥1} (−1)^{k−1} C(2n, n − kh) / C(2n, n), evaluated as
    2·A₁(1 − A₂(1 − A₃(…))) where A_k = C(2n, n−kh) / C(2n, n−(k−1)h) is a product of h
    ratios; nesting avoids the cancellation of the alternating sum.
    """
    total = 0.0
    for k in range(n // h, -1, -1):
        ratio = 1.0
        for j in range(h):
            ratio = (n - k * h - j) * ratio / (n + k * h + j + 1)
        total = ratio * (1.0 - total)
    return 2.0 * total


def _ks_outside_band(n: int, m: int, h: int) -> float:
    """P(D_{n,m} ≥ h / lcm(n, m)) for unequal sizes, exactly, by lattice-path recursion.

    A random path from (0, 0) to (m, n) (m ≥ n) steps right for a value of the larger sample
    and up for one of the smaller. With g = gcd, D ≥ h/lcm exactly when the path touches a
    cell with |(n/g)·i − (m/g)·j| ≥ h. Q(i, j), the share of paths to (i, j) that have
    touched such a cell, obeys Q = 1 outside the band and
    Q(i, j) = (i·Q(i−1, j) + j·Q(i, j−1)) / (i + j) inside it (Hodges 1958 in the
    complementary form of Viehmann 2021, the recursion scipy uses). Each Q is a convex
    combination of numbers in [0, 1], so there is no cancellation even for tiny p-values.
    Cells with the same i + j depend only on the previous anti-diagonal, so each
    anti-diagonal is one numpy step: m + n steps of width ≈ 2h / (m/g + n/g).
    """
    if m < n:
        m, n = n, m
    g = math.gcd(m, n)
    mg, ng = m // g, n // g
    slope = mg + ng
    # The band on anti-diagonal s is mg·s − h < slope·i < mg·s + h, clipped to the grid.
    s_all = np.arange(1, m + n + 1, dtype=np.int64)
    lo_all = np.maximum(np.maximum((mg * s_all - h) // slope + 1, s_all - n), 0)
    hi_all = np.minimum(np.minimum(-(-(mg * s_all + h) // slope) - 1, m), s_all)
    if np.any(hi_all < lo_all):  # some anti-diagonal has no cell inside: every path leaves
        return 1.0
    # q[i + 1] holds Q(i, s − i) for the current anti-diagonal s; q[0] is a sentinel.
    q = np.ones(m + 2)
    q[1] = 0.0
    index = np.arange(-1.0, m + 1.0)  # index[k] = i for q[k]
    width = int((hi_all - lo_all).max()) + 1
    left, below = np.empty(width), np.empty(width)  # scratch buffers, reused every step
    prev_lo = 0
    for s, lo, hi in zip(s_all.tolist(), lo_all.tolist(), hi_all.tolist(), strict=True):
        i = index[lo + 1 : hi + 2]
        a, b = left[: hi - lo + 1], below[: hi - lo + 1]
        np.multiply(i, q[lo : hi + 1], out=a)  # i · Q(i − 1, j)
        np.subtract(s, i, out=b)
        b *= q[lo + 1 : hi + 2]  # j · Q(i, j − 1)
        a += b
        q[prev_lo + 1 : lo + 1] = 1.0  # cells that left the band are outside it
        np.divide(a, s, out=q[lo + 1 : hi + 2])
        prev_lo = lo
    return float(q[m + 1])


def _log_factorial(k: FloatArray) -> FloatArray:
    return np.array([math.lgamma(v + 1.0) for v in k.tolist()])


def _smirnov_sf(n: int, x: float) -> float:
    """One-sided one-sample P(D_n⁺ ≥ x).

    Exact Birnbaum–Tingey sum x·Σ_j C(n, j)(1 − x − j/n)^{n−j}(x + j/n)^{j−1} in log space
    for n ≤ 100 000; beyond that the Maag–Dicaire approximation exp(−(6nx + 1)² / (18n)),
    whose relative error is below 1e-3 there for p ≥ 1e-8.
    """
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    if n > 100_000:
        return math.exp(-((6.0 * n * x + 1.0) ** 2) / (18.0 * n))
    j = np.arange(math.floor(n * (1.0 - x)) + 1, dtype=np.float64)
    gap = 1.0 - x - j / n
    keep = gap > 0  # the j = n(1 − x) term is 0^(n−j) = 0 unless j = n
    j, gap = j[keep], gap[keep]
    if j.size == 0:
        return 0.0
    log_terms = (
        math.lgamma(n + 1.0)
        - _log_factorial(j)
        - _log_factorial(n - j)
        + (n - j) * np.log(gap)
        + (j - 1.0) * np.log(x + j / n)
    )
    top = float(log_terms.max())
    return min(1.0, x * math.exp(top) * float(np.sum(np.exp(log_terms - top))))


def _pelz_good_cdf(n: int, x: float) -> float:
    """Pelz–Good (1976) approximation of the one-sample two-sided Kolmogorov CDF P(D_n ≤ x).

    K₀(z) + K₁(z)/√n + K₂(z)/n + K₃(z)/n^{3/2} with z = x√n, each K in its theta-function
    form that converges fast for small z (as given by Simard & L'Ecuyer 2011; scipy's
    ``kstwo`` uses it for n > 140 in this range).
    """
    z = x * math.sqrt(n)
    if z < 0.04:
        return 0.0
    pi2 = math.pi**2
    pi4, pi6 = pi2 * pi2, pi2**3
    z2 = z * z
    z4, z6 = z2 * z2, z2**3
    z8 = z4 * z4
    root2pi = math.sqrt(2.0 * math.pi)
    k = np.arange(1.0, math.ceil(16.0 * z / math.pi) + 1.0)
    odd2 = (2.0 * k - 1.0) ** 2  # (2k − 1)², so π²(k − ½)² = π²·odd2/4
    w = np.exp(-pi2 * odd2 / (8.0 * z2))
    v = np.exp(-pi2 * k * k / (2.0 * z2))
    k0 = root2pi / z * np.sum(w)
    k1 = root2pi / (6.0 * z4) * np.sum((pi2 / 4.0 * odd2 - z2) * w)
    k2 = root2pi / (72.0 * z**7) * np.sum(
        (
            6.0 * z6
            + 2.0 * z4
            + pi2 * (2.0 * z4 - 5.0 * z2) / 4.0 * odd2
            + pi4 * (1.0 - 2.0 * z2) / 16.0 * odd2**2
        )
        * w
    ) - pi2 * root2pi / (36.0 * z**3) * np.sum(k * k * v)
    k3 = root2pi / (6480.0 * z**10) * np.sum(
        (
            -30.0 * z6
            - 90.0 * z8
            + pi2 * (135.0 * z4 - 96.0 * z6) / 4.0 * odd2
            + pi4 * (212.0 * z4 - 60.0 * z2) / 16.0 * odd2**2
            + pi6 * (5.0 - 30.0 * z2) / 64.0 * odd2**3
        )
        * w
    ) + pi2 * root2pi / (216.0 * z6) * np.sum((3.0 * z2 - pi2 * k * k) * k * k * v)
    return float(k0 + k1 / math.sqrt(n) + k2 / n + k3 / n**1.5)


def _kolmogorov_sf(n: int, x: float) -> float:
    """One-sample two-sided P(D_n ≥ x), following Simard & L'Ecuyer's (2011) choices.

    Exact tails (Ruben–Gambino for n·x ≤ 1 or ≥ n − 1; 2·P(D⁺ ≥ x) for x ≥ 1/2, where the
    two one-sided events are disjoint), 2·P(D⁺ ≥ x) when n·x² ≥ 2.2 (the overlap is then
    negligible), otherwise 1 − Pelz–Good. Measured against scipy's ``kstwo.sf``: relative
    error ≤ 1e-5 for n > 140, ≤ 1e-4 for n ≥ 50 and up to 1e-2 at n = 5 (for n ≤ 140 scipy
    uses exact matrix methods that are not worth porting for an approximation of an
    approximation: the two-sample law itself is only approximated by this one).
    """
    if x >= 1.0:
        return 0.0
    if x <= 0.0:
        return 1.0
    t = n * x
    if t <= 1.0:
        if t <= 0.5:
            return 1.0
        cdf = math.exp(math.lgamma(n + 1.0) - n * math.log(n) + n * math.log(2.0 * t - 1.0))
        return 1.0 - cdf
    if t >= n - 1:
        return 2.0 * (1.0 - x) ** n
    nx2 = t * x
    if x >= 0.5 or nx2 >= 2.2:
        return 0.0 if nx2 >= 370.0 else min(1.0, 2.0 * _smirnov_sf(n, x))
    return min(1.0, max(0.0, 1.0 - _pelz_good_cdf(n, x)))


def _ks_pvalue_from_h(h: int, n: int, m: int) -> float:
    if h <= 0:
        return 1.0
    d = h / (n // math.gcd(n, m) * m)
    if min(n, m) * d * d / 2.0 > 760.0:
        # Under H0, sup|F_n − G_m| ≤ sup|F_n − F| + sup|G_m − F|, so by the DKW–Massart
        # inequality p ≤ 2·exp(−n·d²/2) + 2·exp(−m·d²/2) < 1e-329: below the smallest float.
        # Return the 0 the recursion would reach, without its cost (which grows with D).
        return 0.0
    if ks_pvalue_method(n, m) == "exact":
        p = _ks_outside_square(n, h) if n == m else _ks_outside_band(n, m, h)
    else:
        # scipy's 'asymp' branch: the one-sample distribution at the effective size
        # round(n·m / (n + m)), evaluated at D.
        p = _kolmogorov_sf(round(n * m / (n + m)), d)
    return min(1.0, max(0.0, p))


def ks_pvalue(statistic: float, n: int, m: int) -> float:
    """Two-sided p-value of a two-sample KS statistic D for sample sizes n and m.

    Exact (P(D ≥ d) under H₀ for continuous data, no ties) when max(n, m) ≤
    :data:`KS_EXACT_MAX_N`, like scipy's ``ks_2samp(method='auto')``; D is first rounded to
    the lattice h / lcm(n, m) it must lie on. Beyond that, scipy's asymptotic choice: the
    one-sample Kolmogorov distribution at n_eff = round(nm / (n + m)). The exact path takes
    0.1–0.5 s at n, m ≈ 10⁴ with unequal sizes (more for larger D, until the p-value is
    provably 0); equal sizes use a closed form and take milliseconds.
    """
    if n <= 0 or m <= 0:
        raise DriftInputError("KS needs values in both windows")
    if not 0.0 <= statistic <= 1.0:
        raise DriftInputError(f"KS statistic {statistic} is outside [0, 1]")
    g = math.gcd(n, m)
    lcm = n // g * m
    return _ks_pvalue_from_h(int(round(statistic * lcm)), n, m)


def _ks_from_cumulative(
    cum_ref: npt.NDArray[np.int64], cum_cur: npt.NDArray[np.int64], n: int, m: int
) -> KSResult:
    # D·n·m is an integer; working with it keeps D exact and gives the lattice index h.
    numerator = int(np.max(np.abs(cum_ref * m - cum_cur * n), initial=0))
    g = math.gcd(n, m)
    h = numerator // g
    d = h / (n // g * m)  # h / lcm: the correctly rounded value scipy also returns
    return KSResult(d, _ks_pvalue_from_h(h, n, m))


def ks_from_counts(ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike) -> KSResult:
    """Two-sample KS from counts over a shared, ascending grid of values or bins.

    D = max_k |R_k/n − C_k/m| over the cumulative counts R, C; p-value from
    :func:`ks_pvalue` with n = Σ ref, m = Σ cur. When the grid is the set of distinct values
    of ref ∪ cur (SQL ``group by x``), D is exactly the sample KS statistic, ties included.
    When the grid is bins, D is evaluated only at bin edges, so it is a lower bound:
    D_binned ≤ D ≤ D_binned + max_b max(r_b/n, c_b/m) (within a bin each ECDF can rise by
    at most that bin's share), and the p-value is correspondingly an upper bound.
    """
    r, c = _as_count_pair(ref_counts, cur_counts)
    ri = _as_integer_counts(r, "reference counts")
    ci = _as_integer_counts(c, "current counts")
    return _ks_from_cumulative(np.cumsum(ri), np.cumsum(ci), int(ri.sum()), int(ci.sum()))


def ks_2samp(ref: npt.ArrayLike, cur: npt.ArrayLike) -> KSResult:
    """Two-sample KS on raw samples: exact D (ties handled like scipy) and its p-value."""
    x = np.sort(_as_sample(ref, "reference"))
    y = np.sort(_as_sample(cur, "current"))
    grid = np.concatenate([x, y])
    cum_x = np.searchsorted(x, grid, side="right").astype(np.int64)
    cum_y = np.searchsorted(y, grid, side="right").astype(np.int64)
    return _ks_from_cumulative(cum_x, cum_y, int(x.size), int(y.size))


# --------------------------------------------------------------------------------------------
# Wasserstein
# --------------------------------------------------------------------------------------------


def wasserstein_distance(ref: npt.ArrayLike, cur: npt.ArrayLike) -> float:
    """Wasserstein-1 between two raw samples: ∫ |F_ref(x) − F_cur(x)| dx (exact)."""
    x = np.sort(_as_sample(ref, "reference"))
    y = np.sort(_as_sample(cur, "current"))
    grid = np.sort(np.concatenate([x, y]), kind="mergesort")
    widths = np.diff(grid)
    fx = np.searchsorted(x, grid[:-1], side="right") / x.size
    fy = np.searchsorted(y, grid[:-1], side="right") / y.size
    return float(np.sum(np.abs(fx - fy) * widths))


def wasserstein_normed(
    ref: npt.ArrayLike, cur: npt.ArrayLike, std_floor: float = WASSERSTEIN_STD_FLOOR
) -> float:
    """Evidently's normed Wasserstein: W₁(ref, cur) / max(std_ref, 0.001), from raw samples.

    std_ref is the population standard deviation (ddof = 0). The floor keeps a constant
    reference from dividing by zero; then any shift reads as a large value.
    """
    x = _as_sample(ref, "reference")
    return wasserstein_distance(x, cur) / max(float(np.std(x)), std_floor)


def quantile_grid(k: int = 1000) -> FloatArray:
    """Probabilities (i + ½)/k, i = 0 … k−1: the grid for :func:`wasserstein_normed_from_quantiles`.

    Ask SQL for ``quantile_disc(x, grid)`` on both windows (DuckDB's quantile_disc is
    numpy's ``inverted_cdf``: the ⌈u·n⌉-th smallest value, the sample's own quantile
    function).
    """
    if k < 1:
        raise DriftInputError("the quantile grid needs at least one point")
    return (np.arange(k, dtype=np.float64) + 0.5) / k


def wasserstein_normed_from_quantiles(
    ref_quantiles: npt.ArrayLike,
    cur_quantiles: npt.ArrayLike,
    ref_std: float,
    std_floor: float = WASSERSTEIN_STD_FLOOR,
) -> float:
    """Normed Wasserstein-1 from matching quantile grids (no raw samples needed).

    W₁ = ∫₀¹ |F⁻¹_ref(u) − F⁻¹_cur(u)| du, approximated by the midpoint rule
    (1/k)·Σ_i |q_ref(u_i) − q_cur(u_i)| on u_i = (i + ½)/k (:func:`quantile_grid`), then
    divided by max(ref_std, 0.001) with ref_std = ``stddev_pop``.

    Approximation: with ``quantile_disc`` (the samples' step quantile functions) the rule is
    *exact* when k is a multiple of both n and m (every grid cell lies on one step of each
    function), and in general its error is at most (range_ref + range_cur)/k, because the
    integrand can only change inside a cell where one of the quantile functions jumps.
    For k = 1000 on well-behaved data the error is well under 1 %; a few extreme outliers
    dominate W₁ and are exactly what a k-point grid cannot see, so heavy-tailed features
    need a larger k (or a log transform). Linear quantiles (``quantile_cont``) smooth the
    steps and carry an extra O(1/n) bias.
    """
    q_r = np.asarray(ref_quantiles, dtype=np.float64).ravel()
    q_c = np.asarray(cur_quantiles, dtype=np.float64).ravel()
    if q_r.size == 0 or q_r.shape != q_c.shape:
        raise DriftInputError("reference and current quantile grids must have the same length")
    if not (np.all(np.isfinite(q_r)) and np.all(np.isfinite(q_c))):
        raise DriftInputError("quantiles must be finite (is a window empty?)")
    if not math.isfinite(ref_std) or ref_std < 0:
        raise DriftInputError("reference standard deviation must be finite and >= 0")
    return float(np.mean(np.abs(q_r - q_c))) / max(ref_std, std_floor)


# --------------------------------------------------------------------------------------------
# Chi-square
# --------------------------------------------------------------------------------------------


def _gammaincc(a: float, x: float) -> float:
    """Regularised upper incomplete gamma Q(a, x) = Γ(a, x) / Γ(a).

    Series for P = 1 − Q when x < a + 1 (Q is not small there), modified-Lentz continued
    fraction for Q otherwise (Numerical Recipes §6.2); relative error ~1e-14 against scipy.
    """
    if a <= 0:
        raise DriftInputError("incomplete gamma needs a > 0")
    if x <= 0:
        return 1.0
    if math.isinf(x):
        return 0.0
    log_prefactor = -x + a * math.log(x) - math.lgamma(a)  # ln(e^{-x} x^a / Γ(a))
    max_iter = 1000 + int(20 * math.sqrt(a))
    if x < a + 1.0:
        term = total = 1.0 / a
        denom = a
        for _ in range(max_iter):
            denom += 1.0
            term *= x / denom
            total += term
            if abs(term) < abs(total) * 1e-17:
                break
        return max(0.0, 1.0 - total * math.exp(log_prefactor))
    tiny = 1e-300
    b = x + 1.0 - a
    c = 1.0 / tiny
    d = 1.0 / b
    frac = d
    for i in range(1, max_iter):
        an = -i * (i - a)
        b += 2.0
        d = an * d + b
        d = tiny if abs(d) < tiny else d
        c = b + an / c
        c = tiny if abs(c) < tiny else c
        d = 1.0 / d
        delta = d * c
        frac *= delta
        if abs(delta - 1.0) < 1e-16:
            break
    return math.exp(log_prefactor) * frac


def chi2_sf(statistic: float, dof: int) -> float:
    """Chi-square survival function P(χ²_dof ≥ statistic) = Q(dof/2, statistic/2)."""
    if dof <= 0:
        raise DriftInputError("chi-square needs at least one degree of freedom")
    if math.isnan(statistic):
        raise DriftInputError("chi-square statistic is NaN")
    return _gammaincc(dof / 2.0, statistic / 2.0)


class Chi2Result(NamedTuple):
    """Pearson chi-square test of homogeneity on the 2 × K table (reference, current)."""

    statistic: float
    dof: int
    pvalue: float


def chi2_contingency(
    ref_counts: npt.ArrayLike, cur_counts: npt.ArrayLike, correction: bool = True
) -> Chi2Result:
    """Pearson chi-square on the 2 × K table, as ``scipy.stats.chi2_contingency``.

    E_wk = row_w · col_k / N; statistic = Σ (O − E)² / E; dof = K − 1; p = P(χ²_dof ≥ stat).
    Categories empty in both windows are left out (their expected count would be 0). As in
    scipy (and so NannyML and alibi-detect), Yates' continuity correction moves each O
    towards E by min(0.5, |O − E|) when dof = 1, unless ``correction=False``. With a single
    category (dof 0) the statistic is 0 and p is 1.
    """
    r, c = _as_count_pair(ref_counts, cur_counts)
    used = (r > 0) | (c > 0)
    observed = np.vstack([r[used], c[used]])
    dof = int(observed.shape[1]) - 1
    if dof == 0:
        return Chi2Result(0.0, 0, 1.0)
    expected = np.outer(observed.sum(axis=1), observed.sum(axis=0)) / observed.sum()
    if correction and dof == 1:
        diff = expected - observed
        observed = observed + np.sign(diff) * np.minimum(0.5, np.abs(diff))
    statistic = float(np.sum((observed - expected) ** 2 / expected))
    return Chi2Result(statistic, dof, chi2_sf(statistic, dof))


# --------------------------------------------------------------------------------------------
# Categorical drift
# --------------------------------------------------------------------------------------------


def align_categories(
    ref: Mapping[str, int], cur: Mapping[str, int]
) -> tuple[tuple[str, ...], FloatArray, FloatArray]:
    """Sorted union of category keys and both windows' counts over it (0 when absent)."""
    for name, counts in (("reference", ref), ("current", cur)):
        bad = [k for k, v in counts.items() if not (v >= 0 and math.isfinite(v))]
        if bad:
            raise DriftInputError(f"{name} has invalid counts for categories {bad[:5]}")
    keys = tuple(sorted(set(ref) | set(cur)))
    r = np.array([float(ref.get(k, 0)) for k in keys])
    c = np.array([float(cur.get(k, 0)) for k in keys])
    return keys, r, c


@dataclass(frozen=True)
class CategoricalDrift:
    """Drift of one categorical feature; all distances over the union of categories."""

    categories: tuple[str, ...]
    """Sorted union of categories with a count in either window."""
    n_ref: int
    n_cur: int
    psi: float
    """PSI with clip 1e-4 smoothing (natural log)."""
    psi_evidently: float
    """PSI with Evidently's zero fill (equal to ``psi`` unless some share is ≤ 1e-4)."""
    total_variation: float
    js_distance: float
    """Jensen–Shannon distance, base 2."""
    chi2: Chi2Result
    unseen: tuple[str, ...] = field(default=())
    """Categories in the current window that the reference never had."""
    vanished: tuple[str, ...] = field(default=())
    """Reference categories absent from the current window."""


def categorical_drift(ref: Mapping[str, int], cur: Mapping[str, int]) -> CategoricalDrift:
    """PSI, TV, JS distance (base 2) and chi-square between two category→count maps.

    Counts exclude NULL (report it with :func:`missing_rate`). A key with count 0 is treated
    as absent. An unseen category gets reference share 0, which PSI smooths (a large term),
    JS/TV handle directly, and chi-square counts through the union table.
    """
    keys, r, c = align_categories(ref, cur)
    keep = (r > 0) | (c > 0)
    keys = tuple(k for k, kept in zip(keys, keep, strict=True) if kept)
    r, c = r[keep], c[keep]
    if not keys or r.sum() == 0 or c.sum() == 0:
        raise DriftInputError("both windows need at least one categorised value")
    return CategoricalDrift(
        categories=keys,
        n_ref=int(r.sum()),
        n_cur=int(c.sum()),
        psi=psi(r, c, "clip1e-4"),
        psi_evidently=psi(r, c, "evidently"),
        total_variation=total_variation(r, c),
        js_distance=js_distance(r, c, base=2.0),
        chi2=chi2_contingency(r, c),
        unseen=tuple(k for k, rv, cv in zip(keys, r, c, strict=True) if rv == 0 and cv > 0),
        vanished=tuple(k for k, rv, cv in zip(keys, r, c, strict=True) if rv > 0 and cv == 0),
    )


# --------------------------------------------------------------------------------------------
# Verdicts
# --------------------------------------------------------------------------------------------

PsiVerdict = Literal["none", "moderate", "significant", "insufficient data"]


def has_enough_samples(n_ref: int, n_cur: int, min_samples: int = MIN_SAMPLES) -> bool:
    """True when both windows have at least ``min_samples`` non-missing values."""
    return n_ref >= min_samples and n_cur >= min_samples


def psi_noise_floor(n_ref: int, n_cur: int, n_bins: int) -> float:
    """Expected PSI with *no* drift: ≈ (B − 1)(1/n + 1/m).

    Under H₀ the second-order expansion of PSI is a Pearson-type statistic with
    E[(c_b − r_b)² / p_b] = (1 − p_b)(1/n + 1/m); summing over B bins gives the formula.
    A PSI near this value is sampling noise, whatever band it falls in.
    """
    if n_ref <= 0 or n_cur <= 0 or n_bins < 1:
        raise DriftInputError("the noise floor needs positive window sizes and bins")
    return (n_bins - 1) * (1.0 / n_ref + 1.0 / n_cur)


def psi_verdict(
    value: float,
    moderate: float = PSI_MODERATE,
    significant: float = PSI_SIGNIFICANT,
    *,
    n_ref: int | None = None,
    n_cur: int | None = None,
    min_samples: int = MIN_SAMPLES,
) -> PsiVerdict:
    """Band a PSI: < moderate → "none"; < significant → "moderate"; else "significant".

    Boundaries belong to the higher band (Evidently: drift if psi ≥ threshold). When window
    sizes are given and either is below ``min_samples`` the verdict is "insufficient data"
    whatever the value. A NaN PSI is an error, never "none".
    """
    if not moderate <= significant:
        raise DriftInputError("the moderate PSI threshold must not exceed the significant one")
    if (
        n_ref is not None
        and n_cur is not None
        and not has_enough_samples(n_ref, n_cur, min_samples)
    ):
        return "insufficient data"
    if math.isnan(value):
        raise DriftInputError("PSI is NaN; check the inputs")
    if value >= significant:
        return "significant"
    if value >= moderate:
        return "moderate"
    return "none"


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

Kind = Literal["numeric", "categorical"]
Inputs = Literal["bin_counts", "grid_counts", "quantiles"]


@dataclass(frozen=True)
class DriftScore:
    """One method's result for one feature and pair of windows."""

    method: str
    statistic: float
    """The method's statistic (higher means more drift for every method here)."""
    p_value: float | None
    """Two-sided p-value for test methods (ks, chi2); None for distances."""
    threshold: float
    drift: bool | None
    """Whether the thresholded quantity crosses the threshold; None if insufficient data."""
    verdict: str
    """"drift" / "no drift", PSI bands for psi, or "insufficient data"."""
    n_ref: int
    n_cur: int


@dataclass(frozen=True)
class DriftMethod:
    """A drift method the CLI can select with ``--method NAME``.

    ``inputs`` tells the query layer what to fetch: ``bin_counts`` (counts per bin of a
    :class:`Binning`, or per category), ``grid_counts`` (counts per distinct value, or per
    fine bin, ascending) or ``quantiles`` (``quantile_disc`` on :func:`quantile_grid` for
    both windows, plus the reference ``stddev_pop`` passed as ``ref_std``).
    """

    name: str
    compute: Callable[..., tuple[float, float | None]]
    """(ref, cur, **options) → (statistic, p-value or None)."""
    kinds: frozenset[Kind]
    inputs: Inputs
    default_threshold: float
    thresholded: Literal["statistic", "p_value"]
    """Drift when statistic ≥ threshold, or when p-value < threshold."""
    higher_means_drift: bool
    description: str

    def evaluate(
        self,
        ref: Any,
        cur: Any,
        *,
        threshold: float | None = None,
        n_ref: int | None = None,
        n_cur: int | None = None,
        min_samples: int = MIN_SAMPLES,
        **options: Any,
    ) -> DriftScore:
        """Compute and judge. Window sizes default to the count totals for count inputs."""
        if self.inputs != "quantiles":
            n_ref = int(np.sum(ref)) if n_ref is None else n_ref
            n_cur = int(np.sum(cur)) if n_cur is None else n_cur
        if n_ref is None or n_cur is None:
            raise DriftInputError(f"{self.name} needs n_ref and n_cur for the sample-size guard")
        limit = self.default_threshold if threshold is None else threshold
        if not has_enough_samples(n_ref, n_cur, min_samples):
            return DriftScore(
                self.name, math.nan, None, limit, None, "insufficient data", n_ref, n_cur
            )
        statistic, p_value = self.compute(ref, cur, **options)
        if self.thresholded == "p_value":
            if p_value is None:  # a registry entry whose compute does not return a p-value
                raise DriftInputError(f"{self.name} returned no p-value to threshold")
            drift = p_value < limit
        else:
            drift = statistic >= limit
        verdict: str = "drift" if drift else "no drift"
        if self.name == "psi":
            verdict = psi_verdict(
                statistic, moderate=limit, significant=max(limit, PSI_SIGNIFICANT)
            )
        return DriftScore(self.name, statistic, p_value, limit, drift, verdict, n_ref, n_cur)


def _psi_method(
    ref: npt.ArrayLike, cur: npt.ArrayLike, smoothing: Smoothing = "clip1e-4"
) -> tuple[float, None]:
    return psi(ref, cur, smoothing), None


def _js_method(ref: npt.ArrayLike, cur: npt.ArrayLike, base: float = 2.0) -> tuple[float, None]:
    return js_distance(ref, cur, base), None


def _tv_method(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[float, None]:
    return total_variation(ref, cur), None


def _ks_method(ref: npt.ArrayLike, cur: npt.ArrayLike) -> tuple[float, float]:
    d, p = ks_from_counts(ref, cur)
    return d, p


def _chi2_method(
    ref: npt.ArrayLike, cur: npt.ArrayLike, correction: bool = True
) -> tuple[float, float]:
    result = chi2_contingency(ref, cur, correction)
    return result.statistic, result.pvalue


def _wasserstein_method(
    ref: npt.ArrayLike, cur: npt.ArrayLike, ref_std: float
) -> tuple[float, None]:
    return wasserstein_normed_from_quantiles(ref, cur, ref_std), None


_BOTH: frozenset[Kind] = frozenset({"numeric", "categorical"})

METHODS: dict[str, DriftMethod] = {
    m.name: m
    for m in (
        DriftMethod(
            "psi",
            _psi_method,
            _BOTH,
            "bin_counts",
            PSI_MODERATE,
            "statistic",
            True,
            "Population stability index (ln, clip 1e-4); bands 0.1 moderate, 0.25 significant.",
        ),
        DriftMethod(
            "js",
            _js_method,
            _BOTH,
            "bin_counts",
            0.1,
            "statistic",
            True,
            "Jensen–Shannon distance, base 2 (0 … 1). Evidently's 0.1 is on the base-e "
            "distance, which equals 0.12 in base 2.",
        ),
        DriftMethod(
            "tv",
            _tv_method,
            _BOTH,
            "bin_counts",
            0.1,
            "statistic",
            True,
            "Total variation distance ½Σ|p − q| (0 … 1); the 0.1 threshold is our choice.",
        ),
        DriftMethod(
            "ks",
            _ks_method,
            frozenset({"numeric"}),
            "grid_counts",
            0.05,
            "p_value",
            True,
            "Two-sample Kolmogorov–Smirnov D with its p-value; drift when p < 0.05.",
        ),
        DriftMethod(
            "chi2",
            _chi2_method,
            frozenset({"categorical"}),
            "bin_counts",
            0.05,
            "p_value",
            True,
            "Pearson chi-square test of homogeneity on the 2 × K table; drift when p < 0.05.",
        ),
        DriftMethod(
            "wasserstein",
            _wasserstein_method,
            frozenset({"numeric"}),
            "quantiles",
            0.1,
            "statistic",
            True,
            "Wasserstein-1 divided by the reference std (Evidently's normed form, threshold 0.1).",
        ),
    )
}
