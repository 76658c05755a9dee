"""The parser of alert expressions: a small PromQL-flavoured grammar.

    expr       := and_expr ("or" and_expr)*
    and_expr   := factor ("and" factor)*
    factor     := "(" expr ")" | signal comparison
    comparison := OP number                                  p99(latency_ms)[5m] > 500ms
                | OP "baseline" ["(" duration ")"] ("+"|"-") number "sigma"
                | ("rises"|"falls") ["by"] number% "within" duration
    signal     := name ["(" args ")"] ["{" label OP_EQ "string", … "}"] ["[" duration "]"]

Errors are `ExprError`s that know the character position, so the rule file loader can point
at the line and column.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from datetime import timedelta

from ..drift.features import FIELD_NAME
from ..errors import UsageError
from ..timeparse import parse_duration
from .expr import (
    COLUMN_FUNCTIONS,
    COMPARISONS,
    ERROR_LABELS,
    LINE_LABELS,
    NUMERIC_COLUMNS,
    PERCENTILE,
    PLAIN_SIGNALS,
    RATIO_SIGNALS,
    SIGNAL_HELP,
    Baseline,
    Both,
    Change,
    Condition,
    Either,
    ExprError,
    Matcher,
    Signal,
    Threshold,
    number_text,
)

# --------------------------------------------------------------------------- tokens

_TOKEN = re.compile(
    r"""(?P<ws>\s+)
      | (?P<number>(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?(?:%|[A-Za-zµμσ]+(?:\d+(?:\.\d*)?[A-Za-zµμ]+)*)?)
      | (?P<string>"[^"]*"|'[^']*')
      | (?P<ident>[A-Za-z_@][A-Za-z0-9_@.]*)
      | (?P<op>>=|<=|==|!=|=~|[><=(){}\[\],+\-])
    """,
    re.VERBOSE,
)


@dataclass(frozen=True)
class Token:
    kind: str
    text: str
    position: int


def tokenize(text: str) -> list[Token]:
    tokens: list[Token] = []
    position = 0
    while position < len(text):
        match = _TOKEN.match(text, position)
        if match is None:
            char = text[position]
            if char in "\"'":
                raise ExprError(f"unterminated string starting with {char}", position)
            raise ExprError(f"unexpected character {char!r}", position)
        kind = match.lastgroup or ""
        if kind != "ws":
            tokens.append(Token(kind, match.group(), position))
        position = match.end()
    tokens.append(Token("end", "", len(text)))
    return tokens


_NUMBER = re.compile(r"((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)(.*)")


def split_number(token: Token) -> tuple[float, str]:
    match = _NUMBER.fullmatch(token.text)
    assert match is not None  # the tokenizer only makes number tokens that match
    value = float(match.group(1))
    if not math.isfinite(value):
        raise ExprError(f"number {token.text!r} is too large", token.position)
    return value, match.group(2)


# --------------------------------------------------------------------------- the parser


class _Parser:
    def __init__(self, text: str) -> None:
        self.text = text
        self.tokens = tokenize(text)
        self.index = 0

    @property
    def token(self) -> Token:
        return self.tokens[self.index]

    def advance(self) -> Token:
        token = self.tokens[self.index]
        if token.kind != "end":
            self.index += 1
        return token

    def keyword(self, *words: str) -> bool:
        return self.token.kind == "ident" and self.token.text.lower() in words

    def expect(self, text: str, what: str) -> Token:
        if self.token.text != text:
            raise ExprError(f"expected {what}, found {self._shown()}", self.token.position)
        return self.advance()

    def _shown(self) -> str:
        return "the end" if self.token.kind == "end" else repr(self.token.text)

    # expr := and_expr ("or" and_expr)*
    def parse(self) -> Condition:
        if self.token.kind == "end":
            raise ExprError("empty expression", 0)
        condition = self.expression()
        if self.token.kind != "end":
            raise ExprError(f"expected 'and', 'or' or the end, found {self._shown()}", self.token.position)
        return condition

    def expression(self) -> Condition:
        condition = self.conjunction()
        while self.keyword("or"):
            self.advance()
            condition = Either(condition, self.conjunction())
        return condition

    def conjunction(self) -> Condition:
        condition = self.factor()
        while self.keyword("and"):
            self.advance()
            condition = Both(condition, self.factor())
        return condition

    def factor(self) -> Condition:
        if self.token.text == "(":
            self.advance()
            condition = self.expression()
            self.expect(")", "')'")
            return condition
        signal = self.signal()
        if self.keyword("rises", "falls"):
            return self.change(signal)
        if self.token.text not in COMPARISONS:
            hint = " (== and != are not alert conditions)" if self.token.text in ("==", "!=", "=") else ""
            raise ExprError(f"expected a comparison (>, >=, <, <=) or rises/falls after {signal.text()}, "
                            f"found {self._shown()}{hint}", self.token.position)
        op = self.advance().text
        if self.keyword("baseline"):
            return self.baseline(signal, op)
        token = self.token
        if token.kind != "number":
            raise ExprError(f"expected a number or 'baseline' after {op}, found {self._shown()}",
                            token.position)
        self.advance()
        return Threshold(signal, op, threshold_value(token, signal), token.text)

    def change(self, signal: Signal) -> Change:
        direction = self.advance().text.lower()
        if self.keyword("by"):
            self.advance()
        token = self.token
        value, unit = split_number(token) if token.kind == "number" else (0.0, "")
        if token.kind != "number" or unit != "%":
            raise ExprError(f"expected a percentage after {direction}, e.g. 300%, found {self._shown()}",
                            token.position)
        self.advance()
        if value <= 0 or (direction == "falls" and value > 100):
            limit = "between 0 and 100%" if direction == "falls" else "above 0%"
            raise ExprError(f"{direction} {token.text}: the change must be {limit}", token.position)
        if not self.keyword("within"):
            raise ExprError(f"expected 'within' and a duration after {token.text}, found {self._shown()}",
                            self.token.position)
        self.advance()
        return Change(signal, direction, value, self.duration("within"))

    def baseline(self, signal: Signal, op: str) -> Baseline:
        self.advance()
        window = None
        if self.token.text == "(":
            self.advance()
            window = self.duration("baseline(…)")
            self.expect(")", "')' after the baseline window")
        if self.token.text not in ("+", "-"):
            raise ExprError(f"expected '+ N sigma' or '- N sigma' after baseline, found {self._shown()}",
                            self.token.position)
        sign = 1.0 if self.advance().text == "+" else -1.0
        token = self.token
        if token.kind != "number":
            raise ExprError(f"expected a number of sigmas, found {self._shown()}", token.position)
        value, unit = split_number(token)
        self.advance()
        if unit.lower() in ("sigma", "σ"):
            pass
        elif unit == "" and self.keyword("sigma", "σ", "sigmas"):
            self.advance()
        else:
            raise ExprError(f"expected 'sigma' after {token.text}, e.g. baseline + 3 sigma", token.position)
        return Baseline(signal, op, window, sign * value)

    def duration(self, where: str) -> timedelta:
        token = self.token
        if token.kind != "number":
            raise ExprError(f"expected a duration after {where}, e.g. 5m, found {self._shown()}",
                            token.position)
        self.advance()
        try:
            span = parse_duration(token.text)
        except UsageError as exc:
            raise ExprError(str(exc), token.position) from None
        if span <= timedelta(0):
            raise ExprError(f"duration {token.text} must be longer than zero", token.position)
        return span

    # signal := name ["(" args ")"] ["{" matchers "}"] ["[" duration "]"]
    def signal(self) -> Signal:
        token = self.token
        if token.kind != "ident":
            raise ExprError(f"expected a signal ({SIGNAL_HELP}), found {self._shown()}", token.position)
        name = token.text.lower()
        self.advance()
        if name == "burn":
            signal = self.burn(token)
        elif name in PLAIN_SIGNALS:
            if self.token.text == "(":
                raise ExprError(f"{name} takes no argument", self.token.position)
            signal = Signal(name)
        elif name == "slow_rate":
            limit = self.argument(token, "a latency, e.g. slow_rate(500ms)", number=True)
            try:
                limit_ms = _latency_ms(limit)
            except ExprError as exc:
                raise ExprError(exc.message, limit.position) from None
            signal = Signal("slow_rate", limit_ms=limit_ms)
        elif name in COLUMN_FUNCTIONS or PERCENTILE.fullmatch(name):
            column = self.argument(token, f"a column ({', '.join(NUMERIC_COLUMNS)})")
            if column.text not in NUMERIC_COLUMNS:
                raise ExprError(f"{name}() takes one of {', '.join(NUMERIC_COLUMNS)}, not {column.text!r}",
                                column.position)
            percentile = PERCENTILE.fullmatch(name)
            if percentile:
                value = float(percentile.group(1))
                if not 0 < value < 100:
                    raise ExprError(f"{name}: a percentile must be above p0 and below p100", token.position)
                signal = Signal("quantile", column=column.text, percentile=value)
            else:
                signal = Signal(name, column=column.text)
        elif name == "psi":
            field_token = self.argument(token, "a field, e.g. psi(features.amount) or psi(confidence)")
            if not FIELD_NAME.fullmatch(field_token.text.removeprefix("attrs.")):
                raise ExprError(f"psi() needs a field name such as features.amount, not {field_token.text!r}",
                                field_token.position)
            signal = Signal("psi", column=field_token.text.removeprefix("attrs."))
        else:
            raise ExprError(f"unknown signal {token.text!r}; signals: {SIGNAL_HELP}", token.position)
        if self.token.text == "{":
            if name == "burn":
                raise ExprError("put the labels inside burn(), on the ratio: burn(error_rate{…}, 99.9%)",
                                self.token.position)
            signal = _with(signal, matchers=self.matchers(signal))
        if self.token.text == "[":
            self.advance()
            window = self.duration("'['")
            self.expect("]", "']' after the window")
            signal = _with(signal, window=window)
        return signal

    def argument(self, name: Token, what: str, *, number: bool = False) -> Token:
        if self.token.text != "(":
            raise ExprError(f"{name.text} needs {what}", self.token.position)
        self.advance()
        token = self.token
        if token.kind != ("number" if number else "ident"):
            raise ExprError(f"{name.text}() needs {what}, found {self._shown()}", token.position)
        self.advance()
        self.expect(")", f"')' after {name.text}({token.text}")
        return token

    def burn(self, name: Token) -> Signal:
        self.expect("(", "'(' after burn, e.g. burn(error_rate, 99.9%)")
        start = self.token
        inner = self.signal()
        if inner.name not in RATIO_SIGNALS or inner.window is not None:
            raise ExprError("burn() takes error_rate or slow_rate(…), with labels but without a [window]",
                            start.position)
        self.expect(",", "',' and the objective, e.g. burn(error_rate, 99.9%)")
        token = self.token
        if token.kind != "number":
            raise ExprError(f"expected the objective, e.g. 99.9%, found {self._shown()}", token.position)
        self.advance()
        objective = objective_value(token.text, token.position)
        self.expect(")", "')' after the objective")
        return Signal("burn", objective=objective, inner=inner)

    def matchers(self, signal: Signal) -> tuple[Matcher, ...]:
        self.advance()
        found: list[Matcher] = []
        while self.token.text != "}":
            label = self.token
            if label.kind != "ident":
                raise ExprError(f"expected a label name, found {self._shown()}", label.position)
            allowed = dict(LINE_LABELS)
            if signal.name in ("errors", "error_rate"):
                allowed.update(ERROR_LABELS)
            if label.text not in allowed:
                extra = (" (category and error_type apply to errors and error_rate only)"
                         if label.text in ERROR_LABELS else "")
                raise ExprError(f"unknown label {label.text!r} for {signal.name}; use "
                                f"{', '.join(allowed)}{extra}", label.position)
            self.advance()
            op = self.token
            if op.text not in ("=", "!="):
                hint = " (regular expressions are not supported)" if op.text == "=~" else ""
                raise ExprError(f"expected = or != after {label.text}, found {self._shown()}{hint}",
                                op.position)
            if op.text == "!=" and signal.name == "psi":
                raise ExprError("psi() labels choose the events of one model, version or service: use =",
                                op.position)
            self.advance()
            value = self.token
            if value.kind != "string":
                raise ExprError(f"expected a quoted value after {label.text}{op.text}, e.g. "
                                f'{label.text}{op.text}"…", found {self._shown()}', value.position)
            self.advance()
            found.append(Matcher(label.text, op.text, value.text[1:-1]))
            if self.token.text == ",":
                self.advance()
            elif self.token.text != "}":
                raise ExprError(f"expected ',' or '}}', found {self._shown()}", self.token.position)
        self.advance()
        return tuple(found)


def _with(signal: Signal, **changes: object) -> Signal:
    return replace(signal, **changes)  # type: ignore[arg-type]


def _latency_ms(token: Token) -> float:
    value, unit = split_number(token)
    scale = {"": 1.0, "ms": 1.0, "s": 1000.0}.get(unit.lower())
    if scale is None:
        raise ExprError(f"{token.text}: a latency is written 500ms, 0.5s or 500 (milliseconds)",
                        token.position)
    return value * scale


def threshold_value(token: Token, signal: Signal) -> float:
    """A threshold in the signal's base unit, or ExprError saying how to write it."""
    value, unit = split_number(token)
    kind = signal.unit
    if kind == "ms":
        return _latency_ms(token)
    if kind == "ratio":
        if unit == "%":
            return value / 100
        if unit == "" and value <= 1:
            return value
        raise ExprError(f"{signal.name} is a share of requests: write {number_text(value)}% or a ratio "
                        f"such as {number_text(min(value, 100) / 100)}", token.position)
    if unit:
        what = {"count": "a count", "/s": "requests per second", "×": "a burn rate (14.4 = 14.4× the "
                "budget rate)"}.get(kind, "a plain number")
        raise ExprError(f"{token.text}: {signal.name} is {what}; write the number without a unit",
                        token.position)
    return value


def objective_value(text: str, position: int) -> float:
    """"99.9%" or 0.999 as 0.999; ExprError unless strictly between 0 and 1."""
    match = _NUMBER.fullmatch(text)
    value = float(match.group(1)) if match else math.nan
    unit = match.group(2) if match else "?"
    if unit == "%":
        value /= 100
    elif unit:
        value = math.nan
    if not 0 < value < 1:
        raise ExprError(f"objective {text!r} must be a percentage below 100%, e.g. 99.9%", position)
    return value


def parse(text: str) -> Condition:
    """The condition written in `text`, or ExprError."""
    return _Parser(text).parse()


def parse_ratio_signal(text: str) -> Signal:
    """A bare ratio signal (an SLO's `bad`): error_rate{…} or slow_rate(500ms){…}, no window."""
    parser = _Parser(text)
    if parser.token.kind == "end":
        raise ExprError("empty signal", 0)
    signal = parser.signal()
    if parser.token.kind != "end":
        raise ExprError(f"expected the end after {signal.text()}, found {parser._shown()}",
                        parser.token.position)
    if signal.name not in RATIO_SIGNALS or signal.window is not None:
        raise ExprError("an SLO's bad events are error_rate{…} or slow_rate(500ms){…}, without a [window]", 0)
    return signal
