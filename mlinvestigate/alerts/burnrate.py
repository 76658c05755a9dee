"""Multi-window, multi-burn-rate SLO alerts (Google SRE workbook, "Alerting on SLOs").

An SLO with objective 99.9 % has an error budget of 0.1 % of requests over its period
(30 days by default). The burn rate of a window is its bad-request ratio over the budget
ratio: burning at 1 spends the budget in exactly one period. Each preset pages (or opens a
ticket) when both a long and a short window burn faster than the rate that would spend the
given share of the budget in the long window:

    factor = budget share × period / long window          (30 days: 14.4, 6, 3, 1)

The long window makes the alert significant, the short one makes it reset within minutes
of the incident's end. Each preset becomes an ordinary composite rule,
`burn(bad, objective)[long] > factor and burn(bad, objective)[short] > factor`, so the
state machine and the output treat it like any other rule.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import timedelta

from .expr import Both, Condition, Signal, Threshold, duration_text

DEFAULT_PERIOD = timedelta(days=30)


@dataclass(frozen=True)
class Preset:
    severity: str
    long: timedelta
    short: timedelta
    budget_share: float
    """Share of the period's budget spent in `long` at the alerting burn rate."""

    def factor(self, period: timedelta) -> float:
        return round(self.budget_share * (period / self.long), 10)


PRESETS: tuple[Preset, ...] = (
    Preset("page", timedelta(hours=1), timedelta(minutes=5), 0.02),
    Preset("page", timedelta(hours=6), timedelta(minutes=30), 0.05),
    Preset("ticket", timedelta(days=1), timedelta(hours=2), 0.10),
    Preset("ticket", timedelta(days=3), timedelta(hours=6), 0.10),
)


@dataclass(frozen=True)
class SloAlert:
    """One preset of an SLO, ready to become a rule."""

    suffix: str
    """"burn 1h/5m > 14.4": appended to the SLO's name."""
    severity: str
    condition: Condition


def slo_alerts(bad: Signal, objective: float, period: timedelta = DEFAULT_PERIOD) -> list[SloAlert]:
    """The four preset alerts of an SLO on the ratio signal `bad` (error_rate or slow_rate)."""
    burn = Signal("burn", objective=objective, inner=bad)
    alerts = []
    for preset in PRESETS:
        factor = preset.factor(period)
        condition = Both(Threshold(replace(burn, window=preset.long), ">", factor),
                         Threshold(replace(burn, window=preset.short), ">", factor))
        suffix = f"burn {duration_text(preset.long)}/{duration_text(preset.short)} > {factor:g}"
        alerts.append(SloAlert(suffix, preset.severity, condition))
    return alerts
