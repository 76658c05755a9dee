"""What the database holds (`mlinv info`), its rejected lines (`mlinv rejects`), and the
read-only SQL escape hatch (`mlinv sql`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .errors import UsageError
from .ingest import aliases
from .result import Result

if TYPE_CHECKING:
    import duckdb

UNMAPPED_SAMPLE_ROWS = 50_000
"""About twice this many events are sampled (in whole vectors) to list record fields that no
event column reads."""

OVERVIEW_SQL = """
SELECT
    count(*) AS events,
    min(ts) AS first_event,
    max(ts) AS last_event,
    count(DISTINCT service) AS services,
    count(DISTINCT model_version) AS model_versions,
    count(*) FILTER (WHERE error_category IS NOT NULL) AS error_events,
    count(*) FILTER (WHERE ts_inferred) AS ts_inferred,
    count(*) FILTER (WHERE latency_ms < 0) AS negative_latency,
    count(*) FILTER (WHERE latency_ms > 3600000) AS absurd_latency
FROM events
"""

SOURCES_SQL = """
SELECT source_id, path, kind, compression, lines_read AS lines, events, rejects, blank_lines,
       bytes_read, complete,
       CASE WHEN superseded_by IS NOT NULL THEN 'superseded by ' || superseded_by
            WHEN complete THEN 'complete' ELSE 'incomplete' END AS state,
       last_ingest
FROM sources ORDER BY source_id
"""

VERSIONS_SQL = """
SELECT service, model_id, model_version, count(*) AS events, min(ts) AS first_seen,
       max(ts) AS last_seen
FROM events
WHERE model_version IS NOT NULL OR model_id IS NOT NULL
GROUP BY ALL ORDER BY service, model_id, model_version
"""

REJECT_KINDS_SQL = """
SELECT kind, any_value(reason) AS reason, count(*) AS lines
FROM rejects GROUP BY kind ORDER BY lines DESC
"""

UNMAPPED_SQL_TEMPLATE = """
SELECT key AS field, count(*) AS records_in_sample
FROM (
    SELECT unnest(json_keys(attrs)) AS key
    FROM (SELECT attrs FROM events USING SAMPLE {percent}% (system))
    WHERE json_valid(attrs)
)
WHERE NOT list_contains($known, key)
GROUP BY key ORDER BY records_in_sample DESC, field
"""


def _unmapped_sql(events: int) -> str:
    # System sampling picks whole vectors, so it reads only the sampled `attrs` (a reservoir
    # sample of N rows reads every value: 12 s on 10 M events). The percentage is ours, not input.
    percent = min(100.0, 100.0 * 2 * UNMAPPED_SAMPLE_ROWS / max(events, 1))
    return UNMAPPED_SQL_TEMPLATE.format(percent=f"{percent:.6f}")


def database_info(con: duckdb.DuckDBPyConnection) -> Result:
    cur = con.execute(OVERVIEW_SQL)
    overview = dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))
    rejects_total = con.execute("SELECT count(*) FROM rejects").fetchone()[0]
    blank = con.execute("SELECT coalesce(sum(blank_lines), 0) FROM sources").fetchone()[0]
    lines = con.execute("SELECT coalesce(sum(lines_read), 0) FROM sources").fetchone()[0]
    rows: list[tuple[str, Any]] = [
        ("lines_read", lines),
        ("events", overview["events"]),
        ("rejected_lines", rejects_total),
        ("blank_lines", blank),
        ("first_event", overview["first_event"]),
        ("last_event", overview["last_event"]),
        ("services", overview["services"]),
        ("model_versions", overview["model_versions"]),
        ("error_events", overview["error_events"]),
        ("ts_inferred", overview["ts_inferred"]),
        ("negative_latency", overview["negative_latency"]),
        ("absurd_latency", overview["absurd_latency"]),
    ]
    known = sorted(set(aliases.all_keys()) | {"_envelope"})
    mapped_roots = [path.split(".")[0] for (path,) in con.execute("SELECT path FROM mappings").fetchall()]
    sections = [
        _query(con, "Sources", SOURCES_SQL),
        _query(con, "Services and model versions", VERSIONS_SQL),
        _query(con, "Rejected lines by kind", REJECT_KINDS_SQL),
        _query(con, f"Record fields no event column reads (in a sample of about "
               f"{min(overview['events'], 2 * UNMAPPED_SAMPLE_ROWS):,} events; kept in attrs; map one "
               "with --map COLUMN=PATH)",
               _unmapped_sql(overview["events"]), {"known": known + mapped_roots}),
    ]
    return Result(
        title="Database",
        columns=["item", "value"],
        rows=rows,
        notes=["Times are UTC."],
        sections=[s for s in sections if s.rows],
    )


def _query(con: duckdb.DuckDBPyConnection, title: str, sql: str,
           params: dict[str, Any] | None = None) -> Result:
    cur = con.execute(sql, params)
    return Result.from_cursor(title, cur.description, cur.fetchall())


REJECTS_SQL = """
SELECT source, line, byte_offset, kind, reason, raw_bytes, raw
FROM rejects
WHERE ($kind IS NULL OR kind = $kind)
  AND ($source IS NULL OR contains(source, $source))
