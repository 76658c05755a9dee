"""Which record fields feed which event column, in priority order.

Real services spell the same thing many ways (structlog, python-json-logger, ECS, OTel, GCP,
hand-rolled loggers). Each event column lists the keys tried, first match wins. A key with a
dot is looked up literally ("service.name" as ECS writes it flat); nested objects are handled
by NESTED below. Users add their own with `--map column=path` or the config file.
"""

from __future__ import annotations

TIMESTAMP_KEYS = (
    "timestamp", "@timestamp", "time", "ts", "asctime", "datetime", "eventTime", "logged_at",
    "created", "date",
)
EVENT_KEYS = ("event", "event_name", "eventName", "event.action", "message", "msg")
LEVEL_KEYS = ("level", "levelname", "log.level", "severity", "loglevel", "lvl", "severityText",
              "log_level")
SERVICE_KEYS = ("service", "service.name", "service_name", "serviceName", "app", "application",
                "component", "logger", "name", "logger_name")
REQUEST_ID_KEYS = ("request_id", "requestId", "req_id", "reqId", "x_request_id", "x-request-id",
                   "request.id", "http.request.id", "correlation_id",
                   "correlationId")
TRACE_ID_KEYS = ("trace_id", "traceId", "trace.id", "otelTraceID", "trace")
SPAN_ID_KEYS = ("span_id", "spanId", "span.id", "otelSpanID", "span")
MODEL_ID_KEYS = ("model_id", "modelId", "model_name", "modelName", "model", "model.name",
                 "model.id", "ml.model.name", "ml.model.id", "gen_ai.request.model")
MODEL_VERSION_KEYS = ("model_version", "modelVersion", "model.version", "ml.model.version",
                      "version")
STATUS_KEYS = ("status", "outcome", "event.outcome", "result")
INPUT_SIZE_KEYS = ("input_size", "inputSize", "input_length", "input_len", "input_tokens",
                   "prompt_tokens", "num_tokens", "n_tokens", "ml.input.size",
                   "gen_ai.usage.input_tokens", "input_size_bytes", "request_size",
                   "payload_size")
INPUT_HASH_KEYS = ("input_hash", "inputHash", "features_hash")
OUTPUT_HASH_KEYS = ("output_hash", "outputHash", "prediction_hash")
PREDICTION_KEYS = ("prediction", "pred", "predicted_label", "predicted_class", "ml.prediction")
CONFIDENCE_KEYS = ("confidence", "confidence_score", "probability", "prob", "proba",
                   "ml.confidence")
ERROR_TYPE_KEYS = ("error_type", "errorType", "exception_type", "exc_type", "error.type",
                   "err_type", "error_class", "errorClass", "error_kind")
ERROR_CATEGORY_KEYS = ("error_category", "errorCategory", "error.category")
ERROR_MESSAGE_KEYS = ("error_message", "error_msg", "errorMessage", "err_msg", "error",
                      "error.message", "exception", "exc_info", "err")
STATUS_CODE_KEYS = ("status_code", "statusCode", "http_status", "http_status_code",
                    "http.status_code", "http.response.status_code", "response_status",
                    "code")
CACHE_HIT_KEYS = ("cache_hit", "cacheHit", "cached", "from_cache")

# Latency keys by the unit a bare number is in. Text with units ("47ms", "0.047s") is always
# converted by its own unit, whatever the key.
LATENCY_MS_KEYS = ("latency_ms", "duration_ms", "elapsed_ms", "response_time_ms", "took_ms",
                   "time_ms", "latencyMs", "durationMs", "elapsedMs", "processing_time_ms",
                   "inference_time_ms", "total_time_ms", "request_duration_ms")
LATENCY_S_KEYS = ("latency_s", "duration_s", "elapsed_s", "latency_seconds", "duration_seconds",
                  "elapsed_seconds", "response_time_s", "request_duration_seconds",
                  "gen_ai.server.request.duration")
LATENCY_BARE_KEYS = ("latency", "duration", "elapsed", "took", "response_time", "time_taken")
"""Bare numbers under these keys are read as milliseconds (documented)."""
LATENCY_NS_KEYS = ("event.duration",)
"""ECS writes event.duration in nanoseconds."""

# Keys whose value may be an object; the paths read from the object, per column.
NESTED: dict[str, dict[str, str]] = {
    "service": {"service": "$.name"},
    "log": {"level": "$.level", "service": "$.logger"},
    "error": {"error_type": "$.type", "error_message": "$.message", "error_category": "$.category"},
    "trace": {"trace_id": "$.id"},
    "span": {"span_id": "$.id"},
    "http": {"status_code": "$.response.status_code", "request_id": "$.request.id"},
    "model": {"model_id": "$.name", "model_version": "$.version"},
    "event": {"event": "$.action", "latency_ns": "$.duration", "status": "$.outcome"},
    "request": {"request_id": "$.id"},
    "ml": {"model_version": "$.model.version", "model_id": "$.model.name"},
}

ENVELOPE_KEYS = ("resourceLogs", "jsonPayload", "textPayload", "stream")
"""Keys that reveal a record wrapped in another document (Docker json-file, GCP, OTLP)."""

MAPPABLE_COLUMNS = (
    "ts", "event", "level", "service", "request_id", "trace_id", "span_id", "model_id",
    "model_version", "status", "latency_ms", "input_size", "input_hash", "output_hash",
    "prediction", "confidence", "error_type", "error_category", "error_message", "status_code",
    "cache_hit",
)
"""Event columns a user mapping (`--map column=path`) may target."""


def all_keys() -> list[str]:
    """Every top-level key the extraction struct reads, without duplicates, in a stable order."""
    groups = (
        TIMESTAMP_KEYS, EVENT_KEYS, LEVEL_KEYS, SERVICE_KEYS, REQUEST_ID_KEYS, TRACE_ID_KEYS,
        SPAN_ID_KEYS, MODEL_ID_KEYS, MODEL_VERSION_KEYS, STATUS_KEYS, INPUT_SIZE_KEYS,
        INPUT_HASH_KEYS, OUTPUT_HASH_KEYS, PREDICTION_KEYS, CONFIDENCE_KEYS, ERROR_TYPE_KEYS,
        ERROR_CATEGORY_KEYS, ERROR_MESSAGE_KEYS, STATUS_CODE_KEYS, CACHE_HIT_KEYS,
        LATENCY_MS_KEYS, LATENCY_S_KEYS, LATENCY_BARE_KEYS, LATENCY_NS_KEYS,
        tuple(NESTED), ("traceparent",), ENVELOPE_KEYS,
    )
    seen: dict[str, None] = {}
    for group in groups:
        for key in group:
            seen.setdefault(key, None)
    return list(seen)
