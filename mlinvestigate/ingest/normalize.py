"""The SQL that turns raw lines into typed events, one batch at a time.

Two statements per batch, both vectorised in DuckDB:

1. CLASSIFY each physical line: a JSON object, JSON after a plain prefix (CRI, kubectl
   --timestamps, Python's `INFO:name:`), blank, or a reject (not JSON, malformed JSON, JSON that
   is not an object). `json_valid` guards the parse: `try()` would drop to a slow path for every
   vector holding a bad line.
2. EXTRACT the event columns with one `from_json` per record into a struct of every known key
   (aliases.py), then coalesce the aliases. The original record is kept whole as `attrs`.

Envelopes whose record sits inside another JSON document (Docker json-file, GCP jsonPayload,
OTLP resourceLogs) are unwrapped in Python (envelopes.py) and come back as plain records.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from . import aliases as A

LATENCY_ABSURD_MS = 3_600_000.0
"""Latencies above one hour are kept but flagged as absurd in the ingest summary."""


def _q(key: str) -> str:
    return '"' + key.replace('"', '""') + '"'


_NUMERIC_KEYS = set(A.CONFIDENCE_KEYS) | set(A.INPUT_SIZE_KEYS) | set(A.STATUS_CODE_KEYS)

_COLUMN_CAST = {
    "confidence": "DOUBLE", "input_size": "DOUBLE", "status_code": "DOUBLE", "cache_hit": "BOOLEAN",
}


class Extraction:
    """Builds the extraction SQL for the set of record keys actually present.

    from_json costs grow with every struct field that is materialised (measured: 10.4 µs/row
    with all ~170 aliases, 2.7 µs/row with the 14 a typical file has), so the struct holds only
    the alias keys seen in the data; the pipeline guarantees no alias key is missed."""

    def __init__(self, keys: set[str] | None, mapped: dict[str, str]) -> None:
        self.keys = [k for k in A.all_keys() if keys is None or k in keys]
        self.key_set = set(self.keys)
        self.mapped = mapped

    def struct(self) -> str:
        typed: dict[str, str] = {}
        for key in self.keys:
            if key in _NUMERIC_KEYS:
                typed[key] = "DOUBLE"
            elif key in A.CACHE_HIT_KEYS:
                typed[key] = "BOOLEAN"
            else:
                # VARCHAR keeps numbers as their text and objects as JSON text, so one struct
                # serves "47ms" and 47, a string service and an ECS {"name": ...} object alike.
                typed[key] = "VARCHAR"
        if not typed:
            typed["event"] = "VARCHAR"
        return json.dumps(typed)

    def field(self, key: str) -> str | None:
        return f"r.{_q(key)}" if key in self.key_set else None

    def scalar(self, key: str) -> str | None:
        """A field that may hold an object: NULL when it does (nested() reads the object)."""
        f = self.field(key)
        if f is not None and key in A.NESTED:
            # VARCHAR holds an object as its JSON text, so a *string* starting with "{"
            # ({"error": "{bad: 1}"}) must not be taken for an object. Only such values pay for
            # asking the record for the value's JSON type: CASE branches run on the rows that
            # reach them, while both sides of an OR run on every row (a full re-parse each).
            return (f"CASE WHEN {self._not_object_text(f)} THEN {f} "
                    f"WHEN {self._json_type(key)} <> 'OBJECT' THEN {f} END")
        return f

    @staticmethod
    def _not_object_text(field: str) -> str:
        """True unless the value's text starts with "{". Fix: an absent key gave NULL here, so
        the CASE went on to json_type(), re-parsing the record on every row without that key
        ("error" is absent from most records): a third of the whole insert's CPU."""
        return f"NOT coalesce(starts_with({field}, '{{'), false)"

    @staticmethod
    def _json_type(key: str) -> str:
        return f"json_type(payload, '$.{key}')"

    def nested(self, column: str) -> list[str]:
        return list(self._nested_by_key(column).values())

    def _nested_by_key(self, column: str) -> dict[str, str]:
        parts: dict[str, str] = {}
        for key, paths in A.NESTED.items():
            f = self.field(key)
            if f is not None and column in paths:
                parts[key] = (
                    f"CASE WHEN {self._not_object_text(f)} THEN NULL "
                    f"WHEN {self._json_type(key)} = 'OBJECT' "
                    f"THEN json_extract_string({f}, '{paths[column]}') END"
                )
        return parts

    @staticmethod
    def first(parts: Sequence[str | None]) -> str:
        present = [p for p in parts if p is not None]
        if not present:
            return "NULL"
        return present[0] if len(present) == 1 else "coalesce(" + ", ".join(present) + ")"

    def column(self, column: str, keys: Sequence[str]) -> str:
        cast = _COLUMN_CAST.get(column)

        def typed(expr: str) -> str:
            return f"TRY_CAST({expr} AS {cast})" if cast else expr

        parts: list[str | None] = []
        if column in self.mapped:
            parts.append(typed(self.mapped[column]))
        # Fix: a nested object ranks where its dotted spelling does (ECS writes both
        # {"event": {"action": ...}} and {"event.action": ...}); appended last, the nested form
        # lost to lower-priority keys ("message") that the dotted form beats.
        nested = self._nested_by_key(column)
        anchors: dict[str, str | None] = {}
        for key in nested:
            dotted = f"{key}.{A.NESTED[key][column].removeprefix('$.')}"
            anchors[key] = dotted if dotted in keys else key if key in keys else None
        for k in keys:
            parts.append(self.scalar(k))
            parts.extend(typed(nested[n]) for n, anchor in anchors.items() if anchor == k)
        parts.extend(typed(nested[n]) for n, anchor in anchors.items() if anchor is None)
        return self.first(parts)

    def envelope(self) -> str:
        f = self.field
        tests = [f"{f(k)} IS NOT NULL" for k in ("resourceLogs", "jsonPayload", "textPayload") if f(k)]
        if f("log") and f("stream"):
            # Fix: Docker json-file's "log" is a string, usually holding the JSON record itself;
            # testing NOT starts_with(log, '{') let exactly those lines through as plain records.
            # An ECS "log" object is told apart by its JSON type instead.
            tests.append(f"({f('log')} IS NOT NULL AND {f('stream')} IS NOT NULL "
                         f"AND json_type(payload, '$.log') = 'VARCHAR')")
        return "(" + " OR ".join(tests) + ")" if tests else "false"


