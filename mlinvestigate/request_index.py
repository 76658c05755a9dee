"""The request index: where in time each request_id was seen, so `mlinv trace` reads a few row
groups instead of scanning every request_id of the table.

`request_index` holds one row per request_id per ingested unit (its first and last event
time), written by the ingest in the same transaction as the events, sorted by request_id within
the unit. Sorted runs give each row group a narrow min/max of request_id, so DuckDB's zone maps
skip almost all of them for a range condition. The events are then read with a time range,
which the events' own zone maps narrow (they arrive roughly in time order).

Measured on 10 M events (BENCHMARKS.md §2, session 8): the lookup took 26–36 ms and the events
13–19 ms in a fresh process, against 100–140 ms for the scan of request_id; the index costs
about 0.2 s of ingest per million lines and 5 % of the database's size.

The index may name more than the events hold (a line removed by a re-read, events pruned by the
dashboard's retention): it only narrows the search, the events decide. It must never name less:
every path that inserts events adds their rows here (Ingestor._load_batch), and a request with an
event without time sends the trace back to the full scan.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

CREATE_SQL = """
CREATE TABLE request_index (
    request_id VARCHAR NOT NULL,
    source_id  INTEGER NOT NULL,   -- removed with its source
    first_ts   TIMESTAMP,          -- NULL when none of its events has a time
    last_ts    TIMESTAMP,
    untimed    BOOLEAN NOT NULL    -- some event of it has no time: trace scans instead
)
"""

_INSERT_SQL = """
INSERT INTO request_index
SELECT request_id, source_id, min(ts), max(ts), count(*) > count(ts)
FROM events
WHERE request_id IS NOT NULL
  {lines}
GROUP BY request_id, source_id
ORDER BY request_id
"""

BACKFILL_SQL = _INSERT_SQL.format(lines="")
"""Builds the index of a database ingested before it existed (migration m005)."""

ADD_LINES_SQL = _INSERT_SQL.format(
    lines="AND source_id = $source_id AND line BETWEEN $first_line AND $last_line")
"""The requests of the lines just inserted (one unit, in the ingest's open transaction)."""

PRUNE_SQL = """
DELETE FROM request_index
WHERE last_ts < (SELECT min(ts) FROM events)
   OR NOT EXISTS (SELECT 1 FROM events)
   -- Fix: requests with no time at all were never pruned, so a stream without any time grew
   -- the index without bound. The events without time are few (none in a timed stream).
   OR (last_ts IS NULL
       AND request_id NOT IN (SELECT request_id FROM events
                              WHERE ts IS NULL AND request_id IS NOT NULL))
"""
"""After the dashboard's retention removed old events: requests wholly older than what is kept,
and requests without time whose events are gone."""

LOOKUP_SQL = """
SELECT count(*), min(first_ts), max(last_ts), coalesce(bool_or(untimed), false),
       (SELECT count(*) FROM sources WHERE request_indexed IS NOT TRUE)
FROM request_index
WHERE request_id >= $prefix
  {below_upper}
  AND starts_with(request_id, $prefix)
"""
"""The range condition is what the zone maps use; starts_with keeps the answer exact. The last
column counts sources whose events the index may lack (added by an mlinv before it existed)."""


def prefix_upper_bound(prefix: str) -> str | None:
    """The smallest text above every text that starts with `prefix` (code point order, which
    is DuckDB's byte order for UTF-8), or None when there is none (a prefix of U+10FFFF only)."""
    chars = list(prefix)
    while chars:
        code = ord(chars[-1]) + 1
        if code == 0xD800:  # surrogates are not characters
            code = 0xE000
        if code <= 0x10FFFF:
            chars[-1] = chr(code)
            return "".join(chars)
        chars.pop()
    return None


@dataclass(frozen=True)
class Span:
    """What the index knows of the requests whose id starts with a prefix."""

    entries: int
    first_ts: datetime | None
    last_ts: datetime | None
    usable: bool
    """False when the index cannot be trusted to name every event: some event has no time, or
    a source was added without the index."""


def lookup(con: Any, prefix: str) -> Span:
    """`con` is a DuckDB connection or engine of a migrated database."""
    upper = prefix_upper_bound(prefix)
    params: dict[str, Any] = {"prefix": prefix}
    below_upper = ""
    if upper is not None:
        below_upper, params["upper"] = "AND request_id < $upper", upper
    entries, first, last, untimed, unindexed = con.execute(
        LOOKUP_SQL.format(below_upper=below_upper), params).fetchone()
    return Span(int(entries), first, last, usable=not untimed and not unindexed)
