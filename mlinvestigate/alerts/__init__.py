"""Alert rules replayed over the logged history (`mlinv check`), with Prometheus semantics.

rules.py reads a TOML rule file (parser.py the expressions, expr.py their dataclasses,
burnrate.py the SLO presets); signals.py computes each signal per evaluation step in DuckDB;
conditions.py turns signals into true/false/unknown per step and group; state.py is the
pending/firing state machine; check.py runs it all and returns a Result. See docs/alerts.md.
"""
