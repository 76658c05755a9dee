"""The investigations' core functions: known answers from the generated sample's incidents,
exact answers on hand-written logs, and percentiles checked against numpy."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest
from investigation_fixtures import (
    at,
    ingest_records,
    reference_latencies_s,
    request_records,
)

from mlinvestigate.errors import UsageError
from mlinvestigate.investigations.errors import errors
from mlinvestigate.investigations.filters import (
    Filters,
    check_where,
    grouping,
    resolve_filters,
    where_sql,
)
from mlinvestigate.investigations.latency import latency, parse_buckets
from mlinvestigate.investigations.loads import loads
from mlinvestigate.investigations.slow import slow
from mlinvestigate.investigations.summary import HealthThresholds, summary
from mlinvestigate.investigations.throughput import step_for, throughput
from mlinvestigate.investigations.trace import trace
from mlinvestigate.result import Result

pytest_plugins = ["investigation_fixtures"]

ALL = Filters()


def row(result: Result, **match: Any) -> dict[str, Any]:
    """The one record of `result` whose columns equal `match`."""
    found = [r for r in result.records() if all(r[k] == v for k, v in match.items())]
    assert len(found) == 1, (match, result.records())
    return found[0]


# ------------------------------------------------------------------------------- summary


def test_summary_marks_the_bad_deploy_critical_with_model_inference(sample_con):
    """fraud v2.1.0 (02:47–03:20) fails ~13 % with RuntimeError: critical, and its rows
    say it appeared and went away inside the window."""
    result = summary(sample_con, ALL)
    bad = row(result, model_id="fraud", model_version="v2.1.0")
    assert bad["verdict"] == "critical"
    assert bad["top_error"] == "model_inference"
    assert 9.0 < bad["top_error_pct"] < 18.0
    assert "model_inference errors" in bad["reason"]
    assert "appeared 02:47:0" in bad["change"] and "gone after 03:20:0" in bad["change"]
    stable = row(result, model_id="fraud", model_version="v1.4.2")
    assert stable["verdict"] == "ok" and stable["change"] is None
    canary = row(result, model_id="recsys", model_version="v3.3.0")
    assert canary["change"].startswith("appeared 00:3")
    assert "percentiles: exact, linear interpolation (numpy default)" in result.notes


def test_summary_counts_each_service_line_once(sample_con):
    """A request's gateway line and model-server line land in different rows; each row's
    requests equal that service's finishing lines."""
    result = summary(sample_con, ALL)
    expected = dict(
        ((m, v, s), n) for m, v, s, n in sample_con.execute(
            "SELECT model_id, model_version, service, count(*) FROM events "
            "WHERE latency_ms IS NOT NULL GROUP BY ALL").fetchall()
    )
    got = {(r["model_id"], r["model_version"], r["service"]): r["requests"]
           for r in result.records()}
    assert got == expected
    gateway_starts = sample_con.execute(
        "SELECT count(*) FROM events WHERE event = 'request_start'").fetchone()[0]
    gateway_rows = sum(n for (_, _, s), n in got.items() if s == "gateway")
    assert abs(gateway_rows - gateway_starts) <= 2  # the one still in flight, a mangled line


def test_summary_percentiles_equal_numpy_linear(sample_con):
    result = summary(sample_con, ALL)
    for record in result.records():
        values = np.array([r[0] for r in sample_con.execute(
            "SELECT latency_ms FROM events WHERE latency_ms IS NOT NULL AND model_id = $m "
            "AND model_version IS NOT DISTINCT FROM $v AND service = $s",
            {"m": record["model_id"], "v": record["model_version"], "s": record["service"]},
        ).fetchall()])
        want = np.percentile(values, [50, 95, 99, 99.9])
        got = [record["p50"], record["p95"], record["p99"], record["p99_9"]]
        np.testing.assert_allclose(got, want, rtol=1e-12)
        assert record["max"] == values.max()


def test_summary_by_service_and_custom_thresholds(sample_con):
    result = summary(sample_con, ALL, by=["service"],
                     thresholds=HealthThresholds(p99_ms=10_000.0).with_error_limits(
                         {"model_inference": 50.0}))
    assert result.columns[0] == "service"
    assert {r["service"] for r in result.records()} == {"gateway", "model-server"}
    assert {r["verdict"] for r in result.records()} == {"ok"}
    with pytest.raises(UsageError, match="unknown error category"):
        HealthThresholds().with_error_limits({"nonsense": 1.0})
    with pytest.raises(UsageError, match="cannot group by"):
        summary(sample_con, ALL, by=["service; drop table events"])


