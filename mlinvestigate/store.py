"""The DuckDB database: where it lives, how it is opened, and its numbered migrations.

Every connection pins its time zone to UTC so that day buckets and histograms never depend on
the machine's zone. Extensions are never auto-installed from the network.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import StoreError
from .schema import EVENT_COLUMNS

if TYPE_CHECKING:
    import duckdb

DB_ENV_VAR = "MLINV_DB"
MEMORY_LIMIT_ENV_VAR = "MLINV_MEMORY_LIMIT"
DEFAULT_MEMORY_LIMIT = "1GB"
"""DuckDB's memory limit for every connection. With the ingest's read buffers on top, a process
stays under 2 GB whatever the input size (measured: 1536MB gave a 2.1 GB peak at 10 M lines);
DuckDB spills to disk beyond it. Override with $MLINV_MEMORY_LIMIT."""
DEFAULT_DB_NAME = "mlinv.duckdb"
MEMORY = ":memory:"


def resolve_db_path(db: str | os.PathLike[str] | None) -> str:
    """`--db` wins, then $MLINV_DB, then mlinv.duckdb in the working directory."""
    if db:
        return str(db)
    return os.environ.get(DB_ENV_VAR) or DEFAULT_DB_NAME


def _configure(con: duckdb.DuckDBPyConnection, path: str) -> None:
    con.execute("SET TimeZone = 'UTC'")
    if path == MEMORY:
        # DuckDB spills an in-memory database to ".tmp" in the working directory by default:
        # the user's cwd is no place for it (`mlinv tui -`, `--logs`). Created only on a spill.
        con.execute("SET temp_directory = $dir", {"dir": _spill_directory()})
    limit = os.environ.get(MEMORY_LIMIT_ENV_VAR) or DEFAULT_MEMORY_LIMIT
    try:
        con.execute(f"SET memory_limit = '{_memory_limit_literal(limit)}'")
    except (ValueError, Exception) as exc:  # a bad value must be a clear usage message
        from .errors import UsageError

        raise UsageError(f"${MEMORY_LIMIT_ENV_VAR}={limit!r} is not a memory size",
                         hint="e.g. 2GB or 512MB") from exc
    # Log fields are untrusted and users run `mlinv sql`: never fetch code from the network.
    for setting in ("autoinstall_known_extensions", "autoload_known_extensions"):
        try:
            con.execute(f"SET {setting} = false")
        except Exception:  # an older DuckDB without the setting
            pass


def _spill_directory() -> str:
    import tempfile

    return os.path.join(tempfile.gettempdir(), f"mlinv-spill-{os.getpid()}")


_MEMORY_SIZE = re.compile(r"^\s*\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)\s*$", re.IGNORECASE)


def _memory_limit_literal(text: str) -> str:
    if not _MEMORY_SIZE.match(text):
        raise ValueError(text)
    return text.strip()


_LOCK_PID = re.compile(r"PID (\d+)")


def connect(db: str | None, *, read_only: bool = False, create: bool = True) -> duckdb.DuckDBPyConnection:
    """Open (and migrate) the database. Raises StoreError with a one-line reason."""
    from .duckdb_core import duckdb

    path = resolve_db_path(db) if db != MEMORY else MEMORY
    if path != MEMORY and not create and not Path(path).exists():
        raise StoreError(
            f"no database at {path}",
            hint="run `mlinv ingest FILE...` first, or pass --db / --logs",
        )
    if path != MEMORY and read_only and not Path(path).exists():
        raise StoreError(f"no database at {path}", hint="run `mlinv ingest FILE...` first, or pass --logs")
    try:
        con = duckdb.connect(path, read_only=read_only and path != MEMORY)
    except duckdb.IOException as exc:
        text = str(exc)
        if "lock" in text.lower():
            pid = _LOCK_PID.search(text)
            who = f" (pid {pid.group(1)})" if pid else ""
            raise StoreError(f"database {path} is in use by another mlinv process{who}") from None
        raise StoreError(f"cannot open database {path}: {text.splitlines()[0]}") from None
    except duckdb.Error as exc:
        raise StoreError(f"cannot open database {path}: {str(exc).splitlines()[0]}") from None
    _configure(con, path)
    if not (read_only and path != MEMORY):
        migrate(con)
    else:
        _check_version(con, path)
    return con


# --- migrations -------------------------------------------------------------------------------

Migration = Callable[["duckdb.DuckDBPyConnection"], None]
MIGRATIONS: list[tuple[str, Migration]] = []


def migration(fn: Migration) -> Migration:
    MIGRATIONS.append((fn.__name__, fn))
    return fn


@migration
def m001_initial(con: duckdb.DuckDBPyConnection) -> None:
    columns = ",\n    ".join(f"{c.name} {c.sql_type}" for c in EVENT_COLUMNS)
    con.execute(f"CREATE TABLE events (\n    {columns}\n)")
    con.execute(
        """
        CREATE TABLE sources (
            source_id     INTEGER PRIMARY KEY,
            path          VARCHAR NOT NULL,
            kind          VARCHAR NOT NULL,      -- file | stdin
            compression   VARCHAR,               -- none | gzip | zstd
            fingerprint   VARCHAR,               -- sha256 of the first bytes (files) or of all (stdin)
            fingerprint_len BIGINT,
            file_size     BIGINT,
            file_mtime    DOUBLE,
            file_inode    BIGINT,
            bytes_read    BIGINT NOT NULL DEFAULT 0,   -- committed offset in the (decompressed) stream
            lines_read    BIGINT NOT NULL DEFAULT 0,
            events        BIGINT NOT NULL DEFAULT 0,
            rejects       BIGINT NOT NULL DEFAULT 0,
            blank_lines   BIGINT NOT NULL DEFAULT 0,
            last_ts       TIMESTAMP,             -- carried to the next chunk for records without time
            complete      BOOLEAN NOT NULL DEFAULT false,
            superseded_by INTEGER,               -- a rotated/replaced file's newer generation
            first_ingest  TIMESTAMP NOT NULL,
            last_ingest   TIMESTAMP NOT NULL
        )
        """
    )
    con.execute(
        """
        CREATE TABLE rejects (
            source_id   INTEGER NOT NULL,
            source      VARCHAR NOT NULL,
            line        BIGINT NOT NULL,
            byte_offset BIGINT NOT NULL,
            kind        VARCHAR NOT NULL,
            reason      VARCHAR NOT NULL,
            raw         VARCHAR,                 -- first REJECT_RAW_LIMIT bytes, invalid UTF-8 replaced
            raw_bytes   BIGINT NOT NULL          -- the line's full length in bytes
        )
        """
    )
    con.execute(
        """
        CREATE TABLE mappings (
            target  VARCHAR PRIMARY KEY,         -- an event column
            path    VARCHAR NOT NULL,            -- a dotted path in the record
            created TIMESTAMP NOT NULL
        )
        """
    )


@migration
def m002_torn_line_offset(con: duckdb.DuckDBPyConnection) -> None:
    # Where the last line read starts when it had no newline yet (a writer mid-line): when the
    # file grows, that line is read again whole instead of its tail becoming a line of its own.
    con.execute("ALTER TABLE sources ADD COLUMN torn_line_offset BIGINT")


@migration
def m003_baselines(con: duckdb.DuckDBPyConnection) -> None:
    # Saved drift references (`mlinv baseline save`): summaries, so later comparisons need no
    # raw reference rows. The payload format is drift/baseline.py's (PAYLOAD_VERSION).
    con.execute(
        """
        CREATE TABLE baselines (
            name        VARCHAR PRIMARY KEY,
            created     TIMESTAMP NOT NULL,
            reference   VARCHAR NOT NULL,   -- the reference window, in words
            filters     VARCHAR NOT NULL,   -- JSON: model, version, service, where
            features    INTEGER NOT NULL,
            values_kept BIGINT NOT NULL,    -- usable reference values summed over features
            payload     VARCHAR NOT NULL    -- JSON: per-feature summaries
        )
        """
    )


@migration
def m004_attrs_zstd(con: duckdb.DuckDBPyConnection) -> None:
    # attrs (the whole record) stored with zstd: ingest spent more time in DuckDB's automatic
    # string compression than in parsing. DuckDB cannot change a column's compression in place,
    # so the table is rebuilt (instant on a new database).
    columns = ",\n    ".join(c.ddl() for c in EVENT_COLUMNS)
    con.execute(f"CREATE TABLE events_m004 (\n    {columns}\n)")
    con.execute("INSERT INTO events_m004 SELECT * FROM events")
    con.execute("DROP TABLE events")
    con.execute("ALTER TABLE events_m004 RENAME TO events")


@migration
def m005_request_index(con: duckdb.DuckDBPyConnection) -> None:
    # Where each request_id was seen in time, so `mlinv trace` needs no full scan (see
    # request_index.py); built here from the events of an older database.
    from . import request_index

    con.execute(request_index.CREATE_SQL)
    con.execute(request_index.BACKFILL_SQL)
    # No default: a source added by an older mlinv, which does not write the index, stays NULL
    # and sends trace back to the full scan.
    con.execute("ALTER TABLE sources ADD COLUMN request_indexed BOOLEAN")
    con.execute("UPDATE sources SET request_indexed = true")


@migration
def m006_request_starts(con: duckdb.DuckDBPyConnection) -> None:
    # Start lines matched with their finish at ingest, so `mlinv throughput` needs no join of
    # every start with every finish (see request_starts.py); built here for an older database.
    from . import request_starts

    con.execute(request_starts.CREATE_SQL)
    request_starts.backfill(con)
    # No default, as for request_indexed: throughput trusts the table only when every source
    # was written by an mlinv that fills it.
    con.execute("ALTER TABLE sources ADD COLUMN starts_indexed BOOLEAN")
    con.execute("UPDATE sources SET starts_indexed = true")


def _applied(con: duckdb.DuckDBPyConnection) -> set[str]:
    con.execute(
        "CREATE TABLE IF NOT EXISTS _migrations (name VARCHAR PRIMARY KEY, applied TIMESTAMP)"
    )
    return {row[0] for row in con.execute("SELECT name FROM _migrations").fetchall()}


def migrate(con: duckdb.DuckDBPyConnection) -> None:
    """Apply every migration not yet recorded, each in its own transaction."""
    done = _applied(con)
    for name, fn in MIGRATIONS:
        if name in done:
            continue
        con.execute("BEGIN TRANSACTION")
        try:
            fn(con)
            con.execute("INSERT INTO _migrations VALUES (?, now())", [name])
            con.execute("COMMIT")
        except Exception:
            con.execute("ROLLBACK")
            raise


def _check_version(con: duckdb.DuckDBPyConnection, path: str) -> None:
    try:
        done = {r[0] for r in con.execute("SELECT name FROM _migrations").fetchall()}
    except Exception:
        raise StoreError(f"{path} is not an mlinvestigate database") from None
    missing = [name for name, _ in MIGRATIONS if name not in done]
    if missing:
        raise StoreError(
            f"database {path} predates this version of mlinv",
            hint="run `mlinv ingest` or `mlinv info` once to upgrade it",
        )