def mapping_exprs(mappings: dict[str, str]) -> tuple[dict[str, str], dict[str, str]]:
    """SQL expressions for user mappings, with their JSON paths as named parameters."""
    exprs: dict[str, str] = {}
    params: dict[str, str] = {}
    for column, path in sorted(mappings.items()):
        name = f"map_{column}"
        params[name] = "$." + ".".join(_q(part) for part in path.split("."))
        exprs[column] = f"json_extract_string(payload, ${name})"
    return exprs, params


MACROS = r"""
CREATE OR REPLACE TEMP MACRO mlinv_duration_ms(txt, bare_scale) AS (
    CASE
        WHEN txt IS NULL THEN NULL
        WHEN TRY_CAST(txt AS DOUBLE) IS NOT NULL THEN TRY_CAST(txt AS DOUBLE) * bare_scale
        ELSE TRY_CAST(regexp_extract(txt, '^\s*([-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?)\s*([a-zµ]*)\s*$', 1) AS DOUBLE)
             * CASE lower(regexp_extract(txt, '^\s*[-+]?[0-9]*\.?[0-9]+(?:[eE][-+]?[0-9]+)?\s*([a-zµA-Z]*)\s*$', 1))
                   WHEN 'ns' THEN 1e-6
                   WHEN 'us' THEN 1e-3 WHEN 'µs' THEN 1e-3
                   WHEN 'ms' THEN 1.0 WHEN 'msec' THEN 1.0
                   WHEN 's' THEN 1e3 WHEN 'sec' THEN 1e3 WHEN 'secs' THEN 1e3
                   WHEN 'second' THEN 1e3 WHEN 'seconds' THEN 1e3
                   WHEN 'm' THEN 6e4 WHEN 'min' THEN 6e4 WHEN 'mins' THEN 6e4
                   WHEN 'h' THEN 3.6e6
                   WHEN '' THEN bare_scale
               END
    END
);
CREATE OR REPLACE TEMP MACRO mlinv_epoch_ts(x) AS (
    -- Epoch numbers: seconds, ms, µs or ns, told apart by magnitude. One multiplication, not a
    -- CASE per unit: a macro argument is evaluated again wherever it appears.
    CASE
        WHEN x IS NULL OR NOT isfinite(x) THEN NULL
        ELSE make_timestamp(CAST(round(x * CASE WHEN abs(x) >= 1e17 THEN 1e-3
                                                 WHEN abs(x) >= 1e14 THEN 1.0
                                                 WHEN abs(x) >= 1e11 THEN 1e3
                                                 ELSE 1e6 END) AS BIGINT))
    END
);
CREATE OR REPLACE TEMP MACRO mlinv_parse_ts(txt) AS (
    CASE
        WHEN txt IS NULL THEN NULL
        -- ISO-8601 first (the common case), told by its fifth character; measured 2.3x faster
        -- than trying the numeric casts on every value.
        -- Python's asctime writes a comma before the milliseconds.
        WHEN substr(txt, 5, 1) = '-'
            THEN coalesce(TRY_CAST(txt AS TIMESTAMPTZ), TRY_CAST(replace(txt, ',', '.') AS TIMESTAMPTZ))::TIMESTAMP
        -- Epoch nanoseconds as an integer: exact through BIGINT (a DOUBLE would round them).
        WHEN length(txt) >= 18 AND abs(TRY_CAST(txt AS BIGINT)) >= 100000000000000000
            THEN make_timestamp(TRY_CAST(txt AS BIGINT) // 1000)
        WHEN TRY_CAST(txt AS DOUBLE) IS NOT NULL THEN mlinv_epoch_ts(TRY_CAST(txt AS DOUBLE))
        ELSE TRY_CAST(replace(txt, ',', '.') AS TIMESTAMPTZ)::TIMESTAMP
    END
);
CREATE OR REPLACE TEMP MACRO mlinv_level_slow(txt) AS (
    CASE lower(trim(txt))
        WHEN 'warn' THEN 'warning'
        WHEN 'err' THEN 'error'
        WHEN 'fatal' THEN 'critical' WHEN 'crit' THEN 'critical' WHEN 'emergency' THEN 'critical'
        WHEN 'alert' THEN 'critical' WHEN 'panic' THEN 'critical'
        WHEN 'information' THEN 'info' WHEN 'notice' THEN 'info'
        WHEN 'default' THEN NULL WHEN '' THEN NULL
        ELSE lower(trim(txt))
    END
);
CREATE OR REPLACE TEMP MACRO mlinv_level(txt) AS (
    -- The usual spellings first, compared as they are: the slow path lower-cases and trims
    -- once per WHEN (DuckDB expands a simple CASE), measured at 1.4 µs a row.
    CASE txt
        WHEN 'info' THEN 'info' WHEN 'error' THEN 'error' WHEN 'warning' THEN 'warning'
        WHEN 'debug' THEN 'debug' WHEN 'critical' THEN 'critical'
        WHEN 'INFO' THEN 'info' WHEN 'ERROR' THEN 'error' WHEN 'WARNING' THEN 'warning'
        WHEN 'DEBUG' THEN 'debug' WHEN 'CRITICAL' THEN 'critical'
        ELSE mlinv_level_slow(txt)
    END
);
CREATE OR REPLACE TEMP MACRO mlinv_id_tail(txt) AS (
    -- The id at the end of a decorated trace id ("Root=1-abc", "projects/p/traces/abc"); a bare
    -- id (nearly all of them) skips the extraction, which costs 3x the match.
    CASE WHEN regexp_full_match(txt, '[0-9A-Za-z_-]+') THEN txt
         ELSE regexp_extract(txt, '([0-9A-Za-z_-]+)$', 1) END
);
"""

