"""Streams that arrive over time — a pipe (`kubectl logs -f … | mlinv tui -`) or a followed
file (`tail -F` semantics) — through the same ingest code as `mlinv ingest`.

Only complete lines are ingested; a partial last line waits for its newline (or for the end of
the stream). Each feed is committed at once so that readers see it within the refresh interval.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Any

from . import reader
from .pipeline import BatchCounts, Ingestor


@dataclass
class LiveCounts:
    lines: int = 0
    events: int = 0
    rejects: int = 0
    blank_lines: int = 0
    last_read: float = 0.0
    """time.monotonic() when the newest line was read."""

    def add(self, counts: BatchCounts) -> None:
        self.lines += counts.lines
        self.events += counts.events
        self.rejects += counts.rejects
        self.blank_lines += counts.blank_lines
        self.last_read = time.monotonic()


@dataclass
class LiveSource:
    """One growing stream, registered as one source; line numbers continue across feeds."""

    ingestor: Ingestor
    name: str
    kind: str = "stdin"
    counts: LiveCounts = field(default_factory=LiveCounts)
    source_id: int = 0
    _pending: bytes = b""
    _offset: int = 0
    _next_line: int = 1
    _carry_ts: Any = None

    def __post_init__(self) -> None:
        self.source_id = self.ingestor._new_source(
            self.name, self.kind, "none", None, 0, None, None, None
        )

    def feed(self, data: bytes) -> BatchCounts | None:
        """Ingest the complete lines in `data` (plus what was pending); keep the partial tail."""
        if not data:
            return None
        buffered = self._pending + data
        cut = buffered.rfind(b"\n") + 1
        self._pending = buffered[cut:]
        if cut == 0:
            return None
        return self._ingest(buffered[:cut], terminated=True)

    def close(self) -> BatchCounts | None:
        """End of stream: a last line without a newline is ingested as it is."""
        counts = None
        if self._pending:
            counts = self._ingest(self._pending, terminated=False)
            self._pending = b""
        self.ingestor.con.execute(
            "UPDATE sources SET complete = true WHERE source_id = $id", {"id": self.source_id}
        )
        return counts

    def _ingest(self, block: bytes, *, terminated: bool) -> BatchCounts:
        import numpy as np

        view = np.frombuffer(block, dtype=np.uint8)
        ends = np.flatnonzero(view == 10) + 1
        if not terminated:
            ends = np.append(ends, len(block))
        batch = reader._make_batch(block, ends, self._offset, self._next_line)
        counts = self.ingestor._commit_batch(batch, self.source_id, self.name, self._carry_ts)
        self.ingestor.commit()
        self._offset = batch.end_offset
        self._next_line += batch.line_count
        self._carry_ts = counts.last_ts
        self.counts.add(counts)
        return counts


@dataclass
class FollowedFile:
    """`tail -F` for one path: appends are read as they come; a file that is replaced (new
    inode), truncated, or appears later is read from its start as a new source."""

    ingestor: Ingestor
    path: str
    from_start: bool = True
    """Read what the file already holds first (False: only what is appended from now on)."""
    source: LiveSource | None = None
    _inode: int | None = None
    _position: int = 0
    _handle: Any = None
    counts: LiveCounts = field(default_factory=LiveCounts)

    def poll(self, max_bytes: int = reader.CHUNK_BYTES) -> int:
        """Read what was appended since the last poll; returns the number of bytes read."""
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return 0  # not there (yet, or during a rotation): try again next poll
        if self._handle is None or st.st_ino != self._inode or st.st_size < self._position:
            self._reopen(st)
        data = self._handle.read(max_bytes)
        if not data:
            return 0
        self._position += len(data)
        assert self.source is not None
        counts = self.source.feed(data)
        if counts is not None:
            self.counts.add(counts)
        return len(data)

    def _reopen(self, st: os.stat_result) -> None:
        if self.source is not None:
            self.source.close()
        if self._handle is not None:
            self._handle.close()
        first_open = self._inode is None
        self._handle = open(self.path, "rb")  # noqa: SIM115 - kept open between polls
        self._inode = st.st_ino
        self._position = 0
        self.source = LiveSource(self.ingestor, os.path.abspath(self.path), kind="follow")
        if first_open and not self.from_start:
            # Skip what is there, but keep line numbers and offsets true to the file.
            lines = _count_newlines(self._handle, st.st_size)
            self._position = st.st_size
            self.source._offset = st.st_size
            self.source._next_line = lines + 1

    def close(self) -> None:
        if self.source is not None:
            self.source.close()
        if self._handle is not None:
            self._handle.close()


def _count_newlines(handle: Any, size: int) -> int:
    import numpy as np

    handle.seek(0)
    total, remaining = 0, size
    while remaining > 0:
        chunk = handle.read(min(reader.CHUNK_BYTES, remaining))
        if not chunk:
            break
        remaining -= len(chunk)
        total += int(np.count_nonzero(np.frombuffer(chunk, dtype=np.uint8) == 10))
    handle.seek(size)
    return total
