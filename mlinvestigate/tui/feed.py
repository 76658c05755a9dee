"""Background ingestion for `mlinv tui`: lines from a pipe or followed files go through the same
ingest code as `mlinv ingest` (`LiveSource` / `FollowedFile`: same parsing, rejects kept).

Two threads do the work, so that neither the writer of the pipe nor the screen waits:

* a *reader* (`PipeReader`, a daemon thread) drains the pipe into memory as fast as it is
  written. A pipe holds only 64 KiB; a writer such as `kubectl logs -f` blocks (and falls
  behind) as soon as it is full. Memory is bounded: past `BUFFER_CAP` bytes the reader stops
  reading, which is the same backpressure a pipe would give.
* the *ingester* (`Feeder.run`, a Textual thread worker with its own DuckDB cursor) takes what
  has been read, in one piece of up to `FEED_MAX` bytes, and commits it. Large pieces are much
  cheaper per line than small ones (measured: 4 KiB → 4k lines/s, 4 MiB → 30k+ lines/s), and
  the piece grows by itself when ingestion falls behind.

Nothing here imports Textual: the worker passes in `should_stop` and `publish` callables.

Retention (in-memory databases only, see `Retention`): the newest `max_events` events and
`max_age` of event time are kept; older rows are deleted every few seconds so memory stays
bounded however long the stream runs.

Checkpoints (see `Checkpoints`): the feeder checkpoints the database itself, every
`CHECKPOINT_LINES` lines, instead of leaving it to DuckDB's automatic ones.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import TYPE_CHECKING

from .. import request_index, request_starts

if TYPE_CHECKING:
    import duckdb

    from ..ingest.live import FollowedFile, LiveSource

READ_CHUNK = 1 << 20
"""Bytes asked of the pipe per read()."""
BUFFER_CAP = 64 << 20
"""Bytes held between the reader and the ingester; beyond this the reader waits."""
FEED_MAX = 4 << 20
"""At most this many bytes per commit (≈ 11k sample lines, half a second of a 20k lines/s stream;
measured fastest: 8 and 16 MiB pieces were 15-20 % slower per line)."""
BEHIND_BYTES = 2 * FEED_MAX
"""Read but not yet ingested beyond this: ingestion is behind, and the screen refreshes less
often to leave it the CPU."""
IDLE_WAIT_S = 0.05
"""How long the ingester waits for data before looking again (and checking for quit)."""
PUBLISH_EVERY_S = 0.2
"""Progress is posted to the screen at most this often (plus once at every state change)."""
PIPE_SIZE = 1 << 20
"""Asked for with F_SETPIPE_SZ (the Linux maximum for unprivileged processes)."""

CHECKPOINT_LINES = 100_000
"""Lines ingested between two checkpoints (≈ 5 s of a 20k lines/s stream)."""

DEFAULT_MAX_EVENTS = 2_000_000
DEFAULT_MAX_AGE = timedelta(hours=2)
MAX_REJECTS_KEPT = 10_000


@dataclass(frozen=True)
class FeedStatus:
    """What the ingestion has done so far; posted to the screen, never mutated."""

    source: str
    """Where lines come from, for the status bar ("stdin", "app.log +1")."""
    lines: int = 0
    events: int = 0
    rejects: int = 0
    bytes_read: int = 0
    newest_read: float = 0.0
    """time.monotonic() when the newest byte was read from the source (0: nothing yet)."""
    committed_read: float = 0.0
    """time.monotonic() when the newest *committed* line was read: queries started after the
    commit see every line read up to this moment."""
    ended: bool = False
    """The pipe reached its end (followed files never end)."""
    error: str | None = None
    pruned: int = 0
    """Events deleted by the retention bound so far."""
    waiting_for: tuple[str, ...] = ()
    """Followed files that do not exist (yet)."""
    backlog: int = 0
    """Bytes read from the pipe and not ingested yet."""

    @property
    def behind(self) -> bool:
        return self.backlog > BEHIND_BYTES


class PipeReader:
    """Drains a pipe (a file descriptor) into memory on a daemon thread.

    A daemon thread, not a worker: a blocking read() cannot be interrupted, and a silent
    `kubectl logs -f` must not keep the process alive after the user quits."""

    def __init__(self, fd: int, *, cap: int = BUFFER_CAP) -> None:
        self.fd = fd
        self.cap = cap
        self._chunks: deque[tuple[bytes, float]] = deque()
        self._size = 0
        self._eof = False
        self._error: str | None = None
        self._total = 0
        self._newest_read = 0.0
        self._lock = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="mlinv-pipe-reader", daemon=True)

    def start(self) -> PipeReader:
        _grow_pipe(self.fd)
        self._thread.start()
        return self

    def _run(self) -> None:
        while True:
            with self._lock:
                while self._size >= self.cap:
                    self._lock.wait(0.5)  # backpressure: the ingester is behind
            try:
                data = os.read(self.fd, READ_CHUNK)
            except OSError as exc:
                with self._lock:
                    self._error, self._eof = f"cannot read the pipe: {exc.strerror}", True
                    self._lock.notify_all()
                return
            now = time.monotonic()
            with self._lock:
                if not data:
                    self._eof = True
                    self._lock.notify_all()
                    return
                self._chunks.append((data, now))
                self._size += len(data)
                self._total += len(data)
                self._newest_read = now
                self._lock.notify_all()

    def wait(self, timeout: float) -> None:
        """Return when there is something to take, at the end, or after `timeout`."""
        with self._lock:
            if not self._chunks and not self._eof:
                self._lock.wait(timeout)

    def take(self, max_bytes: int = FEED_MAX) -> tuple[bytes, float, bool]:
        """Up to `max_bytes` read so far, the read time of its newest byte, and whether the
        pipe has ended with nothing left after it."""
        with self._lock:
            parts: list[bytes] = []
            size, read_at = 0, 0.0
            while self._chunks and size < max_bytes:
                data, at = self._chunks.popleft()
                room = max_bytes - size
                if len(data) > room:  # keep the rest for the next take
                    self._chunks.appendleft((data[room:], at))
                    data = data[:room]
                parts.append(data)
                size += len(data)
                read_at = at
            self._size -= size
            self._lock.notify_all()
            return b"".join(parts), read_at, self._eof and not self._chunks

    @property
    def bytes_read(self) -> int:
        return self._total

    @property
    def buffered(self) -> int:
        return self._size

    @property
    def newest_read(self) -> float:
        return self._newest_read

    @property
    def error(self) -> str | None:
        return self._error


def _grow_pipe(fd: int) -> None:
    """A bigger pipe buffer lets the writer run ahead while the reader is descheduled."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), PIPE_SIZE)
    except (ImportError, OSError):  # not a pipe, not Linux, or not allowed: the default is fine
        pass


