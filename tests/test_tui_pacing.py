"""Background panel statements wait while the foreground panels run (tui/pacing.py)."""

from __future__ import annotations

import threading
import time

import duckdb
import pytest

from mlinvestigate import store
from mlinvestigate.tui.pacing import ForegroundGate, PacedCursor


@pytest.fixture
def cursor() -> duckdb.DuckDBPyConnection:
    return store.connect(store.MEMORY).cursor()


def test_an_open_gate_lets_statements_through_at_once(cursor: duckdb.DuckDBPyConnection) -> None:
    paced = PacedCursor(cursor, ForegroundGate(), lambda: False)
    assert paced.execute("SELECT 41 + 1").fetchone() == (42,)
    assert paced.waited < 0.05


def test_a_statement_waits_until_the_foreground_is_done(cursor: duckdb.DuckDBPyConnection) -> None:
    gate = ForegroundGate()
    gate.close()
    paced = PacedCursor(cursor, gate, lambda: False, max_wait=5.0)
    threading.Timer(0.3, gate.open).start()
    started = time.monotonic()
    assert paced.execute("SELECT 1").fetchone() == (1,)
    assert 0.25 <= time.monotonic() - started < 2.0
    assert 0.25 <= paced.waited < 2.0


def test_a_statement_waits_no_longer_than_max_wait(cursor: duckdb.DuckDBPyConnection) -> None:
    gate = ForegroundGate()
    gate.close()
    paced = PacedCursor(cursor, gate, lambda: False, max_wait=0.2)
    assert paced.execute("SELECT 2").fetchone() == (2,)
    assert 0.15 <= paced.waited < 1.0


def test_a_statement_also_waits_while_ingestion_is_behind(cursor: duckdb.DuckDBPyConnection) -> None:
    caught_up = threading.Event()
    gate = ForegroundGate(behind=lambda: not caught_up.is_set())  # open, but ingestion is behind
    paced = PacedCursor(cursor, gate, lambda: False, max_wait=5.0)
    threading.Timer(0.3, caught_up.set).start()
    assert paced.execute("SELECT 3").fetchone() == (3,)
    assert 0.25 <= paced.waited < 2.0
    held = PacedCursor(cursor, ForegroundGate(behind=lambda: True), lambda: False, max_wait=0.2)
    assert held.execute("SELECT 4").fetchone() == (4,)  # never caught up: runs after max_wait
    assert 0.15 <= held.waited < 1.0


def test_a_cancelled_worker_stops_waiting_and_runs_nothing(cursor: duckdb.DuckDBPyConnection) -> None:
    gate = ForegroundGate()
    gate.close()
    stop = threading.Event()
    threading.Timer(0.1, stop.set).start()
    paced = PacedCursor(cursor, gate, stop.is_set, max_wait=5.0)
    with pytest.raises(duckdb.InterruptException):
        paced.execute("CREATE TABLE never AS SELECT 1")
    assert paced.waited < 2.0
    tables = cursor.execute("SELECT count(*) FROM duckdb_tables() WHERE table_name = 'never'")
    assert tables.fetchone() == (0,)


def test_everything_else_is_the_cursors_own(cursor: duckdb.DuckDBPyConnection) -> None:
    paced = PacedCursor(cursor, ForegroundGate(), lambda: False)
    paced.execute("SELECT 1 AS one")
    assert paced.description[0][0] == "one"
    assert paced.fetchall() == [(1,)]
