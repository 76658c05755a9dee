"""Live ingest: a pipe fed in pieces and a followed file keep line numbers, wait for partial
lines, and notice rotation."""

from __future__ import annotations

import os
from pathlib import Path

from mlinvestigate import store
from mlinvestigate.ingest.live import FollowedFile, LiveSource
from mlinvestigate.ingest.pipeline import Ingestor


def _ingestor() -> Ingestor:
    return Ingestor(store.connect(store.MEMORY))


def test_a_record_split_across_feeds_is_one_event() -> None:
    ingestor = _ingestor()
    source = LiveSource(ingestor, "<stdin>")
    source.feed(b'{"event": "a", "timestamp": 1768272420.5, "latency_ms": 5}\n{"event": "b", "timest')
    assert ingestor.con.execute("SELECT count(*) FROM events").fetchone()[0] == 1
    source.feed(b'amp": 1768272421, "latency_ms": "7ms"}\nnot json\n')
    source.close()
    rows = ingestor.con.execute("SELECT line, event, latency_ms FROM events ORDER BY line").fetchall()
    assert rows == [(1, "a", 5.0), (2, "b", 7.0)]
    assert ingestor.con.execute("SELECT line, kind FROM rejects").fetchall() == [(3, "not_json")]
    assert source.counts.lines == 3 and source.counts.events == 2 and source.counts.rejects == 1


def test_end_of_stream_ingests_the_unterminated_last_line() -> None:
    ingestor = _ingestor()
    source = LiveSource(ingestor, "<stdin>")
    source.feed(b'{"event": "last", "timestamp": 1768272420}')
    source.close()
    assert ingestor.con.execute("SELECT event FROM events").fetchall() == [("last",)]


def test_followed_file_reads_appends_and_rotation(tmp_path: Path) -> None:
    ingestor = _ingestor()
    path = tmp_path / "serving.log"
    path.write_text('{"event": "old", "timestamp": 1768272400}\n')
    followed = FollowedFile(ingestor, str(path), from_start=False)
    followed.poll()
    with path.open("a") as handle:
        handle.write('{"event": "y", "timestamp": 1768272422}\n{"event": "z"')
    followed.poll()
    with path.open("a") as handle:
        handle.write(', "timestamp": 1768272423}\n')
    followed.poll()
    os.rename(path, tmp_path / "serving.log.1")
    path.write_text('{"event": "new", "timestamp": 1768272424}\n')
    followed.poll()
    rows = ingestor.con.execute(
        "SELECT source_id, line, event FROM events ORDER BY source_id, line"
    ).fetchall()
    assert [(r[1], r[2]) for r in rows] == [(2, "y"), (3, "z"), (1, "new")]
    assert rows[0][0] == rows[1][0] != rows[2][0]


def test_followed_file_that_appears_later(tmp_path: Path) -> None:
    ingestor = _ingestor()
    path = tmp_path / "later.log"
    followed = FollowedFile(ingestor, str(path))
    assert followed.poll() == 0
    path.write_text('{"event": "hello", "timestamp": 1768272424}\n')
    assert followed.poll() > 0
    assert ingestor.con.execute("SELECT event FROM events").fetchall() == [("hello",)]
