"""Every investigation gives the same rows on Spark (over the Parquet store) as on DuckDB
(over the database file): exact percentiles equal to 1e-9, counts exact. So does drift's
two-window comparison (PSI, KS, JS, Wasserstein to 1e-9, the same counts and verdicts).

Needs pyspark and Java. Where either is missing the test is skipped with the reason, except
when the environment variable CI is set: CI installs the `dev` extra (which holds pyspark) and
must really run it, so there a missing Spark is a failure.

One local SparkSession (local[2], 2 shuffle partitions, UI off, bound to 127.0.0.1) for the
whole module, and all comparisons in one test: the JVM start costs ~10-20 s on a 2-core
machine, and under `pytest -n 2` separate tests could land on both workers and start two.
"""

from __future__ import annotations

import math
import os
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from investigation_fixtures import request_records, write_jsonl

from mlinvestigate import store
from mlinvestigate.drift.compare import drift
from mlinvestigate.drift.measures import Options
from mlinvestigate.drift.windows import choose_windows
from mlinvestigate.errors import UsageError
from mlinvestigate.ingest.pipeline import ingest_paths
from mlinvestigate.investigations.errors import errors
from mlinvestigate.investigations.filters import Filters, resolve_filters
from mlinvestigate.investigations.latency import latency
from mlinvestigate.investigations.loads import loads
from mlinvestigate.investigations.slow import slow
from mlinvestigate.investigations.summary import summary
from mlinvestigate.investigations.throughput import throughput
from mlinvestigate.investigations.trace import trace
from mlinvestigate.parquet_store import export_parquet
from mlinvestigate.result import Result
from mlinvestigate.sample import DEFAULT_START, generate

SPARK_SETTINGS = {
    "spark.sql.shuffle.partitions": "2",
    "spark.ui.enabled": "false",
    "spark.driver.host": "127.0.0.1",
    "spark.driver.bindAddress": "127.0.0.1",
    # On a few thousand rows compiling generated code costs more than it saves (halves the
    # run time here); the results are the same.
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
    "spark.sql.adaptive.enabled": "false",
}


def spark_missing() -> str | None:
    """Why Spark cannot run here, or None."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return "pyspark is not installed (pip install 'mlinvestigate[spark]')"
    if not shutil.which("java") and not os.environ.get("JAVA_HOME"):
        return "no Java (java is not on PATH and JAVA_HOME is unset)"
    return None


@pytest.fixture(scope="module")
def spark_session() -> Iterator[Any]:
    reason = spark_missing()
    if reason:
        if os.environ.get("CI"):
            pytest.fail(f"CI is set, so the Spark tests must run: {reason}", pytrace=False)
        pytest.skip(reason)
    from mlinvestigate.engines.spark_engine import build_session

    session = build_session(master="local[2]", settings=SPARK_SETTINGS)
    yield session
    session.stop()


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A database file and its Parquet store: a generated sample spanning two days (so the
    dt partitions and their pruning are exercised), plus hand-written requests of a model
    whose id needs escaping in a path, a line without a model_id and lines without a
    service."""
    folder = tmp_path_factory.mktemp("spark")
    sample = folder / "sample.jsonl"
    generate(sample, 6000, seed=11, start=DEFAULT_START, duration=timedelta(hours=30))
    odd = write_jsonl(folder / "odd.jsonl", [
        *request_records("req-odd-1", DEFAULT_START + timedelta(hours=23, minutes=59),
                         model_ms=40.0, gateway_ms=55.0, model="we/ird=id %"),
        *request_records("req-odd-2", DEFAULT_START + timedelta(hours=24, minutes=1),
                         model_ms=400.0, gateway_ms=450.0, model="we/ird=id %",
                         error=("TimeoutError", "deadline exceeded", 504)),
        {"timestamp": "2026-01-13T12:00:00Z", "service": "gateway", "event": "request_success",
         "request_id": "req-no-model", "latency_ms": 12.5},
        # A service that logs no service field: a NULL entry service for throughput.
        {"timestamp": "2026-01-13T12:01:00Z", "event": "request_start", "request_id": "req-anon-1"},
        {"timestamp": "2026-01-13T12:01:01Z", "event": "request_success",
         "request_id": "req-anon-1", "latency_ms": 1000.0},
        {"timestamp": "2026-01-13T12:02:00Z", "event": "request_start", "request_id": "req-anon-2"},
    ])
    db = folder / "events.duckdb"
    con = store.connect(str(db))
    try:
        ingest_paths(con, [str(sample), str(odd)])
        export_parquet(con, folder / "store")
    finally:
        con.close()
    return db, folder / "store"


