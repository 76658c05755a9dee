"""Commands that put data in and look at it raw: ingest, info, rejects, sql, sample."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path
from typing import Annotated

import typer

from ..errors import UsageError
from . import app
from .common import DbOption, FormatOption, LimitOption, SectionOption, emit


@app.command()
def ingest(
    paths: Annotated[list[str], typer.Argument(help="Files, globs, directories (recursive), "
                                               ".gz/.zst, or '-' for stdin.", show_default=False)],
    db: DbOption = None,
    map_: Annotated[list[str] | None, typer.Option(
        "--map", help="Map an event column to a field path, e.g. latency_ms=payload.timing.total_ms "
        "(repeatable; stored with the database).", show_default=False)] = None,
    config: Annotated[Path | None, typer.Option(
        "--config", help="Project config file (default: ./mlinv.toml if present).",
        show_default=False)] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress and no summary.")] = False,
    parquet: Annotated[str | None, typer.Option(
        "--parquet", help="Also (without --db: only) write the events to this Parquet store "
        "directory, as `mlinv export --parquet` does.", show_default=False)] = None,
) -> None:
    """Ingest JSON logs into the database. Safe to re-run: only new lines are added.

    Example:  mlinv ingest 'logs/*.jsonl.gz' -   (files, then whatever is piped in)
              mlinv ingest 'logs/*.jsonl.gz' --parquet /data/store   (no database file)
    """
    from .. import store
    from ..config import load_config
    from ..ingest.pipeline import Ingestor, parse_mappings, save_mappings

    settings = load_config(config)
    mappings = dict(settings.mappings)
    mappings.update(parse_mappings(map_ or []))
    # With --parquet alone the events pass through an in-memory database (DuckDB spills to
    # disk past its memory limit), keeping the same lossless accounting: rejects and sources
    # are written into the store too.
    con = store.connect(store.MEMORY if parquet and not db else db)
    export_report = None
    try:
        if mappings:
            save_mappings(con, mappings)
        with _IngestProgress(enabled=not quiet and sys.stderr.isatty()) as progress:
            ingestor = Ingestor(con, progress=progress.update)
            report = ingestor.ingest(paths)
        if parquet:
            from ..parquet_store import export_parquet

            export_report = export_parquet(con, parquet)
    finally:
        con.close()
    if not quiet:
        from ..ingest.report import describe

        # Without --db the only copy of the rejects is the store's _rejects/ directory.
        hint = (f"they are in {os.path.join(parquet, '_rejects')}" if parquet and not db
                else "see them with: mlinv rejects")
        for line in describe(report, rejects_hint=hint):
            print(line, file=sys.stderr)
        if export_report is not None:
            print(export_report.describe(), file=sys.stderr)


class _IngestProgress:
    """A rich progress bar on stderr (bytes and lines), only on a terminal and only once the
    work has taken more than a moment."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.started = time.monotonic()
        self.progress = None
        self.tasks: dict[str, int] = {}

    def __enter__(self) -> _IngestProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.progress is not None:
            self.progress.stop()

    def update(self, source: str, position: int, lines: int) -> None:
        if not self.enabled or time.monotonic() - self.started < 0.5:
            return
        if self.progress is None:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
            )

            self.progress = Progress(
                TextColumn("{task.description}"), BarColumn(), DownloadColumn(),
                TextColumn("{task.fields[lines]:,} lines"), TimeRemainingColumn(),
                console=Console(stderr=True), transient=True,
            )
            self.progress.start()
        if source not in self.tasks:
            total = Path(source).stat().st_size if Path(source).is_file() else None
            from ..sanitize import clean

            self.tasks[source] = self.progress.add_task(clean(source)[-40:], total=total, lines=0)
        self.progress.update(self.tasks[source], completed=position, lines=lines)


@app.command()
def info(
    db: DbOption = None,
    format: FormatOption = "table",
    section: SectionOption = None,
) -> None:
    """What the database holds: sources, counts, time range, services, versions, rejects, and
    record fields no event column reads (candidates for --map).

    Example:  mlinv info
    """
    from .. import store
    from ..inventory import database_info

    con = store.connect(db, create=False)
    try:
        result = database_info(con)
    finally:
        con.close()
    emit(result, format, empty_message="the database holds no sources yet", section=section)


@app.command()
def rejects(
    db: DbOption = None,
    kind: Annotated[str | None, typer.Option(
        "--kind", help="not_json, invalid_json, not_object, invalid_utf8 or envelope.",
        show_default=False)] = None,
    source: Annotated[str | None, typer.Option(
        "--source", help="Only lines from sources whose path contains this text.",
        show_default=False)] = None,
    limit: LimitOption = 50,
    format: FormatOption = "table",
) -> None:
    """Lines that did not become events, with source, line number, byte offset, reason and
    raw text (kept up to 64 KiB per line).

    Example:  mlinv rejects --kind invalid_json --format json
    """
    from .. import store
    from ..inventory import list_rejects

    con = store.connect(db, read_only=True)
    try:
        result = list_rejects(con, kind=kind, source=source, limit=limit)
    finally:
        con.close()
    emit(result, format, empty_message="no rejected lines")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="One read-only statement (SELECT, WITH, DESCRIBE, "
                                         "SHOW, SUMMARIZE, EXPLAIN).", show_default=False)],
    db: DbOption = None,
    logs: Annotated[list[str] | None, typer.Option(
        "--logs", help="Query these logs (or '-') in memory instead of a database file.",
        show_default=False)] = None,
    format: FormatOption = "table",
) -> None:
    """Run your own read-only SQL on the event table (the escape hatch).

    Example:  mlinv sql "SELECT model_version, count(*) FROM events GROUP BY ALL"
    """
    from ..inventory import run_readonly_sql
    from .common import open_database

    with open_database(db, logs) as con:
        result = run_readonly_sql(con, query)
    emit(result, format, empty_message="the query returned no rows")


@app.command()
def sample(
    out: Annotated[str, typer.Option("--out", "-o", help="Output file (.gz/.zst compress), or '-'.")],
    lines: Annotated[int, typer.Option("--lines", "-n", help="Exactly this many lines.", min=0)] = 36000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same bytes).")] = 7,
    start: Annotated[str | None, typer.Option(
        "--start", help="First timestamp, ISO (default 2026-01-13T00:00:00Z).", show_default=False
    )] = None,
    hours: Annotated[float, typer.Option("--hours", help="Time span of the logs.", min=0.02)] = 4.0,
    corrupt: Annotated[bool, typer.Option(
        "--corrupt/--no-corrupt", help="Include corrupted, plain-text and blank lines.")] = True,
) -> None:
    """Write realistic, deterministic prediction logs with known incidents (see
    sample_logs/README.md for what happens when).

    Example:  mlinv sample --out /tmp/big.jsonl --lines 1000000 --seed 7
    """
    from datetime import timedelta

    from .. import sample as generator
    from ..timeparse import parse_time_bound

    first = generator.DEFAULT_START if start is None else parse_time_bound(start, newest=None)
    target = sys.stdout.buffer if out == "-" else out
    if out != "-" and Path(out).is_dir():
        raise UsageError(f"--out {out} is a directory")
    stats = generator.generate(
        target, lines=lines, seed=seed, start=first, duration=timedelta(hours=hours), corrupt=corrupt
    )
    if out != "-":
        print(
            f"wrote {stats.lines:,} lines ({stats.corrupted_lines:,} corrupted, "
            f"{stats.blank_lines:,} blank) to {out}",
            file=sys.stderr,
        )
