"""Saved baselines: drift against a baseline equals drift against the same window."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path

import pytest
from test_drift_sample_db import sample_db

from mlinvestigate import store
from mlinvestigate.drift.baseline import delete_baseline, list_baselines, load_baseline, save_baseline
from mlinvestigate.drift.compare import drift
from mlinvestigate.drift.measures import Options
from mlinvestigate.drift.timeline import timeline
from mlinvestigate.drift.windows import Window, choose_windows, time_range
from mlinvestigate.errors import UsageError
from mlinvestigate.investigations.filters import resolve_filters

FEATURES = ["features.amount", "confidence", "features.merchant_category", "status_code"]


@pytest.fixture(scope="module")
def writable(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("baseline") / "copy.duckdb"
    shutil.copy(sample_db(), path)
    return path


def test_drift_against_a_baseline_equals_the_windowed_result(writable: Path) -> None:
    con = store.connect(str(writable))
    try:
        filters = resolve_filters(con, model="fraud")
        choice = choose_windows(con, filters)
        windowed = drift(con, filters, choice, Options(), FEATURES)
        save_baseline(con, "fraud-first-hour", filters, choice.reference, Options(), FEATURES)
        saved, stored_filters = load_baseline(con, "fraud-first-hour")
        against = drift(con, filters, choice, Options(), FEATURES, baseline=saved,
                        baseline_name="fraud-first-hour")
        first, last = time_range(con, filters)
        every = timedelta(minutes=20)
        span = Window("current", first, None)
        per_window = timeline(con, filters, choice.reference, span, first, last, every, Options(), FEATURES)
        per_baseline = timeline(con, filters, None, span, first, last, every, Options(), FEATURES,
                                baseline=saved, baseline_name="fraud-first-hour")
    finally:
        con.close()
    assert stored_filters["model"] == "fraud"
    assert sorted(windowed.rows) == sorted(against.rows)
    assert len(windowed.rows) == len(FEATURES)
    assert per_window.rows == per_baseline.rows


def test_list_replace_and_delete(writable: Path) -> None:
    con = store.connect(str(writable))
    try:
        filters = resolve_filters(con)
        reference = choose_windows(con, filters).reference
        save_baseline(con, "b1", filters, reference, Options(), ["latency_ms"])
        with pytest.raises(UsageError):
            save_baseline(con, "b1", filters, reference, Options(), ["latency_ms"])
        save_baseline(con, "b1", filters, reference, Options(), ["latency_ms"], replace=True)
        assert "b1" in [r[0] for r in list_baselines(con).rows]
        delete_baseline(con, "b1")
        assert "b1" not in [r[0] for r in list_baselines(con).rows]
        with pytest.raises(UsageError):
            load_baseline(con, "b1")
        with pytest.raises(UsageError):
            save_baseline(con, "bad name", filters, reference, Options())
        with pytest.raises(UsageError):
            save_baseline(con, "s", filters, reference, Options(binning="sturges-combined"))
    finally:
        con.close()
