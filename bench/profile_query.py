"""Where an investigation command spends its time: runs `mlinv ARGS` in-process with every SQL
statement timed (wall and process CPU), then prints the statements slowest first.

    python bench/profile_query.py -- summary --db bench/data/queries/events-10000000-seed7.duckdb
    python bench/profile_query.py --explain -- throughput --db DB    # + EXPLAIN ANALYZE of the slowest

The command's own output goes to /dev/null. An analysis aid that patches `store.connect`; the
package itself is not changed.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from typing import Any

T0 = time.perf_counter()


class TimedConnection:
    def __init__(self, con: Any, log: list[tuple[float, float, str, Any]]) -> None:
        self._con = con
        self._log = log

    def __getattr__(self, name: str) -> Any:
        return getattr(self._con, name)

    def __enter__(self) -> TimedConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self._con.close()

    def execute(self, sql: str, *args: Any) -> Any:
        wall, cpu = time.perf_counter(), time.process_time()
        self._con.execute(sql, *args)
        # DuckDB materialises the result in execute(); fetching it afterwards is cheap.
        params = args[0] if args else None
        self._log.append((time.perf_counter() - wall, time.process_time() - cpu, sql, params))
        return self

    def fetchall(self) -> Any:
        return self._con.fetchall()

    def fetchone(self) -> Any:
        return self._con.fetchone()

    @property
    def description(self) -> Any:
        return self._con.description


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--explain", action="store_true", help="EXPLAIN ANALYZE the slowest statement")
    parser.add_argument("--top", type=int, default=8)
    parser.add_argument("args", nargs=argparse.REMAINDER)
    ns = parser.parse_args()
    argv = ns.args[1:] if ns.args[:1] == ["--"] else ns.args

    import_start = time.perf_counter()
    from mlinvestigate import store
    from mlinvestigate.cli import main as cli_main

    imported = time.perf_counter() - import_start
    log: list[tuple[float, float, str, Any]] = []
    real_connect = store.connect
    opened: list[Any] = []

    def timed_connect(*a: Any, **kw: Any) -> TimedConnection:
        start = time.perf_counter()
        con = real_connect(*a, **kw)
        opened.append((time.perf_counter() - start, con))
        return TimedConnection(con, log)

    store.connect = timed_connect  # type: ignore[assignment]
    sys.argv = ["mlinv", *argv]
    start = time.perf_counter()
    with open(os.devnull, "w") as sink, contextlib.redirect_stdout(sink), contextlib.suppress(SystemExit):
        cli_main()
    total = time.perf_counter() - start
    sql_wall = sum(w for w, _, _, _ in log)
    print(f"mlinv {' '.join(argv)}")
    print(f"  import mlinvestigate.cli: {imported:.3f} s; command: {total:.3f} s "
          f"(open DB {sum(o[0] for o in opened):.3f} s, {len(log)} statements {sql_wall:.3f} s, "
          f"rest = Python + rendering {total - sql_wall - sum(o[0] for o in opened):.3f} s)")
    for wall, cpu, sql, _ in sorted(log, key=lambda r: -r[0])[: ns.top]:
        print(f"  {wall:7.3f} s wall {cpu:7.3f} s CPU  {' '.join(sql.split())[:150]}")
    if ns.explain and log and opened:
        _, _, sql, params = max(log, key=lambda r: r[0])
        con = real_connect(*_db_args(argv), read_only=True)
        print(con.execute("EXPLAIN ANALYZE " + sql, params).fetchall()[0][1])


def _db_args(argv: list[str]) -> list[str]:
    return [argv[argv.index("--db") + 1]] if "--db" in argv else [None]  # type: ignore[list-item]


if __name__ == "__main__":
    main()
