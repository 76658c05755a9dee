"""Investigation commands as whole processes (interpreter start included) on a 10M-event database,
and `mlinv slow --logs FILE` against lnav and jq on a 1M-line file.

    python bench/queries.py --events 10000000
    python bench/queries.py --events 10000000 --rebuild      # ignore the cached database

The database is built once by `mlinv sample` + `mlinv ingest` and cached as
bench/data/queries/events-N-seedS.duckdb (gitignored); reruns reuse it. Commands that do not
exist yet are reported as "not available yet" and skipped. Every command is printed before it runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from benchlib import (
    BENCH_DIR,
    DATA_DIR,
    LNAV_FORMAT,
    LNAV_TABLE,
    Measurement,
    dump_json,
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

MLINV = mlinv_exe()
WORK = DATA_DIR / "queries"
BY_VERSION_SQL = ("SELECT model_version, count(*) AS n, median(latency_ms) AS median_ms FROM events "
                  "WHERE model_version IS NOT NULL GROUP BY ALL ORDER BY ALL")
LNAV_SQL = (f";SELECT model_version, count(*) AS n, avg(latency_ms) AS avg_ms FROM {LNAV_TABLE} "
            "WHERE model_version IS NOT NULL GROUP BY model_version ORDER BY model_version")
JQ_BY_VERSION = (
    "reduce (inputs | select(.model_version != null)) as $r ({}; "
    ".[$r.model_version] |= {n: ((.n // 0) + 1), sum: ((.sum // 0) + ($r.latency_ms // 0)), "
    "with_latency: ((.with_latency // 0) + (if $r.latency_ms == null then 0 else 1 end))}) "
    "| map_values({n, mean_ms: (.sum / .with_latency)})"
)


@dataclass
class Case:
    label: str
    args: list[str]
    target_s: float = 1.0
    uses_db: bool = True
    reference: bool = False
    """Not in the brief's list: shown for scale (what a plain query costs end to end)."""


@dataclass
class Outcome:
    case: Case
    status: str
    m: Measurement | None = None
    notes: list[str] = field(default_factory=list)


# --- the cached database ---------------------------------------------------------------------------


def sample_file(lines: int, seed: int) -> Path:
    """A generated log, cached (it is reused across runs)."""
    path = WORK / f"sample-{lines}-seed{seed}.jsonl"
    if not path.exists():
        tmp = path.with_suffix(".tmp.jsonl")
        cmd = [MLINV, "sample", "--out", str(tmp), "--lines", str(lines), "--seed", str(seed), "--no-corrupt"]
        print(f"$ {show(cmd)}", flush=True)
        r = run(cmd)
        print(f"    {r.seconds:.1f} s", flush=True)
        tmp.rename(path)
    return path


def cached_db(lines: int, seed: int, rebuild: bool, keep_logs: bool) -> Path:
    db = WORK / f"events-{lines}-seed{seed}.duckdb"
    if db.exists() and not rebuild and usable(db, lines):
        print(f"using cached database {db} ({db.stat().st_size / 1e6:,.0f} MB)")
        return db
    if free_gb(WORK) < lines * 0.45e-6 + 2:
        sys.exit(f"not enough free disk in {WORK} for {lines:,} lines")
    logs_existed = (WORK / f"sample-{lines}-seed{seed}.jsonl").exists()
    logs = sample_file(lines, seed)
    tmp_db = db.with_suffix(".building.duckdb")
    for p in (db, tmp_db, Path(str(db) + ".wal"), Path(str(tmp_db) + ".wal")):
        p.unlink(missing_ok=True)
    cmd = [MLINV, "ingest", str(logs), "--db", str(tmp_db), "--quiet"]
    print(f"$ {show(cmd)}", flush=True)
    r = run(cmd)
    rss = f"{r.max_rss_kb / 1024:,.0f} MB" if r.max_rss_kb else "?"
    print(f"    built in {r.seconds:.1f} s ({lines / r.seconds:,.0f} lines/s), peak RSS {rss}", flush=True)
    tmp_db.rename(db)
    if not keep_logs and not logs_existed and lines > 2_000_000:
        logs.unlink()
    return db


