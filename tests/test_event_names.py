"""Event names are read once per engine (a command, a dashboard refresh), and the dashboard
reads only what arrived since its last refresh."""

from __future__ import annotations

import duckdb

from mlinvestigate import store
from mlinvestigate.engines import DuckDBEngine
from mlinvestigate.investigations.filters import event_kinds, event_names
from mlinvestigate.tui.panels import EventNames


def _events(con: duckdb.DuckDBPyConnection, *names: str | None) -> None:
    for name in names:
        con.execute("INSERT INTO events (ts, event) VALUES (TIMESTAMP '2026-01-13 02:47:00', $e)",
                    {"e": name})


class CountingConnection:
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con
        self.distinct_scans = 0

    def execute(self, sql: str, params: object = None) -> duckdb.DuckDBPyConnection:
        if "DISTINCT event" in sql:
            self.distinct_scans += 1
        return self.con.execute(sql, params)


def test_one_engine_reads_the_event_names_once() -> None:
    con = store.connect(store.MEMORY)
    _events(con, "request_start", "request_success", "model_load_success")
    counting = CountingConnection(con)
    engine = DuckDBEngine(counting)  # type: ignore[arg-type]
    kinds = event_kinds(engine)
    assert kinds.start == ["request_start"]
    assert event_kinds(engine) is kinds
    assert set(event_names(engine)) == {"request_start", "request_success", "model_load_success"}
    assert counting.distinct_scans == 1
    # A new engine (the next command or refresh) sees names that arrived since.
    _events(con, "request_failure")
    assert "request_failure" in event_kinds(DuckDBEngine(con)).finish


def test_dashboard_event_names_grow_with_new_rows_and_keep_pruned_ones() -> None:
    con = store.connect(store.MEMORY)
    names = EventNames()
    _events(con, "request_start", None, "request_success")
    assert names.read(con) == ["request_start", "request_success"]
    _events(con, "model_load_failure")
    con.execute("DELETE FROM events WHERE event = 'request_start'")  # retention
    assert names.read(con) == ["model_load_failure", "request_start", "request_success"]
    assert names.read(con) == ["model_load_failure", "request_start", "request_success"]


def test_dashboard_event_names_scan_only_new_rows() -> None:
    con = store.connect(store.MEMORY)
    names = EventNames()
    _events(con, "a", "b")
    names.read(con)
    counting = CountingConnection(con)
    _events(con, "c")
    assert names.read(counting) == ["a", "b", "c"]  # type: ignore[arg-type]
    assert counting.distinct_scans == 1
    assert names.read(counting) == ["a", "b", "c"]  # type: ignore[arg-type]
    assert counting.distinct_scans == 1  # nothing new: no scan


MESSAGES = ["model load start", "model load success", "request start", "request success",
            "request failed: upstream", "prediction", "restart scheduled", "heartbeat",
            "Started processing", "warm_up done", None]


def test_event_messages_are_classified_as_names_are() -> None:
    """Past MAX_EVENT_NAMES names the kinds are found by the patterns in SQL (free text): each
    message must land in the kind classify_event_name gives it, loads before starts before
    finishes ("model load start" is a load, so the model server is no entry service)."""
    from mlinvestigate.investigations.filters import EventKinds, classify_event_name

    con = store.connect(store.MEMORY)
    free = EventKinds([], [], [], free_text=True)
    for message in MESSAGES:
        found = set()
        for kind, (sql, params) in {"start": free.start_sql(), "finish": free.finish_sql(),
                                    "load": free.load_sql()}.items():
            if con.execute(f"SELECT {sql.replace('event', '$e')}", {**params, "e": message}
                           ).fetchone()[0]:
                found.add(kind)
        expected = classify_event_name(message or "")
        assert found == ({expected} if expected else set()), message


def test_throughput_in_free_text_mode_equals_names_mode(tmp_path, monkeypatch) -> None:
    import json
    from datetime import datetime, timedelta

    from mlinvestigate.ingest.pipeline import Ingestor
    from mlinvestigate.investigations import filters
    from mlinvestigate.investigations.filters import Filters
    from mlinvestigate.investigations.throughput import throughput

    base = datetime(2026, 1, 13, 2, 0)
    lines = [{"timestamp": base.isoformat() + "Z", "service": "model-server",
              "event": "model load start"}]
    for n in range(60):
        start = base + timedelta(seconds=n)
        lines.append({"timestamp": start.isoformat() + "Z", "service": "gateway",
                      "event": "request start", "request_id": f"r{n}"})
        lines.append({"timestamp": (start + timedelta(milliseconds=5)).isoformat() + "Z",
                      "service": "model-server", "event": "prediction", "request_id": f"r{n}",
                      "latency_ms": 4.0})
        if n % 7:
            lines.append({"timestamp": (start + timedelta(milliseconds=9)).isoformat() + "Z",
                          "service": "gateway", "event": "request success", "request_id": f"r{n}",
                          "latency_ms": 9.0})
    lines.append({"timestamp": (base + timedelta(minutes=5)).isoformat() + "Z",
                  "service": "gateway", "event": "heartbeat"})
    log = tmp_path / "app.jsonl"
    log.write_text("".join(json.dumps(line) + "\n" for line in lines))

    def run(db: str) -> object:
        con = store.connect(str(tmp_path / db))
        try:
            Ingestor(con).ingest([str(log)])
            return throughput(con, Filters(), every=timedelta(minutes=1))
        finally:
            con.close()

    by_names = run("names.duckdb")
    monkeypatch.setattr(filters, "MAX_EVENT_NAMES", 2)  # ingest and queries both in free text
    by_patterns = run("patterns.duckdb")
    assert by_patterns.rows == by_names.rows
    assert by_patterns.notes == by_names.notes
    assert sum(by_names.column("dropped")) == 9  # r0, r7 … r56
    assert any("entry service(s) gateway;" in note for note in by_names.notes)
