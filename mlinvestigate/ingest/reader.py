"""Read a byte stream (file, .gz, .zst, stdin) into Arrow batches of physical lines.

Python only moves bytes: it finds newlines with numpy and hands DuckDB zero-copy Arrow string
arrays; JSON parsing happens in SQL (see normalize.py). Every physical line keeps its 1-based
number and byte offset in the decompressed stream, so a reject can always be found again.

Lines that are not valid UTF-8 cannot enter DuckDB as text: they are reported separately
(`LineBatch.invalid_utf8`) with their bytes shown as backslash escapes, and replaced in the
batch by an empty placeholder that the SQL skips.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import select
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING

from ..errors import InputError

if TYPE_CHECKING:
    import pyarrow as pa

CHUNK_BYTES = 16 << 20
"""Bytes read per step. The reader thread splits and checks one read while the statement of the
current unit consumes the previous ones, so reads stay small; units (UNIT_BYTES) are big."""

UNIT_BYTES = 512 << 20
"""Bytes of lines parsed by one statement and committed together. DuckDB writes a file database
far faster from a few big INSERTs than from many small ones: 1M lines took 3.9 s in one
statement against 7.0 s in 22 of 16 MiB, and 6.4 s against 6.0 s in units of 256 MiB rather
than 512 MiB (bench/profile_ingest.py). A unit's statement consumes reads of CHUNK_BYTES as they
come, and keeps them until the unit is committed: memory holds about one unit. COMMIT_LINES
(pipeline) bounds a unit too."""

ARROW_BATCH_ROWS = 8192
"""Rows per Arrow record batch: DuckDB scans batches in parallel, so one huge batch uses one core."""

FINGERPRINT_BYTES = 4096
"""Leading bytes hashed to recognise a file again (and notice one that was replaced)."""

UTF8_BOM = b"\xef\xbb\xbf"
STDIN = "<stdin>"


@dataclass
class InvalidLine:
    line: int
    byte_offset: int
    raw: str
    raw_bytes: int


@dataclass
class LineBatch:
    """A run of complete physical lines, as an Arrow table with columns line/byte_offset/text."""

    table: pa.Table
    first_line: int
    line_count: int
    end_offset: int
    """Offset just past the last byte of this batch (the resume point once committed)."""
    invalid_utf8: list[InvalidLine] = field(default_factory=list)
    unterminated: bool = False
    """The batch's (only) line had no newline: the stream ended mid-line, maybe mid-write."""
    alias_keys: frozenset[str] | None = None
    """Alias keys present in this batch and those before it, once found (pipeline)."""


def compression_of(path: str) -> str:
    lower = path.lower()
    if lower.endswith(".gz") or lower.endswith(".gzip"):
        return "gzip"
    if lower.endswith(".zst") or lower.endswith(".zstd"):
        return "zstd"
    return "none"


def open_stream(path: str) -> IO[bytes]:
    """A binary stream of the decompressed content. '-' is stdin."""
    if path == "-":
        return sys.stdin.buffer
    kind = compression_of(path)
    try:
        raw = open(path, "rb")  # noqa: SIM115 - the caller closes the returned stream
    except FileNotFoundError:
        raise InputError(f"no such file: {path}") from None
    except IsADirectoryError:
        raise InputError(f"{path} is a directory") from None
    except PermissionError:
        raise InputError(f"permission denied: {path}") from None
    if kind == "gzip":
        return gzip.GzipFile(fileobj=raw, mode="rb")  # type: ignore[return-value]
    if kind == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(raw, closefd=True)  # type: ignore[return-value]
    return raw


def fingerprint(path: str, length: int = FINGERPRINT_BYTES) -> tuple[str, int]:
    """sha256 of the first `length` decompressed bytes, and how many bytes that was."""
    with open_stream(path) as stream:
        head = _read_exactly(stream, length)
    return hashlib.sha256(head).hexdigest(), len(head)


def _read_exactly(stream: IO[bytes], n: int) -> bytes:
    parts: list[bytes] = []
    remaining = n
    while remaining > 0:
        piece = stream.read(remaining)
        if not piece:
            break
        parts.append(piece)
        remaining -= len(piece)
    return b"".join(parts)


def skip_bytes(stream: IO[bytes], n: int) -> int:
    """Move a (possibly non-seekable, decompressing) stream forward by n bytes."""
    if n <= 0:
        return 0
    try:
        if stream.seekable() and not isinstance(stream, gzip.GzipFile):
            stream.seek(n, io.SEEK_CUR)
            return n
    except (OSError, AttributeError):
        pass
    skipped = 0
    while skipped < n:
        piece = stream.read(min(CHUNK_BYTES, n - skipped))
        if not piece:
            break
        skipped += len(piece)
    return skipped


