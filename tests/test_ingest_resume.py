"""Idempotent, resumable, crash-safe ingest: re-runs add nothing, grown files add their new lines,
rotated files are read again, compressed files, directories, globs, stdin, kill -9 and a second
writer."""

from __future__ import annotations

import gzip
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import duckdb
import pytest
import zstandard
from ingest_helpers import (
    MLINV,
    NEUTRAL_DIR,
    assert_one_line_error,
    cli,
    cli_process,
    ingest,
    jsonl,
    read_back,
    rows,
    write_log,
)

from mlinvestigate import store
from mlinvestigate.ingest.pipeline import Ingestor


def _records(prefix: str, count: int, start: int = 0) -> list[str]:
    return jsonl({"event": f"{prefix}{i}", "timestamp": 1768272420 + i} for i in range(start, start + count))


def _all(db: Path, sql: str = "SELECT source_id, line, record, event FROM events ORDER BY ALL") -> list[Any]:
    con = duckdb.connect(str(db), read_only=True)
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


def test_same_file_twice_adds_nothing(tmp_path: Path) -> None:
    """A second ingest of an unchanged file adds nothing and says so."""
    log = write_log(tmp_path, "app.log", _records("e", 50) + ["junk"])
    db = tmp_path / "db.duckdb"
    first = ingest([log], db=db)
    second = ingest([log], db=db)
    assert (first.report.events, first.report.rejects) == (50, 1)
    assert second.report.sources[0].status == "unchanged"
    assert (second.report.lines, second.report.events) == (0, 0)
    assert (len(second.events), len(second.rejects), len(second.sources)) == (50, 1, 1)
    result = cli("ingest", str(log), "--db", str(db))
    assert result.code == 0 and "unchanged since the last ingest" in result.err


def test_grown_file_adds_only_its_new_lines(tmp_path: Path) -> None:
    """Lines appended after an ingest are added on the next one, numbered on from the last."""
    log = write_log(tmp_path, "app.log", _records("e", 10))
    db = tmp_path / "db.duckdb"
    ingest([log], db=db)
    with log.open("a") as f:
        f.write("\n".join(_records("e", 5, start=10)) + "\nnot json\n")
    got = ingest([log], db=db)
    assert got.report.sources[0].status == "resumed"
    assert (got.report.lines, got.report.events, got.report.rejects) == (6, 5, 1)
    assert [(e["line"], e["event"]) for e in got.events] == [(n, f"e{n - 1}") for n in range(1, 16)]
    assert [(r["line"], r["byte_offset"]) for r in got.rejects] == [(16, log.stat().st_size - 9)]
    [source] = got.sources
    assert (source["lines_read"], source["bytes_read"], source["complete"]) == (16, log.stat().st_size, True)


def test_torn_last_line_completed_later_is_read_whole(tmp_path: Path) -> None:
    """A last line caught mid-write is read again whole once the file grows: no split, no shift."""
    log = write_log(tmp_path, "app.log", '{"event": "a", "timestamp": 1768272420}\n{"event": "b", "ti')
    db = tmp_path / "db.duckdb"
    first = ingest([log], db=db)
    assert [(r["line"], r["kind"]) for r in first.rejects] == [(2, "invalid_json")]
    with log.open("a") as f:
        f.write('mestamp": 1768272421}\n{"event": "c"}\n{"event": "d"}')  # d is torn again
    ingest([log], db=db)
    with log.open("a") as f:
        f.write("\n   \n")  # d completed, then a blank line
    got = ingest([log], db=db)
    assert [(e["line"], e["event"]) for e in got.events] == [(1, "a"), (2, "b"), (3, "c"), (4, "d")]
    assert got.events[1]["ts_inferred"] is False
    assert got.rejects == []
    [source] = got.sources
    assert (source["lines_read"], source["events"], source["rejects"], source["blank_lines"]) == (5, 4, 0, 1)
    assert source["bytes_read"] == log.stat().st_size


