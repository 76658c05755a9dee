"""`mlinv drift --every`: per-interval drift and the onset of the generator's injected drift."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from test_drift_sample_db import DRIFT_AT, sample_con

from mlinvestigate.drift.measures import Options
from mlinvestigate.drift.timeline import timeline
from mlinvestigate.drift.windows import Window, choose_windows, time_range
from mlinvestigate.errors import UsageError
from mlinvestigate.investigations.filters import resolve_filters
from mlinvestigate.result import Result

FEATURES = ["features.amount", "confidence", "features.merchant_category", "features.time_since_last"]


def run(every: timedelta, model: str | None = "fraud", options: Options | None = None,
        wanted: list[str] | None = FEATURES) -> Result:
    con = sample_con()
    try:
        filters = resolve_filters(con, model=model)
        first, last = time_range(con, filters)
        reference = choose_windows(con, filters).reference
        return timeline(con, filters, reference, Window("current", first, None), first, last, every,
                        options or Options(), wanted)
    finally:
        con.close()


@pytest.fixture(scope="module")
def ten_minutes() -> dict[str, dict[str, Any]]:
    result = run(timedelta(minutes=10))
    return {r["feature"]: r for r in result.records()} | {"_result": result}  # type: ignore[dict-item]


@pytest.mark.parametrize("every", [timedelta(minutes=5), timedelta(minutes=10)])
def test_amount_onset_is_within_one_interval(every: timedelta) -> None:
    rows = {r["feature"]: r for r in run(every, wanted=["features.amount"]).records()}
    onset = rows["features.amount"]["onset"]
    assert onset is not None
    assert abs(onset - DRIFT_AT) <= every, onset
    assert rows["features.amount"]["verdict"] == "significant"


def test_confidence_onset(ten_minutes: dict[str, Any]) -> None:
    onset = ten_minutes["confidence"]["onset"]
    assert onset is not None and abs(onset - DRIFT_AT) <= timedelta(minutes=10)


@pytest.mark.parametrize("name", ["features.merchant_category", "features.time_since_last"])
def test_stable_features_have_no_onset(ten_minutes: dict[str, Any], name: str) -> None:
    assert ten_minutes[name]["onset"] is None
    assert ten_minutes[name]["verdict"] == "none"


def test_sentence_and_per_interval_table(ten_minutes: dict[str, Any]) -> None:
    result: Result = ten_minutes["_result"]
    sentence = next(n for n in result.notes if n.startswith("features.amount drifted from"))
    assert "PSI" in sentence and "KS" in sentence
    section = result.sections[0]
    amount = [r for r in section.records() if r["feature"] == "features.amount"]
    assert len(amount) == 24  # four hours of 10-minute intervals
    before = [r["psi"] for r in amount if r["interval_start"] + timedelta(minutes=10) <= DRIFT_AT]
    assert max(before) < 0.1  # quiet until the drift
    assert len(ten_minutes["features.amount"]["trend"]) == 24


def test_sturges_combined_cannot_be_used_per_interval() -> None:
    with pytest.raises(UsageError):
        run(timedelta(minutes=10), options=Options(binning="sturges-combined"))


def test_too_many_intervals() -> None:
    with pytest.raises(UsageError):
        run(timedelta(seconds=1))


def test_chi2_verdicts_per_interval() -> None:
    # Per interval the p-values are skipped for speed, except the one the verdict is made of.
    result = run(timedelta(minutes=30), options=Options(method="chi2"),
                 wanted=["features.merchant_category", "model_version"])
    rows = {r["feature"]: r for r in result.records()}
    assert rows["model_version"]["verdict"] in ("moderate", "significant")
    assert rows["features.merchant_category"]["verdict"] == "none"


def test_long_per_interval_table_is_left_out_without_feature() -> None:
    result = run(timedelta(minutes=2), model=None, wanted=None)  # 120 intervals, every feature
    changed = [r for r in result.records() if r["verdict"] in ("moderate", "significant")]
    assert len(changed) * 120 > 200
    assert not result.sections
    note = next(n for n in result.notes if n.startswith("Per-interval values of the"))
    assert f"--feature {changed[0]['feature']}" in note
