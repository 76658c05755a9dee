"""``mlinv drift``: compare a reference window (or a saved baseline) with a current window.

The work is one pass of discovery and three SQL summaries (see :mod:`.profile`); numpy turns
the summaries into statistics (:mod:`.measures`). The reference side of a comparison is a
:class:`ReferenceSide`, filled from the database or from a saved baseline (:mod:`.baseline`),
so both give the same numbers for the same reference rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..engines import DUCKDB, SPARK
from ..errors import EmptyResult, UsageError
from ..investigations.filters import Filters
from ..result import Result
from . import stats
from .discovery import Discovery, carriers, discover, population, probe_field
from .features import Feature, SampledField, check_field_name, describe_scope
from .measures import (
    FeatureDrift,
    NumericBins,
    Options,
    categorical_statistics,
    enough,
    judge,
    median_from_buckets,
    numeric_statistics,
    reference_bins,
)
from .profile import (
    ATTRS_EXACT_ROWS,
    ATTRS_SAMPLE_ROWS,
    BLOCK_ROWS,
    COLUMN_EXACT_ROWS,
    COLUMN_SAMPLE_ROWS,
    EXACT_QUANTILE_LIMIT,
    QUANTILE_SAMPLE_TARGET,
    BlockSample,
    Buckets,
    Part,
    Population,
    Profile,
    Scan,
    block_sample,
)
from .windows import WindowChoice

if TYPE_CHECKING:
    import duckdb


@dataclass
class ReferenceSide:
    """Everything a comparison needs from the reference, keyed by feature name."""

    features: dict[str, Feature]
    populations: dict[str, Population]
    profiles: dict[str, Profile] = field(default_factory=dict)
    bins: dict[str, NumericBins] = field(default_factory=dict)
    buckets: dict[str, Buckets] = field(default_factory=dict)
    categories: dict[str, dict[str, int]] = field(default_factory=dict)
    families: dict[str, str] = field(default_factory=dict)
    """Record field → JSON type family seen in the reference sample (for schema drift)."""
    description: str = ""
    binning: str = "quantile10"
    edges: tuple[float, ...] | None = None


@dataclass
class GroupSide:
    """One current group (the current window, or one interval)."""

    populations: dict[str, Population] = field(default_factory=dict)
    buckets: dict[str, Buckets] = field(default_factory=dict)
    categories: dict[str, dict[str, int]] = field(default_factory=dict)


@dataclass
class ScanOutcome:
    reference: ReferenceSide
    groups: dict[int, GroupSide]
    features: list[Feature]
    discovery: Discovery
    current_families: dict[str, str]
    sampled: dict[int, float] = field(default_factory=dict)
    """Side (0 reference, 1 current) → share of its rows read for record fields, when sampled."""
    column_sampled: dict[int, float] = field(default_factory=dict)
    """The same for event columns (much cheaper to read, so sampled only in bigger windows)."""


EXACT_BINNINGS = frozenset({"sturges-combined", "doane-ref"})
"""Binnings that reproduce another tool's numbers: their bin count and edges depend on the
window's n, min, max (and skewness), so both windows are always read in full for them."""


