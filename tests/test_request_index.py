"""The request index (request_index.py): trace through it finds exactly what a full scan finds,
it follows the events through ingest, source removal, migration and the dashboard's retention,
and trace falls back to the scan wherever it cannot be trusted."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from ingest_helpers import jsonl, write_log

from mlinvestigate import request_index, store
from mlinvestigate.errors import UsageError
from mlinvestigate.ingest.pipeline import Ingestor
from mlinvestigate.investigations import trace as trace_module
from mlinvestigate.investigations.trace import trace
from mlinvestigate.sample import generate
from mlinvestigate.tui.feed import Retention

TEXT = st.text(st.characters(blacklist_categories=("Cs",)), max_size=6)


@given(prefix=TEXT, other=TEXT)
def test_upper_bound_brackets_exactly_the_texts_with_the_prefix(prefix: str, other: str) -> None:
    upper = request_index.prefix_upper_bound(prefix)
    for text in (other, prefix + other):
        in_range = prefix <= text and (upper is None or text < upper)
        assert in_range == text.startswith(prefix), (prefix, text, upper)


def test_upper_bound_edges() -> None:
    assert request_index.prefix_upper_bound("req-4c") == "req-4d"
    assert request_index.prefix_upper_bound("a\U0010ffff") == "b"
    assert request_index.prefix_upper_bound("\U0010ffff") is None
    assert request_index.prefix_upper_bound("\ud7ff") == "\ue000"


@pytest.fixture(scope="module")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("request-index")
    log = directory / "sample.jsonl"
    generate(str(log), lines=4000, seed=11)
    db = directory / "sample.duckdb"
    con = store.connect(str(db))
    try:
        # Small units: the index is written unit by unit, as on a big file.
        Ingestor(con, chunk_bytes=64 << 10).ingest([str(log)])
    finally:
        con.close()
    return db


def _scanned(monkeypatch: pytest.MonkeyPatch, con: object, text: str) -> object:
    with monkeypatch.context() as patched:
        patched.setattr(trace_module, "_index_span", lambda engine, prefix: None)
        return _outcome(con, text)


def _outcome(con: object, text: str) -> object:
    try:
        result = trace(con, text)
    except UsageError as exc:
        return ("ambiguous", str(exc))
    return (result.title, result.rows, result.notes)


def test_trace_through_the_index_matches_the_scan(sample_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    con = store.connect(str(sample_db), read_only=True)
    try:
        ids = [r[0] for r in con.execute(
            "SELECT DISTINCT request_id FROM events WHERE request_id IS NOT NULL "
            "ORDER BY hash(request_id) LIMIT 25").fetchall()]
        trace_ids = [r[0] for r in con.execute(
            "SELECT DISTINCT trace_id FROM events WHERE trace_id IS NOT NULL LIMIT 3").fetchall()]
        asked = ids + [i[:-3] for i in ids[:5]] + ["req-", "req-0", "no-such-request"] + trace_ids
        for text in asked:
            assert _outcome(con, text) == _scanned(monkeypatch, con, text), text
        assert all(request_index.lookup(con, i).usable for i in ids)
    finally:
        con.close()


def test_the_index_names_every_request_of_every_source(sample_db: Path) -> None:
    con = store.connect(str(sample_db), read_only=True)
    try:
        missing = con.execute(
            """SELECT count(*) FROM events e
               WHERE request_id IS NOT NULL AND NOT EXISTS (
                   SELECT 1 FROM request_index i
                   WHERE i.request_id = e.request_id AND i.source_id = e.source_id
                     AND e.ts BETWEEN i.first_ts AND i.last_ts)""").fetchone()[0]
        assert missing == 0
    finally:
        con.close()


def test_events_without_time_send_trace_to_the_scan(tmp_path: Path) -> None:
    log = write_log(tmp_path, "untimed.log", jsonl(
        {"event": name, "request_id": "req-untimed", "service": "gateway"}
        for name in ("request_start", "request_success")))
    con = store.connect(store.MEMORY)
    Ingestor(con).ingest([str(log)])
    span = request_index.lookup(con, "req-untimed")
    assert span.entries == 1 and not span.usable
    assert [row[3] for row in trace(con, "req-untimed").rows] == ["request_start", "request_success"]


def test_a_source_added_without_the_index_sends_trace_to_the_scan(tmp_path: Path) -> None:
    """As an mlinv from before the index would add it: events, a source, no index rows."""
    con = store.connect(store.MEMORY)
    Ingestor(con).ingest([str(write_log(tmp_path, "a.log", jsonl(
        [{"event": "request_success", "request_id": "req-a", "timestamp": 1768272420}])))])
    con.execute("INSERT INTO sources (source_id, path, kind, compression, first_ingest, last_ingest) "
                "VALUES (99, 'old.log', 'file', 'none', now(), now())")
    con.execute("INSERT INTO events (source_id, source, line, record, ts, event, request_id) "
                "VALUES (99, 'old.log', 1, 0, TIMESTAMP '2026-01-13 03:00:00', 'request_success', 'req-old')")
    assert not request_index.lookup(con, "req-old").usable
    assert len(trace(con, "req-old").rows) == 1


def test_removed_sources_leave_no_index_rows() -> None:
    """The same stdin twice: the second copy is removed with its index rows."""
    records = ({"event": "request_success", "request_id": f"req-{i}", "timestamp": 1768272420 + i}
               for i in range(50))
    content = "\n".join(jsonl(records)) + "\n"
    con = store.connect(store.MEMORY)
    for _ in range(2):
        Ingestor(con).ingest_stdin(io.BytesIO(content.encode()))
    orphans = con.execute("SELECT count(*) FROM request_index WHERE source_id NOT IN "
                          "(SELECT source_id FROM sources)").fetchone()[0]
    assert orphans == 0
    assert con.execute("SELECT count(*) FROM request_index").fetchone()[0] == 50


def test_migration_builds_the_index_of_an_older_database(sample_db: Path, tmp_path: Path) -> None:
    db = tmp_path / "older.duckdb"
    db.write_bytes(sample_db.read_bytes())
    con = store.connect(str(db))
    index_rows = "SELECT request_id, source_id, first_ts, last_ts FROM request_index"
    built = set(con.execute(index_rows).fetchall())
    con.execute("DROP TABLE request_index")
    con.execute("ALTER TABLE sources DROP COLUMN request_indexed")
    con.execute("DELETE FROM _migrations WHERE name = 'm005_request_index'")
    con.close()
    con = store.connect(str(db))
    try:
        rebuilt = set(con.execute(index_rows).fetchall())
        # The ingest writes a row per request per unit, the migration one per request: same spans.
        def spans(rows: set[tuple]) -> dict[str, tuple]:
            merged: dict[str, tuple] = {}
            for request_id, _, first, last in rows:
                old = merged.get(request_id, (first, last))
                merged[request_id] = (min(old[0], first), max(old[1], last))
            return merged

        assert spans(rebuilt) == spans(built)
        assert con.execute("SELECT bool_and(request_indexed) FROM sources").fetchone()[0]
    finally:
        con.close()


def test_retention_prunes_the_index_with_the_events(tmp_path: Path) -> None:
    log = tmp_path / "r.jsonl"
    generate(str(log), lines=5000, seed=5, corrupt=False)
    con = store.connect(store.MEMORY)
    Ingestor(con).ingest([str(log)])
    before = con.execute("SELECT count(*) FROM request_index").fetchone()[0]
    Retention(max_events=1000, max_age=timedelta(days=1)).prune(con)
    after, stale = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE last_ts < (SELECT min(ts) FROM events)) FROM request_index"
    ).fetchone()
    assert stale == 0 and after < before / 2
    kept = [r[0] for r in con.execute("SELECT DISTINCT request_id FROM events WHERE request_id IS NOT NULL "
                                      "LIMIT 5").fetchall()]
    assert all(request_index.lookup(con, rid).entries >= 1 for rid in kept)


def test_retention_prunes_requests_without_time(tmp_path: Path) -> None:
    """A stream without any time: its index rows (last_ts NULL) go with their events."""
    con = store.connect(store.MEMORY)
    lines = [json.dumps({"event": "request_start", "service": "api", "request_id": f"r{n}"})
             for n in range(3000)]
    Ingestor(con).ingest_stdin(io.BytesIO(("\n".join(lines) + "\n").encode()))
    assert con.execute("SELECT count(*) FROM request_index WHERE last_ts IS NULL"
                       ).fetchone()[0] == 3000
    Retention(max_events=1000, max_age=timedelta(days=1)).prune(con)
    kept = con.execute("SELECT count(DISTINCT request_id) FROM events").fetchone()[0]
    assert kept == 1000
    assert con.execute("SELECT count(*) FROM request_index").fetchone()[0] == kept
    assert request_index.lookup(con, "r2999").entries == 1
    assert request_index.lookup(con, "r0").entries == 0
