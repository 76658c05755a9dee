"""Rule files: TOML in, checked `Rule`s out, or one UsageError "FILE:LINE: what is wrong".

    [defaults]                  # optional: any rule key but name/expr, for every rule below
    for = "5m"

    [[rule]]
    name = "p99 latency"
    expr = "p99(latency_ms)[5m] > 500ms"
    by = ["model_id", "service"]

    [[slo]]                     # becomes four burn-rate rules (see burnrate.py)
    name = "availability"
    objective = "99.9%"
    bad = 'error_rate{category!="input_validation"}'

tomllib keeps no positions, so `_Locator` finds each table's header and key lines in the
text itself; a message points at the key's line, or at its table's header.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass
from datetime import timedelta
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import UsageError
from ..timeparse import parse_duration
from .burnrate import DEFAULT_PERIOD, slo_alerts
from .expr import Condition, ExprError, Signal, kind_of
from .parser import objective_value, parse, parse_ratio_signal

DEFAULT_RULES = "default_rules.toml"
MISSING_POLICIES = ("absent", "hold")

COMMON_KEYS = ("for", "keep_firing_for", "by", "severity", "min_requests", "missing", "summary", "reference")
RULE_KEYS = ("name", "expr", *COMMON_KEYS)
SLO_KEYS = ("name", "objective", "bad", "period", *COMMON_KEYS)


@dataclass(frozen=True)
class Rule:
    name: str
    condition: Condition
    for_: timedelta = timedelta(0)
    keep_firing_for: timedelta = timedelta(0)
    by: tuple[str, ...] = ()
    severity: str = "page"
    min_requests: int = 20
    """A ratio, percentile, mean or psi over fewer request lines (values) than this has no value."""
    missing: str = "absent"
    """A step without a value: "absent" (Prometheus: the condition is false) or "hold" (the
    last known condition holds)."""
    summary: str = ""
    reference: str | None = None
    """psi's reference window, START..END; None: the first quarter of the logged history."""
    kind: str = "threshold"
    origin: str = ""
    """"rules.toml:12", for messages about this rule."""

    @property
    def expr(self) -> str:
        return self.condition.text()


def default_rules_path() -> Path:
    return Path(str(resources.files("mlinvestigate.alerts") / DEFAULT_RULES))