def _sample_every(valid: int) -> int:
    return 1 if valid <= EXACT_QUANTILE_LIMIT else max(valid // QUANTILE_SAMPLE_TARGET, 1)


def run_scan(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    parts: Sequence[Part],
    options: Options,
    wanted: Sequence[str] | None,
    baseline: ReferenceSide | None = None,
    *,
    interval_count: int | None = None,
) -> ScanOutcome:
    """Discover features and compute every summary for the groups of `parts`.

    Without a baseline, group 0 is the reference. With one, the reference comes from it and
    `parts` hold only current groups.

    On Spark (`con` a SparkEngine) the same summaries come from Spark SQL (:mod:`.spark_scan`)
    and everything after them is this code: the statistics cannot differ by engine."""
    spark = getattr(con, "name", None) == SPARK
    if spark:
        from . import spark_scan

        discovery = spark_scan.discover(con, filters, parts)  # type: ignore[arg-type]
    else:
        discovery = discover(con, filters, parts)
    for part in parts:
        side = 0 if part.key_sql.strip() == "0" else 1
        if not discovery.rows.get(side):
            label = "reference" if side == 0 else "current"
            raise EmptyResult(f"no events in the {label} window", hint="check the window and the filters")
    candidates = list(discovery.features)
    if baseline is not None:
        # The baseline's features, with their kind and scopes; fields that are new since then
        # show in the schema changes (their sampled types are compared with the baseline's).
        candidates = list(baseline.features.values())
    features = _select(con, filters, parts, candidates, wanted)
    scan = spark_scan.SparkScan(con, filters, features, parts) if spark else (  # type: ignore[arg-type]
        Scan(con, filters, features, parts))
    attr_events = sorted({scope.split("|")[1] for f in features if f.source == "attrs"
                          for scope in f.scopes})
    sampled: dict[int, float] = {}
    column_sampled: dict[int, float] = {}
    # Spark reads every row: its row order is no row id, and reading is its job.
    if not spark:
        column_blocks, column_sampled = _samples(con, filters, parts, discovery, options, interval_count,
                                                 COLUMN_EXACT_ROWS, COLUMN_SAMPLE_ROWS, per_interval=3)
        scan.sample_columns(column_blocks)
    if any(f.source == "attrs" for f in features) and not spark:
        # Two blocks an interval: about 4,000 rows, ~1,000 values of a field on a quarter of the
        # rows, where PSI without drift is ~0.01 (a tenth of the moderate threshold).
        blocks, sampled = _samples(con, filters, parts, discovery, options, interval_count,
                                   ATTRS_EXACT_ROWS, ATTRS_SAMPLE_ROWS, per_interval=2)
        scan.prepare_attrs(attr_events, blocks)
    elif spark:
        scan.prepare_attrs(attr_events, {})

    # Reference profiles and bins first: they depend only on the reference's values.
    if baseline is None:
        reference = ReferenceSide(features={}, populations={},
                                  binning=options.binning if options.edges is None else "fixed",
                                  edges=options.edges)
        ref_rows = {"column": round(sum(discovery.rows.get(0, {}).values()) * column_sampled.get(0, 1.0)),
                    "attrs": scan.attrs_rows(0)}
        numeric = [scan.index[id(f)] for f in features if f.kind == "numeric"]
        # Row counts bound each feature's value count: enough to decide on subsampling.
        sample_every = {i: _sample_every(ref_rows[scan.features[i].source]) for i in numeric}
        profile_parts = [0, 1] if options.binning == "sturges-combined" and options.edges is None else [0]
        profiles: dict[int, dict[int, Profile]] = {}
        for source in ("column", "attrs"):
            for group, per_feature in scan.profile(source, numeric, parts=profile_parts, quantiles_for=0,
                                                   sample_every=sample_every).items():
                profiles.setdefault(group, {}).update(per_feature)
        for f in features:
            i = scan.index[id(f)]
            ref_profile = profiles.get(0, {}).get(i)
            if f.kind != "numeric" or ref_profile is None or ref_profile.n == 0:
                continue
            reference.profiles[f.name] = ref_profile
            reference.bins[f.name] = reference_bins(options, ref_profile, profiles.get(1, {}).get(i))
    else:
        reference = baseline
    position_of = {f.name: scan.index[id(f)] for f in features}
    boundaries = {position_of[name]: bins.boundaries for name, bins in reference.bins.items()
                  if name in position_of}
    limits = {position_of[name]: (float(bins.grid[0]), float(bins.grid[-1]), bins.tail_cuts)
              for name, bins in reference.bins.items() if name in position_of}

    # One pass per source: scope counts, bucket counts and value counts together.
    counts: dict[int, dict[str, dict[int, Population]]] = {}
    numeric_counts: dict[int, dict[int, Buckets]] = {}
    category_counts: dict[int, dict[int, dict[str, int]]] = {}
    for source in ("column", "attrs"):
        numeric_out, categorical_out, scope_counts = scan.buckets(source, boundaries, limits)
        for group, per_scope in scope_counts.items():
            for scope, per_feature in per_scope.items():
                counts.setdefault(group, {}).setdefault(scope, {}).update(per_feature)
        for group, per_feature in numeric_out.items():
            numeric_counts.setdefault(group, {}).update(per_feature)
        for group, per_feature in categorical_out.items():
            category_counts.setdefault(group, {}).update(per_feature)
    scopes_of = carriers(features, counts, scan.index)
    if baseline is not None:
        for f in features:
            if f.name in baseline.features:
                i = scan.index[id(f)]
                saved_scopes = set(baseline.features[f.name].scopes)
                scopes_of[i] = tuple(sorted(set(scopes_of.get(i, ())) | saved_scopes))
    kept: list[Feature] = []
    positions: dict[str, int] = {}
    for f in features:
        i = scan.index[id(f)]
        if scopes_of.get(i):
            kept.append(replace(f, scopes=scopes_of[i]))
            positions[f.name] = i
    groups: dict[int, GroupSide] = {}
    for group in set(counts) | set(numeric_counts) | set(category_counts):
        side = groups.setdefault(group, GroupSide())
        per_scope = counts.get(group, {})
        for f in kept:
            i = positions[f.name]
            side.populations[f.name] = population(per_scope, i, f.scopes)
            if i in numeric_counts.get(group, {}):
                side.buckets[f.name] = numeric_counts[group][i]
            if i in category_counts.get(group, {}):
                side.categories[f.name] = category_counts[group][i]
    if baseline is None:
        reference.features = {f.name: f for f in kept}
        reference.populations = {f.name: groups.get(0, GroupSide()).populations.get(f.name, Population())
                                 for f in kept}
        reference.profiles = {k: v for k, v in reference.profiles.items() if k in positions}
        reference.bins = {k: v for k, v in reference.bins.items() if k in positions}
    if baseline is None:
        ref_group = groups.pop(0, GroupSide())
        reference.buckets = ref_group.buckets
        reference.categories = ref_group.categories
        reference.families = _families(discovery.fields, 0)
        current_families = _families(discovery.fields, 1)
    else:
        groups.pop(0, None)
        current_families = _families(discovery.fields, 1)
    return ScanOutcome(reference, groups, kept, discovery, current_families, sampled, column_sampled)


def _samples(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    parts: Sequence[Part],
    discovery: Discovery,
    options: Options,
    interval_count: int | None,
    exact_rows: int,
    target_rows: int,
    *,
    per_interval: int,
) -> tuple[dict[int, BlockSample | None], dict[int, float]]:
    """Row blocks to read per part (None: every row) and the share read per side, for parts
    over `exact_rows` rows: about `target_rows` rows, and with --every at least `per_interval`
    blocks in every interval so each interval is read in several places."""
    intervals = interval_count or 1
    blocks: dict[int, BlockSample | None] = {}
    shares: dict[int, float] = {}
    for k, part in enumerate(parts):
        side = 0 if part.key_sql.strip() == "0" else 1
        rows = sum(discovery.rows.get(side, {}).values())
        blocks[k] = None
        if options.exact or options.binning in EXACT_BINNINGS or rows <= exact_rows:
            continue
        last = k == len(parts) - 1
        # Per interval, blocks of one DuckDB vector (2,048 rows): the finest spread that still
        # reads whole vectors, so an onset inside an interval is seen (bigger blocks moved the
        # sample's onset one interval late). Two windows take fewer, cheaper 8,192-row blocks.
        blocks[k] = block_sample(con, filters, part, rows,
                                 target=max(target_rows, per_interval * 2048 * (intervals if last else 1)),
                                 min_blocks=per_interval * intervals if last else 1,
                                 block=2048 if interval_count else BLOCK_ROWS)
        sample = blocks[k]
        if sample is not None:
            shares[side] = min(sample.rows / rows, 1.0)
    return blocks, shares


def _families(fields: Mapping[str, SampledField], side: int) -> dict[str, str]:
    result = {}
    for name, entry in fields.items():
        family = entry.family_in(side)
        if family is not None:
            result[name] = family
    return result


def _select(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    parts: Sequence[Part],
    candidates: list[Feature],
    wanted: Sequence[str] | None,
) -> list[Feature]:
    if not wanted:
        return candidates
    names = [check_field_name(name) for name in wanted]
    chosen = [f for f in candidates if f.name in names]
    for name in names:
        if any(f.name == name for f in candidates):
            continue
        if getattr(con, "name", None) == SPARK:
            from .spark_scan import probe_field as spark_probe

            probed = spark_probe(con, filters, parts, name)  # type: ignore[arg-type]
        else:
            probed = probe_field(con, filters, parts, name)
        if probed is None:
            available = ", ".join(sorted({f.name for f in candidates})) or "none"
            raise UsageError(f"no numeric or categorical field {name!r} in the selected events",
                             hint=f"fields found: {available}")
        chosen.append(probed)
    return chosen


def compare_feature(
    feature: Feature,
    reference: ReferenceSide,
    current: GroupSide,
    options: Options,
    current_families: Mapping[str, str],
    *,
    p_value: bool = True,
    everything: bool = True,
) -> FeatureDrift:
    """Every statistic and the verdict of one feature, reference against one current group
    (without `everything`: PSI and the statistic of the verdict only, see numeric_statistics)."""
    name = feature.name
    drift = FeatureDrift(feature, reference.populations.get(name, Population()),
                         current.populations.get(name, Population()))
    if feature.source == "attrs":
        before = reference.families.get(name) or feature.json_type or None
        after = current_families.get(name)
        if before and after and before != after:
            drift.type_change = (before, after)
    if enough(drift.ref, drift.cur, options):
        if feature.kind == "numeric" and name in reference.bins and name in current.buckets:
            profile = reference.profiles.get(name)
            std = profile.std if profile is not None and profile.std is not None else 0.0
            numeric_statistics(drift, reference.bins[name], reference.buckets[name],
                               current.buckets[name], std, options, p_value=p_value,
                               everything=everything)
        elif feature.kind == "categorical":
            ref_counts = reference.categories.get(name, {})
            cur_counts = current.categories.get(name, {})
            if ref_counts and cur_counts:
                # Per interval the p-value is skipped unless it is what the verdict is made of.
                categorical_statistics(drift, ref_counts, cur_counts, options,
                                       p_value=p_value or options.method == "chi2", everything=everything)
    judge(drift, options)
    if (feature.kind == "numeric" and drift.verdict in ("moderate", "significant")
            and name in reference.bins and name in reference.buckets and name in current.buckets
            and drift.psi is not None):
        bins = reference.bins[name]
        before = median_from_buckets(bins, reference.buckets[name])
        after = median_from_buckets(bins, current.buckets[name])
        drift.reasons.insert(1 if drift.reasons else 0, f"median {before} → {after}")
    return drift


# --------------------------------------------------------------------------- the command


COLUMNS = [
    "feature", "kind", "verdict", "psi", "ks", "p_value", "js", "wasserstein", "tv",
    "missing_ref_pct", "missing_cur_pct", "n_ref", "n_cur", "reason",
]


def window_parts(choice: WindowChoice, engine: str = DUCKDB) -> list[Part]:
    ref_sql, ref_params = choice.reference.condition("w0", engine)
    cur_sql, cur_params = choice.current.condition("w1", engine)
    return [Part("0", ref_sql, ref_params), Part("1", cur_sql, cur_params)]


def drift(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    choice: WindowChoice,
    options: Options,
    wanted: Sequence[str] | None = None,
    *,
    baseline: ReferenceSide | None = None,
    baseline_name: str | None = None,
) -> Result:
    """The drift table: one row per feature, most severe first."""
    parts = window_parts(choice, getattr(con, "name", DUCKDB))
    if baseline is not None:
        parts = parts[1:]
    outcome = run_scan(con, filters, parts, options, wanted, baseline)
    if choice.reference.version is not None or choice.current.version is not None:
        # The windows are split by version: its mix differs by construction, not by drift.
        outcome.features = [f for f in outcome.features if f.name != "model_version"]
    current = outcome.groups.get(1, GroupSide())
    if not any(p.rows for p in current.populations.values()):
        raise EmptyResult(f"no events in the current window ({choice.current.describe()})")
    if baseline is None and not any(p.rows for p in outcome.reference.populations.values()):
        raise EmptyResult(f"no events in the reference window ({choice.reference.describe()})")
    drifts = [compare_feature(f, outcome.reference, current, options, outcome.current_families)
              for f in outcome.features]
    drifts.sort(key=lambda d: d.sort_key())
    rows = [_row(d) for d in drifts]
    notes = _notes(drifts, choice, options, filters, outcome, baseline_name)
    sections = _sections(drifts, outcome)
    title = (f"Drift: current vs baseline {baseline_name!r}" if baseline_name
             else "Drift: current vs reference")
    return Result(title, list(COLUMNS), rows, notes=notes,
                  units={"missing_ref_pct": "%", "missing_cur_pct": "%"}, sections=sections)


def _pct(rate: float | None) -> float | None:
    return None if rate is None else round(rate * 100, 3)


def _row(d: FeatureDrift) -> tuple[Any, ...]:
    return (
        d.feature.name, d.feature.kind, d.verdict, d.psi,
        d.ks, d.p_value, d.js, d.wasserstein, d.tv,
        _pct(d.ref.missing_rate()), _pct(d.cur.missing_rate()), d.ref.valid, d.cur.valid,
        "; ".join(d.reasons),
    )


SMOOTHING_TEXT = {
    "clip1e-4": "each bin share floored at 1e-4",
    "evidently": "empty bins filled with min share/1e6 or 1e-4, as Evidently",
    "laplace": "one added to every bin count, as Phoenix",
    "none": "none; an empty bin makes PSI infinite",
}


def definitions(options: Options) -> list[str]:
    """The notes that say how the statistics are computed."""
    binning = "fixed edges " + ",".join(f"{e:g}" for e in options.edges) if options.edges else {
        "quantile10": "10 bins at the reference deciles with open outer edges (quantile10)",
        "sturges-combined": "equal-width Sturges bins over reference ∪ current (sturges-combined, Evidently)",
        "doane-ref": "equal-width Doane bins over the reference range plus a leftover bin "
                     "(doane-ref, NannyML)",
    }.get(options.binning, options.binning)
    base = "2" if options.js_base == 2.0 else "e"
    moderate, significant = options.thresholds(options.method)
    if options.method == "chi2":
        rule = f"chi-square p < {moderate:g} moderate, < {significant:g} significant"
    else:
        label = "KS D" if options.method == "ks" else options.method.upper() if options.method != \
            "wasserstein" else "Wasserstein"
        rule = f"{label} ≥ {moderate:g} moderate, ≥ {significant:g} significant"
    return [
        f"Verdict: {rule}; a missing rate moving ≥ 5 points is moderate, ≥ 20 significant; "
        f"fewer than {options.min_samples} usable values in a window: insufficient data.",
        f"PSI: natural log, {binning}, smoothing {options.smoothing} "
        f"({SMOOTHING_TEXT.get(options.smoothing, options.smoothing)}). JS: distance, base {base}, "
        "same bins. TV: ½Σ|p − q|.",
        "KS: D at the reference's 201-point quantile grid (exact there; the exact D is at most "
        "one grid bucket higher); p exact below 10,000 values unless under 1e-6. Wasserstein: "
        "W1 ÷ reference std. p_value: KS for numeric, chi-square for categorical features.",
        "Missing: share of the rows of the events that log the field (service/event/model) "
        "without a usable value (absent, null, NaN/inf, or text where a number is expected).",
    ]


def _notes(
    drifts: Sequence[FeatureDrift], choice: WindowChoice, options: Options, filters: Filters,
    outcome: ScanOutcome, baseline_name: str | None,
) -> list[str]:
    notes: list[str] = []
    flagged = [d for d in drifts if d.verdict in ("significant", "moderate")]
    if flagged:
        parts = [f"{d.feature.name} {d.verdict} ({'; '.join(d.reasons[:2])})" for d in flagged[:5]]
        more = f", and {len(flagged) - 5} more" if len(flagged) > 5 else ""
        notes.append(f"{len(flagged)} of {len(drifts)} features changed: " + ", ".join(parts) + more + ".")
    else:
        notes.append(f"No drift in {len(drifts)} features.")
    if baseline_name:
        notes.append(f"Reference: baseline {baseline_name!r} ({outcome.reference.description}); "
                     f"current: {choice.current.describe()}"
                     + (" (last quarter of the time range, the default)" if choice.defaulted else "") + ".")
    else:
        default = " (first and last quarter of the time range, the default)" if choice.defaulted else ""
        notes.append(f"Reference: {choice.reference.describe()}; current: {choice.current.describe()}"
                     f"{default}. Filters: {filters.describe()}.")
    notes += definitions(options)
    small = [d for d in drifts if d.psi is not None and d.feature.kind == "numeric" and d.n_bins]
    if small:
        d = min(small, key=lambda d: min(d.ref.valid, d.cur.valid))
        floor = stats.psi_noise_floor(d.ref.valid, d.cur.valid, d.n_bins or 10)
    if small and floor >= 0.2 * options.thresholds("psi")[0]:
        notes.append(f"Small windows: with no drift at all, PSI is about {floor:.3f} for "
                     f"{d.feature.name} ({d.ref.valid:,} vs {d.cur.valid:,} values); read PSI "
                     "near that as noise.")
    notes += sampling_notes(outcome)
    if outcome.discovery.skipped:
        names = sorted(outcome.discovery.skipped)
        shown = ", ".join(names[:8]) + (f" and {len(names) - 8} more" if len(names) > 8 else "")
        notes.append(f"Not compared (ids, hashes, free text, arrays): {shown}.")
    if flagged:
        top = flagged[0].feature.name
        notes.append(f"When did it start: mlinv drift --every 10m --feature {top}")
    return notes


def sampling_notes(outcome: ScanOutcome) -> list[str]:
    """Say so when fields were read from a sample of the rows."""
    sides = {0: "reference", 1: "current"}

    def shares(sampled: Mapping[int, float]) -> str:
        return ", ".join(f"{share:.1%} of the {sides[side]}" for side, share in sorted(sampled.items()))

    notes = []
    if outcome.sampled:
        notes.append(f"Record fields (attrs) were read from evenly spread blocks of consecutive rows "
                     f"({shares(outcome.sampled)}; windows over {ATTRS_EXACT_ROWS:,} rows are sampled, "
                     "the same blocks every run): their n, missing rates and statistics describe that "
                     "sample.")
    if outcome.column_sampled:
        notes.append("Event columns were read from evenly spread blocks too "
                     f"({shares(outcome.column_sampled)}; windows over {COLUMN_EXACT_ROWS:,} rows). "
                     "--exact reads every row.")
    elif outcome.sampled:
        notes.append("Event columns are exact.")
    return notes


def _sections(drifts: Sequence[FeatureDrift], outcome: ScanOutcome) -> list[Result]:
    sections: list[Result] = []
    schema_rows = []
    for d in drifts:
        f = d.feature
        if d.ref.valid == 0 and d.cur.valid > 0:
            schema_rows.append((f.name, "new", "absent", f.json_type or f.kind, _scope_text(f)))
        elif d.ref.valid > 0 and d.cur.valid == 0 and (d.cur.rows or not d.ref.rows):
            schema_rows.append((f.name, "vanished", f.json_type or f.kind, "absent", _scope_text(f)))
        if d.type_change:
            schema_rows.append((f.name, "type changed", d.type_change[0], d.type_change[1], _scope_text(f)))
    compared = {d.feature.name for d in drifts}
    # Fields seen only in one side's sample and not compared above (ids, arrays, or left out).
    for name, family in sorted(outcome.current_families.items()):
        if name not in outcome.reference.families and name not in compared:
            schema_rows.append((name, "new", "absent", family, ""))
    for name, family in sorted(outcome.reference.families.items()):
        if name not in outcome.current_families and name not in compared:
            schema_rows.append((name, "vanished", family, "absent", ""))
    if schema_rows:
        sections.append(Result("Schema changes", ["field", "change", "reference", "current", "logged_by"],
                               schema_rows))
    category_rows = []
    for d in drifts:
        if d.feature.kind != "categorical" or d.verdict not in ("significant", "moderate"):
            continue
        for category, share in d.unseen[:5]:
            category_rows.append((d.feature.name, category, 0.0, round(share * 100, 2), "unseen"))
        for category, share in d.vanished[:5]:
            category_rows.append((d.feature.name, category, round(share * 100, 2), 0.0, "gone"))
    if category_rows:
        sections.append(Result("Categories that appeared or disappeared",
                               ["feature", "category", "ref_pct", "cur_pct", "change"], category_rows,
                               units={"ref_pct": "%", "cur_pct": "%"}))
    return sections


def _scope_text(feature: Feature) -> str:
    scopes = [describe_scope(s) for s in feature.scopes[:3]]
    more = f" +{len(feature.scopes) - 3}" if len(feature.scopes) > 3 else ""
    return "; ".join(scopes) + more
