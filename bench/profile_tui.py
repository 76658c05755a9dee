"""Where a dashboard refresh spends its time: the TUI's panel functions (signals, tables, loads,
alerts, drift) run on an in-memory database holding what `mlinv tui -` retains at 20k lines/s
(2M events), with every SQL statement timed.

    python bench/profile_tui.py                      # 2,000,000 events, the 5m window
    python bench/profile_tui.py --events 500000 --window 15m --repeat 3

The events come from `mlinv sample` at the keep-up benchmark's density (1.5M lines per hour
of event time), so each window holds what it holds during `bench/tui_keepup.py`. An analysis
aid; the package is not changed.
"""

from __future__ import annotations

import argparse
import collections
import os
import subprocess
import sys
import tempfile
import time
from typing import Any

LINES_PER_EVENT_HOUR = 1_500_000


class TimedCursor:
    """A DuckDB cursor that logs each statement's wall time under the current label."""

    def __init__(self, cur: Any, log: dict[str, list[float]], label: list[str]) -> None:
        self._cur = cur
        self._log = log
        self._label = label

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cur, name)

    def execute(self, sql: str, *args: Any) -> TimedCursor:
        start = time.perf_counter()
        self._cur.execute(sql, *args)
        key = f"{self._label[0]}: {' '.join(sql.split())[:110]}"
        self._log[key].append(time.perf_counter() - start)
        return self

    def fetchall(self) -> Any:
        return self._cur.fetchall()

    def fetchone(self) -> Any:
        return self._cur.fetchone()

    def fetchmany(self, *args: Any) -> Any:
        return self._cur.fetchmany(*args)

    @property
    def description(self) -> Any:
        return self._cur.description

    def cursor(self) -> TimedCursor:
        return TimedCursor(self._cur.cursor(), self._log, self._label)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--window", default="5m", help="5m, 15m, 1h or all")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    from mlinvestigate import store
    from mlinvestigate.ingest.pipeline import ingest_paths
    from mlinvestigate.tui import panels

    hours = args.events / LINES_PER_EVENT_HOUR
    with tempfile.TemporaryDirectory() as tmp:
        logs = os.path.join(tmp, "stream.jsonl")
        subprocess.run([sys.executable, "-c", "from mlinvestigate.cli import main; main()", "sample",
                        "--out", logs, "--lines", str(args.events), "--hours", f"{hours:.4f}",
                        "--seed", "7"], check=True, stdout=subprocess.DEVNULL)
        con = store.connect(store.MEMORY)
        ingest_paths(con, [logs])

    log: dict[str, list[float]] = collections.defaultdict(list)
    label = ["clock"]
    cur = TimedCursor(con.cursor(), log, label)
    clock = panels.read_clock(cur, None)
    view = panels.View(window=args.window)
    frame = panels.make_frame(view, clock, 1)
    assert frame is not None
    names = panels.EventNames()  # as the app keeps it
    calls = {
        "signals": lambda: panels.signals(cur, frame, None, names),
        "tables": lambda: panels.tables(cur, frame, names),
        "loads": lambda: panels.load_marks(cur, frame),
        "alerts": lambda: panels.firing_alerts(cur, frame),
        "drift": lambda: panels.drift_panel(cur, frame),
    }
    totals: dict[str, list[float]] = collections.defaultdict(list)
    for _ in range(args.repeat):
        for name, call in calls.items():
            label[0] = name
            start = time.perf_counter()
            call()
            totals[name].append(time.perf_counter() - start)
    print(f"{clock.events:,} events, window {args.window} ({frame.start} → {frame.end}), "
          f"medians of {args.repeat}")
    for name, values in totals.items():
        print(f"  {name:8s} {sorted(values)[len(values) // 2] * 1000:7.0f} ms")
    print("statements, by median × calls per refresh:")
    ranked = sorted(log.items(), key=lambda kv: -sorted(kv[1])[len(kv[1]) // 2] * len(kv[1]))
    for key, values in ranked[:25]:
        per_refresh = len(values) / args.repeat
        print(f"  {sorted(values)[len(values) // 2] * 1000:7.1f} ms × {per_refresh:g}  {key}")


if __name__ == "__main__":
    main()
