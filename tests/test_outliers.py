"""`mlinv outliers`: the review queue and its export."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from test_drift_sample_db import at, memory_db, sample_con, write_logs

from mlinvestigate.investigations.filters import resolve_filters
from mlinvestigate.outliers import find_outliers, write_queue


def test_sample_queue_has_reasons_and_request_ids(tmp_path: Path) -> None:
    con = sample_con()
    try:
        result = find_outliers(con, resolve_filters(con, limit=12))
    finally:
        con.close()
    records = result.records()
    assert [r["rank"] for r in records] == list(range(1, 13))
    assert {r["reason"] for r in records} >= {"low confidence", "far input"}
    assert len({r["request_id"] for r in records}) == len(records)
    far = [r for r in records if r["reason"] == "far input"]
    assert far and "features.amount" in far[0]["detail"]
    assert all(0 <= r["score"] <= 1 for r in records)
    path = tmp_path / "queue.jsonl"
    assert write_queue(result, str(path)) == 12
    first = json.loads(path.read_text().splitlines()[0])
    assert {"request_id", "ts", "version", "reason", "score", "input_hash"} <= set(first)
    assert first["ts"].endswith("Z")


def test_probabilities_give_entropy_and_margin(tmp_path: Path) -> None:
    records: list[dict[str, Any]] = []
    for i in range(300):
        probs = [0.9, 0.05, 0.05] if i % 50 else [0.4, 0.3, 0.3]
        if i == 123:
            probs = [0.5, 0.495, 0.005]
        records.append({"timestamp": at(i), "service": "s", "event": "prediction_success", "model_id": "m",
                        "request_id": f"r{i}", "confidence": max(probs),
                        "probabilities": {"a": probs[0], "b": probs[1], "c": probs[2]},
                        "features": {"kind": "rare" if i == 250 else ("x" if i % 2 else "y")}})
    con = memory_db(write_logs(tmp_path / "p.jsonl", records))
    result = find_outliers(con, resolve_filters(con, limit=10))
    by_reason: dict[str, list[dict[str, Any]]] = {}
    for r in result.records():
        by_reason.setdefault(r["reason"], []).append(r)
    assert by_reason["high entropy"][0]["score"] > 0.99
    assert by_reason["small margin"][0]["request_id"] == "r123"
    assert math.isclose(by_reason["small margin"][0]["score"], 0.995, abs_tol=1e-9)
    assert by_reason["rare category"][0]["request_id"] == "r250"
    assert "features.kind" in by_reason["rare category"][0]["detail"]