def usable(db: Path, lines: int) -> bool:
    """The cached database holds `lines` events and this mlinv reads it. A database written by an
    older mlinv is upgraded the documented way (`mlinv info` runs the migrations) before timing."""
    count = [MLINV, "sql", "SELECT count(*) FROM events", "--db", str(db), "--format", "csv"]
    r = run(count, capture=True, check=False)
    if r.returncode != 0 and "predates" in r.stderr:
        upgrade = [MLINV, "info", "--db", str(db)]
        print(f"$ {show(upgrade)}   # upgrade the cached database", flush=True)
        run(upgrade, capture=True, check=False)
        r = run(count, capture=True, check=False)
    return r.returncode == 0 and r.stdout.strip().splitlines()[-1:] == [str(lines)]


def real_request_id(db: Path) -> str:
    """A request of the bad deploy (gateway + model-server lines), so trace has something to show."""
    con = duckdb.connect(str(db), read_only=True)
    row = con.execute(
        "SELECT request_id FROM events WHERE error_type = 'RuntimeError' AND request_id IS NOT NULL "
        "ORDER BY ts LIMIT 1"
    ).fetchone()
    row = row or con.execute("SELECT request_id FROM events WHERE request_id IS NOT NULL LIMIT 1").fetchone()
    con.close()
    return str(row[0])


# --- measuring -------------------------------------------------------------------------------------


def command_exists(name: str) -> bool:
    return run([MLINV, name, "--help"], capture=True, check=False).returncode == 0


def measure(case: Case, db: Path | None, repeat: int) -> Outcome:
    cmd = [MLINV, *case.args] + (["--db", str(db)] if case.uses_db and db else [])
    if not case.args[0].startswith("-") and not command_exists(case.args[0]):
        print(f"# skipped: `mlinv {case.args[0]}` not available yet", flush=True)
        return Outcome(case, "not available yet")
    m = Measurement(case.label, show(cmd))
    print(f"$ {m.command}", flush=True)
    for i in range(repeat):
        r = run(cmd, capture=True, check=False)
        if r.returncode != 0:
            err = (r.stderr.strip().splitlines() or ["?"])[-1]
            print(f"    run {i + 1}: exit {r.returncode}: {err}", flush=True)
            return Outcome(case, f"failed (exit {r.returncode}): {err[:120]}", m)
        m.runs.append(r)
        print(f"    run {i + 1}: {r.seconds:.3f} s wall, {r.cpu_s or 0:.3f} s CPU, load {load_average()}",
              flush=True)
    first = m.runs[0].stdout.strip().splitlines()
    shown = " / ".join(x.strip() for x in first[:4])[:200] if first else "(empty)"
    print(f"    output: {shown}", flush=True)
    ok = m.median_s <= case.target_s
    return Outcome(case, "ok" if ok else "MISSES TARGET", m)


