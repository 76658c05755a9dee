"""Which fields of the event log are compared for drift, and how each one is read in SQL.

A *feature* is one field: an event column (``latency_ms``, ``confidence``, ``model_version`` …)
or a field of the logged record kept in ``attrs`` (``features.amount``, ``client_id`` …), found
by sampling the records' JSON keys one or two levels deep. Each feature is numeric or
categorical, decided from the JSON types seen (``json_type``) or the column type.

Where a feature is *expected* matters for missing values: ``features.amount`` is only logged
by the fraud model-server's prediction events, so counting its absence on gateway lines would
report 80 % "missing" that nobody lost. Every row therefore has a *scope*, the triple
(service, event, model_id), and a feature's **population** is the rows of the scopes that log
it at least once in either window. Missing = population rows without a usable value (absent,
JSON null, NaN/±inf, or text where a number is expected).

Field names come from the data or from the user and end up as JSON path literals in SQL
(DuckDB needs constant paths), so every name is checked against :data:`FIELD_NAME` first.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

from ..errors import UsageError

Kind = Literal["numeric", "categorical"]

FIELD_NAME = re.compile(r"^[A-Za-z0-9_@-]+(?:\.[A-Za-z0-9_@-]+)*$")
"""A field name: dot-separated keys of letters, digits, ``_``, ``@`` and ``-``. Nothing that
could close a quoted JSON path or an SQL string can pass."""

MAX_DEPTH = 2
"""Record fields are discovered at most this many levels deep (``features.amount``)."""

CARDINALITY_CAP = 50
"""A text field with more distinct values than this (in the discovery sample) is an id, hash or
free text, not a category: it is listed as skipped rather than compared."""

NUMBER_TYPES = ("BIGINT", "UBIGINT", "DOUBLE")
"""DuckDB ``json_type`` names of JSON numbers."""

SCOPE_SQL = "concat_ws('|', coalesce(service, ''), coalesce(event, ''), coalesce(model_id, ''))"
"""The scope of an event row: service|event|model_id."""


def record_value_sql(kind: Kind, item: str, json_type_sql: str | None = None) -> str:
    """SQL of a record field's value from `item`, its JSON text (an element of json_extract):
    DOUBLE for a numeric field (NULL unless a JSON number), text for a categorical one (NULL
    for JSON null, objects and arrays). `json_type_sql` reuses an already computed json_type."""
    json_type = json_type_sql or f"json_type({item})"
    if kind == "numeric":
        numbers = ", ".join(f"'{t}'" for t in NUMBER_TYPES)
        return f"CASE WHEN {json_type} IN ({numbers}) THEN CAST({item} AS DOUBLE) END"
    return (f"CASE WHEN {json_type} NOT IN ('NULL', 'OBJECT', 'ARRAY') "
            f"THEN json_extract_string({item}, '$') END")


def type_family(json_type: str | None) -> str:
    """The JSON type family of a DuckDB ``json_type`` name: number, string, boolean, object,
    array or null. Integer and float are one family: 3 and 3.5 are the same kind of field."""
    if json_type is None:
        return "null"
    upper = json_type.upper()
    if upper in NUMBER_TYPES:
        return "number"
    return {"VARCHAR": "string", "BOOLEAN": "boolean", "OBJECT": "object", "ARRAY": "array",
            "NULL": "null"}.get(upper, "mixed")


def check_field_name(name: str) -> str:
    """`name` stripped, or UsageError when it is not a plain dotted field name."""
    text = name.strip()
    if text.startswith("attrs."):
        text = text[len("attrs.") :]
    if not FIELD_NAME.fullmatch(text) or text.count(".") >= 4:
        raise UsageError(
            f"bad field name {name!r}",
            hint="use letters, digits, _ @ - and dots, e.g. features.amount or latency_ms",
        )
    return text


def json_path_literal(name: str) -> str:
    """The SQL string literal of the JSON path of a checked field name: '$."a"."b"'."""
    checked = check_field_name(name)
    return "'$." + ".".join(f'"{key}"' for key in checked.split(".")) + "'"


def describe_scope(scope: str) -> str:
    """'model-server|prediction_success|fraud' as 'model-server prediction_success (fraud)'."""
    service, _, rest = scope.partition("|")
    event, _, model = rest.partition("|")
    text = " ".join(part for part in (service, event) if part) or "(no service/event)"
    return f"{text} ({model})" if model else text


# --------------------------------------------------------------------------- event columns


@dataclass(frozen=True)
class ColumnSpec:
    """How one event column is read as a feature."""

    name: str
    kind: Kind
    value_sql: str
    """DOUBLE for numeric features (may be NaN/inf, filtered later), VARCHAR for categorical."""
    present_sql: str
    """True when the record had the field at all (even unusable, e.g. latency "fast")."""


COLUMN_SPECS: tuple[ColumnSpec, ...] = (
    ColumnSpec("input_size", "numeric", "CAST(input_size AS DOUBLE)", "input_size IS NOT NULL"),
    # An unparseable latency ("NaN", "slow") is NULL in latency_ms and kept in latency_raw:
    # present but unusable, so it counts as missing instead of vanishing from the population.
    ColumnSpec("latency_ms", "numeric", "latency_ms",
               "(latency_ms IS NOT NULL OR latency_raw IS NOT NULL)"),
    ColumnSpec("confidence", "numeric", "confidence", "confidence IS NOT NULL"),
    ColumnSpec("prediction", "numeric", "TRY_CAST(prediction AS DOUBLE)", "prediction IS NOT NULL"),
    ColumnSpec("prediction_label", "categorical",
               "CASE WHEN TRY_CAST(prediction AS DOUBLE) IS NULL THEN prediction END",
               "prediction IS NOT NULL"),
    ColumnSpec("model_version", "categorical", "model_version", "model_version IS NOT NULL"),
    ColumnSpec("error_type", "categorical", "error_type", "error_type IS NOT NULL"),
    # Typed, not cast to text in SQL (a cast per row is the costly part on big tables);
    # category_text() spells the values the way JSON does.
    ColumnSpec("status_code", "categorical", "status_code", "status_code IS NOT NULL"),
    ColumnSpec("cache_hit", "categorical", "cache_hit", "cache_hit IS NOT NULL"),
)
"""Event columns compared by default. ``prediction`` is split: numeric predictions (scores,
regression outputs) are the numeric feature ``prediction``; text labels are the categorical
``prediction_label``. Which one a scope logs is decided per scope (see discovery)."""

COLUMN_SPEC_BY_NAME = {spec.name: spec for spec in COLUMN_SPECS}


def category_text(value: object) -> str:
    """A category value as text: booleans as JSON writes them, everything else str()."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


