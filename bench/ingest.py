"""Ingest throughput and memory: `mlinv ingest` against DuckDB's own reader, jq and lnav, on the same
generated file in the same run.

    python bench/ingest.py --lines 1000000
    python bench/ingest.py --lines 1000000 --repeat 5 --repeat-other 3    # more runs, slower
    python bench/ingest.py --lines 10000000 --only duckdb mlinv stdin gzip jq lnav --keep

Data is generated at run time with `mlinv sample` under bench/data/ingest/ (gitignored) and deleted
at the end unless --keep. Every command is printed before it runs; the result is a markdown table
(median wall time of --repeat runs, whole processes, peak RSS of the measured process).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import duckdb
from benchlib import (
    BENCH_DIR,
    DATA_DIR,
    LNAV_FORMAT,
    LNAV_TABLE,
    Measurement,
    Run,
    dump_json,
    fmt_mb,
    fmt_rate,
    fmt_s,
    free_gb,
    load_average,
    machine_facts,
    markdown_table,
    mlinv_exe,
    print_facts,
    run,
    show,
)

PY = sys.executable
HELPER = str(BENCH_DIR / "duckdb_read_json.py")
JQ_SELECT = "select(.latency_ms != null) | [.model_version, .latency_ms]"
JQ_COUNT = "reduce (inputs | .model_version // empty) as $v ({}; .[$v] += 1)"
ALL_CASES = ("duckdb", "keep-lines", "mlinv", "stdin", "gzip", "corrupt", "jq", "lnav")


@dataclass
class Files:
    plain: Path
    corrupt: Path
    gz1: Path
    gz6: Path


@dataclass
class Row:
    m: Measurement
    lines: int
    size_bytes: int
    db_mb: float | None = None
    rows: str = ""
    prep: bool = False
    """Data preparation (generate, gzip), not a reading tool: no ratio."""


class Bench:
    def __init__(self, work: Path, repeat: int, repeat_other: int, cases: set[str], lnav_home: Path) -> None:
        self.work = work
        self.repeat = repeat
        """Runs of the main comparison: DuckDB read_json → file DB and mlinv ingest FILE."""
        self.repeat_other = repeat_other
        """Runs of every other case (kept low so a 1M-line run stays within a few minutes)."""
        self.cases = cases
        self.lnav_home = lnav_home
        self.mlinv = mlinv_exe()

    # --- data ---------------------------------------------------------------------------------

    def generate(self, lines: int, seed: int) -> tuple[Files, list[Row]]:
        plain = self.work / f"sample-{lines}-seed{seed}.jsonl"
        files = Files(plain, self.work / f"sample-{lines}-seed{seed}-corrupt.jsonl",
                      self.work / f"sample-{lines}-seed{seed}-gzip1.jsonl.gz",
                      self.work / f"sample-{lines}-seed{seed}-gzip6.jsonl.gz")
        prep: list[Row] = []
        gen = [self.mlinv, "sample", "--out", str(plain), "--lines", str(lines), "--seed", str(seed),
               "--no-corrupt"]
        prep.append(self._once("generate (mlinv sample --no-corrupt)", gen, lines, 0))
        if "corrupt" in self.cases:
            gen_c = [self.mlinv, "sample", "--out", str(files.corrupt), "--lines", str(lines),
                     "--seed", str(seed)]
            prep.append(self._once("generate corrupted variant (mlinv sample)", gen_c, lines, 0))
        if "gzip" in self.cases:
            for level, target in (("-1", files.gz1), ("-6", files.gz6)):
                prep.append(self._once(f"gzip {level}", ["gzip", level, "-c", str(plain)], lines, 0,
                                       stdout_path=str(target)))
        size = plain.stat().st_size
        for row in prep:
            row.size_bytes = size
        return files, prep

    def _once(self, name: str, cmd: list[str], lines: int, size: int, stdout_path: str | None = None) -> Row:
        m = Measurement(name, show(cmd, stdout_path=stdout_path))
        print(f"$ {m.command}", flush=True)
        m.runs.append(run(cmd, stdout_path=stdout_path))
        print(f"    {m.runs[-1].seconds:.2f} s", flush=True)
        return Row(m, lines, size, prep=True)

    # --- measuring ----------------------------------------------------------------------------

    def measure(
        self,
        name: str,
        cmd: list[str],
        lines: int,
        size: int,
        *,
        stdin_cmd: list[str] | None = None,
        stdout_path: str | None = None,
        db: Path | None = None,
        env: dict[str, str] | None = None,
        rows_of: Callable[[Run], str] | None = None,
        main: bool = False,
    ) -> Row:
        m = Measurement(name, show(cmd, stdin_cmd, stdout_path, env))
        print(f"$ {m.command}", flush=True)
        row = Row(m, lines, size)
        for i in range(self.repeat if main else self.repeat_other):
            if db is not None:
                _remove_db(db)
            r = run(cmd, stdin_cmd=stdin_cmd, stdout_path=stdout_path, capture=True, env=env)
            m.runs.append(r)
            rss = f"{r.max_rss_kb / 1024:,.0f} MB" if r.max_rss_kb else "?"
            cpu = f"{r.cpu_s:.2f}" if r.cpu_s is not None else "?"
            print(f"    run {i + 1}: {r.seconds:.2f} s wall, {cpu} s CPU, peak RSS {rss}, "
                  f"load {load_average()}", flush=True)
            if rows_of:
                row.rows = rows_of(r)
        if db is not None and db.exists():
            row.db_mb = db.stat().st_size / 1e6
            if not row.rows:
                row.rows = _count_events(db)
            _remove_db(db)
        return row

    def all_for(self, files: Files, lines: int) -> list[Row]:
        size = files.plain.stat().st_size
        db = self.work / "fresh.duckdb"
        plain = str(files.plain)
        rows: list[Row] = []
        if "duckdb" in self.cases:
            rows.append(self.measure("DuckDB read_json → file DB", [PY, HELPER, plain, "--db", str(db)],
                                     lines, size, db=db, rows_of=_helper_rows, main=True))
            rows.append(self.measure("DuckDB read_json → memory", [PY, HELPER, plain, "--db", ":memory:"],
                                     lines, size, rows_of=_helper_rows))
        if "keep-lines" in self.cases:
            rows.append(self.measure(
                "DuckDB raw lines + from_json, every line kept → file DB",
                [PY, HELPER, plain, "--db", str(db), "--keep-lines"], lines, size, db=db,
                rows_of=_helper_rows))
        ingest = [self.mlinv, "ingest", plain, "--db", str(db), "--quiet"]
        if "mlinv" in self.cases:
            rows.append(self.measure("mlinv ingest FILE", ingest, lines, size, db=db, main=True))
        if "stdin" in self.cases:
            rows.append(self.measure("cat FILE | mlinv ingest -",
                                     [self.mlinv, "ingest", "-", "--db", str(db), "--quiet"],
                                     lines, size, stdin_cmd=["cat", plain], db=db))
        if "gzip" in self.cases:
            for label, gz in (("gzip -1", files.gz1), ("gzip -6", files.gz6)):
                rows.append(self.measure(f"mlinv ingest FILE.gz ({label}, {gz.stat().st_size / 1e6:,.0f} MB)",
                                         [self.mlinv, "ingest", str(gz), "--db", str(db), "--quiet"],
                                         lines, size, db=db))
        if "corrupt" in self.cases:
            csize = files.corrupt.stat().st_size
            rows.append(self.measure("DuckDB read_json ignore_errors=true, corrupted file → file DB",
                                     [PY, HELPER, str(files.corrupt), "--db", str(db), "--ignore-errors"],
                                     lines, csize, db=db, rows_of=_helper_rows))
            rows.append(self.measure("mlinv ingest FILE, corrupted variant",
                                     [self.mlinv, "ingest", str(files.corrupt), "--db", str(db), "--quiet"],
                                     lines, csize, db=db))
        if "jq" in self.cases:
            rows.append(self.measure(f"jq -c '{JQ_SELECT}'", ["jq", "-c", JQ_SELECT, plain], lines, size,
                                     stdout_path="/dev/null"))
            rows.append(self.measure("jq -n count by model_version (streaming reduce)",
                                     ["jq", "-c", "-n", JQ_COUNT, plain], lines, size,
                                     rows_of=lambda r: _jq_total(r.stdout)))
        if "lnav" in self.cases:
            rows.append(self.measure(
                "lnav load + count(*)",
                ["lnav", "-n", "-c", f";SELECT count(*) FROM {LNAV_TABLE}", plain], lines, size,
                env={"HOME": str(self.lnav_home)}, rows_of=lambda r: _last_int(r.stdout)))
        return rows


# --- result parsing ------------------------------------------------------------------------------


def _helper_rows(r: Run) -> str:
    found = re.search(r"rows=(\d+)", r.stdout)
    return f"{int(found.group(1)):,}" if found else ""


def _jq_total(stdout: str) -> str:
    import json

    try:
        return f"{sum(json.loads(stdout.strip().splitlines()[-1]).values()):,} with a version"
    except (ValueError, IndexError, AttributeError):
        return ""


def _last_int(stdout: str) -> str:
    numbers = re.findall(r"\b(\d+)\b", stdout)
    return f"{int(numbers[-1]):,}" if numbers else ""


def _count_events(db: Path) -> str:
    try:
        con = duckdb.connect(str(db), read_only=True)
        events = con.execute("SELECT count(*) FROM events").fetchone()[0]
        rejects = con.execute("SELECT count(*) FROM rejects").fetchone()[0]
        con.close()
    except duckdb.Error:
        return ""
    return f"{events:,} (+{rejects:,} rejects)" if rejects else f"{events:,}"


def _remove_db(db: Path) -> None:
    for p in (db, db.with_name(db.name + ".wal")):
        p.unlink(missing_ok=True)


# --- report -------------------------------------------------------------------------------------


def table(rows: list[Row], baseline: float | None) -> str:
    headers = ["case", "median s", "max s", "runs", "CPU s", "M lines/s", "MB/s", "× DuckDB file",
               "peak RSS MB", "DB MB", "rows"]
    out = []
    for row in rows:
        m = row.m
        secs = m.median_s
        rate = row.lines / secs
        ratio = f"{rate / baseline:.2f}×" if baseline and not row.prep else "–"
        out.append([m.name, fmt_s(secs), fmt_s(m.max_s), len(m.runs), fmt_s(m.median_cpu_s),
                    fmt_rate(row.lines, secs), f"{row.size_bytes / secs / 1e6:,.0f}",
                    ratio, fmt_mb(m.peak_rss_mb), fmt_mb(row.db_mb), row.rows or "–"])
    return markdown_table(headers, out)


def commands(rows: list[Row]) -> str:
    return "\n".join(f"{i + 1}. `{row.m.command}`" for i, row in enumerate(rows))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--lines", type=int, action="append",
                        help="lines per file (repeatable; default 1000000)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int,
                        help="runs of the main comparison (default: 3 up to 2M lines, else 1)")
    parser.add_argument("--repeat-other", type=int, help="runs of the other cases (default: 1)")
    parser.add_argument("--only", nargs="+", choices=ALL_CASES, help="run only these cases")
    parser.add_argument("--work-dir", type=Path, default=DATA_DIR / "ingest", help="where generated files go")
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args()
    line_counts = args.lines or [1_000_000]
    cases = set(args.only or ALL_CASES)
    if "lnav" in cases and not shutil.which("lnav"):
        print("lnav not installed (apt-get install -y lnav): skipping lnav")
        cases.discard("lnav")
    if "jq" in cases and not shutil.which("jq"):
        print("jq not installed: skipping jq")
        cases.discard("jq")

    facts = machine_facts()
    print_facts(facts)
    args.work_dir.mkdir(parents=True, exist_ok=True)
    lnav_home = Path(tempfile.mkdtemp(prefix="bench-lnav-home-"))
    if "lnav" in cases:
        # A private HOME keeps the format install from touching the user's lnav config.
        install = ["lnav", "-i", str(LNAV_FORMAT)]
        print(f"$ LNAV_HOME=$(mktemp -d)  # here {lnav_home}\n$ HOME=$LNAV_HOME {show(install)}")
        run(install, env={"HOME": str(lnav_home)})

    results: dict[int, list[Row]] = {}
    try:
        for lines in line_counts:
            need = lines * 366e-9 * (2.6 if {"corrupt", "gzip"} & cases else 1.1) + 1
            if free_gb(args.work_dir) < need:
                print(f"skipping {lines:,} lines: needs ~{need:.0f} GB free in {args.work_dir}")
                continue
            repeat = args.repeat or (3 if lines <= 2_000_000 else 1)
            repeat_other = args.repeat_other or 1
            bench = Bench(args.work_dir, repeat, repeat_other, cases, lnav_home)
            print(f"\n## {lines:,} lines, {repeat} run(s) of the main comparison, {repeat_other} of the "
                  "others\n", flush=True)
            files, prep = bench.generate(lines, args.seed)
            rows = bench.all_for(files, lines)
            results[lines] = prep + rows
            if not args.keep:
                for p in (files.plain, files.corrupt, files.gz1, files.gz6):
                    p.unlink(missing_ok=True)
    finally:
        shutil.rmtree(lnav_home, ignore_errors=True)

    print(f"\nload average at end (1/5/15 min): {load_average()}\n")
    for lines, rows in results.items():
        base = next((r for r in rows if r.m.name == "DuckDB read_json → file DB"), None)
        baseline = base.lines / base.m.median_s if base else None
        print(f"### {lines:,} lines ({rows[0].size_bytes / 1e6:,.0f} MB plain)\n")
        print(table(rows, baseline))
        print("\nCommands:\n")
        print(commands(rows))
        print()
    if args.json:
        dump_json(args.json, {"facts": facts, "results": {
            str(n): [{"name": r.m.name, "command": r.m.command, "seconds": [x.seconds for x in r.m.runs],
                      "max_rss_kb": [x.max_rss_kb for x in r.m.runs], "db_mb": r.db_mb, "rows": r.rows}
                     for r in rows] for n, rows in results.items()}})


if __name__ == "__main__":
    main()
