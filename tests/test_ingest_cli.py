"""The data commands on the command line: version, help, ingest summary, info, rejects, sql,
sample, and one-line errors for bad input."""

from __future__ import annotations

import csv
import gzip
import io
import json
import re
from pathlib import Path

import pytest
import typer
from ingest_helpers import assert_one_line_error, cli, write_log

import mlinvestigate
from mlinvestigate.cli import app

SUMMARY = re.compile(
    r"^mlinv: (?P<lines>[\d,]+) lines from (?P<sources>\d+) sources? → (?P<events>[\d,]+) events, "
    r"(?P<rejects>[\d,]+) rejects, (?P<blank>[\d,]+) blank in (?P<seconds>[\d.]+) s "
    r"\((?P<rate>[\d,]+) lines/s\)$"
)
REJECT_COLUMNS = ["source", "line", "byte_offset", "kind", "reason", "raw_bytes", "raw"]


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database holding 3,000 generated lines (with their corrupted and blank lines)."""
    directory = tmp_path_factory.mktemp("cli")
    log = directory / "sample.jsonl"
    assert cli("sample", "--out", str(log), "--lines", "3000", "--seed", "7").code == 0
    db = directory / "sample.duckdb"
    assert cli("ingest", str(log), "--db", str(db), "--quiet").code == 0
    return db


def test_version() -> None:
    """`mlinv --version` prints the package version."""
    result = cli("--version")
    assert (result.code, result.out.strip()) == (0, f"mlinv {mlinvestigate.__version__}")


def test_help_on_every_command() -> None:
    """`--help` works on the tool and on every registered command."""
    assert cli("--help").code == 0
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    assert {"ingest", "info", "rejects", "sql", "sample"} <= set(commands)
    for name in commands:
        result = cli(name, "--help")
        assert result.code == 0, (name, result.err)
        assert "Usage:" in result.out and name in result.out


def test_ingest_prints_a_summary_on_stderr(tmp_path: Path) -> None:
    """The summary (lines, sources, events, rejects, blank, s, lines/s) and flags go to stderr only."""
    a = write_log(tmp_path, "a.log", ['{"event": "a", "latency_ms": -1}', "oops", ""])
    b = write_log(tmp_path, "b.log", ['{"event": "b"}'])
    result = cli("ingest", str(a), str(b), "--db", str(tmp_path / "db.duckdb"))
    assert (result.code, result.out) == (0, "")
    first, *rest = result.err.splitlines()
    match = SUMMARY.match(first)
    assert match, first
    assert {k: match[k] for k in ("lines", "sources", "events", "rejects", "blank")} == {
        "lines": "4", "sources": "2", "events": "2", "rejects": "1", "blank": "1"}
    assert float(match["seconds"]) > 0
    assert any("negative latencies" in line for line in rest)
    assert any("mlinv rejects" in line for line in rest)


def test_quiet_ingest_prints_nothing(tmp_path: Path) -> None:
    """--quiet: no progress, no summary."""
    log = write_log(tmp_path, "a.log", ['{"event": "a"}', "oops"])
    result = cli("ingest", str(log), "--db", str(tmp_path / "db.duckdb"), "--quiet")
    assert (result.code, result.out, result.err) == (0, "", "")


def test_info_accounts_for_every_line(sample_db: Path) -> None:
    """`mlinv info`: lines read = events + rejected + blank (one record per line here)."""
    result = cli("info", "--db", str(sample_db), "--format", "json")
    assert result.code == 0, result.err
    items = {row["item"]: row["value"] for row in json.loads(result.out)}
    assert items["lines_read"] == 3000
    assert items["events"] + items["rejected_lines"] + items["blank_lines"] == 3000
    assert items["rejected_lines"] > 0 and items["first_event"].endswith("Z")
    table = cli("info", "--db", str(sample_db))
    assert table.code == 0 and "Sources" in table.out and "Rejected lines by kind" in table.out


def test_rejects_in_every_format(sample_db: Path) -> None:
    """`mlinv rejects --format json|csv|markdown`: JSON keys and CSV header are the column names."""
    as_json = cli("rejects", "--db", str(sample_db), "--format", "json")
    assert as_json.code == 0, as_json.err
    rejected = json.loads(as_json.out)
    assert rejected and all(list(row) == REJECT_COLUMNS for row in rejected)
    assert {row["kind"] for row in rejected} <= {"not_json", "invalid_json", "not_object", "invalid_utf8"}

    as_csv = cli("rejects", "--db", str(sample_db), "--format", "csv")
    parsed = list(csv.DictReader(io.StringIO(as_csv.out)))
    assert as_csv.code == 0 and list(parsed[0]) == REJECT_COLUMNS
    assert [int(r["line"]) for r in parsed] == [r["line"] for r in rejected]

    as_markdown = cli("rejects", "--db", str(sample_db), "--format", "markdown")
    assert as_markdown.code == 0
    assert "| " + " | ".join(REJECT_COLUMNS) + " |" in as_markdown.out

    one_kind = json.loads(cli("rejects", "--db", str(sample_db), "--format", "json",
                              "--kind", "invalid_json").out)
    assert one_kind and {row["kind"] for row in one_kind} == {"invalid_json"}
    limited = cli("rejects", "--db", str(sample_db), "--limit", "1", "--format", "json")
    assert len(json.loads(limited.out)) == 1
    assert_one_line_error(cli("rejects", "--db", str(sample_db), "--kind", "nope"), 2, "unknown reject kind")


def test_sql_select_and_json(sample_db: Path) -> None:
    """`mlinv sql` runs a SELECT; --format json gives one object per row."""
    result = cli("sql", "SELECT level, count(*) AS n FROM events GROUP BY level ORDER BY level NULLS LAST",
                 "--db", str(sample_db), "--format", "json")
    assert result.code == 0, result.err
    got = json.loads(result.out)
    assert all(set(row) == {"level", "n"} for row in got)
    assert sum(row["n"] for row in got) > 2900
    with_cte = cli("sql", "WITH x AS (SELECT 1 AS a) SELECT a FROM x", "--db", str(sample_db),
                   "--format", "json")
    assert json.loads(with_cte.out) == [{"a": 1}]


@pytest.mark.parametrize(
    "statement",
    [
        "DELETE FROM events",
        "UPDATE events SET level = 'x'",
        "INSERT INTO rejects SELECT * FROM rejects",
        "DROP TABLE events",
        "CREATE TABLE t AS SELECT 1",
        "ATTACH '{dir}/other.duckdb' AS other",
        "COPY events TO '{dir}/events.csv'",
        "INSTALL httpfs",
        "LOAD httpfs",
        "SET threads = 1",
        "SELECT 1; SELECT 2",
        "SELECT 1; DELETE FROM events",
        "CHECKPOINT",
        "SELECT * FROM read_csv('{dir}/sample.jsonl')",
        "EXPORT DATABASE '{dir}/export'",
    ],
)
def test_sql_refuses_anything_but_one_read_only_statement(sample_db: Path, statement: str) -> None:
    """Writes, ATTACH, COPY, INSTALL/LOAD, SET, file access, two statements: exit 2, one line."""
    assert_one_line_error(cli("sql", statement.format(dir=sample_db.parent), "--db", str(sample_db)), 2)


def test_refused_statements_changed_nothing(sample_db: Path) -> None:
    """After all the refused statements above the data is intact (runs after them, same module)."""
    counts = cli("sql", "SELECT (SELECT count(*) FROM events) AS events, (SELECT sum(events) FROM sources) "
                 "AS counted, (SELECT count(*) FROM rejects) + (SELECT sum(blank_lines) FROM sources) "
                 "AS others, (SELECT count(DISTINCT level) FROM events) AS levels",
                 "--db", str(sample_db), "--format", "json")
    [row] = json.loads(counts.out)
    assert row["events"] == row["counted"] and row["events"] + row["others"] == 3000
    assert row["levels"] > 1
    assert sorted(p.name for p in sample_db.parent.iterdir()) == ["sample.duckdb", "sample.jsonl"]


def test_sample_is_deterministic(tmp_path: Path) -> None:
    """Same seed, same bytes; another seed, other bytes; exactly --lines lines; .gz works."""
    paths = [tmp_path / name for name in ("a.jsonl", "b.jsonl", "c.jsonl", "d.jsonl.gz")]
    for path, seed in zip(paths, ("3", "3", "4", "3"), strict=True):
        assert cli("sample", "--out", str(path), "--lines", "1500", "--seed", seed).code == 0
    a, b, c = (p.read_bytes() for p in paths[:3])
    assert a == b and a != c
    assert a.count(b"\n") == 1500
    assert gzip.decompress(paths[3].read_bytes()) == a


def test_bad_input_gives_one_clear_line(tmp_path: Path) -> None:
    """Missing, empty, unmatched or corrupt input and a missing database: one line, no traceback."""
    db = str(tmp_path / "db.duckdb")
    assert_one_line_error(cli("ingest", str(tmp_path / "missing.log"), "--db", db), 3, "no such file")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("ingest", str(tmp_path / "empty"), "--db", db), 3, "no log files")
    write_log(tmp_path / "docs", "README.md", "# nothing to see\n")
    assert_one_line_error(cli("ingest", str(tmp_path / "docs"), "--db", db), 3, "no log files")
    assert_one_line_error(cli("ingest", str(tmp_path / "*.nomatch"), "--db", db), 3, "no files match")
    bad = write_log(tmp_path, "bad.jsonl.gz", b"this is not gzip data\n")
    assert_one_line_error(cli("ingest", str(bad), "--db", db), 3, "cannot read", "bad.jsonl.gz")
    varied = "".join(f'{{"event": "e{i}", "n": {i * 7919 % 10007}}}\n' for i in range(5000))
    whole = gzip.compress(varied.encode())
    truncated = write_log(tmp_path, "cut.jsonl.gz", whole[: len(whole) // 2])
    assert_one_line_error(cli("ingest", str(truncated), "--db", db), 3, "cannot read")
    bad_zst = write_log(tmp_path, "bad.jsonl.zst", b"not zstd either")
    assert_one_line_error(cli("ingest", str(bad_zst), "--db", db), 3, "cannot read")
    missing_db = str(tmp_path / "nowhere.duckdb")
    assert_one_line_error(cli("info", "--db", missing_db), 4, "no database")
    assert_one_line_error(cli("rejects", "--db", missing_db), 4, "no database")
    assert_one_line_error(cli("sql", "SELECT 1", "--db", missing_db), 4, "no database")
    # The database stays usable after all of that.
    good = write_log(tmp_path, "good.log", ['{"event": "a"}'])
    assert cli("ingest", str(good), "--db", db, "--quiet").code == 0