ORDER BY source_id, line
LIMIT $limit
"""

REJECT_KINDS = ("not_json", "invalid_json", "not_object", "invalid_utf8", "envelope")


def list_rejects(con: duckdb.DuckDBPyConnection, *, kind: str | None = None,
                 source: str | None = None, limit: int = 50) -> Result:
    if kind is not None and kind not in REJECT_KINDS:
        raise UsageError(f"unknown reject kind {kind!r}", hint="one of " + ", ".join(REJECT_KINDS))
    cur = con.execute(REJECTS_SQL, {"kind": kind, "source": source, "limit": limit})
    # Fetch before the next execute: a DuckDB connection holds one pending result at a time.
    rows = cur.fetchall()
    description = cur.description
    total = con.execute(
        "SELECT count(*) FROM rejects WHERE ($kind IS NULL OR kind = $kind) "
        "AND ($source IS NULL OR contains(source, $source))",
        {"kind": kind, "source": source},
    ).fetchone()[0]
    notes = []
    if total > len(rows):
        notes.append(f"{len(rows):,} of {total:,} rejected lines shown (--limit to see more).")
    return Result.from_cursor("Rejected lines", description, rows, notes=notes)


_READONLY_TYPES = {"SELECT", "EXPLAIN", "PRAGMA"}


def run_readonly_sql(con: duckdb.DuckDBPyConnection, query: str) -> Result:
    """Run one read-only statement. Writes, ATTACH, COPY, INSTALL/LOAD and SET are refused; the
    connection also loses access to files outside the database for this query."""
    from .duckdb_core import duckdb

    try:
        statements = duckdb.extract_statements(query)
    except duckdb.Error as exc:
        raise UsageError(f"SQL error: {str(exc).splitlines()[0]}") from None
    if len(statements) != 1:
        raise UsageError("give exactly one SQL statement")
    kind = statements[0].type.name
    first_word = query.lstrip().split(None, 1)[0].upper() if query.strip() else ""
    if kind not in _READONLY_TYPES or (kind == "PRAGMA" and first_word != "PRAGMA"):
        raise UsageError(f"only read-only statements are allowed here (got {kind})")
    if kind == "PRAGMA" and not query.strip().lower().startswith(("pragma table_info", "pragma show")):
        raise UsageError("only PRAGMA table_info/show are allowed here")
    try:
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
        cur = con.execute(query)
        rows = cur.fetchall()
    except duckdb.Error as exc:
        raise UsageError(f"SQL error: {str(exc).splitlines()[0]}") from None
    return Result.from_cursor("Query", cur.description, rows)
