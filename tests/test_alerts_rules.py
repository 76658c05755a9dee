"""Rule expressions and rule files: what parses to what, and the one-line message (file, line,
what is wrong) for everything that does not."""

from __future__ import annotations

import tomllib
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mlinvestigate.alerts.expr import (
    Baseline,
    Both,
    Change,
    Condition,
    Either,
    ExprError,
    Matcher,
    Signal,
    Threshold,
    comparisons,
)
from mlinvestigate.alerts.parser import parse
from mlinvestigate.alerts.rules import default_rules_path, load_rules, parse_rules
from mlinvestigate.errors import UsageError

ROOT = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------- expressions


def test_the_issue_examples() -> None:
    p99 = parse("p99(latency_ms) > 500ms")
    assert p99 == Threshold(Signal("quantile", column="latency_ms", percentile=99.0), ">", 500.0)
    infra = parse('error_rate{category="infrastructure"} > 2%')
    assert infra == Threshold(Signal("error_rate", matchers=(Matcher("category", "=", "infrastructure"),)),
                              ">", 0.02)
    amount = Signal("psi", column="features.amount")
    assert parse("psi(features.amount) > 0.25") == Threshold(amount, ">", 0.25)
    assert parse("p99(latency_ms)[5m] > baseline + 3 sigma") == Baseline(
        Signal("quantile", column="latency_ms", percentile=99.0, window=timedelta(minutes=5)), ">", None, 3.0)
    assert parse("error_rate rises 300% within 10m") == Change(Signal("error_rate"), "rises", 300.0,
                                                               timedelta(minutes=10))


def test_units_become_base_units() -> None:
    assert parse("p99(latency_ms) > 0.5s").value == 500.0  # type: ignore[union-attr]
    assert parse("p99.9(latency_ms) > 250").value == 250.0  # type: ignore[union-attr]
    assert parse("error_rate > 0.02").value == 0.02  # type: ignore[union-attr]
    assert parse("slow_rate(1s) > 5%") == Threshold(Signal("slow_rate", limit_ms=1000.0), ">", 0.05)
    assert parse("burn(error_rate, 99.9%)[1h] > 14.4").signal.objective == pytest.approx(0.999)  # type: ignore


def test_and_binds_tighter_than_or() -> None:
    condition = parse("requests < 5 or errors > 3 and error_rate > 1%")
    assert isinstance(condition, Either) and isinstance(condition.right, Both)
    grouped = parse("(requests < 5 or errors > 3) and error_rate > 1%")
    assert isinstance(grouped, Both) and isinstance(grouped.left, Either)
    assert grouped.text() == "(requests < 5 or errors > 3) and error_rate > 1%"
    assert [c.signal.name for c in comparisons(grouped)] == ["requests", "errors", "error_rate"]


@pytest.mark.parametrize(("text", "message", "position"), [
    ("", "empty expression", 0),
    ("error_rate > 2", "write 2% or a ratio such as 0.02", 13),
    ("p99(latency_ms) >> 5", "expected a number or 'baseline' after >", 17),
    ("p99(latency_ms) == 5", "== and != are not alert conditions", 16),
    ("latency > 5", "unknown signal 'latency'", 0),
    ("p99(status_code) > 5", "p99() takes one of latency_ms, confidence, input_size", 4),
    ("p100(latency_ms) > 5", "above p0 and below p100", 0),
    ('p99(latency_ms){category="timeout"} > 1s', "category and error_type apply to errors", 16),
    ('error_rate{service=~"gw"} > 1%', "regular expressions are not supported", 18),
    ("error_rate{service=gateway} > 1%", "expected a quoted value", 19),
    ("error_rate rises 300 within 10m", "expected a percentage after rises", 17),
    ("error_rate falls 150% within 10m", "between 0 and 100%", 17),
    ("error_rate rises 300% in 10m", "expected 'within'", 22),
    ("p99(latency_ms) > baseline + 3", "expected 'sigma'", 29),
    ("p99(latency_ms)[5x] > 1s", "unknown unit", 16),
    ("requests[0m] > 1", "longer than zero", 9),
    ("requests > 1 and", "expected a signal", 16),
    ("(requests > 1", "expected ')'", 13),
    ("requests > 1 requests", "expected 'and', 'or' or the end", 13),
    ("requests > 5%", "requests is a count", 11),
    ("burn(p99(latency_ms), 99%) > 1", "burn() takes error_rate or slow_rate", 5),
    ("burn(error_rate, 100%) > 1", "below 100%", 17),
    ('error_rate{service="gw" > 1%', "expected ',' or '}'", 24),
    ('error_rate{service="gw} > 1%', "unterminated string", 19),
    ('psi(confidence){model!="fraud"} > 0.25', "use =", 21),
    ("psi(features..amount) > 0.25", "needs a field name", 4),
])
def test_expression_errors_say_what_and_where(text: str, message: str, position: int) -> None:
    with pytest.raises(ExprError) as caught:
        parse(text)
    assert message in caught.value.message
    assert caught.value.position == position


