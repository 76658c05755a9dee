"""Drift causes: input features whose distribution differs between the two sides of an onset.

Numeric record fields come from the sampled records (PSI on the good side's deciles with the
drift module's statistics, and the KS distance), categorical fields and input_size from the
contrast's counts. A drift is a coincidence in time, not a measured share of the change: it
gets no "explains" and weighs less for errors and latency than for confidence."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING

import numpy as np

from ..investigations.filters import clock_text, pct_text
from .causes import Analysis, Cause, cause_score, iso, value_text
from .contrast import Dimension, RecordFields, RecordSample

if TYPE_CHECKING:
    pass

DRIFT_MIN_VALUES = 100
"""Values needed on each side to compare a distribution."""
OUTPUT_FIELDS = frozenset({
    "confidence", "prediction", "latency_ms", "status_code", "cache_hit", "error_type",
    "error_category", "error_message", "level", "event", "status", "model_version", "model_id",
    "service", "output_hash", "input_hash",
})
"""Fields that are results of serving, not inputs: their drift is the symptom, not a cause."""


# --------------------------------------------------------------------------- drift


def drift_causes(analysis: Analysis, sample: RecordSample | None, fields: RecordFields,
           found: list[Cause]) -> list[Cause]:
    """Inputs whose distribution differs between the two sides: numeric record fields from the
    sample (PSI on the good side's deciles, KS), categorical ones and input_size from the
    contrast's counts. Fields already named by an input cause are left out."""
    from ..drift import stats

    covered = {c.dimension for c in found if c.kind == "input"}
    good, bad = (analysis.before, analysis.after) if analysis.bad_after else \
        (analysis.after, analysis.before)
    rows: list[tuple[str, float, float | None, str]] = []
    if sample is not None:
        for path in fields.numeric:
            values = sample.fields[path]
            ok = ~np.isnan(values)
            ref = values[ok & (sample.k >= good.start) & (sample.k < good.stop)]
            cur = values[ok & (sample.k >= bad.start) & (sample.k < bad.stop)]
            if len(ref) < DRIFT_MIN_VALUES or len(cur) < DRIFT_MIN_VALUES:
                continue
            inner = stats.quantile_edges(np.quantile(ref, np.linspace(0.1, 0.9, 9)))[1:-1]
            ref_counts = np.bincount(np.searchsorted(inner, ref, side="right"), minlength=len(inner) + 1)
            cur_counts = np.bincount(np.searchsorted(inner, cur, side="right"), minlength=len(inner) + 1)
            psi = stats.psi(ref_counts, cur_counts)
            ks = _ks_statistic(ref, cur)
            # KS critical value at α = 0.001: a smaller D is what two samples of the same
            # distribution this size show anyway.
            if ks < 1.95 * math.sqrt((len(ref) + len(cur)) / (len(ref) * len(cur))):
                continue
            rows.append((path, psi, ks, f"median {np.median(ref):.4g} → {np.median(cur):.4g}"))
    for (scope, name), by_value in analysis.contrast.values.items():
        if name in covered or not (name == "input_size" or name.startswith("attrs.")):
            continue
        if scope[0] is None or (name, scope) in {(r[0], scope) for r in rows}:
            continue
        keys = [v for v in by_value if v is not None]
        ref_counts = np.array([by_value[v].total("n", good) for v in keys])
        cur_counts = np.array([by_value[v].total("n", bad) for v in keys])
        if len(keys) < 2 or ref_counts.sum() < DRIFT_MIN_VALUES or cur_counts.sum() < DRIFT_MIN_VALUES:
            continue
        psi = stats.psi(ref_counts, cur_counts)
        if psi < 3 * stats.psi_noise_floor(int(ref_counts.sum()), int(cur_counts.sum()), len(keys)):
            continue
        top = keys[int(np.argmax(np.abs(cur_counts / cur_counts.sum() - ref_counts / ref_counts.sum())))]
        top_text = value_text(Dimension(name, "input", ""), top) if name == "input_size" else top
        share_good = 100 * by_value[top].total("n", good) / ref_counts.sum()
        share_bad = 100 * by_value[top].total("n", bad) / cur_counts.sum()
        rows.append((name.removeprefix("attrs."), psi, None,
                     f"share of {top_text} {pct_text(share_good)} → {pct_text(share_bad)}"))
    causes: list[Cause] = []
    contrast = analysis.contrast
    good_at = (contrast.start_of(good.start), contrast.start_of(good.stop))
    bad_at = (contrast.start_of(bad.start), contrast.start_of(bad.stop))
    model = f" --model {analysis.finding.model_id}" if analysis.finding.model_id else ""
    seen: set[str] = set()
    for name, psi, ks, change in sorted(rows, key=lambda r: -r[1]):
        if name in seen or name in OUTPUT_FIELDS or psi < stats.PSI_MODERATE:
            continue
        seen.add(name)
        verdict = "significant" if psi >= stats.PSI_SIGNIFICANT else "moderate"
        # Drift is a coincidence in time, not a measured share of the change: no "explains",
        # and it moves confidence directly but errors or latency only loosely.
        weight = min(1.0, psi / 0.5) * (0.9 if analysis.measure.name == "confidence" else 0.5)
        figures = f"PSI {psi:.2f}" + (f", KS {ks:.2f}" if ks is not None else "")
        sampled = "; from a sample of the lines" if sample is not None and sample.sliced \
            and name in fields.numeric else ""
        causes.append(Cause(
            "drift", f"{name} drifted at the onset",
            f"{name}: {verdict} drift, {_clock_range(good_at)} vs {_clock_range(bad_at)}: {figures}; "
            f"{change}{sampled}",
            None, cause_score("drift", weight),
            f"mlinv drift{model} --feature {name} --reference {iso(good_at[0])}..{iso(good_at[1])} "
            f"--current {iso(bad_at[0])}..{iso(bad_at[1])}",
            at=contrast.start_of(analysis.split), subject=name))
        if len(causes) >= 3:
            break
    return causes


def _ks_statistic(ref: np.ndarray, cur: np.ndarray) -> float:
    """The two-sample KS distance D alone (the drift module's p-value is exact and slow on tens
    of thousands of values, and a ranking needs only D)."""
    x, y = np.sort(ref), np.sort(cur)
    grid = np.concatenate([x, y])
    cdf_x = np.searchsorted(x, grid, side="right") / len(x)
    cdf_y = np.searchsorted(y, grid, side="right") / len(y)
    return float(np.max(np.abs(cdf_x - cdf_y)))


def _clock_range(window: tuple[datetime, datetime]) -> str:
    return f"{clock_text(window[0])}–{clock_text(window[1])}"
