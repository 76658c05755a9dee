"""`mlinv export --parquet DIR`: the event table as a hive-partitioned Parquet store, for
`--store DIR` (DuckDB) and `--engine spark` (see docs/spark.md)."""

from __future__ import annotations

import sys
from typing import Annotated

import typer

from . import app
from .common import DbOption


@app.command()
def export(
    parquet: Annotated[str, typer.Option(
        "--parquet", help="Store directory: dt=YYYY-MM-DD/model_id=…/ Parquet files (zstd), "
        "plus _rejects/ and _sources/.", show_default=False)],
    db: DbOption = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No summary.")] = False,
) -> None:
    """Write the database's events (and rejects) into a Parquet event store. Safe to re-run:
    files are named per source, so the same data is never written twice and unchanged files
    are left alone; a new day adds new partitions only.

    Example:  mlinv export --parquet /data/mlinv-store && mlinv summary --store /data/mlinv-store
    """
    from .. import store
    from ..parquet_store import export_parquet

    con = store.connect(db, read_only=True)
    try:
        report = export_parquet(con, parquet)
    finally:
        con.close()
    if not quiet:
        print(report.describe(), file=sys.stderr)
