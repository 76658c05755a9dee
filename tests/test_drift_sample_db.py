"""Shared data for the drift, quality and outlier tests: one generated sample (40k lines, the
documented incidents included) ingested once per test process into a database file, plus a
builder for small hand-written logs. Other test modules import from here."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import duckdb

from mlinvestigate import store
from mlinvestigate.ingest.pipeline import ingest_paths
from mlinvestigate.sample import DEFAULT_START, FEATURE_DRIFT_AT, generate

SAMPLE_LINES = 40_000
DRIFT_AT = DEFAULT_START + FEATURE_DRIFT_AT  # 01:48:30


@lru_cache(maxsize=1)
def sample_db() -> Path:
    """A database file holding the generated sample; built once per process."""
    folder = Path(tempfile.mkdtemp(prefix="mlinv-drift-tests-"))
    logs = folder / "sample.jsonl"
    generate(str(logs), lines=SAMPLE_LINES, seed=7)
    path = folder / "sample.duckdb"
    con = store.connect(str(path))
    try:
        ingest_paths(con, [str(logs)])
    finally:
        con.close()
    return path


def sample_con() -> duckdb.DuckDBPyConnection:
    """A read-only connection to the sample database (the way the CLI opens it)."""
    return store.connect(str(sample_db()), read_only=True)


def write_logs(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    with path.open("w", encoding="utf-8") as handle:
        for record in records:
            handle.write(json.dumps(record) + "\n")
    return path


def memory_db(path: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory database holding the records of `path`."""
    con = store.connect(store.MEMORY)
    ingest_paths(con, [str(path)])
    return con


T0 = datetime(2026, 2, 1, 0, 0, 0)


def at(seconds: float) -> str:
    return (T0 + timedelta(seconds=seconds)).isoformat() + "Z"


def test_the_sample_has_the_fraud_feature() -> None:
    con = sample_con()
    try:
        count = con.execute(
            "SELECT count(*) FROM events WHERE attrs->>'$.features.amount' IS NOT NULL").fetchone()[0]
    finally:
        con.close()
    assert count > 5_000