def iter_line_batches(
    stream: IO[bytes],
    *,
    start_offset: int = 0,
    start_line: int = 1,
    chunk_bytes: int = CHUNK_BYTES,
    hasher: hashlib._Hash | None = None,
    final: bool = True,
) -> Iterator[LineBatch]:
    """Yield batches of complete lines from `stream`, which is positioned at `start_offset`.

    A last line without a newline is yielded when the stream ends if `final` (a closed file);
    otherwise it is left unread so that a writer can finish it (follow mode).
    """
    import numpy as np

    carry = b""
    offset = start_offset
    line_no = start_line
    at_stream_start = start_offset == 0
    while True:
        chunk = stream.read(chunk_bytes)
        if hasher is not None and chunk:
            hasher.update(chunk)
        if at_stream_start and chunk:
            # A UTF-8 byte-order mark is not part of the first record; its bytes still count.
            if (carry + chunk).startswith(UTF8_BOM):
                chunk = (carry + chunk)[len(UTF8_BOM) :]
                carry = b""
                offset += len(UTF8_BOM)
                at_stream_start = False
                if not chunk:
                    # Fix: a read that ended right after the BOM left an empty chunk, which the
                    # end-of-stream test below took for the end: the whole file was skipped.
                    continue
            elif len(carry + chunk) >= len(UTF8_BOM) or not UTF8_BOM.startswith(carry + chunk):
                # Fix: also when the start is already no BOM: with reads shorter than a BOM,
                # a later line's BOM-like bytes were cut off as if they began the stream.
                at_stream_start = False
        data = carry + chunk if carry else chunk
        if not chunk:
            if data and final:
                batch = _make_batch(data, np.array([len(data)], dtype=np.int64), offset, line_no)
                batch.unterminated = True
                yield batch
            return
        view = np.frombuffer(data, dtype=np.uint8)
        newline_positions = np.flatnonzero(view == 10)
        if len(newline_positions) == 0:
            carry = data  # a line longer than a chunk: keep reading until it ends
            continue
        end = int(newline_positions[-1]) + 1
        batch = _make_batch(data[:end], newline_positions + 1, offset, line_no)
        yield batch
        carry = data[end:]
        offset += end
        line_no += batch.line_count


def merge_batches(batches: list[LineBatch]) -> LineBatch:
    """Consecutive batches as one (the Arrow chunks are kept, not copied)."""
    import pyarrow as pa

    if len(batches) == 1:
        return batches[0]
    return LineBatch(
        table=pa.concat_tables([b.table for b in batches]),
        first_line=batches[0].first_line,
        line_count=sum(b.line_count for b in batches),
        end_offset=batches[-1].end_offset,
        invalid_utf8=[bad for b in batches for bad in b.invalid_utf8],
    )


def _make_batch(data: bytes, line_ends: object, offset: int, first_line: int) -> LineBatch:
    """Build the Arrow table for `data`, whose lines end (exclusive) at `line_ends`."""
    import numpy as np
    import pyarrow as pa

    ends = np.asarray(line_ends, dtype=np.int64)
    count = len(ends)
    starts = np.empty(count, dtype=np.int64)
    starts[0] = 0
    starts[1:] = ends[:-1]
    invalid: list[InvalidLine] = []
    buffer: bytes | bytearray = data
    view = np.frombuffer(data, dtype=np.uint8)
    if len(view) and int(view.max()) >= 0x80:  # (4x faster than (view >= 0x80).any())
        buffer, invalid = _blank_invalid_utf8(data, starts, ends, offset, first_line)
    offsets = np.empty(count + 1, dtype=np.int64)
    offsets[0] = 0
    offsets[1:] = ends
    text = pa.LargeStringArray.from_buffers(count, pa.py_buffer(offsets), pa.py_buffer(buffer))
    valid = np.ones(count, dtype=bool)
    for bad in invalid:
        valid[bad.line - first_line] = False
    table = pa.table(
        {
            "line": pa.array(np.arange(first_line, first_line + count, dtype=np.int64)),
            "byte_offset": pa.array(starts + offset),
            "text": text,
            "valid_utf8": pa.array(valid),
        }
    )
    table = pa.Table.from_batches(table.to_batches(max_chunksize=ARROW_BATCH_ROWS))
    return LineBatch(
        table=table,
        first_line=first_line,
        line_count=count,
        end_offset=offset + len(data),
        invalid_utf8=invalid,
    )