ERROR_CATEGORY_SQL = """
CASE
    WHEN explicit_category IS NOT NULL THEN
        CASE
            WHEN list_contains(['timeout', 'timeouts', 'deadline'], lower(explicit_category)) THEN 'timeout'
            WHEN list_contains(['input_validation', 'input', 'validation', 'input_error',
                 'bad_input', 'client'], lower(explicit_category)) THEN 'input_validation'
            WHEN list_contains(['model_inference', 'model', 'inference', 'model_error'], lower(explicit_category))
                 THEN 'model_inference'
            WHEN list_contains(['infrastructure', 'infra', 'system', 'platform'], lower(explicit_category))
                 THEN 'infrastructure'
            WHEN list_contains(['business_logic', 'business', 'business_error'], lower(explicit_category))
                 THEN 'business_logic'
            ELSE lower(explicit_category)
        END
    WHEN NOT is_error THEN NULL
    WHEN list_contains([408, 504], status_code)
         OR regexp_matches(coalesce(error_type, ''), '(?i)timeout|deadline')
         OR regexp_matches(coalesce(error_message, ''), '(?i)timed? ?out|timeout|deadline exceeded')
         OR list_contains(['timeout', 'timed_out', 'deadline_exceeded'], lower(coalesce(status, '')))
         -- the event column holds the message for stdlib/python-json-logger records
         OR regexp_matches(coalesce(event, ''), '(?i)timed? ?out|timeout|deadline exceeded')
        THEN 'timeout'
    WHEN list_contains([400, 413, 415, 422], status_code)
         OR regexp_matches(coalesce(error_type, ''), '(?i)validation|invalid|schema|badrequest|bad_request|unprocessable')
         OR (regexp_matches(coalesce(error_type, ''), '(?i)^(ValueError|KeyError|TypeError)$')
             AND regexp_matches(coalesce(error_message, ''), '(?i)input|invalid|missing|field|schema|expected|must be'))
         OR regexp_matches(coalesce(event, ''), '(?i)validation')
        THEN 'input_validation'
    WHEN regexp_matches(coalesce(error_type, ''), '(?i)memory|oom|connection|oserror|ioerror|brokenpipe|unavailable|disk|network|socket|dns|refused')
         OR regexp_matches(coalesce(error_message, ''), '(?i)out of memory|oom|disk (is )?full|no space left|connection (refused|reset)|unavailable|network|broken pipe')
         OR list_contains([502, 503], status_code)
        THEN 'infrastructure'
    WHEN regexp_matches(coalesce(error_type, ''), '(?i)business|rule|policy')
         OR regexp_matches(coalesce(event, ''), '(?i)business|rejected_by_rule')
        THEN 'business_logic'
    WHEN regexp_matches(coalesce(error_type, ''), '(?i)runtime|inference|model|nan|predict|cuda|tensor|shape|onnx|triton')
         OR regexp_matches(coalesce(error_message, ''), '(?i)cuda|inference|nan|tensor|shape mismatch|model')
         OR regexp_matches(coalesce(event, ''), '(?i)predict|inference')
        THEN 'model_inference'
    ELSE 'infrastructure'
END
"""
"""Seed 000's taxonomy. An explicit category in the log wins; otherwise error_type, status code,
event and message decide, in this order of precedence, and an unknown error defaults to
infrastructure as the seed's categorise_error does. A record is an error when it has an error
type or message, a status code >= 400, level error/critical, a failing status, or an event
name containing fail/error."""