def test_summary_hand_checked(tmp_path: Path):
    """Two requests (one failed), a load: 2 model-server + 2 gateway requests, never 4 in
    one row; the load lines are not requests."""
    t0 = at(1)
    records = [
        {"timestamp": t0.isoformat() + "Z", "event": "model_load_start", "service": "model-server",
         "model_id": "fraud", "version": "v1"},
        {"timestamp": (t0 + timedelta(seconds=2)).isoformat() + "Z",
         "event": "model_load_success", "service": "model-server", "model_id": "fraud",
         "version": "v1", "load_time_ms": 2000.0, "memory_mb": 100.0},
        *request_records("req-a", t0 + timedelta(seconds=10), model_ms=10.0, gateway_ms=20.0),
        *request_records("req-b", t0 + timedelta(seconds=70), model_ms=30.0, gateway_ms=40.0,
                         error=("RuntimeError", "CUDA error: device-side assert triggered", 500)),
    ]
    con = ingest_records(tmp_path / "hand.jsonl", records)
    result = summary(con, ALL, thresholds=HealthThresholds(min_requests=1))
    model = row(result, service="model-server")
    gateway = row(result, service="gateway")
    assert (model["requests"], gateway["requests"]) == (2, 2)
    assert model["model_version"] == "v1" and gateway["model_version"] is None
    assert model["p50"] == pytest.approx(20.0) and gateway["p50"] == pytest.approx(30.0)
    assert model["error_pct"] == pytest.approx(50.0)
    assert model["top_error"] == "model_inference"
    assert model["verdict"] == "critical"
    assert model["peak_per_min"] == 1


# ---------------------------------------------------------------- reference vector §4.6


@pytest.fixture(scope="module")
def reference_con(tmp_path_factory: pytest.TempPathFactory) -> duckdb.DuckDBPyConnection:
    lat = reference_latencies_s()
    assert lat.sum() == pytest.approx(115.16998627090567, rel=1e-12)
    records = [
        {"timestamp": (at(1) + timedelta(seconds=i)).isoformat() + "Z", "event": "prediction",
         "service": "model-server", "model_id": "m", "model_version": "v1",
         "request_id": f"r{i}", "latency_ms": float(value * 1000.0)}
        for i, value in enumerate(lat)
    ]
    return ingest_records(tmp_path_factory.mktemp("vector") / "lat.jsonl", records)


REFERENCE_S = {"p50": 0.099920, "p90": 0.195299, "p95": 0.239828, "p99": 0.360201}


def test_reference_vector_through_slow(reference_con):
    """reference-vectors §4.6: numpy linear = DuckDB quantile_cont = Prometheus."""
    record = slow(reference_con, ALL).records()[0]
    lat_ms = reference_latencies_s() * 1000.0
    for name, seconds in REFERENCE_S.items():
        assert record[name] == pytest.approx(seconds * 1000.0, abs=1e-3)
        assert record[name] == pytest.approx(np.percentile(lat_ms, int(name[1:])), rel=1e-12)
    assert record["requests"] == 1000


def test_reference_vector_through_summary(reference_con):
    record = summary(reference_con, ALL).records()[0]
    for name in ("p50", "p95", "p99"):
        assert record[name] == pytest.approx(REFERENCE_S[name] * 1000.0, abs=1e-3)


# ------------------------------------------------------------------------------- slow


def test_slow_lists_the_slowest_requests_once_each_with_version(sample_con):
    result = slow(sample_con, Filters(limit=5), threshold_ms=500.0)
    slowest = result.sections[0].records()
    assert len(slowest) == 5
    assert len({r["request_id"] for r in slowest}) == 5
    latencies = [r["latency_ms"] for r in slowest]
    assert latencies == sorted(latencies, reverse=True)
    # The slowest are the recsys gateway timeouts of 03:40-03:45 (~2000 ms, no model line).
    assert all(r["status_code"] == 504 and r["latency_ms"] > 1990 for r in slowest)
    assert f"next: mlinv trace {slowest[0]['request_id']}" in result.notes
    over = sample_con.execute(
        "SELECT count(*) FROM events WHERE latency_ms > 500").fetchone()[0]
    assert sum(r["over_threshold"] for r in result.records()) == over


def test_slow_fills_in_the_version_from_the_model_line(sample_con):
    result = slow(sample_con, Filters(limit=3, service="gateway",
                                      where="status_code = 200"))
    for record in result.sections[0].records():
        assert record["model_version"] in {"v3.2.1", "v3.3.0"}
        assert record["input_size"] > 1000  # the slow input class


