"""The alert expression language: the frozen dataclasses a rule's `expr` is parsed into
(by :mod:`.parser`) and that the evaluator walks, and their canonical text.

Every value is kept in the signal's base unit (milliseconds for latency, a ratio 0–1 for
rates), so the evaluator never sees "%" or "ms".
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import timedelta
from types import UnionType

# --------------------------------------------------------------------------- the catalogue

NUMERIC_COLUMNS: dict[str, str] = {"latency_ms": "ms", "confidence": "", "input_size": ""}
"""Event columns that order statistics and means accept, with their unit."""

RATIO_SIGNALS = ("error_rate", "slow_rate")
"""Signals that are a share of request lines: the only ones an SLO (burn) accepts."""

PLAIN_SIGNALS: dict[str, str] = {
    "requests": "count",
    "errors": "count",
    "throughput": "/s",
    "error_rate": "ratio",
}
"""Signals without an argument, with their unit."""

COLUMN_FUNCTIONS = ("mean", "min", "max")
PERCENTILE = re.compile(r"p(\d+(?:\.\d+)?)")

LINE_LABELS: dict[str, str] = {
    "service": "service",
    "model": "model_id",
    "model_id": "model_id",
    "version": "model_version",
    "model_version": "model_version",
}
"""Matcher labels that select request lines, and their event column."""

ERROR_LABELS: dict[str, str] = {"category": "error_category", "error_type": "error_type"}
"""Matcher labels that select which errors count (errors, error_rate and burn only)."""

COMPARISONS = (">", ">=", "<", "<=")

SIGNAL_HELP = ("requests, throughput, errors, error_rate, slow_rate(500ms), p50/p90/p95/p99/p99.9(col), "
               "mean/min/max(col), psi(field), burn(error_rate, 99.9%)")


class ExprError(Exception):
    """A malformed expression; `position` is the 0-based character offset of the problem."""

    def __init__(self, message: str, position: int) -> None:
        super().__init__(message)
        self.message = message
        self.position = position


@dataclass(frozen=True)
class Matcher:
    label: str
    op: str
    """"=" or "!="."""
    value: str

    def text(self) -> str:
        return f'{self.label}{self.op}"{self.value}"'


@dataclass(frozen=True)
class Signal:
    """One value per evaluation step and group: `name`, its argument, its matchers and the
    trailing window it is computed over (None: one evaluation step)."""

    name: str
    """requests, throughput, errors, error_rate, slow_rate, mean, min, max, quantile, psi, burn."""
    column: str | None = None
    """The column or field of mean/min/max/quantile/psi."""
    percentile: float | None = None
    """The percentile of "quantile" signals, as written: 99.9 for p99.9."""
    limit_ms: float | None = None
    """slow_rate's latency limit."""
    objective: float | None = None
    """burn's objective (0.999); the burned ratio is `inner`."""
    inner: Signal | None = None
    matchers: tuple[Matcher, ...] = ()
    window: timedelta | None = None

    @property
    def unit(self) -> str:
        """count, /s, ratio, ms, × (burn rate) or '' (a plain number)."""
        if self.name in PLAIN_SIGNALS:
            return PLAIN_SIGNALS[self.name]
        if self.name == "slow_rate":
            return "ratio"
        if self.name == "burn":
            return "×"
        if self.name == "psi":
            return ""
        return NUMERIC_COLUMNS.get(self.column or "", "")

    def line_matchers(self) -> tuple[Matcher, ...]:
        return tuple(m for m in self.matchers if m.label in LINE_LABELS)

    def error_matchers(self) -> tuple[Matcher, ...]:
        return tuple(m for m in self.matchers if m.label in ERROR_LABELS)

    def text(self) -> str:
        if self.name == "burn":
            assert self.inner is not None and self.objective is not None
            head = f"burn({self.inner.text()}, {number_text(round(self.objective * 100, 10))}%)"
        else:
            head = self.name
            if self.name == "quantile":
                head = f"p{number_text(self.percentile or 0)}({self.column})"
            elif self.name == "slow_rate":
                head = f"slow_rate({number_text(self.limit_ms or 0)}ms)"
            elif self.column is not None:
                head = f"{self.name}({self.column})"
            if self.matchers:
                head += "{" + ", ".join(m.text() for m in self.matchers) + "}"
        if self.window is not None:
            head += f"[{duration_text(self.window)}]"
        return head