def investigation_cases(request_id: str) -> list[Case]:
    return [
        Case("mlinv --help", ["--help"], 0.3, uses_db=False),
        Case("mlinv sql 'SELECT 1' (fixed cost: start, imports, open DB)", ["sql", "SELECT 1"], 0.3,
             reference=True),
        Case("mlinv summary", ["summary"]),
        Case("mlinv slow", ["slow"]),
        Case("mlinv latency --by input_size", ["latency", "--by", "input_size"]),
        Case("mlinv latency --by input_size --every 5m", ["latency", "--by", "input_size", "--every", "5m"]),
        Case("mlinv loads", ["loads"]),
        Case("mlinv errors", ["errors"]),
        Case("mlinv throughput", ["throughput"]),
        Case(f"mlinv trace {request_id}", ["trace", request_id], 0.3),
        # Issue 4: drift of every discovered feature (18 here) between two windows, and per
        # interval; 144 s over the 4 h database is the target's 100 intervals, 2 m 120.
        Case("mlinv drift", ["drift"], 3.0),
        Case("mlinv drift --every 144s (100 intervals)", ["drift", "--every", "144s"], 5.0),
        Case("mlinv drift --every 2m", ["drift", "--every", "2m"], 5.0),
        Case("mlinv drift --every 2m --format json", ["drift", "--every", "2m", "--format", "json"], 5.0),
        Case("mlinv drift --exact (every row)", ["drift", "--exact"], reference=True),
        Case("mlinv info", ["info"], reference=True),
        Case("mlinv sql (count/median by model_version)", ["sql", BY_VERSION_SQL], reference=True),
    ]


def compare_cases(logs: Path, lnav_home: Path) -> list[tuple[str, list[str], dict[str, str] | None, str]]:
    """(label, command, env, note) for the by-version comparison on one file."""
    f = str(logs)
    return [
        ("mlinv slow --logs FILE", [MLINV, "slow", "--logs", f], None, "median by version"),
        ("mlinv sql --logs FILE (count/median by version)", [MLINV, "sql", "--logs", f, BY_VERSION_SQL],
         None, "in-memory ingest + query"),
        ("DuckDB read_json, count/median by version", [sys.executable, str(BENCH_DIR / "duckdb_read_json.py"),
                                                       f, "--by-version"], None, "no ingest, floor"),
        ("lnav count/avg by version", ["lnav", "-n", "-c", LNAV_SQL, f], {"HOME": str(lnav_home)},
         "lnav's SQLite has no median: avg"),
        ("jq streaming reduce count/mean by version", ["jq", "-c", "-n", JQ_BY_VERSION, f], None,
         "no median in a streaming reduce: mean"),
    ]


def run_compare(logs: Path, repeat: int) -> list[tuple[str, Measurement | None, str, str]]:
    lnav_home = Path(tempfile.mkdtemp(prefix="bench-lnav-home-"))
    out: list[tuple[str, Measurement | None, str, str]] = []
    try:
        if shutil.which("lnav"):
            install = ["lnav", "-i", str(LNAV_FORMAT)]
            print(f"$ LNAV_HOME=$(mktemp -d)  # here {lnav_home}\n$ HOME=$LNAV_HOME {show(install)}")
            run(install, env={"HOME": str(lnav_home)})
        for label, cmd, env, note in compare_cases(logs, lnav_home):
            if cmd[0] == MLINV and cmd[1] == "slow" and not command_exists("slow"):
                print("# skipped: `mlinv slow` not available yet", flush=True)
                out.append((label, None, "not available yet", note))
                continue
            if not shutil.which(cmd[0]):
                out.append((label, None, f"{cmd[0]} not installed", note))
                continue
            m = Measurement(label, show(cmd, env=env))
            print(f"$ {m.command}", flush=True)
            status = "ok"
            for i in range(repeat):
                r = run(cmd, capture=True, env=env, check=False)
                if r.returncode != 0:
                    err = (r.stderr.strip().splitlines() or ["?"])[-1]
                    status = f"failed (exit {r.returncode}): {err[:120]}"
                    print(f"    {status}")
                    break
                m.runs.append(r)
                print(f"    run {i + 1}: {r.seconds:.2f} s wall, {r.cpu_s or 0:.2f} s CPU, "
                      f"load {load_average()}", flush=True)
            if m.runs:
                print("    output: " + _squash(m.runs[0].stdout), flush=True)
            out.append((label, m if m.runs else None, status, note))
    finally:
        shutil.rmtree(lnav_home, ignore_errors=True)
    return out


def _squash(text: str) -> str:
    text = text.strip()
    try:
        return json.dumps(json.loads(text))[:400]
    except ValueError:
        return " / ".join(line.strip() for line in text.splitlines()[:8])[:400]


