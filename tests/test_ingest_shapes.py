"""Zero configuration for real log shapes, detected per line, mixed in one file if need be."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest
from ingest_helpers import (
    OTLP_REFERENCE_EXAMPLE,
    TYPED_COLUMNS,
    cli_process,
    compact,
    ingest,
    ingest_records,
    ingest_text,
    jsonl,
    rows,
    utc,
    write_log,
)

# --- one shape at a time ---------------------------------------------------------------------


def test_seed_style_flat_records(tmp_path: Path) -> None:
    """The seeds' flat JSON: epoch-float or ISO timestamps, request/model fields, latency_ms."""
    got = ingest_records(tmp_path, [
        {"event": "prediction_success", "request_id": "req-c0fb2735a6", "model_id": "fraud",
         "model_version": "v1.4.2", "input_hash": "341f09571fe1b551", "input_size": 209,
         "output_hash": "4fa047b66ab60f7e", "latency_ms": 17.05, "prediction": 0.0257,
         "confidence": 0.9587, "cache_hit": False, "features": {"amount": 22.77},
         "timestamp": 1768262409.160619, "trace_id": "25892cc8a78236fa85aeaf3a9e350ece",
         "span_id": "8dfdc9aed1fd1185", "level": "info", "service": "model-server"},
        {"timestamp": "2026-01-13T00:00:09.165352Z", "service": "gateway", "event": "request_success",
         "level": "info", "request_id": "req-c0fb2735a6", "model_id": "fraud", "status_code": 200,
         "latency_ms": 22.022},
    ])
    model, gateway = got.events
    assert got.typed(model) == {
        "ts": utc(2026, 1, 13, 0, 0, 9, 160619), "ts_inferred": False, "event": "prediction_success",
        "level": "info", "service": "model-server", "request_id": "req-c0fb2735a6",
        "trace_id": "25892cc8a78236fa85aeaf3a9e350ece", "span_id": "8dfdc9aed1fd1185",
        "model_id": "fraud", "model_version": "v1.4.2", "status": None, "latency_ms": 17.05,
        "input_size": 209, "input_hash": "341f09571fe1b551", "output_hash": "4fa047b66ab60f7e",
        "prediction": "0.0257", "confidence": 0.9587, "error_type": None, "error_category": None,
        "error_message": None, "status_code": None, "cache_hit": False,
    }
    assert gateway["ts"] == utc(2026, 1, 13, 0, 0, 9, 165352)
    assert (gateway["service"], gateway["status_code"], gateway["latency_ms"]) == ("gateway", 200, 22.022)
    assert json.loads(model["attrs"])["features"] == {"amount": 22.77}


def test_structlog_json_renderer(tmp_path: Path) -> None:
    """structlog's JSONRenderer output: event, timestamp (TimeStamper iso), level, logger."""
    got = ingest_records(tmp_path, [
        {"model_version": "v2", "request_id": "r-1", "latency_ms": 12.5, "event": "prediction",
         "level": "info", "logger": "fraud.api", "timestamp": "2026-01-13T02:47:00.123456Z"},
        {"exc_info": "Traceback ...", "event": "prediction failed", "level": "error",
         "logger": "fraud.api", "timestamp": "2026-01-13T02:47:01Z", "request_id": "r-2"},
    ])
    ok, failed = got.events
    assert (ok["ts"], ok["event"], ok["level"], ok["service"], ok["request_id"], ok["model_version"],
            ok["latency_ms"]) == (utc(2026, 1, 13, 2, 47, 0, 123456), "prediction", "info", "fraud.api",
                                  "r-1", "v2", 12.5)
    assert (failed["ts"], failed["level"], failed["error_message"]) == (
        utc(2026, 1, 13, 2, 47, 1), "error", "Traceback ...")
    assert failed["error_category"] is not None and ok["error_category"] is None


