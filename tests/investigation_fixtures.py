"""Databases for the investigation tests: one generated sample with the documented incidents
(built once per test session), and tiny hand-written logs with answers checked by hand.

Used through `pytest_plugins = ["investigation_fixtures"]` in the test modules, which also
import its helpers; PYTEST_DONT_REWRITE, because that import comes first and the module has
no assertions to rewrite.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pytest

from mlinvestigate import store
from mlinvestigate.ingest.pipeline import ingest_paths
from mlinvestigate.sample import DEFAULT_START, generate

SAMPLE_LINES = 40_000
SAMPLE_SEED = 7
START = DEFAULT_START
"""2026-01-13 00:00:00, the start of every generated sample."""


def at(hours: int = 0, minutes: int = 0, seconds: float = 0.0) -> datetime:
    """A clock time of the generated sample's day."""
    return START + timedelta(hours=hours, minutes=minutes, seconds=seconds)


@pytest.fixture(scope="session")
def sample_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A database file holding a generated 40,000-line sample (incidents at known times)."""
    folder = tmp_path_factory.mktemp("investigations")
    log = folder / "sample.jsonl"
    generate(log, SAMPLE_LINES, seed=SAMPLE_SEED)
    db = folder / "sample.duckdb"
    con = store.connect(str(db))
    try:
        ingest_paths(con, [str(log)])
    finally:
        con.close()
    return db


@pytest.fixture(scope="session")
def sample_log(sample_db: Path) -> Path:
    return sample_db.parent / "sample.jsonl"


@pytest.fixture(scope="session")
def sample_con(sample_db: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the sample, shared by the tests that only read."""
    con = store.connect(str(sample_db), read_only=True)
    yield con
    con.close()


def write_jsonl(path: Path, records: Iterable[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def ingest_records(path: Path, records: Iterable[dict[str, Any]]) -> duckdb.DuckDBPyConnection:
    """An in-memory database holding `records`, written to `path` and ingested like a file."""
    write_jsonl(path, records)
    con = store.connect(store.MEMORY)
    ingest_paths(con, [str(path)])
    return con


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="microseconds") + "Z"


def request_records(request_id: str, start: datetime, *, model_ms: float, gateway_ms: float,
                    version: str = "v1", model: str = "fraud", input_size: int = 100,
                    error: tuple[str, str, int] | None = None, model_line: bool = True,
                    finish: bool = True) -> list[dict[str, Any]]:
    """The three lines of one request as the sample deployment writes them: gateway start,
    model-server prediction (with parent_span_id), gateway finish. `error` is (error_type,
    message, status_code)."""
    gateway_span = f"{abs(hash(request_id)) % 16**16:016x}"
    records: list[dict[str, Any]] = [{
        "timestamp": iso(start), "service": "gateway", "event": "request_start",
        "request_id": request_id, "model_id": model, "trace_id": "ab" * 16,
        "span_id": gateway_span,
    }]
    model_end = start + timedelta(milliseconds=1 + model_ms)
    if model_line:
        prediction: dict[str, Any] = {
            "timestamp": iso(model_end), "service": "model-server",
            "event": "prediction_failure" if error else "prediction_success",
            "request_id": request_id, "model_id": model, "model_version": version,
            "input_size": input_size, "latency_ms": model_ms, "trace_id": "ab" * 16,
            "span_id": "cd" * 8, "parent_span_id": gateway_span,
        }
        if error:
            prediction.update(error_type=error[0], error_message=error[1])
        records.append(prediction)
    if finish:
        done: dict[str, Any] = {
            "timestamp": iso(start + timedelta(milliseconds=gateway_ms)), "service": "gateway",
            "event": "request_failure" if error else "request_success",
            "request_id": request_id, "model_id": model,
            "status_code": error[2] if error else 200, "latency_ms": gateway_ms,
        }
        if error:
            done.update(error_type=error[0], error_message=error[1])
        records.append(done)
    return records


def reference_latencies_s() -> np.ndarray:
    """The `lat` array of reference-vectors §4: same generator, same draw order."""
    rng = np.random.default_rng(20240601)
    rng.normal(0.0, 1.0, 1000)  # ref_num
    rng.normal(0.3, 1.1, 800)  # cur_num
    rng.normal(0.0, 1.0, 800)  # cur_same
    rng.choice(np.array(["a", "b", "c"]), size=1000, p=[0.5, 0.3, 0.2])  # ref_cat
    rng.choice(np.array(["a", "b", "c", "d"]), size=800, p=[0.4, 0.3, 0.2, 0.1])  # cur_cat
    return np.exp(rng.normal(np.log(0.100), 0.5, 1000))