def test_file_that_stays_torn_is_not_read_twice(tmp_path: Path) -> None:
    """A file that simply ends without a newline is complete: re-runs add nothing."""
    log = write_log(tmp_path, "app.log", '{"event": "a"}\n{"event": "b"}')
    db = tmp_path / "db.duckdb"
    ingest([log], db=db)
    got = ingest([log], db=db)
    assert got.report.sources[0].status == "unchanged"
    assert [e["event"] for e in got.events] == ["a", "b"]


@pytest.mark.parametrize("change", ["truncated", "replaced", "rotated"])
def test_rotated_truncated_or_replaced_file_is_read_as_new(tmp_path: Path, change: str) -> None:
    """A truncated, replaced or rotated file is read from its start as a new generation."""
    log = write_log(tmp_path, "app.log", _records("old", 20))
    db = tmp_path / "db.duckdb"
    ingest([log], db=db)
    if change == "truncated":
        with log.open("r+") as f:
            f.truncate(0)
        with log.open("a") as f:
            f.write("\n".join(_records("new", 3)) + "\n")
    elif change == "replaced":
        write_log(tmp_path, "app.log", _records("new", 25))  # longer, different head
    else:
        log.rename(tmp_path / "app.log.1")
        write_log(tmp_path, "app.log", _records("new", 30))
    got = ingest([log], db=db)
    assert got.report.sources[0].status == "rotated"
    new = [e for e in got.events if e["event"].startswith("new")]
    assert [e["line"] for e in new] == list(range(1, len(new) + 1))
    old_source, new_source = got.sources
    assert old_source["superseded_by"] == new_source["source_id"]
    assert new_source["complete"] and new_source["lines_read"] == len(new)
    assert ingest([log], db=db).report.sources[0].status == "unchanged"


def test_renamed_rotated_file_is_not_ingested_twice(tmp_path: Path) -> None:
    """Ingesting a log directory again after a rename-rotation adds only the new file's lines."""
    logs = tmp_path / "logs"
    write_log(logs, "app.log", _records("old", 20))
    db = tmp_path / "db.duckdb"
    ingest([logs], db=db)
    (logs / "app.log").rename(logs / "app.log.1")
    write_log(logs, "app.log", _records("new", 5))
    got = ingest([logs], db=db)
    assert len(got.events) == 25
    statuses = {Path(s.source).name: s.status for s in got.report.sources}
    assert statuses == {"app.log": "rotated", "app.log.1": "renamed"}
    assert ingest([logs], db=db).report.events == 0


def test_lines_written_to_a_renamed_file_before_it_was_reopened_are_added_once(tmp_path: Path) -> None:
    """logrotate without copytruncate: the writer keeps appending to the renamed file until it
    reopens its log. Those lines are read once, after the ones read under the old name."""
    logs = tmp_path / "logs"
    path = write_log(logs, "app.log", _records("old", 10))
    db = tmp_path / "db.duckdb"
    ingest([path], db=db)
    with path.open("a") as f:
        f.write("".join(line + "\n" for line in _records("late", 3)))
    path.rename(logs / "app.log.1")
    got = ingest([logs / "app.log.1"], db=db)
    assert got.report.sources[0].status == "resumed" and got.report.events == 3
    assert [e["line"] for e in got.events] == list(range(1, 14))


def test_a_copy_is_not_taken_for_a_rename(tmp_path: Path) -> None:
    """Only the same file (inode) under a new name is recognised; a copy is another source."""
    logs = tmp_path / "logs"
    path = write_log(logs, "app.log", _records("old", 4))
    db = tmp_path / "db.duckdb"
    ingest([path], db=db)
    (logs / "copy.log").write_bytes(path.read_bytes())
    got = ingest([logs / "copy.log"], db=db)
    assert got.report.sources[0].status == "new" and got.report.events == 4