def test_python_json_logger_and_stdlib_formatters(tmp_path: Path) -> None:
    """python-json-logger/stdlib JSON: message/msg, asctime with a comma, levelname, name, renames."""
    got = ingest_records(tmp_path, [
        {"asctime": "2026-01-13 02:47:00,123", "levelname": "WARNING", "name": "serving.fraud",
         "message": "slow prediction", "requestId": "r-1", "duration_ms": 812},
        {"time": "2026-01-13T02:47:00.500+00:00", "levelname": "INFO", "name": "serving.fraud",
         "msg": "prediction", "req_id": "r-2", "version": "v3"},
        # rename_fields={"levelname": "level", "asctime": "timestamp", "name": "logger"}
        {"timestamp": "2026-01-13 02:47:01,000", "level": "ERROR", "logger": "serving.fraud",
         "message": "prediction failed", "exc_type": "ValueError", "x_request_id": "r-3"},
    ])
    first, second, third = got.events
    assert (first["ts"], first["level"], first["service"], first["event"], first["request_id"],
            first["latency_ms"]) == (utc(2026, 1, 13, 2, 47, 0, 123000), "warning", "serving.fraud",
                                     "slow prediction", "r-1", 812.0)
    assert (second["ts"], second["level"], second["event"], second["request_id"],
            second["model_version"]) == (utc(2026, 1, 13, 2, 47, 0, 500000), "info", "prediction",
                                         "r-2", "v3")
    assert (third["ts"], third["level"], third["service"], third["error_type"], third["request_id"]) == (
        utc(2026, 1, 13, 2, 47, 1), "error", "serving.fraud", "ValueError", "r-3")


def test_ecs_dotted_and_nested_forms_give_the_same_columns(tmp_path: Path) -> None:
    """Elastic Common Schema written flat with dotted keys or as nested objects: same columns."""
    dotted = {
        "@timestamp": "2026-01-13T02:47:00.123Z", "log.level": "error", "log.logger": "fraud",
        "message": "prediction failed", "event.action": "prediction", "event.duration": 47_000_000,
        "event.outcome": "failure", "trace.id": "5B8EFFF798038103D269B633813FC60C",
        "span.id": "eee19b7ec3c1b174", "service.name": "fraud-scorer", "error.type": "TimeoutError",
        "error.message": "deadline exceeded", "http.response.status_code": 504,
        "http.request.id": "req-9",
    }
    nested = {
        "@timestamp": "2026-01-13T02:47:00.123Z", "log": {"level": "error", "logger": "fraud"},
        "message": "prediction failed",
        "event": {"action": "prediction", "duration": 47_000_000, "outcome": "failure"},
        "trace": {"id": "5B8EFFF798038103D269B633813FC60C"}, "span": {"id": "eee19b7ec3c1b174"},
        "service": {"name": "fraud-scorer"},
        "error": {"type": "TimeoutError", "message": "deadline exceeded"},
        "http": {"response": {"status_code": 504}, "request": {"id": "req-9"}},
    }
    got = ingest_records(tmp_path, [dotted, nested])
    flat_row, nested_row = (got.typed(e) for e in got.events)
    assert flat_row == nested_row
    assert flat_row == {
        **flat_row,
        "ts": utc(2026, 1, 13, 2, 47, 0, 123000), "level": "error", "event": "prediction",
        "service": "fraud-scorer", "trace_id": "5b8efff798038103d269b633813fc60c",
        "span_id": "eee19b7ec3c1b174", "latency_ms": 47.0, "status": "failure", "request_id": "req-9",
        "error_type": "TimeoutError", "error_message": "deadline exceeded", "status_code": 504,
        "error_category": "timeout",
    }


def test_otlp_reference_example_is_one_event(tmp_path: Path) -> None:
    """The OTLP/JSON log record of reference-vectors §6 becomes one typed event."""
    got = ingest_text(tmp_path, [compact(OTLP_REFERENCE_EXAMPLE)])
    event = got.one()
    assert got.typed(event) == {
        "ts": utc(2024, 6, 1, 0, 0, 0, 123000), "ts_inferred": False, "event": "prediction",
        "level": "error", "service": "fraud-scorer", "request_id": None,
        "trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b174",
        "model_id": None, "model_version": "v2", "status": None, "latency_ms": 1834.5,
        "input_size": 2048, "input_hash": None, "output_hash": None, "prediction": None,
        "confidence": None, "error_type": "timeout", "error_category": "timeout",
        "error_message": None, "status_code": None, "cache_hit": None,
    }
    attrs = json.loads(event["attrs"])
    assert attrs["body"] == "inference failed" and attrs["service.version"] == "2.3.1"
    assert (event["line"], event["record"]) == (1, 0)


