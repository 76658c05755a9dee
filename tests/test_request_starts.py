"""request_starts (request_starts.py): throughput's dropped count and flow from the starts the
ingest matched equal the same counts from the events, whatever the order of units and files,
and the table follows the events through ingest, source removal, torn lines, migration and the
dashboard's retention."""

from __future__ import annotations

import io
import json
import random
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ingest_helpers import jsonl, write_log

from mlinvestigate import request_starts, store
from mlinvestigate.ingest.pipeline import Ingestor
from mlinvestigate.investigations import throughput as throughput_module
from mlinvestigate.investigations.filters import Filters
from mlinvestigate.investigations.throughput import throughput
from mlinvestigate.sample import generate
from mlinvestigate.tui.feed import Retention

BASE = datetime(2026, 3, 1, 2, 0)


def _iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds") + "Z"


def _scenario(seed: int) -> dict[str, list[dict[str, Any]]]:
    """Requests with every awkward shape, split into files: gateway starts and finishes, model
    lines elsewhere, a second entry service, retries, finishes logged before their start,
    finishes at another service, lines without a request_id, and finishing lines without time."""
    rng = random.Random(seed)
    files: dict[str, list[dict[str, Any]]] = {"gateway": [], "model": [], "edge": [], "late": [],
                                              "unnamed": []}
    for n in range(rng.randint(40, 160)):
        request_id = f"req-{seed}-{n:04d}"
        start = BASE + timedelta(seconds=rng.uniform(0, 1200))
        entry = rng.choices(["gateway", "edge", "unnamed"], weights=[7, 2, 1])[0]
        starts = 2 if rng.random() < 0.1 else 1
        for attempt in range(starts):
            files[entry].append({"timestamp": _iso(start + timedelta(seconds=attempt)),
                                 "service": entry, "event": "request_start",
                                 "request_id": request_id})
        if rng.random() < 0.7:
            files["model"].append({"timestamp": _iso(start + timedelta(milliseconds=30)),
                                   "service": "model-server", "event": "prediction_success",
                                   "request_id": request_id, "latency_ms": 25.0})
        shape = rng.random()
        latency_s = rng.choice([0.05, 0.2, 2.0, 45.0, 400.0])
        finish = {"service": entry, "event": "request_success", "request_id": request_id,
                  "latency_ms": latency_s * 1000}
        if shape < 0.55:
            files[entry].append({**finish, "timestamp": _iso(start + timedelta(seconds=latency_s))})
        elif shape < 0.62:  # logged before its start (another clock, a buffered writer)
            files[entry].append({**finish, "timestamp": _iso(start - timedelta(seconds=3))})
        elif shape < 0.70:  # finished at another service only: dropped where it started
            other = "edge" if entry == "gateway" else "gateway"
            files[entry].append({**finish, "service": other,
                                 "timestamp": _iso(start + timedelta(seconds=latency_s))})
        elif shape < 0.80:  # its finish is in another file, ingested in any order
            files["late"].append({**finish, "timestamp": _iso(start + timedelta(seconds=latency_s))})
        elif shape < 0.84:  # two finishing lines, far apart
            for delay in (latency_s, latency_s + 600):
                files[entry].append({**finish, "timestamp": _iso(start + timedelta(seconds=delay))})
        # else: never finished
    files["gateway"].append({"timestamp": _iso(BASE + timedelta(seconds=5)), "service": "gateway",
                             "event": "request_start"})  # no request_id: counted, never matched
    for records in files.values():  # a service that logs no service field
        for record in records:
            if record.get("service") == "unnamed":
                del record["service"]
    for records in files.values():
        records.sort(key=lambda r: r["timestamp"])
        # Some disorder, as from several writers.
        for _ in range(len(records) // 10):
            i = rng.randrange(len(records))
            j = min(len(records) - 1, i + rng.randint(1, 3))
            records[i], records[j] = records[j], records[i]
    untimed = {"service": "gateway", "event": "request_success", "request_id": f"req-{seed}-0001"}
    files["late"].insert(0, untimed)  # first line of its file: it keeps no time at all
    return files


def _ingest(directory: Path, files: dict[str, list[dict[str, Any]]], order: list[str],
            chunk_bytes: int = 2048) -> Path:
    db = directory / "starts.duckdb"
    con = store.connect(str(db))
    try:
        ingestor = Ingestor(con, chunk_bytes=chunk_bytes)  # many small units
        for name in order:
            if files[name]:
                ingestor.ingest([str(write_log(directory, f"{name}.jsonl", jsonl(files[name])))])
    finally:
        con.close()
    return db


def _both(con: Any, filters: Filters, monkeypatch: pytest.MonkeyPatch, **options: Any
          ) -> tuple[Any, Any]:
    fast = throughput(con, filters, **options)
    with monkeypatch.context() as patched:
        patched.setattr(throughput_module, "_starts_usable", lambda engine, filters: False)
        slow = throughput(con, filters, **options)
    return fast, slow


def _same_rows(fast: Any, slow: Any) -> bool:
    """Equal, floats to 1e-9 (a parallel sum of latencies is not exact to the last bit)."""
    return _close(fast.rows, slow.rows)


def _close(left: list[tuple[Any, ...]], right: list[tuple[Any, ...]]) -> bool:
    if len(left) != len(right):
        return False
    for row_a, row_b in zip(left, right, strict=True):
        for a, b in zip(row_a, row_b, strict=True):
            if isinstance(a, float) and isinstance(b, float):
                if a != pytest.approx(b, rel=1e-9):
                    return False
            elif a != b:
                return False
    return True


def _windows(rng: random.Random) -> list[Filters]:
    cuts = sorted(BASE + timedelta(seconds=rng.uniform(-60, 1300)) for _ in range(2))
    return [Filters(), Filters(since=cuts[0]), Filters(until=cuts[1]),
            Filters(since=cuts[0], until=cuts[1]), Filters(service="gateway"),
            Filters(service="edge", since=cuts[0])]


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), reverse=st.booleans())
def test_dropped_from_the_starts_equals_dropped_from_the_events(
    seed: int, reverse: bool, tmp_path_factory: pytest.TempPathFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    files = _scenario(seed)
    order = ["gateway", "model", "edge", "unnamed", "late"]
    db = _ingest(tmp_path_factory.mktemp("starts"), files, order[::-1] if reverse else order)
    con = store.connect(str(db), read_only=True)
    try:
        assert throughput_module._starts_usable(throughput_module.as_engine(con), Filters())
        rng = random.Random(seed)
        for filters in _windows(rng):
            for timeout in (timedelta(seconds=1), timedelta(seconds=30), timedelta(minutes=5)):
                fast, slow = _both(con, filters, monkeypatch, every=timedelta(minutes=1),
                                   timeout=timeout)
                assert _same_rows(fast, slow), (filters, timeout)
                assert fast.notes == slow.notes
        dropped = sum(throughput(con, Filters(), every=timedelta(minutes=1)).column("dropped"))
        assert dropped > 0  # the scenario is not vacuous
    finally:
        con.close()


def test_every_start_line_is_in_the_table_once(tmp_path: Path) -> None:
    db = _ingest(tmp_path, _scenario(3), ["late", "gateway", "model", "edge", "unnamed"])
    con = store.connect(str(db), read_only=True)
    try:
        from_events = con.execute(
            "SELECT source_id, line, record, ts, service, request_id FROM events "
            "WHERE event = 'request_start' ORDER BY ALL").fetchall()
        assert any(row[4] is None for row in from_events)  # starts without a service
        from_table = con.execute(
            "SELECT source_id, line, record, ts, service, request_id FROM request_starts "
            "ORDER BY ALL").fetchall()
        assert from_table == from_events
        units = con.execute("SELECT count(DISTINCT source_id) FROM request_starts").fetchone()[0]
        assert units == 3  # gateway, edge and the unnamed one
    finally:
        con.close()


def test_a_finish_in_a_later_unit_finishes_the_start(tmp_path: Path) -> None:
    records = []
    for n in range(200):
        start = BASE + timedelta(seconds=n)
        records.append({"timestamp": _iso(start), "service": "gateway", "event": "request_start",
                        "request_id": f"r{n}"})
        records.append({"timestamp": _iso(start + timedelta(seconds=10)), "service": "gateway",
                        "event": "request_end", "request_id": f"r{n}", "latency_ms": 10_000.0})
    records.sort(key=lambda r: r["timestamp"])
    db = _ingest(tmp_path, {"gateway": records}, ["gateway"], chunk_bytes=1024)
    con = store.connect(str(db), read_only=True)
    try:
        open_starts = con.execute(
            "SELECT count(*) FROM request_starts WHERE finished_at IS NULL").fetchone()[0]
        linked = con.execute("SELECT count(*) FROM request_starts s JOIN events e "
                             "ON e.request_id = s.request_id AND e.event = 'request_end' "
                             "WHERE e.line > s.line + 1").fetchone()[0]
        assert linked > 0  # requests cut by a unit's end exist …
        assert open_starts == 0  # … and were all finished by the unit after
    finally:
        con.close()


def test_removing_a_source_reopens_the_starts_it_finished(tmp_path: Path) -> None:
    starts = [{"timestamp": _iso(BASE + timedelta(seconds=n)), "service": "gateway",
               "event": "request_start", "request_id": f"r{n}"} for n in range(5)]
    finishes = [{"timestamp": _iso(BASE + timedelta(seconds=n + 1)), "service": "gateway",
                 "event": "request_end", "request_id": f"r{n}", "latency_ms": 1000.0}
                for n in range(5)]
    tail = [{"timestamp": _iso(BASE + timedelta(minutes=10)), "service": "gateway",
             "event": "heartbeat"}]
    con = store.connect(str(tmp_path / "db.duckdb"))
    try:
        ingestor = Ingestor(con)
        ingestor.ingest([str(write_log(tmp_path, "starts.jsonl", jsonl(starts + tail)))])
        ingestor.ingest_stdin(io.BytesIO("\n".join(jsonl(finishes)).encode() + b"\n"))
        assert con.execute("SELECT count(finished_at) FROM request_starts").fetchone()[0] == 5
        source_id = con.execute("SELECT source_id FROM sources WHERE kind = 'stdin'").fetchone()[0]
        ingestor._delete_source(source_id)
        assert con.execute("SELECT count(finished_at) FROM request_starts").fetchone()[0] == 0
        result = throughput(con, Filters(), every=timedelta(minutes=1))
        assert sum(result.column("dropped")) == 5
    finally:
        con.close()


def test_a_torn_start_line_read_again_is_one_start(tmp_path: Path) -> None:
    line = json.dumps({"timestamp": _iso(BASE), "service": "gateway", "event": "request_start",
                       "request_id": "torn"})
    log = tmp_path / "app.log"
    log.write_text(line[:20])
    con = store.connect(str(tmp_path / "db.duckdb"))
    try:
        Ingestor(con).ingest([str(log)])
        log.write_text(line + "\n")
        Ingestor(con).ingest([str(log)])
        assert con.execute("SELECT count(*) FROM request_starts").fetchone()[0] == 1
    finally:
        con.close()


def test_migration_builds_the_table_of_an_older_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    db = _ingest(tmp_path, _scenario(5), ["gateway", "model", "edge", "unnamed", "late"])
    con = store.connect(str(db))
    try:
        expected = throughput(con, Filters(), every=timedelta(minutes=1)).rows
        con.execute("DROP TABLE request_starts")
        con.execute("ALTER TABLE sources DROP COLUMN starts_indexed")
        con.execute("DELETE FROM _migrations WHERE name = 'm006_request_starts'")
    finally:
        con.close()
    con = store.connect(str(db))
    try:
        assert con.execute("SELECT count(*) FROM request_starts").fetchone()[0] > 0
        fast, slow = _both(con, Filters(), monkeypatch, every=timedelta(minutes=1))
        assert _same_rows(fast, slow)
        assert _close(fast.rows, expected)
    finally:
        con.close()


def test_a_source_written_without_the_table_sends_throughput_to_the_events(tmp_path: Path) -> None:
    db = _ingest(tmp_path, _scenario(6), ["gateway", "model"])
    con = store.connect(str(db))
    try:
        engine = throughput_module.as_engine(con)
        assert throughput_module._starts_usable(engine, Filters())
        assert not throughput_module._starts_usable(engine, Filters(version="v1"))
        assert not throughput_module._starts_usable(engine, Filters(where="latency_ms > 1"))
        before = throughput(con, Filters(), every=timedelta(minutes=1)).rows
        con.execute("UPDATE sources SET starts_indexed = NULL WHERE source_id = 1")
        con.execute("DELETE FROM request_starts WHERE source_id = 1")
        assert not throughput_module._starts_usable(engine, Filters())
        assert _close(throughput(con, Filters(), every=timedelta(minutes=1)).rows, before)
    finally:
        con.close()


def test_retention_gives_the_table_up(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    log = tmp_path / "sample.jsonl"
    generate(str(log), lines=3000, seed=4)
    con = store.connect(":memory:")
    try:
        Ingestor(con, chunk_bytes=32 << 10).ingest([str(log)])
        engine = throughput_module.as_engine(con)
        Retention(max_events=5000, max_age=timedelta(days=1)).prune(con)  # nothing to prune
        assert throughput_module._starts_usable(engine, Filters())
        Retention(max_events=1000, max_age=timedelta(days=1)).prune(con)
        assert not throughput_module._starts_usable(engine, Filters())
        assert con.execute("SELECT count(*) FROM request_starts").fetchone()[0] == 0
        fast, slow = _both(con, Filters(), monkeypatch)
        assert _same_rows(fast, slow)
    finally:
        con.close()


def test_sample_logs_agree(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = tmp_path / "sample.jsonl"
    generate(str(log), lines=6000, seed=12)
    con = store.connect(str(tmp_path / "db.duckdb"))
    try:
        Ingestor(con, chunk_bytes=64 << 10).ingest([str(log)])
        span = con.execute("SELECT min(ts), max(ts) FROM events").fetchone()
        middle = span[0] + (span[1] - span[0]) / 2
        for filters in (Filters(), Filters(since=middle), Filters(until=middle),
                        Filters(service="gateway", until=middle)):
            fast, slow = _both(con, filters, monkeypatch, capacity_per_s=5.0)
            assert _same_rows(fast, slow)
            assert fast.notes == slow.notes
    finally:
        con.close()


def test_an_untimed_finish_counts_only_in_a_window_without_bounds(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    records = [
        {"service": "gateway", "event": "request_end", "request_id": "a", "latency_ms": 5.0},
        {"timestamp": _iso(BASE), "service": "gateway", "event": "request_start", "request_id": "a"},
        {"timestamp": _iso(BASE + timedelta(minutes=10)), "service": "gateway", "event": "tick"},
    ]
    db = _ingest(tmp_path, {"g": records}, ["g"])
    con = store.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM events WHERE ts IS NULL").fetchone()[0] == 1
        bounds = (Filters(since=BASE - timedelta(hours=1)), Filters(until=BASE + timedelta(hours=1)))
        for filters, dropped in ((Filters(), 0), (bounds[0], 1), (bounds[1], 1)):
            fast, slow = _both(con, filters, monkeypatch, every=timedelta(minutes=1))
            assert _same_rows(fast, slow)
            assert sum(fast.column("dropped")) == dropped
    finally:
        con.close()



@pytest.mark.parametrize("seed", [21, 22])
def test_without_linking_the_answer_is_the_same(seed: int, tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(request_starts, "MAX_OPEN_TO_LINK", 0)  # as with too many open starts
    db = _ingest(tmp_path, _scenario(seed), ["gateway", "model", "edge", "unnamed", "late"])
    con = store.connect(str(db), read_only=True)
    try:
        assert con.execute("SELECT count(*) FROM request_starts WHERE finished_by <> source_id"
                           ).fetchone()[0] == 0  # nothing was linked
        for filters in _windows(random.Random(seed)):
            fast, slow = _both(con, filters, monkeypatch, every=timedelta(minutes=1))
            assert _same_rows(fast, slow), filters
    finally:
        con.close()


def test_a_log_without_a_service_field(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """One service that does not name itself: throughput had no rows at all (NULL entry)."""
    records = []
    for n in range(100):
        start = BASE + timedelta(seconds=n)
        records.append({"timestamp": _iso(start), "event": "request_start", "request_id": f"r{n}"})
        if n % 10:
            records.append({"timestamp": _iso(start + timedelta(milliseconds=20)),
                            "event": "request_success", "request_id": f"r{n}", "latency_ms": 20})
    records.append({"timestamp": _iso(BASE + timedelta(minutes=10)), "event": "tick"})
    db = _ingest(tmp_path, {"app": records}, ["app"])
    con = store.connect(str(db), read_only=True)
    try:
        fast, slow = _both(con, Filters(), monkeypatch, every=timedelta(minutes=1))
        assert _same_rows(fast, slow)
        assert (sum(fast.column("received")), sum(fast.column("processed")),
                sum(fast.column("dropped"))) == (100, 90, 10)
        assert any("entry service(s) (unnamed);" in note for note in fast.notes)
    finally:
        con.close()