@dataclass
class Retention:
    """How much an in-memory database keeps: the newest `max_events` events and the last
    `max_age` of event time (counted back from the newest event, not from the wall clock)."""

    max_events: int = DEFAULT_MAX_EVENTS
    max_age: timedelta = DEFAULT_MAX_AGE
    every_s: float = 5.0
    """How often the bound is enforced: between prunes it can be exceeded by what arrives."""
    _last: float = field(default=0.0, repr=False)

    def describe(self) -> str:
        hours = self.max_age.total_seconds() / 3600
        age = f"{hours:g} h" if hours >= 1 else f"{self.max_age.total_seconds() / 60:g} min"
        return f"newest {self.max_events:,} events and last {age} of event time, pruned every " \
               f"{self.every_s:g} s"

    def due(self) -> bool:
        return time.monotonic() - self._last >= self.every_s

    def prune(self, cur: duckdb.DuckDBPyConnection) -> int:
        """Delete what is beyond the bound; returns the number of events deleted.

        rowid follows arrival order and is never reused in an in-memory table (checked with
        DuckDB 2.0: min(rowid) keeps rising across deletes), so "rowid below max − N" is the
        oldest arrivals beyond the newest N."""
        self._last = time.monotonic()
        by_count = cur.execute(
            "DELETE FROM events WHERE rowid <= (SELECT max(rowid) - $n FROM events)",
            {"n": self.max_events},
        ).fetchone()
        by_age = cur.execute(
            "DELETE FROM events WHERE ts < (SELECT max(ts) FROM events) - $age",
            {"age": self.max_age},
        ).fetchone()
        cur.execute(request_index.PRUNE_SQL)
        # Rejects are kept for `mlinv rejects`-style inspection only; the count shown comes
        # from the ingestion counters, so the table can be cut short.
        cur.execute(
            "DELETE FROM rejects WHERE rowid <= (SELECT max(rowid) - $n FROM rejects)",
            {"n": MAX_REJECTS_KEPT},
        )
        deleted = int(by_count[0] if by_count else 0) + int(by_age[0] if by_age else 0)
        if deleted:
            for statement in request_starts.DISOWN_SQL:
                cur.execute(statement)
        return deleted


