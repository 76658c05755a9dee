"""Ingest sources into the event table: bookkeeping, idempotency, crash safety.

Each file is a `sources` row holding how far it has been read (byte offset in the decompressed
stream, line count). Lines are parsed in units (up to COMMIT_LINES lines or reader.UNIT_BYTES),
one INSERT statement each, and each unit is committed together with that offset, so a Ctrl-C or
kill -9 loses at most the unit in flight, and a re-run resumes exactly there: no duplicates, no
gaps. A file whose leading bytes changed (replaced) or that shrank (truncated/rotated) is read
again from the start as a new generation. A stdin stream cut short is marked incomplete and
replaced by the next stdin ingest, and a stream already ingested (same sha256) is not added
twice.
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import itertools
import os
import queue
import re
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

# The whole package, not duckdb_core's engine module: registering Arrow data needs the
# Arrow set-up that `import duckdb` does.
import duckdb

from .. import request_index, request_starts
from ..errors import InputError, UsageError
from ..schema import REJECT_RAW_LIMIT
from . import aliases, envelopes, normalize, reader

if TYPE_CHECKING:
    import duckdb

COMMIT_LINES = 1_000_000
"""Lines per unit (one statement, one transaction). A crash loses at most this much progress
(never data: the next run resumes from the last commit)."""

COMMIT_LINES_ENV_VAR = "MLINV_COMMIT_LINES"
CHUNK_BYTES_ENV_VAR = "MLINV_CHUNK_BYTES"
UNIT_BYTES_ENV_VAR = "MLINV_UNIT_BYTES"
"""Override COMMIT_LINES, reader.CHUNK_BYTES and reader.UNIT_BYTES: tests use small values so
that a killed ingest has committed some units and not others; benchmarks compare unit sizes."""


def _positive_env(name: str, default: int) -> int:
    text = os.environ.get(name)
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"${name}={text!r} is not a positive integer")
    return value

ProgressCallback = Callable[[str, int, int], None]
"""(source, bytes read so far from disk, lines so far)."""


@dataclass
class SourceReport:
    source: str
    status: str
    """new | resumed | unchanged | renamed | rotated | duplicate"""
    lines: int = 0
    events: int = 0
    event_lines: int = 0
    rejects: int = 0
    blank_lines: int = 0
    bytes: int = 0


@dataclass
class IngestReport:
    sources: list[SourceReport] = field(default_factory=list)
    seconds: float = 0.0
    flags: dict[str, int] = field(default_factory=dict)

    @property
    def lines(self) -> int:
        return sum(s.lines for s in self.sources)

    @property
    def events(self) -> int:
        return sum(s.events for s in self.sources)

    @property
    def rejects(self) -> int:
        return sum(s.rejects for s in self.sources)

    @property
    def blank_lines(self) -> int:
        return sum(s.blank_lines for s in self.sources)

    @property
    def bytes(self) -> int:
        return sum(s.bytes for s in self.sources)


@dataclass
class BatchCounts:
    lines: int
    events: int
    event_lines: int
    rejects: int
    blank_lines: int
    last_ts: Any
    """Time of the batch's last record, carried to the next batch for records without one."""

    def add_to(self, report: SourceReport) -> None:
        report.lines += self.lines
        report.events += self.events
        report.event_lines += self.event_lines
        report.rejects += self.rejects
        report.blank_lines += self.blank_lines


def parse_mappings(items: list[str]) -> dict[str, str]:
    """`column=dotted.path` pairs from --map."""
    result: dict[str, str] = {}
    for item in items:
        column, sep, path = item.partition("=")
        column, path = column.strip(), path.strip()
        if not sep or not column or not path:
            raise UsageError(f"--map {item!r}: expected COLUMN=PATH, e.g. latency_ms=timing.total_ms")
        # Fix: "a..b" or "a." was accepted and stored with the database, where it never matches.
        if any(not part.strip() for part in path.split(".")):
            raise UsageError(f"--map {item!r}: the path has an empty part (two dots, or a dot at an end)")
        if column not in aliases.MAPPABLE_COLUMNS:
            raise UsageError(
                f"--map {item!r}: {column!r} is not an event column",
                hint="one of " + ", ".join(aliases.MAPPABLE_COLUMNS),
            )
        result[column] = path
    return result


def save_mappings(con: duckdb.DuckDBPyConnection, mappings: dict[str, str]) -> None:
    for column, path in mappings.items():
        con.execute(
            "INSERT OR REPLACE INTO mappings VALUES ($target, $path, now())",
            {"target": column, "path": path},
        )


