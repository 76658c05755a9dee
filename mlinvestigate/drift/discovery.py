"""Finding the fields to compare: event columns from exact counts, record fields (attrs) from a
deterministic sample of the records' JSON keys, one or two levels deep, with their JSON types.

The sample takes every k-th row by a hash of (source, line, record), so the same database gives
the same fields every time, and every row of a scope with few rows (model loads, say), so rare
record kinds are not missed. A field is then read exactly (no sampling) by the scan."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from ..ingest import aliases
from ..investigations.filters import Filters, where_sql
from .features import (
    CARDINALITY_CAP,
    COLUMN_SPECS,
    FIELD_NAME,
    SCOPE_SQL,
    Feature,
    SampledField,
    feature_kind_for_family,
    json_path_literal,
    type_family,
)
from .profile import Part, Population, block_sample, scope_key

if TYPE_CHECKING:
    import duckdb

DISCOVERY_ROWS = 8_192
"""Sides with more rows than this are sampled for record fields (4 spread blocks of 2,048
consecutive rows; every row of a smaller side)."""

RARE_SCOPE_ROWS = 200
"""Scopes with fewer rows than this in a group are sampled completely."""

SAMPLE_TABLE = "mlinv_drift_sample"

def consumed_keys(con: duckdb.DuckDBPyConnection) -> set[str]:
    """Top-level record keys that feed an event column (they are compared as the column)."""
    keys = set(aliases.all_keys()) | {"_envelope"}
    try:
        for (path,) in con.execute("SELECT path FROM mappings").fetchall():
            keys.add(str(path).split(".")[0])
    except Exception:  # a database without the mappings table: nothing mapped
        pass
    return keys


@dataclass
class Discovery:
    """What the data holds: candidate features, the sampled record fields, and what was left
    out (high-cardinality text, arrays, names that cannot be used as JSON paths)."""

    features: list[Feature]
    fields: dict[str, SampledField]
    skipped: dict[str, str] = field(default_factory=dict)
    sample_rows: dict[int, int] = field(default_factory=dict)
    rows: dict[int, dict[str, int]] = field(default_factory=dict)
    """Rows per side (0 reference, 1 current) and scope."""


def group_rows(
    con: duckdb.DuckDBPyConnection, filters: Filters, parts: Sequence[Part]
) -> dict[int, dict[str, int]]:
    """Rows per side (0 reference, 1 current or intervals) and scope: event columns only."""
    where, params = where_sql(filters)
    pieces = []
    all_params = dict(params)
    for part in parts:
        all_params.update(part.params)
        pieces.append(f"SELECT {_side(part)} AS side, service, event, model_id FROM events "
                      f"WHERE ({where}) AND ({part.condition_sql})")
    sql = f"SELECT side, service, event, model_id, count(*) FROM ({' UNION ALL '.join(pieces)}) GROUP BY ALL"
    result: dict[int, dict[str, int]] = {}
    for side, service, event, model_id, count in con.execute(sql, all_params).fetchall():
        result.setdefault(int(side), {})[scope_key(service, event, model_id)] = int(count)
    return result


def _side(part: Part) -> int:
    return 0 if part.key_sql.strip() == "0" else 1


def sample_fields(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    parts: Sequence[Part],
    rows: Mapping[int, Mapping[str, int]],
) -> tuple[dict[str, SampledField], dict[str, str], dict[int, int]]:
    """Record fields seen in a sample of each side's rows, with JSON type counts per side.

    The sample: a few blocks of consecutive rows per side (or every row of a small side), and
    every row of the scopes with few rows, so rare record kinds are seen. DuckDB's
    ``json_structure`` describes each sampled record; records of one kind share a structure,
    so grouping by it leaves a handful of rows for Python to walk."""
    where, params = where_sql(filters)
    all_params: dict[str, Any] = dict(params)
    pieces = []
    for k, part in enumerate(parts):
        side = _side(part)
        scopes = rows.get(side, {})
        total = sum(scopes.values())
        all_params.update(part.params)
        blocks = block_sample(con, filters, part, total, target=DISCOVERY_ROWS, min_blocks=4, block=2048)
        if blocks is not None:
            pieces.append(f"SELECT {side} AS side, service, event, model_id, attrs FROM events "
                          f"WHERE ({where}) AND ({part.condition_sql}) AND {blocks.sql()}")
        else:
            pieces.append(f"SELECT {side} AS side, service, event, model_id, attrs FROM events "
                          f"WHERE ({where}) AND ({part.condition_sql})")
        rare = [scope for scope, count in scopes.items() if count < RARE_SCOPE_ROWS]
        if blocks is not None and rare:
            all_params[f"rare_events{k}"] = sorted({scope.split("|")[1] for scope in rare})
            all_params[f"rare{k}"] = rare
            # Only the one-column event test filters: a test on several columns in WHERE makes
            # DuckDB read every row's record first (0.2 s here on 10 M rows). The scope test
            # then blanks the records of common scopes that share a rare event name.
            pieces.append(f"SELECT {side} AS side, service, event, model_id, "
                          f"CASE WHEN list_contains($rare{k}, {SCOPE_SQL}) THEN attrs END AS attrs "
                          f"FROM events WHERE ({where}) AND ({part.condition_sql}) "
                          f"AND list_contains($rare_events{k}, event)")
    sampled = " UNION ALL ".join(pieces)
    con.execute(f"CREATE OR REPLACE TEMP TABLE {SAMPLE_TABLE} AS {sampled}", all_params)
    structures = con.execute(
        f"SELECT side, service, event, model_id, json_structure(attrs) AS shape, count(*) "
        f"FROM {SAMPLE_TABLE} WHERE json_valid(attrs) GROUP BY ALL"
    ).fetchall()
    consumed = consumed_keys(con)
    fields: dict[str, SampledField] = {}
    skipped: dict[str, str] = {}
    sizes: dict[int, int] = {}
    for side, service, event, model_id, shape, count in structures:
        scope = scope_key(service, event, model_id)
        sizes[int(side)] = sizes.get(int(side), 0) + int(count)
        try:
            tree = json.loads(shape)
        except (TypeError, ValueError):
            continue
        if not isinstance(tree, dict):
            continue
        for name, family in _walk(tree, consumed):
            if not FIELD_NAME.fullmatch(name):
                skipped[name] = "name is not a plain dotted path"
                continue
            entry = fields.get(name) or SampledField(name)
            families = {w: dict(v) for w, v in entry.families.items()}
            per_side = families.setdefault(int(side), {})
            per_side[family] = per_side.get(family, 0) + int(count)
            fields[name] = replace(entry, families=families, scopes=entry.scopes | {scope})
    text_fields = [name for name, entry in fields.items()
                   if (entry.family_in(0) or entry.family_in(1)) == "string"]
    if text_fields:
        paths = ", ".join(json_path_literal(name) for name in text_fields)
        distinct = ", ".join(f"count(DISTINCT j[{i}])" for i in range(1, len(text_fields) + 1))
        counts = con.execute(
            f"SELECT {distinct} FROM (SELECT json_extract_string(attrs, [{paths}]) AS j "
            f"FROM {SAMPLE_TABLE} WHERE json_valid(attrs))"
        ).fetchone()
        for name, count in zip(text_fields, counts or (), strict=False):
            fields[name] = replace(fields[name], distinct_strings=int(count or 0))
    con.execute(f"DROP TABLE IF EXISTS {SAMPLE_TABLE}")
    return fields, skipped, sizes


def _walk(tree: Mapping[str, Any], consumed: set[str]) -> list[tuple[str, str]]:
    """(field name, type family) of a json_structure, one or two levels deep."""
    found: list[tuple[str, str]] = []
    for key, value in tree.items():
        if key in consumed:
            continue
        if isinstance(value, dict):
            for child, inner in value.items():
                found.append((f"{key}.{child}", _family_of_structure(inner)))
        else:
            found.append((key, _family_of_structure(value)))
    return found


def _family_of_structure(value: Any) -> str:
    if isinstance(value, dict):
        return "object"
    if isinstance(value, list):
        return "array"
    return type_family(str(value))


def discover(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    parts: Sequence[Part],
    *,
    with_attrs: bool = True,
) -> Discovery:
    """Candidate features: every event column feature, and each sampled record field that is
    numeric, boolean, or text with at most CARDINALITY_CAP distinct values."""
    features = [Feature(spec.name, spec.kind, "column") for spec in COLUMN_SPECS]
    rows = group_rows(con, filters, parts)
    if not with_attrs or not any(rows.values()):
        return Discovery(features, {}, rows=rows)
    fields, skipped, sizes = sample_fields(con, filters, parts, rows)
    return candidates(features, fields, skipped, sizes, rows)


def candidates(
    features: list[Feature],
    fields: dict[str, SampledField],
    skipped: dict[str, str],
    sizes: dict[int, int],
    rows: dict[int, dict[str, int]],
) -> Discovery:
    """The Discovery of sampled record fields: each one compared, or listed as skipped."""
    for name in sorted(fields):
        entry = fields[name]
        family = entry.family_in(0) or entry.family_in(1)
        kind = feature_kind_for_family(family, entry.distinct_strings)
        if kind is None:
            if family == "string":
                skipped[name] = f"text with more than {CARDINALITY_CAP} distinct values (an id or free text)"
            elif family in ("array",):
                skipped[name] = "array"
            elif family == "object" and name.count(".") >= 1:
                skipped[name] = "object nested deeper than two levels"
            continue
        features.append(Feature(name, kind, "attrs", json_type=family or "",
                                scopes=tuple(sorted(entry.scopes))))
    return Discovery(features, fields, skipped, sizes, rows)


def probe_field(
    con: duckdb.DuckDBPyConnection, filters: Filters, parts: Sequence[Part], name: str
) -> Feature | None:
    """A record field the user asked for that the sample did not show: its kind from an exact
    count of JSON types over the groups (a full read of attrs, paid only on request)."""
    where, params = where_sql(filters)
    all_params = dict(params)
    conditions = []
    for part in parts:
        all_params.update(part.params)
        conditions.append(f"({part.condition_sql})")
    path = json_path_literal(name)
    sql = (f"SELECT json_type(attrs, {path}) AS t, count(*), "
           f"count(DISTINCT json_extract_string(attrs, {path})), list(DISTINCT {SCOPE_SQL}) "
           f"FROM events WHERE ({where}) AND ({' OR '.join(conditions)}) "
           f"AND json_type(attrs, {path}) IS NOT NULL GROUP BY t")
    return feature_from_type_counts(name, con.execute(sql, all_params).fetchall())


def feature_from_type_counts(name: str, rows: Sequence[tuple[Any, ...]]) -> Feature | None:
    """A probed field's feature from (engine type name, values, distinct strings, scopes) rows:
    the most common type family decides, as in the sampled discovery. Shared by both engines."""
    counts: dict[str, int] = {}
    distinct = 0
    scopes: set[str] = set()
    for type_name, count, strings, scope_list in rows:
        family = type_family(type_name)
        counts[family] = counts.get(family, 0) + int(count)
        if family == "string":
            distinct = int(strings)
        scopes.update(scope_list or ())
    counts.pop("null", None)
    if not counts:
        return None
    family = max(sorted(counts), key=lambda f: counts[f])
    kind = feature_kind_for_family(family, distinct)
    if kind is None:
        return None
    return Feature(name, kind, "attrs", json_type=family, scopes=tuple(sorted(scopes)))


def carriers(
    features: Sequence[Feature],
    counts: Mapping[int, Mapping[str, Mapping[int, Population]]],
    index: Mapping[int, int],
) -> dict[int, tuple[str, ...]]:
    """feature index → the scopes that log it (present at least once in some group).

    ``prediction`` and ``prediction_label`` read the same column: a scope belongs to the
    numeric one when most of its predictions are numbers, else to the label one."""
    present: dict[int, dict[str, int]] = {}
    usable: dict[int, dict[str, int]] = {}
    for per_scope in counts.values():
        for scope, per_feature in per_scope.items():
            for i, population in per_feature.items():
                if population.present:
                    present.setdefault(i, {})[scope] = present.get(i, {}).get(scope, 0) + population.present
                    usable.setdefault(i, {})[scope] = (usable.get(i, {}).get(scope, 0)
                                                       + population.valid + population.nonfinite)
    result = {i: tuple(sorted(scopes)) for i, scopes in present.items()}
    by_name = {f.name: index[id(f)] for f in features if id(f) in index}
    numeric, label = by_name.get("prediction"), by_name.get("prediction_label")
    if numeric is not None and label is not None:
        scopes = set(result.get(numeric, ())) | set(result.get(label, ()))
        numeric_scopes, label_scopes = [], []
        for scope in sorted(scopes):
            as_number = usable.get(numeric, {}).get(scope, 0)
            as_label = usable.get(label, {}).get(scope, 0)
            (numeric_scopes if as_number >= as_label else label_scopes).append(scope)
        result[numeric] = tuple(numeric_scopes)
        result[label] = tuple(label_scopes)
    return {i: scopes for i, scopes in result.items() if scopes}


def population(
    counts: Mapping[str, Mapping[int, Population]], i: int, scopes: Sequence[str]
) -> Population:
    """Sum of one feature's counts over its scopes in one group."""
    total = Population()
    for scope in scopes:
        per_feature = counts.get(scope)
        if per_feature is not None and i in per_feature:
            total.add(per_feature[i])
    return total