def test_slow_by_attrs_field_and_input_size_bucket(sample_con):
    by_client = slow(sample_con, Filters(service="gateway"), by="attrs.endpoint")
    assert by_client.columns[0] == "endpoint"
    assert {r["endpoint"] for r in by_client.records()} == {
        "/v1/fraud/score", "/v1/recsys/recommend"}
    by_size = slow(sample_con, Filters(model="recsys", service="model-server"),
                   by="input_size_bucket")
    assert "1000–9999" in by_size.column("input_size_bucket")


# ------------------------------------------------------------------------------- latency


def test_latency_large_inputs_are_ten_times_slower(sample_con):
    result = latency(sample_con, Filters(model="recsys"))
    large = row(result, input_size_bucket="1000–9999", model_version="v3.2.1")
    common = row(result, input_size_bucket="100–999", model_version="v3.2.1")
    assert 6.0 < large["p50"] / common["p50"] < 15.0
    assert any("slower at p50" in note and "1000–9999" in note for note in result.notes)


def test_latency_over_time_shows_the_share_jump_at_two(sample_con):
    result = latency(sample_con, Filters(model="recsys"), buckets=parse_buckets("0,1001"),
                     every=timedelta(minutes=30))
    share = {r["interval_start"]: r["share_pct"] for r in result.records()
             if r["input_size_bucket"] == "≥1001"}
    before = [v for t, v in share.items() if t < at(2)]
    after = [v for t, v in share.items() if t >= at(2)]
    assert max(before) < 6.0 < 15.0 < min(after)


def test_latency_buckets_and_other_columns(sample_con):
    with pytest.raises(UsageError):
        parse_buckets("100,10")
    with pytest.raises(UsageError):
        parse_buckets("a,b")
    result = latency(sample_con, Filters(), by="model_id")
    assert set(result.column("model_id")) == {"fraud", "recsys"}
    percentiles = latency(sample_con, Filters(model="fraud", version="v1.4.2"))
    values = np.array([r[0] for r in sample_con.execute(
        "SELECT latency_ms FROM events WHERE model_version = 'v1.4.2' AND input_size >= 100 "
        "AND input_size < 1000").fetchall()])
    record = row(percentiles, input_size_bucket="100–999")
    np.testing.assert_allclose([record["p50"], record["p95"], record["p99"]],
                               np.percentile(values, [50, 95, 99]), rtol=1e-12)


# ------------------------------------------------------------------------------- loads


def test_loads_ranks_the_bad_deploy_first(sample_con):
    result = loads(sample_con, ALL)
    first = result.records()[0]
    assert (first["model_id"], first["version"]) == ("fraud", "v2.1.0")
    assert abs(first["loaded_at"] - at(2, 47, 4.213408)) < timedelta(milliseconds=1)
    assert timedelta(0) < first["first_failure_after"] < timedelta(seconds=90)
    assert first["error_pct_before"] < 3.0 < 8.0 < first["error_pct_after"]
    assert first["top_error_after"].startswith("model_inference")
    assert first["verdict"] == "critical"
    assert first["what_followed"].startswith("failures started")
    assert first["load_ms"] == pytest.approx(4210.567)
    assert first["memory_mb"] == pytest.approx(2290.4)
    rollback = next(r for r in result.records()
                    if r["version"] == "v1.4.2" and r["loaded_at"] > at(3))
    assert "recovery" in rollback["what_followed"]


def test_loads_show_failed_loads_with_their_error(sample_con):
    failed = [r for r in loads(sample_con, ALL).records() if r["outcome"] == "failure"]
    assert len(failed) == 1
    assert failed[0]["verdict"] == "fail"
    assert "CUDA out of memory" in failed[0]["what_followed"]
    assert failed[0]["load_ms"] == pytest.approx(7317.0, abs=1.0)


def test_loads_window_and_filters(sample_con):
    result = loads(sample_con, Filters(model="fraud"), window=timedelta(minutes=2))
    assert set(result.column("model_id")) == {"fraud"}
    with pytest.raises(UsageError):
        loads(sample_con, ALL, window=timedelta(0))


# ------------------------------------------------------------------------------- errors