@dataclass
class Checkpoints:
    """When the live database is checkpointed: every `every_lines` lines ingested.

    DuckDB checkpoints by itself once 16 MiB of changes have been committed, which a 20k
    lines/s stream reaches every 2-3 commits. Each of those checkpoints compressed the table's
    last, partly filled row group again, and stalled ingestion for 0.5-1.9 s (measured on
    600k lines fed in 4 MiB pieces, deleting as the retention does: automatic checkpoints
    39-46 s, piece p95 0.84-1.04 s; a checkpoint every ~100k lines 30-37 s, p95 0.41-0.47 s;
    every ~33k lines 43-58 s). Checkpoints cannot simply stop: in memory they are also what
    gives back the space of deleted rows (without them, memory grew with every prune).

    DuckDB's vacuum is off too. Each checkpoint leaves a row group of its own (~100k rows
    against DuckDB's 122,880), and with 2M events kept about every sixth checkpoint took
    1.5-1.9 s instead of 0.25 s, the vacuum merging under-filled and partly deleted row groups;
    with it off, none did (max 0.36-0.42 s). A row group is still dropped once the retention has
    deleted all its rows, oldest first: 2M events took ~840 MB against ~710 MB with merging."""

    every_lines: int = CHECKPOINT_LINES
    _since: int = field(default=0, repr=False)

    def take_over(self, cur: duckdb.DuckDBPyConnection) -> None:
        """Turn DuckDB's automatic checkpoints and its vacuum off for this database (settings
        of the running instance only: nothing is stored in the file)."""
        cur.execute("SET checkpoint_threshold = '1TB'")
        cur.execute("SET max_vacuum_tasks = 0")

    def ingested(self, cur: duckdb.DuckDBPyConnection, lines: int) -> bool:
        """Count lines just committed; checkpoint when enough have come. True if it did."""
        from ..duckdb_core import duckdb

        self._since += lines
        if self._since < self.every_lines:
            return False
        try:
            cur.execute("CHECKPOINT")
        except duckdb.TransactionException:
            # DuckDB refuses while it counts another transaction as a write; the dashboard's
            # own queries sometimes are (3-22 refusals per 90-300 s at 20k lines/s). Next piece.
            return False
        self._since = 0
        return True


