"""`mlinv check`: rules replayed over real data. The default rules on the generated sample
(incidents at known times), the reference vectors end to end through SQL, exact signal values,
and the command line (formats, exit codes, one-line errors)."""

from __future__ import annotations

import json
import sys
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from investigation_fixtures import START, at
from typer.testing import CliRunner

from mlinvestigate import store
from mlinvestigate.alerts.check import check
from mlinvestigate.alerts.parser import parse
from mlinvestigate.alerts.rules import parse_rules
from mlinvestigate.alerts.signals import Grid, Scope, compute
from mlinvestigate.cli import app, main
from mlinvestigate.errors import UsageError
from mlinvestigate.investigations.filters import Filters, event_kinds, grouping

pytest_plugins = ["investigation_fixtures"]

ERROR_RULES = ("infrastructure errors over 2%", "model errors over 1%", "timeouts over 1%",
               "input validation errors over 5%", "error rate quadrupled in 10 minutes")


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text.rstrip("Z"))


# --------------------------------------------------------------------------- the default rules


@pytest.fixture(scope="module")
def default_run(sample_db: Path) -> tuple[int, list[dict[str, Any]]]:
    """`mlinv check --format json` with the shipped rules on the generated sample."""
    result = CliRunner().invoke(app, ["check", "--db", str(sample_db), "--format", "json"])
    assert result.exception is None or result.exit_code == 1, result.output
    records = json.loads(result.stdout)
    for record in records:
        for key in ("firing_from", "firing_until", "worst_at", "active_at"):
            record[key] = _time(record[key])
    return result.exit_code, records


Run = tuple[int, list[dict[str, Any]]]


def alerts(run: Run, rule: str, group: str | None = None) -> list[dict[str, Any]]:
    return [r for r in run[1] if r["rule"] == rule and (group is None or r["group"] == group)]


def test_bad_deploy_fires_model_errors_from_0248_to_0320(default_run) -> None:
    for group in ("fraud v2.1.0 model-server", "fraud – gateway"):
        (alert,) = alerts(default_run, "model errors over 1%", group)
        assert at(2, 48) <= alert["firing_from"] <= at(2, 56)
        assert at(3, 20) <= alert["firing_until"] <= at(3, 28)
        assert alert["state"] == "resolved"
        assert float(alert["worst"].rstrip(" %")) > 8  # ~13 % of fraud predictions fail
    assert {a["group"] for a in alerts(default_run, "model errors over 1%")} == {
        "fraud v2.1.0 model-server", "fraud – gateway"}


def test_timeouts_fire_at_the_gateway_from_0340(default_run) -> None:
    (alert,) = alerts(default_run, "timeouts over 1%")
    assert alert["group"] == "recsys – gateway"  # the model-server never logs these requests
    assert at(3, 40) <= alert["firing_from"] <= at(3, 46)
    assert at(3, 45) <= alert["firing_until"] <= at(3, 52)


def test_error_rules_are_quiet_outside_the_incidents(default_run) -> None:
    for rule in ERROR_RULES:
        for alert in alerts(default_run, rule):
            assert alert["active_at"] >= at(2, 0), alert
            if alert["group"].startswith("fraud"):
                assert at(2, 47) <= alert["active_at"] <= at(3, 20), alert
    assert not alerts(default_run, "infrastructure errors over 2%")
    assert not alerts(default_run, "input validation errors over 5%")


def test_nothing_pages_in_the_quiet_first_hours(default_run) -> None:
    pages = [a for a in default_run[1] if a["severity"] == "page" and a["firing_from"] is not None]
    assert pages and not [a for a in pages if a["firing_from"] < at(2, 0)]