def test_otlp_many_records_per_line_numeric_times_and_severity_numbers(tmp_path: Path) -> None:
    """OTLP: many records a line, numeric timeUnixNano, upper-case ids, severityNumber, observed time."""
    def attr(key: str, **value: Any) -> dict[str, Any]:
        return {"key": key, "value": value}

    doc = {"resourceLogs": [
        {"resource": {"attributes": [attr("service.name", stringValue="svc-a")]},
         "scopeLogs": [{"scope": {"name": "s"}, "logRecords": [
             {"timeUnixNano": 1768272420123456789, "severityNumber": 9,
              "traceId": "5B8EFFF798038103D269B633813FC60C", "spanId": "EEE19B7EC3C1B174",
              "body": {"stringValue": "prediction"},
              "attributes": [attr("request_id", stringValue="r-1"), attr("latency_ms", intValue="40")]},
             {"timeUnixNano": "0", "observedTimeUnixNano": "1768272421000000000", "severityNumber": 21,
              "eventName": "model_crash"},
         ]}]},
        {"resource": {"attributes": [attr("service.name", stringValue="svc-b")]},
         "scopeLogs": [{"logRecords": [
             {"timeUnixNano": "1768272422000000000", "severityNumber": 17, "eventName": "prediction_error",
              "attributes": [attr("error.type", stringValue="RuntimeError"),
                             attr("ml.model.version", stringValue="v9")]},
         ]}]},
    ]}
    got = ingest_text(tmp_path, [json.dumps(doc), json.dumps({"resourceLogs": []})])
    assert [(e["line"], e["record"]) for e in got.events] == [(1, 0), (1, 1), (1, 2)]
    first, second, third = got.events
    assert (first["ts"], first["level"], first["service"], first["event"], first["trace_id"],
            first["span_id"], first["request_id"], first["latency_ms"]) == (
        utc(2026, 1, 13, 2, 47, 0, 123456), "info", "svc-a", "prediction",
        "5b8efff798038103d269b633813fc60c", "eee19b7ec3c1b174", "r-1", 40.0)
    assert (second["ts"], second["level"], second["event"]) == (utc(2026, 1, 13, 2, 47, 1), "critical",
                                                                "model_crash")
    assert (third["service"], third["level"], third["model_version"], third["error_category"]) == (
        "svc-b", "error", "v9", "model_inference")
    # An export without records is not silently dropped: it is a reject.
    assert [(r["line"], r["kind"]) for r in got.rejects] == [(2, "envelope")]


def test_gcp_cloud_logging_export(tmp_path: Path) -> None:
    """GCP Cloud Logging: jsonPayload/textPayload with severity, timestamp, trace, httpRequest, labels."""
    got = ingest_records(tmp_path, [
        {"insertId": "abc", "jsonPayload": {"event": "prediction", "request_id": "r-1",
                                            "model_version": "v2", "latency_ms": 12},
         "severity": "WARNING", "timestamp": "2026-01-13T02:47:00.123456Z",
         "trace": "projects/my-proj/traces/5b8efff798038103d269b633813fc60c",
         "resource": {"type": "k8s_container", "labels": {"container_name": "fraud-scorer"}}},
        {"textPayload": "request timed out", "severity": "ERROR",
         "timestamp": "2026-01-13T02:47:01Z", "httpRequest": {"status": 504, "latency": "5.001s"}},
    ])
    first, second = got.events
    assert (first["ts"], first["level"], first["event"], first["request_id"], first["model_version"],
            first["latency_ms"], first["trace_id"], first["service"]) == (
        utc(2026, 1, 13, 2, 47, 0, 123456), "warning", "prediction", "r-1", "v2", 12.0,
        "5b8efff798038103d269b633813fc60c", "fraud-scorer")
    assert json.loads(first["attrs"])["_envelope"]["insertId"] == "abc"
    assert (second["event"], second["level"], second["status_code"], second["latency_ms"],
            second["error_category"]) == ("request timed out", "error", 504, 5001.0, "timeout")


