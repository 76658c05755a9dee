"""The pieces of diagnose on data small enough to check by hand: change points, episodes, the
shift-share decomposition, accuracy from delayed labels."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from investigation_fixtures import ingest_records, iso

from mlinvestigate.diagnosis.changepoints import Rule, episodes, segment, two_proportion_z
from mlinvestigate.diagnosis.contrast import Contrast, Counts, Dimension, decompose
from mlinvestigate.diagnosis.labels import accuracy_by_version
from mlinvestigate.investigations.filters import Filters

RNG = np.random.default_rng(5)


def test_one_step_in_a_rate_is_found_at_its_interval():
    n = RNG.poisson(40, 200).astype(float)
    k = RNG.binomial(n.astype(int), np.where(np.arange(200) >= 120, 0.12, 0.01)).astype(float)
    segments = segment("binomial", k, n)
    assert [s.start for s in segments] == [0, 120]
    assert segments[0].level == pytest.approx(0.01, abs=0.005)
    assert segments[1].level == pytest.approx(0.12, abs=0.02)


def test_noise_is_not_cut():
    for seed in range(5):
        rng = np.random.default_rng(seed)
        n = rng.poisson(30, 240).astype(float)
        k = rng.binomial(n.astype(int), 0.02).astype(float)
        assert len(segment("binomial", k, n)) == 1
        counts = rng.poisson(30, 240).astype(float)
        assert len(segment("poisson", counts, np.ones(240))) == 1


def test_overdispersed_noise_is_not_cut_either():
    # Rates that wander from interval to interval (beta-binomial), as real traffic does.
    rng = np.random.default_rng(3)
    n = np.full(240, 2000.0)
    k = rng.binomial(2000, rng.beta(20, 980, 240)).astype(float)
    assert len(segment("binomial", k, n)) == 1


def test_a_mean_shift_is_found():
    n = np.full(100, 25.0)
    means = np.where(np.arange(100) >= 60, 0.7, 0.9) + RNG.normal(0, 0.02, 100)
    segments = segment("gaussian", means * n, n)
    assert [s.start for s in segments] == [0, 60]


def test_episode_onset_peak_and_recovery():
    n = np.full(90, 100.0)
    rate = np.full(90, 0.01)
    rate[30:50] = 0.2
    rate[40:42] = 0.5
    k = rate * n
    found = episodes(segment("binomial", k, n), Rule("up", 0.01, 2.0), rate, n)
    assert len(found) == 1
    episode = found[0]
    assert (episode.onset, episode.recovery, episode.peak) == (30, 50, 40)
    assert episode.before == pytest.approx(0.01)


def test_trouble_already_under_way_at_the_start():
    n = np.full(60, 100.0)
    rate = np.where(np.arange(60) < 20, 0.3, 0.01)
    found = episodes(segment("binomial", rate * n, n), Rule("up", 0.01, 2.0), rate, n)
    assert [(e.onset, e.recovery) for e in found] == [(None, 20)]


def test_a_small_rise_is_not_trouble():
    n = np.full(100, 1000.0)
    rate = np.where(np.arange(100) >= 50, 0.015, 0.01)  # significant, but +0.5 points only
    found = episodes(segment("binomial", rate * n, n), Rule("up", 0.01, 2.0), rate, n)
    assert found == []


def test_two_proportion_z():
    assert two_proportion_z(10, 1000, 10, 1000) == 0
    assert two_proportion_z(10, 1000, 100, 1000) > 8
    assert two_proportion_z(0, 0, 5, 10) == 0


def _contrast(values: dict[str, tuple[list[float], list[float]]]) -> Contrast:
    """One scope, one dimension; per value (n per interval, errors per interval)."""
    size = len(next(iter(values.values()))[0])
    by_value = {}
    for value, (n, errors) in values.items():
        arrays = {name: np.zeros(size) for name in ("n", "errors", "cat_errors", "slow", "timed",
                                                     "conf_sum", "conf_n")}
        arrays["n"], arrays["errors"] = np.array(n, float), np.array(errors, float)
        by_value[value] = Counts(arrays)
    start = datetime(2026, 1, 1)
    return Contrast(0, timedelta(minutes=1), size, [Dimension("d", "input", "d")], {},
                    {(("svc", "m"), "d"): by_value}, None, None, start, start + timedelta(minutes=size))


def test_decomposition_adds_up_and_tells_mix_from_rate():
    # "big" was always slow/failing at 50 %; its share goes from 10 % to 40 %.
    contrast = _contrast({
        "big": ([100, 400], [50, 200]),
        "small": ([900, 600], [9, 6]),
    })
    dec = decompose(contrast, ("svc", "m"), contrast.dimensions[0], "errors", slice(0, 1), slice(1, 2))
    assert dec is not None
    assert dec.total_before == pytest.approx(59 / 1000) and dec.total_after == pytest.approx(206 / 1000)
    assert sum(s.mix + s.rate for s in dec.shares) == pytest.approx(dec.change)
    assert dec.mix == pytest.approx(dec.change)  # no value's own rate changed
    # One value getting worse with the same shares is a rate effect, not a mix one.
    contrast = _contrast({"pod-1": ([500, 500], [5, 150]), "pod-2": ([500, 500], [5, 5])})
    dec = decompose(contrast, ("svc", "m"), contrast.dimensions[0], "errors", slice(0, 1), slice(1, 2))
    assert dec is not None
    assert dec.mix == pytest.approx(0.0)
    bad = next(s for s in dec.shares if s.value == "pod-1")
    assert bad.rate == pytest.approx(dec.change)


START = datetime(2026, 2, 1, 8, 0)


def _labelled(tmp_path: Path, with_labels: bool = True):
    records = []
    for i in range(200):
        version = "v1" if i < 100 else "v2"
        ts = START + timedelta(seconds=10 * i)
        score = 0.9 if i % 2 else 0.1
        records.append({"timestamp": iso(ts), "service": "scorer", "event": "prediction_success",
                        "request_id": f"q{i}", "model_id": "churn", "model_version": version,
                        "latency_ms": 5.0, "prediction": score})
        if with_labels and i % 4 != 3:  # three quarters get a label
            # v1 right 9 times in 10, v2 right half the time.
            right = (i % 10 != 0) if version == "v1" else (i % 4 in (0, 1))
            truth = int(score > 0.5) if right else int(score < 0.5)
            records.append({"timestamp": iso(ts + timedelta(minutes=30)), "service": "feedback",
                            "event": "ground_truth", "request_id": f"q{i}", "is_fraud": truth})
    records.append({"timestamp": iso(START), "service": "scorer", "event": "prediction_success",
                    "request_id": "text", "model_id": "intent", "model_version": "t1",
                    "prediction": "refund", "latency_ms": 3.0})
    if with_labels:
        records.append({"timestamp": iso(START + timedelta(hours=1)), "service": "feedback",
                        "event": "feedback", "request_id": "text", "label": "Refund"})
    return ingest_records(tmp_path / "labels.jsonl", records)


def test_accuracy_by_version_from_delayed_labels(tmp_path: Path):
    con = _labelled(tmp_path)
    result = accuracy_by_version(con, Filters())
    assert result is not None
    rows = {r["model_version"]: r for r in result.records()}
    assert rows["v1"]["predictions"] == 100 and rows["v1"]["labelled"] == 75
    v1_right = sum(1 for i in range(100) if i % 4 != 3 and i % 10 != 0)
    assert rows["v1"]["accuracy_pct"] == pytest.approx(100 * v1_right / 75)
    v2_right = sum(1 for i in range(100, 200) if i % 4 in (0, 1))
    assert rows["v2"]["accuracy_pct"] == pytest.approx(100 * v2_right / 75)
    assert rows["v1"]["label_delay"] == pytest.approx(1800)
    assert rows["t1"]["accuracy_pct"] == 100  # text labels compare case-insensitively
    assert {r["signal"] for r in rows.values()} == {"lagging"}
    assert any("lagging" in note for note in result.notes)
    # Labels arrive after --until: still joined to the predictions inside the window.
    window = accuracy_by_version(con, Filters(until=START + timedelta(minutes=5)))
    assert window is not None
    assert {r["model_version"]: r["labelled"] for r in window.records()}["v1"] == 23


def test_summary_shows_accuracy_by_version_when_labels_are_logged(tmp_path: Path):
    from mlinvestigate.investigations.summary import summary

    labelled = summary(_labelled(tmp_path), Filters())
    assert len(labelled.sections) == 1
    rows = {r["model_version"]: r for r in labelled.sections[0].records()}
    assert rows["v1"]["predictions"] == 100 and rows["v1"]["labelled"] == 75
    unlabelled = tmp_path / "none"
    unlabelled.mkdir()
    assert summary(_labelled(unlabelled, with_labels=False), Filters()).sections == []


def test_no_labels_no_accuracy(tmp_path: Path):
    assert accuracy_by_version(_labelled(tmp_path, with_labels=False), Filters()) is None
