"""Helpers shared by the tests/test_ingest_*.py files: write logs, ingest them in-process, run the
command line (in-process when possible, as a real subprocess when stdin, signals or the
machine's time zone matter)."""

from __future__ import annotations

import atexit
import contextlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest import mock

from mlinvestigate import store
from mlinvestigate.ingest.pipeline import Ingestor, IngestReport, save_mappings

MLINV: list[str] = [sys.executable, "-c", "from mlinvestigate.cli import main; main()"]
"""The `mlinv` command, run by the interpreter running the tests."""

NEUTRAL_DIR = Path(tempfile.mkdtemp(prefix="mlinv-tests-cwd-"))
"""An empty working directory for commands, so that no ./mlinv.toml of the repository (or of
wherever the tests run) leaks into them; tests of the config file pass their own `cwd`."""
atexit.register(shutil.rmtree, NEUTRAL_DIR, True)

TYPED_COLUMNS: tuple[str, ...] = (
    "ts", "ts_inferred", "event", "level", "service", "request_id", "trace_id", "span_id",
    "model_id", "model_version", "status", "latency_ms", "input_size", "input_hash", "output_hash",
    "prediction", "confidence", "error_type", "error_category", "error_message", "status_code",
    "cache_hit",
)
"""Event columns extracted from a record (not attrs, latency_raw or the bookkeeping ones)."""

OTLP_REFERENCE_EXAMPLE = """
{"resourceLogs":[{"resource":{"attributes":[
   {"key":"service.name","value":{"stringValue":"fraud-scorer"}},
   {"key":"service.version","value":{"stringValue":"2.3.1"}}]},
 "scopeLogs":[{"scope":{"name":"serving.predict"},
  "logRecords":[{"timeUnixNano":"1717200000123000000","observedTimeUnixNano":"1717200000124000000",
   "severityNumber":17,"severityText":"ERROR",
   "traceId":"5b8efff798038103d269b633813fc60c","spanId":"eee19b7ec3c1b174",
   "eventName":"prediction",
   "body":{"stringValue":"inference failed"},
   "attributes":[
    {"key":"ml.model.version","value":{"stringValue":"v2"}},
    {"key":"ml.input.size","value":{"intValue":"2048"}},
    {"key":"error.type","value":{"stringValue":"timeout"}},
    {"key":"latency_ms","value":{"doubleValue":1834.5}}]}]}]}]}
"""
"""The ML prediction log as OTLP/JSON from shared/reference-vectors.md §6 (pretty-printed there;
compact it with `compact()` to get one line of an OTLP export)."""


def compact(text: str) -> str:
    """One line of JSON from a (possibly pretty-printed) document."""
    return json.dumps(json.loads(text), separators=(",", ":"))


def utc(*parts: int) -> datetime:
    """A naive datetime meaning UTC, as the `ts` column returns it."""
    return datetime(*parts)  # type: ignore[arg-type]


def epoch_us(moment: datetime) -> int:
    """Microseconds since the epoch of a naive-UTC datetime."""
    delta = moment.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def write_log(directory: Path, name: str, content: str | bytes | Iterable[str]) -> Path:
    """Write a log file; an iterable of lines gets a newline after each."""
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    elif isinstance(content, str):
        path.write_bytes(content.encode("utf-8"))
    else:
        path.write_bytes("".join(line + "\n" for line in content).encode("utf-8"))
    return path


def jsonl(records: Iterable[dict[str, Any]]) -> list[str]:
    return [json.dumps(r, ensure_ascii=False) for r in records]


@dataclass
class Ingested:
    """What an ingest produced, read back from the database."""

    report: IngestReport
    events: list[dict[str, Any]]
    rejects: list[dict[str, Any]]
    sources: list[dict[str, Any]]

    def typed(self, row: dict[str, Any]) -> dict[str, Any]:
        return {k: row[k] for k in TYPED_COLUMNS}

    def by_line(self) -> dict[tuple[int, int], dict[str, Any]]:
        return {(e["line"], e["record"]): e for e in self.events}

    def one(self) -> dict[str, Any]:
        assert len(self.events) == 1, self.events
        return self.events[0]


def rows(con: Any, sql: str, params: Any = None) -> list[dict[str, Any]]:
    cur = con.execute(sql, params)
    names = [d[0] for d in cur.description]
    return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]


def read_back(con: Any, report: IngestReport) -> Ingested:
    return Ingested(
        report=report,
        events=rows(con, "SELECT * FROM events ORDER BY source_id, line, record"),
        rejects=rows(con, "SELECT * FROM rejects ORDER BY source_id, line"),
        sources=rows(con, "SELECT * FROM sources ORDER BY source_id"),
    )


def ingest(
    paths: Sequence[str | Path],
    *,
    db: str | Path | None = None,
    chunk_bytes: int | None = None,
    mappings: dict[str, str] | None = None,
) -> Ingested:
    """Ingest in-process (into memory, or into `db` which is closed again) and read back."""
    con = store.connect(str(db) if db is not None else store.MEMORY)
    try:
        if mappings:
            save_mappings(con, mappings)
        report = Ingestor(con, chunk_bytes=chunk_bytes).ingest([str(p) for p in paths])
        return read_back(con, report)
    finally:
        con.close()


def ingest_text(directory: Path, content: str | bytes | Iterable[str], *, name: str = "app.log",
                chunk_bytes: int | None = None, mappings: dict[str, str] | None = None) -> Ingested:
    """Write one log file and ingest it into a fresh in-memory database."""
    return ingest([write_log(directory, name, content)], chunk_bytes=chunk_bytes, mappings=mappings)


def ingest_records(directory: Path, records: Iterable[dict[str, Any]], **kwargs: Any) -> Ingested:
    return ingest_text(directory, jsonl(records), **kwargs)


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def cli(*args: str, cwd: Path | None = None) -> CliResult:
    """Run `mlinv ARGS` in this process through the real entry point (its error boundary and
    exit codes included), in `cwd` (default: an empty directory)."""
    from mlinvestigate.cli import main

    out, err = io.StringIO(), io.StringIO()
    code: int = 0
    with (mock.patch.object(sys, "argv", ["mlinv", *args]), redirect_stdout(out), redirect_stderr(err),
          contextlib.chdir(cwd or NEUTRAL_DIR)):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    return CliResult(code, out.getvalue(), err.getvalue())


def cli_process(*args: str, input: bytes | None = None, env: dict[str, str] | None = None,
                cwd: Path | None = None, timeout: float = 120) -> CliResult:
    """Run `mlinv ARGS` as a real subprocess."""
    full_env = {**os.environ, **(env or {})}
    done = subprocess.run(
        [*MLINV, *args], input=input, env=full_env, cwd=cwd or NEUTRAL_DIR, capture_output=True,
        timeout=timeout, check=False,
    )
    return CliResult(done.returncode, done.stdout.decode("utf-8", "replace"),
                     done.stderr.decode("utf-8", "replace"))


def assert_one_line_error(result: CliResult, code: int, *fragments: str) -> None:
    """A clear one-line error: the exit code, `mlinv: error: ...` on stderr, no traceback."""
    assert result.code == code, (result.code, result.err)
    lines = [line for line in result.err.splitlines() if line.strip()]
    assert len(lines) == 1, result.err
    assert lines[0].startswith("mlinv: error: "), result.err
    assert "Traceback" not in result.err
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
