"""Options shared by every investigation command, spelled the same everywhere, and the one
place where a command gets its database (a file, or an in-memory one fed by --logs)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..errors import UsageError

if TYPE_CHECKING:
    import duckdb

    from ..result import Result

DbOption = Annotated[
    str | None,
    typer.Option("--db", help="Database file (default: $MLINV_DB, else ./mlinv.duckdb).",
                 show_default=False),
]
LogsOption = Annotated[
    list[str] | None,
    typer.Option("--logs", help="Run on these log files/globs/dirs, or '-' for stdin, without a "
                 "prior ingest (in-memory database).", show_default=False),
]
SinceOption = Annotated[
    str | None,
    typer.Option("--since", help="Start: ISO time, epoch, or relative (30m, 2h, 1d) counted back "
                 "from the newest event.", show_default=False),
]
UntilOption = Annotated[
    str | None,
    typer.Option("--until", help="End: same forms as --since.", show_default=False),
]
WallClockOption = Annotated[
    bool,
    typer.Option("--wall-clock", help="Count relative --since/--until back from now, not from the "
                 "newest event."),
]
ModelOption = Annotated[
    str | None, typer.Option("--model", help="Only this model_id.", show_default=False)
]
VersionOption = Annotated[
    str | None, typer.Option("--version", help="Only this model_version.", show_default=False)
]
ServiceOption = Annotated[
    str | None, typer.Option("--service", help="Only this service.", show_default=False)
]
WhereOption = Annotated[
    str | None,
    typer.Option("--where", help="Extra SQL condition on event columns, e.g. \"input_size > 1000\".",
                 show_default=False),
]
StoreOption = Annotated[
    str | None,
    typer.Option("--store", help="Query a Parquet event store (a directory written by `mlinv export "
                 "--parquet`; with --engine spark also an object-store URL) instead of --db.",
                 show_default=False),
]
EngineOption = Annotated[
    str,
    typer.Option("--engine", help="duckdb, or spark (needs --store and pyspark: "
                 "pip install 'mlinvestigate[spark]')."),
]
SparkRemoteOption = Annotated[
    str | None,
    typer.Option("--spark-remote", help="Spark Connect URL, e.g. sc://host:15002 (implies --engine "
                 "spark; default: a local Spark).", show_default=False, envvar="MLINV_SPARK_REMOTE"),
]
LimitOption = Annotated[int, typer.Option("--limit", help="At most this many rows.", min=1)]
FormatOption = Annotated[
    str,
    typer.Option("--format", "-f", help="table, json, csv or markdown."),
]
SectionOption = Annotated[
    str | None,
    typer.Option("--section", help="Print one of the extra tables under the main one instead: its "
                 "number (1 = the first) or a word of its title, e.g. --section slowest. The way to "
                 "get it as json/csv.", show_default=False),
]


@dataclass
class CommonOptions:
    db: str | None = None
    logs: list[str] | None = None
    since: str | None = None
    until: str | None = None
    wall_clock: bool = False
    model: str | None = None
    version: str | None = None
    service: str | None = None
    where: str | None = None
    limit: int = 20
    format: str = "table"
    store: str | None = None
    engine: str = "duckdb"
    spark_remote: str | None = None
    section: str | None = None

    def check_format(self) -> None:
        from ..output import FORMATS

        if self.format not in FORMATS:
            raise UsageError(f"unknown --format {self.format!r}", hint="table, json, csv or markdown")


@contextmanager
def open_database(db: str | None, logs: list[str] | None, *, quiet: bool = True
                  ) -> Iterator[duckdb.DuckDBPyConnection]:
    """The database a command reads: the file (read-only), or with --logs an in-memory one
    filled from the given logs through the same ingest code."""
    from .. import store

    if logs:
        from ..ingest.pipeline import ingest_paths

        con = store.connect(store.MEMORY)
        try:
            report = ingest_paths(con, list(logs))
            if not quiet and report.rejects:
                print(f"mlinv: {report.rejects} rejected lines (see `mlinv rejects`)", file=sys.stderr)
            yield con
        finally:
            con.close()
        return
    con = store.connect(db, read_only=True)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def open_engine(options: CommonOptions) -> Iterator[Any]:
    """What an investigation reads: the database (as `open_database`), a Parquet store through
    DuckDB (--store), or a Parquet store through Spark (--engine spark / --spark-remote).
    pyspark is imported only in the last case."""
    from ..engines import ENGINE_NAMES, SPARK

    engine = SPARK if options.spark_remote else options.engine
    if engine not in ENGINE_NAMES:
        raise UsageError(f"unknown --engine {options.engine!r}", hint=" or ".join(ENGINE_NAMES))
    if options.store and (options.db or options.logs):
        raise UsageError("--store replaces --db and --logs; give only one of them")
    if engine == SPARK:
        from ..engines.spark_engine import SparkEngine, build_session, require_pyspark

        require_pyspark()
        if not options.store:
            raise UsageError("--engine spark reads a Parquet store: add --store DIR or URL",
                             hint="write one with `mlinv export --parquet DIR`")
        session = build_session(options.spark_remote)
        try:
            yield SparkEngine(session, options.store)
        finally:
            session.stop()
        return
    if options.store:
        from ..parquet_store import open_store

        store_engine = open_store(options.store)
        try:
            yield store_engine
        finally:
            store_engine.close()
        return
    with open_database(options.db, options.logs) as con:
        yield con


def emit(result: Result, fmt: str, *, empty_message: str | None = None,
         section: str | None = None) -> None:
    """Print a result, or with `section` (--section: a number or a word of a title) the one of
    its extra tables that it names; an empty table prints a clear message on stderr and exits 1."""
    from ..output import find_section, render

    index = None
    # An empty result without extra tables is "nothing matched", not "no such table".
    if section is not None and (result.rows or result.sections):
        index = find_section(result, section)
    chosen = result if index is None else result.sections[index]
    if not chosen.rows:
        if chosen is not result and result.rows:
            empty_message = f"the table {chosen.title!r} has no rows"
        print(f"mlinv: {empty_message or 'no matching events'}", file=sys.stderr)
        raise typer.Exit(1)
    render(result, fmt, section=index)
