"""What every investigation shares: the event filters (time window, model, version, service,
the user's own `--where` condition), the `--by` grouping expressions, and the definition of a
*request*.

Safety rules kept here, once, for every investigation:

* values are always bound as named parameters (``$f_since`` …), never formatted into SQL;
* a `--by` name is used only after it is checked against the events columns (or the
  ``attrs.<field>`` form with a plain dotted path), and then it is quoted;
* the `--where` text is the user's own SQL condition. It is checked to be one balanced
  expression over the events columns with no statement, comment, parameter, subquery or
  file-reading function in it, then bound by DuckDB against ``events`` alone (errors come back
  as a UsageError with DuckDB's first line). The CLI opens file databases read-only, so even
  an expression that slipped through could not write.

What a request is (summary, slow, latency, errors, throughput, loads): a *request line* is an
event that finishes a request at one service: it carries a latency_ms, or its name says it
finished (…_success, …_failure, …_error, …_complete, …). Each service logs one such line per
request, so counting request lines per service counts each request once per hop; the gateway's
line and the model-server's line of the same request are different hops and are always kept in
different rows (a `service` column), never added together. Start lines (request_start …) mark
requests received; model load/deploy events are never requests. This definition needs no
GROUP BY request_id, which on 10 M events costs more than a whole investigation may (≈1.3 s).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from ..engines import DUCKDB, SPARK, Engine, SqlText, as_engine, first_line, param
from ..errors import UsageError
from ..schema import EVENT_COLUMN_NAMES
from ..timeparse import parse_time_bound

if TYPE_CHECKING:
    import duckdb

PERCENTILE_NOTE = "percentiles: exact, linear interpolation (numpy default)"
"""Said in the notes of every Result that shows percentiles."""

REQUEST_NOTE = (
    "requests = request lines: each service's finishing line of a request (with latency_ms, or "
    "named *_success/_failure/…); a service's lines are never added to another service's, so "
    "no request is counted twice; model loads are not requests"
)


@dataclass(frozen=True)
class Filters:
    """Which events an investigation looks at. Times are naive UTC, like the ts column."""

    since: datetime | None = None
    until: datetime | None = None
    model: str | None = None
    version: str | None = None
    service: str | None = None
    where: str | None = None
    """The user's SQL condition, already checked by `check_where`."""
    limit: int = 20
    """At most this many rows in tables that list individual items (slowest requests …)."""

    def describe(self) -> str:
        """A short human description of the filters, for notes: "02:00–03:00, model fraud"."""
        parts: list[str] = []
        if self.since or self.until:
            since = _short_time(self.since) if self.since else "start"
            until = _short_time(self.until) if self.until else "end"
            parts.append(f"{since} to {until}")
        for label, value in (("model", self.model), ("version", self.version),
                             ("service", self.service), ("where", self.where)):
            if value:
                parts.append(f"{label} {value}")
        return ", ".join(parts) if parts else "all events"


def _short_time(moment: datetime) -> str:
    return moment.isoformat(sep=" ", timespec="seconds")


NEWEST_SQL = "SELECT max(ts) FROM events"


def newest_event_time(con: duckdb.DuckDBPyConnection | Engine) -> datetime | None:
    row = as_engine(con).execute(NEWEST_SQL).fetchone()
    return row[0] if row else None


def resolve_filters(
    con: duckdb.DuckDBPyConnection | Engine,
    since_text: str | None = None,
    until_text: str | None = None,
    wall_clock: bool = False,
    *,
    model: str | None = None,
    version: str | None = None,
    service: str | None = None,
    where: str | None = None,
    limit: int = 20,
    now: datetime | None = None,
) -> Filters:
    """Filters from the command-line texts. Relative times ("30m", "2h") count back from the
    newest event (or from now with `wall_clock`); a bad time or condition is a UsageError."""
    newest = newest_event_time(con) if (since_text or until_text) else None
    since = (parse_time_bound(since_text, newest=newest, now=now, wall_clock=wall_clock)
             if since_text else None)
    until = (parse_time_bound(until_text, newest=newest, now=now, wall_clock=wall_clock)
             if until_text else None)
    if since is not None and until is not None and since >= until:
        raise UsageError(
            f"--since ({since.isoformat()}Z) is not before --until ({until.isoformat()}Z)"
        )
    if limit < 1:
        raise UsageError(f"--limit must be at least 1, not {limit}")
    where = where.strip() if where else None
    if where:
        check_where(con, where)
    return Filters(since=since, until=until, model=model or None, version=version or None,
                   service=service or None, where=where or None, limit=limit)