@pytest.mark.parametrize("suffix", [".gz", ".zst"])
def test_compressed_inputs_and_their_growth(tmp_path: Path, suffix: str) -> None:
    """.gz and .zst are read, re-reads add nothing, an appended member/frame adds its lines only."""
    def compress(data: bytes) -> bytes:
        return gzip.compress(data) if suffix == ".gz" else zstandard.ZstdCompressor().compress(data)

    first = "".join(line + "\n" for line in _records("a", 30)).encode()
    path = write_log(tmp_path, "app.jsonl" + suffix, compress(first))
    db = tmp_path / "db.duckdb"
    assert ingest([path], db=db).report.events == 30
    assert ingest([path], db=db).report.sources[0].status == "unchanged"
    with path.open("ab") as f:
        f.write(compress("".join(line + "\n" for line in _records("b", 4)).encode()))
    got = ingest([path], db=db)
    assert got.report.sources[0].status == "resumed" and got.report.events == 4
    assert [e["line"] for e in got.events] == list(range(1, 35))
    assert got.sources[0]["compression"] == ("gzip" if suffix == ".gz" else "zstd")


def test_directories_recursive_and_globs(tmp_path: Path) -> None:
    """Directories are read recursively (README, code and hidden entries skipped); globs pick matches."""
    logs = tmp_path / "logs"
    write_log(logs, "a.jsonl", _records("a", 2))
    write_log(logs, "sub/deeper/b.log", _records("b", 3))
    write_log(logs, "sub/c.jsonl.gz", gzip.compress("\n".join(_records("c", 4)).encode()))
    write_log(logs, "README.md", "# about these logs\n")
    write_log(logs, "notes.py", "print('hi')\n")
    write_log(logs, "mlinv.toml", "[mappings]\n")
    write_log(logs, ".hidden.log", _records("hidden", 1))
    write_log(logs, ".git/objects/xx", "binary-ish\n")
    got = ingest([logs])
    assert sorted({Path(s["path"]).name for s in got.sources}) == ["a.jsonl", "b.log", "c.jsonl.gz"]
    assert (len(got.events), got.rejects) == (9, [])

    # Globs pick their matches; a file named explicitly is always read, whatever its name; a
    # file named twice (directly, by glob, inside a directory) is read once.
    picked = ingest([str(logs / "**" / "*.jsonl*"), logs / ".hidden.log", logs / "a.jsonl"])
    assert [Path(s["path"]).name for s in picked.sources] == ["a.jsonl", "c.jsonl.gz", ".hidden.log"]


def test_stdin_twice_adds_nothing(tmp_path: Path) -> None:
    """`mlinv ingest -` reads a pipe; the same content piped again adds nothing."""
    data = ("\n".join(_records("s", 40)) + "\ngarbage\n").encode()
    db = tmp_path / "db.duckdb"
    first = cli_process("ingest", "-", "--db", str(db), input=data)
    assert first.code == 0, first.err
    assert "40 events, 1 rejects" in first.err
    con = store.connect(str(db))
    try:  # the same stream again adds nothing; different content is a new stream
        assert Ingestor(con).ingest_stdin(io.BytesIO(data)).status == "duplicate"
        assert Ingestor(con).ingest_stdin(io.BytesIO(data + b'{"event": "more"}\n')).events == 41
    finally:
        con.close()
    again = cli_process("ingest", "-", "--db", str(db), input=data)
    assert again.code == 0 and "same content as an earlier stdin ingest" in again.err
    assert len(_all(db)) == 81
    assert _all(db, "SELECT DISTINCT source FROM events") == [("<stdin>",)]


class _BrokenPipe(io.RawIOBase):
    """A stdin that delivers some lines, then fails as a Ctrl-C would."""

    def __init__(self, data: bytes, fail_after: int) -> None:
        self.data, self.position, self.fail_after = data, 0, fail_after

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self.position >= self.fail_after:
            raise KeyboardInterrupt
        piece = self.data[self.position:self.position + min(size, 200)]
        self.position += len(piece)
        return piece