def same(a: Any, b: Any) -> bool:
    """Equal, floats to 1e-9 (relative; Spark sums doubles in another order)."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)
    if isinstance(a, list | tuple) and isinstance(b, list | tuple):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def differences(duck: Result, spark: Result) -> list[str]:
    found: list[str] = []
    if duck.columns != spark.columns:
        found.append(f"columns {duck.columns} != {spark.columns}")
    if len(duck.rows) != len(spark.rows):
        found.append(f"{len(duck.rows)} rows on DuckDB, {len(spark.rows)} on Spark")
    for duck_row, spark_row in zip(duck.rows, spark.rows, strict=False):
        if not same(duck_row, spark_row):
            found.append(f"row differs:\n  duckdb {duck_row}\n  spark  {spark_row}")
            break
    if duck.notes != spark.notes:
        found.append(f"notes differ: {set(duck.notes) ^ set(spark.notes)}")
    for duck_section, spark_section in zip(duck.sections, spark.sections, strict=False):
        found += differences(duck_section, spark_section)
    return found


NIGHT = DEFAULT_START + timedelta(hours=20)
MORNING = DEFAULT_START + timedelta(hours=27)

Investigation = Callable[[Any, Filters], Result]
CASES: list[tuple[str, dict[str, Any], Investigation]] = [
    ("summary", {}, lambda con, f: summary(con, f)),
    ("summary by service across midnight", {"since": NIGHT, "until": MORNING},
     lambda con, f: summary(con, f, by=["service"])),
    ("slow by size bucket, model and where", {"model": "recsys", "where": "input_size > 50"},
     lambda con, f: slow(con, f, by="input_size_bucket", threshold_ms=200.0)),
    ("slow by attrs field", {"service": "model-server"},
     lambda con, f: slow(con, f, by="attrs.model_version")),
    ("latency every 2h with buckets", {"until": MORNING},
     lambda con, f: latency(con, f, buckets=[0, 100, 1000], every=timedelta(hours=2))),
    ("errors", {}, lambda con, f: errors(con, f)),
    ("errors every 1h", {"since": NIGHT}, lambda con, f: errors(con, f, every=timedelta(hours=1))),
    ("throughput in a window", {"since": NIGHT, "until": MORNING},
     lambda con, f: throughput(con, f, every=timedelta(hours=1), capacity_per_s=1.0)),
    ("throughput around the unnamed service", {"until": NIGHT},
     lambda con, f: throughput(con, f, every=timedelta(hours=2), timeout=timedelta(seconds=30))),
    ("loads", {}, lambda con, f: loads(con, f)),
]


DRIFT_CASES: list[tuple[str, dict[str, Any], dict[str, Any], list[str] | None, Options]] = [
    # Default windows (first vs last quarter) and every discovered field: event columns and
    # record fields, numeric and categorical, nested ones (features.amount) included.
    ("drift, default windows, discovered fields", {}, {}, None, Options()),
    ("drift, given windows, named fields, where, doane/ks",
     {"model": "fraud", "where": "input_size > 5"},
     {"reference": "2026-01-13T00:00..2026-01-13T08:00", "current": "2026-01-14T00:00..2026-01-14T06:00"},
     ["features.amount", "features.merchant_category", "latency_ms", "cache_hit", "status_code"],
     Options(method="ks", binning="doane-ref")),
    ("drift, versions", {"model": "recsys"},
     {"reference_version": "v3.2.1", "current_version": "v3.3.0"},
     ["confidence", "features.history_len", "features.locale", "input_size"], Options()),
]


def drift_differences(con: Any, spark: Any) -> tuple[list[str], list[str]]:
    """DuckDB over the database against Spark over the store, per drift case."""
    problems: list[str] = []
    timings: list[str] = []
    for name, filter_args, windows, wanted, options in DRIFT_CASES:
        filters = Filters(**filter_args)
        duck_result = drift(con, filters, choose_windows(con, filters, **windows), options, wanted)
        started = time.monotonic()
        spark_result = drift(spark, filters, choose_windows(spark, filters, **windows), options, wanted)
        timings.append(f"{name} {time.monotonic() - started:.1f}s")
        assert any(row[3] is not None and "." in row[0] for row in duck_result.rows), \
            f"{name}: the case should compare a nested record field"
        problems += [f"{name}: {d}" for d in differences(duck_result, spark_result)]
    # A field nobody logs: the exact probe on Spark finds nothing either.
    with pytest.raises(UsageError, match="features.nope"):
        drift(spark, Filters(), choose_windows(spark, Filters()), Options(), ["features.nope"])
    return problems, timings


def test_every_investigation_gives_the_same_rows_on_spark(spark_session: Any,
                                                           stores: tuple[Path, Path]) -> None:
    from mlinvestigate.engines.spark_engine import SparkEngine

    db, parquet = stores
    spark = SparkEngine(spark_session, str(parquet))
    con = store.connect(str(db), read_only=True)
    problems: list[str] = []
    timings: list[str] = []
    try:
        for name, filter_args, investigation in CASES:
            filters = Filters(**filter_args)
            duck_result = investigation(con, filters)
            started = time.monotonic()
            spark_result = investigation(spark, filters)
            timings.append(f"{name} {time.monotonic() - started:.1f}s")
            assert duck_result.rows, f"{name}: the case should have rows"
            problems += [f"{name}: {d}" for d in differences(duck_result, spark_result)]

        # trace: an exact id, a unique prefix, the odd model's request, a trace id.
        timed_out = con.execute("SELECT request_id FROM events WHERE error_category IS NOT NULL "
                                "AND request_id LIKE 'req-%' AND request_id NOT LIKE 'req-odd%' "
                                "ORDER BY ts LIMIT 1").fetchone()[0]
        for request in (timed_out, timed_out[:-1], "req-odd-2"):
            problems += [f"trace {request}: {d}"
                         for d in differences(trace(con, request), trace(spark, request))]

        # The shared filter path: relative times resolve against the store's newest event,
        # and the user's --where is checked by the engine that will run it.
        duck_filters = resolve_filters(con, "3h", None, where="latency_ms > 100")
        spark_filters = resolve_filters(spark, "3h", None, where="latency_ms > 100")
        assert duck_filters == spark_filters
        for bad in ("no_such_column > 1", "java_method('java.lang.System', 'exit', 1) = 1"):
            with pytest.raises(UsageError):
                resolve_filters(spark, where=bad)

        drift_problems, drift_timings = drift_differences(con, spark)
        problems += drift_problems
        timings += drift_timings
    finally:
        con.close()
    print("Spark timings:", ", ".join(timings))
    assert not problems, "\n".join(problems)


def test_the_odd_partition_values_round_trip(stores: tuple[Path, Path]) -> None:
    """No Spark needed: the escaped model id and the NULL model come back as they went in."""
    from mlinvestigate.parquet_store import open_store

    _, parquet = stores
    engine = open_store(str(parquet))
    try:
        models = {row[0] for row in engine.execute(
            "SELECT DISTINCT model_id FROM events").fetchall()}
        assert {"we/ird=id %", None} <= models
        days = [row[0] for row in engine.execute(
            "SELECT DISTINCT dt FROM events ORDER BY dt").fetchall()]
        assert [d.isoformat() for d in days] == ["2026-01-13", "2026-01-14"]
    finally:
        engine.close()
    assert datetime(2026, 1, 14) > DEFAULT_START