def test_json_after_a_plain_prefix(tmp_path: Path) -> None:
    """Kubernetes CRI lines, `kubectl logs --timestamps` lines and Python's `INFO:name:` prefix."""
    got = ingest_text(tmp_path, [
        '2026-01-13T02:47:00.123456789Z stdout F {"event": "prediction", "level": "info", '
        '"request_id": "r-1", "timestamp": "2026-01-13T02:46:59.5Z"}',
        '2026-01-13T02:47:01.000000001+01:00 {"event": "prediction", "request_id": "r-2"}',
        'WARNING:fraud.api:{"event": "slow_prediction", "request_id": "r-3", "latency_ms": 900}',
        '2026-01-13T02:47:02Z stderr P {"event": "partial", "request_id": "r-4"}',
    ])
    cri, kubectl, python, partial = got.events
    # The record's own time wins over the runtime's.
    assert (cri["ts"], cri["ts_inferred"], cri["event"], cri["request_id"]) == (
        utc(2026, 1, 13, 2, 46, 59, 500000), False, "prediction", "r-1")
    # Without one, the prefix's time is used (converted to UTC).
    assert (kubectl["ts"], kubectl["request_id"]) == (utc(2026, 1, 13, 1, 47, 1), "r-2")
    # Python's prefix gives the level and the logger; the time is the previous record's.
    assert (python["level"], python["service"], python["latency_ms"], python["ts"],
            python["ts_inferred"]) == ("warning", "fraud.api", 900.0, utc(2026, 1, 13, 1, 47, 1), True)
    assert partial["ts"] == utc(2026, 1, 13, 2, 47, 2)
    # attrs is the JSON part of the line.
    assert json.loads(kubectl["attrs"]) == {"event": "prediction", "request_id": "r-2"}
    assert got.rejects == []


def test_docker_json_file_lines(tmp_path: Path) -> None:
    """Docker json-file: `log` holds the record; plain text is a reject; an ECS `log` is not Docker."""
    inner = {"event": "prediction", "timestamp": "2026-01-13T02:47:00Z", "request_id": "r-1",
             "latency_ms": 5}
    got = ingest_records(tmp_path, [
        {"log": json.dumps(inner) + "\n", "stream": "stdout", "time": "2026-01-13T02:47:00.9Z"},
        {"log": json.dumps({"event": "no_time", "level": "info"}) + "\n", "stream": "stdout",
         "time": "2026-01-13T02:47:03.25Z"},
        {"log": "Starting gunicorn 21.2.0\n", "stream": "stderr", "time": "2026-01-13T02:47:04Z"},
        {"log": {"level": "info", "logger": "ecs"}, "stream": "x", "message": "ecs record",
         "@timestamp": "2026-01-13T02:47:05Z"},
    ])
    first, second, ecs = got.events
    assert (first["event"], first["ts"], first["request_id"], first["latency_ms"]) == (
        "prediction", utc(2026, 1, 13, 2, 47), "r-1", 5.0)
    assert json.loads(first["attrs"])["_envelope"] == {"stream": "stdout", "time": "2026-01-13T02:47:00.9Z"}
    assert (second["event"], second["ts"], second["ts_inferred"]) == (
        "no_time", utc(2026, 1, 13, 2, 47, 3, 250000), False)
    assert (ecs["event"], ecs["level"], ecs["service"]) == ("ecs record", "info", "ecs")
    assert [(r["line"], r["kind"]) for r in got.rejects] == [(3, "envelope")]
    assert "Starting gunicorn" in got.rejects[0]["raw"]


def test_plain_text_lines_are_kept_as_not_json_rejects(tmp_path: Path) -> None:
    """Plain-text lines between records are not_json rejects: never dropped, never fatal."""
    got = ingest_text(tmp_path, [
        '{"event": "a", "timestamp": 1768272420}',
        "Traceback (most recent call last):",
        '  File "app.py", line 3, in <module>',
        "WARNING:urllib3.connectionpool:Connection pool is full",
        '{"event": "b"}',
    ])
    assert [e["event"] for e in got.events] == ["a", "b"]
    assert [(r["line"], r["kind"], r["reason"]) for r in got.rejects] == [
        (2, "not_json", "not JSON (plain text line)"),
        (3, "not_json", "not JSON (plain text line)"),
        (4, "not_json", "not JSON (plain text line)"),
    ]
    assert got.rejects[1]["raw"] == '  File "app.py", line 3, in <module>'


