"""``mlinv quality``: is the data the model gets well-formed, field by field and over time?

Per field (event columns and record fields, found as ``mlinv drift`` finds them):

* **missing**: rows of the events that log the field (same service/event/model) without it
  (absent, or JSON null, counted apart), as a share of those rows;
* **type mismatches**: values of another JSON type than the field's usual one (text in a
  numeric field, a number where labels are logged, an object …), and NaN/±inf;
* **out of range**: numeric values outside the reference window's [min, max], or outside a
  user range ``--range features.amount=0:10000``;
* **schema events**, per service and model version: the first interval a field appeared,
  went missing (and stayed missing) or changed type — a renamed field shows as one field
  going missing and another appearing at the same time.

One SQL pass reads the reference range, one more groups every count by (interval, scope,
service, model_version); Python only walks those small tables.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from .drift.discovery import discover
from .drift.features import NUMBER_TYPES, Feature, check_field_name, json_path_literal, record_value_sql
from .drift.profile import Part, scope_key
from .drift.windows import choose_windows, parse_user_window, time_range
from .errors import EmptyResult, UsageError
from .investigations.filters import Filters, where_sql
from .result import Result
from .timeparse import format_duration

if TYPE_CHECKING:
    import duckdb

NICE_STEPS = (60, 300, 600, 900, 1800, 3600, 7200, 21600, 43200, 86400)
"""Seconds; the default interval is the first that gives at most ~24 intervals."""

MIN_ROWS_FOR_EVENT = 10
"""An interval needs this many rows of a field's events before 'went missing' is said."""

COLUMNS = ["field", "kind", "type", "rows", "missing_pct", "null_pct", "type_mismatch", "nan_inf",
           "out_of_range", "range", "verdict", "issues"]
EVENT_COLUMNS = ["field", "change", "at", "service", "model_version", "detail"]
TIME_COLUMNS = ["interval_start", "field", "rows", "missing_pct", "type_mismatch", "nan_inf",
                "out_of_range"]


@dataclass(frozen=True)
class ValueRange:
    low: float | None
    high: float | None
    source: str

    def describe(self) -> str:
        low = "-inf" if self.low is None else f"{self.low:g}"
        high = "inf" if self.high is None else f"{self.high:g}"
        return f"{low}..{high} ({self.source})"


def parse_ranges(items: Sequence[str]) -> dict[str, ValueRange]:
    """``--range NAME=LOW:HIGH`` options (either side may be empty)."""
    ranges: dict[str, ValueRange] = {}
    for item in items:
        name, sep, bounds = item.partition("=")
        low_text, colon, high_text = bounds.partition(":")
        if not sep or not colon:
            raise UsageError(f"--range {item!r} must look like features.amount=0:10000 (open ends allowed)")
        try:
            low = float(low_text) if low_text.strip() else None
            high = float(high_text) if high_text.strip() else None
        except ValueError:
            raise UsageError(f"--range {item!r}: the bounds must be numbers") from None
        if low is not None and high is not None and low > high:
            raise UsageError(f"--range {item!r}: the low bound is above the high bound")
        ranges[check_field_name(name)] = ValueRange(low, high, "--range")
    return ranges


def _default_step(first: datetime, last: datetime) -> timedelta:
    span = max((last - first).total_seconds(), 1.0)
    for seconds in NICE_STEPS:
        if span / seconds <= 24:
            return timedelta(seconds=seconds)
    return timedelta(days=math.ceil(span / 86400 / 24))


@dataclass
class Counts:
    rows: int = 0
    present: int = 0
    nulls: int = 0
    usable: int = 0
    nonfinite: int = 0
    out_of_range: int = 0
    families: dict[str, int] = field(default_factory=dict)

    def add(self, other: Counts) -> None:
        self.rows += other.rows
        self.present += other.present
        self.nulls += other.nulls
        self.usable += other.usable
        self.nonfinite += other.nonfinite
        self.out_of_range += other.out_of_range
        for family, count in other.families.items():
            self.families[family] = self.families.get(family, 0) + count

    @property
    def missing(self) -> int:
        return max(self.rows - self.present, 0) + self.nulls

    @property
    def mismatch(self) -> int:
        return max(self.present - self.nulls - self.usable - self.nonfinite, 0)

    def dominant(self) -> str | None:
        counts = {k: v for k, v in self.families.items() if k != "null" and v}
        return max(sorted(counts), key=counts.__getitem__) if counts else None