KIND_SQL = """
CASE
    WHEN json_valid(payload) THEN
        CASE WHEN starts_with(payload, '{') OR starts_with(ltrim(payload), '{') THEN 'record'
             ELSE 'not_object' END
    WHEN trim(payload, E' \\t\\r\\n\\f\\v') = '' THEN 'blank'
    WHEN strpos(payload, '{') > 1 AND json_valid(substr(payload, strpos(payload, '{'))) THEN 'prefixed'
    WHEN starts_with(ltrim(payload), '{') THEN 'invalid_json'
    ELSE 'not_json'
END
"""
"""What a physical line is. Only 'record' lines are parsed in the same pass; 'prefixed' ones go
through a second pass with the prefix cut off (see PREFIXED_SQL)."""

PREFIX_TS = r"regexp_extract(prefix, '^\s*(\d{4}-\d\d-\d\d[T ][0-9:.,]+(?:Z|[+-]\d\d:?\d\d)?)', 1)"
PREFIX_LEVEL = r"regexp_extract(prefix, '^(DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL):', 1)"
PREFIX_LOGGER = r"regexp_extract(prefix, '^(?:DEBUG|INFO|WARNING|WARN|ERROR|CRITICAL|FATAL):([^:]*):\s*$', 1)"

PREFIX_COLUMNS = (f"nullif({PREFIX_TS}, '') AS prefix_ts, nullif({PREFIX_LEVEL}, '') AS prefix_level, "
                  f"nullif({PREFIX_LOGGER}, '') AS prefix_logger")