def test_errors_show_recsys_timeouts_between_3_40_and_3_45(sample_con):
    result = errors(sample_con, ALL, every=timedelta(minutes=5))
    timeouts = [r for r in result.records() if r["error_category"] == "timeout"]
    assert timeouts
    assert {(r["model_id"], r["service"]) for r in timeouts} == {("recsys", "gateway")}
    for record in timeouts:
        assert at(3, 40) <= record["first_seen"] <= record["last_seen"] < at(3, 45, 5)
    assert {r["interval_start"] for r in timeouts} == {at(3, 40)}
    assert row(result, interval_start=at(3, 40), error_category="timeout",
               model_id="recsys")["rate_pct"] > 10.0


def test_errors_counts_examples_and_rates(sample_con):
    result = errors(sample_con, Filters(limit=100))
    inference = row(result, error_category="model_inference", service="model-server",
                    model_version="v2.1.0")
    count = sample_con.execute(
        "SELECT count(*) FROM events WHERE error_type = 'RuntimeError' "
        "AND service = 'model-server'").fetchone()[0]
    assert inference["errors"] == count
    assert inference["example_message"] == "CUDA error: device-side assert triggered"
    ids = inference["example_request_ids"].split(", ")
    assert len(ids) == 3
    assert trace(sample_con, ids[0]).rows
    requests = sample_con.execute(
        "SELECT count(*) FROM events WHERE model_version = 'v2.1.0' "
        "AND latency_ms IS NOT NULL").fetchone()[0]
    assert inference["rate_pct"] == pytest.approx(100.0 * count / requests)


def test_errors_hop_note_names_the_services_of_the_logs(sample_con):
    hop_notes = [n for n in errors(sample_con, ALL).notes if "each service it passed" in n]
    assert hop_notes == [
        "a failed request is logged by each service it passed (gateway, model-server): rows of "
        "different services can be the same requests seen from several hops"]
    one_service = errors(sample_con, Filters(service="gateway"))
    assert not any("each service it passed" in n for n in one_service.notes)
    by_category = errors(sample_con, ALL, by=["error_category"])
    assert "rate_pct: errors / request lines of the whole window" in by_category.notes


# ------------------------------------------------------------------------------- trace


def _a_timeout(con: duckdb.DuckDBPyConnection) -> str:
    return con.execute("SELECT request_id FROM events WHERE status_code = 504 "
                       "ORDER BY ts LIMIT 1").fetchone()[0]


def test_trace_of_a_timed_out_request_flags_the_missing_model_hop(sample_con):
    request_id = _a_timeout(sample_con)
    result = trace(sample_con, request_id)
    assert [r["event"] for r in result.records()] == ["request_start", "request_failure"]
    assert any("missing hop" in n and "no model line" in n for n in result.notes)
    assert result.records()[-1]["waterfall"].endswith("█")


def test_trace_accepts_a_unique_prefix_and_lists_ambiguous_ones(sample_con):
    request_id = _a_timeout(sample_con)
    by_prefix = trace(sample_con, request_id[:12])
    assert by_prefix.title == f"Trace request {request_id}"
    assert by_prefix.rows == trace(sample_con, request_id).rows
    with pytest.raises(UsageError, match="matches .* requests: req-"):
        trace(sample_con, "req-")
    assert not trace(sample_con, "no-such-request").rows


def test_trace_waterfall_nests_by_parent_span(tmp_path: Path):
    start = at(1)
    con = ingest_records(tmp_path / "one.jsonl",
                         request_records("req-x", start, model_ms=50.0, gateway_ms=100.0))
    result = trace(con, "req-x")
    events = result.records()
    assert [r["service"] for r in events] == ["gateway", "model-server", "gateway"]
    assert events[0]["offset_ms"] == 0.0
    assert events[-1]["offset_ms"] == pytest.approx(100.0)
    spans = result.sections[0].records()
    assert spans[0]["span"] == "gateway request"
    assert spans[1]["span"] == "  model-server prediction"
    assert spans[1]["duration_ms"] == pytest.approx(50.0)
    assert spans[0]["waterfall"] == "█" * 40
    bar = spans[1]["waterfall"]
    assert bar.strip() == "█" * len(bar.strip()) and 19 <= len(bar.strip()) <= 21
    assert not [n for n in result.notes if "missing" in n]


def test_trace_flags_a_call_that_outlived_its_caller(tmp_path: Path):
    con = ingest_records(tmp_path / "late.jsonl", request_records(
        "req-late", at(1), model_ms=300.0, gateway_ms=200.0,
        error=("TimeoutError", "upstream timed out", 504)))
    notes = trace(con, "req-late").notes
    assert any("model-server finished" in n and "after gateway" in n for n in notes)


