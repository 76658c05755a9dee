"""Units: one INSERT statement streams many reads; what that must never change."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from ingest_helpers import ingest_text, read_back, rows, write_log

from mlinvestigate import store
from mlinvestigate.ingest.pipeline import READ_AHEAD, Ingestor


def _lines(n: int, start: int = 0, **extra: object) -> list[str]:
    return [json.dumps({"timestamp": 1768262400 + i, "event": "prediction", "request_id": f"r{i}",
                        **extra}) for i in range(start, start + n)]


def test_alias_keys_first_seen_late_are_extracted(tmp_path: Path) -> None:
    """Keys absent from the first reads (a latency alias, an error field) still fill their
    columns when they appear many reads later: the statement in flight ends there and the next
    one extracts them."""
    early = _lines(600, latency_ms=5)
    late = _lines(50, start=600, duration_ms="7ms") + _lines(
        50, start=650, error={"type": "TimeoutError", "message": "deadline exceeded"})
    chunk = 1000  # about ten lines a read: the late keys arrive past the read-ahead
    assert len("\n".join(early)) > 3 * READ_AHEAD * chunk
    got = ingest_text(tmp_path, early + late, chunk_bytes=chunk)
    assert len(got.events) == 700 and not got.rejects
    assert [e["latency_ms"] for e in got.events[:600]] == [5.0] * 600
    assert [e["latency_ms"] for e in got.events[600:650]] == [7.0] * 50
    assert {e["error_type"] for e in got.events[650:]} == {"TimeoutError"}
    assert {e["error_category"] for e in got.events[650:]} == {"timeout"}


@pytest.mark.parametrize("unit_bytes", [1, 5_000, 1 << 20])
def test_any_unit_size_gives_the_same_table(tmp_path: Path, unit_bytes: int) -> None:
    """Units of one read, of a few reads, or of the whole file: the same events and rejects,
    and the read position of the last unit committed is the end of the file."""
    lines = _lines(300, latency_ms=3) + ["plain text from stderr", "", '{"event": "cut'] + _lines(
        200, start=300, took_ms=4)
    path = write_log(tmp_path, "app.log", lines)
    con = store.connect(store.MEMORY)
    try:
        report = Ingestor(con, chunk_bytes=700, unit_bytes=unit_bytes).ingest([str(path)])
        got = read_back(con, report)
    finally:
        con.close()
    assert len(got.events) == 500
    assert [r["kind"] for r in got.rejects] == ["not_json", "invalid_json"]
    assert report.blank_lines == 1
    assert [e["line"] for e in got.events] == list(range(1, 301)) + list(range(304, 504))
    assert {e["latency_ms"] for e in got.events} == {3.0, 4.0}
    [source] = got.sources
    assert source["bytes_read"] == path.stat().st_size and source["lines_read"] == 503


def test_lines_the_brace_test_lets_through_but_the_parser_refuses(tmp_path: Path) -> None:
    """The first pass parses with try() behind a brace test: a line with braces at both ends
    that is not valid JSON is still a kept reject, and surrounding blanks do not hide a record."""
    lines = [
        '   {"event": "padded"}   ',
        '{"event": "double comma",, "x": 1}',
        '{"event": "lone surrogate", "m": "\\ud800"}',
        '{"event": "tail"} and more',
        '{"event": "crlf"}\r',
    ]
    got = ingest_text(tmp_path, lines)
    assert [e["event"] for e in got.events] == ["padded", "crlf"]
    assert [(r["line"], r["kind"]) for r in got.rejects] == [
        (2, "invalid_json"), (3, "invalid_json"), (4, "invalid_json")]
    assert got.events[1]["attrs"] == '{"event": "crlf"}'


def test_a_file_whose_reads_all_fail_is_nothing_but_rejects(tmp_path: Path) -> None:
    """No record at all in a unit (a server's stderr only): every line is a reject, in order."""
    lines = [f"WARNING: worker {i} restarted" for i in range(40)]
    got = ingest_text(tmp_path, lines, chunk_bytes=100)
    assert not got.events
    assert [r["line"] for r in got.rejects] == list(range(1, 41))


def test_units_resume_where_the_last_committed_unit_ended(tmp_path: Path) -> None:
    """A file that grows between runs: the second run reads only the new lines, in units."""
    path = write_log(tmp_path, "app.log", _lines(120, latency_ms=1))
    db = tmp_path / "db.duckdb"
    con = store.connect(str(db))
    try:
        Ingestor(con, chunk_bytes=500, unit_bytes=2_000).ingest([str(path)])
        with path.open("a") as handle:
            handle.write("\n".join(_lines(80, start=120, latency_ms=2)) + "\n")
        report = Ingestor(con, chunk_bytes=500, unit_bytes=2_000).ingest([str(path)])
        assert report.sources[0].status == "resumed" and report.lines == 80
        counts = rows(con, "SELECT latency_ms, count(*) AS n, count(DISTINCT line) AS lines "
                           "FROM events GROUP BY ALL ORDER BY ALL")
    finally:
        con.close()
    assert counts == [{"latency_ms": 1.0, "n": 120, "lines": 120}, {"latency_ms": 2.0, "n": 80, "lines": 80}]


def test_prefixed_json_takes_the_first_pass_with_its_prefix(tmp_path: Path) -> None:
    """JSON after a plain prefix (CRI, Python's INFO:name:) is parsed in the same statement as
    plain lines, with the prefix's time, level and logger; text with braces stays a reject."""
    lines = [
        '2026-01-13T02:47:00.5Z stdout F {"event": "a", "latency_ms": 5}',
        'INFO:app.server:{"event": "b", "timestamp": "2026-01-13T02:48:00Z"}',
        '{"event": "c", "timestamp": "2026-01-13T02:49:00Z", "level": "WARN"}',
        'WARNING: cache miss for {user}',
        '2026-01-13T02:47:01Z stdout F {"event": "cut',
    ]
    got = ingest_text(tmp_path, lines)
    assert [(e["event"], e["level"], e["service"]) for e in got.events] == [
        ("a", None, None), ("b", "info", "app.server"), ("c", "warning", None)]
    assert [e["ts"].isoformat() for e in got.events] == [
        "2026-01-13T02:47:00.500000", "2026-01-13T02:48:00", "2026-01-13T02:49:00"]
    assert got.events[0]["ts_inferred"] and not got.events[1]["ts_inferred"]
    assert got.events[0]["attrs"] == '{"event": "a", "latency_ms": 5}'
    assert [(r["line"], r["kind"]) for r in got.rejects] == [(4, "not_json"), (5, "not_json")]


@pytest.mark.parametrize("lines_first", [5, 60_000])
def test_ctrl_c_on_an_idle_pipe_exits_at_once(tmp_path: Path, lines_first: int) -> None:
    """Ctrl-C while `mlinv ingest -` waits for more input (before the first statement, or with
    a statement waiting for its next read): exit 130 at once, not when the writer next writes,
    and no "Fatal Python error" from a reader thread blocked in a read at shutdown."""
    import signal
    import subprocess
    import sys
    import time

    from ingest_helpers import MLINV, NEUTRAL_DIR

    record = '{"event": "prediction", "request_id": "r1", "latency_ms": 5, "pad": "' + "x" * 300 + '"}\n'
    feeder = subprocess.Popen(
        [sys.executable, "-c", "import sys, time\n"
         f"sys.stdout.write({record!r} * {lines_first}); sys.stdout.flush(); time.sleep(60)"],
        stdout=subprocess.PIPE)
    try:
        proc = subprocess.Popen([*MLINV, "ingest", "-", "--db", str(tmp_path / "db.duckdb")],
                                stdin=feeder.stdout, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                cwd=NEUTRAL_DIR)
        time.sleep(4)
        assert proc.poll() is None
        started = time.monotonic()
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert time.monotonic() - started < 10  # the writer would wait 60 s
    finally:
        feeder.kill()
        feeder.wait()
    assert proc.returncode == 130, err
    assert b"Fatal" not in err and b"Traceback" not in err, err
