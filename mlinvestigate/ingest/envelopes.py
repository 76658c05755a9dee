"""Records that arrive inside another JSON document, unwrapped into flat records.

- Docker json-file: `{"log": "<the record>\\n", "stream": "stdout", "time": "..."}`
- GCP Cloud Logging export: the record is `jsonPayload`; `severity`, `timestamp`, `trace`,
  `spanId`, `httpRequest` sit beside it.
- OpenTelemetry OTLP/JSON: `resourceLogs → scopeLogs → logRecords`, attributes as key/value
  lists; one line holds many records.

These shapes are rare per line count (or, for Docker, a whole file), so plain Python is fine
here; the flat records go through the same SQL as every other record. Envelope fields that are
not part of the record are kept under "_envelope" so nothing is lost.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Unwrapped:
    records: list[str]
    """Flat JSON object texts, in order."""
    reject_reason: str | None = None


def unwrap(text: str) -> Unwrapped:
    try:
        doc = json.loads(text)
    except ValueError:
        return Unwrapped([], "malformed or truncated JSON")
    if not isinstance(doc, dict):
        return Unwrapped([], "JSON value is not an object")
    if "resourceLogs" in doc:
        return _otlp(doc)
    if "jsonPayload" in doc or "textPayload" in doc:
        return _gcp(doc)
    if isinstance(doc.get("log"), str) and ("stream" in doc or "time" in doc):
        return _docker(doc)
    return Unwrapped([json.dumps(doc, ensure_ascii=False)])


def _docker(doc: dict[str, Any]) -> Unwrapped:
    inner_text = doc["log"].strip()
    envelope = {k: v for k, v in doc.items() if k != "log"}
    brace = inner_text.find("{")
    if brace < 0:
        return Unwrapped([], "not JSON (plain text in a Docker log line)")
    try:
        inner = json.loads(inner_text[brace:])
    except ValueError:
        return Unwrapped([], "malformed or truncated JSON inside a Docker log line")
    if not isinstance(inner, dict):
        return Unwrapped([], "JSON value is not an object (inside a Docker log line)")
    if brace > 0:
        envelope["prefix"] = inner_text[:brace]
    if "time" in envelope and not _has_time(inner):
        inner["time"] = envelope["time"]
    inner["_envelope"] = envelope
    return Unwrapped([json.dumps(inner, ensure_ascii=False)])


_TIME_KEYS = ("timestamp", "@timestamp", "time", "ts", "asctime", "datetime", "created")


def _has_time(record: dict[str, Any]) -> bool:
    return any(k in record for k in _TIME_KEYS)


def _gcp(doc: dict[str, Any]) -> Unwrapped:
    payload = doc.get("jsonPayload")
    if isinstance(payload, dict):
        record = dict(payload)
    else:
        record = {"message": doc.get("textPayload")}
    envelope = {k: v for k, v in doc.items() if k not in ("jsonPayload", "textPayload")}
    lifted = {
        "timestamp": envelope.get("timestamp") or envelope.get("receiveTimestamp"),
        "severity": envelope.get("severity"),
        "trace": envelope.get("trace"),
        "spanId": envelope.get("spanId"),
    }
    http = envelope.get("httpRequest")
    if isinstance(http, dict):
        lifted["latency"] = http.get("latency")
        lifted["status_code"] = http.get("status")
    resource = envelope.get("resource")
    if isinstance(resource, dict) and isinstance(resource.get("labels"), dict):
        labels = resource["labels"]
        lifted["service"] = labels.get("service_name") or labels.get("container_name")
    for key, value in lifted.items():
        if value is not None and key not in record:
            record[key] = value
    record["_envelope"] = envelope
    return Unwrapped([json.dumps(record, ensure_ascii=False)])


def _any_value(value: Any) -> Any:
    """OTLP AnyValue → a plain JSON value."""
    if not isinstance(value, dict):
        return value
    if "stringValue" in value:
        return value["stringValue"]
    if "intValue" in value:
        try:
            return int(value["intValue"])
        except (TypeError, ValueError):
            return value["intValue"]
    if "doubleValue" in value:
        try:
            return float(value["doubleValue"])
        except (TypeError, ValueError):
            return value["doubleValue"]
    if "boolValue" in value:
        return bool(value["boolValue"])
    if "arrayValue" in value:
        return [_any_value(v) for v in (value["arrayValue"] or {}).get("values", [])]
    if "kvlistValue" in value:
        return _attributes((value["kvlistValue"] or {}).get("values", []))
    if "bytesValue" in value:
        return value["bytesValue"]
    return None


def _attributes(items: Any) -> dict[str, Any]:
    if not isinstance(items, list):
        return {}
    out: dict[str, Any] = {}
    for item in items:
        if isinstance(item, dict) and "key" in item:
            out[str(item["key"])] = _any_value(item.get("value"))
    return out


_SEVERITY_NAMES = ((4, "trace"), (8, "debug"), (12, "info"), (16, "warning"), (20, "error"),
                   (24, "critical"))


def severity_level(number: Any) -> str | None:
    """OTel severityNumber 1–24 → our level names (17+ is an error, per the spec)."""
    try:
        n = int(number)
    except (TypeError, ValueError):
        return None
    for upper, name in _SEVERITY_NAMES:
        if 1 <= n <= upper:
            return name
    return None


def _otlp(doc: dict[str, Any]) -> Unwrapped:
    records: list[str] = []
    for resource_logs in doc.get("resourceLogs") or []:
        if not isinstance(resource_logs, dict):
            continue
        resource = _attributes((resource_logs.get("resource") or {}).get("attributes"))
        for scope_logs in resource_logs.get("scopeLogs") or []:
            if not isinstance(scope_logs, dict):
                continue
            scope = scope_logs.get("scope") or {}
            for log_record in scope_logs.get("logRecords") or []:
                if isinstance(log_record, dict):
                    records.append(_otlp_record(log_record, resource, scope))
    if not records:
        return Unwrapped([], "OTLP document without log records")
    return Unwrapped(records)


def _otlp_record(log_record: dict[str, Any], resource: dict[str, Any], scope: dict[str, Any]) -> str:
    record: dict[str, Any] = {}
    record.update(_attributes(log_record.get("attributes")))
    for key, value in resource.items():
        record.setdefault(key, value)
    time_ns = log_record.get("timeUnixNano")
    if time_ns in (None, "0", 0):
        time_ns = log_record.get("observedTimeUnixNano")
    if time_ns not in (None, "0", 0):
        record["timeUnixNano"] = str(time_ns)
        record.setdefault("timestamp", str(time_ns))
    level = log_record.get("severityText") or severity_level(log_record.get("severityNumber"))
    if level:
        record.setdefault("level", level)
    for key in ("severityNumber", "traceId", "spanId", "flags", "observedTimeUnixNano"):
        if log_record.get(key) not in (None, ""):
            record.setdefault(key, log_record[key])
    body = _any_value(log_record.get("body"))
    if body is not None:
        record.setdefault("body", body)
        if isinstance(body, dict):
            for key, value in body.items():
                record.setdefault(key, value)
    event_name = log_record.get("eventName") or (body if isinstance(body, str) else None)
    if event_name:
        record.setdefault("event", event_name)
    if scope.get("name"):
        record.setdefault("otel.scope", scope["name"])
    return json.dumps(record, ensure_ascii=False)
