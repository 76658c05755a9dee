"""The event table: one row per log record. This module is the single description of its
columns; the migrations, the README table and the ingest SQL all read it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Column:
    name: str
    sql_type: str
    description: str
    """What the column means, its unit, and where it comes from."""
    compression: str | None = None
    """A storage compression forced for this column (DuckDB `USING COMPRESSION`), when the
    automatic choice is measurably worse."""

    def ddl(self) -> str:
        using = f" USING COMPRESSION {self.compression}" if self.compression else ""
        return f"{self.name} {self.sql_type}{using}"


EVENT_COLUMNS: tuple[Column, ...] = (
    Column("ts", "TIMESTAMP", "Event time in UTC (no zone attached; every connection pins TimeZone=UTC). "
           "From timestamp/@timestamp/time/asctime/timeUnixNano…; epoch s/ms/µs/ns detected by magnitude; "
           "ISO without an offset is read as UTC."),
    Column("ts_inferred", "BOOLEAN", "True when the record had no usable timestamp and got the previous "
           "record's time (or the line prefix's time)."),
    Column("event", "VARCHAR", "Event name: event/msg/message/eventName/body."),
    Column("level", "VARCHAR", "Lower-case level: debug/info/warning/error/critical (OTel severityNumber mapped)."),
    Column("service", "VARCHAR", "Emitting service: service/service.name/logger name/resource service.name."),
    Column("request_id", "VARCHAR", "Request id shared across services: request_id/requestId/req_id/x_request_id."),
    Column("trace_id", "VARCHAR", "Trace id (lower-case hex for OTel/W3C)."),
    Column("span_id", "VARCHAR", "Span id (lower-case hex for OTel/W3C)."),
    Column("model_id", "VARCHAR", "Model identifier: model_id/model_name/model/model.name."),
    Column("model_version", "VARCHAR", "Model version: model_version/version/model.version/ml.model.version."),
    Column("status", "VARCHAR", "Outcome as logged: success/error/timeout…"),
    Column("latency_ms", "DOUBLE", "Latency in milliseconds. Aliases: duration_ms, elapsed_ms, latency, "
           "response_time_ms, took_ms, duration; text with units (\"47ms\", \"0.047s\") converted; "
           "the original text is kept in attrs."),
    Column("latency_raw", "VARCHAR", "The latency as logged when it was text rather than a number "
           "(\"47ms\", \"NaN\"); NULL when it was a plain number."),
    Column("input_size", "BIGINT", "Size of the input (items, tokens or bytes as the service logs it)."),
    Column("input_hash", "VARCHAR", "Hash of the input, for reproducibility without PII."),
    Column("output_hash", "VARCHAR", "Hash of the output."),
    Column("prediction", "VARCHAR", "The prediction as text (a number, a label, or JSON for structures)."),
    Column("confidence", "DOUBLE", "Model confidence/score in [0, 1] when logged."),
    Column("error_type", "VARCHAR", "Error class: error_type/error.type/exception type."),
    Column("error_category", "VARCHAR", "timeout, input_validation, model_inference, infrastructure or "
           "business_logic: an explicit category field wins, else derived from error_type, status code, "
           "event and message (see docs/schema.md)."),
    Column("error_message", "VARCHAR", "Error text: error_message/error_msg/error (when a string)/exception."),
    Column("status_code", "INTEGER", "HTTP or gRPC-style status code."),
    Column("cache_hit", "BOOLEAN", "Whether the prediction came from a cache."),
    Column("attrs", "VARCHAR", "The whole record as logged, as JSON text: every field, nested objects kept (query with "
           "attrs->>'$.features.amount').",
           # zstd: measured on 1M records, 3.4 CPU-s and 56 MB against 5.9 CPU-s and 146 MB for
           # DuckDB's automatic string compression (the largest single cost of ingest).
           compression="zstd"),
    Column("source", "VARCHAR", "The file the line came from ('<stdin>' for a pipe)."),
    Column("line", "BIGINT", "1-based physical line number in the source."),
    Column("record", "INTEGER", "0-based index of the record within the line (OTLP exports hold many)."),
    Column("source_id", "INTEGER", "Ingest generation of the source (sources.source_id)."),
)

EVENT_COLUMN_NAMES: tuple[str, ...] = tuple(c.name for c in EVENT_COLUMNS)

REJECT_RAW_LIMIT = 65536
"""Bytes of a rejected line's raw text that are kept (the full length is recorded)."""

ERROR_CATEGORIES: tuple[str, ...] = (
    "timeout",
    "input_validation",
    "model_inference",
    "infrastructure",
    "business_logic",
)


def columns_markdown() -> str:
    """The event table as a markdown table; docs/schema.md embeds it (a test keeps them equal)."""
    lines = ["| column | type | meaning and origin |", "|---|---|---|"]
    for c in EVENT_COLUMNS:
        description = c.description.replace("|", "\\|")
        lines.append(f"| `{c.name}` | {c.sql_type} | {description} |")
    return "\n".join(lines)


if __name__ == "__main__":
    print(columns_markdown())
