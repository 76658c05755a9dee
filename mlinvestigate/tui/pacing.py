"""Background panels give way to the panels the user is watching.

The alert replay and the drift scan take seconds of both cores on a busy stream, and DuckDB's
thread count is per database, so they cannot be given one core of their own. Instead each of
their statements waits until the signals and tables are not running: the heavy work fills the
gaps between refreshes instead of slowing them down (and the lag with them). They also wait
while ingestion is behind the stream: a drift scan on both cores during a checkpoint of the live
database let the lag reach 3.2 s in a 30-minute run.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

MAX_WAIT = 3.0
"""Seconds a background statement waits for the foreground at most: when the signals run back
to back the background must still make progress."""


class ForegroundGate:
    """Open while no foreground group runs and `behind()` is false. Opened and closed by the UI
    thread, waited on by background workers; `behind` is asked by the waiting worker."""

    def __init__(self, behind: Callable[[], bool] | None = None) -> None:
        self._idle = threading.Event()
        self._idle.set()
        self._behind = behind or (lambda: False)

    def close(self) -> None:
        self._idle.clear()

    def open(self) -> None:
        self._idle.set()

    def wait(self, timeout: float, stop: Callable[[], bool]) -> float:
        """Wait until open, `timeout` seconds at most or until `stop()`; the seconds waited."""
        started = time.monotonic()
        deadline = started + timeout
        while not stop():
            idle = self._idle.is_set()
            if idle and not self._behind():
                break
            left = deadline - time.monotonic()
            if left <= 0:
                break
            if idle:
                time.sleep(min(left, 0.05))
            else:
                self._idle.wait(min(left, 0.05))
        return time.monotonic() - started


class PacedCursor:
    """A DuckDB cursor whose statements each wait at the gate first; anything else is the
    cursor's own. `waited` adds up the seconds spent waiting, so the scheduler counts only the
    time the group really ran."""

    def __init__(self, cursor: duckdb.DuckDBPyConnection, gate: ForegroundGate,
                 stop: Callable[[], bool], max_wait: float = MAX_WAIT) -> None:
        self._cursor = cursor
        self._gate = gate
        self._stop = stop
        self._max_wait = max_wait
        self.waited = 0.0

    def execute(self, *args: Any, **kwargs: Any) -> Any:
        self.waited += self._gate.wait(self._max_wait, self._stop)
        if self._stop():
            from ..duckdb_core import duckdb

            raise duckdb.InterruptException("replaced by a newer refresh")
        return self._cursor.execute(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._cursor, name)