def test_interrupted_stdin_is_replaced_by_the_next_stdin_ingest(tmp_path: Path) -> None:
    """A stdin ingest cut short is replaced by the next stdin ingest: the stream is in exactly once."""
    data = ("\n".join(_records("s", 60)) + "\n").encode()
    db = tmp_path / "db.duckdb"
    con = store.connect(str(db))
    try:
        interrupted = Ingestor(con, chunk_bytes=200, commit_lines=1)
        with pytest.raises(KeyboardInterrupt):
            interrupted.ingest_stdin(_BrokenPipe(data, 1500))
        interrupted.rollback()
        partial = con.execute("SELECT count(*), bool_or(complete) FROM events JOIN sources USING (source_id)"
                              ).fetchone()
        assert 0 < partial[0] < 60 and partial[1] is False
        Ingestor(con).ingest_stdin(io.BytesIO(data))
        got = read_back(con, Ingestor(con).ingest([]))
    finally:
        con.close()
    assert [e["event"] for e in got.events] == [f"s{i}" for i in range(60)]
    assert [s["complete"] for s in got.sources] == [True]


# --- crashes and concurrent writers ----------------------------------------------------------


def _state(db: Path) -> dict[str, Any]:
    """The one source's bookkeeping (zeros when killed before it existed)."""
    con = duckdb.connect(str(db))  # read-write: replays the WAL a kill left behind
    try:
        tables = {t for (t,) in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
        found = rows(con, "SELECT * FROM sources") if "sources" in tables else []
    finally:
        con.close()
    return found[0] if found else {"lines_read": 0, "complete": False}


def _wait_for_commits(proc: subprocess.Popen[bytes], wal: Path, wal_bytes: int) -> None:
    """Wait until the ingest has committed a few batches: DuckDB appends each commit to the
    write-ahead log, so its size tells (no connection can watch: the writer locks the file)."""
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        if wal.exists() and wal.stat().st_size >= wal_bytes:
            return
        time.sleep(0.005)


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT], ids=["kill-9", "ctrl-c"])
def test_killed_ingest_then_rerun_has_no_duplicates_and_no_gaps(tmp_path: Path, sig: int) -> None:
    """An ingest killed between commits (kill -9, Ctrl-C) completes on re-run: no duplicates, no gaps."""
    from mlinvestigate.sample import generate

    log = tmp_path / "big.jsonl"
    stats = generate(str(log), lines=6_000, seed=3)
    size = log.stat().st_size
    # A commit after every 128 KiB batch: ~17 commits, each adding ~200 KB to the WAL.
    env = {**os.environ, "MLINV_COMMIT_LINES": "1", "MLINV_CHUNK_BYTES": str(128 << 10)}
    wal_bytes, killed_midway = 300_000, False
    for attempt in range(3):
        db = tmp_path / f"attempt{attempt}.duckdb"
        proc = subprocess.Popen([*MLINV, "ingest", str(log), "--db", str(db)], env=env, cwd=NEUTRAL_DIR,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        _wait_for_commits(proc, Path(f"{db}.wal"), wal_bytes)
        finished_first = proc.poll() is not None
        proc.send_signal(sig)
        _, err = proc.communicate(timeout=60)
        if not finished_first:
            expected_code = 130 if sig == signal.SIGINT else -signal.SIGKILL
            assert proc.returncode == expected_code and b"Traceback" not in err, err
        before = _state(db)
        killed_midway = 0 < before["lines_read"] < stats.lines and not before["complete"]
        rerun = cli("ingest", str(log), "--db", str(db), "--quiet")
        assert rerun.code == 0, rerun.err
        con = duckdb.connect(str(db), read_only=True)
        try:
            events, distinct, event_lines, max_line = con.execute(
                "SELECT count(*), count(DISTINCT (source_id, line, record)), count(DISTINCT line), max(line) "
                "FROM events").fetchone()
            reject_lines = [r[0] for r in con.execute("SELECT line FROM rejects ORDER BY line").fetchall()]
            [source] = rows(con, "SELECT * FROM sources")
        finally:
            con.close()
        assert events == distinct == stats.lines - stats.corrupted_lines - stats.blank_lines
        assert len(reject_lines) == len(set(reject_lines)) == stats.corrupted_lines
        assert event_lines + len(reject_lines) + source["blank_lines"] == stats.lines
        assert max(max_line, *reject_lines) <= stats.lines
        assert (source["lines_read"], source["bytes_read"], source["complete"]) == (stats.lines, size, True)
        if killed_midway:
            break
        wal_bytes //= 3  # the ingest finished first: stop it earlier
    assert killed_midway, "never managed to stop the ingest between two commits"

_CTRL_C_BETWEEN_UNITS = """
import sys
from mlinvestigate.ingest import pipeline
from mlinvestigate.cli import main

add_to, taken = pipeline.BatchCounts.add_to, []
def add_to_then_ctrl_c(self, report):
    taken.append(self)
    if len(taken) == 3:
        raise KeyboardInterrupt
    return add_to(self, report)
pipeline.BatchCounts.add_to = add_to_then_ctrl_c
main()
"""


@pytest.mark.parametrize("source", ["file", "stdin"])
def test_ctrl_c_between_two_units_exits_cleanly(tmp_path: Path, source: str) -> None:
    """Ctrl-C landing in the loop that takes committed units (not inside DuckDB) exits 130 with
    one line. Fix: the units generator was left to the garbage collector, whose cleanup ran at
    exit on a closed connection: a traceback, then DuckDB's leaked-object report."""
    from mlinvestigate.sample import generate

    log = tmp_path / "big.jsonl"
    stats = generate(str(log), lines=3_000, seed=5)
    db = tmp_path / "ctrl-c.duckdb"
    env = {**os.environ, "MLINV_COMMIT_LINES": "1", "MLINV_CHUNK_BYTES": str(64 << 10)}
    target = ["-"] if source == "stdin" else [str(log)]
    command = [sys.executable, "-c", _CTRL_C_BETWEEN_UNITS, "ingest", *target, "--db", str(db)]
    with log.open("rb") as stdin:
        run = subprocess.run(command, env=env, cwd=NEUTRAL_DIR, stdin=stdin, capture_output=True, timeout=60)
    assert run.returncode == 130, run.stderr
    assert run.stderr.decode().strip() == "mlinv: interrupted"
    with log.open("rb") as stdin:
        rerun = subprocess.run([*MLINV, "ingest", *target, "--db", str(db), "--quiet"], stdin=stdin,
                               env=env, cwd=NEUTRAL_DIR, capture_output=True, timeout=60)
    assert rerun.returncode == 0, rerun.stderr
    con = duckdb.connect(str(db), read_only=True)
    try:
        events, distinct = con.execute(
            "SELECT count(*), count(DISTINCT (line, record)) FROM events").fetchone()
    finally:
        con.close()
    assert events == distinct == stats.lines - stats.corrupted_lines - stats.blank_lines



def test_second_writer_gets_a_one_line_in_use_error(tmp_path: Path) -> None:
    """While another process holds the database, `mlinv ingest` exits 4 with one line."""
    db = tmp_path / "busy.duckdb"
    log = write_log(tmp_path, "a.log", _records("e", 3))
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; con = duckdb.connect(sys.argv[1]); "
         "print('ready', flush=True); time.sleep(60)", str(db)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == b"ready"
        result = cli_process("ingest", str(log), "--db", str(db))
        assert_one_line_error(result, 4, f"database {db} is in use by another mlinv process")
    finally:
        holder.kill()
        holder.wait()
    assert cli("ingest", str(log), "--db", str(db), "--quiet").code == 0