def test_trace_flags_a_start_without_finish(tmp_path: Path):
    con = ingest_records(tmp_path / "open.jsonl", request_records(
        "req-open", at(1), model_ms=5.0, gateway_ms=10.0, finish=False))
    notes = trace(con, "req-open").notes
    assert any("request_start" in n and "no finishing line" in n for n in notes)


# ------------------------------------------------------------------------------- throughput


def test_throughput_balances(sample_con):
    result = throughput(sample_con, ALL, capacity_per_s=10.0)
    assert result.title == "Throughput every 5 m"
    received = sum(result.column("received"))
    handled = sum(result.column("processed")) + sum(result.column("failed")) \
        + sum(result.column("dropped"))
    assert abs(received - handled) <= 2  # in flight at the end; one mangled start line
    starts = sample_con.execute(
        "SELECT count(*) FROM events WHERE event = 'request_start'").fetchone()[0]
    assert received == starts
    timeouts = row(result, interval_start=at(3, 40))
    assert timeouts["in_flight_mean"] > row(result, interval_start=at(3, 30))["in_flight_mean"]
    assert "saturation_pct" in result.columns


def test_throughput_counts_dropped_and_late_requests(tmp_path: Path):
    records = []
    for i in range(10):
        records += request_records(f"req-{i}", at(1, 0, i), model_ms=5.0, gateway_ms=10.0)
    records += request_records("req-lost", at(1, 0, 20), model_ms=5.0, gateway_ms=10.0,
                               finish=False)
    records += request_records("req-slow", at(1, 0, 21), model_ms=5.0, gateway_ms=45_000.0)
    records += request_records("req-end", at(1, 4, 50), model_ms=5.0, gateway_ms=10.0,
                               finish=False)
    records.sort(key=lambda r: r["timestamp"])
    con = ingest_records(tmp_path / "drops.jsonl", records)
    result = throughput(con, ALL, every=timedelta(minutes=1), timeout=timedelta(seconds=30))
    first = row(result, interval_start=at(1))
    assert first["received"] == 12
    assert first["dropped"] == 2  # never finished, and finished after 45 s
    assert sum(result.column("dropped")) == 2  # req-end is too recent to judge
    assert any("1 still open" in n for n in result.notes)
    assert first["in_flight_peak"] >= 1


def test_throughput_step_divides_the_interval():
    assert step_for(timedelta(minutes=5)) == timedelta(seconds=1)
    assert step_for(timedelta(hours=1)) == timedelta(seconds=12)
    assert step_for(timedelta(milliseconds=500)) == timedelta(milliseconds=500)


# ------------------------------------------------------------------------------- filters


@pytest.mark.parametrize("bad", [
    "1; DROP TABLE events",
    "1=1) OR (1=1",
    "input_size > 1 -- comment",
    "request_id IN (SELECT request_id FROM events)",
    "exists (from 'x.csv')",
    "length(read_text('/etc/passwd')) > 0",
    "true) UNION ALL SELECT 1 (",
    "input_size > $f_since",
    "no_such_column = 1",
    "input_size >",
    "'unterminated = 1",
])
def test_where_rejects_anything_but_one_condition(sample_con, bad: str):
    with pytest.raises(UsageError):
        check_where(sample_con, bad)


def test_where_accepts_conditions_and_filters(sample_con):
    condition = "input_size > 1000 and attrs->>'$.features.locale' = 'en-US'"
    filters = resolve_filters(sample_con, where=condition, model="recsys")
    sql, params = where_sql(filters)
    count = sample_con.execute(f"SELECT count(*) FROM events WHERE {sql}", params).fetchone()[0]
    assert count > 0
    check_where(sample_con, "error_message = 'a; b -- c'")  # inside a literal: data


def test_relative_times_count_back_from_the_newest_event(sample_con):
    newest = sample_con.execute("SELECT max(ts) FROM events").fetchone()[0]
    filters = resolve_filters(sample_con, "30m", "10m")
    assert filters.since == newest - timedelta(minutes=30)
    assert filters.until == newest - timedelta(minutes=10)
    with pytest.raises(UsageError):
        resolve_filters(sample_con, "yesterday-ish")
    with pytest.raises(UsageError):
        resolve_filters(sample_con, "10m", "30m")  # since after until


def test_grouping_only_accepts_columns_and_attrs_paths():
    assert grouping("service").expression == '"service"'
    assert grouping("attrs.features.amount").column == "features_amount"
    for bad in ("attrs", "service\"; drop", "attrs.a'b", "nonsense"):
        with pytest.raises(UsageError):
            grouping(bad)
