"""The alert state machine and the burn-rate arithmetic against the shared reference vectors
(reference-vectors.md §4.7 and §4.8), plus the three-valued logic and baselines the
evaluator builds on."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlinvestigate.alerts import state
from mlinvestigate.alerts.burnrate import PRESETS, slo_alerts
from mlinvestigate.alerts.conditions import _and, _or, trailing_stats
from mlinvestigate.alerts.expr import Signal
from mlinvestigate.alerts.signals import additive_value, rolling_sum

# --------------------------------------------------------------------------- §4.7

CONDITION = [0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 1, 0]
MINUTES = [60.0 * t for t in range(13)]
STATE_TABLE = {
    # (for, keep_firing_for) in minutes → states at t = 0 … 12
    (0, 0): "I F F F F I F I I I I F I",
    (3, 0): "I P P P F I P I I I I P I",
    (3, 2): "I P P P F F F F F I I P I",
    (0, 2): "I F F F F F F F F I I F F",
}
_NAMES = {"I": state.INACTIVE, "P": state.PENDING, "F": state.FIRING}


@pytest.mark.parametrize(("for_m", "keep_m"), list(STATE_TABLE))
def test_prometheus_state_table(for_m: int, keep_m: int) -> None:
    states = state.replay([bool(c) for c in CONDITION], MINUTES, for_m * 60.0, keep_m * 60.0)
    assert states == [_NAMES[s] for s in STATE_TABLE[(for_m, keep_m)].split()]


def test_keep_firing_clock_restarts_at_the_first_false_evaluation() -> None:
    """§4.7: in the for 3m / keep 2m row, t = 6 clears KeepFiringSince; the clock restarts at
    t = 7 and the alert resolves at t = 9."""
    states = state.replay([bool(c) for c in CONDITION], MINUTES, 180.0, 120.0)
    assert states[8] == state.FIRING and states[9] == state.INACTIVE
    episode = state.episodes(states)[0]
    assert (episode.active, episode.fired, episode.ended) == (1, 4, 9)


def test_a_pending_alert_is_dropped_without_firing() -> None:
    states = state.replay([bool(c) for c in CONDITION], MINUTES, 180.0)
    dropped = state.episodes(states)[1]
    assert (dropped.active, dropped.fired, dropped.ended) == (6, None, 7)
    assert state.episodes(states)[-1] == state.Episode(11, None, 12)


@given(st.lists(st.booleans(), max_size=60), st.integers(0, 5), st.integers(0, 5))
def test_state_machine_invariants(conditions: list[bool], for_steps: int, keep_steps: int) -> None:
    states = state.replay(conditions, [float(i) for i in range(len(conditions))], for_steps, keep_steps)
    for i, (condition, current) in enumerate(zip(conditions, states, strict=True)):
        if condition:
            assert current != state.INACTIVE  # a true condition is always pending or firing
        else:
            assert current != state.PENDING  # a false one drops a pending alert at once
            if current == state.FIRING:  # only keep_firing_for holds a firing alert
                assert keep_steps > 0 and i > 0 and states[i - 1] == state.FIRING
    for episode in state.episodes(states):
        if episode.fired is not None:
            assert episode.fired - episode.active >= for_steps


# --------------------------------------------------------------------------- §4.8

BUDGET = 0.001  # SLO 99.9 %


def _burn(minutes: int = 700) -> tuple[np.ndarray, np.ndarray]:
    """1000 requests a minute; 0.05 % errors, 2 % in minutes 600–659 (as fractional counts)."""
    total = np.full(minutes, 1000.0)
    bad = np.full(minutes, 0.5)
    bad[600:660] = 20.0
    return bad, total


def _window_burn(width: int) -> np.ndarray:
    """Burn rate at minute m over minutes m−width+1 … m (first value at m = width − 1)."""
    bad, total = _burn()
    signal = Signal("burn", objective=1 - BUDGET, inner=Signal("error_rate"))
    burn = additive_value(signal, rolling_sum(bad, width), rolling_sum(total, width), width * 60.0)
    return np.concatenate((np.full(width - 1, np.nan), burn))


@pytest.mark.parametrize(("minute", "burn_5m", "burn_1h"), [
    (603, 16.1, 1.80), (640, 20.0, 13.82), (642, 20.0, 14.47), (660, 16.1, 19.67), (661, 12.2, 19.35),
    (676, 0.5, 14.5),
])
def test_burn_rates_of_the_reference_run(minute: int, burn_5m: float, burn_1h: float) -> None:
    assert _window_burn(5)[minute] == pytest.approx(burn_5m, abs=0.05)
    assert _window_burn(60)[minute] == pytest.approx(burn_1h, abs=0.05)


def test_page_fires_at_642_and_resets_at_661() -> None:
    short, long = _window_burn(5), _window_burn(60)
    with np.errstate(invalid="ignore"):
        page = _and((long > 14.4).astype(float), (short > 14.4).astype(float))
        alone = long > 14.4
    times = [60.0 * m for m in range(len(page))]
    states = state.replay((page == 1).tolist(), times)
    episode = state.episodes(states)[0]
    assert (episode.fired, episode.ended) == (642, 661)  # 43.2 min theory → minute 642
    lone = state.episodes(state.replay(alone.tolist(), times))[0]
    assert (lone.fired, lone.ended - 1) == (642, 676)  # 17 minutes of stale paging
    with np.errstate(invalid="ignore"):
        assert not np.any(_window_burn(360) > 6)  # the 6 h / 30 m page never fires
    assert np.nanmax(_window_burn(360)) == pytest.approx(3.75)


def test_presets_for_a_30_day_period() -> None:
    period = timedelta(days=30)
    assert [p.factor(period) for p in PRESETS] == [14.4, 6.0, 3.0, 1.0]
    assert [p.severity for p in PRESETS] == ["page", "page", "ticket", "ticket"]
    texts = [a.condition.text() for a in slo_alerts(Signal("error_rate"), 0.999)]
    assert texts[0] == "burn(error_rate, 99.9%)[1h] > 14.4 and burn(error_rate, 99.9%)[5m] > 14.4"
    assert texts[3] == "burn(error_rate, 99.9%)[3d] > 1 and burn(error_rate, 99.9%)[6h] > 1"
    assert [a.suffix for a in slo_alerts(Signal("error_rate"), 0.999, timedelta(days=28))][0] == \
        "burn 1h/5m > 13.44"


# --------------------------------------------------------------------------- building blocks

KLEENE = [1.0, 0.0, np.nan]


@pytest.mark.parametrize("a", KLEENE)
@pytest.mark.parametrize("b", KLEENE)
def test_three_valued_logic(a: float, b: float) -> None:
    def value(x: float) -> bool | None:
        return None if np.isnan(x) else bool(x)

    x, y = value(a), value(b)
    both = False if False in (x, y) else (None if None in (x, y) else True)
    either = True if True in (x, y) else (None if None in (x, y) else False)
    assert value(_and(np.array([a]), np.array([b]))[0]) == both
    assert value(_or(np.array([a]), np.array([b]))[0]) == either


def test_rolling_sum_covers_the_last_width_values() -> None:
    assert rolling_sum(np.array([1.0, 2, 3, 4, 5]), 2).tolist() == [3, 5, 7, 9]
    assert rolling_sum(np.array([1.0, 2, 3]), 1).tolist() == [1, 2, 3]


@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=1, max_size=40),
       st.integers(1, 8), st.integers(1, 4))
def test_trailing_baseline_matches_numpy(raw: list[float | None], length: int, gap: int) -> None:
    values = np.array([np.nan if v is None else v for v in raw])
    mean, std = trailing_stats(values, length, gap)
    for i in range(len(values)):
        window = values[max(0, i - gap - length + 1): max(0, i - gap + 1)]
        known = window[~np.isnan(window)]
        if len(known) >= max(3, -(-length // 2)):
            assert mean[i] == pytest.approx(known.mean(), rel=1e-6, abs=1e-6)
            assert std[i] == pytest.approx(known.std(ddof=1), rel=1e-5, abs=1e-3)
        else:
            assert np.isnan(mean[i]) and np.isnan(std[i])
