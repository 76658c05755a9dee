"""Resident memory of a command over time: does it plateau or grow with the input?

    python bench/rss_trace.py --every 5 -- mlinv ingest big.jsonl --db /tmp/x.duckdb --quiet

Samples VmRSS of the process (and its children) from /proc every --every seconds and prints
`elapsed_s rss_mb`, then the peak. Linux only.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path


def rss_kb(pid: int) -> int:
    """VmRSS of pid plus its direct children (KiB); 0 once it has exited."""
    total = 0
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(c) for c in children.read_text().split()]
    for p in pids:
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
    return total


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--every", type=float, default=5.0, help="seconds between samples")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- COMMAND ARGS...")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given")
    start = time.perf_counter()
    proc = subprocess.Popen(command)
    peak = 0
    print("elapsed_s rss_mb", flush=True)
    while proc.poll() is None:
        kb = rss_kb(proc.pid)
        peak = max(peak, kb)
        print(f"{time.perf_counter() - start:9.1f} {kb / 1024:7.0f}", flush=True)
        time.sleep(args.every)
    print(f"exit {proc.returncode} after {time.perf_counter() - start:.1f} s; "
          f"peak sampled RSS {peak / 1024:,.0f} MB")


if __name__ == "__main__":
    main()