class Feeder:
    """Ingests a pipe and/or followed files into the database until told to stop.

    Build it on the main thread (its cursor is made there: the parent connection refuses
    calls from two threads at once), then call `run()` from one worker thread, the only one
    that uses that cursor."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        pipe_fd: int | None = None,
        follow: list[str] | None = None,
        from_start: bool = True,
        retention: Retention | None = None,
    ) -> None:
        self.cur = con.cursor()
        self.pipe_fd = pipe_fd
        self.follow = list(follow or [])
        self.from_start = from_start
        self.retention = retention
        names = (["stdin"] if pipe_fd is not None else []) + [os.path.basename(p) for p in self.follow]
        label = names[0] + (f" +{len(names) - 1}" if len(names) > 1 else "") if names else "none"
        self._status = FeedStatus(source=label)
        self._status_lock = threading.Lock()
        self.reader: PipeReader | None = None
        self.checkpoints = Checkpoints()

    def status(self) -> FeedStatus:
        with self._status_lock:
            return self._status

    def _set(self, **changes: object) -> FeedStatus:
        with self._status_lock:
            self._status = replace(self._status, **changes)  # type: ignore[arg-type]
            return self._status

    def start_reader(self) -> None:
        """Start draining the pipe now (before the screen is up), so the writer never blocks."""
        if self.pipe_fd is not None and self.reader is None:
            self.reader = PipeReader(self.pipe_fd).start()

    def run(self, should_stop: Callable[[], bool], publish: Callable[[FeedStatus], None]) -> None:
        from ..ingest.live import FollowedFile, LiveSource
        from ..ingest.pipeline import Ingestor

        cur = self.cur
        try:
            ingestor = Ingestor(cur)
            self.checkpoints.take_over(cur)
            self.start_reader()
            live = LiveSource(ingestor, "<stdin>") if self.reader is not None else None
            followed = [FollowedFile(ingestor, path, from_start=self.from_start) for path in self.follow]
            self._loop(cur, live, followed, should_stop, publish)
            if self.retention is None:
                # A database file keeps what was shown: mark the sources complete, or the next
                # `mlinv ingest -` would remove an interrupted stdin source. (A line cut in half
                # by the quit is ingested as it is, most likely as one reject.)
                if live is not None and not self.status().ended:
                    live.close()
                for one in followed:
                    one.close()
        except Exception as exc:  # shown on screen; the app stays open with what it has
            publish(self._set(error=f"ingestion stopped: {type(exc).__name__}: {exc}"))
        finally:
            cur.close()

    def _loop(self, cur: duckdb.DuckDBPyConnection, live: LiveSource | None,
              followed: list[FollowedFile], should_stop: Callable[[], bool],
              publish: Callable[[FeedStatus], None]) -> None:
        last_publish = 0.0
        published: FeedStatus | None = None
        ended = False
        counted = self.status().lines
        while not should_stop():
            progressed = False
            if live is not None and not ended:
                assert self.reader is not None
                data, read_at, at_end = self.reader.take()
                if data:
                    live.feed(data)
                    progressed = True
                    self._count(live, followed, committed_read=read_at)
                if at_end:
                    live.close()
                    ended = True
                    self._count(live, followed, committed_read=self.reader.newest_read)
                    publish(self._set(ended=True, error=self.reader.error))
            for one in followed:
                if one.poll(FEED_MAX) > 0:
                    progressed = True
                    self._count(live, followed, committed_read=time.monotonic())
            if self.retention is not None and self.retention.due():
                deleted = self.retention.prune(cur)
                if deleted:
                    self._set(pruned=self.status().pruned + deleted)
            lines = self.status().lines
            self.checkpoints.ingested(cur, lines - counted)
            counted = lines
            now = time.monotonic()
            if not progressed:
                if self.reader is not None and not ended:
                    self.reader.wait(IDLE_WAIT_S)
                else:
                    time.sleep(IDLE_WAIT_S * 2)
                missing = tuple(one.path for one in followed if not os.path.exists(one.path))
                if missing != self.status().waiting_for:
                    self._set(waiting_for=missing)
                if self.reader is not None:
                    self._set(backlog=self.reader.buffered)
            status = self.status()
            # Only changes are posted: an idle stream must leave the screen idle (each post
            # repaints the status bar, and under a modal screen that repaints everything).
            if status != published and now - last_publish >= PUBLISH_EVERY_S:
                publish(status)
                published, last_publish = status, now

    def _count(self, live: LiveSource | None, followed: list[FollowedFile], *,
               committed_read: float) -> None:
        counts = [live.counts] if live is not None else []
        counts += [one.counts for one in followed]
        newest = max([self.reader.newest_read if self.reader else 0.0, committed_read])
        self._set(
            lines=sum(c.lines for c in counts),
            events=sum(c.events for c in counts),
            rejects=sum(c.rejects for c in counts),
            bytes_read=(self.reader.bytes_read if self.reader else 0),
            backlog=(self.reader.buffered if self.reader else 0),
            newest_read=newest,
            committed_read=committed_read,
            waiting_for=tuple(one.path for one in followed if not os.path.exists(one.path)),
        )