def test_slow_input_class_keeps_recsys_p99_firing_to_the_end(default_run) -> None:
    for group in ("recsys v3.2.1 model-server", "recsys – gateway"):
        firing = [a for a in alerts(default_run, "p99 latency over 500ms", group) if a["state"] == "firing"]
        assert len(firing) == 1 and at(2, 0) <= firing[0]["firing_from"] <= at(2, 15)
    assert not [a for a in alerts(default_run, "p99 latency over 500ms") if a["group"].startswith("fraud")]


def test_fraud_confidence_drift_fires_and_recsys_does_not(default_run) -> None:
    (alert,) = alerts(default_run, "prediction confidence drifted (PSI > 0.25)")
    assert alert["group"] == "fraud" and alert["state"] == "firing"
    assert at(1, 50) <= alert["firing_from"] <= at(2, 30)  # drift from 01:48:30, 30 m window, for 15 m
    assert float(alert["worst"]) > 1


def test_exit_code_1_when_firing_at_the_end(default_run) -> None:
    assert default_run[0] == 1
    assert default_run[1][0]["state"] == "firing"  # firing alerts come first


def test_a_quiet_window_exits_0(sample_db: Path) -> None:
    result = CliRunner().invoke(app, ["check", "--db", str(sample_db), "--until", at(1, 30).isoformat(),
                                      "--rules", str(_rules_file(sample_db.parent, SMALL_RULES))])
    assert result.exit_code == 0, result.output
    assert "nothing firing at the end (01:30:00)" in result.stdout


# --------------------------------------------------------------------------- the command line

SMALL_RULES = """\
[[rule]]
name = "model errors"
expr = 'error_rate{category="model_inference"}[5m] > 1%'
for = "2m"
by = ["model_id", "service"]
min_requests = 50
summary = "check the last model load"
"""