def test_every_shape_mixed_in_one_file(tmp_path: Path) -> None:
    """Shapes are detected per line: one file mixing all of them gives one event per record."""
    lines = [
        json.dumps({"event": "flat", "timestamp": 1768272420.5, "request_id": "r-flat"}),
        json.dumps({"event": "structlog", "timestamp": "2026-01-13T02:47:01Z", "level": "info",
                    "request_id": "r-struct"}),
        json.dumps({"asctime": "2026-01-13 02:47:02,000", "levelname": "INFO", "message": "stdlib",
                    "requestId": "r-std"}),
        json.dumps({"@timestamp": "2026-01-13T02:47:03Z", "log.level": "info", "message": "ecs",
                    "http.request.id": "r-ecs"}),
        compact(OTLP_REFERENCE_EXAMPLE),
        json.dumps({"jsonPayload": {"event": "gcp", "request_id": "r-gcp"}, "severity": "INFO",
                    "timestamp": "2026-01-13T02:47:04Z"}),
        '2026-01-13T02:47:05Z stdout F {"event": "cri", "request_id": "r-cri"}',
        '2026-01-13T02:47:06Z {"event": "kubectl", "request_id": "r-kubectl"}',
        'INFO:app:{"event": "python", "request_id": "r-py"}',
        json.dumps({"log": json.dumps({"event": "docker", "request_id": "r-docker"}) + "\n",
                    "stream": "stdout", "time": "2026-01-13T02:47:07Z"}),
        "just some text",
    ]
    got = ingest_text(tmp_path, lines)
    assert [e["event"] for e in got.events] == [
        "flat", "structlog", "stdlib", "ecs", "prediction", "gcp", "cri", "kubectl", "python", "docker"]
    assert [e["request_id"] for e in got.events] == [
        "r-flat", "r-struct", "r-std", "r-ecs", None, "r-gcp", "r-cri", "r-kubectl", "r-py", "r-docker"]
    assert all(e["ts"] is not None for e in got.events)
    assert [(r["line"], r["kind"]) for r in got.rejects] == [(11, "not_json")]


# --- the acceptance example ----------------------------------------------------------

REQUESTS: list[dict[str, Any]] = [
    {"ts_ns": 1768272420123456000, "iso": "2026-01-13T02:47:00.123456", "event": "prediction",
     "level": "info", "service": "fraud-scorer", "request_id": "req-1", "model_version": "v2.1.0",
     "latency_ms": 47.25, "trace_id": "5b8efff798038103d269b633813fc60c", "span_id": "eee19b7ec3c1b174",
     "status_code": 200, "input_size": 209},
    {"ts_ns": 1768272421500000000, "iso": "2026-01-13T02:47:01.5", "event": "prediction_error",
     "level": "error", "service": "fraud-scorer", "request_id": "req-2", "model_version": "v2.1.0",
     "latency_ms": 5000.0, "trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "b7ad6b7169203331",
     "status_code": 504, "input_size": 4096, "error_type": "TimeoutError",
     "error_message": "deadline exceeded after 5000ms"},
]


def _structlog(req: dict[str, Any]) -> str:
    record = {"event": req["event"], "level": req["level"], "timestamp": req["iso"] + "Z",
              "service": req["service"], "request_id": req["request_id"],
              "model_version": req["model_version"], "latency_ms": req["latency_ms"],
              "trace_id": req["trace_id"], "span_id": req["span_id"], "status_code": req["status_code"],
              "input_size": req["input_size"]}
    if "error_type" in req:
        record |= {"error_type": req["error_type"], "error_message": req["error_message"]}
    return json.dumps(record)


def _cri(req: dict[str, Any]) -> str:
    """kubectl-logs-style CRI line around a python-json-logger record with other spellings."""
    hours, rest = req["iso"].split("T")[1].split(":", 1)
    local = f"{req['iso'].split('T')[0]}T{int(hours) + 1:02d}:{rest}+01:00"  # same instant
    record = {"timestamp": local, "levelname": req["level"].upper(), "name": req["service"],
              "message": req["event"], "requestId": req["request_id"], "version": req["model_version"],
              "duration": f"{req['latency_ms']}ms", "traceId": req["trace_id"].upper(),
              "spanId": req["span_id"], "http_status": req["status_code"],
              "input_length": req["input_size"]}
    if "error_type" in req:
        record |= {"exc_type": req["error_type"], "error": req["error_message"]}
    return f"{req['iso']}999Z stdout F {json.dumps(record)}"


