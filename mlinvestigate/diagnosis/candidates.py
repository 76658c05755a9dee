"""Candidate causes of one finding, each with its numbers, ranked.

Kinds, and the evidence each needs:

* deploy: a load of the finding's model shortly before the onset (from `mlinv loads`), judged
  with the window split at the load: the share of the change carried by the traffic that moved
  to the loaded version (the version mix term), times how much of the change at the onset
  happened across the load. A reload of the same version, or a load seen only in time, keeps
  a weaker score.
* version: the traffic moved to a version without a logged load, or only one version got worse
  (a canary).
* input: an input class became more common and is worse (input-size bucket, or a categorical
  record field such as a client); or only that class got worse.
* replica: only one host/pod/instance (a record field) got worse, or traffic moved to it.
* service: only one service shows it; the others serving the model do not.
* error: the error type that carries the rise (what failed, with the message and examples).
  Every error rise has one, so it ranks below a cause that explains it.
* traffic: requests rose sharply just before (load, not a defect).
* drift: an input feature whose distribution changed at the onset (`mlinv drift` between the
  two windows); a correlation, so it is weighed below causes measured on the traffic itself.

The score of each is in .causes; errors and drift have their own modules.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import numpy as np

from ..investigations.filters import clock_text, pct_text, run, where_sql
from ..result import Result
from .causes import (
    LOOKBACK,
    MIN_EXPLAINED,
    NEAR,
    PRIOR,
    WINDOW_INTERVALS,
    Analysis,
    Cause,
    Context,
    Load,
    Measure,
    by_option,
    cause_score,
    every,
    gap_text,
    iso,
    measure_of,
    of_model,
    scope_key,
    share_of,
    share_table,
    shown_values,
    value_text,
    window_text,
)
from .changepoints import two_proportion_z
from .contrast import (
    COLUMN_DIMENSIONS,
    Contrast,
    Decomposition,
    Dimension,
    Share,
    add_record_fields,
    decompose,
    load_contrast,
    record_fields,
)
from .drift_causes import drift_causes
from .error_causes import add_error_details, error_cause
from .onsets import Finding
from .series import Series

if TYPE_CHECKING:
    pass

MIN_SIDE = timedelta(minutes=10)
SIDE_LINES = 800
"""Each side of the onset holds at least WINDOW_INTERVALS intervals, MIN_SIDE and SIDE_LINES
request lines of the main scope, so that a class of a tenth of the traffic still has enough
requests to compare."""
MAX_SIDE_INTERVALS = 120
RECORDS_BELOW = 0.7
"""Record fields and drift are read (the window's records: the costly part) only when no cause
from the columns explains this much of the change, or the symptom is confidence."""


def analyse(ctx: Context, finding: Finding) -> tuple[list[Cause], Analysis]:
    """The ranked causes of one finding, and the contrast behind them."""
    series = ctx.series
    primary = finding.primary
    measure = measure_of(primary, series)
    bad_after = finding.onset is not None
    split_index = finding.onset if finding.onset is not None else finding.recovery
    assert split_index is not None
    onset_at = series.start_of(split_index)
    step = series.step
    loads = [load for load in ctx.loads
             if load.model_id == finding.model_id and load.outcome != "failure"
             and onset_at - LOOKBACK <= load.at < onset_at + step * 2] if bad_after else []
    side = _side_intervals(series, finding, split_index)
    lo = onset_at - step * side
    if loads:
        lo = min(lo, min(load.at for load in loads) - step * side)
    lo = max(lo, series.start_of(0))
    end_index = finding.recovery if bad_after and finding.recovery is not None else series.size
    hi = max(min(series.start_of(end_index), onset_at + step * side), onset_at + step * 2)
    scope_sql, scope_params = _scope_sql(finding, series)
    dimensions = [d for d in COLUMN_DIMENSIONS
                  if d.kind != "error" or measure.name in ("category", "errors")]
    contrast = load_contrast(
        ctx.con, ctx.filters, ctx.kinds, scope_sql, scope_params, dimensions, lo, hi, step,
        primary.category if measure.name == "category" else None,
        primary.threshold_ms if primary.metric == "slow" else _slow_threshold(finding, series),
    )
    analysis = Analysis(finding, contrast, measure, onset_at, contrast.index_of(onset_at),
                        contrast.index_of(hi), bad_after, side)
    if measure.name == "traffic":
        return [], analysis
    affected = [scope_key(series, s) for s in finding.scopes]
    causes = _deploys(ctx, analysis, loads, affected)
    for scope in affected:
        for dimension in dimensions:
            causes += _dimension_causes(ctx, analysis, scope, dimension)
    strongest = max((c.explained or 0.0 for c in causes if c.kind not in ("error", "service")),
                    default=0.0)
    if measure.name == "confidence" or strongest < RECORDS_BELOW:
        # Nothing in the columns explains it: look at the record fields (a replica, a client,
        # a categorical input) and at drift, which cost a read of the records.
        fields = record_fields(ctx.con, ctx.filters, scope_sql, scope_params,
                               ctx.kinds.request_line_sql(), lo, hi, ctx.consumed)
        sample = add_record_fields(ctx.con, ctx.filters, ctx.kinds, contrast, scope_sql, scope_params,
                                   fields, onset_at, _expected_rows(series, finding, lo, hi))
        for scope in affected:
            for dimension in fields.categorical:
                causes += _dimension_causes(ctx, analysis, scope, dimension)
        causes += drift_causes(analysis, sample, fields, causes)
    loaded = {load.version for load in loads}
    causes = [c for c in causes if not (c.kind == "version" and c.subject in loaded)]
    for cause in causes:
        if cause.kind == "version" and "without a logged load" in cause.title:
            later = [load for load in ctx.loads if load.model_id == finding.model_id
                     and load.version == cause.subject and lo <= load.at < hi]
            if later:
                cause.title = cause.title.replace(
                    "without a logged load", f"(loaded at {clock_text(later[0].at)}, after the onset)")
    causes += _service_only(analysis, affected)
    causes += _traffic(analysis, series, finding)
    ranked = _rank(causes)
    first_error = next((c for c in ranked if c.kind == "error"), None)
    if first_error is not None:
        add_error_details(ctx, analysis, first_error)
    if measure.name == "slow":
        for cause in ranked[:2]:
            add_latency_columns(ctx, analysis, cause)
    return ranked, analysis


def _side_intervals(series: Series, finding: Finding, split: int) -> int:
    """Intervals per side: WINDOW_INTERVALS and MIN_SIDE at least, more until the main scope
    has SIDE_LINES request lines before the split, MAX_SIDE_INTERVALS at most."""
    need = max(WINDOW_INTERVALS, math.ceil(MIN_SIDE / series.step))
    before = series.requests[finding.primary.scope, :split][::-1]
    enough = np.nonzero(np.cumsum(before) >= SIDE_LINES)[0]
    grown = int(enough[0]) + 1 if len(enough) else len(before)
    return int(min(max(need, grown), MAX_SIDE_INTERVALS))


def _expected_rows(series: Series, finding: Finding, lo: datetime, hi: datetime) -> float:
    """Request lines of the finding's model (every service) between lo and hi, from the series."""
    first, last = max(0, series.index_of(lo)), min(series.size, series.index_of(hi) + 1)
    rows = [s for s, scope in enumerate(series.scopes) if scope.model_id == finding.model_id]
    return float(series.requests[rows, first:last].sum()) if rows else 0.0


def _rank(causes: list[Cause]) -> list[Cause]:
    # One cause per kind and subject: the same error type or input class comes out of each hop
    # of the same requests (gateway and model-server); the best-scoring hop speaks for both.
    best: dict[tuple[str, str], Cause] = {}
    hops: dict[tuple[str, str], list[str]] = {}
    for cause in causes:
        key = (cause.kind, str(cause.subject) if cause.subject is not None else cause.title)
        hops.setdefault(key, []).append(cause.title)
        if key not in best or cause.score > best[key].score:
            best[key] = cause
    for key, cause in best.items():
        if cause.kind == "error" and len(hops[key]) > 1:
            where = sorted(t.rsplit(" at ", 1)[-1] for t in hops[key])
            cause.title = f"{cause.subject} surged at {', '.join(where)}"
    return sorted(best.values(), key=lambda c: -c.score)


def _scope_sql(finding: Finding, series: Series) -> tuple[str, dict[str, Any]]:
    if finding.model_id is not None:
        return "model_id = $c_model", {"c_model": finding.model_id}
    services = sorted({series.scopes[s].service or "" for s in finding.scopes})
    return "model_id IS NULL AND list_contains($c_services, service)", {"c_services": services}


def _slow_threshold(finding: Finding, series: Series) -> float | None:
    return series.latency_quantile(finding.scopes[0], 0.95) if finding.scopes else None


# --------------------------------------------------------------------------- deploys


def _deploys(ctx: Context, analysis: Analysis, loads: list[Load],
             affected: list[tuple[str | None, str | None]]) -> list[Cause]:
    contrast = analysis.contrast
    measure = analysis.measure
    version_dim = next(d for d in contrast.dimensions if d.name == "model_version")
    # The hop that logs versions: the affected scope with the most lines carrying one.
    scopes = sorted(contrast.scopes, key=lambda s: (s not in affected, -_versioned(contrast, s)))
    causes = []
    for load in loads:
        gap = analysis.onset_at - load.at
        timing = 1.0 if gap <= NEAR else max(0.5, 1.0 - 0.5 * (gap - NEAR) / (LOOKBACK - NEAR))
        at = contrast.index_of(load.at)
        before = slice(max(0, at - analysis.side), at)
        after = slice(at, analysis.end)
        explained, detail, evidence = 0.0, "", None
        evidence_scope: tuple[str | None, str | None] | None = None
        evidence_values: list[Any] = []
        for scope in scopes:
            if _versioned(contrast, scope) == 0:
                continue
            at_load = decompose(contrast, scope, version_dim, measure.name, before, after, measure.sd)
            at_onset = decompose(contrast, scope, version_dim, measure.name, analysis.before,
                                 analysis.after, measure.sd)
            if at_load is None or at_onset is None:
                continue
            change_load = measure.sign * at_load.change
            change_onset = measure.sign * at_onset.change
            coverage = share_of(change_load, change_onset)
            gained = max(at_load.shares, key=lambda s: s.share_after - s.share_before)
            if gained.value == load.version and gained.share_after - gained.share_before >= 0.05:
                explained = share_of(measure.sign * at_load.mix, change_load) * coverage
            else:
                explained = 0.5 * coverage  # the same version reloaded, or no version moved
            detail = (f"{measure.label} {measure.text(at_load.total_before)} before the load → "
                      f"{measure.text(at_load.total_after)} after (at {scope[0]}); "
                      f"{load.version} served {pct_text(100 * _share(at_load, load.version))} "
                      f"of the requests after it")
            evidence = share_table(f"{load.model_id} traffic by model_version around the load at "
                                    f"{clock_text(load.at)}", at_load, measure)
            evidence_scope, evidence_values = scope, shown_values(at_load)
            break
        if not detail:
            explained = {"critical": 0.8, "warn": 0.6}.get(load.verdict, 0.2)
            detail = load.what_followed
        name = f"{load.model_id} {load.version}".strip()
        if gap >= timedelta(0):
            when = f"{gap_text(gap)} before the onset"
        elif -gap < analysis.contrast.step:
            when = "in the onset's first interval"
        else:
            when = f"{gap_text(gap)} after the onset began"
        causes.append(Cause(
            "deploy", f"{name} loaded at {clock_text(load.at)} ({load.service}), {when}",
            detail, round(explained, 3), cause_score("deploy", explained, timing),
            f"mlinv loads --model {load.model_id} --since {iso(load.at - LOOKBACK)} "
            f"--until {iso(load.at + LOOKBACK)}",
            at=load.at, evidence=evidence, subject=load.version, dimension="model_version",
            scope=evidence_scope, split_at=load.at, values=evidence_values,
        ))
    return causes


def _versioned(contrast: Contrast, scope: tuple[str | None, str | None]) -> float:
    by_value = contrast.values.get((scope, "model_version"), {})
    return sum(c.arrays["n"].sum() for v, c in by_value.items() if v is not None)


def _share(dec: Decomposition, value: Any) -> float:
    return next((s.share_after for s in dec.shares if s.value == value), 0.0)


# --------------------------------------------------------------------------- dimensions


def _dimension_causes(ctx: Context, analysis: Analysis, scope: tuple[str | None, str | None],
                      dimension: Dimension) -> list[Cause]:
    measure = analysis.measure
    before, after = (analysis.before, analysis.after) if analysis.bad_after else \
        (analysis.after, analysis.before)
    dec = decompose(analysis.contrast, scope, dimension, measure.name, before, after, measure.sd)
    if dec is None:
        return []
    change = measure.sign * dec.change
    if change <= 0:
        return []
    shares = [s for s in dec.shares if s.value is not None]
    if dimension.kind == "error":
        return error_cause(ctx, analysis, scope, dec, change)
    causes = []
    gainer = max(shares, key=lambda s: s.share_after - s.share_before, default=None)
    # The class that became common explains the shift of the mix, and also its own getting
    # worse: those are the new requests (a client that now sends bad input in bulk).
    mix = share_of(measure.sign * (dec.mix + (gainer.rate if gainer else 0.0)), change)
    if gainer is not None and mix >= MIN_EXPLAINED and gainer.share_after - gainer.share_before >= 0.05 \
            and gainer.share_z >= 3 and _worse_than_rest(dec, gainer, measure):
        causes.append(_mix_cause(analysis, scope, dimension, dec, gainer, mix))
    for share in shares:
        rate = share_of(measure.sign * share.rate, change)
        common = (share.share_before + share.share_after) / 2 > 0.8
        if rate < 0.5 or measure.sign * share.rate_z < 3 or common:
            continue
        if _rest_changed(dec, share, measure):
            continue
        causes.append(_only_cause(analysis, scope, dimension, dec, share, rate))
    return causes


def _rates_rest(dec: Decomposition, share: Share) -> tuple[float | None, float | None]:
    nb = dec.n_before - share.n_before
    na = dec.n_after - share.n_after
    xb = dec.total_before * dec.n_before - share.x_before
    xa = dec.total_after * dec.n_after - share.x_after
    return (xb / nb if nb > 0 else None), (xa / na if na > 0 else None)


def _worse_than_rest(dec: Decomposition, share: Share, measure: Measure) -> bool:
    """The value is clearly worse than the other values on the side where it is most common:
    twice the rate (or 0.05 less confidence) and three standard errors apart. When nothing
    else is left there (a version that replaced another), only timing can tell."""
    rate = share.rate_after if share.rate_after is not None else share.rate_before
    rest = _rates_rest(dec, share)[1]
    if rate is None or rest is None:
        return rest is None
    n_rest = dec.n_after - share.n_after
    if measure.sign > 0:
        z = two_proportion_z(rest * n_rest, n_rest, share.x_after, share.n_after)
        return rate >= 2 * rest and rate - rest >= 0.005 and z >= 3
    if share.n_after <= 0 or n_rest <= 0 or not measure.sd:
        return False
    z = (rest - rate) / (measure.sd * math.sqrt(1 / share.n_after + 1 / n_rest))
    return rest - rate >= max(0.05, 0.5 * measure.sd) and z >= 3


def _rest_changed(dec: Decomposition, share: Share, measure: Measure) -> bool:
    rest_before, rest_after = _rates_rest(dec, share)
    if rest_before is None or rest_after is None:
        return True  # no rest to compare with: not "only this one"
    own = (share.rate_after or 0.0) - (share.rate_before or 0.0)
    return abs(rest_after - rest_before) > 0.3 * abs(own)


def _mix_cause(analysis: Analysis, scope: tuple[str | None, str | None], dimension: Dimension,
               dec: Decomposition, share: Share, explained: float) -> Cause:
    measure = analysis.measure
    kind = {"input": "input", "category": "input", "replica": "replica",
            "version": "version"}[dimension.kind]
    value = value_text(dimension, share.value)
    label = dimension.name.removeprefix("attrs.")
    rest = _rates_rest(dec, share)[1]
    model = analysis.finding.model_id
    if kind == "version":
        title = f"traffic moved to {model} {value} without a logged load"
    elif kind == "replica":
        title = f"traffic moved to {label} {value}, which is worse than the others"
    else:
        what = "input_size" if dimension.name == "input_size" else label
        title = f"more requests with {what} {value}, which are worse than the rest"
    own = share.rate_after if share.rate_after is not None else share.rate_before
    detail = (f"{label} {value}: share {pct_text(100 * share.share_before)} → "
              f"{pct_text(100 * share.share_after)} of {scope[0]}'s {of_model(model)}requests; its "
              f"{measure.label} {measure.text(own)}"
              f" vs {measure.text(rest)} for the rest; the shift accounts for "
              f"{pct_text(100 * explained)} of the change "
              f"({measure.text(dec.total_before)} → {measure.text(dec.total_after)})")
    return Cause(kind, title, detail, round(explained, 3), cause_score(kind, explained),
                 _dig_command(analysis, scope, dimension),
                 evidence=share_table(f"{of_model(model)}requests at {scope[0]} by {dimension.name}",
                                       dec, measure, dimension), subject=share.value,
                 dimension=dimension.name, scope=scope, split_at=analysis.onset_at,
                 values=shown_values(dec))


def _only_cause(analysis: Analysis, scope: tuple[str | None, str | None], dimension: Dimension,
                dec: Decomposition, share: Share, explained: float) -> Cause:
    measure = analysis.measure
    kind = {"input": "input", "category": "input", "replica": "replica",
            "version": "version"}[dimension.kind]
    value = value_text(dimension, share.value)
    label = dimension.name.removeprefix("attrs.")
    rest_before, rest_after = _rates_rest(dec, share)
    prior = PRIOR[kind] * (0.85 if kind == "input" else 1.0)
    title = f"only {label} {value} got worse"
    detail = (f"{label} {value}: {measure.label} {measure.text(share.rate_before)} → "
              f"{measure.text(share.rate_after)} while the rest stayed at "
              f"{measure.text(rest_before)} → {measure.text(rest_after)}; it carries "
              f"{pct_text(100 * share.share_after)} of the requests and "
              f"{pct_text(100 * explained)} of the change")
    return Cause(kind, title, detail, round(explained, 3),
                 round(prior * (0.4 + 0.6 * explained), 3), _dig_command(analysis, scope, dimension),
                 evidence=share_table(f"{of_model(analysis.finding.model_id)}requests at {scope[0]} "
                                       f"by {dimension.name}", dec, measure, dimension),
                 subject=share.value, dimension=dimension.name, scope=scope,
                 split_at=analysis.onset_at, values=shown_values(dec))


def _dig_command(analysis: Analysis, scope: tuple[str | None, str | None], dimension: Dimension) -> str:
    model = f" --model {scope[1]}" if scope[1] else ""
    window = window_text(analysis)
    if analysis.measure.name == "slow":
        return (f"mlinv latency --by {by_option(dimension)}{model} --service {scope[0]} {window} "
                f"--every {every(analysis)}")
    if analysis.measure.name in ("errors", "category"):
        return (f"mlinv errors --by error_category,{by_option(dimension)}{model} "
                f"--service {scope[0]} {window}")
    return f"mlinv summary --by {by_option(dimension)}{model} --service {scope[0]} {window}"


QUANTILES_SQL = """
SELECT after, value, GROUPING(value) AS rolled_up, quantile_cont(latency_ms, [0.5, 0.99]) AS q
FROM (
    SELECT ts >= $split AS after, {dimension} AS value, latency_ms
    FROM events
    WHERE {where}
      AND ts >= $lo AND ts < $hi
      AND service IS NOT DISTINCT FROM $q_service
      AND model_id IS NOT DISTINCT FROM $q_model
      AND {request_line}
      AND error_category IS NULL AND latency_ms IS NOT NULL
)
GROUP BY GROUPING SETS ((after), (after, value))
"""


def add_latency_columns(ctx: Context, analysis: Analysis, cause: Cause) -> None:
    """Exact p50 and p99 before and after, per value of the cause's evidence table (what "P99
    driven by large inputs" looks like in numbers)."""
    evidence = cause.evidence
    if evidence is None or cause.scope is None or cause.split_at is None or not cause.values:
        return
    dimension = next((d for d in analysis.contrast.dimensions if d.name == cause.dimension), None)
    if dimension is None:
        return
    contrast = analysis.contrast
    where, params = where_sql(ctx.filters)
    line_sql, line_params = ctx.kinds.request_line_sql()
    side = contrast.step * analysis.side
    bind = {**params, **line_params, "split": cause.split_at, "lo": max(contrast.lo, cause.split_at - side),
            "hi": contrast.hi, "q_service": cause.scope[0], "q_model": cause.scope[1]}
    fetched = run(ctx.con, QUANTILES_SQL.format(dimension=dimension.sql, where=where,
                                                request_line=line_sql), bind, ctx.filters).fetchall()
    found: dict[tuple[bool, Any], tuple[float, float]] = {}
    for after, value, rolled_up, q in fetched:
        if q:
            found[(bool(after), "(all)" if rolled_up else value)] = (q[0], q[1])
    keys = [*cause.values, "(all)"]
    rows = []
    for row, key in zip(evidence.rows, keys, strict=True):
        before, after = found.get((False, key)), found.get((True, key))
        rows.append((*row, before[1] if before else None, after[0] if after else None,
                     after[1] if after else None))
    cause.evidence = Result(evidence.title, [*evidence.columns, "p99_before", "p50_after", "p99_after"],
                            rows, units={**evidence.units, "p99_before": "ms", "p50_after": "ms",
                                         "p99_after": "ms"})


# --------------------------------------------------------------------------- services, traffic


def _service_only(analysis: Analysis, affected: list[tuple[str | None, str | None]]) -> list[Cause]:
    contrast = analysis.contrast
    measure = analysis.measure
    if measure.name == "confidence":
        return []
    services = {s[0] for s in affected}
    others = [s for s in contrast.scopes if s[0] not in services]
    if len(services) != 1 or not others:
        return []
    x_name, n_name = {"category": ("cat_errors", "n"), "errors": ("errors", "n"),
                      "slow": ("slow", "timed")}[measure.name]
    before, after = (analysis.before, analysis.after) if analysis.bad_after else \
        (analysis.after, analysis.before)
    quiet = []
    for scope in others:
        counts = contrast.scopes[scope]
        nb, na = counts.total(n_name, before), counts.total(n_name, after)
        if nb < 20 or na < 20:
            continue
        rb, ra = counts.total(x_name, before) / nb, counts.total(x_name, after) / na
        quiet.append((scope[0], rb, ra))
    if not quiet or any(ra - rb > 0.005 and ra > 1.5 * rb for _, rb, ra in quiet):
        return []
    service = next(iter(services))
    detail = f"{measure.label} changed at {service} only; " + "; ".join(
        f"{name}: {measure.text(rb)} → {measure.text(ra)}" for name, rb, ra in quiet)
    return [Cause("service", f"only {service} shows it", detail, 1.0, cause_score("service", 1.0),
                  f"mlinv summary --by service --model {analysis.finding.model_id} "
                  f"{window_text(analysis)}" if analysis.finding.model_id else
                  f"mlinv summary --by service {window_text(analysis)}")]


def _traffic(analysis: Analysis, series: Series, finding: Finding) -> list[Cause]:
    if analysis.measure.name == "confidence" or finding.onset is None:
        return []
    onset = finding.onset
    best: Cause | None = None
    for s in finding.scopes:
        counts = series.requests[s]
        before = counts[max(0, onset - WINDOW_INTERVALS):max(0, onset - 3)]
        around = counts[max(0, onset - 3):onset + 3]
        if len(before) < 3 or len(around) == 0 or before.mean() <= 0:
            continue
        ratio = float(around.mean() / before.mean())
        if ratio < 1.5 or around.sum() - before.mean() * len(around) < 30:
            continue
        explained = min(1.0, (ratio - 1.0) / 2.0)
        label = series.scopes[s].label
        cause = Cause("traffic", f"traffic surge at {label}",
                      f"{label}: {before.mean():.1f} → {around.mean():.1f} requests per interval "
                      f"({ratio:.1f}×) just before the onset", round(explained, 3),
                      cause_score("traffic", explained),
                      f"mlinv throughput --service {series.scopes[s].service} "
                      f"{window_text(analysis)} --every {every(analysis)}")
        if best is None or cause.score > best.score:
            best = cause
    return [best] if best else []