def _column_family(feature: Feature) -> str:
    return "number" if feature.kind == "numeric" else "string"


def _field_sql(feature: Feature, i: int) -> list[str]:
    """Per-row expressions: v{i} value, p{i} present, n{i} JSON null, t{i} type family."""
    if feature.source == "column":
        spec = feature.column
        assert spec is not None
        family = _column_family(feature)
        return [f"{spec.value_sql} AS v{i}", f"({spec.present_sql}) AS p{i}", f"false AS n{i}",
                f"CASE WHEN {spec.present_sql} THEN '{family}' END AS t{i}"]
    # The record field's JSON text and type are columns of the layer below, named once there.
    item, kind = f"j{i}", f"jt{i}"
    numbers = ", ".join(f"'{t}'" for t in NUMBER_TYPES)
    value = record_value_sql(feature.kind, item, kind)
    family = (f"CASE {kind} WHEN 'VARCHAR' THEN 'string' WHEN 'BOOLEAN' THEN 'boolean' "
              f"WHEN 'OBJECT' THEN 'object' WHEN 'ARRAY' THEN 'array' WHEN 'NULL' THEN 'null' "
              f"ELSE CASE WHEN {kind} IN ({numbers}) THEN 'number' END END")
    return [f"{value} AS v{i}", f"({item} IS NOT NULL) AS p{i}",
            f"coalesce({kind} = 'NULL', false) AS n{i}",
            f"{family} AS t{i}"]


def _base_sql(features: Sequence[Feature], filters: Filters) -> tuple[str, dict[str, Any]]:
    where, params = where_sql(filters)
    attrs = [f for f in features if f.source == "attrs"]
    selects = ["*"]
    if attrs:
        paths = ", ".join(json_path_literal(f.name) for f in attrs)
        selects.append(f"json_extract(attrs, [{paths}]) AS j")
    inner = f"SELECT {', '.join(selects)} FROM events WHERE {where}"
    middle = ["*"]
    for position, feature in enumerate(attrs, start=1):
        i = features.index(feature)
        middle += [f"j[{position}] AS j{i}", f"json_type(j[{position}]) AS jt{i}"]
    # The scope columns stay apart: grouping on them beats building service|event|model text
    # for every row.
    outer = ["ts", "service", "event", "model_id", "model_version"]
    for i, feature in enumerate(features):
        outer += _field_sql(feature, i)
    return f"(SELECT {', '.join(outer)} FROM (SELECT {', '.join(middle)} FROM ({inner})))", params


def reference_ranges(con: duckdb.DuckDBPyConnection, filters: Filters, features: Sequence[Feature],
                     window_sql: str, window_params: dict[str, Any]) -> dict[str, ValueRange]:
    numeric = [(i, f) for i, f in enumerate(features) if f.kind == "numeric"]
    if not numeric:
        return {}
    base, params = _base_sql(features, filters)
    params = {**params, **window_params}
    aggregates = ", ".join(f"min(v{i}) FILTER (WHERE isfinite(v{i})), max(v{i}) FILTER (WHERE isfinite(v{i}))"
                           for i, _ in numeric)
    row = con.execute(f"SELECT {aggregates} FROM {base} WHERE {window_sql}", params).fetchone()
    ranges: dict[str, ValueRange] = {}
    for position, (_, feature) in enumerate(numeric):
        low, high = row[2 * position], row[2 * position + 1]
        if low is not None:
            ranges[feature.name] = ValueRange(float(low), float(high), "reference")
    return ranges


