"""The investigations on Apache Spark, over a Parquet event store (see docs/spark.md).

pyspark is an optional extra (`pip install 'mlinvestigate[spark]'`) and is imported here only,
only when `--engine spark` is used, so the CLI starts as fast without it.

Times: the store's `ts` is a TIMESTAMP_NTZ holding UTC. The session pins
spark.sql.session.timeZone=UTC (day and minute boundaries) and spark.sql.timestampType=
TIMESTAMP_NTZ, so Python datetimes bound as parameters stay zone-free too. Every timestamp the
texts return is a TIMESTAMP_NTZ: a zoned TIMESTAMP would be shifted into the Python process's
local zone when collected.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import StoreError, UsageError
from ..schema import EVENT_COLUMNS
from . import SPARK, FetchedRows, SqlText, first_line, sql_for

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INSTALL_HINT = "pip install 'mlinvestigate[spark]' (pyspark; a local Spark also needs Java 17+)"

SPARK_TYPES = {"TIMESTAMP": "TIMESTAMP_NTZ", "BOOLEAN": "BOOLEAN", "VARCHAR": "STRING",
               "DOUBLE": "DOUBLE", "BIGINT": "BIGINT", "INTEGER": "INT"}

SESSION_SETTINGS = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.timestampType": "TIMESTAMP_NTZ",
}
"""Runtime settings, applied to local and Spark Connect sessions alike."""

LOCAL_SETTINGS = {
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    # Small interactive queries: the default 200 shuffle partitions cost more than they help.
    "spark.sql.shuffle.partitions": "8",
}


def store_schema_ddl() -> str:
    """The store's columns as a Spark schema: the event columns and the two partitions. Given
    explicitly so that Spark never infers a numeric model_id or a zoned ts."""
    columns = [f"`{c.name}` {SPARK_TYPES[c.sql_type]}" for c in EVENT_COLUMNS]
    return ", ".join([*columns, "`dt` DATE"])


def require_pyspark() -> None:
    """A UsageError (exit 2, one line) when pyspark is not installed."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise UsageError("--engine spark needs pyspark, which is not installed",
                         hint=INSTALL_HINT) from None


def build_session(remote: str | None = None, master: str = "local[*]",
                  settings: Mapping[str, str] | None = None) -> SparkSession:
    """A SparkSession: Spark Connect at `remote` (sc://host:15002), else a local Spark."""
    require_pyspark()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName("mlinv")
    if remote:
        builder = builder.remote(remote)
    else:
        builder = builder.master(master)
        for key, value in {**LOCAL_SETTINGS, **(settings or {})}.items():
            builder = builder.config(key, value)
    try:
        session = builder.getOrCreate()
    except Exception as exc:  # no Java, an unreachable Connect server, a bad URL …
        where = f"Spark Connect at {remote}" if remote else "a local Spark (is Java 17+ installed?)"
        raise StoreError(f"cannot start {where}: {first_line(exc)}") from None
    for key, value in SESSION_SETTINGS.items():
        session.conf.set(key, value)
    if not remote:
        session.sparkContext.setLogLevel("ERROR")
    # pyspark logs every failed query as JSON on stderr; the CLI reports errors itself.
    for logger in ("DataFrameQueryContextLogger", "SQLQueryContextLogger"):
        logging.getLogger(logger).setLevel(logging.CRITICAL)
    return session


class SparkEngine:
    """`events` as a Spark temporary view over the Parquet store at `store` (a local path or
    an object-store URL the cluster can read)."""

    name = SPARK
    partitioned = True
    has_rowid = False

    def __init__(self, session: SparkSession, store: str) -> None:
        self.session = session
        self.store = store
        self.memo: dict[str, Any] = {}
        try:
            frame = session.read.schema(store_schema_ddl()).parquet(store)
        except Exception as exc:
            raise StoreError(f"cannot read the Parquet store {store}: {first_line(exc)}") from None
        frame.select(*[c.name for c in EVENT_COLUMNS], "dt").createOrReplaceTempView("events")

    def execute(self, sql: SqlText, params: Mapping[str, Any] | None = None) -> FetchedRows:
        frame = self.session.sql(sql_for(sql, SPARK), args=dict(params) if params else None)
        return FetchedRows([tuple(row) for row in frame.collect()])

    def user_errors(self) -> tuple[type[BaseException], ...]:
        from pyspark.errors import PySparkException

        return (PySparkException,)

    def check_condition(self, where: str) -> None:
        from pyspark.errors import PySparkException

        try:
            # Analysis alone binds the names and types; nothing runs.
            _ = self.session.sql(f"SELECT 1 FROM events WHERE ({where}) LIMIT 0").schema
        except PySparkException as exc:
            raise UsageError(f"bad --where condition: {first_line(exc)}") from None

    def close(self) -> None:
        """Nothing to close per query: the session outlives the engine (one JVM per process)."""