"""What a line's plain prefix says (from a `prefix` column): time, level, logger."""

BATCH_INPUT_SQL = f"""
SELECT line, byte_offset, 0 AS record, payload, {PREFIX_COLUMNS}, prefix IS NULL AS classify
FROM (
    SELECT line, byte_offset,
           CASE WHEN starts_with(text, '{{') OR starts_with(ltrim(text), '{{') THEN text
                WHEN strpos(text, '{{') > 1 THEN substr(text, strpos(text, '{{')) END AS payload,
           CASE WHEN starts_with(text, '{{') OR starts_with(ltrim(text), '{{') THEN NULL
                WHEN strpos(text, '{{') > 1 THEN substr(text, 1, strpos(text, '{{') - 1) END AS prefix
    FROM batch WHERE valid_utf8
)
"""
"""The first pass: every physical line of the Arrow batch, JSON after a plain prefix (CRI,
kubectl --timestamps, Python's INFO:name:) included, so that such files take the same single
statement as plain JSON lines (a CRI file of 1M lines: 11.1 s through the leftover pass)."""

PREFIXED_INPUT_SQL = f"""
SELECT line, byte_offset, 0 AS record, payload, {PREFIX_COLUMNS}, false AS classify
FROM (
    SELECT line, byte_offset, substr(text, strpos(text, '{{')) AS payload,
           substr(text, 1, strpos(text, '{{') - 1) AS prefix
    FROM mlinv_leftover WHERE kind = 'prefixed'
)
"""
"""The second pass: JSON after a plain prefix (CRI, kubectl --timestamps, Python's INFO:name:) that
the first pass did not take. The first pass now takes such lines itself; this stays as the net
for a line it refused whose JSON part is nevertheless valid."""

UNWRAPPED_INPUT_SQL = """
SELECT line, byte_offset, record, payload, NULL::VARCHAR AS prefix_ts,
       NULL::VARCHAR AS prefix_level, NULL::VARCHAR AS prefix_logger, false AS classify
FROM mlinv_unwrapped
"""
"""Records unwrapped from envelopes in Python (already known to be JSON objects)."""


LOOKS_LIKE_OBJECT = r"""
(starts_with(payload, '{') OR starts_with(ltrim(payload), '{'))
AND (ends_with(payload, E'}\n') OR ends_with(payload, '}') OR ends_with(payload, E'}\r\n')
     OR regexp_matches(payload, '}\s*$'))
"""
"""A physical line that may be a JSON object: braces at both ends, whitespace aside. Truncated
lines, plain text and prefixed JSON fail this cheap test, so they never reach the parser."""


