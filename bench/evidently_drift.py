"""Evidently's DataDriftPreset against `mlinv drift` on the same two windows of the cached
10M-event database (the first and last quarter of its time range, mlinv's default).

Evidently is not a dependency of mlinvestigate; run this with a Python that has it:

    python -m venv /tmp/evv && /tmp/evv/bin/pip install evidently 'pandas<3' duckdb pyarrow
    /tmp/evv/bin/python bench/evidently_drift.py [--db bench/data/queries/events-10000000-seed7.duckdb]

Evidently needs the rows in pandas, so its time is given twice: the report alone, and with
loading both windows from the database (which mlinv does inside its own run). The fields are
the ones mlinv compares by default: the event columns and the record fields it discovers.
"""

from __future__ import annotations

import argparse
import subprocess
import time
from pathlib import Path

import duckdb

DEFAULT_DB = Path(__file__).parent / "data" / "queries" / "events-10000000-seed7.duckdb"

NUMERIC_SQL = {
    "input_size": "CAST(input_size AS DOUBLE)",
    "latency_ms": "latency_ms",
    "confidence": "confidence",
    "prediction": "TRY_CAST(prediction AS DOUBLE)",
    "features_amount": "TRY_CAST(json_extract(attrs, '$.features.amount') AS DOUBLE)",
    "features_time_since_last": "TRY_CAST(json_extract(attrs, '$.features.time_since_last') AS DOUBLE)",
    "features_history_len": "TRY_CAST(json_extract(attrs, '$.features.history_len') AS DOUBLE)",
}
CATEGORICAL_SQL = {
    "model_version": "model_version",
    "error_type": "error_type",
    "status_code": "CAST(status_code AS VARCHAR)",
    "cache_hit": "CAST(cache_hit AS VARCHAR)",
    "prediction_label": "CASE WHEN TRY_CAST(prediction AS DOUBLE) IS NULL THEN prediction END",
    "client_id": "json_extract_string(attrs, '$.client_id')",
    "endpoint": "json_extract_string(attrs, '$.endpoint')",
    "features_merchant_category": "json_extract_string(attrs, '$.features.merchant_category')",
    "features_locale": "json_extract_string(attrs, '$.features.locale')",
}


def windows(con: duckdb.DuckDBPyConnection) -> tuple[str, str, str, str]:
    first, last = con.execute("SELECT min(ts), max(ts) FROM events").fetchone()
    quarter = (last - first) / 4
    return str(first), str(first + quarter), str(last - quarter), str(last)


def load(con: duckdb.DuckDBPyConnection, start: str, end: str):  # type: ignore[no-untyped-def]
    columns = ", ".join(f"{sql} AS {name}" for name, sql in {**NUMERIC_SQL, **CATEGORICAL_SQL}.items())
    return con.execute(f"SELECT {columns} FROM events WHERE ts >= $start AND ts <= $end",
                       {"start": start, "end": end}).df()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", type=Path, default=DEFAULT_DB)
    parser.add_argument("--mlinv", default="mlinv", help="the mlinv command to time beside it")
    args = parser.parse_args()

    from evidently import DataDefinition, Dataset, Report
    from evidently.presets import DataDriftPreset

    started = time.perf_counter()
    con = duckdb.connect(str(args.db), read_only=True)
    con.execute("SET TimeZone = 'UTC'")
    ref_start, ref_end, cur_start, cur_end = windows(con)
    reference = load(con, ref_start, ref_end)
    current = load(con, cur_start, cur_end)
    loaded = time.perf_counter() - started
    print(f"loaded {len(reference):,} + {len(current):,} rows × {reference.shape[1]} fields "
          f"in {loaded:.1f} s")

    definition = DataDefinition(numerical_columns=list(NUMERIC_SQL),
                                categorical_columns=list(CATEGORICAL_SQL))
    report_start = time.perf_counter()
    snapshot = Report([DataDriftPreset()]).run(
        current_data=Dataset.from_pandas(current, data_definition=definition),
        reference_data=Dataset.from_pandas(reference, data_definition=definition),
    )
    report = time.perf_counter() - report_start
    drifted = [m for m in snapshot.dict()["metrics"]
               if str(m.get("metric_name", "")).startswith("ValueDrift")]
    print(f"Evidently DataDriftPreset: report {report:.1f} s, with loading {loaded + report:.1f} s "
          f"({len(drifted)} per-field drift metrics)")
    for metric in drifted:
        print(f"  {metric['metric_name']}: {metric['value']}")

    mlinv_start = time.perf_counter()
    subprocess.run([args.mlinv, "drift", "--db", str(args.db), "--format", "json"], check=True,
                   stdout=subprocess.DEVNULL)
    mlinv = time.perf_counter() - mlinv_start
    print(f"mlinv drift (whole process): {mlinv:.1f} s; Evidently ÷ mlinv: report {report / mlinv:.1f}×, "
          f"with loading {(loaded + report) / mlinv:.1f}×")


if __name__ == "__main__":
    main()
