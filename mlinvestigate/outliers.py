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
from .drift.features import Feature, json_path_literal, record_value_sql
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


def _values(features: Sequence[Feature], where: str) -> str:
    """A relation of the rows matching `where`: request_id, ts, model_id, model_version,
    input_hash and v{i}, the value of features[i] (numeric fields as DOUBLE, NULL when not a
    number; categorical ones as text).

    Each record is parsed once, for every record field together (json_extract with a list of
    paths): a json_type and a json_extract per field parsed it four times per numeric field
    (20 s of the 49 s of `outliers` on 10M events)."""
    keys = ["request_id", "ts", "model_id", "model_version", "input_hash"]
    inner, outer = list(keys), list(keys)
    attrs = [f for f in features if f.source == "attrs"]
    for i, feature in enumerate(features):
        if feature.source == "column":
            assert feature.column is not None
            inner.append(f"{feature.column.value_sql} AS v{i}")
            outer.append(f"v{i}")
            continue
        item = f"j[{attrs.index(feature) + 1}]"
        if feature.kind == "numeric":
            outer.append(f"{record_value_sql('numeric', item)} AS v{i}")
        else:  # a rare-category check compares any text, objects included, as it always has
            outer.append(f"json_extract_string({item}, '$') AS v{i}")
    if attrs:
        paths = ", ".join(json_path_literal(f.name) for f in attrs)
        inner.append(f"json_extract(attrs, [{paths}]) AS j")
    return f"(SELECT {', '.join(outer)} FROM (SELECT {', '.join(inner)} FROM events WHERE {where}))"


def _input_outliers(con: duckdb.DuckDBPyConnection, filters: Filters, reference: Window,
                    numeric: Sequence[Feature], categorical: Sequence[Feature], z: float, k: int
                    ) -> tuple[list[Candidate], list[Candidate]]:
    """Far inputs and rare categories, from one pass over the reference (medians, MADs, shares)
    and one over the requests (the top `k` by robust z, and the first rare-category rows), so
    each record is parsed twice in all rather than once per reason and field."""
    features = [*numeric, *categorical]
    if not features:
        return [], []
    numeric_at = range(len(numeric))
    categorical_at = range(len(numeric), len(features))
    ref_sql, ref_params = reference.condition("r")
    reference_where, reference_params = where_sql(replace(filters, since=None, until=None))
    summaries = [f"median(x{i}), mad(x{i}), stddev_pop(x{i}), count(x{i})" for i in numeric_at]
    summaries += [f"histogram(v{i}) FILTER (WHERE request_id IS NOT NULL)" for i in categorical_at]
    finite = [f"CASE WHEN isfinite(v{i}) THEN v{i} END AS x{i}" for i in numeric_at]
    reference_rows = _values(features, f"{reference_where} AND ({ref_sql})")
    row = con.execute(f"SELECT {', '.join(summaries)} FROM (SELECT *, {', '.join(finite) or '0 AS x'} "
                      f"FROM {reference_rows})", {**reference_params, **ref_params}).fetchone()
    where, params = _row_sql(filters)

    terms = []
    used: list[tuple[int, Feature, float, float]] = []
    for i, feature in zip(numeric_at, numeric, strict=True):
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
        terms.append(f"coalesce(abs(CAST(v{i} AS DOUBLE) - $m{j}) / $s{j}, 0)")
        used.append((i, feature, float(median), scale))

    shares: list[dict[str, float]] = []
    conditions = []
    for position, i in enumerate(categorical_at):
        counts = {str(key): int(v) for key, v in (row[4 * len(numeric) + position] or {}).items()}
        total = sum(counts.values())
        shares.append({key: v / total for key, v in counts.items()} if total else {})
        params[f"common{i}"] = [key for key, share in shares[-1].items() if share >= RARE_SHARE]
        if total:
            conditions.append(f"(v{i} IS NOT NULL AND NOT list_contains($common{i}, v{i}))")
    if not terms and not conditions:
        return [], []

    keys = "'request_id': request_id, 'ts': ts, 'model_id': model_id, 'model_version': model_version, " \
           "'input_hash': input_hash"
    columns, aggregates = [], []
    far_test, rare_test = "false", "false"
    if terms:
        params["z"], params["k"] = z, k
        columns += [f"[{', '.join(terms)}] AS zs", "list_max(zs) AS top", "list_position(zs, top) AS which",
                    f"[{', '.join(f'TRY_CAST(v{i} AS DOUBLE)' for i, _, _, _ in used)}] AS xs"]
        far_test = "top >= $z AND isfinite(top)"
        # The best k by z, earlier first among equals: max_by keeps k rows, no sort of them all.
        aggregates.append("max_by({" + keys + ", 'top': top, 'which': which, 'xs': xs}, "
                          f"{{'top': top, 'early': -epoch_us(ts)}}, $k) FILTER (WHERE {far_test})")
    else:
        aggregates.append("NULL")
    if conditions:
        params["k_rare"] = k * 20
        columns.append(f"({' OR '.join(conditions)}) AS rare")
        rare_test = "rare"
        cats = ", ".join(f"'c{i}': v{i}" for i in categorical_at)
        aggregates.append("min_by({" + keys + ", " + cats + "}, ts, $k_rare) FILTER (WHERE rare)")
    else:
        aggregates.append("NULL")
    # Candidates first, so the row structs are built for them only.
    rows = (f"(SELECT * FROM (SELECT *, {', '.join(columns)} FROM {_values(features, where)}) "
            f"WHERE ({far_test}) OR ({rare_test}))")
    far_rows, rare_rows = con.execute(f"SELECT {', '.join(aggregates)} FROM {rows}", params).fetchone()

    far = []
    for item in sorted(far_rows or [], key=lambda r: (-r["top"], r["ts"])):
        _, feature, median, _ = used[int(item["which"]) - 1]
        value = item["xs"][int(item["which"]) - 1]
        far.append(dict(request_id=item["request_id"], ts=item["ts"], model_id=item["model_id"],
                        model_version=item["model_version"], input_hash=item["input_hash"],
                        reason="far input", score=round(1.0 - z / float(item["top"]), 6),
                        detail=f"{feature.name} = {value:g} (reference median {median:g}, "
                               f"robust z {item['top']:.1f})"))
    rare = []
    for item in sorted(rare_rows or [], key=lambda r: r["ts"]):
        best: tuple[float, str] | None = None
        for position, (i, feature) in enumerate(zip(categorical_at, categorical, strict=True)):
            value, share_of = item[f"c{i}"], shares[position]
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
            rare.append(dict(request_id=item["request_id"], ts=item["ts"], model_id=item["model_id"],
                             model_version=item["model_version"], input_hash=item["input_hash"],
                             reason="rare category", score=round(1.0 - best[0], 6), detail=best[1]))
    rare.sort(key=lambda c: (-c["score"], c["ts"]))
    return far, rare[:k]


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
        *_input_outliers(con, filters, window, numeric, categorical, z_threshold, limit),
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
