"""Accuracy by model version from delayed labels: a lagging signal.

Some systems log the true outcome of a request later (a chargeback, a click, a human review):
an event named like `label`, `feedback`, `ground_truth`, `outcome` or `actual`, carrying the
same request_id and the true value under a key such as `label`, `true_label`, `ground_truth`,
`actual`, `y_true`, `target`, `outcome` or `is_fraud`. Each prediction line (a line with a
model_version and a prediction) is joined to the latest label of its request_id:

* both numbers, the label 0/1 and the prediction in [0, 1] (a score): correct when
  (prediction ≥ 0.5) equals the label;
* a numeric label that is not 0/1: the absolute error (mean_abs_error);
* otherwise the texts compared case-insensitively (true/false and 1/0 are the same).

Labels are looked up wherever they are in the log, not only inside --since/--until: a label
arrives after its prediction, which is what makes the signal lag. A version whose predictions
have no labels yet shows none, which is not the same as zero accuracy.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ..investigations.filters import Filters, event_names, pct_text, run, where_sql
from ..result import Result

if TYPE_CHECKING:
    import duckdb

    from ..engines import DuckDBEngine

LABEL_EVENT = re.compile(
    r"(^|[^a-z])(label|labels|labelled|labeled|feedback|ground_?truth|truth|outcome|actual|"
    r"chargeback)([^a-z]|$)", re.IGNORECASE)
LABEL_KEYS = ("label", "true_label", "ground_truth", "groundTruth", "actual", "actual_label",
              "y_true", "target", "truth", "outcome", "is_fraud", "true_value", "correct_label")
SCORE_THRESHOLD = 0.5

ACCURACY_SQL = """
WITH labels AS (
    SELECT request_id,
           arg_max(truth, ts) AS truth,
           max(ts) AS label_ts
    FROM (
        SELECT request_id, ts, coalesce({truth_keys}) AS truth
        FROM events
        WHERE list_contains($label_events, event) AND request_id IS NOT NULL
    )
    WHERE truth IS NOT NULL
    GROUP BY request_id
),
predictions AS (
    SELECT request_id, ts, model_id, model_version,
           CASE lower(trim(prediction)) WHEN 'true' THEN '1' WHEN 'false' THEN '0'
                ELSE trim(prediction) END AS predicted
    FROM events
    WHERE {where}
      AND model_version IS NOT NULL AND prediction IS NOT NULL AND request_id IS NOT NULL
      AND NOT list_contains($label_events, event)
),
joined AS (
    SELECT p.model_id, p.model_version, p.ts, p.predicted, l.label_ts,
           CASE lower(trim(l.truth)) WHEN 'true' THEN '1' WHEN 'false' THEN '0'
                ELSE trim(l.truth) END AS truth
    FROM predictions p LEFT JOIN labels l USING (request_id)
),
judged AS (
    SELECT *, TRY_CAST(truth AS DOUBLE) AS truth_num, TRY_CAST(predicted AS DOUBLE) AS pred_num
    FROM joined
)
SELECT model_id, model_version,
       count(*) AS predictions,
       count(truth) AS labelled,
       count(*) FILTER (WHERE truth IS NOT NULL AND (
           CASE WHEN truth_num IN (0, 1) AND pred_num BETWEEN 0 AND 1
                THEN (pred_num >= $threshold) = (truth_num = 1)
                WHEN truth_num IS NOT NULL AND pred_num IS NOT NULL AND truth_num NOT IN (0, 1)
                THEN NULL
                ELSE lower(predicted) = lower(truth) END)) AS correct,
       count(*) FILTER (WHERE truth_num IS NOT NULL AND pred_num IS NOT NULL
                        AND truth_num NOT IN (0, 1)) AS regression,
       avg(abs(pred_num - truth_num)) FILTER (WHERE truth_num NOT IN (0, 1)) AS mean_abs_error,
       median(epoch(label_ts) - epoch(ts)) FILTER (WHERE truth IS NOT NULL) AS delay_s,
       min(ts) AS first_prediction,
       max(label_ts) AS last_label
FROM judged
GROUP BY model_id, model_version
ORDER BY model_id, model_version
"""

COLUMNS = ["model_id", "model_version", "predictions", "labelled", "labelled_pct", "accuracy_pct",
           "mean_abs_error", "label_delay", "last_label", "signal"]


def label_events(con: duckdb.DuckDBPyConnection | DuckDBEngine) -> list[str]:
    return sorted(name for name in event_names(con) if LABEL_EVENT.search(name))


def accuracy_by_version(con: duckdb.DuckDBPyConnection | DuckDBEngine, filters: Filters) -> Result | None:
    """Accuracy of each model version against delayed labels, or None when no label events
    are logged (or none of their request_ids has a prediction in the filters)."""
    events = label_events(con)
    if not events:
        return None
    where, params = where_sql(filters)
    truth_keys = ", ".join(f"json_extract_string(attrs, '$.\"{key}\"')" for key in LABEL_KEYS)
    fetched = run(con, ACCURACY_SQL.format(where=where, truth_keys=truth_keys),
                  {**params, "label_events": events, "threshold": SCORE_THRESHOLD}, filters).fetchall()
    rows = []
    for (model_id, version, predictions, labelled, correct, regression, mae, delay_s, _first,
         last_label) in fetched:
        classified = labelled - regression
        accuracy = 100.0 * correct / classified if classified else None
        rows.append((model_id, version, predictions, labelled,
                     100.0 * labelled / predictions if predictions else None, accuracy,
                     mae if regression else None, delay_s, last_label, "lagging"))
    if not any(r[3] for r in rows):
        return None
    notes = [
        f"lagging: labels ({', '.join(events)} events) arrive after the predictions they judge; "
        "recent predictions have fewer labels yet, so accuracy trails what is happening now",
        f"correct: score ≥ {SCORE_THRESHOLD} against a 0/1 label, else the same text; "
        "mean_abs_error for numeric labels that are not 0/1; label_delay: median seconds from "
        "prediction to label",
    ]
    judged = [r for r in rows if r[5] is not None and r[3] >= 30]
    if len(judged) >= 2:
        worst = min(judged, key=lambda r: r[5])
        best = max(judged, key=lambda r: r[5])
        if best[5] - worst[5] >= 5:
            notes.append(f"{worst[0]} {worst[1]}: accuracy {pct_text(worst[5])} against "
                         f"{pct_text(best[5])} for {best[0]} {best[1]} (lagging, "
                         f"{worst[3]:,} labels)")
    return Result("Accuracy by model version (lagging: delayed labels)", COLUMNS, rows, notes=notes,
                  units={"labelled_pct": "%", "accuracy_pct": "%", "label_delay": "s"})