def _otlp(requests: list[dict[str, Any]]) -> str:
    def attr(key: str, **value: Any) -> dict[str, Any]:
        return {"key": key, "value": value}

    records = []
    for req in requests:
        attributes = [attr("request_id", stringValue=req["request_id"]),
                      attr("ml.model.version", stringValue=req["model_version"]),
                      attr("latency_ms", doubleValue=req["latency_ms"]),
                      attr("http.response.status_code", intValue=str(req["status_code"])),
                      attr("ml.input.size", intValue=str(req["input_size"]))]
        if "error_type" in req:
            attributes += [attr("error.type", stringValue=req["error_type"]),
                           attr("error.message", stringValue=req["error_message"])]
        records.append({"timeUnixNano": str(req["ts_ns"]), "severityText": req["level"].upper(),
                        "traceId": req["trace_id"], "spanId": req["span_id"].upper(),
                        "eventName": req["event"], "attributes": attributes})
    return json.dumps({"resourceLogs": [{
        "resource": {"attributes": [attr("service.name", stringValue=requests[0]["service"])]},
        "scopeLogs": [{"scope": {"name": "serving"}, "logRecords": records}]}]})


def test_cri_stdin_otlp_and_structlog_give_the_same_typed_columns(tmp_path: Path) -> None:
    """The issue's example: piped CRI output, an OTLP export and a structlog file give the same columns."""
    otlp = write_log(tmp_path, "export.otlp.json", [_otlp(REQUESTS)])
    structlog = write_log(tmp_path, "app.jsonl", [_structlog(r) for r in REQUESTS])
    cri = "".join(_cri(r) + "\n" for r in REQUESTS).encode()
    db = tmp_path / "one.duckdb"
    result = cli_process("ingest", "-", str(otlp), str(structlog), "--db", str(db), input=cri)
    assert result.code == 0, result.err
    con = duckdb.connect(str(db), read_only=True)
    try:
        events = rows(con, "SELECT * FROM events ORDER BY source, line, record")
    finally:
        con.close()
    assert len(events) == 3 * len(REQUESTS)
    by_source: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_source.setdefault(event["source"], []).append({k: event[k] for k in TYPED_COLUMNS})
    assert set(by_source) == {"<stdin>", str(otlp), str(structlog)}
    reference = by_source[str(structlog)]
    assert by_source["<stdin>"] == reference
    assert by_source[str(otlp)] == reference
    ok, failed = reference
    assert (ok["ts"], ok["level"], ok["latency_ms"], ok["error_category"], ok["status_code"]) == (
        utc(2026, 1, 13, 2, 47, 0, 123456), "info", 47.25, None, 200)
    assert (failed["ts"], failed["level"], failed["error_category"], failed["error_type"]) == (
        utc(2026, 1, 13, 2, 47, 1, 500000), "error", "timeout", "TimeoutError")


@pytest.mark.parametrize("shape", ["structlog", "cri", "otlp"])
def test_each_acceptance_shape_alone(tmp_path: Path, shape: str) -> None:
    """Each writer of the acceptance example parses on its own, without rejects."""
    lines = {"structlog": [_structlog(r) for r in REQUESTS], "cri": [_cri(r) for r in REQUESTS],
             "otlp": [_otlp(REQUESTS)]}[shape]
    got = ingest([write_log(tmp_path, "x.log", lines)])
    assert got.rejects == []
    assert [e["request_id"] for e in got.events] == ["req-1", "req-2"]


def test_attrs_keeps_the_whole_record(tmp_path: Path) -> None:
    """Fields no column reads stay queryable in attrs, nested objects included."""
    got = ingest_text(tmp_path, jsonl([{"event": "p", "features": {"amount": 22.77, "tags": ["a", "b"]},
                                        "client_id": "web"}]))
    attrs = json.loads(got.one()["attrs"])
    assert attrs == {"event": "p", "features": {"amount": 22.77, "tags": ["a", "b"]}, "client_id": "web"}