def load_mappings(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    return dict(con.execute("SELECT target, path FROM mappings ORDER BY target").fetchall())


class Ingestor:
    """Ingests sources into one open connection."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        *,
        progress: ProgressCallback | None = None,
        chunk_bytes: int | None = None,
        commit_lines: int | None = None,
        unit_bytes: int | None = None,
    ) -> None:
        self.con = con
        self.commit_lines = commit_lines or _positive_env(COMMIT_LINES_ENV_VAR, COMMIT_LINES)
        self._in_transaction = False
        self._pending_lines = 0
        self.progress = progress
        self.chunk_bytes = chunk_bytes or _positive_env(CHUNK_BYTES_ENV_VAR, reader.CHUNK_BYTES)
        self.unit_bytes = unit_bytes or _positive_env(UNIT_BYTES_ENV_VAR, reader.UNIT_BYTES)
        self.con.execute(normalize.MACROS)
        self.mappings = load_mappings(con)
        self.unwrapped_sql, params = normalize.extract_sql(
            normalize.UNWRAPPED_INPUT_SQL, self.mappings, keys=None
        )
        self.params: dict[str, str] | None = params or None
        self.present_keys: set[str] = set()
        self._sql_for_keys: dict[frozenset[str], tuple[str, str]] = {}
        self.flags: dict[str, int] = {}

    # --- public ------------------------------------------------------------------------------

    def ingest(self, paths: list[str]) -> IngestReport:
        started = time.perf_counter()
        report = IngestReport()
        for path in reader.expand_paths(paths):
            try:
                if path == "-":
                    report.sources.append(self.ingest_stdin())
                else:
                    report.sources.append(self.ingest_file(path))
            except reader.read_errors() as exc:
                # Fix: a corrupt .gz/.zst surfaced as "unexpected error: BadGzipFile" (exit 1).
                # What was committed stays; the batch in flight is dropped.
                self.rollback()
                raise InputError(f"cannot read {path}: {exc}") from None
            except Exception as exc:
                if not _is_interrupt(exc):
                    raise
                # Fix: Ctrl-C inside a statement came out as DuckDB's "Query interrupted" error,
                # shown as an unexpected error (exit 1) instead of "interrupted" (exit 130).
                # Committed batches stay; the next run resumes after them.
                self.rollback()
                raise KeyboardInterrupt from None
        report.seconds = time.perf_counter() - started
        report.flags = dict(self.flags)
        return report

    def ingest_file(self, path: str) -> SourceReport:
        abspath = os.path.abspath(path)
        if not os.path.isfile(abspath):
            raise InputError(f"no such file: {path}")
        size, mtime, inode = reader.file_identity(abspath)
        previous = self._latest_source(abspath)
        renamed_from: str | None = None
        if previous is None:
            previous = self._renamed_source(abspath, size, inode)
            if previous is not None:
                renamed_from = previous["path"]
        start_offset, start_line, carry_ts = 0, 1, None
        status = "new"
        if previous is not None:
            verdict = self._compare(previous, abspath, size)
            if renamed_from is not None:
                self._adopt(previous["source_id"], abspath)
                if verdict == "unchanged":
                    return SourceReport(source=path, status="renamed")
            if verdict == "unchanged":
                return SourceReport(source=path, status="unchanged")
            if verdict == "resume":
                source_id = previous["source_id"]
                start_offset = previous["bytes_read"]
                start_line = previous["lines_read"] + 1
                carry_ts = previous["last_ts"]
                status = "resumed"
                if previous.get("torn_line_offset") is not None:
                    start_offset, start_line, carry_ts = self._forget_torn_line(previous)
            else:
                status = "rotated"
        if status in ("new", "rotated"):
            digest, digest_len = reader.fingerprint(abspath)
            source_id = self._new_source(
                abspath, "file", reader.compression_of(abspath), digest, digest_len, size, mtime, inode
            )
            if previous is not None:
                self.con.execute(
                    "UPDATE sources SET superseded_by = $new WHERE source_id = $old",
                    {"new": source_id, "old": previous["source_id"]},
                )
        report = SourceReport(source=path, status=status)
        with reader.open_stream(abspath) as stream:
            if start_offset:
                reader.skip_bytes(stream, start_offset)
            raw_file = _underlying_file(stream)
            batches = reader.iter_line_batches(
                stream, start_offset=start_offset, start_line=start_line, chunk_bytes=self.chunk_bytes
            )

            def read_progress(batch: reader.LineBatch) -> None:
                if self.progress:
                    position = raw_file.tell() if raw_file is not None else batch.end_offset
                    self.progress(path, position, batch.first_line + batch.line_count - start_line)

            # closing(): a Ctrl-C between two units left the generator to the garbage collector,
            # which ran its cleanup at exit, after the connection had closed (a traceback).
            units = self._stream_units(batches, source_id, abspath, carry_ts, read_progress)
            with contextlib.closing(units):
                for batch, counts in units:
                    counts.add_to(report)
                    carry_ts = counts.last_ts
                    report.bytes = batch.end_offset - start_offset
        self.commit()
        digest, digest_len = reader.fingerprint(abspath)
        self.con.execute(
            """UPDATE sources SET complete = true, fingerprint = $fp, fingerprint_len = $fl,
                   file_size = $size, file_mtime = $mtime, file_inode = $inode
               WHERE source_id = $id""",
            {"fp": digest, "fl": digest_len, "size": os.path.getsize(abspath),
             "mtime": mtime, "inode": inode, "id": source_id},
        )
        return report

    def ingest_stdin(self, stream: Any = None, name: str = reader.STDIN) -> SourceReport:
        """Ingest a pipe. Units are committed as they come (memory stays bounded); a stream
        cut short by Ctrl-C or a crash is marked incomplete and removed by the next stdin ingest,
        and a stream whose sha256 matches a complete earlier one is not added twice."""
        import sys

        pipe: reader.Pipe | None = None
        if stream is None:
            try:
                stream = pipe = reader.Pipe(sys.stdin.fileno())
            except (AttributeError, OSError, ValueError):  # no descriptor (a test's stdin)
                stream = sys.stdin.buffer
        self._remove_interrupted_stdin()
        hasher = hashlib.sha256()
        report = SourceReport(source=name, status="new")
        carry_ts = None
        source_id = self._new_source(name, "stdin", "none", None, 0, None, None, None)
        end_offset = 0
        batches = reader.iter_line_batches(stream, hasher=hasher, chunk_bytes=self.chunk_bytes)

        def read_progress(batch: reader.LineBatch) -> None:
            if self.progress:
                self.progress(name, batch.end_offset, batch.first_line + batch.line_count - 1)

        units = self._stream_units(batches, source_id, name, carry_ts, read_progress,
                                   stop_reading=pipe.cancel if pipe is not None else None)
        with contextlib.closing(units):
            for batch, counts in units:
                counts.add_to(report)
                carry_ts = counts.last_ts
                end_offset = batch.end_offset
        self.commit()
        digest = hasher.hexdigest()
        duplicate = self.con.execute(
            """SELECT source_id FROM sources
               WHERE kind = 'stdin' AND complete AND fingerprint = $fp AND bytes_read = $n
                 AND source_id <> $id""",
            {"fp": digest, "n": end_offset, "id": source_id},
        ).fetchone()
        if duplicate and end_offset > 0:
            self._delete_source(source_id)
            return SourceReport(source=name, status="duplicate", lines=report.lines)
        self.con.execute(
            "UPDATE sources SET complete = true, fingerprint = $fp, fingerprint_len = $n "
            "WHERE source_id = $id",
            {"fp": digest, "n": end_offset, "id": source_id},
        )
        report.bytes = end_offset
        return report

    def _stream_units(
        self, batches: Iterator[reader.LineBatch], source_id: int, source: str, carry_ts: Any,
        on_read: Callable[[reader.LineBatch], None] | None = None,
        stop_reading: Callable[[], None] | None = None,
    ) -> Iterator[tuple[reader.LineBatch, BatchCounts]]:
        """Parse and commit the reads in units (see reader.UNIT_BYTES), each with its read
        position. A thread reads ahead and finds each read's alias keys with a connection of
        its own; the unit's INSERT consumes the reads as they come, so reading overlaps parsing.
        Yields each committed unit with its counts; `on_read` hears of each read as the
        statement takes it (progress); `stop_reading` unblocks a read waiting for input."""
        cursor = self.con.cursor()

        def stop() -> None:
            with contextlib.suppress(duckdb.Error):  # already closed: nothing left to interrupt
                cursor.interrupt()
            if stop_reading is not None:
                stop_reading()

        def keyed() -> Iterator[reader.LineBatch]:
            found = frozenset(self.present_keys)
            for batch in batches:
                cursor.register("unit", batch.table)
                try:
                    found = batch.alias_keys = discover_alias_keys(cursor, "unit", found)
                finally:
                    _unregister(cursor, "unit")
                yield batch

        with _sigint_seen() as sigint:
            ahead = _read_ahead(keyed(), interrupt=stop, cancelled=sigint)
            try:
                reads = _Peekable(ahead)
                while reads.peek() is not None:
                    unit, counts = self._commit_unit(reads, source_id, source, carry_ts, on_read)
                    carry_ts = counts.last_ts
                    yield unit, counts
            finally:
                ahead.close()  # stops the reader thread, which uses the cursor
                with contextlib.suppress(duckdb.Error):
                    cursor.close()

    def _commit_unit(
        self, reads: _Peekable, source_id: int, source: str, carry_ts: Any,
        on_read: Callable[[reader.LineBatch], None] | None = None,
    ) -> tuple[reader.LineBatch, BatchCounts]:
        """One unit: its records inserted by one statement that streams the reads, then
        everything else (leftovers, rejects, read position) from the whole unit, committed."""
        import duckdb
        import pyarrow as pa

        # The statement extracts the alias keys of the reads already waiting, not only the
        # first one's: a key first seen a few reads in (an error field) would otherwise end the
        # statement early, and small statements write far slower.
        keys = self._discover_keys(reads.lookahead(READ_AHEAD)[-1])
        first = reads.take()
        taken = [first]
        size, lines = first.table.column("text").nbytes, first.line_count
        failure: list[BaseException] = []

        def fits(batch: reader.LineBatch | None) -> bool:
            if batch is None or batch.unterminated or first.unterminated:
                return False  # a torn last line stays a unit of its own (its offset resumes)
            if not (batch.alias_keys or frozenset()) <= keys:
                return False  # new alias keys: the next statement extracts them
            return size < max(self.unit_bytes, self.chunk_bytes) and lines < self.commit_lines

        def record_batches() -> Iterator[pa.RecordBatch]:
            nonlocal size, lines
            try:
                batch = first
                while True:
                    if on_read is not None:
                        on_read(batch)
                    yield from batch.table.to_batches()
                    if not fits(reads.peek()):
                        return
                    batch = reads.take()
                    taken.append(batch)
                    size += batch.table.column("text").nbytes
                    lines += batch.line_count
            except BaseException as exc:  # DuckDB would report it as its own error
                failure.append(exc)
                raise

        self._begin()
        try:
            stream = pa.RecordBatchReader.from_batches(first.table.schema, record_batches())
            self.con.register("batch", stream)
            try:
                self.con.execute(self._sql_for(keys)[0], self._params(source, source_id))
            except duckdb.Error:
                if failure:
                    raise failure[0] from None
                raise
            finally:
                _unregister(self.con, "batch")
            unit = reader.merge_batches(taken)
            unit.alias_keys = keys
            counts = self._load_batch(unit, source_id, source, carry_ts, inserted=True)
            self._advance_source(source_id, unit, counts)
            self.commit()
        except BaseException:
            self.rollback()
            raise
        return unit, counts

    def _begin(self) -> None:
        if not self._in_transaction:
            self.con.execute("BEGIN TRANSACTION")
            self._in_transaction = True

    def _params(self, source: str, source_id: int) -> dict[str, Any]:
        return {**(self.params or {}), "source": source, "source_id": source_id}

    def _forget_torn_line(self, previous: dict[str, Any]) -> tuple[int, int, Any]:
        """Fix: the last line read had no newline (a writer mid-line) and the file has grown
        since. Resuming after it made the line's tail a line of its own: one record became two
        rejects and the line numbers shifted. Remove what that line gave and read it again.
        Returns the new (start offset, start line, carried time)."""
        source_id, line = previous["source_id"], previous["lines_read"]
        key = {"id": source_id, "line": line}
        self.con.execute("BEGIN TRANSACTION")
        try:
            events, event_lines = self.con.execute(
                "SELECT count(*), count(DISTINCT line) FROM events WHERE source_id = $id AND line = $line",
                key,
            ).fetchone()
            rejects = self.con.execute(
                "SELECT count(*) FROM rejects WHERE source_id = $id AND line = $line", key
            ).fetchone()[0]
            for table in ("events", "rejects", "request_starts"):
                self.con.execute(f"DELETE FROM {table} WHERE source_id = $id AND line = $line", key)
            carry_ts = self.con.execute(
                "SELECT arg_max(ts, line * 100000 + record) FROM events "
                "WHERE source_id = $id AND ts IS NOT NULL",
                {"id": source_id},
            ).fetchone()[0]
            self.con.execute(
                """UPDATE sources SET bytes_read = torn_line_offset, lines_read = lines_read - 1,
                       events = events - $events, rejects = rejects - $rejects,
                       blank_lines = blank_lines - $blank, last_ts = $carry, torn_line_offset = NULL
                   WHERE source_id = $id""",
                {"id": source_id, "events": events, "rejects": rejects, "carry": carry_ts,
                 "blank": 1 if event_lines == 0 and rejects == 0 else 0},
            )
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise
        return int(previous["torn_line_offset"]), line, carry_ts

    def _remove_interrupted_stdin(self) -> None:
        for (source_id,) in self.con.execute(
            "SELECT source_id FROM sources WHERE kind = 'stdin' AND NOT complete"
        ).fetchall():
            self._delete_source(source_id)

    def _delete_source(self, source_id: int) -> None:
        self.con.execute("BEGIN TRANSACTION")
        try:
            for table in ("events", "rejects", "request_index", "request_starts", "sources"):
                self.con.execute(f"DELETE FROM {table} WHERE source_id = $id", {"id": source_id})
            self.con.execute(request_starts.REOPEN_SQL, {"id": source_id})
            self.con.execute("COMMIT")
        except BaseException:
            self.con.execute("ROLLBACK")
            raise

    def _commit_batch(
        self, batch: reader.LineBatch, source_id: int, source: str, carry_ts: Any
    ) -> BatchCounts:
        """Write one ready batch's events and rejects together with the new read position, in
        the open transaction; commit once COMMIT_LINES lines are pending. This is the live
        feed's path (small batches as they arrive); files and stdin go through _stream_units."""
        self._begin()
        try:
            counts = self._load_batch(batch, source_id, source, carry_ts)
            self._advance_source(source_id, batch, counts)
        except BaseException:
            self.rollback()
            raise
        self._pending_lines += batch.line_count
        if self._pending_lines >= self.commit_lines:
            self.commit()
        return counts

    def commit(self) -> None:
        if self._in_transaction:
            try:
                self.con.execute("COMMIT")
            except BaseException:
                self.rollback()
                raise
            self._in_transaction = False
            self._pending_lines = 0

    def rollback(self) -> None:
        import duckdb

        if self._in_transaction:
            self._in_transaction = False
            self._pending_lines = 0
            # Fix: a COMMIT that failed (or was interrupted) has already ended the transaction;
            # the "no transaction is active" error raised here hid the original one.
            with contextlib.suppress(duckdb.TransactionException):
                self.con.execute("ROLLBACK")

    # --- one batch ---------------------------------------------------------------------------

    def _load_batch(
        self, batch: reader.LineBatch, source_id: int, source: str, carry_ts: Any,
        *, inserted: bool = False,
    ) -> BatchCounts:
        """Records go straight into `events` (already done when `inserted`); what did not
        arrive is classified afterwards (blank, reject, prefixed JSON, envelope) from the few
        lines left over."""
        con = self.con
        params = self._params(source, source_id)
        batch_range = {
            "source_id": source_id, "first_line": batch.first_line,
            "last_line": batch.first_line + batch.line_count - 1,
        }
        con.register("batch", batch.table)
        try:
            batch_sql, prefixed_sql = self._sql_for(self._discover_keys(batch))
            if not inserted:
                con.execute(batch_sql, params)
            con.execute(normalize.LEFTOVER_SQL, batch_range)
        finally:
            # Fix: after a failed or interrupted statement the transaction is aborted and
            # unregister fails too, which hid the real error (Ctrl-C became "unexpected error").
            _unregister(con, "batch")
        kinds = dict(con.execute("SELECT kind, count(*) FROM mlinv_leftover GROUP BY kind").fetchall())
        if kinds.get("prefixed"):
            con.execute(prefixed_sql, params)
        envelope_rejects: list[tuple[int, int, str, str]] = []
        if kinds.get("envelope"):
            envelope_rejects = self._unwrap_envelopes(params)

        summary = self._batch_summary(batch_range)
        if summary["ts_missing"] and (carry_ts is not None or summary["last_ts"] is not None):
            con.execute(normalize.FILL_MISSING_TS_SQL, {**batch_range, "carry": carry_ts})
            summary = self._batch_summary(batch_range)
        con.execute(request_index.ADD_LINES_SQL, batch_range)
        request_starts.add_lines(con, batch_range)
        for name in ("unparsed_latency", "negative_latency", "absurd_latency", "ts_inferred",
                     "ts_missing"):
            if summary[name]:
                self.flags[name] = self.flags.get(name, 0) + int(summary[name])

        reasons = " ".join(f"WHEN '{k}' THEN '{v}'" for k, v in normalize.REJECT_REASONS.items())
        con.execute(
            f"""
            INSERT INTO rejects
            SELECT $source_id, $source, line, byte_offset, kind, CASE kind {reasons} END,
                   rtrim(text, E'\\r\\n'), strlen(rtrim(text, E'\\r\\n'))
            FROM mlinv_leftover WHERE kind IN ('not_json', 'invalid_json', 'not_object')
              AND strlen(text) <= {REJECT_RAW_LIMIT}
            """,
            {"source": source, "source_id": source_id},
        )
        # Fix: SQL left() counts characters, so multi-byte text kept up to 4 x 64 KiB. The rare
        # longer lines are clipped here, in bytes, on a character boundary.
        long_rejects = con.execute(
            f"""SELECT line, byte_offset, kind, CASE kind {reasons} END, rtrim(text, E'\\r\\n')
                FROM mlinv_leftover WHERE kind IN ('not_json', 'invalid_json', 'not_object')
                  AND strlen(text) > {REJECT_RAW_LIMIT}"""
        ).fetchall()
        extra_rejects: list[tuple[Any, ...]] = [
            (source_id, source, line, offset, kind, reason, _clip_raw(text), len(text.encode("utf-8")))
            for line, offset, kind, reason, text in long_rejects
        ] + [
            (source_id, source, r.line, r.byte_offset, "invalid_utf8",
             "not valid UTF-8 (bytes shown as \\x escapes)", _clip_raw(r.raw), r.raw_bytes)
            for r in batch.invalid_utf8
        ] + [
            (source_id, source, line, offset, "envelope", reason, _clip_raw(text),
             len(text.encode("utf-8", "surrogatepass")))
            for line, offset, reason, text in envelope_rejects
        ]
        if extra_rejects:
            con.executemany("INSERT INTO rejects VALUES (?, ?, ?, ?, ?, ?, ?, ?)", extra_rejects)

        rejects = (sum(kinds.get(k, 0) for k in normalize.REJECT_REASONS) + len(extra_rejects)
                   - len(long_rejects))  # counted in kinds already
        blank = kinds.get("blank", 0)
        event_lines = summary["event_lines"]
        # Accounting is an invariant, not a hope: every physical line is exactly one of these.
        if event_lines + rejects + blank != batch.line_count:
            raise RuntimeError(
                f"line accounting mismatch in {source} at lines {batch.first_line}-"
                f"{batch_range['last_line']}: {event_lines} with events + {rejects} rejects + "
                f"{blank} blank != {batch.line_count}"
            )
        return BatchCounts(
            lines=batch.line_count, events=summary["events"], event_lines=event_lines,
            rejects=rejects, blank_lines=blank,
            last_ts=summary["last_ts"] if summary["last_ts"] is not None else carry_ts,
        )

    def _batch_summary(self, batch_range: dict[str, int]) -> dict[str, Any]:
        cur = self.con.execute(normalize.BATCH_SUMMARY_SQL, batch_range)
        return dict(zip([d[0] for d in cur.description], cur.fetchone(), strict=True))

    def _discover_keys(self, batch: reader.LineBatch) -> frozenset[str]:
        """The alias keys present so far, this batch's included (found by the reader thread
        when it read the batch, see _stream_units; here otherwise)."""
        if batch.alias_keys is None:
            batch.alias_keys = discover_alias_keys(self.con, "batch", frozenset(self.present_keys))
        self.present_keys.update(batch.alias_keys)
        return frozenset(self.present_keys)

    def _sql_for(self, keys: frozenset[str]) -> tuple[str, str]:
        if keys not in self._sql_for_keys:
            batch_sql, _ = normalize.extract_sql(normalize.BATCH_INPUT_SQL, self.mappings, set(keys),
                                                 first_pass=True)
            prefixed_sql, _ = normalize.extract_sql(
                normalize.PREFIXED_INPUT_SQL, self.mappings, set(keys)
            )
            self._sql_for_keys[keys] = (batch_sql, prefixed_sql)
        return self._sql_for_keys[keys]

    def _unwrap_envelopes(self, params: dict[str, Any]) -> list[tuple[int, int, str, str]]:
        """Unwrap Docker/GCP/OTLP lines in Python and extract their records; returns rejects."""
        import pyarrow as pa

        rows: dict[str, list[Any]] = {"line": [], "byte_offset": [], "record": [], "payload": []}
        rejected: list[tuple[int, int, str, str]] = []
        for line, offset, text in self.con.execute(
            "SELECT line, byte_offset, text FROM mlinv_leftover WHERE kind = 'envelope' ORDER BY line"
        ).fetchall():
            result = envelopes.unwrap(text)
            if result.reject_reason:
                rejected.append((line, offset, result.reject_reason, text.rstrip("\r\n")))
            for index, record in enumerate(result.records):
                rows["line"].append(line)
                rows["byte_offset"].append(offset)
                rows["record"].append(index)
                rows["payload"].append(record)
        unwrapped = pa.table(
            {
                "line": pa.array(rows["line"], pa.int64()),
                "byte_offset": pa.array(rows["byte_offset"], pa.int64()),
                "record": pa.array(rows["record"], pa.int32()),
                "payload": pa.array(rows["payload"], pa.string()),
            }
        )
        self.con.register("mlinv_unwrapped", unwrapped)
        try:
            self.con.execute(self.unwrapped_sql, params)
        finally:
            _unregister(self.con, "mlinv_unwrapped")
        return rejected

    # --- bookkeeping -------------------------------------------------------------------------

    def _advance_source(self, source_id: int, batch: reader.LineBatch, counts: BatchCounts) -> None:
        self.con.execute(
            """UPDATE sources SET bytes_read = $offset, lines_read = lines_read + $lines,
                   events = events + $events, rejects = rejects + $rejects,
                   blank_lines = blank_lines + $blank, last_ts = $last_ts, last_ingest = now(),
                   torn_line_offset = $torn
               WHERE source_id = $id""",
            {
                "offset": batch.end_offset, "lines": counts.lines, "events": counts.events,
                "rejects": counts.rejects, "blank": counts.blank_lines, "last_ts": counts.last_ts,
                "id": source_id,
                # An unterminated batch holds that one line only: its start is the torn offset.
                "torn": batch.table.column("byte_offset")[0].as_py() if batch.unterminated else None,
            },
        )

    def _latest_source(self, abspath: str) -> dict[str, Any] | None:
        cur = self.con.execute(
            """SELECT * FROM sources WHERE path = $path AND superseded_by IS NULL
               ORDER BY source_id DESC LIMIT 1""",
            {"path": abspath},
        )
        row = cur.fetchone()
        if row is None:
            return None
        return dict(zip([d[0] for d in cur.description], row, strict=True))

    def _renamed_source(self, abspath: str, size: int, inode: int) -> dict[str, Any] | None:
        """The source this file was read as under another name (logrotate renames app.log to
        app.log.1): same inode and same leading bytes, and its old path no longer holds it.
        Matching on the inode as well as the content means a copy is never taken for it."""
        cur = self.con.execute(
            """SELECT * FROM sources
               WHERE kind = 'file' AND file_inode = $inode AND path <> $path AND bytes_read <= $size
                 AND compression = $compression
               ORDER BY source_id DESC""",
            {"inode": inode, "path": abspath, "size": size, "compression": reader.compression_of(abspath)},
        )
        names = [d[0] for d in cur.description]
        for row in cur.fetchall():
            candidate = dict(zip(names, row, strict=True))
            old_path = candidate["path"]
            if os.path.exists(old_path) and reader.file_identity(old_path)[2] == inode:
                continue  # still there under its own name: a hard link, not a rename
            if candidate["fingerprint"] is None:
                continue
            digest, _ = reader.fingerprint(abspath, candidate["fingerprint_len"] or 0)
            if digest == candidate["fingerprint"]:
                return candidate
        return None

    def _adopt(self, source_id: int, abspath: str) -> None:
        """The renamed file keeps its source (and its read position) under the new name. Its
        events keep the path they were read under: provenance at the time of reading."""
        self.con.execute(
            "UPDATE sources SET path = $path, superseded_by = NULL WHERE source_id = $id",
            {"path": abspath, "id": source_id},
        )

    def _compare(self, previous: dict[str, Any], abspath: str, size: int) -> str:
        """unchanged | resume | rotated"""
        compression = reader.compression_of(abspath)
        digest, _ = reader.fingerprint(abspath, previous["fingerprint_len"] or 0)
        if previous["fingerprint"] and digest != previous["fingerprint"]:
            return "rotated"
        if compression == "none":
            if size < previous["bytes_read"]:
                return "rotated"
            if size == previous["bytes_read"] and previous["complete"]:
                return "unchanged"
            return "resume"
        # Compressed: the on-disk size tells whether anything was appended.
        if previous["complete"] and previous["file_size"] == size:
            return "unchanged"
        return "resume"

    def _new_source(
        self, path: str, kind: str, compression: str, digest: str | None, digest_len: int,
        size: int | None, mtime: float | None, inode: int | None,
    ) -> int:
        source_id = self.con.execute("SELECT coalesce(max(source_id), 0) + 1 FROM sources").fetchone()[0]
        self.con.execute(
            """INSERT INTO sources (source_id, path, kind, compression, fingerprint, fingerprint_len,
                   file_size, file_mtime, file_inode, first_ingest, last_ingest, request_indexed,
                   starts_indexed)
               VALUES ($id, $path, $kind, $compression, $fp, $fl, $size, $mtime, $inode, now(), now(),
                       true, true)""",
            {"id": source_id, "path": path, "kind": kind, "compression": compression, "fp": digest,
             "fl": digest_len, "size": size, "mtime": mtime, "inode": inode},
        )
        return int(source_id)


def discover_alias_keys(
    con: duckdb.DuckDBPyConnection, table: str, known: frozenset[str]
) -> frozenset[str]:
    """`known` plus the alias keys present in the lines of the registered Arrow `table`: those
    of a sample of lines, plus any other alias key found anywhere by one regular expression (so
    none is ever missed; a false hit, e.g. a nested key of the same name, only adds a struct
    field)."""
    alias_keys = set(aliases.all_keys())
    present = set(known)
    sample = con.execute(
        f"""SELECT DISTINCT unnest(json_keys(text)) FROM (
               SELECT text FROM {table} WHERE valid_utf8 LIMIT 2000
           ) WHERE json_valid(text) AND starts_with(text, '{{')"""
    ).fetchall()
    present.update(k for (k,) in sample if k in alias_keys)
    absent = [k for k in aliases.all_keys() if k not in present]
    if absent:
        # The pattern is built from our own alias list (never from input) and inlined as a
        # constant: DuckDB compiles a bound-parameter pattern again for every row.
        pattern = '"(' + "|".join(re.escape(k) for k in absent) + r')"\s*:'
        literal = "'" + pattern.replace("'", "''") + "'"
        hits = con.execute(
            f"""SELECT DISTINCT unnest(regexp_extract_all(text, {literal}, 1)) FROM {table}
                WHERE valid_utf8 AND regexp_matches(text, {literal})"""
        ).fetchall()
        present.update(k for (k,) in hits if k in alias_keys)
    return frozenset(present)


def _unregister(con: duckdb.DuckDBPyConnection, name: str) -> None:
    """Drop a registered Arrow view; in an aborted transaction that fails, and the next
    register() of the same name replaces it anyway."""
    import duckdb

    with contextlib.suppress(duckdb.Error):
        con.unregister(name)


def _is_interrupt(exc: BaseException) -> bool:
    """Ctrl-C during a DuckDB statement: DuckDB cancels the query and raises its own error."""
    import duckdb

    return isinstance(exc, duckdb.InterruptException) or (
        isinstance(exc, RuntimeError) and "interrupted" in str(exc).lower())


def _clip_raw(text: str) -> str:
    """At most REJECT_RAW_LIMIT bytes of UTF-8, cut on a character boundary."""
    data = text.encode("utf-8", "surrogatepass")
    if len(data) <= REJECT_RAW_LIMIT:
        return text
    return data[:REJECT_RAW_LIMIT].decode("utf-8", "ignore")


def _underlying_file(stream: Any) -> Any:
    """The on-disk file behind a (possibly decompressing) stream, for progress in disk bytes."""
    for attr in ("fileobj", "_fp", "raw"):
        inner = getattr(stream, attr, None)
        if inner is not None and hasattr(inner, "tell"):
            return inner
    return stream if hasattr(stream, "tell") else None


_DONE = object()


READ_AHEAD = 4
"""Reads (of reader.CHUNK_BYTES) waiting for the statement that consumes them."""


def _read_ahead(
    batches: Iterator[reader.LineBatch], interrupt: Callable[[], None] | None = None,
    depth: int = READ_AHEAD, cancelled: threading.Event | None = None,
) -> Iterator[reader.LineBatch]:
    """Read and split the next chunks in a thread while DuckDB parses (both release the GIL),
    so reading costs little wall time on a 2-core machine. A consumer waiting for a read gives
    up with KeyboardInterrupt once `cancelled` is set: it may be a DuckDB thread inside the
    statement, where Ctrl-C is not delivered."""
    slots: queue.Queue[Any] = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def hand_over(item: Any) -> bool:
        while not stop.is_set():
            try:
                slots.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def produce() -> None:
        try:
            for batch in batches:
                if not hand_over(batch):
                    return
            hand_over(_DONE)
        except BaseException as exc:  # handed to the consumer, which raises it
            hand_over(exc)

    worker = threading.Thread(target=produce, name="mlinv-reader", daemon=True)
    worker.start()
    try:
        while True:
            item: Any = None
            while item is None:
                try:
                    item = slots.get(timeout=0.1)
                except queue.Empty:
                    if cancelled is not None and cancelled.is_set():
                        raise KeyboardInterrupt from None
            if item is _DONE:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        # The reader thread may be inside a DuckDB query (alias-key discovery): left running
        # while the interpreter shuts down after a Ctrl-C, it aborts the process (exit -6).
        if interrupt is not None:
            interrupt()
        worker.join(timeout=5)


@contextlib.contextmanager
def _sigint_seen() -> Iterator[threading.Event]:
    """An event set by Ctrl-C, for threads that wait on the main thread's behalf (the Python
    handler still runs as before). Fix: Ctrl-C during `mlinv ingest -` on a pipe with no data
    waited until the writer sent more or closed it: the statement's DuckDB thread was blocked
    waiting for the next read, and DuckDB waits for its threads before it gives up."""
    seen = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield seen
        return
    previous = signal.getsignal(signal.SIGINT)

    def handler(signum: int, frame: Any) -> None:
        seen.set()
        if callable(previous):
            previous(signum, frame)
        elif previous == signal.SIG_DFL:
            raise KeyboardInterrupt

    signal.signal(signal.SIGINT, handler)
    try:
        yield seen
    finally:
        signal.signal(signal.SIGINT, previous)


class _Peekable:
    """An iterator of reads that can show the next ones without taking them."""

    def __init__(self, items: Iterator[reader.LineBatch]) -> None:
        self._items = items
        self._ahead: collections.deque[reader.LineBatch] = collections.deque()
        self._ended = False

    def lookahead(self, n: int) -> list[reader.LineBatch]:
        """The next `n` reads (fewer at the end), waiting for them."""
        while len(self._ahead) < n and not self._ended:
            item = next(self._items, None)
            if item is None:
                self._ended = True
            else:
                self._ahead.append(item)
        return list(itertools.islice(self._ahead, n))

    def peek(self) -> reader.LineBatch | None:
        ahead = self.lookahead(1)
        return ahead[0] if ahead else None

    def take(self) -> reader.LineBatch:
        if self.peek() is None:
            raise StopIteration
        return self._ahead.popleft()


def ingest_paths(
    con: duckdb.DuckDBPyConnection,
    paths: list[str],
    *,
    mappings: dict[str, str] | None = None,
    progress: ProgressCallback | None = None,
) -> IngestReport:
    """Ingest files/globs/directories/'-' into an open database."""
    if mappings:
        save_mappings(con, mappings)
    return Ingestor(con, progress=progress).ingest(paths)


__all__ = ["IngestReport", "Ingestor", "SourceReport", "ingest_paths", "parse_mappings", "Path"]