# ------------------------------------------------------------------------ the --where check

_FORBIDDEN_WORDS = frozenset(
    """
    attach detach copy install load pragma set reset create insert update delete drop alter
    export import call checkpoint vacuum use begin commit rollback abort truncate merge
    select from with table values union intersect except returning into describe summarize
    show explain prepare execute deallocate
    """.split()
)
"""Statement words and subquery openers: a condition needs none of them. (`from` also rules
out DuckDB's FROM-first subqueries `(FROM 'file.csv')`, so `extract(x FROM ts)` must be
written `date_part('x', ts)`.)"""

_FILE_FUNCTIONS = re.compile(
    r"^(?:read_\w*|glob|sniff_csv|parquet_\w*|query|query_table|iceberg_\w*|delta_\w*"
    r"|sqlite_\w*|postgres_\w*|mysql_\w*|getenv|getvariable|current_setting|duckdb_\w*"
    r"|pragma_\w*|which_secret|load_aws_credentials|httpfs\w*"
    r"|reflect|try_reflect|java_method|input_file_\w*)$",
    re.IGNORECASE,
)
"""Functions that read files, other databases, settings or the catalog (and Spark's
reflect/java_method, which call any Java method)."""

_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _code_outside_literals(text: str) -> str:
    """`text` with string literals and quoted identifiers blanked out, so that words, `;`
    and parentheses are only looked for in code. Unbalanced quotes are a UsageError."""
    out: list[str] = []
    i = 0
    while i < len(text):
        char = text[i]
        if char in "'\"":
            end = i + 1
            while True:
                end = text.find(char, end)
                if end == -1:
                    raise UsageError(f"--where has an unterminated {char} quote: {text!r}")
                if text.startswith(char * 2, end):  # '' or "" inside is an escaped quote
                    end += 2
                    continue
                break
            out.append(char + " " * (end - i - 1) + char)
            i = end + 1
            continue
        out.append(char)
        i += 1
    return "".join(out)


_SPARK_PARAMETER = re.compile(r"(?<!:):(?=[A-Za-z_])")
"""A Spark named parameter marker (`:name`), told apart from a `::` cast."""


def check_where(con: duckdb.DuckDBPyConnection | Engine, where: str) -> None:
    """Raise UsageError unless `where` is a single SQL condition on the events columns, in
    the engine's dialect (the engine parses and binds it against `events` alone)."""
    engine = as_engine(con)
    code = _code_outside_literals(where)
    if ";" in code:
        raise UsageError("--where must be one condition, without ';'")
    if "--" in code or "/*" in code:
        raise UsageError("--where must not contain SQL comments")
    if "$" in code or "?" in code or _SPARK_PARAMETER.search(code):
        raise UsageError("--where must not contain parameters ($name or ?)")
    depth = 0
    for char in code:
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth < 0:
            break
    if depth != 0:
        raise UsageError("--where has unbalanced parentheses")
    for word in _WORD.findall(code):
        if word.lower() in _FORBIDDEN_WORDS:
            raise UsageError(
                f"--where must be a condition on event columns; {word.upper()!r} is not allowed",
                hint="e.g. --where \"input_size > 1000 and status_code = 504\"",
            )
        if _FILE_FUNCTIONS.match(word):
            raise UsageError(f"--where may not call {word}()")
    engine.check_condition(where)


_first_line = first_line


def where_sql(filters: Filters, engine: Engine | None = None) -> tuple[str, dict[str, Any]]:
    """The filters as one SQL condition on events and its named parameters (f_…), in the
    engine's dialect (DuckDB's by default). On a Parquet store a time bound also bounds the
    `dt` partition column, so the days outside the window are never opened."""
    dialect = engine.name if engine is not None else DUCKDB
    clauses: list[str] = []
    params: dict[str, Any] = {}
    for column, op, name, value in (
        ("ts", ">=", "f_since", filters.since),
        ("ts", "<", "f_until", filters.until),
        ("model_id", "=", "f_model", filters.model),
        ("model_version", "=", "f_version", filters.version),
        ("service", "=", "f_service", filters.service),
    ):
        if value is not None:
            clauses.append(f"{column} {op} {param(dialect, name)}")
            params[name] = value
    if engine is not None and engine.partitioned:
        # dt is the UTC day of ts; a bound's own day is kept whole (ts < until on the day of
        # until can still hold rows).
        if filters.since is not None:
            clauses.append(f"dt >= {param(dialect, 'f_since_dt')}")
            params["f_since_dt"] = filters.since.date()
        if filters.until is not None:
            clauses.append(f"dt <= {param(dialect, 'f_until_dt')}")
            params["f_until_dt"] = filters.until.date()
    if filters.where:
        clauses.append(f"({filters.where})")
    return (" AND ".join(clauses) if clauses else "true"), params