# Canonical expressions, drawn at random: parse(text) gives back the same text and tree.
_durations = st.sampled_from([timedelta(seconds=30), timedelta(minutes=5), timedelta(minutes=90),
                              timedelta(hours=1), timedelta(days=3)])
_labels = st.sampled_from(["service", "model", "version", "model_id"])
_values = st.text(st.characters(codec="utf-8", exclude_characters='"\'', exclude_categories=["Cs"]),
                  max_size=8)
_matchers = st.lists(st.builds(Matcher, _labels, st.sampled_from(["=", "!="]), _values), max_size=2)
_windows = st.one_of(st.none(), _durations)


@st.composite
def _signals(draw: st.DrawFn) -> Signal:
    kind = draw(st.sampled_from(["requests", "errors", "throughput", "error_rate", "slow_rate", "quantile",
                                 "mean", "max", "psi"]))
    matchers = tuple(draw(_matchers))
    window = draw(_windows)
    if kind == "error_rate" and draw(st.booleans()):
        matchers += (Matcher("category", draw(st.sampled_from(["=", "!="])), "timeout"),)
    if kind == "quantile":
        return Signal(kind, column="latency_ms", percentile=draw(st.sampled_from([50.0, 99.0, 99.9])),
                      matchers=matchers, window=window)
    if kind in ("mean", "max"):
        return Signal(kind, column=draw(st.sampled_from(["latency_ms", "confidence"])), matchers=matchers,
                      window=window)
    if kind == "psi":
        return Signal(kind, column=draw(st.sampled_from(["confidence", "features.amount"])), window=window)
    if kind == "slow_rate":
        return Signal(kind, limit_ms=draw(st.sampled_from([250.0, 500.0])), matchers=matchers, window=window)
    return Signal(kind, matchers=matchers, window=window)


@st.composite
def _comparisons(draw: st.DrawFn) -> Condition:
    signal = draw(_signals())
    op = draw(st.sampled_from([">", ">=", "<", "<="]))
    shape = draw(st.sampled_from(["threshold", "baseline", "change"]))
    if shape == "baseline":
        sigmas = draw(st.sampled_from([3.0, -2.0, 2.5]))
        return Baseline(signal, op, draw(st.one_of(st.none(), _durations)), sigmas)
    if shape == "change":
        return Change(signal, draw(st.sampled_from(["rises", "falls"])), draw(st.sampled_from([50.0, 100.0])),
                      draw(_durations))
    value = draw(st.sampled_from([0.0, 0.25, 1.0, 5.0, 500.0]))
    if signal.unit == "ratio":
        value = min(value, 1.0)
    return Threshold(signal, op, value)


_conditions = st.recursive(_comparisons(), lambda inner: st.one_of(st.builds(Both, inner, inner),
                                                                   st.builds(Either, inner, inner)),
                           max_leaves=4)


@given(_conditions)
def test_canonical_text_parses_back_to_the_same_condition(condition: Condition) -> None:
    text = condition.text()
    parsed = parse(text)
    assert parsed == condition
    assert parsed.text() == text


@given(st.text(alphabet=st.sampled_from(list("p99(latency_ms)error_rate{}[]<>=!,.%5mh \"'+-andorsigma")),
               max_size=40))
def test_any_text_parses_or_fails_with_an_expression_error(text: str) -> None:
    try:
        parse(text)
    except ExprError as exc:
        assert 0 <= exc.position <= len(text)


# --------------------------------------------------------------------------- rule files

GOOD = """\
[defaults]
for = "5m"
by = ["model_id", "service"]

[[rule]]
name = "slow"
expr = "p99(latency_ms)[10m] > 500ms"
keep_firing_for = "2m"

[[rule]]
name = "gaps hold"
expr = "requests < 1"
missing = "hold"
by = []
for = 0

[[slo]]
name = "availability"
objective = "99.5%"
bad = 'error_rate{category!="input_validation"}'
period = "28d"
"""


def test_a_rule_file_with_defaults_and_an_slo() -> None:
    slow, gaps, *slo = parse_rules(GOOD, "rules.toml")
    assert slow.for_ == timedelta(minutes=5) and slow.keep_firing_for == timedelta(minutes=2)
    assert slow.by == ("model_id", "service") and slow.min_requests == 20 and slow.origin == "rules.toml:5"
    assert gaps.by == () and gaps.for_ == timedelta(0) and gaps.missing == "hold"
    assert [r.name for r in slo] == ["availability: burn 1h/5m > 13.44", "availability: burn 6h/30m > 5.6",
                                     "availability: burn 1d/2h > 2.8", "availability: burn 3d/6h > 0.933333"]
    assert [r.severity for r in slo] == ["page", "page", "ticket", "ticket"]
    assert all(r.kind == "slo" and r.for_ == timedelta(minutes=5) for r in slo)
    assert slo[0].expr == ('burn(error_rate{category!="input_validation"}, 99.5%)[1h] > 13.44 and '
                           'burn(error_rate{category!="input_validation"}, 99.5%)[5m] > 13.44')