@dataclass(frozen=True)
class Threshold:
    """`signal OP value`."""

    signal: Signal
    op: str
    value: float
    written: str = field(default="", compare=False)
    """The threshold as the rule wrote it ("2%"), for messages."""

    def text(self) -> str:
        return f"{self.signal.text()} {self.op} {self.written or value_literal(self.value, self.signal.unit)}"


@dataclass(frozen=True)
class Baseline:
    """`signal OP baseline(window) ± k sigma`: mean and standard deviation of the signal's own
    values over the trailing `window` before the current one."""

    signal: Signal
    op: str
    window: timedelta | None
    """None: the default (`DEFAULT_BASELINE`)."""
    sigmas: float
    """Signed: +3 for "+ 3 sigma", -2 for "- 2 sigma"."""

    def text(self) -> str:
        window = f"({duration_text(self.window)})" if self.window is not None else ""
        sign = "-" if self.sigmas < 0 else "+"
        return f"{self.signal.text()} {self.op} baseline{window} {sign} {number_text(abs(self.sigmas))} sigma"


@dataclass(frozen=True)
class Change:
    """`signal rises|falls P% within D`: the value now against the value D earlier."""

    signal: Signal
    direction: str
    """"rises" or "falls"."""
    percent: float
    within: timedelta

    def text(self) -> str:
        return (f"{self.signal.text()} {self.direction} {number_text(self.percent)}% "
                f"within {duration_text(self.within)}")


@dataclass(frozen=True)
class Both:
    left: Condition
    right: Condition

    def text(self) -> str:
        # `and` binds tighter than `or` and both group to the left: parentheses only where
        # the tree differs from that reading.
        return f"{_operand(self.left, Either)} and {_operand(self.right, Either | Both)}"


@dataclass(frozen=True)
class Either:
    left: Condition
    right: Condition

    def text(self) -> str:
        return f"{self.left.text()} or {_operand(self.right, Either)}"


Condition = Threshold | Baseline | Change | Both | Either
Comparison = Threshold | Baseline | Change

DEFAULT_BASELINE = timedelta(hours=1)


def _operand(condition: Condition, needs_parens: type | UnionType) -> str:
    text = condition.text()
    return f"({text})" if isinstance(condition, needs_parens) else text


def comparisons(condition: Condition) -> list[Comparison]:
    """The leaf comparisons of a condition, left to right."""
    if isinstance(condition, Both | Either):
        return comparisons(condition.left) + comparisons(condition.right)
    return [condition]


def kind_of(condition: Condition) -> str:
    """threshold, baseline, change or composite."""
    if isinstance(condition, Both | Either):
        return "composite"
    return {Threshold: "threshold", Baseline: "baseline", Change: "change"}[type(condition)]


# --------------------------------------------------------------------------- number texts


def number_text(value: float) -> str:
    """A short exact-enough text: 500, 0.25, 99.9, 1e-06."""
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def value_literal(value: float, unit: str) -> str:
    """A threshold as it would be written in a rule: 2%, 500ms, 0.25."""
    if unit == "ratio":
        return f"{number_text(round(value * 100, 12))}%"
    if unit == "ms":
        return f"{number_text(value)}ms"
    return number_text(value)


_UNITS = (("d", 86400_000_000), ("h", 3600_000_000), ("m", 60_000_000), ("s", 1_000_000), ("ms", 1000),
          ("us", 1))


def duration_text(span: timedelta) -> str:
    """A duration as rules write it, exactly: 5m, 1h30m, 90s → 1m30s, 250ms."""
    micros = span // timedelta(microseconds=1)
    if micros <= 0:
        return "0s"
    parts = []
    for unit, size in _UNITS:
        whole, micros = divmod(micros, size)
        if whole:
            parts.append(f"{whole}{unit}")
    return "".join(parts)