def load_rules(path: str | Path | None = None) -> list[Rule]:
    """The rules of a file (default: the shipped default rules)."""
    target = Path(path) if path is not None else default_rules_path()
    try:
        text = target.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UsageError(f"rule file {str(target)!r} not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise UsageError(f"cannot read rule file {str(target)!r}: {exc}") from None
    return parse_rules(text, str(target))


_TOML_POSITION = re.compile(r"\s*\(at line (\d+), column (\d+)\)\s*$")


def parse_rules(text: str, filename: str = "rules.toml") -> list[Rule]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = _TOML_POSITION.search(message)
        if message.endswith("(at end of document)"):
            line, column, what = len(text.splitlines()) or 1, None, message[: -len(" (at end of document)")]
        elif match is not None:
            line, column, what = int(match.group(1)), match.group(2), message[: match.start()]
        else:
            raise UsageError(f"{filename}: invalid TOML: {message}") from None
        where = f" (column {column})" if column else " (at the end of the file)"
        raise UsageError(f"{filename}:{line}: invalid TOML: {what[:1].lower() + what[1:]}{where}") from None
    return _Loader(text, filename).rules(data)


class _Locator:
    """Lines of table headers and keys in a TOML text (1-based)."""

    _ARRAY = re.compile(r"^\s*\[\[\s*([A-Za-z0-9_-]+)\s*\]\]")
    _TABLE = re.compile(r"^\s*\[\s*([A-Za-z0-9_.-]+)\s*\]")
    _KEY = re.compile(r"""^\s*(?:"([^"]*)"|'([^']*)'|([A-Za-z0-9_-]+))\s*=""")

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers: dict[tuple[str, int], int] = {}
        self.keys: dict[tuple[str, int, str], int] = {}
        counts: dict[str, int] = {}
        table: tuple[str, int] = ("", 0)
        for number, line in enumerate(self.lines, start=1):
            array = self._ARRAY.match(line)
            plain = None if array else self._TABLE.match(line)
            if array or plain:
                name = (array or plain).group(1)  # type: ignore[union-attr]
                index = counts.get(name, 0) if array else 0
                counts[name] = index + 1
                table = (name, index)
                self.headers.setdefault(table, number)
                continue
            key = self._KEY.match(line)
            if key:
                name = next(g for g in key.groups() if g is not None)
                self.keys.setdefault((*table, name), number)

    def line(self, table: str, index: int, key: str | None = None) -> int:
        if key is not None and (table, index, key) in self.keys:
            return self.keys[(table, index, key)]
        return self.headers.get((table, index), 1)


class _Loader:
    def __init__(self, text: str, filename: str) -> None:
        self.filename = filename
        self.locate = _Locator(text)

    def fail(self, table: str, index: int, key: str | None, message: str) -> UsageError:
        return UsageError(f"{self.filename}:{self.locate.line(table, index, key)}: {message}")

    def rules(self, data: dict[str, Any]) -> list[Rule]:
        for name, value in data.items():
            if name == "defaults" and isinstance(value, dict):
                continue
            if name in ("rule", "slo") and isinstance(value, list):
                continue
            if name in ("rule", "slo"):
                raise self.fail(name, 0, None, f"write [[{name}]] (one per {name}), not [{name}] or {name} =")
            raise self.fail(name, 0, name, f"unknown table or key {name!r}; a rule file holds [defaults], "
                            "[[rule]] and [[slo]] tables")
        defaults = data.get("defaults", {})
        self.check_keys("defaults", 0, defaults, COMMON_KEYS)
        found: list[Rule] = []
        for index, table in enumerate(data.get("rule", [])):
            self.check_keys("rule", index, table, RULE_KEYS)
            found.append(self.rule(index, {**defaults, **table}))
        for index, table in enumerate(data.get("slo", [])):
            self.check_keys("slo", index, table, SLO_KEYS)
            # A default severity is for [[rule]]s: an SLO's presets bring their own.
            inherited = {k: v for k, v in defaults.items() if k != "severity"}
            found.extend(self.slo(index, {**inherited, **table}))
        if not found:
            raise UsageError(f"{self.filename}: no rules; add [[rule]] or [[slo]] tables "
                             "(see docs/alerts.md)")
        seen: dict[str, str] = {}
        for rule in found:
            if rule.name in seen:
                raise UsageError(f"{rule.origin}: a rule named {rule.name!r} is already defined at "
                                 f"{seen[rule.name]}")
            seen[rule.name] = rule.origin
        return found

    def check_keys(self, table: str, index: int, values: Any, allowed: tuple[str, ...]) -> None:
        if not isinstance(values, dict):
            raise self.fail(table, index, None, f"[{table}] must be a table")
        for key in values:
            if key not in allowed:
                close = difflib.get_close_matches(key, allowed, n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                header = "[defaults]" if table == "defaults" else f"[[{table}]]"
                raise self.fail(table, index, key, f"unknown key {key!r} in {header}; {hint}keys: "
                                f"{', '.join(allowed)}")

    def text(self, table: str, index: int, values: dict[str, Any], key: str, *, required: bool = False
             ) -> str | None:
        value = values.get(key)
        if value is None:
            if required:
                raise self.fail(table, index, None, f"[[{table}]] needs {key} = \"…\"")
            return None
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(table, index, key, f"{key} must be a non-empty string, not {value!r}")
        return value

    def duration(self, table: str, index: int, values: dict[str, Any], key: str) -> timedelta:
        value = values.get(key, "0s")
        if value == 0:
            return timedelta(0)
        if not isinstance(value, str):
            raise self.fail(table, index, key, f"{key} must be a duration such as \"5m\", not {value!r}")
        try:
            span = parse_duration(value)
        except UsageError as exc:
            raise self.fail(table, index, key, f"{key}: {exc}") from None
        if span < timedelta(0):
            raise self.fail(table, index, key, f"{key} must not be negative")
        return span

    def common(self, table: str, index: int, values: dict[str, Any]) -> dict[str, Any]:
        by = values.get("by", [])
        if isinstance(by, str):
            by = [by]
        if not isinstance(by, list) or not all(isinstance(b, str) for b in by):
            raise self.fail(table, index, "by", f"by must be a list of column names, not {by!r}")
        from ..investigations.filters import grouping

        for name in by:
            try:
                grouping(name)
            except UsageError as exc:
                raise self.fail(table, index, "by", f"by: {exc}") from None
        min_requests = values.get("min_requests", 20)
        if isinstance(min_requests, bool) or not isinstance(min_requests, int) or min_requests < 0:
            raise self.fail(table, index, "min_requests",
                            f"min_requests must be a whole number ≥ 0, not {min_requests!r}")
        missing = values.get("missing", "absent")
        if missing not in MISSING_POLICIES:
            raise self.fail(table, index, "missing",
                            f"missing must be \"absent\" or \"hold\", not {missing!r}")
        return {
            "for_": self.duration(table, index, values, "for"),
            "keep_firing_for": self.duration(table, index, values, "keep_firing_for"),
            "by": tuple(by),
            "min_requests": min_requests,
            "missing": missing,
            "summary": self.text(table, index, values, "summary") or "",
            "reference": self.text(table, index, values, "reference"),
            "origin": f"{self.filename}:{self.locate.line(table, index)}",
        }

    def expression_error(self, table: str, index: int, key: str, source: str, exc: ExprError) -> UsageError:
        line_number = self.locate.line(table, index, key)
        line = self.locate.lines[line_number - 1] if line_number <= len(self.locate.lines) else ""
        start = line.find(source)
        where = (f"column {start + exc.position + 1}" if start >= 0
                 else f"character {exc.position + 1} of the expression")
        return UsageError(f"{self.filename}:{line_number}: {key}: {exc.message} ({where})")

    def rule(self, index: int, values: dict[str, Any]) -> Rule:
        name = self.text("rule", index, values, "name", required=True)
        source = self.text("rule", index, values, "expr", required=True)
        assert name is not None and source is not None
        try:
            condition = parse(source)
        except ExprError as exc:
            raise self.expression_error("rule", index, "expr", source, exc) from None
        severity = self.text("rule", index, values, "severity") or "page"
        return Rule(name.strip(), condition, severity=severity, kind=kind_of(condition),
                    **self.common("rule", index, values))

    def slo(self, index: int, values: dict[str, Any]) -> list[Rule]:
        name = self.text("slo", index, values, "name", required=True)
        source = self.text("slo", index, values, "bad", required=True)
        assert name is not None and source is not None
        try:
            bad: Signal = parse_ratio_signal(source)
        except ExprError as exc:
            raise self.expression_error("slo", index, "bad", source, exc) from None
        objective = values.get("objective")
        if objective is None:
            raise self.fail("slo", index, None, "[[slo]] needs objective = \"99.9%\"")
        try:
            ratio = objective_value(str(objective), 0)
        except ExprError as exc:
            raise self.fail("slo", index, "objective", exc.message) from None
        period = self.duration("slo", index, values, "period") if "period" in values else DEFAULT_PERIOD
        if period <= timedelta(0):
            raise self.fail("slo", index, "period", "period must be longer than zero, e.g. \"30d\"")
        common = self.common("slo", index, values)
        if "severity" in values:
            raise self.fail("slo", index, "severity", "an SLO's presets set their own severity (page/ticket)")
        return [Rule(f"{name.strip()}: {alert.suffix}", alert.condition, severity=alert.severity,
                     kind="slo", **common) for alert in slo_alerts(bad, ratio, period)]