def _blank_invalid_utf8(
    data: bytes, starts: object, ends: object, offset: int, first_line: int
) -> tuple[bytearray, list[InvalidLine]]:
    """Find lines that are not valid UTF-8 and overwrite them with spaces (same length, so
    every offset stays right). A newline byte never occurs inside a multi-byte sequence, so a
    chunk cut at newlines decodes exactly as its lines do."""
    import numpy as np

    buffer = bytearray(data)
    invalid: list[InvalidLine] = []
    line_starts = np.asarray(starts)
    line_ends = np.asarray(ends)
    position = 0
    while position < len(buffer):
        try:
            bytes(buffer[position:]).decode("utf-8")
            break
        except UnicodeDecodeError as exc:
            bad = position + exc.start
        index = int(np.searchsorted(line_ends, bad, side="right"))
        lo, hi = int(line_starts[index]), int(line_ends[index])
        raw = bytes(buffer[lo:hi]).rstrip(b"\r\n")
        invalid.append(
            InvalidLine(
                line=first_line + index,
                byte_offset=offset + lo,
                raw=raw.decode("utf-8", errors="backslashreplace"),
                raw_bytes=len(raw),
            )
        )
        buffer[lo:hi] = b" " * (hi - lo - 1) + b"\n" if hi > lo else b""
        position = hi
    return buffer, invalid


class ReadCancelled(Exception):
    """The pipe was closed from the consumer's side (Ctrl-C) while a read waited for data."""


class Pipe:
    """A pipe (stdin) read in whole chunks like a buffered stream, but never blocked for more
    than a tenth of a second at a time, so that the reader thread can be stopped. Fix: after
    Ctrl-C during `mlinv ingest -` on an idle pipe, the reader thread was still blocked in
    sys.stdin.buffer.read() when the interpreter shut down, which aborted the process ("Fatal
    Python error: _enter_buffered_busy") instead of exiting 130."""

    POLL_SECONDS = 0.1

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self._cancelled = threading.Event()

    def read(self, size: int) -> bytes:
        """Up to `size` bytes: fewer only at the end of the stream."""
        parts: list[bytes] = []
        got = 0
        while got < size:
            if self._cancelled.is_set():
                raise ReadCancelled
            if os.name != "nt":  # select() does not take pipes on Windows: plain blocking reads
                ready, _, _ = select.select([self.fd], [], [], self.POLL_SECONDS)
                if not ready:
                    continue
            piece = os.read(self.fd, size - got)
            if not piece:
                break
            parts.append(piece)
            got += len(piece)
        return b"".join(parts)

    def cancel(self) -> None:
        self._cancelled.set()


def read_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that mean the input itself cannot be read (corrupt or truncated compression,
    an I/O error): the caller turns them into one clear InputError."""
    import zlib

    import zstandard

    return (OSError, EOFError, zlib.error, zstandard.ZstdError)


def file_identity(path: str) -> tuple[int, float, int]:
    """(size, mtime, inode) of a file on disk."""
    st = os.stat(path)
    return st.st_size, st.st_mtime, st.st_ino


NOT_LOG_SUFFIXES = frozenset({
    ".md", ".rst", ".py", ".toml", ".yaml", ".yml", ".ini", ".cfg", ".html", ".css", ".js",
    ".png", ".jpg", ".jpeg", ".gif", ".svg", ".pdf", ".duckdb", ".wal", ".parquet", ".db",
    ".sqlite", ".zip", ".tar", ".pyc", ".sh",
})
"""Inside a directory, files with these suffixes are not logs and are skipped (a file named
on the command line or matched by a glob is always read)."""


def expand_paths(patterns: list[str]) -> list[str]:
    """Files named directly, by glob, or found under directories (recursively), in a stable order.

    '-' stands for stdin and is kept where it appears."""
    import glob

    seen: set[str] = set()
    result: list[str] = []

    def add(p: str) -> None:
        key = os.path.abspath(p)
        if key not in seen:
            seen.add(key)
            result.append(p)

    for pattern in patterns:
        if pattern == "-":
            result.append("-")
            continue
        path = Path(pattern)
        if path.is_dir():
            # Fix: files under hidden directories (.git/, .venv/) were read too; only the
            # file's own name was checked.
            found = [sub for sub in sorted(path.rglob("*"))
                     if sub.is_file() and sub.suffix.lower() not in NOT_LOG_SUFFIXES
                     and not any(part.startswith(".") for part in sub.relative_to(path).parts)]
            # Fix: a directory without any log file used to ingest nothing and exit 0.
            if not found:
                raise InputError(f"no log files under {pattern}")
            for sub in found:
                add(str(sub))
        elif path.exists():
            add(pattern)
        elif any(ch in pattern for ch in "*?["):
            matches = sorted(glob.glob(pattern, recursive=True))
            files = [m for m in matches if Path(m).is_file()]
            if not files:
                raise InputError(f"no files match {pattern}")
            for m in files:
                add(m)
        else:
            raise InputError(f"no such file: {pattern}")
    return result
