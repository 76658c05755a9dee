"""The portable event store: the `events` table as hive-partitioned Parquet, for Spark (and
DuckDB) to query where one database file is not enough (docs/spark.md).

Layout under the store directory:

    dt=2026-01-13/model_id=fraud/src-<source key>.parquet   events of one source, day and model
    dt=…/model_id=__HIVE_DEFAULT_PARTITION__/…               events without a model_id
    _sources/src-<source key>.parquet                        the source's row of `sources`
    _rejects/src-<source key>.parquet                        its rejected lines (lossless)

* `dt` is the UTC day of `ts`; `ts` is a Parquet TIMESTAMP with isAdjustedToUTC=false (a
  TIMESTAMP_NTZ) holding UTC: engines disagree on zoned timestamps, and a non-UTC session
  would shift the day boundaries. `attrs` stays JSON text. zstd compression; rows sorted by
  ts so row-group statistics skip time ranges inside a day.
* Partition values are escaped the Hive way (%XX for / = % and the like), which Spark and
  DuckDB both decode; NULL is Hive's __HIVE_DEFAULT_PARTITION__ (so, as in Hive, an empty
  model_id reads back as NULL).
* Idempotent, append-friendly writes: a file is named after its source (the hash of the
  source's path and content fingerprint), so exporting the same data again replaces files
  with identical ones instead of adding duplicates, and a file whose row count already
  matches is not rewritten at all. Ingest only ever adds events to a source, so a new day
  creates new partitions and leaves the old ones untouched; a file that grew is rewritten
  whole, atomically (written beside it under a dot-name, then renamed), so readers never see
  half a file.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import StoreError, UsageError
from .schema import EVENT_COLUMNS

if TYPE_CHECKING:
    import duckdb
    import pyarrow as pa

    from .engines import DuckDBEngine

PARTITION_COLUMNS = ("dt", "model_id")
FILE_COLUMNS = tuple(c.name for c in EVENT_COLUMNS if c.name != "model_id")
"""Columns stored inside the files: model_id lives in the path."""
NULL_PARTITION = "__HIVE_DEFAULT_PARTITION__"
COMPRESSION = "zstd"
ROW_GROUP_ROWS = 1_000_000
EVENTS_GLOB = "dt=*/model_id=*/*.parquet"

_HIVE_ESCAPED = set('"#%\'*/:=?\\\x7f{[]^') | {chr(c) for c in range(0x20)}
"""The characters Hive (and so Spark) escape as %XX in a partition value."""


def escape_partition_value(value: str | None) -> str:
    if value is None or value == "":
        return NULL_PARTITION
    return "".join(f"%{ord(ch):02X}" if ch in _HIVE_ESCAPED else ch for ch in value)


@dataclass
class ExportReport:
    directory: str
    files_written: int = 0
    files_unchanged: int = 0
    events: int = 0
    rejects: int = 0
    sources: int = 0
    days: set[date | None] = field(default_factory=set)

    def describe(self) -> str:
        days = sorted(d.isoformat() for d in self.days if d is not None)
        span = f", days {days[0]} to {days[-1]}" if days else ""
        return (f"exported {self.events:,} events and {self.rejects:,} rejected lines of "
                f"{self.sources} source(s) to {self.directory}: {self.files_written} file(s) "
                f"written, {self.files_unchanged} unchanged{span}")


def source_key(path: str, fingerprint: str | None) -> str:
    """A stable name for one source (one generation of one file, or one stdin stream): the
    same file exported from any database gets the same name."""
    digest = hashlib.sha256(f"{path}\0{fingerprint or ''}".encode()).hexdigest()
    return digest[:20]


SOURCES_SQL = """
SELECT source_id, path, fingerprint
FROM sources
WHERE source_id IN (SELECT DISTINCT source_id FROM events)
   OR source_id IN (SELECT DISTINCT source_id FROM rejects)
ORDER BY source_id
"""

PARTITIONS_SQL = """
SELECT CAST(ts AS DATE) AS dt, model_id, count(*) AS n
FROM events
WHERE source_id = $source_id
GROUP BY ALL
ORDER BY ALL
"""

PARTITION_ROWS_SQL = """
SELECT {columns}
FROM events
WHERE source_id = $source_id
  AND CAST(ts AS DATE) IS NOT DISTINCT FROM $dt
  AND model_id IS NOT DISTINCT FROM $model_id