def extract_sql(
    input_sql: str, mappings: dict[str, str] | None = None, keys: set[str] | None = None,
    *, first_pass: bool = False,
) -> tuple[str, dict[str, str]]:
    """INSERT the records among the rows of `input_sql` straight into `events` (one pass: no
    staging copy of the record text). `keys` are the record keys present (None: every known
    alias). Lines that are not records are found afterwards by what did not arrive (see
    LEFTOVER_SQL). Returns (sql, params); the caller binds $source and $source_id too.

    In the first pass over raw lines the parse is `try(from_json(...))` behind LOOKS_LIKE_OBJECT
    instead of a `json_valid` filter, which parsed every line twice (14 % of the insert's CPU).
    `try` is slow only for the vectors holding a line that fails, and the brace test keeps
    the usual failures (truncated lines, text) away from it; a line that fails the parse
    becomes a leftover and is classified there. Later passes read lines known to be valid
    JSON, and parse without `try`: a failure there must stay loud."""
    mapped, params = mapping_exprs(mappings or {})
    x = Extraction(keys, mapped)
    col = x.column

    traceparent = x.field("traceparent") or "NULL::VARCHAR"
    trace_raw = col("trace_id", A.TRACE_ID_KEYS)
    span_raw = col("span_id", A.SPAN_ID_KEYS)
    latency_ms_text = x.first([x.scalar(k) for k in A.LATENCY_MS_KEYS])
    latency_s_text = x.first([x.scalar(k) for k in A.LATENCY_S_KEYS])
    latency_ns = x.first([x.scalar(k) for k in A.LATENCY_NS_KEYS] + x.nested("latency_ns"))
    latency_bare = x.first([x.scalar(k) for k in A.LATENCY_BARE_KEYS])
    mapped_latency = mapped.get("latency_ms")
    by_unit = [(mapped_latency, "1.0"), (latency_ms_text, "1.0"), (latency_s_text, "1000.0"),
               (latency_ns, "1e-6"), (latency_bare, "1.0")]
    by_unit = [(text, scale) for text, scale in by_unit if text and text != "NULL"]
    latency_text = x.first([text for text, _ in by_unit])
    latency_value = x.first([f"mlinv_duration_ms({text}, {scale})" for text, scale in by_unit])
    ts_text = col("ts", A.TIMESTAMP_KEYS)
    status_code = col("status_code", A.STATUS_CODE_KEYS)
    status_text = col("status", A.STATUS_KEYS)
    parse = f"from_json(payload, '{x.struct()}')"
    if first_pass:
        parse = f"try({parse})"
    sql = f"""
    INSERT INTO events
    SELECT
        coalesce(ts, prefix_ts_value) AS ts,
        ts IS NULL AND prefix_ts_value IS NOT NULL AS ts_inferred,
        event, level, service, request_id, trace_id, span_id, model_id, model_version,
        status,
        -- Fix: "NaN"/"Infinity" cast to DOUBLE, so they were stored as NaN/inf (poisoning averages,
        -- counted as absurd) and not kept as raw text. A latency must be a finite number.
        CASE WHEN isfinite(latency_ms) THEN latency_ms END AS latency_ms,
        CASE WHEN NOT coalesce(isfinite(TRY_CAST(latency_text AS DOUBLE)), false)
             THEN latency_text END AS latency_raw,
        input_size, input_hash, output_hash, prediction, confidence,
        error_type, {ERROR_CATEGORY_SQL} AS error_category, error_message, status_code, cache_hit,
        -- Fix: attrs is the record as logged, without the line's own LF or CRLF. (regexp_replace:
        -- rtrim(x, chars) measured 10x slower, ~7 µs a row.)
        regexp_replace(payload, '\\r?\\n$', '') AS attrs, $source AS source, line, record, $source_id AS source_id
    FROM (
        SELECT
            *,
            (error_type IS NOT NULL OR error_message IS NOT NULL OR coalesce(status_code, 0) >= 400
             -- Fix: coalesce, or a record without a level made is_error NULL, and NOT NULL fell
             -- through the category CASE to 'infrastructure' for every such record.
             OR list_contains(['error', 'critical'], coalesce(level, ''))
             OR list_contains(['error', 'failure', 'failed', 'fail', 'timeout'], lower(coalesce(status, '')))
             OR regexp_matches(coalesce(event, ''), '(?i)fail|error|exception')) AS is_error
        FROM (
            SELECT
                line, byte_offset, record, payload,
                CASE WHEN r IS NULL THEN 'unparsed'
                     WHEN classify AND {x.envelope()} THEN 'envelope' ELSE 'record' END AS kind,
                mlinv_parse_ts({ts_text}) AS ts,
                mlinv_parse_ts(prefix_ts) AS prefix_ts_value,
                {col("event", A.EVENT_KEYS)} AS event,
                mlinv_level(coalesce({col("level", A.LEVEL_KEYS)}, prefix_level)) AS level,
                coalesce({col("service", A.SERVICE_KEYS)}, prefix_logger) AS service,
                {col("request_id", A.REQUEST_ID_KEYS)} AS request_id,
                lower(coalesce(mlinv_id_tail({trace_raw}),
                               nullif(substr({traceparent}, 4, 32), ''))) AS trace_id,
                lower(coalesce({span_raw}, nullif(substr({traceparent}, 37, 16), ''))) AS span_id,
                {col("model_id", A.MODEL_ID_KEYS)} AS model_id,
                {col("model_version", A.MODEL_VERSION_KEYS)} AS model_version,
                CASE WHEN TRY_CAST({status_text} AS DOUBLE) IS NULL THEN {status_text} END AS status,
                {latency_value}::DOUBLE AS latency_ms,
                {latency_text}::VARCHAR AS latency_text,
                TRY_CAST(round({col("input_size", A.INPUT_SIZE_KEYS)}) AS BIGINT) AS input_size,
                {col("input_hash", A.INPUT_HASH_KEYS)} AS input_hash,
                {col("output_hash", A.OUTPUT_HASH_KEYS)} AS output_hash,
                {col("prediction", A.PREDICTION_KEYS)} AS prediction,
                TRY_CAST({col("confidence", A.CONFIDENCE_KEYS)} AS DOUBLE) AS confidence,
                {col("error_type", A.ERROR_TYPE_KEYS)} AS error_type,
                {col("error_category", A.ERROR_CATEGORY_KEYS)} AS explicit_category,
                {col("error_message", A.ERROR_MESSAGE_KEYS)} AS error_message,
                TRY_CAST(coalesce({status_code},
                                  CASE WHEN TRY_CAST({status_text} AS DOUBLE) BETWEEN 100 AND 599
                                       THEN TRY_CAST({status_text} AS DOUBLE) END) AS INTEGER) AS status_code,
                TRY_CAST({col("cache_hit", A.CACHE_HIT_KEYS)} AS BOOLEAN) AS cache_hit
            FROM (
                -- A filter, not a CASE, keeps non-records out: the parse then runs only on
                -- records and no struct is carried through CASE (measured: much cheaper).
                SELECT *, {parse} AS r
                FROM ({input_sql})
                WHERE {"" if first_pass else "NOT classify OR "}({LOOKS_LIKE_OBJECT})
            )
        )
    )
    WHERE kind = 'record'
    """
    return sql, params


