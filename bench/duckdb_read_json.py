"""DuckDB's own reader on a generated log, as one process: the baseline `mlinv ingest` is compared to.

    python bench/duckdb_read_json.py FILE --db out.duckdb            # read_json, explicit schema
    python bench/duckdb_read_json.py FILE --db :memory:
    python bench/duckdb_read_json.py FILE --db out.duckdb --keep-lines   # also keep every raw line
    python bench/duckdb_read_json.py FILE --by-version                # count/median latency per version

Prints one line: `rows=N seconds=S` (the SQL time inside the process) or the grouped result.
"""

from __future__ import annotations

import argparse
import time

import duckdb
from benchlib import SAMPLE_COLUMNS, sql_columns, sql_string


def read_json_sql(path: str, ignore_errors: bool) -> str:
    extra = ", ignore_errors=true" if ignore_errors else ""
    return (f"CREATE TABLE t AS SELECT * FROM read_json({sql_string(path)}, "
            f"format='newline_delimited', columns={sql_columns()}{extra})")


def keep_lines_sql(path: str) -> str:
    """Raw lines (read_csv with a delimiter that never occurs) parsed with from_json, keeping the line
    itself too: roughly the work `mlinv ingest` does, since it keeps every record whole in `attrs`."""
    struct = "{" + ", ".join(f'"{k}": "{"VARCHAR" if v == "JSON" else v}"'
                             for k, v in SAMPLE_COLUMNS.items()) + "}"
    return (
        "CREATE TABLE t AS SELECT unnest(CASE WHEN json_valid(line) THEN from_json(line, "
        f"{sql_string(struct)}) END), line AS attrs FROM read_csv({sql_string(path)}, "
        "columns={'line': 'VARCHAR'}, delim=E'\\x1f', quote='', escape='', header=false, "
        "auto_detect=false, strict_mode=false, ignore_errors=true)"
    )


def by_version_sql(path: str) -> str:
    return (f"SELECT model_version, count(*) AS n, median(latency_ms) AS median_ms "
            f"FROM read_json({sql_string(path)}, format='newline_delimited', columns={sql_columns()}) "
            "WHERE model_version IS NOT NULL GROUP BY ALL ORDER BY ALL")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("file")
    parser.add_argument("--db", default=":memory:", help="database file (must not exist) or :memory:")
    parser.add_argument("--keep-lines", action="store_true", help="raw lines + from_json, keep each line")
    parser.add_argument("--ignore-errors", action="store_true", help="read_json ignore_errors=true")
    parser.add_argument("--by-version", action="store_true", help="group by model_version instead")
    args = parser.parse_args()

    con = duckdb.connect(args.db)
    start = time.perf_counter()
    if args.by_version:
        for row in con.execute(by_version_sql(args.file)).fetchall():
            print(*row, sep="\t")
        return
    sql = keep_lines_sql(args.file) if args.keep_lines else read_json_sql(args.file, args.ignore_errors)
    con.execute(sql)
    rows = con.execute("SELECT count(*) FROM t").fetchone()[0]
    con.close()
    print(f"rows={rows} seconds={time.perf_counter() - start:.3f}")


if __name__ == "__main__":
    main()
