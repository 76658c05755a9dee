"""Field aliases, durations with units, wrong types, user mappings, and error categories."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from ingest_helpers import assert_one_line_error, cli, ingest_records, rows, write_log

# --- aliases ---------------------------------------------------------------------------------


ALIAS_CASES: list[tuple[str, Any, str, Any]] = [
    ("duration_ms", 12.5, "latency_ms", 12.5),
    ("elapsed_ms", "30", "latency_ms", 30.0),
    ("latency", 7, "latency_ms", 7.0),  # a bare number under a unit-less key is ms
    ("response_time_ms", 81, "latency_ms", 81.0),
    ("took_ms", 3, "latency_ms", 3.0),
    ("duration", "2.5s", "latency_ms", 2500.0),
    ("latency_s", 0.25, "latency_ms", 250.0),
    ("requestId", "r-1", "request_id", "r-1"),
    ("req_id", "r-2", "request_id", "r-2"),
    ("x_request_id", "r-3", "request_id", "r-3"),
    ("correlation_id", "r-4", "request_id", "r-4"),
    ("version", "v1.2", "model_version", "v1.2"),
    ("model.version", "v3", "model_version", "v3"),
    ("modelVersion", "v4", "model_version", "v4"),
    ("model_name", "fraud", "model_id", "fraud"),
    ("model", "recsys", "model_id", "recsys"),
    ("msg", "hello", "event", "hello"),
    ("levelname", "WARNING", "level", "warning"),
    ("severity", "Warn", "level", "warning"),
    ("service.name", "svc", "service", "svc"),
    ("errorType", "KeyError", "error_type", "KeyError"),
    ("statusCode", 503, "status_code", 503),
    ("prompt_tokens", 812, "input_size", 812),
    ("cached", True, "cache_hit", True),
    ("probability", 0.75, "confidence", 0.75),
]


def test_alias_fills_its_column(tmp_path: Path) -> None:
    """Each common spelling of a field fills the same event column (one record per spelling)."""
    records = [{"timestamp": 1768272420, field: value} for field, value, _, _ in ALIAS_CASES]
    got = ingest_records(tmp_path, records)
    wrong = [(field, column, event[column], expected)
             for event, (field, _, column, expected) in zip(got.events, ALIAS_CASES, strict=True)
             if event[column] != expected]
    assert wrong == []


def test_nested_model_object(tmp_path: Path) -> None:
    """{"model": {"name": ..., "version": ...}} fills model_id and model_version."""
    event = ingest_records(tmp_path, [{"event": "p", "model": {"name": "fraud", "version": "v2"}}]).one()
    assert (event["model_id"], event["model_version"]) == ("fraud", "v2")


def test_canonical_field_wins_over_alias(tmp_path: Path) -> None:
    """When both spellings are present, the canonical one is used."""
    event = ingest_records(tmp_path, [{"event": "p", "latency_ms": 10, "duration": "5s",
                                       "request_id": "a", "requestId": "b"}]).one()
    assert (event["latency_ms"], event["request_id"]) == (10.0, "a")


DURATIONS = [("47ms", 47.0), ("0.047s", 47.0), ("1.2 s", 1200.0), ("250us", 0.25), ("250µs", 0.25),
             ("1500000ns", 1.5), ("2m", 120000.0), ("3 sec", 3000.0), (" 8 ms ", 8.0), ("1e3ms", 1000.0)]


def test_durations_with_units_become_milliseconds(tmp_path: Path) -> None:
    """Text with a unit is converted to ms; the original text is in latency_raw and attrs."""
    got = ingest_records(tmp_path, [{"event": "p", "duration": text} for text, _ in DURATIONS])
    assert [e["latency_ms"] for e in got.events] == pytest.approx([ms for _, ms in DURATIONS])
    assert [e["latency_raw"] for e in got.events] == [text for text, _ in DURATIONS]
    assert [json.loads(e["attrs"])["duration"] for e in got.events] == [text for text, _ in DURATIONS]


def test_wrong_latency_types_are_kept_and_flagged(tmp_path: Path) -> None:
    """"47ms", "NaN", null, negative, absurd latencies: records kept, odd values flagged, NaN not a number."""
    values: list[Any] = ["47ms", "NaN", None, -5, 5e9, "fast", True, {"total": 3}, "Infinity", 12]
    got = ingest_records(tmp_path, [{"event": "p", "timestamp": 1768272420, "latency_ms": v}
                                    for v in values])
    assert len(got.events) == len(values)
    pairs = [(e["latency_ms"], e["latency_raw"]) for e in got.events]
    assert pairs == [
        (47.0, "47ms"), (None, "NaN"), (None, None), (-5.0, None), (5e9, None), (None, "fast"),
        (None, "true"), (None, '{"total":3}'), (None, "Infinity"), (12.0, None),
    ]
    assert got.report.flags == {"unparsed_latency": 5, "negative_latency": 1, "absurd_latency": 1}
    summary = cli_summary_flags(got.report)
    assert any("negative latencies" in line for line in summary)
    assert any("latencies over 1 hour" in line for line in summary)
    assert any("not numbers" in line for line in summary)


def cli_summary_flags(report: Any) -> list[str]:
    from mlinvestigate.ingest.report import describe

    return [line for line in describe(report) if "flagged" in line]


# --- user mappings ---------------------------------------------------------------------------


def _mapped_records(tmp_path: Path) -> tuple[Path, Path]:
    first = write_log(tmp_path, "first.log", [json.dumps(
        {"event": "p", "latency_ms": 99, "payload": {"timing": {"total_ms": "12ms"}},
         "meta": {"build": "b7"}})])
    second = write_log(tmp_path, "second.log", [json.dumps(
        {"event": "q", "payload": {"timing": {"total_ms": 5}}, "meta": {"build": "b8"}})])
    return first, second


def _events(db: Path) -> list[dict[str, Any]]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return rows(con, "SELECT event, latency_ms, latency_raw, model_version FROM events "
                         "ORDER BY source_id")
    finally:
        con.close()


def test_map_option_is_stored_with_the_database(tmp_path: Path) -> None:
    """--map wins over the aliases, and is stored so that a later ingest without it agrees."""
    first, second = _mapped_records(tmp_path)
    db = tmp_path / "m.duckdb"
    assert cli("ingest", str(first), "--db", str(db), "--quiet",
               "--map", "latency_ms=payload.timing.total_ms").code == 0
    assert cli("ingest", str(second), "--db", str(db), "--quiet").code == 0
    assert _events(db) == [
        {"event": "p", "latency_ms": 12.0, "latency_raw": "12ms", "model_version": None},
        {"event": "q", "latency_ms": 5.0, "latency_raw": None, "model_version": None},
    ]


def test_config_file_mappings(tmp_path: Path) -> None:
    """./mlinv.toml [mappings] is read by default, --config FILE on request."""
    first, second = _mapped_records(tmp_path)
    (tmp_path / "mlinv.toml").write_text('[mappings]\nmodel_version = "meta.build"\n')
    other = tmp_path / "other.toml"
    other.write_text('[mappings]\nlatency_ms = "payload.timing.total_ms"\n')
    db = tmp_path / "c.duckdb"
    assert cli("ingest", str(first), "--db", str(db), "--quiet", cwd=tmp_path).code == 0
    assert cli("ingest", str(second), "--db", str(db), "--quiet", "--config", str(other),
               cwd=tmp_path).code == 0
    assert _events(db) == [
        {"event": "p", "latency_ms": 99.0, "latency_raw": None, "model_version": "b7"},
        {"event": "q", "latency_ms": 5.0, "latency_raw": None, "model_version": "b8"},
    ]


@pytest.mark.parametrize(
    ("args", "config", "fragment"),
    [
        (["--map", "foo=bar"], None, "'foo' is not an event column"),
        (["--map", "latency_ms"], None, "expected COLUMN=PATH"),
        (["--map", "latency_ms="], None, "expected COLUMN=PATH"),
        (["--map", "latency_ms=a..b"], None, "empty part"),
        ([], "[mappings\n", "mlinv.toml"),
        ([], "[mappings]\nlatency_ms = 3\n", "must map event columns"),
        ([], "[mappings]\nnot_a_column = \"x\"\n", "not an event column"),
        ([], "[other]\n", "unknown section"),
        (["--config", "missing.toml"], None, "does not exist"),
    ],
)
def test_bad_mapping_or_config_is_a_one_line_usage_error(
    tmp_path: Path, args: list[str], config: str | None, fragment: str
) -> None:
    """A bad mapping or config file: exit 2, one line, and nothing stored."""
    if config is not None:
        (tmp_path / "mlinv.toml").write_text(config)
    log = write_log(tmp_path, "a.log", ['{"event": "p"}'])
    db = tmp_path / "bad.duckdb"
    assert_one_line_error(cli("ingest", str(log), "--db", str(db), *args, cwd=tmp_path), 2, fragment)
    assert not db.exists()


# --- error categories ------------------------------------------------------------------------

CATEGORY_TABLE: list[tuple[dict[str, Any], str | None]] = [
    # seed 000's categorise_error: TimeoutError, MemoryError, ValueError("...input..."), RuntimeError
    ({"event": "prediction_error", "level": "error", "error_type": "TimeoutError"}, "timeout"),
    ({"event": "prediction_error", "level": "error", "error_type": "MemoryError"}, "infrastructure"),
    ({"event": "prediction_error", "level": "error", "error_type": "ValueError",
      "error_message": "invalid input: missing field 'amount'"}, "input_validation"),
    ({"event": "prediction_error", "level": "error", "error_type": "RuntimeError",
      "error_message": "CUDA error: device-side assert triggered"}, "model_inference"),
    # unknown errors: infrastructure, unless raised in the model (context.get("in_model") in the seed)
    ({"event": "request_failed", "level": "error", "error_type": "SomethingUnknown"}, "infrastructure"),
    ({"event": "prediction_error", "level": "error", "error_type": "SomethingUnknown"}, "model_inference"),
    # status codes
    ({"event": "request_failed", "status_code": 504}, "timeout"),
    ({"event": "request_failed", "status_code": 408}, "timeout"),
    ({"event": "request_failed", "status_code": 422}, "input_validation"),
    ({"event": "request_failed", "status_code": 400}, "input_validation"),
    ({"event": "request_failed", "status_code": 503}, "infrastructure"),
    ({"event": "request_done", "status": 502}, "infrastructure"),
    # error types and messages
    ({"level": "error", "error_type": "ConnectionRefusedError"}, "infrastructure"),
    ({"level": "error", "error_message": "No space left on device"}, "infrastructure"),
    ({"level": "error", "error_type": "pydantic.ValidationError"}, "input_validation"),
    ({"level": "error", "error_type": "BusinessRuleViolation"}, "business_logic"),
    ({"event": "prediction_rejected_by_rule", "level": "error"}, "business_logic"),
    ({"level": "error", "error_message": "model returned NaN scores"}, "model_inference"),
    ({"event": "inference_failed", "level": "error"}, "model_inference"),
    ({"error": {"type": "TimeoutError", "message": "x"}}, "timeout"),
    # the message is the event for stdlib loggers
    ({"levelname": "ERROR", "message": "Request timed out after 30s"}, "timeout"),
    ({"status": "timeout", "event": "prediction"}, "timeout"),
    # an explicit category wins, in any of its spellings
    ({"level": "error", "error_type": "TimeoutError", "error_category": "business_logic"}, "business_logic"),
    ({"level": "error", "error_category": "INFRA"}, "infrastructure"),
    ({"level": "error", "error_category": "validation"}, "input_validation"),
    ({"level": "error", "error": {"category": "model"}}, "model_inference"),
    # not errors
    ({"event": "prediction_success", "level": "info", "status_code": 200, "latency_ms": 4}, None),
    ({"event": "request_start"}, None),
    ({"event": "model_load_success", "timestamp": 1768262403.8}, None),
    ({"message": "ready", "levelname": "INFO"}, None),
    ({"event": "prediction", "status": "success", "error": None}, None),
]


def test_error_category_table(tmp_path: Path) -> None:
    """error_category follows seed 000's taxonomy; non-error records have NULL category."""
    got = ingest_records(tmp_path, [record for record, _ in CATEGORY_TABLE])
    actual = [(json.loads(e["attrs"]), e["error_category"]) for e in got.events]
    mismatches = [(record, got_category, expected)
                  for (record, got_category), (_, expected) in zip(actual, CATEGORY_TABLE, strict=True)
                  if got_category != expected]
    assert mismatches == []


def test_sample_logs_use_only_the_five_categories(tmp_path: Path) -> None:
    """On the generated logs every error gets one of the five categories, successes none."""
    from ingest_helpers import ingest

    from mlinvestigate.sample import generate

    path = tmp_path / "sample.jsonl"
    generate(str(path), lines=3000, seed=11)
    got = ingest([path])
    categories = {e["error_category"] for e in got.events}
    assert categories <= {None, "timeout", "input_validation", "model_inference", "infrastructure",
                          "business_logic"}
    assert all(e["error_category"] is None for e in got.events if e["event"].endswith("_success"))
    assert any(e["error_category"] is not None for e in got.events)
