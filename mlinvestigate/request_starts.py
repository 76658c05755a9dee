"""Request starts: every start line (request_start …) with when its request finished at the
same service, matched at ingest, so `mlinv throughput` counts dropped requests without joining
millions of starts to millions of finishing lines at query time.

`request_starts` holds one row per start line, so it also gives throughput the count of starts
per second without reading the events. Its `finished_at` is the time of the earliest finishing
line (a request line, as throughput defines it) of the same request at the same service, found
in the start's own unit when it is ingested, or else in the first unit ingested after it that
has one. Only a finish is ever taken from it: a start left open (NULL, or a finish outside the
window asked for) is settled at query time, by the request index when the request was seen in
one unit only, else by reading the events of those few requests (`investigations/throughput.py`).

A finishing line without a time counts as finished at -infinity: inside a window without bounds,
outside any other (as the events' time filter would have it).

Measured on 10 M events (BENCHMARKS.md §2, session 9): the dropped count took 0.01 s from this
table against 0.62 s for the anti-join of 3.3 M starts with 3.3 M finishing lines; writing it
costs the ingest about 0.25 s per million lines.

Every path that inserts events adds their starts here (Ingestor._load_batch); removing a source
removes its starts and reopens the starts it had finished; the dashboard's retention gives the
table up (DISOWN_SQL).
"""

from __future__ import annotations

import re
from typing import Any

CREATE_SQL = """
CREATE TABLE request_starts (
    source_id   INTEGER NOT NULL,   -- removed with its source
    line        BIGINT NOT NULL,
    record      INTEGER NOT NULL,
    ts          TIMESTAMP,
    service     VARCHAR,
    request_id  VARCHAR,            -- a start without one is counted, never matched
    finished_at TIMESTAMP,          -- see the module's text; NULL: no finish found yet
    finished_by INTEGER             -- the source of that finishing line
)
"""

_INSERT_SQL = """
INSERT INTO request_starts
WITH starts AS MATERIALIZED (
    SELECT source_id, line, record, ts, service, request_id
    FROM events
    WHERE {is_start}
      {lines}
),
finishes AS (
    -- Only at the services that logged starts here: 2.4x faster than every request line.
    SELECT service, request_id,
           min(coalesce(ts, '-infinity'::TIMESTAMP)) AS finished_at,
           arg_min(source_id, coalesce(ts, '-infinity'::TIMESTAMP)) AS finished_by
    FROM events
    WHERE {request_line}
      AND request_id IS NOT NULL
      {lines}
      AND (list_contains((SELECT list(DISTINCT service) FROM starts), service)
           OR (service IS NULL AND (SELECT bool_or(service IS NULL) FROM starts)))
    GROUP BY ALL
)
SELECT s.source_id, s.line, s.record, s.ts, s.service, s.request_id, f.finished_at,
       f.finished_by
FROM starts s
LEFT JOIN finishes f ON s.service IS NOT DISTINCT FROM f.service AND s.request_id = f.request_id
ORDER BY s.source_id, s.line, s.record  -- in time order, its times pack: half the size
"""

_UNIT = "AND source_id = $source_id AND line BETWEEN $first_line AND $last_line"

LINK_SQL = """
UPDATE request_starts
SET finished_at = f.finished_at, finished_by = $source_id
FROM (
    SELECT service, request_id, min(coalesce(ts, '-infinity'::TIMESTAMP)) AS finished_at
    FROM events
    WHERE request_id IS NOT NULL
      {lines}
      AND {request_line}
      AND request_id IN (SELECT request_id FROM request_starts
                         WHERE finished_at IS NULL AND request_id IS NOT NULL)
    GROUP BY ALL
) AS f
WHERE request_starts.finished_at IS NULL
  AND request_starts.service IS NOT DISTINCT FROM f.service
  AND request_starts.request_id = f.request_id
""".replace("{lines}", _UNIT)
"""Starts of earlier units still open, finished by this unit (a request cut by a unit's end)."""

OPEN_STARTS_SQL = "SELECT count(*) FROM request_starts WHERE finished_at IS NULL AND request_id IS NOT NULL"

MAX_OPEN_TO_LINK = 200_000
"""Linking only saves query time (an open start of a request seen in several units is settled
from the events), and its cost grows with the open starts: with more open than this (a log
whose requests finish at another service, say), the ingest stops linking."""

EVENT_NAMES_SQL = f"""
SELECT DISTINCT event FROM events WHERE event IS NOT NULL {_UNIT} LIMIT $most
"""

REOPEN_SQL = "UPDATE request_starts SET finished_at = NULL, finished_by = NULL WHERE finished_by = $id"
"""After a source is removed: the starts that only its lines had finished are open again."""

DISOWN_SQL = [
    "UPDATE sources SET starts_indexed = false WHERE starts_indexed",
    "DELETE FROM request_starts",
]
"""After the dashboard's retention removed events. Its count bound removes by arrival, which
is not line order across units: a start can outlive the finishing line it was matched with, and
nothing cheap tells which. So the table is given up for the sources already read (throughput
then reads the events, as before the table existed) and emptied, so it does not grow."""


def _classified(con: Any, unit: dict[str, Any] | None) -> tuple[str, str, dict[str, Any]]:
    """The start and request-line conditions for the events of `unit` (all events when None),
    from the names found there, with their parameters."""
    from .investigations.filters import MAX_EVENT_NAMES, kinds_of_names

    # Past MAX_EVENT_NAMES the column holds messages: the patterns run in SQL, as at query time.
    most = MAX_EVENT_NAMES + 1
    if unit is None:
        names = con.execute("SELECT DISTINCT event FROM events WHERE event IS NOT NULL LIMIT $most",
                            {"most": most}).fetchall()
    else:
        names = con.execute(EVENT_NAMES_SQL, {**unit, "most": most}).fetchall()
    # The names of one unit cannot tell whether loads carry a latency anywhere: kinds_of_names
    # assumes they do, so request lines exclude loads explicitly, which selects the same lines.
    kinds = kinds_of_names([row[0] for row in names])
    is_start, params = kinds.start_sql()
    request_line, line_params = kinds.request_line_sql()
    return is_start, request_line, {**params, **line_params}


def add_lines(con: Any, unit: dict[str, Any]) -> None:
    """Record the starts of the lines just inserted (`unit`: source_id, first_line, last_line),
    and finish the earlier starts this unit finishes. In the ingest's open transaction."""
    is_start, request_line, params = _classified(con, unit)
    if 0 < con.execute(OPEN_STARTS_SQL).fetchone()[0] <= MAX_OPEN_TO_LINK:
        link = LINK_SQL.format(request_line=request_line)
        con.execute(link, _used(link, {**unit, **params}))
    if is_start != "false":
        con.execute(_INSERT_SQL.format(lines=_UNIT, is_start=is_start, request_line=request_line),
                    {**unit, **params})


def _used(sql: str, params: dict[str, Any]) -> dict[str, Any]:
    """The parameters `sql` names (DuckDB refuses any other)."""
    return {name: value for name, value in params.items() if re.search(rf"\${name}\b", sql)}


def backfill(con: Any) -> None:
    """Build the table from the events of a database ingested before it existed (migration
    m006): every start against every finishing line of the database at once."""
    is_start, request_line, params = _classified(con, None)
    if is_start != "false":
        con.execute(_INSERT_SQL.format(lines="", is_start=is_start, request_line=request_line),
                    params)