BAD = [
    ("[[rule]]\nname = \"x\"\nexpr = \"p99(latency_ms) >> 5\"\n",
     "rules.toml:3: expr: expected a number or 'baseline' after >, found '>' (column 26)"),
    ("[[rule]]\nname = \"x\"\nexpr = \"error_rate > 2\"\n",
     "rules.toml:3: expr: error_rate is a share of requests: write 2% or a ratio such as 0.02 (column 22)"),
    ("[[rule]]\nname = \"x\"\nexpr = 'requests > 1'\nfor = \"5 minutes please\"\n",
     "rules.toml:4: for: "),
    ("[[rule]]\nname = \"x\"\nexpr = 'requests > 1'\nfour = \"5m\"\n",
     "rules.toml:4: unknown key 'four' in [[rule]]; did you mean 'for'?"),
    ("[[rule]]\nname = \"x\"\n", "rules.toml:1: [[rule]] needs expr = "),
    ("[[rule]]\nname = \"x\"\nexpr = 'requests > 1'\n\n[[rule]]\nname = \"x\"\nexpr = 'errors > 1'\n",
     "rules.toml:5: a rule named 'x' is already defined at rules.toml:1"),
    ("[[rule]]\nname = \"x\"\nexpr = 'requests > 1'\nby = [\"colour\"]\n",
     "rules.toml:4: by: cannot group by 'colour'"),
    ("[[rule]]\nname = \"x\"\nexpr = 'requests > 1'\nmin_requests = -1\n",
     "rules.toml:4: min_requests must be"),
    ("[[rule]]\nname = \"x\"\nexpr = 'requests > 1'\nmissing = \"zero\"\n",
     "rules.toml:4: missing must be \"absent\" or \"hold\""),
    ("[rule]\nname = \"x\"\n", "rules.toml:1: write [[rule]] (one per rule)"),
    ("[rules]\nname = \"x\"\n", "rules.toml:1: unknown table or key 'rules'"),
    ("[defaults]\nfor = \"5m\"\n", "rules.toml: no rules"),
    ("[[rule]]\nname = \"x\"\nexpr = 'requests > 1\n", "rules.toml:3: invalid TOML: "),
    ("[[slo]]\nname = \"a\"\nbad = \"error_rate\"\nobjective = \"100%\"\n",
     "rules.toml:4: objective '100%' must be a percentage below 100%"),
    ("[[slo]]\nname = \"a\"\nbad = \"error_rate[5m]\"\nobjective = \"99%\"\n",
     "rules.toml:3: bad: an SLO's bad events are error_rate{…} or slow_rate(500ms){…}, without a [window]"),
    ("[[slo]]\nname = \"a\"\nbad = \"error_rate\"\n", "rules.toml:1: [[slo]] needs objective"),
    ("[defaults]\nseverity = \"page\"\n\n[[slo]]\nname = \"a\"\nbad = \"error_rate\"\nobjective = \"99%\"\n"
     "severity = \"page\"\n", "rules.toml:8: an SLO's presets set their own severity"),
]


@pytest.mark.parametrize(("text", "message"), BAD)
def test_a_broken_rule_file_gets_one_precise_line(text: str, message: str) -> None:
    with pytest.raises(UsageError) as caught:
        parse_rules(text, "rules.toml")
    assert str(caught.value).startswith(message)
    assert "\n" not in str(caught.value)


def test_a_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        load_rules(tmp_path / "nope.toml")


# --------------------------------------------------------------------------- the shipped rules


def test_the_default_rules_are_the_seed_thresholds() -> None:
    rules = {r.name: r for r in load_rules()}
    expressions = {r.expr for r in rules.values()}
    assert "p99(latency_ms)[10m] > 500ms" in expressions
    assert 'error_rate{category="infrastructure"}[5m] > 2%' in expressions
    assert 'error_rate{category="input_validation"}[5m] > 5%' in expressions
    assert 'error_rate{category="model_inference"}[5m] > 1%' in expressions
    assert "psi(confidence)[30m] > 0.25" in expressions
    assert {r.kind for r in rules.values()} >= {"threshold", "composite"}
    assert any(isinstance(c, Baseline) for r in rules.values() for c in comparisons(r.condition))
    assert any(isinstance(c, Change) for r in rules.values() for c in comparisons(r.condition))
    assert all(r.for_ >= timedelta(minutes=2) for r in rules.values())  # a duration before paging


def test_the_default_rules_ship_as_package_data() -> None:
    assert default_rules_path().parent.name == "alerts" and default_rules_path().is_file()
    build = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    assert "alerts/*.toml" in build["tool"]["setuptools"]["package-data"]["mlinvestigate"]