LEFTOVER_SQL = f"""
CREATE OR REPLACE TEMP TABLE mlinv_leftover AS
SELECT line, byte_offset, text,
       CASE WHEN kind = 'record' THEN 'envelope' ELSE kind END AS kind
FROM (
    SELECT line, byte_offset, text,
           {KIND_SQL.replace('payload', 'text')} AS kind
    FROM batch
    WHERE valid_utf8
      AND line NOT IN (
          SELECT line FROM events
          WHERE source_id = $source_id AND line BETWEEN $first_line AND $last_line
      )
)
"""
"""Lines of the batch that did not become events in the first pass: blank lines, rejects,
JSON after a prefix, and envelopes (valid JSON objects the first pass set aside)."""

BATCH_EVENTS_WHERE = "source_id = $source_id AND line BETWEEN $first_line AND $last_line"

FILL_MISSING_TS_SQL = f"""
UPDATE events SET ts = filled.ts, ts_inferred = true
FROM (
    SELECT line, record,
           coalesce(last_value(ts IGNORE NULLS) OVER (ORDER BY line, record
                        ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING),
                    $carry) AS ts
    FROM events WHERE {BATCH_EVENTS_WHERE}
) AS filled
WHERE events.ts IS NULL AND events.source_id = $source_id
  AND events.line BETWEEN $first_line AND $last_line
  AND events.line = filled.line AND events.record = filled.record
  -- Fix: records before the first time of a source have nothing to take: they stay NULL and
  -- were wrongly flagged ts_inferred.
  AND filled.ts IS NOT NULL
"""
"""A record without a timestamp (and no time in its line prefix) takes the previous record's
time, carried across batches and resumed ingests, and is flagged ts_inferred."""

BATCH_SUMMARY_SQL = f"""
SELECT
    count(*) AS events,
    count(DISTINCT line) AS event_lines,
    arg_max(ts, line * 100000 + record) FILTER (WHERE ts IS NOT NULL) AS last_ts,
    count(*) FILTER (WHERE ts IS NULL) AS ts_missing,
    count(*) FILTER (WHERE latency_raw IS NOT NULL AND latency_ms IS NULL) AS unparsed_latency,
    count(*) FILTER (WHERE latency_ms < 0) AS negative_latency,
    count(*) FILTER (WHERE latency_ms > {LATENCY_ABSURD_MS}) AS absurd_latency,
    count(*) FILTER (WHERE ts_inferred) AS ts_inferred
FROM events WHERE {BATCH_EVENTS_WHERE}
"""

REJECT_REASONS = {
    "not_json": "not JSON (plain text line)",
    "invalid_json": "malformed or truncated JSON",
    "not_object": "JSON value is not an object",
}