def quality_report(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    *,
    wanted: Sequence[str] | None = None,
    ranges: Mapping[str, ValueRange] | None = None,
    step: timedelta | None = None,
    reference: str | None = None,
    wall_clock: bool = False,
) -> Result:
    first, last = time_range(con, filters)
    step = step or _default_step(first, last)
    if (last - first) / step > 2000:
        raise UsageError("--every makes more than 2000 intervals; choose a longer one")
    span_sql, span_params = "true", {}
    found = discover(con, filters, [Part("1", span_sql, span_params)])
    features = list(found.features)
    if wanted:
        names = [check_field_name(n) for n in wanted]
        unknown = [n for n in names if not any(f.name == n for f in features)]
        if unknown:
            raise UsageError(f"no field {', '.join(map(repr, unknown))} found",
                             hint="fields: " + ", ".join(sorted({f.name for f in features})))
        features = [f for f in features if f.name in names]
    if reference is not None:
        window = parse_user_window(con, reference, "reference", wall_clock=wall_clock)
    else:
        window = choose_windows(con, filters).reference
    window_sql, window_params = window.condition("q0")
    bounds = dict(reference_ranges(con, filters, features, window_sql, window_params))
    bounds.update(ranges or {})
    unknown_ranges = [name for name in (ranges or {}) if not any(f.name == name and f.kind == "numeric"
                                                                  for f in features)]
    if unknown_ranges:
        raise UsageError(f"--range names no numeric field: {', '.join(unknown_ranges)}")
    base, params = _base_sql(features, filters)
    step_us = step // timedelta(microseconds=1)
    origin_us = ((first - datetime(1970, 1, 1)) // timedelta(microseconds=1)) // step_us * step_us
    aggregates = ["count(*)"]
    for i, feature in enumerate(features):
        column = feature.source == "column"
        # An event column is never JSON null and always of its one type: no per-row work.
        aggregates += [f"count_if(p{i})", "0" if column else f"count_if(n{i})"]
        if feature.kind == "numeric":
            aggregates += [f"count_if(isfinite(v{i}))",
                           f"count_if(v{i} IS NOT NULL AND NOT isfinite(v{i}))"]
            value_range = bounds.get(feature.name)
            conditions = []
            if value_range is not None and value_range.low is not None:
                params[f"lo{i}"] = value_range.low
                conditions.append(f"v{i} < $lo{i}")
            if value_range is not None and value_range.high is not None:
                params[f"hi{i}"] = value_range.high
                conditions.append(f"v{i} > $hi{i}")
            if conditions:
                aggregates.append(f"count_if(isfinite(v{i}) AND ({' OR '.join(conditions)}))")
            else:
                aggregates.append("0")
        else:
            aggregates += [f"count(v{i})", "0", "0"]
        aggregates.append("NULL" if column else f"histogram(t{i})")
    key = f"CAST(floor((epoch_us(ts) - {origin_us}) / {step_us}) AS BIGINT)"
    sql = (f"SELECT {key} AS k, service, event, model_id, model_version, {', '.join(aggregates)} "
           f"FROM {base} GROUP BY ALL")
    rows = [_scoped(row, features) for row in con.execute(sql, params).fetchall()]
    if not rows:
        raise EmptyResult(f"no events ({filters.describe()})")
    # (feature, interval, service, version) → Counts over the feature's scopes.
    per_field: dict[int, dict[tuple[int, str | None, str | None], Counts]] = {}
    present_scopes: dict[int, set[str]] = {}
    split = {"prediction", "prediction_label"}  # one column, numbers or labels by scope
    usable_by_scope: dict[tuple[int, str], list[int]] = {}
    for row in rows:
        scope = row[1]
        for i in range(len(features)):
            present, usable = row[5 + 6 * i], row[7 + 6 * i]
            tally = usable_by_scope.setdefault((i, scope), [0, 0])
            tally[0] += int(present)
            tally[1] += int(usable)
    for (i, scope), (present, usable) in usable_by_scope.items():
        if not present:
            continue
        if features[i].source == "column" and features[i].name in split and usable * 2 < present:
            continue
        present_scopes.setdefault(i, set()).add(scope)
    for row in rows:
        k, scope, service, version, total = int(row[0]), row[1], row[2], row[3], int(row[4])
        for i in range(len(features)):
            if scope not in present_scopes.get(i, set()):
                continue
            present, nulls, usable, nonfinite, out, families = row[5 + 6 * i: 11 + 6 * i]
            counts = Counts(total, int(present), int(nulls), int(usable), int(nonfinite), int(out),
                            {str(f): int(c) for f, c in (families or {}).items()})
            per_field.setdefault(i, {}).setdefault((k, service, version), Counts()).add(counts)
    start_of = {}

    def at(k: int) -> datetime:
        if k not in start_of:
            start_of[k] = datetime(1970, 1, 1) + timedelta(microseconds=origin_us + k * step_us)
        return start_of[k]

    main_rows: list[tuple[Any, ...]] = []
    events: list[tuple[Any, ...]] = []
    over_time: list[tuple[Any, ...]] = []
    for i, feature in enumerate(features):
        cells = per_field.get(i, {})
        total = Counts()
        for counts in cells.values():
            total.add(counts)
        if not total.rows:
            continue
        field_events = _schema_events(feature, cells, at)
        events += field_events
        usual = total.dominant() or _column_family(feature)
        value_range = bounds.get(feature.name)
        issues, verdict = _issues(total, field_events, bounds.get(feature.name))
        main_rows.append((
            feature.name, feature.kind, usual, total.rows, _pct(total.missing, total.rows),
            _pct(total.nulls, total.rows), total.mismatch, total.nonfinite,
            total.out_of_range if feature.kind == "numeric" else None,
            value_range.describe() if value_range is not None and feature.kind == "numeric" else None,
            verdict, "; ".join(issues),
        ))
        if verdict != "ok" or (wanted and feature.name in wanted):
            by_interval: dict[int, Counts] = {}
            for (k, _, _), counts in cells.items():
                by_interval.setdefault(k, Counts()).add(counts)
            for k in sorted(by_interval):
                c = by_interval[k]
                over_time.append((at(k), feature.name, c.rows, _pct(c.missing, c.rows), c.mismatch,
                                  c.nonfinite, c.out_of_range if feature.kind == "numeric" else None))
    order = {"bad": 0, "warn": 1, "ok": 2}
    main_rows.sort(key=lambda r: (order[r[10]], -(r[4] or 0), r[0]))
    events.sort(key=lambda e: (e[2], e[0]))
    sections = []
    if events:
        sections.append(Result("Schema changes over time (per service and model version)",
                               list(EVENT_COLUMNS), events))
    if over_time:
        sections.append(Result(f"Over time, every {format_duration(step.total_seconds())} "
                               "(fields with issues)", list(TIME_COLUMNS), over_time,
                               units={"missing_pct": "%"}))
    bad = [r[0] for r in main_rows if r[10] != "ok"]
    notes = [
        (f"{len(bad)} of {len(main_rows)} fields have issues: " + ", ".join(bad[:8])
         + (" …" if len(bad) > 8 else "") + ".") if bad else f"No issues in {len(main_rows)} fields.",
        f"Events: {filters.describe()}. Out of range: outside the reference window's min..max "
        f"({window.describe()}) unless --range gives bounds.",
        "missing: rows of the events that log the field (service/event/model) without a value, null "
        "included; null: JSON null; type_mismatch: a value of another type than the field's usual one; "
        "nan_inf: NaN or ±inf.",
        "Verdict: bad for a type change, a field that went missing, ≥ 20% missing or ≥ 5% out of range "
        "or mismatched; warn for ≥ 5% missing, any mismatch or NaN/inf, any value outside a --range, "
        "or ≥ 1% outside the reference range (new extremes of a long tail are normal).",
    ]
    if found.skipped:
        skipped = ", ".join(sorted(found.skipped)[:8])
        notes.append(f"Not checked (ids, hashes, free text, arrays): {skipped}.")
    return Result("Data quality", list(COLUMNS), main_rows, notes=notes,
                  units={"missing_pct": "%", "null_pct": "%"}, sections=sections)


def _scoped(row: tuple[Any, ...], features: Sequence[Feature]) -> tuple[Any, ...]:
    """(k, service, event, model_id, version, total, 6 per feature) as (k, scope, service, version,
    total, 6 per feature), an event column's type counts filled in: all present values are of
    its one type."""
    k, service, event, model_id, version, total, *cells = row
    for i, feature in enumerate(features):
        for j in range(6 * i, 6 * i + 5):
            cells[j] = cells[j] or 0  # count_if over only NULL tests is NULL, not 0
        if feature.source == "column":
            present = cells[6 * i]
            cells[6 * i + 5] = {_column_family(feature): present} if present else {}
    return (k, scope_key(service, event, model_id), service, version, total, *cells)


def _pct(part: int, whole: int) -> float | None:
    return None if not whole else round(100.0 * part / whole, 3)


REFERENCE_RANGE_SHARE = 0.01
"""Values beyond the reference's own min..max turn up naturally (new extremes of a long tail),
so against the reference range only a share of 1 % or more is an issue; against a --range
every value is."""


def _issues(total: Counts, events: Sequence[tuple[Any, ...]],
            value_range: ValueRange | None = None) -> tuple[list[str], str]:
    issues: list[str] = []
    level = 0
    missing = total.missing / total.rows
    if missing >= 0.05:
        issues.append(f"{missing:.1%} missing")
        level = max(level, 2 if missing >= 0.20 else 1)
    out_share = total.out_of_range / total.rows
    from_reference = value_range is not None and value_range.source == "reference"
    checks = [(total.mismatch / total.rows, total.mismatch, "type mismatches")]
    if not from_reference or out_share >= REFERENCE_RANGE_SHARE:
        checks.append((out_share, total.out_of_range, "out of range"))
    for share, count, label in checks:
        if count:
            issues.append(f"{count:,} {label} ({share:.2%})")
            level = max(level, 2 if share >= 0.05 else 1)
    if total.nonfinite:
        issues.append(f"{total.nonfinite:,} NaN/inf")
        level = max(level, 1)
    for _field, change, moment, service, version, _ in events:
        if change in ("went missing", "type changed"):
            level = 2
        who = " ".join(x for x in (service or "", version or "") if x)
        issues.append(f"{change} at {moment:%H:%M:%S}" + (f" ({who})" if who else ""))
    return issues, ("ok", "warn", "bad")[level]


def _schema_events(feature: Feature, cells: Mapping[tuple[int, str | None, str | None], Counts],
                   at: Any) -> list[tuple[Any, ...]]:
    """First appearance, going missing for good, and type changes, per (service, version)."""
    events: list[tuple[Any, ...]] = []
    by_key: dict[tuple[str | None, str | None], list[tuple[int, Counts]]] = {}
    for (k, service, version), counts in cells.items():
        by_key.setdefault((service, version), []).append((k, counts))
    for (service, version), series in by_key.items():
        series.sort(key=lambda item: item[0])
        with_rows = [(k, c) for k, c in series if c.rows]
        present_at = [k for k, c in with_rows if c.present - c.nulls > 0]
        if not present_at:
            continue
        if with_rows and present_at[0] > with_rows[0][0]:
            before = sum(c.rows for k, c in with_rows if k < present_at[0])
            if before >= MIN_ROWS_FOR_EVENT:
                events.append((feature.name, "appeared", at(present_at[0]), service, version,
                               f"absent from {before:,} earlier rows"))
        last_present = present_at[-1]
        after = [(k, c) for k, c in with_rows if k > last_present]
        if after and sum(c.rows for _, c in after) >= MIN_ROWS_FOR_EVENT:
            events.append((feature.name, "went missing", at(after[0][0]), service, version,
                           f"absent from {sum(c.rows for _, c in after):,} rows since"))
        first_family = None
        for k, c in with_rows:
            family = c.dominant()
            if family is None:
                continue
            if first_family is None:
                first_family = family
            elif family != first_family:
                events.append((feature.name, "type changed", at(k), service, version,
                               f"{first_family} → {family}"))
                break
    return events
