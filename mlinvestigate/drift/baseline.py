"""Saved baselines: a reference window's summaries kept in the database, so later comparisons
need no raw reference rows (``mlinv baseline save NAME``, ``mlinv drift --baseline NAME``).

What is kept per feature is exactly what a comparison reads from the reference: its
population counts, and for numeric features the profile (n, min, max, std, skewness, deciles,
quantile grid), the bin edges and the bucket counts; for categorical ones the value counts.
Drift against a baseline therefore gives the same numbers as drift against the same window.

Storage: one row per baseline in the table ``baselines`` (store.py, migration m003); the
summaries are one JSON document per baseline (a few kB per feature).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import EmptyResult, UsageError
from ..investigations.filters import Filters
from ..result import Result
from . import stats
from .compare import ReferenceSide, run_scan
from .features import FIELD_NAME, Feature
from .measures import NumericBins, Options
from .profile import Buckets, Part, Population, Profile
from .windows import Window

if TYPE_CHECKING:
    import duckdb

PAYLOAD_VERSION = 1



def check_name(name: str) -> str:
    text = name.strip()
    if not FIELD_NAME.fullmatch(text) or len(text) > 100:
        raise UsageError(f"bad baseline name {name!r}",
                         hint="letters, digits, _ @ - and dots, e.g. fraud-week1")
    return text


def _float(value: float | None) -> float | None:
    return None if value is None else float(value)


def _feature_payload(reference: ReferenceSide, feature: Feature) -> dict[str, Any]:
    name = feature.name
    pop = reference.populations.get(name, Population())
    item: dict[str, Any] = {
        "name": name, "kind": feature.kind, "source": feature.source, "json_type": feature.json_type,
        "scopes": list(feature.scopes),
        "population": {"rows": pop.rows, "present": pop.present, "valid": pop.valid,
                       "nonfinite": pop.nonfinite},
    }
    profile = reference.profiles.get(name)
    if profile is not None:
        item["profile"] = {"n": profile.n, "min": _float(profile.minimum), "max": _float(profile.maximum),
                           "std": _float(profile.std), "g1": _float(profile.skewness_g1),
                           "deciles": list(profile.deciles), "grid": list(profile.grid),
                           "sampled_every": profile.sampled_every}
    bins = reference.bins.get(name)
    if bins is not None:
        item["bins"] = {"strategy": bins.binning.strategy, "edges": list(bins.binning.edges),
                        "outside": bins.binning.outside, "grid": list(bins.grid),
                        "boundaries": list(bins.boundaries)}
    buckets = reference.buckets.get(name)
    if buckets is not None:
        item["buckets"] = {"counts": [int(c) for c in buckets.counts], "above": buckets.above,
                           "below": buckets.below, "n": buckets.n, "tail_sums": list(buckets.tail_sums)}
    if name in reference.categories:
        item["categories"] = reference.categories[name]
    return item


def to_payload(reference: ReferenceSide) -> str:
    document = {
        "version": PAYLOAD_VERSION,
        "binning": reference.binning,
        "edges": list(reference.edges) if reference.edges is not None else None,
        "families": reference.families,
        "features": [_feature_payload(reference, f) for f in reference.features.values()],
    }
    # Infinity (open outer edges) is written as JSON's common extension and read back by json.
    return json.dumps(document, allow_nan=True)


def from_payload(text: str, description: str) -> ReferenceSide:
    document = json.loads(text)
    if document.get("version") != PAYLOAD_VERSION:
        raise UsageError("this baseline was saved by another version of mlinv; save it again")
    features: dict[str, Feature] = {}
    reference = ReferenceSide(features=features, populations={}, description=description,
                              binning=document.get("binning", "quantile10"),
                              edges=tuple(document["edges"]) if document.get("edges") else None,
                              families=dict(document.get("families", {})))
    for item in document["features"]:
        name = item["name"]
        features[name] = Feature(name, item["kind"], item["source"], item.get("json_type", ""),
                                 tuple(item.get("scopes", ())))
        pop = item["population"]
        reference.populations[name] = Population(pop["rows"], pop["present"], pop["valid"], pop["nonfinite"])
        if "profile" in item:
            p = item["profile"]
            reference.profiles[name] = Profile(p["n"], p["min"], p["max"], p["std"], p["g1"],
                                               tuple(p["deciles"]), tuple(p["grid"]), p["sampled_every"])
        if "bins" in item:
            b = item["bins"]
            binning = stats.Binning(b["strategy"], tuple(float(e) for e in b["edges"]), b["outside"])
            reference.bins[name] = NumericBins(binning, tuple(b["grid"]), tuple(b["boundaries"]))
        if "buckets" in item:
            b = item["buckets"]
            # Baselines saved before tail sums existed have none: W1 then guesses inside the
            # outer buckets as it used to.
            reference.buckets[name] = Buckets(np.array(b["counts"], dtype=np.int64), float(b["above"]),
                                              float(b["below"]), int(b["n"]),
                                              tuple(float(v) for v in b.get("tail_sums", ())))
        if "categories" in item:
            reference.categories[name] = {str(k): int(v) for k, v in item["categories"].items()}
    return reference


def _filters_json(filters: Filters) -> str:
    return json.dumps({"model": filters.model, "version": filters.version, "service": filters.service,
                       "where": filters.where})


def save_baseline(
    con: duckdb.DuckDBPyConnection,
    name: str,
    filters: Filters,
    reference: Window,
    options: Options,
    wanted: Sequence[str] | None = None,
    *,
    replace: bool = False,
) -> Result:
    """Summarize the reference window and store it under `name` (a writable connection)."""
    name = check_name(name)
    if options.binning == "sturges-combined" and options.edges is None:
        raise UsageError("sturges-combined bins depend on the current window, so a baseline cannot hold "
                         "them", hint="save with quantile10, doane-ref or --edges")
    exists = con.execute("SELECT count(*) FROM baselines WHERE name = ?", [name]).fetchone()[0]
    if exists and not replace:
        raise UsageError(f"a baseline named {name!r} exists", hint="pass --replace to overwrite it")
    sql, params = reference.condition("w0")
    outcome = run_scan(con, filters, [Part("0", sql, params)], options, wanted)
    side = outcome.reference
    if not any(p.rows for p in side.populations.values()):
        raise EmptyResult(f"no events in the reference window ({reference.describe()})")
    side.description = reference.describe()
    values = sum(p.valid for p in side.populations.values())
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute("DELETE FROM baselines WHERE name = ?", [name])
        con.execute("INSERT INTO baselines VALUES (?, ?, ?, ?, ?, ?, ?)",
                    [name, datetime.now(UTC).replace(tzinfo=None), side.description, _filters_json(filters),
                     len(side.features), values, to_payload(side)])
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    rows = [(f.name, f.kind, side.populations[f.name].valid,
             _missing_pct(side.populations[f.name]))
            for f in side.features.values()]
    return Result(f"Baseline {name!r} saved", ["feature", "kind", "n", "missing_pct"], rows,
                  notes=[f"Reference: {side.description}. Filters: {filters.describe()}.",
                         f"Compare with: mlinv drift --baseline {name}"],
                  units={"missing_pct": "%"})


def _missing_pct(pop: Population) -> float | None:
    rate = pop.missing_rate()
    return None if rate is None else round(rate * 100, 3)


def _has_table(con: duckdb.DuckDBPyConnection) -> bool:
    row = con.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'baselines' "
                      "AND NOT temporary").fetchone()
    return bool(row and row[0])


def load_baseline(con: duckdb.DuckDBPyConnection, name: str) -> tuple[ReferenceSide, dict[str, Any]]:
    """The saved reference and the filters it was saved with."""
    name = check_name(name)
    row = None
    if _has_table(con):
        row = con.execute("SELECT reference, filters, payload FROM baselines WHERE name = ?",
                          [name]).fetchone()
    if row is None:
        known = [r[0] for r in con.execute("SELECT name FROM baselines ORDER BY name").fetchall()] \
            if _has_table(con) else []
        raise UsageError(f"no baseline named {name!r}",
                         hint=("saved: " + ", ".join(known)) if known
                         else "save one with `mlinv baseline save NAME`")
    description, filters, payload = row
    return from_payload(payload, description), json.loads(filters)


def list_baselines(con: duckdb.DuckDBPyConnection) -> Result:
    rows: list[tuple[Any, ...]] = []
    if _has_table(con):
        rows = con.execute("SELECT name, created, reference, filters, features, values_kept "
                           "FROM baselines ORDER BY name").fetchall()
    return Result("Baselines", ["name", "created", "reference", "filters", "features", "values_kept"], rows)


def delete_baseline(con: duckdb.DuckDBPyConnection, name: str) -> Result:
    name = check_name(name)
    if not _has_table(con) or not con.execute("SELECT count(*) FROM baselines WHERE name = ?",
                                              [name]).fetchone()[0]:
        raise UsageError(f"no baseline named {name!r}")
    con.execute("DELETE FROM baselines WHERE name = ?", [name])
    return Result("Baseline deleted", ["name"], [(name,)])