ORDER BY ts, line, record
"""

SOURCE_ROW_SQL = "SELECT * FROM sources WHERE source_id = $source_id"
REJECT_ROWS_SQL = "SELECT * FROM rejects WHERE source_id = $source_id ORDER BY line"


def export_parquet(con: duckdb.DuckDBPyConnection, directory: str | os.PathLike[str]
                   ) -> ExportReport:
    """Write every source's events, rejects and sources row into the store at `directory`."""
    import pyarrow.parquet as pq  # noqa: F401  (fail early, before any file is touched)

    root = Path(directory)
    if root.exists() and not root.is_dir():
        raise UsageError(f"--parquet {root} exists and is not a directory")
    root.mkdir(parents=True, exist_ok=True)
    report = ExportReport(str(root))
    columns = ", ".join(FILE_COLUMNS)
    for source_id, path, fingerprint in con.execute(SOURCES_SQL).fetchall():
        report.sources += 1
        name = f"src-{source_key(path, fingerprint)}.parquet"
        for day, model_id, count in con.execute(PARTITIONS_SQL, {"source_id": source_id}).fetchall():
            folder = (root / f"dt={day.isoformat() if day else NULL_PARTITION}"
                      / f"model_id={escape_partition_value(model_id)}")
            report.events += count
            report.days.add(day)
            if _row_count(folder / name) == count:
                report.files_unchanged += 1
                continue
            table = con.sql(PARTITION_ROWS_SQL.format(columns=columns),
                            params={"source_id": source_id, "dt": day, "model_id": model_id}
                            ).to_arrow_table()
            _write(table, folder / name)
            report.files_written += 1
        for subfolder, sql in (("_sources", SOURCE_ROW_SQL), ("_rejects", REJECT_ROWS_SQL)):
            table = con.sql(sql, params={"source_id": source_id}).to_arrow_table()
            if subfolder == "_rejects":
                report.rejects += table.num_rows
            if table.num_rows == 0 or _same_table(root / subfolder / name, table):
                continue
            _write(table, root / subfolder / name)
    return report


def _row_count(path: Path) -> int | None:
    if not path.exists():
        return None
    import pyarrow.parquet as pq

    try:
        return int(pq.ParquetFile(path).metadata.num_rows)
    except Exception:  # a damaged file is rewritten
        return None


def _same_table(path: Path, table: pa.Table) -> bool:
    if not path.exists():
        return False
    import pyarrow.parquet as pq

    try:
        return bool(pq.read_table(path).equals(table))
    except Exception:
        return False


def _write(table: pa.Table, path: Path) -> None:
    """Write atomically: readers list `*.parquet`, and Spark skips dot-files, so the half-
    written temporary file is never read."""
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp")
    # coerce_timestamps keeps microseconds; a zone-less arrow timestamp is written with
    # isAdjustedToUTC=false.
    pq.write_table(table, temporary, compression=COMPRESSION, row_group_size=ROW_GROUP_ROWS,
                   coerce_timestamps="us", allow_truncated_timestamps=False)
    os.replace(temporary, path)


# ------------------------------------------------------------------------ reading with DuckDB

def is_remote(store: str) -> bool:
    return "://" in store


def open_store(store: str) -> DuckDBEngine:
    """An in-memory DuckDB whose `events` is a view over the store's Parquet files. Parquet
    reading is built into DuckDB: nothing is loaded from the network."""
    import duckdb

    from . import store as database
    from .engines import DuckDBEngine

    if is_remote(store):
        raise UsageError(f"--store {store}: DuckDB reads a local store only",
                         hint="use --engine spark for an object-store URL")
    root = Path(store)
    if not root.is_dir():
        raise StoreError(f"no Parquet store at {store}", hint="write one with `mlinv export "
                         "--parquet DIR` or `mlinv ingest FILE... --parquet DIR`")
    if not any(root.glob(EVENTS_GLOB)):
        raise StoreError(f"no event files under {store} (expected {EVENTS_GLOB})")
    con = duckdb.connect(database.MEMORY)
    database._configure(con, database.MEMORY)  # the same pinned TimeZone=UTC, memory limit, no autoinstall
    # A view cannot hold a bound parameter, so the path is written as a quoted literal. It is
    # the user's own --store argument, not data from the logs.
    glob = _sql_literal(str(root / EVENTS_GLOB))
    columns = ", ".join(c.name for c in EVENT_COLUMNS)
    con.execute(
        f"CREATE VIEW events AS SELECT {columns}, dt FROM read_parquet({glob}, "
        "hive_partitioning = true, union_by_name = true, "
        "hive_types = {'dt': 'DATE', 'model_id': 'VARCHAR'})"
    )
    return DuckDBEngine(con, partitioned=True)


def _sql_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def store_files(store: str) -> list[Path]:
    return sorted(Path(store).glob(EVENTS_GLOB))


def describe_store(store: str) -> dict[str, Any]:
    """Files and bytes in a local store (for messages and tests)."""
    files = store_files(store)
    return {"files": len(files), "bytes": sum(f.stat().st_size for f in files)}
