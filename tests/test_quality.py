"""`mlinv quality`: missing values, type mismatches, ranges and schema events over time."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from test_drift_sample_db import T0, at, memory_db, sample_con, write_logs

from mlinvestigate.errors import UsageError
from mlinvestigate.investigations.filters import resolve_filters
from mlinvestigate.quality import parse_ranges, quality_report


def rows_of(result: Any) -> dict[str, dict[str, Any]]:
    return {r["field"]: r for r in result.records()}


def test_sample_ranges_and_counts() -> None:
    con = sample_con()
    try:
        result = quality_report(con, resolve_filters(con), ranges=parse_ranges(["features.amount=0:10000"]))
        negative = con.execute("SELECT count(*) FROM events WHERE TRY_CAST(attrs->>'$.features.amount' "
                               "AS DOUBLE) < 0 OR TRY_CAST(attrs->>'$.features.amount' AS DOUBLE) > 10000"
                               ).fetchone()[0]
    finally:
        con.close()
    rows = rows_of(result)
    amount = rows["features.amount"]
    assert amount["out_of_range"] == negative > 0  # validation failures log negative amounts
    assert amount["verdict"] in ("warn", "bad")
    assert amount["range"].startswith("0..10000")
    assert rows["features.merchant_category"]["verdict"] == "ok"
    assert rows["features.merchant_category"]["missing_pct"] == 0


def logs_with_rename(tmp_path: Path) -> Path:
    records = []
    for i in range(600):
        features: dict[str, Any] = {"score": 0.5 + (i % 10) / 100}
        if i < 300:
            features["customer_age"] = 20 + i % 50
        else:
            features["age"] = 20 + i % 50
        if i >= 450:
            features["score"] = "high"  # a type change
        if i % 100 == 7:
            features["score"] = None  # JSON null
        records.append({"timestamp": at(i * 6), "service": "scorer", "event": "prediction_success",
                        "model_id": "m", "model_version": "v1", "request_id": f"r{i}",
                        "features": features})
    return write_logs(tmp_path / "rename.jsonl", records)


def test_rename_shows_as_went_missing_and_appeared(tmp_path: Path) -> None:
    con = memory_db(logs_with_rename(tmp_path))
    result = quality_report(con, resolve_filters(con), step=timedelta(minutes=5))
    events = [r for s in result.sections if s.title.startswith("Schema") for r in s.records()]
    by_change = {(e["field"], e["change"]): e for e in events}
    missing = by_change[("features.customer_age", "went missing")]
    appeared = by_change[("features.age", "appeared")]
    assert missing["at"] == appeared["at"] == T0 + timedelta(minutes=30)
    assert missing["service"] == "scorer" and missing["model_version"] == "v1"
    changed = by_change[("features.score", "type changed")]
    assert changed["at"] == T0 + timedelta(minutes=45) and changed["detail"] == "number → string"
    rows = rows_of(result)
    assert rows["features.customer_age"]["verdict"] == "bad"
    assert rows["features.customer_age"]["missing_pct"] == pytest.approx(50.0)
    assert rows["features.score"]["type_mismatch"] == 150 - 1  # one of the strings' rows holds a null
    assert rows["features.score"]["null_pct"] == pytest.approx(100 * 6 / 600)


def test_nan_is_counted(tmp_path: Path) -> None:
    logs = tmp_path / "nan.jsonl"
    lines = [f'{{"timestamp": "{at(i)}", "event": "p", "features": {{"x": {"NaN" if i % 10 == 0 else i}}}}}'
             for i in range(200)]
    logs.write_text("\n".join(lines) + "\n")
    row = rows_of(quality_report(memory_db(logs), resolve_filters(memory_db(logs))))["features.x"]
    assert row["nan_inf"] == 20 and row["verdict"] != "ok"


@pytest.mark.parametrize("text", ["features.amount", "x=1", "x=a:b", "x=5:1", "bad'name=0:1"])
def test_bad_ranges(text: str) -> None:
    with pytest.raises(UsageError):
        parse_ranges([text])


def test_json_form_is_plain_data(tmp_path: Path) -> None:
    from mlinvestigate.output import to_text

    con = memory_db(logs_with_rename(tmp_path))
    text = to_text(quality_report(con, resolve_filters(con)), "json")
    assert isinstance(json.loads(text), list)
