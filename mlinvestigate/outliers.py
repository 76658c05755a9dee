"""``mlinv outliers``: requests worth a human look, ranked, each with the reason it was picked.

Reasons, each ranked on its own scale:

* **low confidence**: the lowest ``confidence`` per model (score = 1 − confidence);
* **high entropy / small margin**: when class probabilities are logged (a record field named
  probabilities, probs, class_probabilities, probas or proba, as a list or a label → p
  object): normalised entropy H/ln K (score) and 1 − (top-1 − top-2 probability);
* **far input**: numeric inputs (input_size and numeric record fields such as
  features.amount) with a robust z-score |x − median| / (1.4826·MAD) of the reference at or
  above ``--z`` (score = 1 − z_threshold / z, so every score is in 0 … 1);
* **rare category**: a categorical input whose value has under 0.5 % of the reference, or was
  never seen in it (score = 1 − reference share).

The queue interleaves the reasons (the best of each, then the second of each …) so that one
kind of oddity cannot crowd out the others, and lists each request once (its other reasons go
into ``detail``). Medians, MADs and category shares come from the reference window (default:
the first quarter of the time range) in SQL; only the top candidates reach Python.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .drift.discovery import discover
from .drift.features import NUMBER_TYPES, Feature, json_path_literal
from .drift.profile import Part
from .drift.windows import Window, choose_windows, parse_user_window
from .errors import InputError
from .investigations.filters import Filters, where_sql
from .result import Result

if TYPE_CHECKING:
    import duckdb

PROBABILITY_KEYS = ("probabilities", "probs", "class_probabilities", "probas", "proba")
OUTPUT_COLUMNS = frozenset({"confidence", "prediction", "prediction_label", "latency_ms"})
"""Model outputs and timings are not inputs: they are not scored as far or rare inputs."""
RARE_SHARE = 0.005
MAD_SCALE = 1.4826
COLUMNS = ["rank", "request_id", "ts", "model_id", "model_version", "reason", "score", "detail",
           "input_hash"]

Candidate = dict[str, Any]


def _row_sql(filters: Filters) -> tuple[str, dict[str, Any]]:
    where, params = where_sql(filters)
    return f"{where} AND request_id IS NOT NULL", params


def _low_confidence(con: duckdb.DuckDBPyConnection, filters: Filters, k: int) -> list[Candidate]:
    where, params = _row_sql(filters)
    params["k"] = k
    rows = con.execute(
        f"""SELECT request_id, ts, model_id, model_version, input_hash, confidence
            FROM events WHERE {where} AND isfinite(confidence)
            QUALIFY row_number() OVER (PARTITION BY model_id ORDER BY confidence, ts) <= $k
            ORDER BY confidence, ts""", params).fetchall()
    return [dict(request_id=r[0], ts=r[1], model_id=r[2], model_version=r[3], input_hash=r[4],
                 reason="low confidence", score=round(1.0 - r[5], 6),
                 detail=f"confidence {r[5]:.4g}") for r in rows]


def _probability_field(fields: Sequence[str]) -> str | None:
    for key in PROBABILITY_KEYS:
        if key in fields or any(name.startswith(key + ".") for name in fields):
            return key
    return None


def _uncertain(con: duckdb.DuckDBPyConnection, filters: Filters, key: str, k: int) -> list[Candidate]:
    where, params = _row_sql(filters)
    path = json_path_literal(key)
    params["k"] = k
    probabilities = (f"CASE json_type(attrs, {path}) "
                     f"WHEN 'ARRAY' THEN TRY_CAST(json_extract(attrs, {path}) AS DOUBLE[]) "
                     f"WHEN 'OBJECT' THEN map_values(TRY_CAST(json_extract(attrs, {path}) "
                     "AS MAP(VARCHAR, DOUBLE))) "
                     "END")
    sql = f"""
        WITH p AS (
            SELECT request_id, ts, model_id, model_version, input_hash, {probabilities} AS probs
            FROM events WHERE {where} AND json_type(attrs, {path}) IN ('ARRAY', 'OBJECT')
        ), scored AS (
            SELECT *, -list_sum(list_transform(probs, lambda x: CASE WHEN x > 0 THEN x * ln(x) ELSE 0 END))
                       / ln(len(probs)) AS entropy,
                   list_sort(probs, 'DESC')[1] - list_sort(probs, 'DESC')[2] AS margin
            FROM p WHERE len(probs) >= 2 AND list_min(probs) >= 0
        )
        SELECT * FROM (SELECT 'high entropy' AS reason, * FROM scored ORDER BY entropy DESC, ts LIMIT $k)
        UNION ALL
        SELECT * FROM (SELECT 'small margin' AS reason, * FROM scored ORDER BY margin, ts LIMIT $k)
    """
    result = []
    for reason, request_id, ts, model_id, version, input_hash, probs, entropy, margin in \
            con.execute(sql, params).fetchall():
        score = entropy if reason == "high entropy" else 1.0 - margin
        result.append(dict(request_id=request_id, ts=ts, model_id=model_id, model_version=version,
                           input_hash=input_hash, reason=reason, score=round(float(score), 6),
                           detail=f"entropy {entropy:.3f}, margin {margin:.3f} over {len(probs)} classes"))
    return result


def _value_sql(feature: Feature) -> str:
    if feature.source == "column":
        assert feature.column is not None
        return feature.column.value_sql
    path = json_path_literal(feature.name)
    if feature.kind == "numeric":
        numbers = ", ".join(f"'{t}'" for t in NUMBER_TYPES)
        return (f"CASE WHEN json_type(attrs, {path}) IN ({numbers}) "
                f"THEN CAST(json_extract(attrs, {path}) AS DOUBLE) END")
    return f"json_extract_string(attrs, {path})"


def _far_inputs(con: duckdb.DuckDBPyConnection, filters: Filters, reference: Window,
                features: Sequence[Feature], z: float, k: int) -> list[Candidate]:
    if not features:
        return []
    where, params = _row_sql(filters)
    ref_sql, ref_params = reference.condition("r")
    reference_where, reference_params = where_sql(replace(filters, since=None, until=None))
    values = [_value_sql(f) for f in features]
    stats_sql = ", ".join(f"median(x{i}), mad(x{i}), stddev_pop(x{i}), count(x{i})"
                          for i in range(len(features)))
    inner = ", ".join(f"CASE WHEN isfinite({v}) THEN {v} END AS x{i}" for i, v in enumerate(values))
    row = con.execute(f"SELECT {stats_sql} FROM (SELECT {inner} FROM events WHERE {reference_where} "
                      f"AND ({ref_sql}))", {**reference_params, **ref_params}).fetchone()
    terms = []
    used: list[tuple[Feature, float, float]] = []
    for i, feature in enumerate(features):
        median, mad, std, count = row[4 * i: 4 * i + 4]
        if not count or median is None:
            continue
        scale = MAD_SCALE * float(mad or 0.0)
        if scale <= 0:
            scale = float(std or 0.0)  # over half the reference is one value: fall back to the std
        if scale <= 0:
            continue
        j = len(used)
        params[f"m{j}"], params[f"s{j}"] = float(median), scale
        terms.append(f"coalesce(abs(CAST({values[i]} AS DOUBLE) - $m{j}) / $s{j}, 0)")
        used.append((feature, float(median), scale))
    if not terms:
        return []
    params["z"], params["k"] = z, k
    sql = f"""
        SELECT request_id, ts, model_id, model_version, input_hash, zs,
               list_max(zs) AS top, list_position(zs, list_max(zs)) AS which, xs
        FROM (SELECT request_id, ts, model_id, model_version, input_hash,
                     [{", ".join(terms)}] AS zs,
                     [{", ".join(f"TRY_CAST({values[i]} AS DOUBLE)" for i, f in enumerate(features)
                                 if any(u[0] is f for u in used))}] AS xs
              FROM events WHERE {where})
        WHERE list_max(zs) >= $z AND isfinite(list_max(zs))
        ORDER BY top DESC, ts LIMIT $k
    """
    result = []
    for request_id, ts, model_id, version, input_hash, _, top, which, xs in \
            con.execute(sql, params).fetchall():
        feature, median, _ = used[int(which) - 1]
        value = xs[int(which) - 1]
        result.append(dict(request_id=request_id, ts=ts, model_id=model_id, model_version=version,
                           input_hash=input_hash, reason="far input", score=round(1.0 - z / float(top), 6),
                           detail=f"{feature.name} = {value:g} (reference median {median:g}, "
                                  f"robust z {top:.1f})"))
    return result


def _rare_categories(con: duckdb.DuckDBPyConnection, filters: Filters, reference: Window,
                     features: Sequence[Feature], k: int) -> list[Candidate]:
    if not features:
        return []
    ref_sql, ref_params = reference.condition("r")
    reference_where, reference_params = where_sql(replace(filters, since=None, until=None))
    values = [_value_sql(f) for f in features]
    histograms = ", ".join(f"histogram({v})" for v in values)
    row = con.execute(f"SELECT {histograms} FROM events WHERE {reference_where} AND ({ref_sql}) "
                      "AND request_id IS NOT NULL", {**reference_params, **ref_params}).fetchone()
    where, params = _row_sql(filters)
    shares: list[dict[str, float]] = []
    conditions = []
    for i, histogram in enumerate(row):
        counts = {str(key): int(v) for key, v in (histogram or {}).items()}
        total = sum(counts.values())
        shares.append({key: v / total for key, v in counts.items()} if total else {})
        common = [key for key, share in shares[-1].items() if share >= RARE_SHARE]
        params[f"common{i}"] = common
        if total:
            conditions.append(f"({values[i]} IS NOT NULL AND NOT list_contains($common{i}, {values[i]}))")
    if not conditions:
        return []
    params["k"] = k * 20
    selected = ", ".join(f"{v} AS c{i}" for i, v in enumerate(values))
    rows = con.execute(f"SELECT request_id, ts, model_id, model_version, input_hash, {selected} FROM events "
                       f"WHERE {where} AND ({' OR '.join(conditions)}) ORDER BY ts LIMIT $k",
                       params).fetchall()
    result = []
    for request_id, ts, model_id, version, input_hash, *categories in rows:
        best: tuple[float, str] | None = None
        for feature, value, share_of in zip(features, categories, shares, strict=True):
            if value is None or not share_of:
                continue
            share = share_of.get(str(value), 0.0)
            if share >= RARE_SHARE:
                continue
            text = (f"{feature.name} = {value!r}, never in the reference" if share == 0 else
                    f"{feature.name} = {value!r}, {share:.3%} of the reference")
            if best is None or share < best[0]:
                best = (share, text)
        if best is not None:
            result.append(dict(request_id=request_id, ts=ts, model_id=model_id, model_version=version,
                               input_hash=input_hash, reason="rare category", score=round(1.0 - best[0], 6),
                               detail=best[1]))
    result.sort(key=lambda c: (-c["score"], c["ts"]))
    return result[:k]


def _interleave(lists: Sequence[list[Candidate]], limit: int) -> list[Candidate]:
    """Round-robin over the reasons; a request already queued gets the new reason in detail."""
    queue: list[Candidate] = []
    seen: dict[str, Candidate] = {}
    positions = [0] * len(lists)
    while len(queue) < limit and any(p < len(items) for p, items in zip(positions, lists, strict=True)):
        for index, items in enumerate(lists):
            if len(queue) >= limit:
                break
            while positions[index] < len(items):
                candidate = items[positions[index]]
                positions[index] += 1
                key = candidate["request_id"]
                if key in seen:
                    seen[key]["detail"] += f"; also {candidate['reason']}: {candidate['detail']}"
                    continue
                seen[key] = candidate
                queue.append(candidate)
                break
    return queue


def find_outliers(
    con: duckdb.DuckDBPyConnection,
    filters: Filters,
    *,
    reference: str | None = None,
    z_threshold: float = 5.0,
    wall_clock: bool = False,
) -> Result:
    """The ranked review queue for the filtered requests."""
    limit = filters.limit
    unfiltered_time = replace(filters, since=None, until=None)
    window = (parse_user_window(con, reference, "reference", wall_clock=wall_clock) if reference
              else choose_windows(con, unfiltered_time).reference)
    found = discover(con, filters, [Part("1", "true")])
    probability_key = _probability_field(list(found.fields))
    inputs = [f for f in found.features if f.name not in OUTPUT_COLUMNS
              and not (probability_key and f.name.startswith(probability_key + "."))]
    numeric = [f for f in inputs if f.kind == "numeric"]
    categorical = [f for f in inputs if f.kind == "categorical" and f.source == "attrs"]
    per_reason = [
        _low_confidence(con, filters, limit),
        _uncertain(con, filters, probability_key, limit) if probability_key else [],
        _far_inputs(con, filters, window, numeric, z_threshold, limit),
        _rare_categories(con, filters, window, categorical, limit),
    ]
    split: list[list[Candidate]] = []
    for items in per_reason:
        reasons = sorted({c["reason"] for c in items})
        for reason in reasons:
            split.append([c for c in items if c["reason"] == reason])
    # Low confidence is ranked per model: interleave the models so each gets its lowest first.
    expanded: list[list[Candidate]] = []
    for items in split:
        if items and items[0]["reason"] == "low confidence":
            models = sorted({str(c["model_id"]) for c in items})
            expanded += [[c for c in items if str(c["model_id"]) == m] for m in models]
        else:
            expanded.append(items)
    queue = _interleave(expanded, limit)
    rows = [(rank, c["request_id"], c["ts"], c["model_id"], c["model_version"], c["reason"], c["score"],
             c["detail"], c["input_hash"]) for rank, c in enumerate(queue, start=1)]
    counts = {}
    for c in queue:
        counts[c["reason"]] = counts.get(c["reason"], 0) + 1
    notes = [
        ("Queue: " + ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items())) + ".") if counts
        else "Nothing stands out.",
        "score (0–1, higher is stranger): low confidence 1 − confidence; high entropy H/ln K; small "
        f"margin 1 − (p1 − p2); far input 1 − {z_threshold:g}/z with z = |x − median|/(1.4826·MAD) ≥ "
        f"{z_threshold:g}; rare category 1 − reference share (< {RARE_SHARE:.1%} is rare).",
        f"Reference for medians and shares: {window.describe()}. Requests: {filters.describe()}.",
    ]
    if not probability_key:
        notes.append("No class probabilities logged (fields probabilities/probs/…): entropy and margin "
                     "are not available.")
    return Result("Requests to review", list(COLUMNS), rows, notes=notes)


def write_queue(result: Result, path: str) -> int:
    """The queue as JSON lines: request_id, ts, version, reason, score, input_hash (+ model_id, detail)."""
    from .output import iso_utc

    try:
        with Path(path).open("w", encoding="utf-8") as handle:
            for record in result.records():
                ts = record["ts"]
                item = {"request_id": record["request_id"], "ts": iso_utc(ts) if ts is not None else None,
                        "version": record["model_version"], "reason": record["reason"],
                        "score": record["score"] if math.isfinite(record["score"]) else None,
                        "input_hash": record["input_hash"], "model_id": record["model_id"],
                        "detail": record["detail"]}
                handle.write(json.dumps(item, ensure_ascii=False) + "\n")
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror or exc}") from None
    return len(result.rows)
