"""The engine seam: where an investigation's SQL runs.

An investigation keeps its SQL text per engine beside its code. The DuckDB text is the
reference; a Spark text exists only where the two dialects differ, and is picked with
`sql_for(texts, engine)`:

    LATENCY_SQL = {"duckdb": "... quantile_cont(latency_ms, [...]) ...",
                   "spark": "... percentile(latency_ms, array(...)) ..."}

Parameters are always bound by name, never formatted into the text: `$name` in DuckDB texts,
`:name` in Spark texts (`spark.sql(text, args=...)`). `param(engine, name)` spells a marker for
the fragments built in Python (the shared filters).

Engines:

* `DuckDBEngine` over a DuckDB connection: the database file (the default, unchanged), or an
  in-memory connection whose `events` is a view over a Parquet store (`--store DIR`);
* `SparkEngine` (engines/spark_engine.py) over a SparkSession reading a Parquet store, local
  or through Spark Connect. pyspark is imported only there, only when used.

Every investigation function still accepts a plain DuckDB connection (`as_engine` wraps it), so
existing callers keep working.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

if TYPE_CHECKING:
    import duckdb

DUCKDB = "duckdb"
SPARK = "spark"
ENGINE_NAMES = (DUCKDB, SPARK)

SqlText = str | Mapping[str, str]
"""One SQL text for every engine, or texts by engine name (the DuckDB one is the default)."""


class Rows(Protocol):
    """What `execute` returns: DuckDB's cursor already has this shape."""

    def fetchall(self) -> list[Any]: ...

    def fetchone(self) -> Any: ...


@runtime_checkable
class Engine(Protocol):
    name: str
    """The key of this engine's texts: "duckdb" or "spark"."""
    partitioned: bool
    """True when `events` is a Parquet store with the `dt` partition column (a time filter
    then also filters dt, so whole days are skipped)."""
    has_rowid: bool
    """True when `events` is a table with DuckDB's rowid (not a view over files)."""
    memo: dict[str, Any]
    """Facts about the data read once per engine object (see `filters.event_kinds`)."""

    def execute(self, sql: SqlText, params: Mapping[str, Any] | None = None) -> Rows: ...

    def user_errors(self) -> tuple[type[BaseException], ...]:
        """Exceptions that, raised while evaluating the user's --where, mean the condition
        is wrong for the data (a failed cast …) rather than a bug."""
        ...

    def check_condition(self, where: str) -> None:
        """Raise UsageError unless `where` parses and binds as one condition on events."""
        ...


def sql_for(texts: SqlText, engine: str) -> str:
    """The text for `engine`: its own when it has one, else the DuckDB reference."""
    if isinstance(texts, str):
        return texts
    return texts.get(engine) or texts[DUCKDB]


def param(engine: str, name: str) -> str:
    """A named parameter marker in `engine`'s dialect."""
    return f":{name}" if engine == SPARK else f"${name}"


class FetchedRows:
    """Rows already fetched (Spark collects), with the DuckDB cursor's two fetch methods."""

    def __init__(self, rows: Sequence[tuple[Any, ...]]) -> None:
        self._rows = list(rows)

    def fetchall(self) -> list[tuple[Any, ...]]:
        return self._rows

    def fetchone(self) -> tuple[Any, ...] | None:
        return self._rows[0] if self._rows else None


class DuckDBEngine:
    """A DuckDB connection: the database file, or a view over a Parquet store."""

    name = DUCKDB

    def __init__(self, con: duckdb.DuckDBPyConnection, *, partitioned: bool = False) -> None:
        self.con = con
        self.partitioned = partitioned
        self.has_rowid = not partitioned
        self.memo: dict[str, Any] = {}
        """Facts about the data read once per engine object (the event names): a command, or
        one dashboard refresh, runs several investigations on one engine."""

    def execute(self, sql: SqlText, params: Mapping[str, Any] | None = None
                ) -> duckdb.DuckDBPyConnection:
        return self.con.execute(sql_for(sql, DUCKDB), dict(params) if params else None)

    def user_errors(self) -> tuple[type[BaseException], ...]:
        from ..duckdb_core import duckdb

        return (duckdb.ConversionException, duckdb.InvalidInputException,
                duckdb.OutOfRangeException, duckdb.BinderException)

    def check_condition(self, where: str) -> None:
        from ..duckdb_core import duckdb
        from ..errors import UsageError

        probe = f"SELECT 1 FROM events WHERE ({where}) LIMIT 0"
        try:
            statements = self.con.extract_statements(probe)
            if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
                raise UsageError("--where must be a single condition")
            self.con.execute(probe)
        except duckdb.Error as exc:
            raise UsageError(f"bad --where condition: {first_line(exc)}") from None

    def close(self) -> None:
        self.con.close()


def as_engine(con: Any) -> Engine:
    """An Engine for `con`: itself when it is one, else a DuckDB connection wrapped (a
    database file, the long-standing way to call an investigation)."""
    if isinstance(con, Engine):
        return con
    return DuckDBEngine(con)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