# --------------------------------------------------------------------------- features


@dataclass(frozen=True)
class Feature:
    """One compared field and how to read it."""

    name: str
    kind: Kind
    source: Literal["column", "attrs"]
    json_type: str = ""
    """Type family seen in the reference (``number``, ``string`` …); for schema drift."""
    scopes: tuple[str, ...] = ()
    """Scopes (service|event|model_id) that log the field; the feature's population."""

    @property
    def column(self) -> ColumnSpec | None:
        return COLUMN_SPEC_BY_NAME.get(self.name) if self.source == "column" else None


@dataclass(frozen=True)
class SampledField:
    """A record field seen in the discovery sample: its type families and values per window."""

    name: str
    families: dict[int, dict[str, int]] = field(default_factory=dict)
    """window (0 reference, 1 current) → type family → count in the sample."""
    distinct_strings: int = 0
    """Distinct string values in the sample (both windows)."""
    scopes: frozenset[str] = frozenset()

    def family_in(self, window: int) -> str | None:
        counts = {k: v for k, v in self.families.get(window, {}).items() if k != "null"}
        if not counts:
            return None
        return max(sorted(counts), key=lambda family: counts[family])

    def count_in(self, window: int) -> int:
        return sum(self.families.get(window, {}).values())


def feature_kind_for_family(family: str | None, distinct_strings: int) -> Kind | None:
    """numeric for numbers; categorical for booleans and low-cardinality text; None otherwise."""
    if family == "number":
        return "numeric"
    if family == "boolean":
        return "categorical"
    if family == "string" and distinct_strings <= CARDINALITY_CAP:
        return "categorical"
    return None