def run(
    con: duckdb.DuckDBPyConnection | Engine, sql: SqlText, params: dict[str, Any],
    filters: Filters,
) -> Any:
    """Execute `sql` (one text, or texts by engine); an error raised while evaluating the
    user's --where (a failed cast, say) becomes a UsageError instead of a traceback."""
    engine = as_engine(con)
    try:
        return engine.execute(sql, params)
    except engine.user_errors() as exc:
        if filters.where:
            raise UsageError(f"--where failed on the data: {_first_line(exc)}") from None
        raise


# ------------------------------------------------------------------------ --by expressions

HOP_COLUMNS = frozenset(
    {"service", "event", "level", "source", "source_id", "span_id", "status", "line", "record",
     "ts", "ts_inferred"}
)
"""Columns whose value differs between the hops of one request: grouping by them counts a
request once per hop (the gateway and the model-server separately)."""

_ATTRS_PATH = re.compile(r"attrs\.([A-Za-z0-9_\-]+(?:\.[A-Za-z0-9_\-]+)*)")

INPUT_SIZE_BUCKET = "input_size_bucket"


@dataclass(frozen=True)
class Grouping:
    """A checked `--by`: the SQL expression over one event, and the output column name."""

    expression: str
    column: str
    per_hop: bool
    """True when a request is counted once per distinct value among its events (hop columns)."""


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def grouping(by: str, *, extra: dict[str, str] | None = None, engine: str = DUCKDB) -> Grouping:
    """A `--by` text checked against the events columns, `attrs.<dotted.path>` and the names in
    `extra` (name → SQL expression the caller owns, e.g. input_size_bucket), as an expression
    in `engine`'s dialect."""
    name = by.strip()
    if extra and name in extra:
        return Grouping(extra[name], name, per_hop=False)
    if name in EVENT_COLUMN_NAMES and name != "attrs":
        quoted = f"`{name}`" if engine == SPARK else quote_ident(name)  # Spark: "x" is text
        return Grouping(quoted, name, per_hop=name in HOP_COLUMNS)
    match = _ATTRS_PATH.fullmatch(name)
    if match:
        column = re.sub(r"\W+", "_", match.group(1).replace("-", "_")).strip("_").lower()
        return Grouping(json_text_sql(match.group(1).split("."), engine), column or "attr",
                        per_hop=False)
    choices = sorted(c for c in EVENT_COLUMN_NAMES if c != "attrs")
    if extra:
        choices = sorted(extra) + choices
    raise UsageError(
        f"cannot group by {by!r}",
        hint=f"use one of {', '.join(choices)}, or attrs.<field> such as attrs.client_id",
    )




def json_text_sql(keys: list[str], engine: str = DUCKDB, column: str = "attrs") -> str:
    """The JSON text at keys[0].keys[1]… of `column`, as text (NULL when absent). Keys must
    match _ATTRS_PATH (no quote or backslash): each is quoted inside the path."""
    if engine == SPARK:
        # Spark's path syntax reads a key after '.' up to the next '.' or '['.
        return f"get_json_object({column}, '$." + ".".join(keys) + "')"
    return f"json_extract_string({column}, '$." + ".".join(f'"{key}"' for key in keys) + "')"


# ------------------------------------------------------------------------ kinds of events

_LOAD_NAME = re.compile(r"load|deploy|rollout|warmup|warm_up", re.IGNORECASE)
_START_NAME = re.compile(
    r"(^|[^a-z])(start|started|begin|received|accepted|incoming)([^a-z]|$)", re.IGNORECASE
)
_FINISH_NAME = re.compile(
    r"success|succeeded|fail|error|exception|complete|done|finish|end$|response|timeout"
    r"|rejected|served|result|prediction$|inference$",
    re.IGNORECASE,
)
_PATTERN_ORDER = [_LOAD_NAME, _START_NAME, _FINISH_NAME]
"""The order classify_event_name tests them in: the first that matches names the kind."""
MAX_EVENT_NAMES = 5000
"""More distinct event names than this means the event column holds free text (messages), not
names; names are then classified in SQL with the same patterns (slower)."""