# --- report ----------------------------------------------------------------------------------------


def investigation_table(outcomes: list[Outcome]) -> str:
    rows = []
    for o in outcomes:
        m = o.m if o.m and o.m.runs else None
        rows.append([o.case.label + (" (reference)" if o.case.reference else ""),
                     fmt_s(m.median_s) if m else "–", fmt_s(m.max_s) if m else "–",
                     fmt_s(m.median_cpu_s) if m else "–",
                     len(m.runs) if m else 0, f"{o.case.target_s:g}", o.status])
    return markdown_table(["command", "median s", "max s", "CPU s", "runs", "target s", "status"], rows)


def compare_table(results: list[tuple[str, Measurement | None, str, str]]) -> str:
    base = next((m for label, m, _, _ in results if m and label.startswith("mlinv slow")), None)
    base = base or next((m for label, m, _, _ in results if m and label.startswith("mlinv sql")), None)
    rows = []
    for label, m, status, note in results:
        ratio = f"{m.median_s / base.median_s:.2f}×" if m and base else "–"
        rows.append([label, fmt_s(m.median_s) if m else "–", fmt_s(m.median_cpu_s) if m else "–",
                     len(m.runs) if m else 0, ratio, note, status])
    return markdown_table(["tool", "median s", "CPU s", "runs", "time ÷ mlinv", "what it computes", "status"],
                          rows)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=10_000_000,
                        help="lines in the database (no corruption)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--repeat", type=int, default=5, help="runs per investigation command")
    parser.add_argument("--compare-lines", type=int, default=1_000_000,
                        help="file size for the tool comparison")
    parser.add_argument("--compare-repeat", type=int, default=3)
    parser.add_argument("--no-compare", action="store_true", help="skip the lnav/jq comparison")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the cached database")
    parser.add_argument("--keep-logs", action="store_true", help="keep the big generated log after building")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    parser.add_argument("--only", help="run only the commands whose label contains this text")
    args = parser.parse_args()

    facts = machine_facts()
    print_facts(facts)
    WORK.mkdir(parents=True, exist_ok=True)
    db = cached_db(args.events, args.seed, args.rebuild, args.keep_logs)
    request_id = real_request_id(db)
    print(f"\n## investigation commands on {args.events:,} events, {args.repeat} runs each\n", flush=True)
    cases = [c for c in investigation_cases(request_id) if not args.only or args.only in c.label]
    outcomes = [measure(case, db, args.repeat) for case in cases]
    compare = []
    if not args.no_compare:
        print(f"\n## by-version comparison on {args.compare_lines:,} lines\n", flush=True)
        compare = run_compare(sample_file(args.compare_lines, args.seed), args.compare_repeat)

    print(f"\nload average at end (1/5/15 min): {load_average()}\n")
    print(f"### Investigation commands, {args.events:,}-event database "
          f"({db.stat().st_size / 1e6:,.0f} MB)\n")
    print(investigation_table(outcomes))
    print("\nCommands:\n")
    for o in outcomes:
        if o.m:
            print(f"- `{o.m.command}`")
    if compare:
        print(f"\n### By-version latency on a {args.compare_lines:,}-line file\n")
        print(compare_table(compare))
        print("\nCommands:\n")
        for _, m, _, _ in compare:
            if m:
                print(f"- `{m.command}`")
    if args.json:
        dump_json(args.json, {
            "facts": facts,
            "investigations": [{"label": o.case.label, "status": o.status,
                                "command": o.m.command if o.m else None,
                                "seconds": [r.seconds for r in o.m.runs] if o.m else []} for o in outcomes],
            "compare": [{"label": label, "status": s, "command": m.command if m else None,
                         "seconds": [r.seconds for r in m.runs] if m else []} for label, m, s, _ in compare],
        })


if __name__ == "__main__":
    main()
