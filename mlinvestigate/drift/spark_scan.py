"""Drift's summaries on Spark SQL, over a Parquet event store (``mlinv drift --engine spark``).

The same summaries as :mod:`.discovery` and :mod:`.profile` compute on DuckDB (rows per scope,
the sampled record fields, profiles with exact linear quantiles, bucket and value counts), so
that :func:`.compare.run_scan` and numpy turn them into the same statistics. Where the
dialects differ:

* record fields are read with Spark's VARIANT (``try_parse_json``, ``try_variant_get``,
  ``schema_of_variant``), which keeps the JSON type that ``get_json_object`` would lose (3 and
  "3"); the discovery walks the records with ``variant_explode`` instead of
  ``json_structure``;
* quantiles are ``percentile`` (exact, linear: the same as ``quantile_cont``);
* a bucket index is the number of boundaries below the value (``size(filter(…))``), as
  DuckDB's ``histogram(x, boundaries)`` counts x ≤ b;
* Spark has no row id. Record fields are therefore read in full (DuckDB samples blocks of
  rows above 200,000 rows a window), and where DuckDB takes every k-th row by row id (the
  discovery sample of a side over 8,192 rows, reference quantiles over 200,000 values), Spark
  takes every k-th by a hash of the row's (source, line, record). Below those sizes both read
  every row and the results are equal.

All values are bound as named parameters (``:name``), JSON paths included. The only text put
into SQL is our own: column names, group keys and the SQL of the window conditions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import numpy as np

from ..investigations.filters import Filters, where_sql
from .discovery import (
    DISCOVERY_ROWS,
    RARE_SCOPE_ROWS,
    Discovery,
    candidates,
    consumed_keys,
    feature_from_type_counts,
)
from .features import (
    COLUMN_SPECS,
    FIELD_NAME,
    SCOPE_SQL,
    Feature,
    SampledField,
    check_field_name,
)
from .profile import (
    QUANTILE_GRID,
    Buckets,
    Limits,
    Part,
    Population,
    Profile,
    _monotone,
    scope_key,
    scope_populations,
)
from .stats import DECILES

if TYPE_CHECKING:
    from ..engines.spark_engine import SparkEngine

NUMBER_TYPES = ("TINYINT", "SMALLINT", "INT", "BIGINT", "FLOAT", "DOUBLE", "DECIMAL")
"""Heads of ``schema_of_variant`` names of JSON numbers (DECIMAL(2,1) for 1.5)."""

IS_NUMBER = "^(" + "|".join(NUMBER_TYPES) + ")"

ROW_HASH = "xxhash64(source, line, record)"
"""Stands in for DuckDB's row id where every k-th row is taken: (source, line, record) is
unique per event and the same in every run."""


def type_family(spark_type: str | None) -> str:
    """The JSON type family of a ``schema_of_variant`` name (as features.type_family does for
    DuckDB's ``json_type``)."""
    if spark_type is None:
        return "null"
    head = spark_type.split("<", 1)[0].split("(", 1)[0].strip().upper()
    if head in NUMBER_TYPES:
        return "number"
    return {"STRING": "string", "BOOLEAN": "boolean", "OBJECT": "object", "ARRAY": "array",
            "VOID": "null"}.get(head, "mixed")


def json_path(name: str) -> str:
    """The VARIANT path of a checked field name, bound as a parameter: $['a']['b']."""
    return "$" + "".join(f"['{key}']" for key in check_field_name(name).split("."))


def finite(value_sql: str) -> str:
    return f"(NOT isnan({value_sql}) AND abs({value_sql}) <> double('Infinity'))"


def _side(part: Part) -> int:
    return 0 if part.key_sql.strip() == "0" else 1


# --------------------------------------------------------------------------- discovery


def group_rows(engine: SparkEngine, filters: Filters, parts: Sequence[Part]) -> dict[int, dict[str, int]]:
    where, params = where_sql(filters, engine)
    all_params = dict(params)
    pieces = []
    for part in parts:
        all_params.update(part.params)
        pieces.append(f"SELECT {_side(part)} AS side, service, event, model_id FROM events "
                      f"WHERE ({where}) AND ({part.condition_sql})")
    sql = (f"SELECT side, service, event, model_id, count(*) FROM ({' UNION ALL '.join(pieces)}) "
           "GROUP BY side, service, event, model_id")
    result: dict[int, dict[str, int]] = {}
    for side, service, event, model_id, count in engine.execute(sql, all_params).fetchall():
        result.setdefault(int(side), {})[scope_key(service, event, model_id)] = int(count)
    return result


def _sample_sql(engine: SparkEngine, filters: Filters, parts: Sequence[Part],
                rows: Mapping[int, Mapping[str, int]]) -> tuple[str, dict[str, Any]]:
    """The discovery sample: every row of a side up to DISCOVERY_ROWS, else every k-th row by
    hash plus every row of its rare scopes (as the DuckDB sample, with a hash for the row id)."""
    where, params = where_sql(filters, engine)
    all_params: dict[str, Any] = dict(params)
    pieces = []
    for k, part in enumerate(parts):
        side = _side(part)
        scopes = rows.get(side, {})
        total = sum(scopes.values())
        all_params.update(part.params)
        base = (f"SELECT {side} AS side, service, event, model_id, try_parse_json(attrs) AS doc "
                f"FROM events WHERE ({where}) AND ({part.condition_sql})")
        every = total // DISCOVERY_ROWS
        if every <= 1:
            pieces.append(base)
            continue
        all_params[f"every{k}"] = every
        pieces.append(f"{base} AND pmod({ROW_HASH}, :every{k}) = 0")
        rare = [scope for scope, count in scopes.items() if count < RARE_SCOPE_ROWS]
        if rare:
            all_params[f"rare_events{k}"] = sorted({scope.split("|")[1] for scope in rare})
            all_params[f"rare{k}"] = rare
            pieces.append(f"{base} AND array_contains(:rare_events{k}, event) "
                          f"AND array_contains(:rare{k}, {SCOPE_SQL})")
    return " UNION ALL ".join(pieces), all_params


def sample_fields(
    engine: SparkEngine, filters: Filters, parts: Sequence[Part], rows: Mapping[int, Mapping[str, int]]
) -> tuple[dict[str, SampledField], dict[str, str], dict[int, int]]:
    """Record fields seen in the sample, one or two levels deep, with JSON type counts per side."""
    sample, params = _sample_sql(engine, filters, parts, rows)
    # One row per (sampled record, field): top-level non-objects, the children of top-level
    # objects, and one '' row per valid record (the sample size).
    sql = f"""
        WITH sample AS ({sample}),
        tops AS (SELECT side, service, event, model_id, top.key AS k1, top.value AS v1
                 FROM sample, LATERAL variant_explode(doc) AS top
                 WHERE schema_of_variant(doc) LIKE 'OBJECT%')
        SELECT side, service, event, model_id, name, t, count(*) FROM (
            SELECT side, service, event, model_id, k1 AS name, schema_of_variant(v1) AS t
            FROM tops WHERE schema_of_variant(v1) NOT LIKE 'OBJECT%'
            UNION ALL
            SELECT side, service, event, model_id, concat(k1, '.', child.key) AS name,
                   schema_of_variant(child.value) AS t
            FROM tops, LATERAL variant_explode(v1) AS child WHERE schema_of_variant(v1) LIKE 'OBJECT%'
            UNION ALL
            SELECT side, service, event, model_id, '' AS name, '' AS t
            FROM sample WHERE doc IS NOT NULL
        ) GROUP BY side, service, event, model_id, name, t
    """
    consumed = consumed_keys(engine)  # type: ignore[arg-type]
    fields: dict[str, SampledField] = {}
    skipped: dict[str, str] = {}
    sizes: dict[int, int] = {}
    for side, service, event, model_id, name, spark_type, count in engine.execute(sql, params).fetchall():
        if name == "":
            sizes[int(side)] = sizes.get(int(side), 0) + int(count)
            continue
        if name.split(".", 1)[0] in consumed:
            continue
        if not FIELD_NAME.fullmatch(name):
            skipped[name] = "name is not a plain dotted path"
            continue
        scope = scope_key(service, event, model_id)
        family = type_family(spark_type)
        entry = fields.get(name) or SampledField(name)
        families = {w: dict(v) for w, v in entry.families.items()}
        per_side = families.setdefault(int(side), {})
        per_side[family] = per_side.get(family, 0) + int(count)
        fields[name] = replace(entry, families=families, scopes=entry.scopes | {scope})
    text_fields = [name for name, entry in fields.items()
                   if (entry.family_in(0) or entry.family_in(1)) == "string"]
    if text_fields:
        distinct = []
        for position, name in enumerate(text_fields):
            params[f"text{position}"] = json_path(name)
            distinct.append(f"count(DISTINCT try_variant_get(doc, :text{position}, 'string'))")
        counts = engine.execute(f"WITH sample AS ({sample}) SELECT {', '.join(distinct)} FROM sample "
                                "WHERE doc IS NOT NULL", params).fetchone()
        for name, count in zip(text_fields, counts or (), strict=False):
            fields[name] = replace(fields[name], distinct_strings=int(count or 0))
    return fields, skipped, sizes


def discover(engine: SparkEngine, filters: Filters, parts: Sequence[Part]) -> Discovery:
    """As discovery.discover: every event column feature and the sampled record fields."""
    features = [Feature(spec.name, spec.kind, "column") for spec in COLUMN_SPECS]
    rows = group_rows(engine, filters, parts)
    if not any(rows.values()):
        return Discovery(features, {}, rows=rows)
    fields, skipped, sizes = sample_fields(engine, filters, parts, rows)
    return candidates(features, fields, skipped, sizes, rows)


def probe_field(engine: SparkEngine, filters: Filters, parts: Sequence[Part], name: str) -> Feature | None:
    """As discovery.probe_field: a requested record field's kind from an exact type count."""
    where, params = where_sql(filters, engine)
    all_params = dict(params)
    conditions = []
    for part in parts:
        all_params.update(part.params)
        conditions.append(f"({part.condition_sql})")
    all_params["path"] = json_path(name)
    sql = (f"SELECT schema_of_variant(j) AS t, count(*), count(DISTINCT try_variant_get(j, '$', 'string')), "
           f"collect_set(scope) FROM (SELECT try_variant_get(try_parse_json(attrs), :path) AS j, "
           f"{SCOPE_SQL} AS scope FROM events WHERE ({where}) AND ({' OR '.join(conditions)})) "
           "WHERE j IS NOT NULL GROUP BY t")
    return feature_from_type_counts(name, engine.execute(sql, all_params).fetchall())


# --------------------------------------------------------------------------- the scan


class SparkScan:
    """profile.Scan's summaries on Spark (same methods, same results)."""

    def __init__(self, engine: SparkEngine, filters: Filters, features: Sequence[Feature],
                 parts: Sequence[Part]) -> None:
        self.engine = engine
        self.filters = filters
        self.features = list(features)
        self.parts = list(parts)
        self.index = {id(f): i for i, f in enumerate(self.features)}
        self._attrs: tuple[str, dict[str, Any]] | None = None

    def _by_source(self, source: str) -> list[tuple[int, Feature]]:
        return [(i, f) for i, f in enumerate(self.features) if f.source == source]

    def prepare_attrs(self, events: Sequence[str], blocks: Mapping[int, Any]) -> None:
        """The record-field relation, kept as SQL: a subquery of every later statement (no
        temporary table; Spark plans it into each scan). `blocks` are ignored: Spark reads
        record fields in full."""
        attrs = self._by_source("attrs")
        if not attrs or self._attrs is not None:
            return
        where, params = where_sql(self.filters, self.engine)
        params = dict(params)
        params["attr_events"] = list(events)
        params["is_number"] = IS_NUMBER
        values: list[str] = []
        for i, feature in attrs:
            params[f"path{i}"] = json_path(feature.name)
            item = f"try_variant_get(doc, :path{i})"
            kind = f"schema_of_variant({item})"
            if feature.kind == "numeric":
                values.append(f"CASE WHEN {kind} RLIKE :is_number "
                              f"THEN try_variant_get(doc, :path{i}, 'double') END AS v{i}")
            else:
                values.append(f"CASE WHEN {kind} <> 'VOID' AND {kind} NOT LIKE 'OBJECT%' AND {kind} "
                              f"NOT LIKE 'ARRAY%' THEN try_variant_get(doc, :path{i}, 'string') END AS v{i}")
            values.append(f"coalesce({kind} <> 'VOID', false) AS p{i}")
        pieces: list[str] = []
        for k, part in enumerate(self.parts):
            params.update(part.params)
            flags = ", ".join(f"{'true' if j == k else 'false'} AS in{j}" for j in range(len(self.parts)))
            pieces.append(
                f"SELECT service, event, model_id, {ROW_HASH} AS rid, {flags}, "
                f"try_parse_json(attrs) AS doc FROM events "
                f"WHERE ({where}) AND ({part.condition_sql}) AND array_contains(:attr_events, event)"
            )
        in_columns = ", ".join(f"in{k}" for k in range(len(self.parts)))
        self._attrs = (f"(SELECT service, event, model_id, rid, {in_columns}, {', '.join(values)} "
                       f"FROM ({' UNION ALL '.join(pieces)}))", params)

    def _rows(self, source: str, parts: Sequence[int] | None = None
              ) -> tuple[str, dict[str, Any], list[int]]:
        """As Scan._rows: per chosen part its rows with win, the scope columns, rid and per
        feature x{i}, p{i}, nf{i}."""
        columns = self._by_source(source)
        if not columns or (source == "attrs" and self._attrs is None):
            return "", {}, []
        chosen = range(len(self.parts)) if parts is None else parts
        selects: list[str] = []
        for i, feature in columns:
            if feature.kind == "numeric":
                selects.append(f"CASE WHEN {finite(f'v{i}')} THEN v{i} END AS x{i}")
                selects.append(f"(v{i} IS NOT NULL AND NOT {finite(f'v{i}')}) AS nf{i}")
            else:
                selects.append(f"v{i} AS x{i}")
                selects.append(f"false AS nf{i}")
            selects.append(f"p{i}")
        pieces: list[str] = []
        if source == "column":
            where, params = where_sql(self.filters, self.engine)
            params = dict(params)
            values = []
            for i, feature in columns:
                spec = feature.column
                assert spec is not None
                values += [f"{spec.value_sql} AS v{i}", f"({spec.present_sql}) AS p{i}"]
            base = (f"(SELECT ts, dt, model_version, service, event, model_id, {ROW_HASH} AS rid, "
                    f"{', '.join(values)} FROM events WHERE {where})")
            for k in chosen:
                part = self.parts[k]
                params.update(part.params)
                pieces.append(f"SELECT {part.key_sql} AS win, service, event, model_id, rid, "
                              f"{', '.join(selects)} FROM {base} WHERE {part.condition_sql}")
        else:
            assert self._attrs is not None
            relation, params = self._attrs[0], dict(self._attrs[1])
            for k in chosen:
                part = self.parts[k]
                pieces.append(f"SELECT {part.key_sql} AS win, service, event, model_id, rid, "
                              f"{', '.join(selects)} FROM {relation} WHERE in{k}")
        return "\nUNION ALL\n".join(pieces), params, [i for i, _ in columns]

    def attrs_rows(self, part: int) -> int:
        """Rows of the record-field relation in one part (0 when there is none)."""
        if self._attrs is None:
            return 0
        relation, params = self._attrs
        row = self.engine.execute(f"SELECT count(*) FROM {relation} WHERE in{int(part)}", params).fetchone()
        return int(row[0]) if row else 0

    def profile(
        self,
        source: str,
        numeric: Sequence[int],
        *,
        parts: Sequence[int],
        quantiles_for: int | None,
        sample_every: Mapping[int, int],
    ) -> dict[int, dict[int, Profile]]:
        """As Scan.profile. Spark's skewness is already the population g1 (DuckDB's is the
        sample skewness, converted there)."""
        wanted = [i for i in numeric if self.features[i].source == source]
        if not wanted:
            return {}
        rows_sql, params, _ = self._rows(source, parts)
        if not rows_sql:
            return {}
        params = dict(params)
        params["deciles"] = list(DECILES)
        params["grid"] = list(QUANTILE_GRID)
        aggregates: list[str] = []
        for i in wanted:
            aggregates += [f"count(x{i})", f"min(x{i})", f"max(x{i})", f"stddev_pop(x{i})",
                           f"skewness(x{i})"]
            if quantiles_for is not None:
                every = max(int(sample_every.get(i, 1)), 1)
                condition = f"win = {int(quantiles_for)}"
                if every > 1:
                    condition += f" AND pmod(rid, {every}) = 0"
                aggregates += [f"percentile(x{i}, :deciles) FILTER (WHERE {condition})",
                               f"percentile(x{i}, :grid) FILTER (WHERE {condition})"]
        sql = f"SELECT win, {', '.join(aggregates)} FROM ({rows_sql}) GROUP BY win"
        width = 7 if quantiles_for is not None else 5
        result: dict[int, dict[int, Profile]] = {}
        for row in self.engine.execute(sql, params).fetchall():
            win = int(row[0])
            for position, i in enumerate(wanted):
                values = row[1 + width * position : 1 + width * (position + 1)]
                n = int(values[0])
                skew = values[4]
                g1 = skew if skew is not None and math.isfinite(skew) and n > 2 else None
                profile = Profile(n, values[1], values[2], values[3], g1)
                if quantiles_for is not None and win == quantiles_for and values[5] is not None:
                    profile.deciles = _monotone(values[5], values[1], values[2])
                    profile.grid = _monotone(values[6], values[1], values[2])
                    profile.sampled_every = max(int(sample_every.get(i, 1)), 1)
                result.setdefault(win, {})[i] = profile
        return result

    def buckets(
        self,
        source: str,
        boundaries: Mapping[int, Sequence[float]],
        limits: Mapping[int, Limits],
    ) -> tuple[dict[int, dict[int, Buckets]], dict[int, dict[int, dict[str, int]]],
               dict[int, dict[str, dict[int, Population]]]]:
        """As Scan.buckets. One statement counts per (group, scope); a second unpivots every
        feature's bucket index (numeric) or value (categorical) and counts per group."""
        columns = self._by_source(source)
        if not columns:
            return {}, {}, {}
        numeric = [i for i, f in columns if i in boundaries]
        categories = [i for i, f in columns if f.kind == "categorical"]
        rows_sql, params, indexes = self._rows(source)
        if not rows_sql:
            return {}, {}, {}
        params = dict(params)
        counting = ["count(*)"]
        for i in indexes:
            nonfinite = f"count(*) FILTER (WHERE nf{i})" if self.features[i].kind == "numeric" else "0"
            counting += [f"count(*) FILTER (WHERE p{i})", f"count(x{i})", nonfinite]
        sql = (f"SELECT win, service, event, model_id, {', '.join(counting)} FROM ({rows_sql}) "
               "GROUP BY win, service, event, model_id")
        counts = scope_populations(self.engine.execute(sql, params).fetchall(), indexes)
        numeric_out: dict[int, dict[int, Buckets]] = {}
        categorical_out: dict[int, dict[int, dict[str, int]]] = {}
        if not numeric and not categories:
            return numeric_out, categorical_out, counts
        # Every group gets every feature, empty or not, as DuckDB's histogram per group does.
        for win in counts:
            for i in numeric:
                numeric_out.setdefault(win, {})[i] = Buckets(
                    np.zeros(len(boundaries[i]) + 1, dtype=np.int64), 0.0, 0.0, 0)
            for i in categories:
                categorical_out.setdefault(win, {})[i] = {}
        items: list[str] = []
        no_sums = ", ".join(f"'s{k}', CAST(NULL AS DOUBLE)" for k in range(4))
        for i in numeric:
            params[f"b{i}"] = [float(b) for b in boundaries[i]]
            lo, hi, cuts = limits[i]
            params[f"lo{i}"] = float(lo)
            params[f"hi{i}"] = float(hi)
            # The same tail sums as DuckDB's (profile.Buckets.tail_sums), when there are cuts.
            sums = []
            for k in range(4):
                if cuts:
                    params[f"c{i}_{k}"] = float(cuts[k])
                    test = "<=" if k < 2 else ">"
                    sums.append(f"'s{k}', CASE WHEN x{i} {test} :c{i}_{k} THEN x{i} END")
                else:
                    sums.append(f"'s{k}', CAST(NULL AS DOUBLE)")
            # Bucket j holds b[j-1] < x <= b[j]: j is the number of boundaries below x.
            items.append(
                f"named_struct('f', {i}, 'j', CASE WHEN x{i} IS NOT NULL "
                f"THEN size(filter(:b{i}, e -> e < x{i})) END, 'c', CAST(NULL AS STRING), "
                f"'a', CASE WHEN x{i} > :hi{i} THEN x{i} - :hi{i} END, "
                f"'b', CASE WHEN x{i} < :lo{i} THEN :lo{i} - x{i} END, {', '.join(sums)})"
            )
        for i in categories:
            items.append(f"named_struct('f', {i}, 'j', CAST(NULL AS INT), 'c', CAST(x{i} AS STRING), "
                         f"'a', CAST(NULL AS DOUBLE), 'b', CAST(NULL AS DOUBLE), {no_sums})")
        sql = (f"SELECT win, f, j, c, count(*), sum(a), sum(b), sum(s0), sum(s1), sum(s2), sum(s3) "
               f"FROM ({rows_sql}) "
               f"LATERAL VIEW inline(array({', '.join(items)})) t AS f, j, c, a, b, s0, s1, s2, s3 "
               "WHERE j IS NOT NULL OR c IS NOT NULL GROUP BY win, f, j, c")
        # Per (group, feature): partial sums of above, below and the four tail sums, added up
        # with fsum at the end (one partial sum per bucket row).
        partial: dict[tuple[int, int], list[list[float]]] = {}
        for win, i, j, category, count, *sums in self.engine.execute(sql, params).fetchall():
            win, i = int(win), int(i)
            if j is not None:
                buckets = numeric_out.setdefault(win, {}).setdefault(i, Buckets(
                    np.zeros(len(boundaries[i]) + 1, dtype=np.int64), 0.0, 0.0, 0))
                buckets.counts[int(j)] += int(count)
                buckets.n += int(count)
                lists = partial.setdefault((win, i), [[] for _ in range(6)])
                for k, value in enumerate(sums):
                    lists[k].append(float(value or 0.0))
            else:
                categorical_out.setdefault(win, {}).setdefault(i, {})[category] = int(count)
        for (win, i), lists in partial.items():
            buckets = numeric_out[win][i]
            buckets.above, buckets.below = math.fsum(lists[0]), math.fsum(lists[1])
            if limits[i][2]:
                buckets.tail_sums = tuple(math.fsum(values) for values in lists[2:])
        for per_feature in numeric_out.values():
            for i, buckets in per_feature.items():
                if limits[i][2] and not buckets.tail_sums:
                    buckets.tail_sums = (0.0, 0.0, 0.0, 0.0)  # a group with no values
        for per_feature in categorical_out.values():
            for i, values in per_feature.items():
                per_feature[i] = {k: values[k] for k in sorted(values)}
        return numeric_out, categorical_out, counts