@dataclass(frozen=True)
class EventKinds:
    """Event names by role, read from the data (a few names, classified in Python once, so the
    big scans test list membership instead of running a regex per row)."""

    start: list[str]
    finish: list[str]
    load: list[str]
    free_text: bool = False
    """True when there were too many names to list; the SQL then uses the patterns."""
    loads_have_latency: bool = True
    """Whether some load event carries a latency_ms (only then must request lines exclude
    loads explicitly: finishing names never include load names)."""

    def start_sql(self, column: str = "event", engine: str = DUCKDB) -> tuple[str, dict[str, Any]]:
        return self._member(column, "k_start", self.start, _START_NAME, engine)

    def finish_sql(self, column: str = "event", engine: str = DUCKDB) -> tuple[str, dict[str, Any]]:
        return self._member(column, "k_finish", self.finish, _FINISH_NAME, engine)

    def load_sql(self, column: str = "event", engine: str = DUCKDB) -> tuple[str, dict[str, Any]]:
        return self._member(column, "k_load", self.load, _LOAD_NAME, engine)

    def _member(self, column: str, name: str, names: list[str], pattern: re.Pattern[str],
                engine: str = DUCKDB) -> tuple[str, dict[str, Any]]:
        marker = param(engine, name)
        if self.free_text:
            # The patterns use only syntax that Python, RE2 (DuckDB) and Java (Spark) agree on.
            # Fix: classify_event_name's order holds here too (a load is never a start, a start
            # never a finish): "model load start" made the model server an entry service.
            before = _PATTERN_ORDER[: _PATTERN_ORDER.index(pattern)]
            matches = "{column} RLIKE {marker}" if engine == SPARK else "regexp_matches({column}, {marker})"
            text = f"coalesce({column}, '')"
            condition = matches.format(column=text, marker=marker)
            params = {name: "(?i)" + pattern.pattern}
            if before:
                exclude = param(engine, name + "_not")
                condition += " AND NOT " + matches.format(column=text, marker=exclude)
                params[name + "_not"] = "(?i)" + "|".join(f"(?:{p.pattern})" for p in before)
            return f"({condition})", params
        if not names:
            return "false", {}
        if engine == SPARK:
            return f"array_contains({marker}, {column})", {name: names}
        return f"list_contains({marker}, {column})", {name: names}

    def request_line_sql(self, engine: str = DUCKDB) -> tuple[str, dict[str, Any]]:
        """A request line: carries a latency or is a finishing event, and is not a load."""
        finish, params = self.finish_sql(engine=engine)
        load, load_params = self.load_sql(engine=engine)
        if load == "false" or not self.loads_have_latency:
            return f"(latency_ms IS NOT NULL OR {finish})", params
        params.update(load_params)
        return f"((latency_ms IS NOT NULL OR {finish}) AND NOT coalesce({load}, false))", params


EVENT_NAMES_SQL = "SELECT DISTINCT event FROM events WHERE event IS NOT NULL LIMIT $n"
LOAD_LATENCY_SQL = """
SELECT count(*) > 0
FROM (SELECT 1 FROM events WHERE list_contains($k_load, event) AND latency_ms IS NOT NULL LIMIT 1)
"""
EVENT_NAMES_SQL_BY_ENGINE = {
    DUCKDB: EVENT_NAMES_SQL,
    SPARK: "SELECT DISTINCT event FROM events WHERE event IS NOT NULL LIMIT :n",
}
LOAD_LATENCY_SQL_BY_ENGINE = {
    DUCKDB: LOAD_LATENCY_SQL,
    SPARK: """
SELECT count(*) > 0
FROM (SELECT 1 FROM events WHERE array_contains(:k_load, event) AND latency_ms IS NOT NULL LIMIT 1)
""",
}


def classify_event_name(name: str) -> str | None:
    """'load', 'start', 'finish' or None for one event name."""
    if _LOAD_NAME.search(name):
        return "load"
    if _START_NAME.search(name):
        return "start"
    if _FINISH_NAME.search(name):
        return "finish"
    return None


def event_names(con: duckdb.DuckDBPyConnection | Engine) -> list[str]:
    """The distinct event names (at most MAX_EVENT_NAMES + 1), read once per engine object:
    a scan of the whole event column, 35 ms on the dashboard's 2M in-memory events, which a
    refresh ran four times before (BENCHMARKS.md §3)."""
    engine = as_engine(con)
    if "event_names" not in engine.memo:
        engine.memo["event_names"] = [
            row[0] for row in
            engine.execute(EVENT_NAMES_SQL_BY_ENGINE, {"n": MAX_EVENT_NAMES + 1}).fetchall()
        ]
    return engine.memo["event_names"]