def _rules_file(folder: Path, text: str, name: str = "rules.toml") -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def mlinv(args: list[str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
          ) -> tuple[int, str, str]:
    """`mlinv ARGS` through the real entry point: (exit code, stdout, stderr)."""
    monkeypatch.setattr(sys, "argv", ["mlinv", *args])
    with pytest.raises(SystemExit) as exited:
        main()
    out = capsys.readouterr()
    return int(exited.value.code or 0), out.out, out.err


@pytest.mark.parametrize("fmt", ["table", "markdown", "csv"])
def test_every_format(fmt: str, sample_db: Path, tmp_path: Path) -> None:
    rules = _rules_file(tmp_path, SMALL_RULES)
    result = CliRunner().invoke(app, ["check", "--db", str(sample_db), "--rules", str(rules), "-f", fmt,
                                      "--since", at(2, 30).isoformat(), "--until", at(3, 30).isoformat()])
    assert result.exit_code == 0, result.output  # resolved at 03:25, before the end
    assert "model errors" in result.stdout and "fraud" in result.stdout
    if fmt == "csv":
        header, *rows = result.stdout.splitlines()
        assert header.startswith("rule,severity,group,state,firing_from") and len(rows) == 2
    else:
        assert "Rules" in result.stdout and "fired and resolved earlier" in result.stdout


def test_an_alert_firing_at_since_is_shown_firing(sample_db: Path, tmp_path: Path) -> None:
    rules = _rules_file(tmp_path, SMALL_RULES)
    result = CliRunner().invoke(app, ["check", "--db", str(sample_db), "--rules", str(rules), "-f", "json",
                                      "--since", at(3, 0).isoformat(), "--until", at(3, 22).isoformat()])
    assert result.exit_code == 1, result.output
    records = json.loads(result.stdout)
    assert {r["state"] for r in records} == {"firing"}
    assert all(_time(r["firing_from"]) <= at(3, 1) for r in records)  # already firing at --since


def test_a_broken_rule_file_is_one_line_and_exit_2(tmp_path: Path, sample_db: Path, capsys,
                                                   monkeypatch) -> None:
    rules = _rules_file(tmp_path, '[[rule]]\nname = "x"\nexpr = "p99(latency_ms) >> 500ms"\n')
    code, out, err = mlinv(["check", "--rules", str(rules), "--db", str(sample_db)], capsys, monkeypatch)
    assert code == 2 and out == ""
    assert err == (f"mlinv: error: {rules}:3: expr: expected a number or 'baseline' after >, found '>' "
                   "(column 26)\n")


@pytest.mark.parametrize(("args", "message"), [
    (["--step", "90s"], "is not a whole number of steps of 1m30s"),
    (["--step", "0s"], "must be longer than zero"),
    (["--step", "5s"], "p99(latency_ms)[10m] spans 120 steps of 5s; a percentile, min or max window"),
    (["--rules", "/nonexistent/rules.toml"], "rule file '/nonexistent/rules.toml' not found"),
    (["--format", "yaml"], "unknown --format 'yaml'"),
])
def test_usage_errors_exit_2(args: list[str], message: str, sample_db: Path, capsys, monkeypatch) -> None:
    code, _, err = mlinv(["check", "--db", str(sample_db), *args], capsys, monkeypatch)
    assert code == 2 and message in err and "Traceback" not in err and err.count("\n") == 1


def test_print_default_rules(capsys, monkeypatch) -> None:
    code, out, _ = mlinv(["check", "--print-default-rules"], capsys, monkeypatch)
    assert code == 0 and out.startswith("# mlinv default alert rules") and "[[rule]]" in out
    assert parse_rules(out)  # a valid start for one's own file


# --------------------------------------------------------------------------- hand-made events

BASE = START


def events_con(rows: list[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    """An in-memory database holding request lines (ts, service, model_id, latency_ms,
    error_category), inserted directly: these tests are about the alert logic."""
    con = store.connect(store.MEMORY)
    columns = {
        "ts": [r["ts"] for r in rows],
        "event": ["request_failure" if r.get("error") else "request_success" for r in rows],
        "service": [r.get("service", "gateway") for r in rows],
        "model_id": [r.get("model", "m") for r in rows],
        "latency_ms": [r.get("latency", 10.0) for r in rows],
        "error_category": [r.get("error") for r in rows],
    }
    # One statement with list parameters: executemany costs milliseconds per row.
    values = ", ".join(f"unnest(${c})" for c in columns)
    con.execute(f"INSERT INTO events ({', '.join(columns)}) SELECT {values}", columns)
    return con


def per_minute(pattern: list[int | None], *, n: int = 10, bad: int = 5, **extra: Any) -> list[dict[str, Any]]:
    """n request lines in each minute t; `bad` of them errors where pattern[t] is 1; none at all
    where it is None (missing data)."""
    rows = []
    for t, flag in enumerate(pattern):
        if flag is None:
            continue
        for i in range(n):
            error = "infrastructure" if flag and i < bad else None
            rows.append({"ts": BASE + timedelta(minutes=t, seconds=i * 5), "error": error, **extra})
    return rows


def run_rules(con: duckdb.DuckDBPyConnection, text: str, **options: Any) -> list[dict[str, Any]]:
    return check(con, Filters(**options), parse_rules(text)).records()


def minute(t: float) -> datetime:
    """The evaluation time of minute t: the end of that minute."""
    return BASE + timedelta(minutes=t + 1)


CONDITION = [0, 1, 1, 1, 1, 0, 1, 0, 0, 0, 0, 1, 0]


@pytest.mark.parametrize(("for_m", "keep_m", "intervals"), [
    (0, 0, [(1, 5), (6, 7), (11, 12)]),
    (3, 0, [(4, 5)]),
    (3, 2, [(4, 9)]),
    (0, 2, [(1, 9), (11, None)]),
])
def test_state_table_end_to_end(for_m: int, keep_m: int, intervals: list[tuple[int, int | None]]) -> None:
    """§4.7 through SQL: a minute is true when half its requests fail."""
    con = events_con(per_minute(CONDITION))
    records = run_rules(con, f'[[rule]]\nname = "r"\nexpr = "error_rate > 10%"\nfor = "{for_m}m"\n'
                             f'keep_firing_for = "{keep_m}m"\nmin_requests = 0\n')
    found = [(r["firing_from"], r["firing_until"]) for r in sorted(records, key=lambda r: r["firing_from"])]
    assert found == [(minute(a), None if b is None else minute(b)) for a, b in intervals]


def test_missing_steps_are_false_unless_held() -> None:
    """Minute 5 has no events at all: absent (the default) resolves the alert, hold keeps it."""
    pattern: list[int | None] = [0, 1, 1, 1, 1, None, 1, 1, 0, 0]
    con = events_con(per_minute(pattern))
    rule = '[[rule]]\nname = "r"\nexpr = "error_rate > 10%"\nfor = "2m"\nmin_requests = 0\n'
    absent = run_rules(con, rule)
    assert [(r["firing_from"], r["firing_until"]) for r in absent] == [(minute(3), minute(5))]
    held = run_rules(con, rule + 'missing = "hold"\n')
    assert [(r["firing_from"], r["firing_until"]) for r in held] == [(minute(3), minute(8))]


def test_min_requests_turns_thin_windows_into_missing_data() -> None:
    con = events_con(per_minute([1, 1, 1, 1], n=4, bad=2))
    rule = '[[rule]]\nname = "r"\nexpr = "error_rate > 10%"\nmin_requests = {}\n'
    assert len(run_rules(con, rule.format(4))) == 1
    assert run_rules(con, rule.format(5)) == []


def test_groups_alert_separately() -> None:
    rows = per_minute([0, 1, 1, 1, 0], service="gateway") + per_minute([0, 0, 0, 0, 0], service="server")
    rule = '[[rule]]\nname = "r"\nexpr = "error_rate > 10%"\nby = ["service"]\nmin_requests = 0\n'
    records = run_rules(events_con(rows), rule)
    assert [(r["group"], r["firing_from"], r["firing_until"]) for r in records] == [
        ("gateway", minute(1), minute(4))]


def test_composite_rate_of_change_and_baseline() -> None:
    # 10 % errors for 20 minutes, then 50 % from minute 20; latency steady then tripled.
    rows = []
    for t in range(30):
        for i in range(20):
            error = "timeout" if i < (10 if t >= 20 else 2) else None
            latency = 100.0 + i + (200.0 if t >= 20 else 0.0) + (t % 3)
            moment = BASE + timedelta(minutes=t, seconds=i * 3)
            rows.append({"ts": moment, "error": error, "latency": latency})
    con = events_con(rows)
    text = """
[defaults]
min_requests = 0

[[rule]]
name = "rises"
expr = "error_rate rises 300% within 10m"

[[rule]]
name = "rises and high"
expr = "error_rate rises 300% within 10m and error_rate > 60%"

[[rule]]
name = "either"
expr = "error_rate > 60% or mean(latency_ms) > 250ms"

[[rule]]
name = "baseline"
expr = "mean(latency_ms) > baseline(10m) + 3 sigma"
"""
    records = {r["rule"]: r for r in run_rules(con, text)}
    rises = records["rises"]
    # 50 % ≥ 4 × 10 % from minute 20 to the end (minute 29 is still compared with minute 19)
    assert rises["firing_from"] == minute(20) and rises["state"] == "firing"
    assert rises["worst"] == "50.0 %" and rises["threshold"] == "40.0 %"
    assert "rises and high" not in records  # never above 60 %
    assert records["either"]["firing_from"] == minute(20) and records["either"]["state"] == "firing"
    baseline = records["baseline"]
    # Resolved: the new level becomes the baseline.
    assert baseline["firing_from"] == minute(20) and baseline["state"] == "resolved"
    assert baseline["worst"] == "312 ms"  # 100 + 9.5 + 200 + 2


def test_burn_rate_page_fires_at_642_and_resets_at_661() -> None:
    """§4.8 through SQL and the [[slo]] presets: 200 requests a minute, one error every ten
    minutes (0.05 %) and 4 a minute (2 %) in minutes 600–659."""
    con = store.connect(store.MEMORY)
    con.execute("""
        INSERT INTO events (ts, event, service, latency_ms, error_category)
        SELECT $base + to_microseconds(m * 60000000 + i * 300000), 'request_success', 'gateway', 10.0,
               CASE WHEN (m BETWEEN 600 AND 659 AND i < 4) OR (m % 10 = 0 AND i = 0) THEN 'infrastructure' END
        FROM range(300, 700) AS a(m), range(200) AS b(i)""", {"base": BASE})
    records = run_rules(con, '[[slo]]\nname = "availability"\nobjective = "99.9%"\nbad = "error_rate"\n')
    fired = {r["rule"]: r for r in records}
    page = fired["availability: burn 1h/5m > 14.4"]
    assert (page["firing_from"], page["firing_until"]) == (minute(642), minute(661))
    assert "availability: burn 6h/30m > 6" not in fired  # the 6 h burn peaks at 3.75


def test_psi_rules_group_by_model_version_or_service_only(sample_con: duckdb.DuckDBPyConnection) -> None:
    rule = '[[rule]]\nname = "drift"\nexpr = "psi(confidence)[30m] > 0.25"\nby = ["status_code"]\n'
    with pytest.raises(UsageError, match=r"^rules.toml:1: rule 'drift': psi\(\) groups by model_id"):
        check(sample_con, Filters(), parse_rules(rule))
    bad_reference = rule.replace('["status_code"]', '["model_id"]') + 'reference = "yesterday"\n'
    with pytest.raises(UsageError, match=r"^rules.toml:1: rule 'drift': reference: "):
        check(sample_con, Filters(), parse_rules(bad_reference))


# --------------------------------------------------------------------------- signal values


def _grid(first: datetime, slots: int, step: timedelta = timedelta(minutes=1)) -> Grid:
    step_us = step // timedelta(microseconds=1)
    return Grid(step_us, (first - datetime(1970, 1, 1)) // timedelta(microseconds=1) // step_us, slots)


def test_percentiles_are_exact_over_each_window(sample_con: duckdb.DuckDBPyConnection) -> None:
    lines_sql, params = event_kinds(sample_con).request_line_sql()
    scope = Scope(Filters(), lines_sql, params, (grouping("service"),))
    signal = parse("p99(latency_ms){model=\"recsys\"}[5m] > 0").signal  # type: ignore[union-attr]
    grid = _grid(at(2, 0), 60)
    series = compute(sample_con, signal, grid, scope)[("gateway",)]
    i = 30  # the evaluation at 02:31 sees 02:26 ≤ ts < 02:31
    latencies = [r[0] for r in sample_con.execute(
        "SELECT latency_ms FROM events WHERE service = 'gateway' AND model_id = 'recsys' "
        "AND latency_ms IS NOT NULL AND ts >= $a AND ts < $b", {"a": at(2, 26), "b": at(2, 31)}).fetchall()]
    assert grid.eval_time(i) == at(2, 31)
    assert series.values[i] == pytest.approx(np.percentile(latencies, 99), rel=1e-12)
    assert series.support[i] == len(latencies)


def test_percentiles_in_time_chunks_equal_one_statement(sample_con: duckdb.DuckDBPyConnection,
                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    # Long histories are cut into time chunks to bound memory; every window must come out
    # the same, including those whose lines straddle a chunk edge.
    from mlinvestigate.alerts import signals

    lines_sql, params = event_kinds(sample_con).request_line_sql()
    scope = Scope(Filters(), lines_sql, params, (grouping("service"),))
    signal = parse("p95(latency_ms)[5m] > 0").signal  # type: ignore[union-attr]
    grid = _grid(at(0, 0), 240)
    whole = compute(sample_con, signal, grid, scope)
    monkeypatch.setattr(signals, "ORDER_VALUES_PER_STATEMENT", 5_000)
    chunked = compute(sample_con, signal, grid, scope)
    assert whole.keys() == chunked.keys()
    for key in whole:
        np.testing.assert_array_equal(whole[key].values, chunked[key].values)
        np.testing.assert_array_equal(whole[key].support, chunked[key].support)


TAIL_SIGNALS = ["p99(latency_ms)[10m] > 0", "p95(latency_ms)[5m] > 0", "p90(latency_ms)[3m] > 0",
                "p99.9(latency_ms) > 0", "p5(latency_ms)[3m] > 0", "p1(latency_ms)[2m] > 0",
                "min(latency_ms)[5m] > 0", "max(latency_ms)[15m] > 0"]


@pytest.mark.parametrize("text", TAIL_SIGNALS)
def test_tail_percentiles_from_kept_values_equal_the_plain_quantile(
        text: str, sample_con: duckdb.DuckDBPyConnection, monkeypatch: pytest.MonkeyPatch) -> None:
    from mlinvestigate.alerts import signals

    lines_sql, params = event_kinds(sample_con).request_line_sql()
    scope = Scope(Filters(), lines_sql, params, (grouping("model_id"), grouping("service")))
    signal = parse(text).signal  # type: ignore[union-attr]
    grid = _grid(at(2, 30), 60)
    calls: list[str] = []
    real_run = signals.run
    monkeypatch.setattr(signals, "run", lambda con, sql, *a: calls.append(sql) or real_run(con, sql, *a))
    tail = compute(sample_con, signal, grid, scope)
    assert any("kept" in sql for sql in calls)  # the tail path was taken
    monkeypatch.setattr(signals, "TAIL_SHARE", -1.0)
    plain = compute(sample_con, signal, grid, scope)
    assert tail.keys() == plain.keys()
    for key in plain:
        np.testing.assert_array_equal(tail[key].support, plain[key].support)
        np.testing.assert_allclose(tail[key].values, plain[key].values, rtol=1e-12, equal_nan=True)


def test_tail_percentiles_with_ties_tiny_windows_and_gaps(monkeypatch: pytest.MonkeyPatch) -> None:
    # 1, 2 or 3 values in some windows, none in others, many equal values: the ranks at the
    # ends of the kept lists.
    from mlinvestigate.alerts import signals

    rng = np.random.default_rng(5)
    rows = []
    for t in range(40):
        n = [0, 1, 2, 3, 40, 400][t % 6]
        values = rng.choice([5.0, 7.0, 7.0, 100.0, 1e4], size=n) + (t % 4 == 0) * rng.random(n)
        for i, value in enumerate(values):
            rows.append({"ts": BASE + timedelta(minutes=t, seconds=i * 60 / max(n, 1)),
                         "latency": float(value), "service": "ab"[i % 2]})
    con = events_con(rows)
    lines_sql, params = event_kinds(con).request_line_sql()
    scope = Scope(Filters(), lines_sql, params, (grouping("service"),))
    grid = _grid(BASE, 40)
    for text in ["p99(latency_ms)[3m] > 0", "p75(latency_ms)[5m] > 0", "p2(latency_ms)[4m] > 0",
                 "max(latency_ms)[2m] > 0", "min(latency_ms) > 0"]:
        signal = parse(text).signal  # type: ignore[union-attr]
        monkeypatch.setattr(signals, "TAIL_SHARE", 10.0)  # the tail path, however much it keeps
        tail = compute(con, signal, grid, scope)
        monkeypatch.setattr(signals, "TAIL_SHARE", -1.0)
        plain = compute(con, signal, grid, scope)
        assert tail.keys() == plain.keys() == {("a",), ("b",)}
        for key in plain:
            np.testing.assert_array_equal(tail[key].support, plain[key].support)
            np.testing.assert_allclose(tail[key].values, plain[key].values, rtol=1e-12, equal_nan=True,
                                       err_msg=text)


def test_additive_signals_in_one_scan_equal_each_alone(sample_con: duckdb.DuckDBPyConnection) -> None:
    # Rules reading the same lines share one scan; windows of different widths and matchers
    # with their own parameters must come out as when each signal is computed alone, and a
    # group seen only before a narrow window's reach must not appear in it.
    from mlinvestigate.alerts.signals import additive_batch_key, compute_additive

    lines_sql, params = event_kinds(sample_con).request_line_sql()
    scope = Scope(Filters(), lines_sql, params, (grouping("model_version"),))
    texts = ['error_rate{category="timeout"}[5m] > 0', 'error_rate{category="model_inference"}[10m] > 0',
             'errors{category!="input_validation"}[30m] > 0', "slow_rate(200ms)[3m] > 0",
             "slow_rate(900ms)[15m] > 0", "throughput[1m] > 0", "mean(latency_ms)[20m] > 0", "requests > 0"]
    batch = [parse(text).signal for text in texts]  # type: ignore[union-attr]
    assert len({additive_batch_key(s) for s in batch}) == 1
    grid = _grid(at(2, 40), 30)
    together = compute_additive(sample_con, batch, grid, scope)
    for signal in batch:
        alone = compute(sample_con, signal, grid, scope)
        assert together[signal].keys() == alone.keys(), signal.text()
        for key in alone:
            np.testing.assert_array_equal(together[signal][key].values, alone[key].values)
            np.testing.assert_array_equal(together[signal][key].support, alone[key].support)


def test_a_group_outside_a_narrow_window_stays_out_of_its_series() -> None:
    from mlinvestigate.alerts.signals import compute_additive

    rows = per_minute([1, 1, 1], service="early") + per_minute([0] * 30, service="late")
    con = events_con(rows)
    lines_sql, params = event_kinds(con).request_line_sql()
    scope = Scope(Filters(), lines_sql, params, (grouping("service"),))
    narrow, wide = (parse(text).signal for text in ("errors[5m] > 0", "errors[30m] > 0"))  # type: ignore[union-attr]
    together = compute_additive(con, [narrow, wide], _grid(BASE + timedelta(minutes=20), 10), scope)
    assert set(together[narrow]) == {("late",)}
    assert set(together[wide]) == {("early",), ("late",)}
    assert together[wide][("early",)].values[0] == 15  # minutes 0-2 are in the 30 m window of minute 20


def test_psi_is_the_drift_commands_psi(sample_con: duckdb.DuckDBPyConnection) -> None:
    from mlinvestigate.drift.compare import compare_feature, run_scan
    from mlinvestigate.drift.measures import Options
    from mlinvestigate.drift.timeline import _pool, interval_parts
    from mlinvestigate.drift.windows import Window, choose_windows

    filters = Filters(model="fraud")
    lines_sql, params = event_kinds(sample_con).request_line_sql()
    grid = _grid(at(2, 30), 1, timedelta(minutes=10))
    signal = parse("psi(confidence)[30m] > 0.25").signal  # type: ignore[union-attr]
    value = compute(sample_con, signal, grid, Scope(filters, lines_sql, params))[()].values[0]
    reference = choose_windows(sample_con, filters).reference
    parts, _, _ = interval_parts(reference, Window("current", at(2, 10), at(2, 40)), at(2, 10),
                                 timedelta(minutes=10))
    outcome = run_scan(sample_con, filters, parts, Options(), ["confidence"], interval_count=3)
    pooled = _pool([outcome.groups[k] for k in (1, 2, 3)], "confidence")
    drift = compare_feature(outcome.features[0], outcome.reference, pooled, Options(),
                            outcome.current_families)
    assert value == pytest.approx(drift.psi, rel=1e-9) and value > 1
