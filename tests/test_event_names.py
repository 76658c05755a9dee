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