def event_kinds(con: duckdb.DuckDBPyConnection | Engine) -> EventKinds:
    engine = as_engine(con)
    if "event_kinds" not in engine.memo:
        engine.memo["event_kinds"] = _read_event_kinds(engine)
    return engine.memo["event_kinds"]


def _read_event_kinds(engine: Engine) -> EventKinds:
    names = event_names(engine)
    kinds = kinds_of_names(names)
    if kinds.free_text or not kinds.load:
        return kinds
    loads_have_latency = bool(
        engine.execute(LOAD_LATENCY_SQL_BY_ENGINE, {"k_load": kinds.load}).fetchone()[0]
    )
    return replace(kinds, loads_have_latency=loads_have_latency)


def kinds_of_names(names: list[str]) -> EventKinds:
    """The names classified by role (loads assumed to carry a latency: the safe choice, as
    request lines then exclude them explicitly)."""
    if len(names) > MAX_EVENT_NAMES:
        return EventKinds([], [], [], free_text=True)
    kinds: dict[str, list[str]] = {"start": [], "finish": [], "load": []}
    for name in sorted(names):
        kind = classify_event_name(name)
        if kind:
            kinds[kind].append(name)
    return EventKinds(kinds["start"], kinds["finish"], kinds["load"])


# ------------------------------------------------------------------------ time

SPAN_SQL = "SELECT min(ts), max(ts) FROM events WHERE {where}"

_NICE_STEPS_S = (1, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600,
                 43200, 86400, 604800)


def data_span(con: duckdb.DuckDBPyConnection | Engine, filters: Filters
              ) -> tuple[datetime | None, datetime | None]:
    """First and last event time inside the filters (None, None when nothing matches)."""
    engine = as_engine(con)
    where, params = where_sql(filters, engine)
    row = run(engine, SPAN_SQL.format(where=where), params, filters).fetchone()
    return (row[0], row[1]) if row else (None, None)


def default_every(start: datetime | None, end: datetime | None, rows: int = 48) -> timedelta:
    """A round interval that cuts [start, end] into about `rows` rows (4 h → 5 min)."""
    if start is None or end is None or end <= start:
        return timedelta(minutes=1)
    wanted = (end - start).total_seconds() / rows
    for step in _NICE_STEPS_S:
        if step >= wanted:
            return timedelta(seconds=step)
    return timedelta(seconds=_NICE_STEPS_S[-1])


def clock_text(moment: datetime | None, *, with_date: bool = False) -> str:
    """"02:47:04" (or with the date), for sentences; milliseconds only when not whole."""
    if moment is None:
        return "?"
    text = moment.isoformat(sep=" ", timespec="milliseconds" if moment.microsecond else "seconds")
    return text if with_date else text[11:]


def percent(part: float, whole: float) -> float | None:
    """part/whole in percent, None when whole is 0."""
    return 100.0 * part / whole if whole else None


def pct_text(value: float | None) -> str:
    if value is None:
        return "–"
    if value == 0:
        return "0 %"
    if value < 0.1:
        return f"{value:.2f} %"
    return f"{value:.1f} %"


def ms_text(value: float | None) -> str:
    if value is None:
        return "–"
    from ..timeparse import format_duration

    return format_duration(value / 1000.0)


def bucket_sql(step_param: str, column: str = "ts", engine: str = DUCKDB) -> str:
    """SQL for the start of the time bucket holding `column`, for a step bound as
    `$step_param` in whole microseconds (see `micros`). Epoch arithmetic, because
    time_bucket() with an interval parameter is 2-3x slower on 10 M rows."""
    if engine == SPARK:
        return f"{from_micros_spark(f'{micros_spark(column)} div :{step_param} * :{step_param}')}"
    return f"make_timestamp(epoch_us({column}) // ${step_param} * ${step_param})"


def micros_spark(column: str) -> str:
    """Spark: microseconds since the epoch of a TIMESTAMP_NTZ holding UTC. The cast to
    TIMESTAMP reads the wall time in the session zone, which the Spark engine pins to UTC."""
    return f"unix_micros(CAST({column} AS TIMESTAMP))"


def from_micros_spark(expression: str) -> str:
    """Spark: epoch microseconds back to a TIMESTAMP_NTZ in UTC (a zoned TIMESTAMP would be
    shifted to the Python process's local zone when collected)."""
    return f"CAST(timestamp_micros({expression}) AS TIMESTAMP_NTZ)"


def micros(step: timedelta) -> int:
    """A bucket step in whole microseconds (at least 1)."""
    return max(1, round(step.total_seconds() * 1e6))
