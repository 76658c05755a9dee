"""Where `mlinv ingest` spends its time: every SQL statement the ingest pipeline runs, timed and
grouped by kind, plus the Python time between them; optionally EXPLAIN ANALYZE of the batch insert.

    python bench/profile_ingest.py FILE                       # statement breakdown, fresh file DB
    python bench/profile_ingest.py FILE --explain             # + operator profile of one batch insert
    python bench/profile_ingest.py FILE --memory              # in-memory database (no compression)
    python bench/profile_ingest.py FILE --set "force_compression='uncompressed'"

This is an analysis aid, not a benchmark: it uses the package's internals (Ingestor, store.connect)
exactly as `mlinv ingest` does, with a connection wrapper that times each execute().
"""

from __future__ import annotations

import argparse
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

from mlinvestigate import store
from mlinvestigate.ingest import pipeline, reader


class TimedConnection:
    """Forwards to a DuckDB connection, timing execute()/executemany() by statement kind."""

    def __init__(self, con: Any) -> None:
        self._con = con
        self.seconds: dict[str, float] = defaultdict(float)
        self.calls: dict[str, int] = defaultdict(int)
        self.durations: dict[str, list[float]] = defaultdict(list)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def _timed(self, method: str, sql: str, *args: Any) -> Any:
        kind = statement_kind(sql)
        start = time.perf_counter()
        result = getattr(self._con, method)(sql, *args)
        self.seconds[kind] += time.perf_counter() - start
        self.durations[kind].append(time.perf_counter() - start)
        self.calls[kind] += 1
        return result

    def execute(self, sql: str, *args: Any) -> Any:
        return self._timed("execute", sql, *args)

    def executemany(self, sql: str, *args: Any) -> Any:
        return self._timed("executemany", sql, *args)


def statement_kind(sql: str) -> str:
    text = " ".join(sql.split())
    if text.startswith("INSERT INTO events"):
        return "INSERT INTO events (parse + normalise)"
    if "mlinv_leftover AS" in text:
        return "leftover classification (anti-join on events)"
    if "regexp_extract_all" in text:
        return "_discover_keys: regex scan for absent alias keys"
    if "json_keys" in text:
        return "_discover_keys: json_keys sample"
    if text.startswith("INSERT INTO rejects"):
        return "INSERT INTO rejects"
    if "count(*) FILTER" in text or text.startswith("SELECT count(*) AS events"):
        return "batch summary"
    return re.sub(r"\s+", " ", text)[:70]


def run(path: str, explain: bool, settings: list[str], memory: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        db = ":memory:" if memory else str(Path(tmp) / "profile.duckdb")
        con = store.connect(db)
        for setting in settings:
            con.execute(f"SET {setting}")
        timed = TimedConnection(con)
        ingestor = pipeline.Ingestor(timed)  # type: ignore[arg-type]
        start = time.perf_counter()
        report = ingestor.ingest([path])
        total = time.perf_counter() - start
        sql_total = sum(timed.seconds.values())
        print(f"ingested {report.lines:,} lines in {total:.2f} s ({report.lines / total:,.0f} lines/s)\n")
        inserts = timed.durations.get("INSERT INTO events (parse + normalise)", [])
        print("per-batch INSERT INTO events seconds: " + " ".join(f"{s:.2f}" for s in inserts) + "\n")
        print("| statement | calls | seconds | share |\n|---|---:|---:|---:|")
        for kind, secs in sorted(timed.seconds.items(), key=lambda kv: -kv[1]):
            print(f"| {kind} | {timed.calls[kind]} | {secs:.2f} | {secs / total:.0%} |")
        print(f"| Python outside SQL (read-ahead waits, Arrow registration, bookkeeping) | – | "
              f"{total - sql_total:.2f} | {(total - sql_total) / total:.0%} |")
        if explain:
            explain_batch(con, ingestor, path)
        con.close()


def explain_batch(con: Any, ingestor: pipeline.Ingestor, path: str) -> None:
    """EXPLAIN ANALYZE the events insert for the first batch of the file (into a scratch copy)."""
    with reader.open_stream(path) as stream:
        batch = next(reader.iter_line_batches(stream, chunk_bytes=ingestor.chunk_bytes))
    con.register("batch", batch.table)
    batch_sql, _ = ingestor._sql_for(ingestor._discover_keys())
    con.execute("BEGIN TRANSACTION")
    rows = con.execute("EXPLAIN ANALYZE " + batch_sql, {"source": "x", "source_id": 999}).fetchall()
    con.execute("ROLLBACK")
    print(f"\nEXPLAIN ANALYZE of the events insert, one batch of {batch.line_count:,} lines:\n")
    print(rows[0][1])
    print("\nInsert SQL:\n")
    print(batch_sql)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file")
    parser.add_argument("--explain", action="store_true")
    parser.add_argument("--set", action="append", default=[], metavar="SETTING",
                        help="extra DuckDB setting, e.g. \"force_compression='uncompressed'\"")
    parser.add_argument("--memory", action="store_true", help="ingest into an in-memory database")
    args = parser.parse_args()
    run(args.file, args.explain, args.set, args.memory)


if __name__ == "__main__":
    main()
